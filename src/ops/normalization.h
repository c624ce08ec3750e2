// Shared pieces of the normalization family (normalization.cc and
// normalization_layer.cc). register_normalization is the one entry point.
#pragma once

#include <vector>

#include "kiln/tensor.h"
#include "ops/op_def.h"

namespace kiln::ops {

class Registry;

// Element values as doubles (any numeric type).
Result<std::vector<double>> norm_doubles(const Tensor& t);
// Sets output i to `values` (shape `dims`) converted to `dtype`.
Status norm_set_output(KernelContext& ctx, size_t i, DataType dtype, const Dims& dims,
                               const std::vector<double>& values);
// Per-row mean and variance (population) of `rows` consecutive runs of `len` values.
void norm_row_moments(const std::vector<double>& x, int64_t rows, int64_t len, std::vector<double>& mean,
                 std::vector<double>& var);
// `p` (from input `name`) read for every element of a normalized block of
// dims `block`, with numpy broadcasting of p's shape to `block`.
Result<std::vector<double>> norm_broadcast_param(const Tensor& p, const Dims& block, const char* name);

// LayerNormalization, GroupNormalization and RMSNormalization (normalization_layer.cc).
void register_layer_normalizations(Registry& r);

}  // namespace kiln::ops
