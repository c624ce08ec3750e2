// Shared pieces of the pad_resize family (pad_resize.cc: Pad;
// pad_resize_interp.cc: Resize and Upsample). register_pad_resize is the one entry point.
#pragma once

#include <vector>

#include "kiln/tensor.h"

namespace kiln::ops {

class Registry;

// A tensor of dims `out` whose element at multi-index o is x at
// (src[0][o_0], ..., src[r-1][o_{r-1}]), or `fill` (one element of x's type;
// zero when undefined) where any src[d][o_d] is -1. Works for every element
// type, strings included. Precondition: src[d] has out[d] entries in [-1, x.dim(d)).
Result<Tensor> gather_by_axis_maps(const Tensor& x, const Dims& out, const std::vector<std::vector<int64_t>>& src,
                                   const Tensor& fill);

// Resize and Upsample (pad_resize_interp.cc).
void register_resize_ops(Registry& r);

}  // namespace kiln::ops
