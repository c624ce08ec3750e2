// Op family "fused": Kiln's own ops (domain "kiln", opset 1) that the
// optimizer creates. Their reference kernels reuse the ONNX ops' reference
// kernels (looked up in the registry) and apply ops::Epilogue, so a fused node
// computes exactly what the nodes it replaced computed:
//
//   kiln.FusedConv(X, W, [B], [Z])    Conv, then bias, residual, activation
//   kiln.FusedGemm(A, B, [C], [Z])    Gemm (C broadcast as in Gemm), then epilogue
//   kiln.FusedMatMul(A, B, [bias], [Z])  MatMul (numpy batching), bias over the
//                                     last dim, then epilogue
//
// X / A may be float16 while the weights are float32 (passes/half_inputs.cc
// stores the 16-bit round trip before a layer as float16): it is widened
// exactly first, and Y is float32.
//
// Z (the residual) has Y's shape. Epilogue attributes: ops/epilogue.h. Every
// fused node also carries "fused_from" (the source node names), which the
// kernels ignore. fused_misc.cc holds the other kiln ops (attention, layer
// norm, GELU, pointwise chains).
#include "ops/fused.h"

#include <vector>

#include "core/error.h"
#include "core/float_types.h"
#include "ops/epilogue.h"
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

// The newest definitions: the fused ops follow the current ONNX semantics.
Status run_onnx_kernel(std::string_view op, KernelContext& ctx, std::span<const Datum> inputs,
                       std::vector<Datum>& outputs) {
  const OpDef* def = Registry::global().find("", op, 1000);
  if (def == nullptr || def->kernel == nullptr) return internal_error("no reference kernel for {}", op);
  KernelContext inner(ctx.node(), inputs, outputs, ctx.pool(), ctx.runner());
  return def->kernel(inner);
}

Status apply_epilogue(const KernelContext& ctx, Tensor& y, const Tensor* bias_last_dim, const Tensor* residual) {
  KILN_ASSIGN_OR_RETURN(Epilogue e, Epilogue::from_node(ctx.node()));
  if (y.dtype() != DataType::kFloat32) {
    return ctx.error(unimplemented("fused ops support float32 only, got {}", data_type_name(y.dtype())));
  }
  float* yp = y.data<float>();
  const int64_t n = y.numel();
  const float* bp = nullptr;
  int64_t cols = 1;
  if (bias_last_dim != nullptr) {
    cols = y.rank() == 0 ? 1 : y.dim(y.rank() - 1);
    if (bias_last_dim->dtype() != DataType::kFloat32 || bias_last_dim->numel() != cols) {
      return ctx.error(invalid_argument("bias of shape {} does not match the last dim of Y {}",
                                        dims_to_string(bias_last_dim->dims()), dims_to_string(y.dims())));
    }
    bp = bias_last_dim->data<float>();
  }
  const float* zp = nullptr;
  if (residual != nullptr) {
    if (residual->dtype() != DataType::kFloat32 || residual->dims() != y.dims()) {
      return ctx.error(invalid_argument("residual Z {} must have Y's shape {} and type float32",
                                        residual->debug_string(), dims_to_string(y.dims())));
    }
    zp = residual->data<float>();
  }
  for (int64_t i = 0; i < n; ++i) {
    float v = yp[i];
    if (bp != nullptr) v += bp[i % cols];
    if (zp != nullptr && !e.residual_after_activation) v += zp[i];
    v = e.activate(v);
    if (zp != nullptr && e.residual_after_activation) v += zp[i];
    yp[i] = v;
  }
  return Status::ok();
}

namespace {

// Runs ONNX `op` on the first `base_inputs` inputs, then the epilogue with
// input `residual_index` as Z and (for MatMul) input 2 as the last-dim bias.
template <int kBaseInputs, bool kLastDimBias>
Status fused_kernel(KernelContext& ctx, std::string_view op) {
  std::vector<Datum> in(kBaseInputs);
  for (size_t i = 0; i < in.size(); ++i) {
    if (ctx.has_input(i)) in[i] = ctx.datum(i);
  }
  if (op == "Gemm" && in.size() > 2 && in[2].is_none()) {
    // Gemm without C: a zero C keeps the Gemm kernel on its opset-11 path.
    in[2] = Datum(Tensor::scalar<float>(DataType::kFloat32, 0.0f));
  }
  if (in[0].is_tensor() && in[0].tensor().dtype() == DataType::kFloat16) {
    const Tensor& h = in[0].tensor();
    KILN_ASSIGN_OR_RETURN(Tensor x, Tensor::allocate(DataType::kFloat32, h.dims()));
    for (int64_t i = 0; i < h.numel(); ++i) x.data<float>()[i] = static_cast<float>(h.data<Float16>()[i]);
    in[0] = Datum(std::move(x));
  }
  for (size_t i = 0; i < 2; ++i) {
    if (!in[i].is_tensor() || in[i].tensor().dtype() != DataType::kFloat32) {
      return ctx.error(unimplemented("input {} must be a float32 tensor", i));
    }
  }
  std::vector<Datum> out(1);
  KILN_RETURN_IF_ERROR(run_onnx_kernel(op, ctx, in, out));
  Tensor y = out[0].tensor();
  if (!y.is_owned()) y = y.clone();
  const Tensor* bias = kLastDimBias && ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* z = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  KILN_RETURN_IF_ERROR(apply_epilogue(ctx, y, bias, z));
  ctx.set_output(0, std::move(y));
  return Status::ok();
}

Status fused_conv_kernel(KernelContext& ctx) { return fused_kernel<3, false>(ctx, "Conv"); }
Status fused_gemm_kernel(KernelContext& ctx) { return fused_kernel<3, false>(ctx, "Gemm"); }
Status fused_matmul_kernel(KernelContext& ctx) { return fused_kernel<2, true>(ctx, "MatMul"); }

// Output type: the base op's inference (it reads inputs 0 and 1 and the
// attributes); float32 for a float16 input 0 (widened) with float32 weights.
template <const char* kOp>
Status fused_infer(InferContext& ctx) {
  const OpDef* def = Registry::global().find("", kOp, 1000);
  if (def == nullptr || def->infer == nullptr) return Status::ok();
  KILN_RETURN_IF_ERROR(def->infer(ctx));
  if (ctx.input_type(0).dtype == DataType::kFloat16 && ctx.input_type(1).dtype == DataType::kFloat32 &&
      ctx.num_outputs() == 1 && ctx.node().output(0) != nullptr) {
    ir::ValueType t = ctx.node().output(0)->type();
    t.dtype = DataType::kFloat32;
    ctx.set_output_type(0, std::move(t));
  }
  return Status::ok();
}

constexpr char kConv[] = "Conv";
constexpr char kGemm[] = "Gemm";
constexpr char kMatMul[] = "MatMul";

}  // namespace

void register_fused(Registry& r) {
  r.add({.name = "FusedConv",
         .domain = "kiln",
         .since_version = 1,
         .min_inputs = 2,
         .max_inputs = 4,
         .kernel = fused_conv_kernel,
         .infer = fused_infer<kConv>});
  r.add({.name = "FusedGemm",
         .domain = "kiln",
         .since_version = 1,
         .min_inputs = 2,
         .max_inputs = 4,
         .kernel = fused_gemm_kernel,
         .infer = fused_infer<kGemm>});
  r.add({.name = "FusedMatMul",
         .domain = "kiln",
         .since_version = 1,
         .min_inputs = 2,
         .max_inputs = 4,
         .kernel = fused_matmul_kernel,
         .infer = fused_infer<kMatMul>});
  register_fused_misc(r);
}

}  // namespace kiln::ops
