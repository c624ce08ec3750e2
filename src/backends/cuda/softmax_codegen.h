// Attention's masked softmax as a generated kernel: y = softmax(x + mask)
// over the last axis, x float scores [rows, cols], mask float broadcast to
// them, y in the activation type. One warp per row (three passes over the
// row: max, sum of exponentials, write), computed in float. Compiled with
// NVRTC like the kiln.Pointwise kernels (nvrtc_compile.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::backends::cuda {

inline constexpr const char* kMaskedSoftmaxKernelName = "kiln_masked_softmax";
inline constexpr int kMaskedSoftmaxRowsPerBlock = 4;  // warps of a 128-thread block

// CUDA C of kiln_masked_softmax(OUT* y, const float* x, [const float* mask,] KilnSmArgs args)
// with args.v = masked_softmax_args(); `row_rank` is the number of dims
// before the last (0 without a mask).
std::string masked_softmax_source(bool has_mask, int row_rank, DataType y_dtype);

// args.v: rows, cols, then with a mask the scores' leading dims, the mask's
// strides on them and its stride on the last dim (0 or 1).
// `mask_strides` holds the mask's element strides broadcast to `dims` (empty: no mask).
std::vector<int64_t> masked_softmax_args(const Dims& dims, const Dims& mask_strides);

}  // namespace kiln::backends::cuda
