// Op family: attention. Attention (here), RotaryEmbedding and SwiGLU
// (attention_rotary.cc), LinearAttention and CausalConvWithState
// (attention_recurrent.cc), FlexAttention (attention_flex.cc).
//
// Attention (opsets 23-25): scaled dot-product attention over 3-D packed
// [batch, seq, heads * head_size] or 4-D [batch, heads, seq, head_size]
// inputs, with grouped-query heads, an optional boolean or additive mask, an
// offset-aware (bottom-right) causal mask, sliding windows (25), an internal
// KV cache (past/present) or an external one (nonpad_kv_seqlen, 24), softcap
// and the qk_matmul_output debug output. Per query row, the steps follow the
// spec's function body, rounding to T1 where it does:
//   s_j  = (q * sqrt(scale)) . (k_j * sqrt(scale))         QK MatMul
//   s_j  = softcap * tanh(s_j / softcap)  if softcap > 0
//   x_j  = s_j + bias_j                                     mask/causal/window/padding
//   p    = softmax(x) in softmax_precision, zero if every bias_j is -inf
//   y    = sum_j p_j v_j
#include <cmath>
#include <limits>

#include "ops/attention_internal.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace attn {

Result<std::vector<double>> load_f64(const Tensor& t) {
  KILN_ASSIGN_OR_RETURN(Tensor d, to_float64(t));
  return std::vector<double>(d.data<double>(), d.data<double>() + d.numel());
}

Result<Tensor> store_as(DataType dtype, Dims dims, const std::vector<double>& values) {
  KILN_ASSIGN_OR_RETURN(Tensor d, Tensor::allocate(DataType::kFloat64, std::move(dims)));
  std::copy(values.begin(), values.end(), d.data<double>());
  return cast_tensor(d, dtype);
}

Result<const Tensor*> float_input(const KernelContext& ctx, size_t i, const char* name) {
  KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
  if (!is_attention_float(t->dtype())) {
    return invalid_argument("{}: input '{}' has element type {}, expected float16, bfloat16, float or double",
                            ctx.node().describe(), name, data_type_name(t->dtype()));
  }
  return t;
}

const Shape* known_shape(const InferContext& ctx, size_t i) {
  const ir::ValueType& t = ctx.input_type(i);
  return t.is_tensor() && t.shape.rank_known() ? &t.shape : nullptr;
}

DataType input_dtype(const InferContext& ctx, size_t i) {
  const ir::ValueType& t = ctx.input_type(i);
  return t.is_tensor() ? t.dtype : DataType::kUndefined;
}

Dim mul_dim(const Dim& a, const Dim& b) { return a.known() && b.known() ? Dim(a.value * b.value) : Dim(); }
Dim add_dim(const Dim& a, const Dim& b) { return a.known() && b.known() ? Dim(a.value + b.value) : Dim(); }
Dim div_dim(const Dim& a, int64_t b) { return a.known() && b > 0 && a.value % b == 0 ? Dim(a.value / b) : Dim(); }

}  // namespace attn

namespace {

using attn::round_as;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Sizes of one Attention call, heads unpacked.
struct Geometry {
  bool packed = false;  // 3-D inputs
  int64_t batch = 0, q_heads = 0, kv_heads = 0;
  int64_t q_len = 0, kv_len = 0, past_len = 0, total_len = 0;
  int64_t head_size = 0, v_head_size = 0;
};

struct Options {
  double sqrt_scale = 0;  // rounded to T1
  double softcap = 0;
  int64_t mode = 0;
  bool causal = false;
  int64_t left_window = -1, right_window = -1;
  DataType t1 = DataType::kUndefined;
  DataType softmax_type = DataType::kUndefined;
};

Result<DataType> softmax_precision_type(const ir::Node& node, DataType t1) {
  if (!node.has_attr("softmax_precision")) return t1;
  int64_t p = node.attr_int("softmax_precision", 0);
  auto t = data_type_from_int(p);
  if (!t || !attn::is_attention_float(*t)) {
    return invalid_argument(
        "{}: softmax_precision {} is not one of 1 (float), 10 (float16), 11 (double), 16 (bfloat16)", node.describe(),
        p);
  }
  return *t;
}

// Reads the head layout of Q, K, V (and checks it against each other).
Result<Geometry> geometry_of(const ir::Node& node, const Tensor& q, const Tensor& k, const Tensor& v) {
  Geometry g;
  const std::string who = node.describe();
  KILN_CHECK_ARG(q.rank() == 3 || q.rank() == 4, "{}: Q must have rank 3 or 4, got {}", who, dims_to_string(q.dims()));
  KILN_CHECK_ARG(k.rank() == q.rank() && v.rank() == q.rank(), "{}: Q {}, K {} and V {} must have the same rank", who,
                 dims_to_string(q.dims()), dims_to_string(k.dims()), dims_to_string(v.dims()));
  const bool has_q_heads = node.has_attr("q_num_heads");
  const bool has_kv_heads = node.has_attr("kv_num_heads");
  g.batch = q.dim(0);
  KILN_CHECK_ARG(k.dim(0) == g.batch && v.dim(0) == g.batch, "{}: Q, K and V must have the same batch size", who);
  if (q.rank() == 3) {
    g.packed = true;
    KILN_CHECK_ARG(has_q_heads && has_kv_heads, "{}: 3-D inputs need the q_num_heads and kv_num_heads attributes", who);
    g.q_heads = node.attr_int("q_num_heads", 0);
    g.kv_heads = node.attr_int("kv_num_heads", 0);
    KILN_CHECK_ARG(g.q_heads > 0 && g.kv_heads > 0, "{}: q_num_heads ({}) and kv_num_heads ({}) must be positive", who,
                   g.q_heads, g.kv_heads);
    KILN_CHECK_ARG(q.dim(2) % g.q_heads == 0, "{}: Q hidden size {} is not divisible by q_num_heads {}", who, q.dim(2),
                   g.q_heads);
    KILN_CHECK_ARG(k.dim(2) % g.kv_heads == 0 && v.dim(2) % g.kv_heads == 0,
                   "{}: K hidden size {} and V hidden size {} must be divisible by kv_num_heads {}", who, k.dim(2),
                   v.dim(2), g.kv_heads);
    g.q_len = q.dim(1);
    g.kv_len = k.dim(1);
    g.head_size = q.dim(2) / g.q_heads;
    KILN_CHECK_ARG(k.dim(2) / g.kv_heads == g.head_size, "{}: K head size {} differs from Q head size {}", who,
                   k.dim(2) / g.kv_heads, g.head_size);
    KILN_CHECK_ARG(v.dim(1) == g.kv_len, "{}: K and V sequence lengths differ ({} vs {})", who, g.kv_len, v.dim(1));
    g.v_head_size = v.dim(2) / g.kv_heads;
  } else {
    g.q_heads = q.dim(1);
    g.kv_heads = k.dim(1);
    g.q_len = q.dim(2);
    g.kv_len = k.dim(2);
    g.head_size = q.dim(3);
    g.v_head_size = v.dim(3);
    KILN_CHECK_ARG(!has_q_heads || node.attr_int("q_num_heads", 0) == g.q_heads,
                   "{}: q_num_heads {} does not match Q {}", who, node.attr_int("q_num_heads", 0),
                   dims_to_string(q.dims()));
    KILN_CHECK_ARG(!has_kv_heads || node.attr_int("kv_num_heads", 0) == g.kv_heads,
                   "{}: kv_num_heads {} does not match K {}", who, node.attr_int("kv_num_heads", 0),
                   dims_to_string(k.dims()));
    KILN_CHECK_ARG(k.dim(3) == g.head_size, "{}: K head size {} differs from Q head size {}", who, k.dim(3),
                   g.head_size);
    KILN_CHECK_ARG(v.dim(1) == g.kv_heads && v.dim(2) == g.kv_len,
                   "{}: V {} does not match K {} in heads and sequence length", who, dims_to_string(v.dims()),
                   dims_to_string(k.dims()));
  }
  if (g.kv_heads == 0) {
    KILN_CHECK_ARG(g.q_heads == 0, "{}: K and V have no heads but Q has {}", who, g.q_heads);
  } else {
    KILN_CHECK_ARG(g.q_heads % g.kv_heads == 0, "{}: q_num_heads {} is not a multiple of kv_num_heads {}", who,
                   g.q_heads, g.kv_heads);
  }
  return g;
}

// Reads the attributes, checking their values.
Result<Options> options_of(const ir::Node& node, DataType t1, const Geometry& g) {
  Options o;
  const std::string who = node.describe();
  o.t1 = t1;
  KILN_ASSIGN_OR_RETURN(o.softmax_type, softmax_precision_type(node, t1));
  double scale = node.has_attr("scale") ? static_cast<double>(node.attr_float("scale", 0))
                                        : 1.0 / std::sqrt(static_cast<double>(g.head_size));
  KILN_CHECK_ARG(!(scale < 0), "{}: scale {} must not be negative (Q and K are each scaled by sqrt(scale))", who,
                 scale);
  o.sqrt_scale = round_as(t1, std::sqrt(scale));
  o.softcap = round_as(t1, static_cast<double>(node.attr_float("softcap", 0)));  // Cast(softcap, T1)
  o.mode = node.attr_int("qk_matmul_output_mode", 0);
  KILN_CHECK_ARG(o.mode >= 0 && o.mode <= 3, "{}: qk_matmul_output_mode {} is not 0, 1, 2 or 3", who, o.mode);
  int64_t causal = node.attr_int("is_causal", 0);
  KILN_CHECK_ARG(causal == 0 || causal == 1, "{}: is_causal must be 0 or 1, got {}", who, causal);
  o.causal = causal == 1;
  if (node.opset() >= 25) {
    o.left_window = node.attr_int("left_window_size", -1);
    o.right_window = node.attr_int("right_window_size", -1);
    KILN_CHECK_ARG(o.left_window >= -1 && o.right_window >= -1,
                   "{}: left_window_size ({}) and right_window_size ({}) must be -1 or nonnegative", who, o.left_window,
                   o.right_window);
  }
  return o;
}

// The additive mask input, right-aligned against [batch, q_heads, q_len,
// total_len]; its last dim may be shorter than total_len (the missing keys
// are masked).
struct Mask {
  bool present = false;
  bool boolean = false;
  std::vector<double> values;
  std::vector<int64_t> strides;  // per target axis (batch, head, query), 0 when broadcast
  int64_t last = 0;              // length of the key axis

  // The mask's bias for one element.
  double bias(int64_t b, int64_t h, int64_t i, int64_t j) const {
    if (!present) return 0;
    if (j >= last) return kNegInf;
    double v = values[static_cast<size_t>(b * strides[0] + h * strides[1] + i * strides[2] + j)];
    return boolean ? (v != 0 ? 0.0 : kNegInf) : v;
  }
};

Result<Mask> mask_of(const KernelContext& ctx, const Geometry& g) {
  Mask m;
  if (!ctx.has_input(3)) return m;
  KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(3));
  const std::string who = ctx.node().describe();
  KILN_CHECK_ARG(t->dtype() == DataType::kBool || is_integer(t->dtype()) || attn::is_attention_float(t->dtype()),
                 "{}: attn_mask has unsupported element type {}", who, data_type_name(t->dtype()));
  const int64_t rank = t->rank();
  KILN_CHECK_ARG(rank >= 1 && rank <= 4, "{}: attn_mask must have rank 1 to 4, got {}", who, dims_to_string(t->dims()));
  m.present = true;
  m.boolean = t->dtype() == DataType::kBool;
  m.last = t->dim(rank - 1);
  KILN_CHECK_ARG(m.last <= g.total_len, "{}: attn_mask {} is longer than the {} keys", who, dims_to_string(t->dims()),
                 g.total_len);
  const Dims target = {g.batch, g.q_heads, g.q_len};
  std::vector<int64_t> strides = strides_of(t->dims());
  m.strides.assign(3, 0);
  for (int64_t a = 0; a < 3; ++a) {
    int64_t md = a - (3 - (rank - 1));  // the mask axis aligned with target axis a
    if (md < 0) continue;
    int64_t size = t->dim(md);
    KILN_CHECK_ARG(size == 1 || size == target[static_cast<size_t>(a)],
                   "{}: attn_mask {} does not broadcast to [{}, {}, {}, {}]", who, dims_to_string(t->dims()), g.batch,
                   g.q_heads, g.q_len, g.total_len);
    m.strides[static_cast<size_t>(a)] = size == 1 ? 0 : strides[static_cast<size_t>(md)];
  }
  KILN_ASSIGN_OR_RETURN(m.values, attn::load_f64(*t));
  return m;
}

// K or V with the cache prepended: [batch, kv_heads, total_len, size].
Result<std::vector<double>> with_past(const Tensor& x, const Tensor* past, const Geometry& g, int64_t size) {
  KILN_ASSIGN_OR_RETURN(std::vector<double> cur, attn::load_f64(x));
  std::vector<double> past_v;
  if (past != nullptr) {
    KILN_ASSIGN_OR_RETURN(past_v, attn::load_f64(*past));
  }
  std::vector<double> out(static_cast<size_t>(g.batch * g.kv_heads * g.total_len * size));
  for (int64_t b = 0; b < g.batch; ++b) {
    for (int64_t h = 0; h < g.kv_heads; ++h) {
      for (int64_t s = 0; s < g.total_len; ++s) {
        for (int64_t d = 0; d < size; ++d) {
          double v;
          if (s < g.past_len) {
            v = past_v[static_cast<size_t>(((b * g.kv_heads + h) * g.past_len + s) * size + d)];
          } else if (g.packed) {
            int64_t t = s - g.past_len;
            v = cur[static_cast<size_t>((b * g.kv_len + t) * g.kv_heads * size + h * size + d)];
          } else {
            int64_t t = s - g.past_len;
            v = cur[static_cast<size_t>(((b * g.kv_heads + h) * g.kv_len + t) * size + d)];
          }
          out[static_cast<size_t>(((b * g.kv_heads + h) * g.total_len + s) * size + d)] = v;
        }
      }
    }
  }
  return out;
}

// Softmax of one row in the precision of `p`, with the reference's convention
// for a row of -inf (all zero) and NaN propagation.
void softmax_row(std::vector<double>& x, DataType p) {
  double m = kNegInf;
  for (double v : x) {
    if (std::isnan(v)) {
      m = v;
      break;
    }
    m = std::max(m, v);
  }
  const double shift = m == kNegInf ? 0.0 : m;
  double sum = 0;
  for (double& v : x) {
    v = round_as(p, std::exp(round_as(p, v - shift)));
    sum += v;
  }
  sum = round_as(p, sum);
  if (sum == 0) sum = 1;
  for (double& v : x) v = round_as(p, v / sum);
}

Status attention_kernel(KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  const std::string who = node.describe();
  KILN_ASSIGN_OR_RETURN(const Tensor* q, attn::float_input(ctx, 0, "Q"));
  KILN_ASSIGN_OR_RETURN(const Tensor* k, attn::float_input(ctx, 1, "K"));
  KILN_ASSIGN_OR_RETURN(const Tensor* v, attn::float_input(ctx, 2, "V"));
  const DataType t1 = q->dtype();
  KILN_CHECK_ARG(k->dtype() == t1, "{}: K ({}) must have Q's element type ({})", who, data_type_name(k->dtype()),
                 data_type_name(t1));
  KILN_ASSIGN_OR_RETURN(Geometry g, geometry_of(node, *q, *k, *v));

  // Internal cache.
  const Tensor* past_key = nullptr;
  const Tensor* past_value = nullptr;
  KILN_CHECK_ARG(ctx.has_input(4) == ctx.has_input(5), "{}: past_key and past_value must be given together", who);
  if (ctx.has_input(4)) {
    KILN_ASSIGN_OR_RETURN(past_key, attn::float_input(ctx, 4, "past_key"));
    KILN_ASSIGN_OR_RETURN(past_value, attn::float_input(ctx, 5, "past_value"));
    KILN_CHECK_ARG(past_key->dtype() == t1 && past_value->dtype() == v->dtype(),
                   "{}: past_key/past_value must have the element types of K/V", who);
    KILN_CHECK_ARG(past_key->rank() == 4 && past_value->rank() == 4, "{}: past_key {} and past_value {} must be 4-D",
                   who, dims_to_string(past_key->dims()), dims_to_string(past_value->dims()));
    g.past_len = past_key->dim(2);
    KILN_CHECK_ARG(past_key->dims() == (Dims{g.batch, g.kv_heads, g.past_len, g.head_size}),
                   "{}: past_key {} must be [batch {}, kv_heads {}, past_len, head_size {}]", who,
                   dims_to_string(past_key->dims()), g.batch, g.kv_heads, g.head_size);
    KILN_CHECK_ARG(past_value->dims() == (Dims{g.batch, g.kv_heads, g.past_len, g.v_head_size}),
                   "{}: past_value {} must be [batch {}, kv_heads {}, past_len {}, v_head_size {}]", who,
                   dims_to_string(past_value->dims()), g.batch, g.kv_heads, g.past_len, g.v_head_size);
  }
  g.total_len = g.past_len + g.kv_len;

  // External cache: per-batch count of valid keys.
  std::vector<int64_t> nonpad;
  if (ctx.opset() >= 24 && ctx.has_input(6)) {
    KILN_CHECK_ARG(past_key == nullptr, "{}: nonpad_kv_seqlen cannot be combined with past_key/past_value", who);
    KILN_ASSIGN_OR_RETURN(const Tensor* n, ctx.tensor_input(6));
    KILN_CHECK_ARG(n->dtype() == DataType::kInt64 && n->dims() == Dims{g.batch},
                   "{}: nonpad_kv_seqlen must be int64 [{}], got {}", who, g.batch, n->debug_string());
    nonpad.assign(n->data<int64_t>(), n->data<int64_t>() + n->numel());
    for (int64_t len : nonpad) {
      KILN_CHECK_ARG(len >= 0 && len <= g.total_len, "{}: nonpad_kv_seqlen value {} is outside [0, {}]", who, len,
                     g.total_len);
    }
  }

  KILN_ASSIGN_OR_RETURN(Options o, options_of(node, t1, g));
  KILN_ASSIGN_OR_RETURN(Mask mask, mask_of(ctx, g));
  KILN_ASSIGN_OR_RETURN(std::vector<double> keys, with_past(*k, past_key, g, g.head_size));
  KILN_ASSIGN_OR_RETURN(std::vector<double> values, with_past(*v, past_value, g, g.v_head_size));
  KILN_ASSIGN_OR_RETURN(std::vector<double> queries, attn::load_f64(*q));

  if (ctx.wants_output(1)) {
    KILN_ASSIGN_OR_RETURN(Tensor pk, attn::store_as(t1, {g.batch, g.kv_heads, g.total_len, g.head_size}, keys));
    ctx.set_output(1, std::move(pk));
  }
  if (ctx.wants_output(2)) {
    KILN_ASSIGN_OR_RETURN(Tensor pv,
                          attn::store_as(v->dtype(), {g.batch, g.kv_heads, g.total_len, g.v_head_size}, values));
    ctx.set_output(2, std::move(pv));
  }

  for (double& x : keys) x = round_as(t1, x * o.sqrt_scale);
  const int64_t group = g.kv_heads == 0 ? 1 : g.q_heads / g.kv_heads;
  const int64_t d = g.head_size;
  const int64_t s_tot = g.total_len;
  std::vector<double> y(static_cast<size_t>(g.batch * g.q_heads * g.q_len * g.v_head_size));
  std::vector<double> qk(ctx.wants_output(3) ? static_cast<size_t>(g.batch * g.q_heads * g.q_len * s_tot) : 0);
  std::vector<double> qs(static_cast<size_t>(d)), bias(static_cast<size_t>(s_tot)), row(static_cast<size_t>(s_tot));

  for (int64_t b = 0; b < g.batch; ++b) {
    // The causal/window frontier's offset: keys before this query block.
    const int64_t offset = !nonpad.empty() ? nonpad[static_cast<size_t>(b)] - g.q_len : g.past_len;
    for (int64_t h = 0; h < g.q_heads; ++h) {
      const int64_t kvh = h / group;
      for (int64_t i = 0; i < g.q_len; ++i) {
        for (int64_t e = 0; e < d; ++e) {
          size_t at = g.packed ? static_cast<size_t>((b * g.q_len + i) * g.q_heads * d + h * d + e)
                               : static_cast<size_t>(((b * g.q_heads + h) * g.q_len + i) * d + e);
          qs[static_cast<size_t>(e)] = round_as(t1, queries[at] * o.sqrt_scale);
        }
        bool all_masked = true;
        for (int64_t j = 0; j < s_tot; ++j) {
          double bj = mask.bias(b, h, i, j);
          const int64_t diff = i + offset - j;  // query position minus key position
          if (o.causal && diff < 0) bj = kNegInf;
          if (o.left_window >= 0 && diff > o.left_window) bj = kNegInf;
          if (o.right_window >= 0 && -diff > o.right_window) bj = kNegInf;
          if (!nonpad.empty() && j >= nonpad[static_cast<size_t>(b)]) bj = kNegInf;
          bj = round_as(t1, bj);
          bias[static_cast<size_t>(j)] = bj;
          all_masked = all_masked && bj == kNegInf;
        }
        const size_t qk_row = static_cast<size_t>(((b * g.q_heads + h) * g.q_len + i) * s_tot);
        for (int64_t j = 0; j < s_tot; ++j) {
          const double* kj = &keys[static_cast<size_t>(((b * g.kv_heads + kvh) * s_tot + j) * d)];
          double s = 0;
          for (int64_t e = 0; e < d; ++e) s += qs[static_cast<size_t>(e)] * kj[e];
          s = round_as(t1, s);
          if (o.mode == 0 && !qk.empty()) qk[qk_row + static_cast<size_t>(j)] = s;
          if (o.softcap > 0) {
            s = round_as(t1, round_as(t1, std::tanh(round_as(t1, s / o.softcap))) * o.softcap);
          }
          if (o.mode == 1 && !qk.empty()) qk[qk_row + static_cast<size_t>(j)] = s;
          s = round_as(t1, s + bias[static_cast<size_t>(j)]);
          if (o.mode == 2 && !qk.empty()) qk[qk_row + static_cast<size_t>(j)] = s;
          row[static_cast<size_t>(j)] = round_as(o.softmax_type, s);
        }
        softmax_row(row, o.softmax_type);
        for (int64_t j = 0; j < s_tot; ++j) {
          double p = all_masked ? 0.0 : round_as(t1, row[static_cast<size_t>(j)]);
          row[static_cast<size_t>(j)] = p;
          if (o.mode == 3 && !qk.empty()) qk[qk_row + static_cast<size_t>(j)] = p;
        }
        for (int64_t e = 0; e < g.v_head_size; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < s_tot; ++j) {
            acc += row[static_cast<size_t>(j)] *
                   values[static_cast<size_t>(((b * g.kv_heads + kvh) * s_tot + j) * g.v_head_size + e)];
          }
          size_t at = g.packed
                          ? static_cast<size_t>((b * g.q_len + i) * g.q_heads * g.v_head_size + h * g.v_head_size + e)
                          : static_cast<size_t>(((b * g.q_heads + h) * g.q_len + i) * g.v_head_size + e);
          y[at] = round_as(t1, acc);
        }
      }
    }
  }

  Dims y_dims =
      g.packed ? Dims{g.batch, g.q_len, g.q_heads * g.v_head_size} : Dims{g.batch, g.q_heads, g.q_len, g.v_head_size};
  KILN_ASSIGN_OR_RETURN(Tensor yt, attn::store_as(t1, y_dims, y));
  ctx.set_output(0, std::move(yt));
  if (!qk.empty()) {
    KILN_ASSIGN_OR_RETURN(Tensor qt, attn::store_as(t1, {g.batch, g.q_heads, g.q_len, s_tot}, qk));
    ctx.set_output(3, std::move(qt));
  }
  return Status::ok();
}

// Shape inference: Y is [B, Hq, Sq, Dv] (4-D) or [B, Sq, Hq * Dv] (3-D);
// present_key/value are [B, Hkv, past + Skv, D]; qk_matmul_output is
// [B, Hq, Sq, past + Skv].
Status attention_infer(InferContext& ctx) {
  const ir::Node& node = ctx.node();
  const DataType t1 = attn::input_dtype(ctx, 0);
  const DataType t2 = attn::input_dtype(ctx, 2);
  const Shape* q = attn::known_shape(ctx, 0);
  const Shape* k = attn::known_shape(ctx, 1);
  const Shape* v = attn::known_shape(ctx, 2);
  const Shape* past = ctx.has_input(4) ? attn::known_shape(ctx, 4) : nullptr;
  for (const Shape* s : {q, k, v}) {
    if (s != nullptr && s->rank() != 3 && s->rank() != 4) {
      return invalid_argument("{}: Q, K and V must have rank 3 or 4, got {}", node.describe(), s->to_string());
    }
  }
  const int64_t hq_attr = node.attr_int("q_num_heads", 0);
  const int64_t hkv_attr = node.attr_int("kv_num_heads", 0);
  Dim batch, hq, hkv, sq, skv, dk, dv;
  if (q != nullptr) {
    batch = (*q)[0];
    if (q->rank() == 4) {
      hq = (*q)[1];
      sq = (*q)[2];
      dk = (*q)[3];
    } else {
      hq = hq_attr > 0 ? Dim(hq_attr) : Dim();
      sq = (*q)[1];
      dk = attn::div_dim((*q)[2], hq_attr);
    }
  }
  if (k != nullptr) {
    skv = (*k)[k->rank() - 2];
    hkv = k->rank() == 4 ? (*k)[1] : (hkv_attr > 0 ? Dim(hkv_attr) : Dim());
  }
  if (v != nullptr) dv = v->rank() == 4 ? (*v)[3] : attn::div_dim((*v)[2], hkv_attr);
  Dim past_len = ctx.has_input(4) ? (past != nullptr && past->rank() == 4 ? (*past)[2] : Dim()) : Dim(0);
  Dim total = attn::add_dim(past_len, skv);
  const bool packed = q != nullptr && q->rank() == 3;
  Shape y = q == nullptr ? Shape::unknown_rank()
            : packed     ? Shape({batch, sq, attn::mul_dim(hq, dv)})
                         : Shape({batch, hq, sq, dv});
  ctx.set_output_type(0, ir::ValueType::tensor(t1, y));
  if (ctx.num_outputs() > 1) ctx.set_output_type(1, ir::ValueType::tensor(t1, Shape({batch, hkv, total, dk})));
  if (ctx.num_outputs() > 2) ctx.set_output_type(2, ir::ValueType::tensor(t2, Shape({batch, hkv, total, dv})));
  if (ctx.num_outputs() > 3) ctx.set_output_type(3, ir::ValueType::tensor(t1, Shape({batch, hq, sq, total})));
  return Status::ok();
}

}  // namespace

void register_attention_core(Registry& r) {
  r.add({.name = "Attention",
         .domain = "",
         .since_version = 23,
         .until_version = 23,
         .min_inputs = 3,
         .max_inputs = 6,
         .min_outputs = 1,
         .max_outputs = 4,
         .kernel = attention_kernel,
         .infer = attention_infer});
  r.add({.name = "Attention",
         .domain = "",
         .since_version = 24,
         .min_inputs = 3,
         .max_inputs = 7,
         .min_outputs = 1,
         .max_outputs = 4,
         .kernel = attention_kernel,
         .infer = attention_infer});
}

void register_attention(Registry& r) {
  register_attention_core(r);
  register_attention_rotary(r);
  register_attention_recurrent(r);
  register_attention_flex(r);
}

}  // namespace kiln::ops
