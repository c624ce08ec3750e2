// Attention family, part 3: the recurrent ops of linear-attention models
// (opset 27): LinearAttention and CausalConvWithState.
//
// LinearAttention runs, token by token, one of four recurrences over a state
// S of [batch, kv_heads, d_k, d_v] (g: decay in log space, beta: update rate):
//   linear       S = S + k v^T
//   gated        S = exp(g) S + k v^T
//   delta        S = S + k (beta (v - S^T k))^T
//   gated_delta  S = exp(g) S + k (beta (v - exp(g) S^T k))^T
// and reads o = scale * q^T S, each query head reading the state of its KV
// head (grouped-query). Inputs are packed [batch, T, heads * dim]; the state
// is kept in float32 as the spec's reference does.
//
// CausalConvWithState: a depthwise causal 1-D convolution whose left context
// is past_state (zeros when absent); present_state is the last k - 1 positions
// of [past_state, input]. Optional fused SiLU.
#include <cmath>

#include "ops/attention_internal.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

using attn::round_as;
constexpr DataType kF32 = DataType::kFloat32;

bool is_half_or_float(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

Result<const Tensor*> typed_input(const KernelContext& ctx, size_t i, const char* name) {
  KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
  KILN_CHECK_ARG(is_half_or_float(t->dtype()),
                 "{}: input '{}' has element type {}, expected float, float16 or bfloat16", ctx.node().describe(), name,
                 data_type_name(t->dtype()));
  return t;
}

// ---- LinearAttention ------------------------------------------------------------

struct LinearShape {
  int64_t batch = 0, len = 0, q_heads = 0, kv_heads = 0, dk = 0, dv = 0;
  int64_t decay_width = 0;  // kv_heads (per head) or kv_heads * dk (per key dim); 0 when absent
  int64_t beta_width = 0;   // kv_heads or 1; 0 when absent
};

Status check_packed(const std::string& who, const char* name, const Tensor& t, const LinearShape& s) {
  KILN_CHECK_ARG(t.rank() == 3 && t.dim(0) == s.batch && t.dim(1) == s.len,
                 "{}: {} must be [batch {}, T {}, *], got {}", who, name, s.batch, s.len, dims_to_string(t.dims()));
  return Status::ok();
}

Status linear_attention_kernel(KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  const std::string who = node.describe();
  const std::string rule = node.attr_string("update_rule", "gated_delta");
  KILN_CHECK_ARG(rule == "linear" || rule == "gated" || rule == "delta" || rule == "gated_delta",
                 "{}: update_rule '{}' is not one of linear, gated, delta, gated_delta", who, rule);
  const bool gating = rule == "gated" || rule == "gated_delta";
  const bool delta = rule == "delta" || rule == "gated_delta";
  KILN_CHECK_ARG(node.has_attr("q_num_heads") && node.has_attr("kv_num_heads"),
                 "{}: the q_num_heads and kv_num_heads attributes are required", who);
  LinearShape s;
  s.q_heads = node.attr_int("q_num_heads", 0);
  s.kv_heads = node.attr_int("kv_num_heads", 0);
  KILN_CHECK_ARG(s.q_heads > 0 && s.kv_heads > 0 && s.q_heads % s.kv_heads == 0,
                 "{}: q_num_heads ({}) must be a positive multiple of kv_num_heads ({})", who, s.q_heads, s.kv_heads);
  KILN_CHECK_ARG(ctx.has_input(4) == gating, "{}: update_rule '{}' {} the decay input", who, rule,
                 gating ? "requires" : "forbids");
  KILN_CHECK_ARG(ctx.has_input(5) == delta, "{}: update_rule '{}' {} the beta input", who, rule,
                 delta ? "requires" : "forbids");

  KILN_ASSIGN_OR_RETURN(const Tensor* q, typed_input(ctx, 0, "query"));
  KILN_ASSIGN_OR_RETURN(const Tensor* k, typed_input(ctx, 1, "key"));
  KILN_ASSIGN_OR_RETURN(const Tensor* v, typed_input(ctx, 2, "value"));
  KILN_CHECK_ARG(q->rank() == 3, "{}: query must be [batch, T, q_num_heads * d_k], got {}", who,
                 dims_to_string(q->dims()));
  s.batch = q->dim(0);
  s.len = q->dim(1);
  KILN_RETURN_IF_ERROR(check_packed(who, "key", *k, s));
  KILN_RETURN_IF_ERROR(check_packed(who, "value", *v, s));
  KILN_CHECK_ARG(q->dim(2) % s.q_heads == 0, "{}: query width {} is not divisible by q_num_heads {}", who, q->dim(2),
                 s.q_heads);
  s.dk = q->dim(2) / s.q_heads;
  KILN_CHECK_ARG(k->dim(2) == s.kv_heads * s.dk, "{}: key width {} must be kv_num_heads * d_k = {}", who, k->dim(2),
                 s.kv_heads * s.dk);
  KILN_CHECK_ARG(v->dim(2) % s.kv_heads == 0, "{}: value width {} is not divisible by kv_num_heads {}", who, v->dim(2),
                 s.kv_heads);
  s.dv = v->dim(2) / s.kv_heads;

  std::vector<double> decay, beta;
  if (gating) {
    KILN_ASSIGN_OR_RETURN(const Tensor* t, typed_input(ctx, 4, "decay"));
    KILN_RETURN_IF_ERROR(check_packed(who, "decay", *t, s));
    s.decay_width = t->dim(2);
    KILN_CHECK_ARG(s.decay_width == s.kv_heads || s.decay_width == s.kv_heads * s.dk,
                   "{}: decay width {} must be kv_num_heads ({}) or kv_num_heads * d_k ({})", who, s.decay_width,
                   s.kv_heads, s.kv_heads * s.dk);
    KILN_ASSIGN_OR_RETURN(decay, attn::load_f64(*t));
  }
  if (delta) {
    KILN_ASSIGN_OR_RETURN(const Tensor* t, typed_input(ctx, 5, "beta"));
    KILN_RETURN_IF_ERROR(check_packed(who, "beta", *t, s));
    s.beta_width = t->dim(2);
    KILN_CHECK_ARG(s.beta_width == s.kv_heads || s.beta_width == 1, "{}: beta width {} must be kv_num_heads ({}) or 1",
                   who, s.beta_width, s.kv_heads);
    KILN_ASSIGN_OR_RETURN(beta, attn::load_f64(*t));
  }

  const Dims state_dims = {s.batch, s.kv_heads, s.dk, s.dv};
  DataType state_type = q->dtype();
  std::vector<double> state(static_cast<size_t>(s.batch * s.kv_heads * s.dk * s.dv), 0.0);
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* p, typed_input(ctx, 3, "past_state"));
    KILN_CHECK_ARG(p->dims() == state_dims, "{}: past_state {} must be {}", who, dims_to_string(p->dims()),
                   dims_to_string(state_dims));
    state_type = p->dtype();
    KILN_ASSIGN_OR_RETURN(state, attn::load_f64(*p));
  }
  const float scale_attr = node.attr_float("scale", 0.0f);
  const double scale = scale_attr == 0.0f ? 1.0 / std::sqrt(static_cast<double>(s.dk)) : scale_attr;

  KILN_ASSIGN_OR_RETURN(std::vector<double> qv, attn::load_f64(*q));
  KILN_ASSIGN_OR_RETURN(std::vector<double> kv, attn::load_f64(*k));
  KILN_ASSIGN_OR_RETURN(std::vector<double> vv, attn::load_f64(*v));
  const int64_t group = s.q_heads / s.kv_heads;
  std::vector<double> out(static_cast<size_t>(s.batch * s.len * s.q_heads * s.dv));
  std::vector<double> upd(static_cast<size_t>(s.dv));
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t t = 0; t < s.len; ++t) {
      const int64_t tok = b * s.len + t;
      for (int64_t h = 0; h < s.kv_heads; ++h) {
        double* st = &state[static_cast<size_t>((b * s.kv_heads + h) * s.dk * s.dv)];
        const double* kt = &kv[static_cast<size_t>((tok * s.kv_heads + h) * s.dk)];
        const double* vt = &vv[static_cast<size_t>((tok * s.kv_heads + h) * s.dv)];
        if (gating) {
          for (int64_t i = 0; i < s.dk; ++i) {
            const int64_t col = s.decay_width == s.kv_heads ? h : h * s.dk + i;
            const double g = round_as(kF32, std::exp(decay[static_cast<size_t>(tok * s.decay_width + col)]));
            for (int64_t m = 0; m < s.dv; ++m) st[i * s.dv + m] = round_as(kF32, st[i * s.dv + m] * g);
          }
        }
        for (int64_t m = 0; m < s.dv; ++m) {
          double u = vt[m];
          if (delta) {
            double retrieved = 0;
            for (int64_t i = 0; i < s.dk; ++i) retrieved += st[i * s.dv + m] * kt[i];
            const double bt = beta[static_cast<size_t>(tok * s.beta_width + (s.beta_width == 1 ? 0 : h))];
            u = round_as(kF32, bt * round_as(kF32, u - round_as(kF32, retrieved)));
          }
          upd[static_cast<size_t>(m)] = u;
        }
        for (int64_t i = 0; i < s.dk; ++i) {
          for (int64_t m = 0; m < s.dv; ++m) {
            st[i * s.dv + m] = round_as(kF32, st[i * s.dv + m] + round_as(kF32, kt[i] * upd[static_cast<size_t>(m)]));
          }
        }
      }
      for (int64_t h = 0; h < s.q_heads; ++h) {
        const double* st = &state[static_cast<size_t>((b * s.kv_heads + h / group) * s.dk * s.dv)];
        const double* qt = &qv[static_cast<size_t>((tok * s.q_heads + h) * s.dk)];
        for (int64_t m = 0; m < s.dv; ++m) {
          double acc = 0;
          for (int64_t i = 0; i < s.dk; ++i) acc += qt[i] * st[i * s.dv + m];
          const double o = round_as(kF32, scale * round_as(kF32, acc));
          out[static_cast<size_t>((tok * s.q_heads + h) * s.dv + m)] = round_as(q->dtype(), o);
        }
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, attn::store_as(q->dtype(), {s.batch, s.len, s.q_heads * s.dv}, out));
  ctx.set_output(0, std::move(y));
  if (ctx.wants_output(1)) {
    for (double& x : state) x = round_as(state_type, x);
    KILN_ASSIGN_OR_RETURN(Tensor st, attn::store_as(state_type, state_dims, state));
    ctx.set_output(1, std::move(st));
  }
  return Status::ok();
}

// output: [B, T, q_num_heads * d_v] of query's type; present_state:
// [B, kv_num_heads, d_k, d_v] of past_state's type (query's without it).
Status linear_attention_infer(InferContext& ctx) {
  const int64_t hq = ctx.node().attr_int("q_num_heads", 0);
  const int64_t hkv = ctx.node().attr_int("kv_num_heads", 0);
  const Shape* q = attn::known_shape(ctx, 0);
  const Shape* v = attn::known_shape(ctx, 2);
  Dim batch, len, dk, dv;
  if (q != nullptr && q->rank() == 3) {
    batch = (*q)[0];
    len = (*q)[1];
    dk = attn::div_dim((*q)[2], hq);
  }
  if (v != nullptr && v->rank() == 3) dv = attn::div_dim((*v)[2], hkv);
  const Dim hq_dim = hq > 0 ? Dim(hq) : Dim();
  const Dim hkv_dim = hkv > 0 ? Dim(hkv) : Dim();
  const DataType t = attn::input_dtype(ctx, 0);
  ctx.set_output_type(0, ir::ValueType::tensor(t, Shape({batch, len, attn::mul_dim(hq_dim, dv)})));
  if (ctx.num_outputs() > 1) {
    const DataType st = ctx.has_input(3) ? attn::input_dtype(ctx, 3) : t;
    ctx.set_output_type(1, ir::ValueType::tensor(st, Shape({batch, hkv_dim, dk, dv})));
  }
  return Status::ok();
}

// ---- CausalConvWithState ----------------------------------------------------------

Status causal_conv_kernel(KernelContext& ctx) {
  const std::string who = ctx.node().describe();
  const std::string activation = ctx.node().attr_string("activation", "none");
  KILN_CHECK_ARG(activation == "none" || activation == "silu" || activation == "swish",
                 "{}: activation '{}' is not one of none, silu, swish", who, activation);
  KILN_ASSIGN_OR_RETURN(const Tensor* x, typed_input(ctx, 0, "input"));
  KILN_ASSIGN_OR_RETURN(const Tensor* w, typed_input(ctx, 1, "weight"));
  const DataType t = x->dtype();
  KILN_CHECK_ARG(x->rank() == 3, "{}: input must be [batch, channels, length], got {}", who, dims_to_string(x->dims()));
  const int64_t batch = x->dim(0), channels = x->dim(1), len = x->dim(2);
  KILN_CHECK_ARG(w->dtype() == t, "{}: weight must have the input's element type", who);
  KILN_CHECK_ARG(w->rank() == 3 && w->dim(0) == channels && w->dim(1) == 1 && w->dim(2) >= 1,
                 "{}: weight must be [channels {}, 1, k >= 1], got {}", who, channels, dims_to_string(w->dims()));
  const int64_t k = w->dim(2);
  const int64_t ctx_len = k - 1;
  std::vector<double> bias(static_cast<size_t>(channels), 0.0);
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* bt, typed_input(ctx, 2, "bias"));
    KILN_CHECK_ARG(bt->dtype() == t && bt->dims() == Dims{channels}, "{}: bias must be {}[{}], got {}", who,
                   data_type_name(t), channels, bt->debug_string());
    KILN_ASSIGN_OR_RETURN(bias, attn::load_f64(*bt));
  }
  // padded[b, c, :] = [past_state (or zeros), input]
  const int64_t plen = ctx_len + len;
  std::vector<double> padded(static_cast<size_t>(batch * channels * plen), 0.0);
  KILN_ASSIGN_OR_RETURN(std::vector<double> xv, attn::load_f64(*x));
  std::vector<double> past;
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* p, typed_input(ctx, 3, "past_state"));
    KILN_CHECK_ARG(p->dtype() == t && p->dims() == (Dims{batch, channels, ctx_len}),
                   "{}: past_state must be {}[{}, {}, {}] (k - 1 = {}), got {}", who, data_type_name(t), batch,
                   channels, ctx_len, ctx_len, p->debug_string());
    KILN_ASSIGN_OR_RETURN(past, attn::load_f64(*p));
  }
  for (int64_t bc = 0; bc < batch * channels; ++bc) {
    double* row = &padded[static_cast<size_t>(bc * plen)];
    for (int64_t i = 0; i < ctx_len && !past.empty(); ++i) row[i] = past[static_cast<size_t>(bc * ctx_len + i)];
    for (int64_t i = 0; i < len; ++i) row[ctx_len + i] = xv[static_cast<size_t>(bc * len + i)];
  }
  KILN_ASSIGN_OR_RETURN(std::vector<double> wv, attn::load_f64(*w));
  std::vector<double> out(static_cast<size_t>(batch * channels * len));
  for (int64_t bc = 0; bc < batch * channels; ++bc) {
    const int64_t c = bc % channels;
    const double* row = &padded[static_cast<size_t>(bc * plen)];
    for (int64_t i = 0; i < len; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < k; ++j) acc += wv[static_cast<size_t>(c * k + j)] * row[i + j];
      double y = round_as(t, round_as(t, acc) + bias[static_cast<size_t>(c)]);
      if (activation != "none") {  // SiLU, computed in float32
        const double sig = round_as(kF32, 1.0 / round_as(kF32, 1.0 + round_as(kF32, std::exp(-y))));
        y = round_as(t, round_as(kF32, y * sig));
      }
      out[static_cast<size_t>(bc * len + i)] = y;
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor yt, attn::store_as(t, x->dims(), out));
  ctx.set_output(0, std::move(yt));
  if (ctx.wants_output(1)) {
    std::vector<double> present(static_cast<size_t>(batch * channels * ctx_len));
    for (int64_t bc = 0; bc < batch * channels; ++bc) {
      for (int64_t i = 0; i < ctx_len; ++i) {
        present[static_cast<size_t>(bc * ctx_len + i)] = padded[static_cast<size_t>(bc * plen + len + i)];
      }
    }
    KILN_ASSIGN_OR_RETURN(Tensor st, attn::store_as(t, {batch, channels, ctx_len}, present));
    ctx.set_output(1, std::move(st));
  }
  return Status::ok();
}

// output: the input's type and shape; present_state: [batch, channels, k - 1].
Status causal_conv_infer(InferContext& ctx) {
  const DataType t = attn::input_dtype(ctx, 0);
  const Shape* x = attn::known_shape(ctx, 0);
  const Shape* w = attn::known_shape(ctx, 1);
  ctx.set_output_type(0, ctx.input_type(0));
  if (ctx.num_outputs() > 1) {
    Dim batch, channels, ctx_len;
    if (x != nullptr && x->rank() == 3) {
      batch = (*x)[0];
      channels = (*x)[1];
    }
    if (w != nullptr && w->rank() == 3 && (*w)[2].known() && (*w)[2].value >= 1) ctx_len = Dim((*w)[2].value - 1);
    ctx.set_output_type(1, ir::ValueType::tensor(t, Shape({batch, channels, ctx_len})));
  }
  return Status::ok();
}

}  // namespace

void register_attention_recurrent(Registry& r) {
  r.add({.name = "LinearAttention",
         .domain = "",
         .since_version = 27,
         .min_inputs = 3,
         .max_inputs = 6,
         .min_outputs = 1,
         .max_outputs = 2,
         .kernel = linear_attention_kernel,
         .infer = linear_attention_infer});
  r.add({.name = "CausalConvWithState",
         .domain = "",
         .since_version = 27,
         .min_inputs = 2,
         .max_inputs = 4,
         .min_outputs = 1,
         .max_outputs = 2,
         .kernel = causal_conv_kernel,
         .infer = causal_conv_infer});
}

}  // namespace kiln::ops
