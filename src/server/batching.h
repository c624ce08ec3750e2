// Row-wise tensor helpers for the dynamic batcher: concatenating requests'
// inputs along the batch dimension and slicing a batch's outputs back.
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::server {

// Concatenates tensors of one dtype whose dims agree except the first.
Result<Tensor> concat_rows(const std::vector<const Tensor*>& parts);

// A deep copy of rows [begin, begin + count) of `t` (rank >= 1).
Result<Tensor> slice_rows(const Tensor& t, int64_t begin, int64_t count);

// `t` viewed with `dims` (same element count); -1 in dims is inferred.
Result<Tensor> reshape_to(const Tensor& t, std::vector<int64_t> dims);

}  // namespace kiln::server
