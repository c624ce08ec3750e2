// The kiln ops besides the fused compute ops (fused.cc):
//
//   kiln.Attention(Q, Kt, V, [mask]) -> Y, attribute scale (float):
//       Y = softmax(scale * (Q @ Kt) + mask) @ V over the last axis, with
//       numpy batching of the matmuls; Kt is K already transposed
//       ([..., dk, Skv]); mask broadcasts to the scores [..., Sq, Skv].
//   kiln.LayerNormalization(X, scale, [bias]) -> Y, [mean], [inv_std_dev]:
//       ONNX LayerNormalization-17 for models of older opsets.
//   kiln.Gelu(X) -> Y, attribute approximate ("none" | "tanh"): ONNX Gelu-20
//       for models of older opsets.
//   kiln.Pointwise(inputs...) -> outputs..., attribute body (graph): a chain
//       of elementwise ops; the reference kernel runs the body on whole
//       tensors (a fast kernel generates one loop from it).
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/fused.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

// ---- Attention -------------------------------------------------------------------

Status softmax_last_axis(Tensor& s) {
  const int64_t cols = s.rank() == 0 ? 1 : s.dim(s.rank() - 1);
  if (cols == 0) return Status::ok();
  float* p = s.data<float>();
  for (int64_t r = 0; r < s.numel() / cols; ++r) {
    float* row = p + r * cols;
    const float mx = *std::max_element(row, row + cols);
    float sum = 0.0f;
    for (int64_t j = 0; j < cols; ++j) {
      row[j] = std::exp(row[j] - mx);
      sum += row[j];
    }
    for (int64_t j = 0; j < cols; ++j) row[j] /= sum;
  }
  return Status::ok();
}

Status attention_kernel(KernelContext& ctx) {
  for (size_t i = 0; i < 3; ++i) {
    KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
    if (t->dtype() != DataType::kFloat32) {
      return ctx.error(unimplemented("input {} must be float32, got {}", i, data_type_name(t->dtype())));
    }
  }
  const float scale = ctx.node().attr_float("scale", 1.0f);
  std::vector<Datum> qk_in = {ctx.datum(0), ctx.datum(1)};
  std::vector<Datum> out(1);
  KILN_RETURN_IF_ERROR(run_onnx_kernel("MatMul", ctx, qk_in, out));
  Tensor scores = out[0].tensor();
  if (!scores.is_owned()) scores = scores.clone();
  float* sp = scores.data<float>();
  for (int64_t i = 0; i < scores.numel(); ++i) sp[i] *= scale;
  if (ctx.has_input(3)) {
    const Tensor& mask = ctx.input(3);
    auto dims = broadcast_dims(scores.dims(), mask.dims());
    if (mask.dtype() != DataType::kFloat32 || !dims.is_ok() || *dims != scores.dims()) {
      return ctx.error(invalid_argument("mask {} does not broadcast to the scores {}", mask.debug_string(),
                                        dims_to_string(scores.dims())));
    }
    BroadcastIterator it(scores.dims(), {mask.dims()});
    const float* mp = mask.data<float>();
    for (int64_t i = 0; i < scores.numel(); ++i) {
      sp[i] += mp[it.offset(0)];
      if (i + 1 < scores.numel()) it.next();
    }
  }
  KILN_RETURN_IF_ERROR(softmax_last_axis(scores));
  std::vector<Datum> pv_in = {Datum(scores), ctx.datum(2)};
  std::vector<Datum> y(1);
  KILN_RETURN_IF_ERROR(run_onnx_kernel("MatMul", ctx, pv_in, y));
  ctx.set_output(0, std::move(y[0]));
  return Status::ok();
}

// Y has Q's batch dims and rows and V's last dim.
Status attention_infer(InferContext& ctx) {
  const ir::ValueType& q = ctx.input_type(0);
  const ir::ValueType& v = ctx.input_type(2);
  if (!q.is_tensor()) return Status::ok();
  if (!q.shape.rank_known() || !v.is_tensor() || !v.shape.rank_known() || q.shape.rank() < 2 ||
      v.shape.rank() != q.shape.rank()) {
    ctx.set_output_type(0, ir::ValueType::tensor(q.dtype));
    return Status::ok();
  }
  Shape s = q.shape;
  s[s.rank() - 1] = v.shape[v.shape.rank() - 1];
  ctx.set_output_type(0, ir::ValueType::tensor(q.dtype, s));
  return Status::ok();
}

// ---- Delegating ops ----------------------------------------------------------------

template <const char* kOp>
Status delegate_kernel(KernelContext& ctx) {
  std::vector<Datum> in;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) in.push_back(ctx.has_input(i) ? ctx.datum(i) : Datum());
  std::vector<Datum> out(ctx.num_outputs());
  KILN_RETURN_IF_ERROR(run_onnx_kernel(kOp, ctx, in, out));
  for (size_t i = 0; i < out.size(); ++i) {
    if (ctx.wants_output(i)) ctx.set_output(i, std::move(out[i]));
  }
  return Status::ok();
}

template <const char* kOp>
Status delegate_infer(InferContext& ctx) {
  const OpDef* def = Registry::global().find("", kOp, 1000);
  return def != nullptr && def->infer != nullptr ? def->infer(ctx) : Status::ok();
}

constexpr char kLayerNorm[] = "LayerNormalization";
constexpr char kGelu[] = "Gelu";

// ---- Pointwise ------------------------------------------------------------------------

Status pointwise_kernel(KernelContext& ctx) {
  const ir::Graph* body = ctx.node().attr_graph("body");
  if (body == nullptr) return ctx.error(invalid_argument("attribute 'body' (a graph) is missing"));
  if (body->inputs().size() != ctx.num_inputs() || body->outputs().size() != ctx.num_outputs()) {
    return ctx.error(invalid_argument("body takes {} inputs and gives {} outputs; the node has {} and {}",
                                      body->inputs().size(), body->outputs().size(), ctx.num_inputs(),
                                      ctx.num_outputs()));
  }
  if (ctx.runner() == nullptr) return ctx.error(failed_precondition("no subgraph runner to run the body"));
  std::vector<Datum> in;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) in.push_back(ctx.datum(i));
  KILN_ASSIGN_OR_RETURN(std::vector<Datum> out, ctx.runner()->run(*body, in));
  for (size_t i = 0; i < out.size(); ++i) ctx.set_output(i, std::move(out[i]));
  return Status::ok();
}

// The body's output types (the pass that builds the body types its values).
Status pointwise_infer(InferContext& ctx) {
  const ir::Graph* body = ctx.node().attr_graph("body");
  if (body == nullptr) return invalid_argument("attribute 'body' (a graph) is missing");
  for (size_t i = 0; i < body->outputs().size() && i < ctx.num_outputs(); ++i) {
    ctx.set_output_type(i, body->outputs()[i]->type());
  }
  return Status::ok();
}

}  // namespace

void register_fused_misc(Registry& r) {
  r.add({.name = "Attention",
         .domain = "kiln",
         .since_version = 1,
         .min_inputs = 3,
         .max_inputs = 4,
         .kernel = attention_kernel,
         .infer = attention_infer});
  r.add({.name = "LayerNormalization",
         .domain = "kiln",
         .since_version = 1,
         .min_inputs = 2,
         .max_inputs = 3,
         .min_outputs = 1,
         .max_outputs = 3,
         .kernel = delegate_kernel<kLayerNorm>,
         .infer = delegate_infer<kLayerNorm>});
  r.add({.name = "Gelu",
         .domain = "kiln",
         .since_version = 1,
         .min_inputs = 1,
         .max_inputs = 1,
         .kernel = delegate_kernel<kGelu>,
         .infer = delegate_infer<kGelu>});
  r.add({.name = "Pointwise",
         .domain = "kiln",
         .since_version = 1,
         .min_inputs = 1,
         .max_inputs = -1,
         .min_outputs = 1,
         .max_outputs = -1,
         .kernel = pointwise_kernel,
         .infer = pointwise_infer});
}

}  // namespace kiln::ops
