// Part of the loss family (register_loss): MaxUnpool and TensorScatter, the
// ops that scatter elements into a larger tensor. Both move elements
// generically (copy_elements), so every element type works.
#include <string>

#include "core/error.h"
#include "ops/loss_internal.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

// ---- MaxUnpool ---------------------------------------------------------------

// kernel_shape, strides and pads of MaxUnpool for `spatial` spatial axes, validated.
struct UnpoolGeometry {
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> pads;  // begins then ends
};

Result<UnpoolGeometry> unpool_geometry(const ir::Node& node, int64_t spatial) {
  UnpoolGeometry g;
  auto n = static_cast<size_t>(spatial);
  g.kernel = node.attr_ints("kernel_shape");
  g.strides = node.attr_ints("strides", std::vector<int64_t>(n, 1));
  g.pads = node.attr_ints("pads", std::vector<int64_t>(2 * n, 0));
  if (g.kernel.size() != n) {
    return invalid_argument("kernel_shape has {} values, expected {} (one per spatial axis)", g.kernel.size(), n);
  }
  if (g.strides.size() != n) return invalid_argument("strides has {} values, expected {}", g.strides.size(), n);
  if (g.pads.size() != 2 * n) return invalid_argument("pads has {} values, expected {}", g.pads.size(), 2 * n);
  for (size_t i = 0; i < n; ++i) {
    if (g.kernel[i] <= 0) return invalid_argument("kernel_shape values must be positive, got {}", g.kernel[i]);
    if (g.strides[i] <= 0) return invalid_argument("strides must be positive, got {}", g.strides[i]);
  }
  for (int64_t p : g.pads) {
    if (p < 0) return invalid_argument("pads must not be negative, got {}", p);
  }
  return g;
}

// The output size MaxPool's inverse implies: (in - 1) * stride - pads + kernel per spatial axis.
Result<int64_t> unpool_dim(const UnpoolGeometry& g, size_t axis, int64_t in) {
  size_t n = g.kernel.size();
  int64_t d = (in - 1) * g.strides[axis] - (g.pads[axis] + g.pads[n + axis]) + g.kernel[axis];
  if (in > 0 && d < 0) return invalid_argument("spatial axis {} would have negative size {}", axis, d);
  return in == 0 ? int64_t{0} : d;
}

// Indices address the implied (unpadded) output as flat row-major offsets over
// all axes, batch and channel included; with output_shape, that tensor is
// placed at the origin of a possibly larger zero tensor (ONNX's reference).
Status max_unpool_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* ind, ctx.tensor_input(1));
  if (x->rank() < 3) return ctx.error(invalid_argument("X must have shape (N, C, D1..Dn), got {}", x->debug_string()));
  if (ind->dtype() != DataType::kInt64 || ind->dims() != x->dims()) {
    return ctx.error(invalid_argument("I must be int64 with X's shape {}, got {}", dims_to_string(x->dims()),
                                      ind->debug_string()));
  }
  auto g = unpool_geometry(ctx.node(), x->rank() - 2);
  if (!g.is_ok()) return ctx.error(g.status());
  Dims implied{x->dim(0), x->dim(1)};
  for (size_t i = 0; i + 2 < x->dims().size(); ++i) {
    auto d = unpool_dim(*g, i, x->dims()[i + 2]);
    if (!d.is_ok()) return ctx.error(d.status());
    implied.push_back(*d);
  }
  Dims out_dims = implied;
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* os, ctx.tensor_input(2));
    auto v = to_int64_vector(*os);
    if (!v.is_ok()) return ctx.error(v.status().with_context("output_shape"));
    if (v->size() != implied.size()) {
      return ctx.error(invalid_argument("output_shape {} must have {} values", dims_to_string(*v), implied.size()));
    }
    for (size_t i = 0; i < implied.size(); ++i) {
      if ((*v)[i] < implied[i]) {
        return ctx.error(invalid_argument("output_shape {} is smaller than the unpooled shape {}",
                                          dims_to_string(*v), dims_to_string(implied)));
      }
    }
    out_dims = *v;
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, x->dtype(), out_dims));
  KILN_ASSIGN_OR_RETURN(int64_t implied_numel, checked_numel(implied));
  std::vector<int64_t> out_strides = strides_of(out_dims);
  const int64_t* idx = ind->data<int64_t>();
  for (int64_t e = 0; e < x->numel(); ++e) {
    int64_t flat = idx[e];
    if (flat < 0 || flat >= implied_numel) {
      return ctx.error(out_of_range("index {} at element {} is outside the unpooled tensor {}", flat, e,
                                    dims_to_string(implied)));
    }
    int64_t offset = 0;
    for (size_t d = implied.size(); d-- > 0;) {
      offset += (flat % implied[d]) * out_strides[d];
      flat /= implied[d];
    }
    copy_elements(*x, e, *out, offset, 1);
  }
  return Status::ok();
}

Status max_unpool_infer(InferContext& ctx) {
  const ir::ValueType& x = ctx.input_type(0);
  DataType dtype = x.is_tensor() ? x.dtype : DataType::kUndefined;
  if (ctx.has_input(2)) {
    const Tensor* os = ctx.input_constant(2);
    Shape out = Shape::unknown_rank();
    if (os != nullptr) {
      KILN_ASSIGN_OR_RETURN(std::vector<int64_t> v, to_int64_vector(*os));
      out = Shape::of(v);
    } else if (x.is_tensor() && x.shape.rank_known()) {
      out = Shape::unknown_dims(x.shape.rank());
    }
    ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
    return Status::ok();
  }
  if (!x.is_tensor() || !x.shape.rank_known()) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  if (x.shape.rank() < 3) return invalid_argument("MaxUnpool X must have rank >= 3, got {}", x.to_string());
  KILN_ASSIGN_OR_RETURN(UnpoolGeometry g, unpool_geometry(ctx.node(), x.shape.rank() - 2));
  std::vector<Dim> out{x.shape[0], x.shape[1]};
  for (int64_t i = 2; i < x.shape.rank(); ++i) {
    Dim d;
    if (x.shape[i].known()) {
      KILN_ASSIGN_OR_RETURN(int64_t v, unpool_dim(g, static_cast<size_t>(i - 2), x.shape[i].value));
      d = Dim(v);
    }
    out.push_back(d);
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

// ---- TensorScatter -----------------------------------------------------------

// present = past with update's rows written along `axis`, starting for batch b
// at write_indices[b] (0 when absent); "circular" mode wraps around the axis,
// "linear" mode requires every row to fit.
Status tensor_scatter_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* past, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* update, ctx.tensor_input(1));
  std::string mode = ctx.node().attr_string("mode", "linear");
  if (mode != "linear" && mode != "circular") {
    return ctx.error(invalid_argument("mode must be 'linear' or 'circular', got '{}'", mode));
  }
  int64_t rank = past->rank();
  auto axis_r = normalize_axis(ctx.node().attr_int("axis", -2), rank);
  if (!axis_r.is_ok()) return ctx.error(axis_r.status());
  auto axis = static_cast<size_t>(*axis_r);
  if (axis == 0) return ctx.error(invalid_argument("axis must not be the batch axis 0"));
  if (update->dtype() != past->dtype() || update->rank() != rank) {
    return ctx.error(invalid_argument("update {} must have past_cache's type and rank ({})", update->debug_string(),
                                      past->debug_string()));
  }
  for (size_t i = 0; i < past->dims().size(); ++i) {
    bool ok = i == axis ? update->dims()[i] <= past->dims()[i] : update->dims()[i] == past->dims()[i];
    if (!ok) {
      return ctx.error(invalid_argument("update {} does not fit past_cache {} (axis {})",
                                        dims_to_string(update->dims()), dims_to_string(past->dims()), axis));
    }
  }
  int64_t batch = past->dim(0);
  std::vector<int64_t> write(static_cast<size_t>(batch), 0);
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* wi, ctx.tensor_input(2));
    if (wi->dtype() != DataType::kInt64 || wi->numel() != batch || wi->rank() != 1) {
      return ctx.error(invalid_argument("write_indices must be int64 of shape [{}], got {}", batch,
                                        wi->debug_string()));
    }
    write.assign(wi->data<int64_t>(), wi->data<int64_t>() + batch);
  }
  int64_t max_len = past->dim(static_cast<int64_t>(axis));
  int64_t len = update->dim(static_cast<int64_t>(axis));
  int64_t prefix = 1;
  int64_t inner = 1;
  for (size_t i = 0; i < axis; ++i) prefix *= past->dims()[i];
  for (size_t i = axis + 1; i < past->dims().size(); ++i) inner *= past->dims()[i];
  int64_t per_batch = batch == 0 ? 0 : prefix / batch;
  Tensor present = past->clone();
  for (int64_t p = 0; p < prefix; ++p) {
    int64_t w = write[static_cast<size_t>(p / per_batch)];
    for (int64_t s = 0; s < len; ++s) {
      int64_t at = w + s;
      if (mode == "circular") {
        at = ((at % max_len) + max_len) % max_len;
      } else if (w < 0 || at >= max_len) {
        return ctx.error(out_of_range("write index {} + {} rows does not fit axis {} of size {} (batch {})", w, len,
                                      axis, max_len, p / per_batch));
      }
      copy_elements(*update, (p * len + s) * inner, present, (p * max_len + at) * inner, inner);
    }
  }
  ctx.set_output(0, std::move(present));
  return Status::ok();
}

Status tensor_scatter_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::ok();
}

}  // namespace

void register_loss_scatter(Registry& r) {
  r.add({.name = "MaxUnpool", .domain = "", .since_version = 9, .min_inputs = 2, .max_inputs = 3,
         .kernel = max_unpool_kernel, .infer = max_unpool_infer});
  r.add({.name = "TensorScatter", .domain = "", .since_version = 24, .min_inputs = 2, .max_inputs = 3,
         .kernel = tensor_scatter_kernel, .infer = tensor_scatter_infer});
}

}  // namespace kiln::ops
