// Precision: the storage format a value or an op's compute is emulated in.
//
// Kiln trains on the CPU, so reduced precision is emulated: a value "in
// fp16" is a float holding a number exactly representable in IEEE half
// (rounded with core/float_types.h, round to nearest even, overflow to inf,
// gradual underflow to subnormals and zero). Every accumulation stays in
// fp32 (or fp64 for gradient checks); only inputs and results are rounded,
// which is what tensor cores with fp32 accumulation do.
#pragma once

#include <string_view>

#include "kiln/tensor.h"

namespace kiln::train {

enum class Precision { kFp32, kFp16, kBf16 };

std::string_view precision_name(Precision p);

// x rounded to the nearest value of `p` (identity for kFp32).
float round_to(Precision p, float x);

// Rounds a float32 tensor in place; no-op for kFp32 and for other dtypes.
void round_in_place(Tensor& t, Precision p);

// A copy of `t` rounded to `p` (shares `t`'s storage when nothing changes).
Tensor rounded(const Tensor& t, Precision p);

// The narrower of two precisions is the one with fewer mantissa bits;
// "widest" picks the one that loses least (fp32 over either 16-bit format).
Precision widest(Precision a, Precision b);

}  // namespace kiln::train
