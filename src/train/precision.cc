#include "train/precision.h"

#include "core/float_types.h"

namespace kiln::train {

std::string_view precision_name(Precision p) {
  switch (p) {
    case Precision::kFp32: return "fp32";
    case Precision::kFp16: return "fp16";
    case Precision::kBf16: return "bf16";
  }
  return "?";
}

float round_to(Precision p, float x) {
  switch (p) {
    case Precision::kFp32: return x;
    case Precision::kFp16: return Float16::to_float(Float16::from_float(x));
    case Precision::kBf16: return BFloat16::to_float(BFloat16::from_float(x));
  }
  return x;
}

void round_in_place(Tensor& t, Precision p) {
  if (p == Precision::kFp32 || t.dtype() != DataType::kFloat32) return;
  for (float& v : t.span<float>()) v = round_to(p, v);
}

Tensor rounded(const Tensor& t, Precision p) {
  if (p == Precision::kFp32 || t.dtype() != DataType::kFloat32) return t;
  Tensor c = t.clone();
  round_in_place(c, p);
  return c;
}

Precision widest(Precision a, Precision b) {
  if (a == Precision::kFp32 || b == Precision::kFp32) return Precision::kFp32;
  return a == b ? a : Precision::kFp32;  // fp16 with bf16: neither holds the other
}

}  // namespace kiln::train
