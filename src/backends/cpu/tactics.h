// The CPU backend's own tactics, one factory per kernel family and ISA.
// register.cc adds them to the registry; the differential tests build them
// directly to check every ISA this machine runs, not only the best one.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "backends/cpu/gemm_int8.h"
#include "backends/cpu/isa.h"
#include "backends/tactic.h"
#include "kiln/status.h"
#include "ops/op_def.h"

namespace kiln::backends::cpu {

// MatMul (ai.onnx) and kiln.FusedMatMul: packed SGEMM, B packed in prepare
// when constant. Name "own.matmul.<isa>" / "own.fused_matmul.<isa>".
std::unique_ptr<Tactic> make_matmul_tactic(Isa isa, bool fused);
// Gemm (ai.onnx) and kiln.FusedGemm. "own.gemm.<isa>" / "own.fused_gemm.<isa>".
std::unique_ptr<Tactic> make_gemm_tactic(Isa isa, bool fused);
// The same two on the AVX-512 BF16 GEMM (bf16_dot_supported()): only for a
// constant B of bfloat16 values and an A that holds_bf16_values(), where the
// bf16 product equals the fp32 one up to summation order.
// "own.[fused_]matmul_bf16.avx512" / "own.[fused_]gemm_bf16.avx512".
std::unique_ptr<Tactic> make_matmul_bf16_tactic(bool fused);
std::unique_ptr<Tactic> make_gemm_bf16_tactic(bool fused);
// The same two with a constant B of half values (f16_weights) stored as
// halves and widened while the product runs (F16C; AVX2 and AVX-512):
// "own.[fused_]matmul_fp16.<isa>" / "own.[fused_]gemm_fp16.<isa>".
std::unique_ptr<Tactic> make_matmul_fp16_tactic(Isa isa, bool fused);
std::unique_ptr<Tactic> make_gemm_fp16_tactic(Isa isa, bool fused);
// Conv and kiln.FusedConv (1-D and 2-D, fp32, constant weights): im2col
// packed on the fly (a 1x1 stride-1 unpadded kernel reads X directly) and
// the packed SGEMM with weights packed in prepare.
// "own.conv_gemm.<isa>" / "own.fused_conv_gemm.<isa>".
std::unique_ptr<Tactic> make_conv_gemm_tactic(Isa isa, bool fused);
// The same on the AVX-512 BF16 GEMM where bf16_operands(): weights packed as
// bfloat16 pairs, im2col columns paired while packed.
// "own.conv_gemm_bf16.avx512" / "own.fused_conv_gemm_bf16.avx512".
std::unique_ptr<Tactic> make_conv_gemm_bf16_tactic(bool fused);
// The same with weights of half values stored as halves (f16_weights):
// "own.conv_gemm_fp16.<isa>" / "own.fused_conv_gemm_fp16.<isa>".
std::unique_ptr<Tactic> make_conv_gemm_fp16_tactic(Isa isa, bool fused);
// Depthwise Conv / kiln.FusedConv (group == C == M): direct, vectorized
// along the output row. "own.conv_depthwise.<isa>" / "own.fused_conv_depthwise.<isa>".
std::unique_ptr<Tactic> make_conv_depthwise_tactic(Isa isa, bool fused);

// Winograd F(2x2, 3x3) (out_tile 2) or F(4x4, 3x3) (out_tile 4) for 3x3
// stride-1 undilated ungrouped 2-D Conv / kiln.FusedConv.
// "own.conv_winograd_f<2|4>x3.<isa>" / "own.fused_conv_winograd_f<2|4>x3.<isa>".
std::unique_ptr<Tactic> make_conv_winograd_tactic(Isa isa, bool fused, int out_tile = 2);

// Softmax (last axis; any axis of the pre-13 form) and LayerNormalization
// (last axis, Y only), fp32. Row kernels exist for generic and AVX2 (also
// used on AVX-512 machines): "own.softmax.<generic|avx2>", "own.layernorm.<...>".
std::unique_ptr<Tactic> make_softmax_tactic(Isa isa);
std::unique_ptr<Tactic> make_layernorm_tactic(Isa isa);
// Inference-mode BatchNormalization of float32 as a per-channel y = x * k + b
// (k, b from the running statistics in double): "own.batchnorm".
std::unique_ptr<Tactic> make_batchnorm_tactic();

// The 2-D pooling ops the pool tactics serve (own.* below and onednn.pool*),
// their ONNX names, and which of them a default-domain `node` is, if any.
enum class PoolKind { kMax, kAverage, kGlobalMax, kGlobalAverage };
const char* pool_op_name(PoolKind kind);
std::optional<PoolKind> pool_kind(const ir::Node& node);

// 2-D NCHW float32 pooling (pool_tactics.cc): MaxPool (Y only), AveragePool,
// GlobalMaxPool, GlobalAveragePool; nullptr for any other op.
// "own.maxpool", "own.averagepool", "own.global_maxpool", "own.global_averagepool".
std::unique_ptr<Tactic> make_pool_tactic(std::string_view op);

// Transpose (transpose_tactics.cc): any rank and permutation, any element
// type of 1, 2, 4, 8 or 16 bytes (not strings), bit-exact: "own.transpose".
std::unique_ptr<Tactic> make_transpose_tactic();
// Split (split_tactics.cc): any axis, sizes from the attribute, the input or
// equal parts (ops/split.h), any element type but strings; contiguous
// copies, bit-exact: "own.split".
std::unique_ptr<Tactic> make_split_tactic();
// kiln.Attention (attention_tactics.cc), float32: per (batch, block of query
// rows) scores by the packed SGEMM, scale and mask, row softmax, then @ V;
// at most a block of rows x Skv scores per thread. "own.attention.<isa>".
std::unique_ptr<Tactic> make_attention_tactic(Isa isa);

// kiln.Pointwise (pointwise_tactics.cc), float32: the body's chain of
// elementwise ops (activations, unary math, float Cast, Clip, and
// Add/Sub/Mul/Div/Pow/Max/Min/PRelu with a float32 constant, a Cast to
// bfloat16/float16 and back) in one pass
// over L1-sized blocks, bit-exact with the reference. "own.pointwise".
std::unique_ptr<Tactic> make_pointwise_tactic();

// oneDNN primitives (onednn_tactics.cc): "onednn.matmul" for MatMul, Gemm and
// their fused forms with a constant B; "onednn.conv" (NCHW in and out) and
// "onednn.conv_blocked" (oneDNN's blocked layout, reordered around the
// primitive) for 2-D Conv / kiln.FusedConv with constant weights.
std::unique_ptr<Tactic> make_onednn_matmul_tactic();
std::unique_ptr<Tactic> make_onednn_conv_tactic(bool blocked);
// "onednn.pool" (NCHW) and "onednn.pool_blocked" (the convolutions' blocked
// layout, so a pool inside a chain of blocked convolutions keeps it) for 2-D
// float32 MaxPool (Y only), AveragePool, GlobalMaxPool and GlobalAveragePool
// (one tactic for all four, registered under each).
std::unique_ptr<Tactic> make_onednn_pool_tactic(bool blocked);

// The common part of the own tactics that serve an ONNX op and its kiln.Fused*
// twin at one ISA: the name "own.[fused_]<family>.<isa>", the source "own" and
// the node check every one of them starts with.
class OwnFusableTactic : public Tactic {
 public:
  OwnFusableTactic(std::string_view family, std::string_view op, Isa isa, bool fused);
  std::string_view name() const override { return name_; }
  std::string_view source() const override { return "own"; }

 protected:
  // `node` is this tactic's op (kiln.Fused<op> when fused) and, when fused,
  // carries an epilogue ops/epilogue.h accepts.
  bool serves(const ir::Node& node) const;

  Isa isa_;
  bool fused_;

 private:
  std::string op_;
  std::string name_;
};

// Int8 layers on the u8s8 GEMM (int8_tactics.cc): QLinearConv and
// kiln.QConv (2-D, ungrouped, constant int8 weights with zero zero points,
// constant per-tensor input/output parameters): "own.qlinear_conv_im2col.<variant>"
// / "own.qconv_im2col.<variant>"; kiln.QGemm: "own.qgemm.<variant>".
std::unique_ptr<Tactic> make_qconv_tactic(Int8Variant v, bool kiln_op);
std::unique_ptr<Tactic> make_qgemm_tactic(Int8Variant v);
// Per-tensor QuantizeLinear / DequantizeLinear (float32 <-> uint8/int8,
// constant scalar scale and zero point), bit-exact with the reference
// (qdq_tactics.cc): "own.quantize_linear" / "own.dequantize_linear".
std::unique_ptr<Tactic> make_qdq_tactic(bool quantize);
// The Q/DQ arithmetic those tactics (and own.pointwise's quantized ends) use:
// the constant scalar scale and zero point of a QuantizeLinear /
// DequantizeLinear node (false for any other form); out[i] =
// saturate(nearbyint(in[i] / scale) + zp), NaN -> zp; out[i] =
// float(q(in[i]) - zp) * scale, q the byte as q_type (int8 or uint8).
bool qdq_scalar_params(const ir::Node& n, float& scale, int32_t& zp, DataType& q_type);
void quantize_floats(const float* in, uint8_t* out, int64_t n, float scale, int32_t zero_point, DataType q_type);
void dequantize_bytes(const uint8_t* in, float* out, int64_t n, float scale, int32_t zp, DataType q_type);

// True if `v` is a tensor value known to hold float32 / float16.
bool is_f32(const ir::Value* v);
bool is_f16(const ir::Value* v);
// True if `v` holds float32 values that are all exactly bfloat16 by
// construction: the output of Cast(to float) from bfloat16 (the round trip
// `--bf16` puts before each matrix layer), also as the last op of a
// kiln.Pointwise body. The bf16 GEMM tactics compute exactly what the fp32
// graph says only on such inputs.
bool holds_bf16_values(const ir::Value* v);
// True if every element of float32 tensor `t` is a bfloat16 value (low 16 bits zero).
bool all_bf16_values(const Tensor& t);
// A bf16 tactic serves a node only where it computes what the fp32 graph
// says: the CPU runs vdpbf16ps, input 1 (B, the weights) is a constant of
// bfloat16 values and input 0 holds_bf16_values().
bool bf16_operands(const ir::Node& node);
// True if every element of float32 tensor `t` is exactly an IEEE half value
// (zero, a normal or subnormal half, or an infinity; NaN is not).
bool all_f16_values(const Tensor& t);
// An fp16-storage tactic (WeightFormat::kFp16) serves a node whose input 1,
// the weights, is a constant of half values, on a CPU with F16C: the
// widened panels hold exactly the graph's values, so the product is the
// fp32 one (`--fp16` builds round the weights; any input 0).
bool f16_weights(const ir::Node& node);
// Whether a GEMM-based tactic whose weights take `format` (gemm.h) serves a
// node its other checks accept: fp32 always; bf16 and fp16 only with
// constant weights (`constant_weights`) and bf16_operands / f16_weights.
enum class WeightFormat : uint8_t;
bool weights_served(const ir::Node& node, WeightFormat format, bool constant_weights);
// Runs the op's reference kernel: the fallback of fast kernels for inputs
// they do not handle at run time (shapes the build could not see).
Status run_reference(ops::KernelContext& ctx);

}  // namespace kiln::backends::cpu
