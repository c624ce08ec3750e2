// Casts to and from the sub-16-bit element types: float8 (e4m3fn, e4m3fnuz,
// e5m2, e5m2fnuz, e8m0), float4e2m1, int4/uint4 and int2/uint2. Part of
// register_cast.
#pragma once

#include <string>

#include "kiln/tensor.h"

namespace kiln::ops {

// True for the types cast_small handles (the ones cast_tensor does not).
bool is_small_type(DataType t);

// Converts x to `to` where either type is a small type, with ONNX Cast's
// `saturate` (float8) and `round_mode` (float8e8m0) semantics.
Result<Tensor> cast_small(const Tensor& x, DataType to, bool saturate, const std::string& round_mode);

}  // namespace kiln::ops
