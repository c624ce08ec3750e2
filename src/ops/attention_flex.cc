// Attention family, part 4: FlexAttention (ai.onnx.preview, version 1).
//
// Scaled dot-product attention over 4-D [batch, heads, seq, size] Q/K/V with
// two optional modifier subgraphs, each mapping a [batch, q_heads, q_len,
// kv_len] tensor to one of the same shape:
//   scores = (Q sqrt(scale)) (K sqrt(scale))^T     in Q's type
//   scores = score_mod(scores)                     in softmax precision P
//   probs  = softmax(scores)
//   probs  = prob_mod(probs)
//   Y      = probs V                               in P, then cast to Q's type
// P is softmax_precision, else float32 (double for double inputs). K/V head
// h / (q_heads / kv_heads) serves query head h. There is no guard for a row
// that a score_mod masks entirely: its softmax is NaN, as in the spec.
#include <cmath>
#include <limits>

#include "ops/attention_internal.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

using attn::round_as;

// Runs a modifier subgraph on `x` ([B, H, L, S] of type p) and returns its
// output as doubles rounded to p; errors name the node and the attribute.
Result<std::vector<double>> run_modifier(KernelContext& ctx, const char* attr, const Dims& dims, DataType p,
                                         const std::vector<double>& x) {
  const ir::Node& node = ctx.node();
  const ir::Graph* g = node.attr_graph(attr);
  if (g == nullptr) return x;
  KILN_CHECK_ARG(g->inputs().size() == 1 && g->outputs().size() == 1,
                 "{}: {} must have 1 input and 1 output, has {} and {}", node.describe(), attr, g->inputs().size(),
                 g->outputs().size());
  if (ctx.runner() == nullptr) return internal_error("{}: no subgraph runner", node.describe());
  KILN_ASSIGN_OR_RETURN(Tensor in, attn::store_as(p, dims, x));
  std::vector<Datum> args = {Datum(std::move(in))};
  auto out = ctx.runner()->run(*g, args);
  if (!out.is_ok()) return ctx.error(out.status().with_context(attr));
  KILN_CHECK_ARG(out->size() == 1 && (*out)[0].is_tensor(), "{}: {} must produce one tensor", node.describe(), attr);
  const Tensor& t = (*out)[0].tensor();
  KILN_CHECK_ARG(attn::is_attention_float(t.dtype()) && t.dims() == dims,
                 "{}: {} must return a float tensor of shape {}, got {}", node.describe(), attr, dims_to_string(dims),
                 t.debug_string());
  KILN_ASSIGN_OR_RETURN(std::vector<double> y, attn::load_f64(t));
  for (double& v : y) v = round_as(p, v);
  return y;
}

Status flex_attention_kernel(KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  const std::string who = node.describe();
  KILN_ASSIGN_OR_RETURN(const Tensor* q, attn::float_input(ctx, 0, "Q"));
  KILN_ASSIGN_OR_RETURN(const Tensor* k, attn::float_input(ctx, 1, "K"));
  KILN_ASSIGN_OR_RETURN(const Tensor* v, attn::float_input(ctx, 2, "V"));
  const DataType t = q->dtype();
  KILN_CHECK_ARG(k->dtype() == t && v->dtype() == t, "{}: Q, K and V must have the same element type", who);
  KILN_CHECK_ARG(q->rank() == 4 && k->rank() == 4 && v->rank() == 4, "{}: Q {}, K {} and V {} must be 4-D", who,
                 dims_to_string(q->dims()), dims_to_string(k->dims()), dims_to_string(v->dims()));
  const int64_t batch = q->dim(0), hq = q->dim(1), len = q->dim(2), e = q->dim(3);
  const int64_t hkv = k->dim(1), s_len = k->dim(2), ev = v->dim(3);
  KILN_CHECK_ARG(k->dim(0) == batch && v->dim(0) == batch, "{}: Q, K and V must have the same batch size", who);
  KILN_CHECK_ARG(k->dim(3) == e, "{}: K head size {} differs from Q head size {}", who, k->dim(3), e);
  KILN_CHECK_ARG(v->dim(1) == hkv && v->dim(2) == s_len, "{}: V {} must match K {} in heads and sequence length", who,
                 dims_to_string(v->dims()), dims_to_string(k->dims()));
  KILN_CHECK_ARG((hkv > 0 && hq % hkv == 0) || (hkv == 0 && hq == 0),
                 "{}: Q heads ({}) must be a multiple of K/V heads ({})", who, hq, hkv);
  DataType p = t == DataType::kFloat64 ? DataType::kFloat64 : DataType::kFloat32;
  if (node.has_attr("softmax_precision")) {
    auto pt = data_type_from_int(node.attr_int("softmax_precision", 0));
    KILN_CHECK_ARG(pt && attn::is_attention_float(*pt),
                   "{}: softmax_precision {} is not one of 1 (float), 10 (float16), 11 (double), 16 (bfloat16)", who,
                   node.attr_int("softmax_precision", 0));
    p = *pt;
  }
  const double scale = node.has_attr("scale") ? static_cast<double>(node.attr_float("scale", 0))
                                              : 1.0 / std::sqrt(static_cast<double>(e));
  KILN_CHECK_ARG(!(scale < 0), "{}: scale {} must not be negative", who, scale);
  const DataType f32 = DataType::kFloat32;
  const double sqrt_scale = round_as(t, round_as(f32, std::sqrt(round_as(f32, scale))));

  KILN_ASSIGN_OR_RETURN(std::vector<double> qv, attn::load_f64(*q));
  KILN_ASSIGN_OR_RETURN(std::vector<double> kv, attn::load_f64(*k));
  KILN_ASSIGN_OR_RETURN(std::vector<double> vv, attn::load_f64(*v));
  for (double& x : qv) x = round_as(t, x * sqrt_scale);
  for (double& x : kv) x = round_as(t, x * sqrt_scale);
  const int64_t group = hkv == 0 ? 1 : hq / hkv;
  const Dims score_dims = {batch, hq, len, s_len};
  std::vector<double> scores(static_cast<size_t>(batch * hq * len * s_len));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < hq; ++h) {
      for (int64_t i = 0; i < len; ++i) {
        const double* qi = &qv[static_cast<size_t>(((b * hq + h) * len + i) * e)];
        for (int64_t j = 0; j < s_len; ++j) {
          const double* kj = &kv[static_cast<size_t>(((b * hkv + h / group) * s_len + j) * e)];
          double acc = 0;
          for (int64_t c = 0; c < e; ++c) acc += qi[c] * kj[c];
          scores[static_cast<size_t>(((b * hq + h) * len + i) * s_len + j)] = round_as(p, round_as(t, acc));
        }
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(scores, run_modifier(ctx, "score_mod", score_dims, p, scores));
  for (int64_t r = 0; r < batch * hq * len; ++r) {
    double* row = &scores[static_cast<size_t>(r * s_len)];
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < s_len; ++j) m = std::isnan(row[j]) || std::isnan(m) ? std::nan("") : std::max(m, row[j]);
    double sum = 0;
    for (int64_t j = 0; j < s_len; ++j) {
      row[j] = round_as(p, std::exp(round_as(p, row[j] - m)));
      sum += row[j];
    }
    sum = round_as(p, sum);
    for (int64_t j = 0; j < s_len; ++j) row[j] = round_as(p, row[j] / sum);
  }
  KILN_ASSIGN_OR_RETURN(scores, run_modifier(ctx, "prob_mod", score_dims, p, scores));

  std::vector<double> y(static_cast<size_t>(batch * hq * len * ev));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < hq; ++h) {
      for (int64_t i = 0; i < len; ++i) {
        const double* row = &scores[static_cast<size_t>(((b * hq + h) * len + i) * s_len)];
        for (int64_t c = 0; c < ev; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < s_len; ++j) {
            acc += row[j] * round_as(p, vv[static_cast<size_t>(((b * hkv + h / group) * s_len + j) * ev + c)]);
          }
          y[static_cast<size_t>(((b * hq + h) * len + i) * ev + c)] = round_as(t, round_as(p, acc));
        }
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor out, attn::store_as(t, {batch, hq, len, ev}, y));
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

// Y: [batch, q_heads, q_len, v_head_size] of Q's type.
Status flex_attention_infer(InferContext& ctx) {
  const Shape* q = attn::known_shape(ctx, 0);
  const Shape* v = attn::known_shape(ctx, 2);
  Dim batch, hq, len, ev;
  if (q != nullptr && q->rank() == 4) {
    batch = (*q)[0];
    hq = (*q)[1];
    len = (*q)[2];
  }
  if (v != nullptr && v->rank() == 4) ev = (*v)[3];
  ctx.set_output_type(0, ir::ValueType::tensor(attn::input_dtype(ctx, 0), Shape({batch, hq, len, ev})));
  return Status::ok();
}

}  // namespace

void register_attention_flex(Registry& r) {
  r.add({.name = "FlexAttention",
         .domain = "ai.onnx.preview",
         .since_version = 1,
         .min_inputs = 3,
         .max_inputs = 3,
         .kernel = flex_attention_kernel,
         .infer = flex_attention_infer});
}

}  // namespace kiln::ops
