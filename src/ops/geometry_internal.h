// Private to the geometry family: its parts (one file each, registered by
// register_geometry in geometry.cc) and helpers they share.
#pragma once

#include <cstddef>

#include "ops/op_def.h"
#include "ops/op_util.h"

namespace kiln::ops {

class Registry;

void register_geometry_roi(Registry& r);     // RoiAlign, NonMaxSuppression
void register_geometry_blocks(Registry& r);  // Col2Im, DeformConv, CenterCropPad

namespace geometry {

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

// fp16, bf16, fp32 or fp64.
inline bool is_real_float(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat64 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

}  // namespace geometry
}  // namespace kiln::ops
