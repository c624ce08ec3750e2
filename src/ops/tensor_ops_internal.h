// Private to the tensor_ops family: its parts (one file each, registered by
// register_tensor_ops in tensor_ops.cc) and helpers they share.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/op_def.h"
#include "ops/op_util.h"

namespace kiln::ops {

class Registry;

void register_tensor_ops_slice(Registry& r);    // Slice, Compress, ReverseSequence
void register_tensor_ops_gather(Registry& r);   // Gather, GatherElements, GatherND
void register_tensor_ops_scatter(Registry& r);  // ScatterElements, ScatterND, Scatter
void register_tensor_ops_select(Registry& r);   // TopK, NonZero, Unique
void register_tensor_ops_misc(Registry& r);     // Dropout, OneHot, CumSum, Trilu, EyeLike, DepthToSpace, SpaceToDepth
void register_tensor_ops_einsum(Registry& r);   // Einsum

// The shape of input i when it is a tensor of known rank, else nullptr.
inline const Shape* known_rank_shape(const InferContext& ctx, size_t i) {
  const ir::ValueType& t = ctx.input_type(i);
  return t.is_tensor() && t.shape.rank_known() ? &t.shape : nullptr;
}

// The element type of input i, or kUndefined when not known to be a tensor.
inline DataType input_dtype(const InferContext& ctx, size_t i) {
  const ir::ValueType& t = ctx.input_type(i);
  return t.is_tensor() ? t.dtype : DataType::kUndefined;
}

// For each element of `dims` in row-major order, the sum over axes d of
// table[d][coord_d]: source offsets for ops whose per-axis mapping is
// independent (Slice, Tile...). table[d] has dims[d] entries.
inline std::vector<int64_t> table_indices(const Dims& dims, const std::vector<std::vector<int64_t>>& table) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<int64_t> out;
  if (n <= 0) return out;
  out.reserve(static_cast<size_t>(n));
  std::vector<int64_t> coord(dims.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t offset = 0;
    for (size_t d = 0; d < dims.size(); ++d) offset += table[d][static_cast<size_t>(coord[d])];
    out.push_back(offset);
    for (size_t d = dims.size(); d-- > 0;) {
      if (++coord[d] < dims[d]) break;
      coord[d] = 0;
    }
  }
  return out;
}

// Product of dims[begin, end).
inline int64_t dims_product(const Dims& dims, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t i = begin; i < end && i < dims.size(); ++i) n *= dims[i];
  return n;
}

}  // namespace kiln::ops
