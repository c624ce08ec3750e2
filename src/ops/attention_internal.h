// Internals shared by the attention family's files (attention*.cc): the
// registration of each part and the numeric helpers their kernels share.
//
// The kernels of this family compute in double and round intermediate values
// to the precision of the type the ONNX function body (and reference) computes
// that step in: a float16 Attention rounds Q*sqrt(scale), the QK product, the
// biased scores and the probabilities to float16, as its decomposed graph does.
// That keeps fp16/bf16 results within the tolerance of the spec's cases while
// the arithmetic itself stays plain.
#pragma once

#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/float_types.h"
#include "ir/value_type.h"
#include "kiln/tensor.h"
#include "ops/op_def.h"

namespace kiln::ops {

class Registry;

void register_attention_core(Registry& r);       // Attention (opsets 23, 24, 25)
void register_attention_rotary(Registry& r);     // RotaryEmbedding, SwiGLU
void register_attention_recurrent(Registry& r);  // LinearAttention, CausalConvWithState
void register_attention_flex(Registry& r);       // FlexAttention (ai.onnx.preview)

namespace attn {

// `x` rounded to the precision of floating type `t` (float64: unchanged).
// Precondition: t is float16, bfloat16, float32 or float64.
inline double round_as(DataType t, double x) {
  switch (t) {
    case DataType::kFloat32:
      return static_cast<double>(static_cast<float>(x));
    case DataType::kFloat16:
      return static_cast<double>(static_cast<float>(Float16(static_cast<float>(x))));
    case DataType::kBFloat16:
      return static_cast<double>(static_cast<float>(BFloat16(static_cast<float>(x))));
    default:
      return x;
  }
}

inline bool is_attention_float(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat64 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

// Every element of a numeric (or bool) tensor as a double.
Result<std::vector<double>> load_f64(const Tensor& t);
// A tensor of `dtype` and `dims` holding `values` (already rounded to dtype).
Result<Tensor> store_as(DataType dtype, Dims dims, const std::vector<double>& values);

// Input i of a kernel as a float16/bfloat16/float/double tensor; the error
// names the node and the input.
Result<const Tensor*> float_input(const KernelContext& ctx, size_t i, const char* name);

// Static helpers: input i's tensor type (kUnknown kind when absent) and its
// shape when the rank is known.
const Shape* known_shape(const InferContext& ctx, size_t i);
DataType input_dtype(const InferContext& ctx, size_t i);
// a * b, a + b and a / b of possibly unknown dims (unknown unless both are known).
Dim mul_dim(const Dim& a, const Dim& b);
Dim add_dim(const Dim& a, const Dim& b);
Dim div_dim(const Dim& a, int64_t b);

}  // namespace attn
}  // namespace kiln::ops
