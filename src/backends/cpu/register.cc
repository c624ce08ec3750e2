#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/isa.h"
#include "backends/cpu/tactics.h"
#include "backends/tactic.h"

namespace kiln::backends::cpu {

// Own kernels for every ISA level this machine runs from AVX2 up (the tuner
// times them against each other); the portable ones only where the CPU has
// no AVX2, as there they are the only own candidates.
void register_tactics(TacticRegistry& registry) {
  // bf16 products where the CPU has AVX-512 BF16. They serve only nodes whose
  // operands already hold bfloat16 values (`--bf16` builds), where they come
  // first: a build without timing takes each node's first candidate.
  if (bf16_dot_supported()) {
    registry.add("", "MatMul", make_matmul_bf16_tactic(false));
    registry.add("kiln", "FusedMatMul", make_matmul_bf16_tactic(true));
    registry.add("", "Gemm", make_gemm_bf16_tactic(false));
    registry.add("kiln", "FusedGemm", make_gemm_bf16_tactic(true));
    registry.add("", "Conv", make_conv_gemm_bf16_tactic(false));
    registry.add("kiln", "FusedConv", make_conv_gemm_bf16_tactic(true));
  }
  for (Isa isa : supported_isas()) {
    if (isa == Isa::kGeneric && detect_isa() != Isa::kGeneric) continue;
    // Half-value weights stored as halves (`--fp16` builds): before the fp32
    // products of the same ISA, as the bf16 ones, for builds without timing.
    if (isa != Isa::kGeneric && f16c_supported()) {
      registry.add("", "MatMul", make_matmul_fp16_tactic(isa, false));
      registry.add("kiln", "FusedMatMul", make_matmul_fp16_tactic(isa, true));
      registry.add("", "Gemm", make_gemm_fp16_tactic(isa, false));
      registry.add("kiln", "FusedGemm", make_gemm_fp16_tactic(isa, true));
    }
    registry.add("", "MatMul", make_matmul_tactic(isa, false));
    registry.add("kiln", "FusedMatMul", make_matmul_tactic(isa, true));
    registry.add("", "Gemm", make_gemm_tactic(isa, false));
    registry.add("kiln", "FusedGemm", make_gemm_tactic(isa, true));
    // Depthwise first: a build without timing takes each node's first candidate.
    registry.add("", "Conv", make_conv_depthwise_tactic(isa, false));
    registry.add("kiln", "FusedConv", make_conv_depthwise_tactic(isa, true));
    if (isa != Isa::kGeneric && f16c_supported()) {
      registry.add("", "Conv", make_conv_gemm_fp16_tactic(isa, false));
      registry.add("kiln", "FusedConv", make_conv_gemm_fp16_tactic(isa, true));
    }
    registry.add("", "Conv", make_conv_gemm_tactic(isa, false));
    registry.add("kiln", "FusedConv", make_conv_gemm_tactic(isa, true));
    for (int tile : {2, 4}) {
      registry.add("", "Conv", make_conv_winograd_tactic(isa, false, tile));
      registry.add("kiln", "FusedConv", make_conv_winograd_tactic(isa, true, tile));
    }
  }
  // Int8 layers: the best u8s8 variant (the portable one only without AVX2).
  const Int8Variant int8 = supported_int8_variants().front();
  registry.add("", "QLinearConv", make_qconv_tactic(int8, false));
  registry.add("kiln", "QConv", make_qconv_tactic(int8, true));
  registry.add("kiln", "QGemm", make_qgemm_tactic(int8));
  registry.add("", "QuantizeLinear", make_qdq_tactic(true));
  registry.add("", "DequantizeLinear", make_qdq_tactic(false));
  const Isa row_isa = detect_isa() >= Isa::kAvx2 ? Isa::kAvx2 : Isa::kGeneric;
  registry.add("", "Softmax", make_softmax_tactic(row_isa));
  registry.add("", "LayerNormalization", make_layernorm_tactic(row_isa));
  registry.add("", "BatchNormalization", make_batchnorm_tactic());
  for (const char* op : {"MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool"}) {
    registry.add("", op, make_pool_tactic(op));
  }
  // Transformer layers: kiln.Attention per ISA level (as the GEMM tactics), Transpose.
  for (Isa isa : supported_isas()) {
    if (isa == Isa::kGeneric && detect_isa() != Isa::kGeneric) continue;
    registry.add("kiln", "Attention", make_attention_tactic(isa));
  }
  registry.add("", "Transpose", make_transpose_tactic());
  registry.add("kiln", "Pointwise", make_pointwise_tactic());
  registry.add("", "Split", make_split_tactic());
  // oneDNN's tactics are shared objects registered under each op they serve.
  for (const char* op : {"MatMul", "Gemm"}) registry.add("", op, make_onednn_matmul_tactic());
  for (const char* op : {"FusedMatMul", "FusedGemm"}) registry.add("kiln", op, make_onednn_matmul_tactic());
  for (bool blocked : {false, true}) {
    registry.add("", "Conv", make_onednn_conv_tactic(blocked));
    registry.add("kiln", "FusedConv", make_onednn_conv_tactic(blocked));
  }
  for (const char* op : {"MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool"}) {
    for (bool blocked : {false, true}) registry.add("", op, make_onednn_pool_tactic(blocked));
  }
}

}  // namespace kiln::backends::cpu
