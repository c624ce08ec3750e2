// Attention family, part 2: RotaryEmbedding (opset 23) and SwiGLU (opset 28).
//
// RotaryEmbedding rotates pairs of each head's first rotary_embedding_dim
// features by position-dependent angles given as cos/sin caches:
//   real = cos * x1 - sin * x2,  imag = sin * x1 + cos * x2
// where (x1, x2) are the two halves of the rotated part (or its even and odd
// features when interleaved). Input layouts: [batch, heads, seq, head_size]
// or [batch, seq, heads * head_size] with the num_heads attribute. The caches
// are [max_position, rotary_dim / 2] indexed by position_ids [batch, seq], or
// [batch, seq, rotary_dim / 2] without position_ids (batch and seq may be 1
// and broadcast in both forms).
//
// SwiGLU: Y = A * sigmoid(alpha * A) * B for A, B of identical shapes.
//
// Both round every elementwise step to the input type, as the reference does.
#include <cmath>

#include "ops/attention_internal.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

using attn::round_as;

bool is_rotary_type(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

// The cos/sin caches resolved to one [batch, seq] grid of rows of `half` values.
struct Caches {
  std::vector<double> cos, sin;
  std::vector<int64_t> row;  // per (b, s): element offset of the row in cos/sin
};

Result<Caches> caches_of(const KernelContext& ctx, int64_t batch, int64_t seq, int64_t half) {
  const std::string who = ctx.node().describe();
  KILN_ASSIGN_OR_RETURN(const Tensor* cos_t, ctx.tensor_input(1));
  KILN_ASSIGN_OR_RETURN(const Tensor* sin_t, ctx.tensor_input(2));
  KILN_CHECK_ARG(cos_t->dims() == sin_t->dims(), "{}: cos_cache {} and sin_cache {} must have the same shape", who,
                 dims_to_string(cos_t->dims()), dims_to_string(sin_t->dims()));
  KILN_CHECK_ARG(cos_t->rank() >= 1 && cos_t->dim(cos_t->rank() - 1) == half,
                 "{}: the last dim of cos_cache {} must be rotary_embedding_dim / 2 = {}", who,
                 dims_to_string(cos_t->dims()), half);
  Caches c;
  c.row.resize(static_cast<size_t>(batch * seq));
  // Returns the offset of a [batch, seq] grid of a 2-D index tensor's dims.
  auto grid_index = [&](const Dims& dims, int64_t b, int64_t s) {
    int64_t bi = dims[0] == 1 ? 0 : b;
    int64_t si = dims[1] == 1 ? 0 : s;
    return bi * dims[1] + si;
  };
  auto check_grid = [&](const Dims& dims, const char* what) -> Status {
    KILN_CHECK_ARG((dims[0] == batch || dims[0] == 1) && (dims[1] == seq || dims[1] == 1),
                   "{}: {} {} does not broadcast to [batch {}, seq {}]", who, what, dims_to_string(dims), batch, seq);
    return Status::ok();
  };
  if (ctx.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* ids_t, ctx.tensor_input(3));
    KILN_CHECK_ARG(ids_t->dtype() == DataType::kInt64 && ids_t->rank() == 2,
                   "{}: position_ids must be a 2-D int64 tensor, got {}", who, ids_t->debug_string());
    KILN_CHECK_ARG(cos_t->rank() == 2, "{}: with position_ids, cos_cache must be [max_position, {}], got {}", who, half,
                   dims_to_string(cos_t->dims()));
    KILN_RETURN_IF_ERROR(check_grid(ids_t->dims(), "position_ids"));
    const int64_t max_pos = cos_t->dim(0);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t s = 0; s < seq; ++s) {
        int64_t p = ids_t->data<int64_t>()[grid_index(ids_t->dims(), b, s)];
        KILN_CHECK_ARG(p >= 0 && p < max_pos, "{}: position id {} is outside the cache's [0, {})", who, p, max_pos);
        c.row[static_cast<size_t>(b * seq + s)] = p * half;
      }
    }
  } else {
    KILN_CHECK_ARG(cos_t->rank() == 3, "{}: without position_ids, cos_cache must be [batch, seq, {}], got {}", who,
                   half, dims_to_string(cos_t->dims()));
    KILN_RETURN_IF_ERROR(check_grid({cos_t->dim(0), cos_t->dim(1)}, "cos_cache"));
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t s = 0; s < seq; ++s) {
        c.row[static_cast<size_t>(b * seq + s)] = grid_index({cos_t->dim(0), cos_t->dim(1)}, b, s) * half;
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(c.cos, attn::load_f64(*cos_t));
  KILN_ASSIGN_OR_RETURN(c.sin, attn::load_f64(*sin_t));
  return c;
}

Status rotary_kernel(KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  const std::string who = node.describe();
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  const DataType t = x->dtype();
  KILN_CHECK_ARG(is_rotary_type(t), "{}: input has element type {}, expected float, float16 or bfloat16", who,
                 data_type_name(t));
  for (size_t i = 1; i < 3; ++i) {
    KILN_ASSIGN_OR_RETURN(const Tensor* c, ctx.tensor_input(i));
    KILN_CHECK_ARG(c->dtype() == t, "{}: {} has element type {}, expected the input's {}", who,
                   i == 1 ? "cos_cache" : "sin_cache", data_type_name(c->dtype()), data_type_name(t));
  }
  KILN_CHECK_ARG(x->rank() == 3 || x->rank() == 4, "{}: input must be 3-D or 4-D, got {}", who,
                 dims_to_string(x->dims()));
  const int64_t num_heads_attr = node.attr_int("num_heads", 0);
  const bool packed = x->rank() == 3;
  int64_t batch = x->dim(0), heads, seq, head_size;
  if (packed) {
    KILN_CHECK_ARG(num_heads_attr > 0, "{}: a 3-D input needs a positive num_heads attribute", who);
    KILN_CHECK_ARG(x->dim(2) % num_heads_attr == 0, "{}: hidden size {} is not divisible by num_heads {}", who,
                   x->dim(2), num_heads_attr);
    heads = num_heads_attr;
    seq = x->dim(1);
    head_size = x->dim(2) / heads;
  } else {
    heads = x->dim(1);
    seq = x->dim(2);
    head_size = x->dim(3);
    KILN_CHECK_ARG(num_heads_attr == 0 || num_heads_attr == heads, "{}: num_heads {} does not match input {}", who,
                   num_heads_attr, dims_to_string(x->dims()));
  }
  int64_t rot = node.attr_int("rotary_embedding_dim", 0);
  if (rot == 0) rot = head_size;
  KILN_CHECK_ARG(rot > 0 && rot <= head_size && rot % 2 == 0,
                 "{}: rotary_embedding_dim {} must be even and in (0, head_size {}]", who, rot, head_size);
  const int64_t half = rot / 2;
  const bool interleaved = node.attr_int("interleaved", 0) != 0;
  KILN_ASSIGN_OR_RETURN(Caches c, caches_of(ctx, batch, seq, half));
  KILN_ASSIGN_OR_RETURN(std::vector<double> in, attn::load_f64(*x));
  std::vector<double> out = in;  // features past rotary_embedding_dim pass through
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t s = 0; s < seq; ++s) {
      const int64_t crow = c.row[static_cast<size_t>(b * seq + s)];
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t base =
            packed ? (b * seq + s) * heads * head_size + h * head_size : ((b * heads + h) * seq + s) * head_size;
        for (int64_t m = 0; m < half; ++m) {
          const size_t i1 = static_cast<size_t>(base + (interleaved ? 2 * m : m));
          const size_t i2 = static_cast<size_t>(base + (interleaved ? 2 * m + 1 : m + half));
          const double cv = c.cos[static_cast<size_t>(crow + m)];
          const double sv = c.sin[static_cast<size_t>(crow + m)];
          const double x1 = in[i1], x2 = in[i2];
          out[i1] = round_as(t, round_as(t, cv * x1) - round_as(t, sv * x2));
          out[i2] = round_as(t, round_as(t, sv * x1) + round_as(t, cv * x2));
        }
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, attn::store_as(t, x->dims(), out));
  ctx.set_output(0, std::move(y));
  return Status::ok();
}

Status same_as_input0_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::ok();
}

Status swiglu_kernel(KernelContext& ctx) {
  const std::string who = ctx.node().describe();
  KILN_ASSIGN_OR_RETURN(const Tensor* a, attn::float_input(ctx, 0, "A"));
  KILN_ASSIGN_OR_RETURN(const Tensor* bt, attn::float_input(ctx, 1, "B"));
  KILN_CHECK_ARG(a->dtype() == bt->dtype(), "{}: A ({}) and B ({}) must have the same element type", who,
                 data_type_name(a->dtype()), data_type_name(bt->dtype()));
  KILN_CHECK_ARG(a->dims() == bt->dims(), "{}: A {} and B {} must have identical shapes (no broadcasting)", who,
                 dims_to_string(a->dims()), dims_to_string(bt->dims()));
  const DataType t = a->dtype();
  // alpha is applied in the input type (numpy casts the Python scalar to it).
  const double alpha = round_as(t, static_cast<double>(ctx.node().attr_float("alpha", 1.0f)));
  KILN_ASSIGN_OR_RETURN(std::vector<double> av, attn::load_f64(*a));
  KILN_ASSIGN_OR_RETURN(std::vector<double> bv, attn::load_f64(*bt));
  std::vector<double> y(av.size());
  for (size_t i = 0; i < av.size(); ++i) {
    double e = round_as(t, std::exp(round_as(t, -alpha * av[i])));
    double sig = round_as(t, 1.0 / round_as(t, 1.0 + e));
    y[i] = round_as(t, round_as(t, av[i] * sig) * bv[i]);
  }
  KILN_ASSIGN_OR_RETURN(Tensor out, attn::store_as(t, a->dims(), y));
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

}  // namespace

void register_attention_rotary(Registry& r) {
  r.add({.name = "RotaryEmbedding",
         .domain = "",
         .since_version = 23,
         .min_inputs = 3,
         .max_inputs = 4,
         .kernel = rotary_kernel,
         .infer = same_as_input0_infer});
  r.add({.name = "SwiGLU",
         .domain = "",
         .since_version = 28,
         .min_inputs = 2,
         .max_inputs = 2,
         .kernel = swiglu_kernel,
         .infer = same_as_input0_infer});
}

}  // namespace kiln::ops
