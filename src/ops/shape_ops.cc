// Op family: shape manipulation. Shape, Size, Reshape, Flatten, Squeeze,
// Unsqueeze, Expand, Transpose, Identity.
//
// Each op: a kernel (the reference implementation) and a shape inference
// function, registered with its opset range at the bottom of the file. The
// kernels move elements generically (ops/op_util.h copy helpers), so every
// element type works, strings and bool included.
#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

// The shape of input i when it is a tensor of known rank, else nullptr.
const Shape* known_rank_shape(const InferContext& ctx, size_t i) {
  const ir::ValueType& t = ctx.input_type(i);
  return t.is_tensor() && t.shape.rank_known() ? &t.shape : nullptr;
}

DataType input_dtype(const InferContext& ctx, size_t i) {
  const ir::ValueType& t = ctx.input_type(i);
  return t.is_tensor() ? t.dtype : DataType::kUndefined;
}

// Output `t` viewed with `dims`: shares storage when `t` owns it, else copies
// (a borrowed input must not escape the call).
Datum reshaped_datum(const Tensor& t, Dims dims) {
  Tensor base = t.is_owned() ? t : t.clone();
  return Datum(base.reshaped(std::move(dims)).value());
}

// ---- Identity ----------------------------------------------------------------

Status identity_kernel(KernelContext& ctx) {
  ctx.set_output(0, ctx.datum(0));
  return Status::ok();
}

Status identity_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::ok();
}

// ---- Shape -------------------------------------------------------------------

// [start, end) of Shape's slice of a rank-r shape: negative values count from
// the back, then both are clamped to [0, r] (opset 15; earlier: the whole shape).
std::pair<int64_t, int64_t> shape_range(const ir::Node& node, int64_t rank) {
  if (node.opset() < 15) return {0, rank};
  auto clamp = [rank](int64_t v) {
    if (v < 0) v += rank;
    return std::clamp<int64_t>(v, 0, rank);
  };
  int64_t start = clamp(node.attr_int("start", 0));
  int64_t end = clamp(node.attr_int("end", rank));
  return {start, std::max(start, end)};
}

Status shape_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  auto [start, end] = shape_range(ctx.node(), x->rank());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, DataType::kInt64, {end - start}));
  for (int64_t i = start; i < end; ++i) out->data<int64_t>()[i - start] = x->dim(i);
  return Status::ok();
}

Status shape_infer(InferContext& ctx) {
  Shape out = Shape::unknown_dims(1);
  if (const Shape* s = known_rank_shape(ctx, 0)) {
    auto [start, end] = shape_range(ctx.node(), s->rank());
    out = Shape::of({end - start});
  }
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kInt64, out));
  return Status::ok();
}

// ---- Size --------------------------------------------------------------------

Status size_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  ctx.set_output(0, Tensor::scalar<int64_t>(DataType::kInt64, x->numel()));
  return Status::ok();
}

Status size_infer(InferContext& ctx) {
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kInt64, Shape::of({})));
  return Status::ok();
}

// ---- Reshape -----------------------------------------------------------------

// Output dims of Reshape: 0 copies the input dim at that index (unless
// allowzero, where it means a 0-sized dim), one -1 is inferred from the
// element count.
Result<Dims> reshape_dims(const Dims& in, const std::vector<int64_t>& shape, bool allowzero) {
  Dims out(shape.size());
  int64_t infer_at = -1;
  bool has_zero = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t s = shape[i];
    if (s == -1) {
      if (infer_at >= 0) return invalid_argument("shape {} has more than one -1", dims_to_string(shape));
      infer_at = static_cast<int64_t>(i);
      out[i] = 1;
    } else if (s < -1) {
      return invalid_argument("shape {} has invalid dim {}", dims_to_string(shape), s);
    } else if (s == 0 && !allowzero) {
      if (i >= in.size()) {
        return invalid_argument("shape {} copies dim {} (0) but the input has rank {}", dims_to_string(shape), i,
                                in.size());
      }
      out[i] = in[i];
    } else {
      has_zero = has_zero || s == 0;
      out[i] = s;
    }
  }
  if (allowzero && has_zero && infer_at >= 0) {
    return invalid_argument("shape {} has both 0 and -1 with allowzero=1", dims_to_string(shape));
  }
  KILN_ASSIGN_OR_RETURN(int64_t n_in, checked_numel(in));
  KILN_ASSIGN_OR_RETURN(int64_t n_known, checked_numel(out));
  if (infer_at >= 0) {
    if (n_known == 0 || n_in % n_known != 0) {
      return invalid_argument("cannot reshape {} to {}: -1 cannot be inferred", dims_to_string(in),
                              dims_to_string(shape));
    }
    out[static_cast<size_t>(infer_at)] = n_in / n_known;
  } else if (n_known != n_in) {
    return invalid_argument("cannot reshape {} ({} elements) to {} ({} elements)", dims_to_string(in), n_in,
                            dims_to_string(out), n_known);
  }
  return out;
}

Status reshape_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* shape_t, ctx.tensor_input(1));
  auto shape = to_int64_vector(*shape_t);
  if (!shape.is_ok()) return ctx.error(shape.status());
  bool allowzero = ctx.opset() >= 14 && ctx.node().attr_int("allowzero", 0) != 0;
  auto dims = reshape_dims(x->dims(), *shape, allowzero);
  if (!dims.is_ok()) return ctx.error(dims.status());
  ctx.set_output(0, reshaped_datum(*x, std::move(dims).value()));
  return Status::ok();
}

Status reshape_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Tensor* shape_t = ctx.input_constant(1);
  if (shape_t == nullptr) {
    const ir::ValueType& st = ctx.input_type(1);
    bool rank_known = st.is_tensor() && st.shape.rank_known() && st.shape.rank() == 1 && st.shape[0].known();
    ctx.set_output_type(0, ir::ValueType::tensor(dtype, rank_known ? Shape::unknown_dims(st.shape[0].value)
                                                                   : Shape::unknown_rank()));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, to_int64_vector(*shape_t));
  bool allowzero = ctx.opset() >= 14 && ctx.node().attr_int("allowzero", 0) != 0;
  const Shape* in = known_rank_shape(ctx, 0);
  if (in != nullptr && in->fully_known()) {
    KILN_ASSIGN_OR_RETURN(Dims dims, reshape_dims(*in->concrete(), shape, allowzero));
    ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape::of(dims)));
    return Status::ok();
  }
  // Partially known input: fill what the shape alone determines.
  std::vector<Dim> out(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] > 0 || (shape[i] == 0 && allowzero)) {
      out[i] = Dim(shape[i]);
    } else if (shape[i] == 0 && in != nullptr && static_cast<int64_t>(i) < in->rank()) {
      out[i] = (*in)[static_cast<int64_t>(i)];
    }
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

// ---- Flatten -----------------------------------------------------------------

Result<Dims> flatten_dims(const Dims& in, int64_t axis) {
  int64_t rank = static_cast<int64_t>(in.size());
  if (axis < -rank || axis > rank) return invalid_argument("axis {} is out of range for rank {}", axis, rank);
  if (axis < 0) axis += rank;
  Dims outer(in.begin(), in.begin() + axis);
  Dims inner(in.begin() + axis, in.end());
  KILN_ASSIGN_OR_RETURN(int64_t a, checked_numel(outer));
  KILN_ASSIGN_OR_RETURN(int64_t b, checked_numel(inner));
  return Dims{a, b};
}

Status flatten_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  auto dims = flatten_dims(x->dims(), ctx.node().attr_int("axis", 1));
  if (!dims.is_ok()) return ctx.error(dims.status());
  ctx.set_output(0, reshaped_datum(*x, std::move(dims).value()));
  return Status::ok();
}

Status flatten_infer(InferContext& ctx) {
  Shape out = Shape::unknown_dims(2);
  const Shape* in = known_rank_shape(ctx, 0);
  if (in != nullptr && in->fully_known()) {
    KILN_ASSIGN_OR_RETURN(Dims dims, flatten_dims(*in->concrete(), ctx.node().attr_int("axis", 1)));
    out = Shape::of(dims);
  }
  ctx.set_output_type(0, ir::ValueType::tensor(input_dtype(ctx, 0), out));
  return Status::ok();
}

// ---- Squeeze / Unsqueeze -----------------------------------------------------

// The axes of Squeeze/Unsqueeze: an attribute before opset 13, input 1 from
// 13. `present` is false when no axes were given at all.
Result<std::vector<int64_t>> axes_from_kernel(const KernelContext& ctx, bool& present) {
  present = false;
  if (ctx.opset() < 13) {
    present = ctx.node().has_attr("axes");
    return ctx.node().attr_ints("axes");
  }
  if (!ctx.has_input(1)) return std::vector<int64_t>{};
  present = true;
  KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(1));
  return to_int64_vector(*t);
}

// As axes_from_kernel at build time; `known` is false when the axes input is
// not a constant.
Result<std::vector<int64_t>> axes_from_infer(const InferContext& ctx, bool& present, bool& known) {
  present = false;
  known = true;
  if (ctx.opset() < 13) {
    present = ctx.node().has_attr("axes");
    return ctx.node().attr_ints("axes");
  }
  if (!ctx.has_input(1)) return std::vector<int64_t>{};
  present = true;
  const Tensor* t = ctx.input_constant(1);
  if (t == nullptr) {
    known = false;
    return std::vector<int64_t>{};
  }
  return to_int64_vector(*t);
}

// Which axes Squeeze drops: the given ones (each must be 1), or every 1-dim.
Result<std::vector<bool>> squeeze_mask(const std::vector<Dim>& in, const std::vector<int64_t>& axes, bool present) {
  std::vector<bool> drop(in.size(), false);
  if (!present) {
    for (size_t i = 0; i < in.size(); ++i) drop[i] = in[i].value == 1;
    return drop;
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> norm, normalize_axes(axes, static_cast<int64_t>(in.size())));
  for (int64_t a : norm) {
    const Dim& d = in[static_cast<size_t>(a)];
    if (d.known() && d.value != 1) return invalid_argument("cannot squeeze axis {} of size {}", a, d.value);
    drop[static_cast<size_t>(a)] = true;
  }
  return drop;
}

Status squeeze_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  bool present = false;
  auto axes = axes_from_kernel(ctx, present);
  if (!axes.is_ok()) return ctx.error(axes.status());
  std::vector<Dim> in(x->dims().begin(), x->dims().end());
  auto drop = squeeze_mask(in, *axes, present);
  if (!drop.is_ok()) return ctx.error(drop.status());
  Dims out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!(*drop)[i]) out.push_back(x->dim(static_cast<int64_t>(i)));
  }
  ctx.set_output(0, reshaped_datum(*x, std::move(out)));
  return Status::ok();
}

Status squeeze_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  bool present = false;
  bool known = false;
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, axes_from_infer(ctx, present, known));
  const Shape* in = known_rank_shape(ctx, 0);
  // Without axes, which dims are 1 must be known for every dim.
  if (in == nullptr || !known || (!present && !in->fully_known())) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(std::vector<bool> drop, squeeze_mask(in->dims(), axes, present));
  std::vector<Dim> out;
  for (size_t i = 0; i < drop.size(); ++i) {
    if (!drop[i]) out.push_back(in->dims()[i]);
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

// Unsqueeze's output: rank r + len(axes), axes normalized against the output rank.
Result<std::vector<Dim>> unsqueeze_dims(const std::vector<Dim>& in, const std::vector<int64_t>& axes) {
  int64_t out_rank = static_cast<int64_t>(in.size() + axes.size());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> norm, normalize_axes(axes, out_rank));
  std::vector<bool> inserted(static_cast<size_t>(out_rank), false);
  for (int64_t a : norm) inserted[static_cast<size_t>(a)] = true;
  std::vector<Dim> out;
  size_t next = 0;
  for (int64_t i = 0; i < out_rank; ++i) {
    out.push_back(inserted[static_cast<size_t>(i)] ? Dim(1) : in[next++]);
  }
  return out;
}

Status unsqueeze_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  bool present = false;
  auto axes = axes_from_kernel(ctx, present);
  if (!axes.is_ok()) return ctx.error(axes.status());
  if (!present) return ctx.error(invalid_argument("Unsqueeze needs axes"));
  auto dims = unsqueeze_dims(std::vector<Dim>(x->dims().begin(), x->dims().end()), *axes);
  if (!dims.is_ok()) return ctx.error(dims.status());
  Dims out;
  for (const Dim& d : *dims) out.push_back(d.value);
  ctx.set_output(0, reshaped_datum(*x, std::move(out)));
  return Status::ok();
}

Status unsqueeze_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  bool present = false;
  bool known = false;
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, axes_from_infer(ctx, present, known));
  const Shape* in = known_rank_shape(ctx, 0);
  if (in == nullptr || !known || !present) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(std::vector<Dim> out, unsqueeze_dims(in->dims(), axes));
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

// ---- Expand ------------------------------------------------------------------

Status expand_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* shape_t, ctx.tensor_input(1));
  auto shape = to_int64_vector(*shape_t);
  if (!shape.is_ok()) return ctx.error(shape.status());
  for (int64_t s : *shape) {
    if (s < 0) return ctx.error(invalid_argument("Expand shape {} has a negative dim", dims_to_string(*shape)));
  }
  auto out_dims = broadcast_dims(x->dims(), *shape);
  if (!out_dims.is_ok()) return ctx.error(out_dims.status());
  KILN_RETURN_IF_ERROR(ctx.error(checked_numel(*out_dims).status()));
  auto index = strided_indices(*out_dims, broadcast_strides(x->dims(), *out_dims));
  auto out = take_elements(*x, index, *out_dims);
  if (!out.is_ok()) return ctx.error(out.status());
  ctx.set_output(0, std::move(out).value());
  return Status::ok();
}

Status expand_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Tensor* shape_t = ctx.input_constant(1);
  const Shape* in = known_rank_shape(ctx, 0);
  if (shape_t == nullptr || in == nullptr) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, to_int64_vector(*shape_t));
  size_t rank = std::max(shape.size(), static_cast<size_t>(in->rank()));
  std::vector<Dim> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    size_t si = rank - shape.size();
    size_t xi = rank - static_cast<size_t>(in->rank());
    Dim a = i < xi ? Dim(1) : in->dims()[i - xi];
    Dim b = i < si ? Dim(1) : Dim(shape[i - si]);
    if (b.value == 1) {
      out[i] = a;
    } else if (a.value == 1 || a == b) {
      out[i] = b;
    } else if (a.known()) {
      return invalid_argument("cannot expand {} to {}", in->to_string(), dims_to_string(shape));
    }
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

// ---- Transpose ---------------------------------------------------------------

// The permutation: the attribute (validated as a permutation of [0, rank)) or
// the reversed axes.
Result<std::vector<int64_t>> transpose_perm(const ir::Node& node, int64_t rank) {
  std::vector<int64_t> perm;
  if (!node.has_attr("perm")) {
    for (int64_t i = rank - 1; i >= 0; --i) perm.push_back(i);
    return perm;
  }
  perm = node.attr_ints("perm");
  if (static_cast<int64_t>(perm.size()) != rank) {
    return invalid_argument("perm {} has {} entries for an input of rank {}", dims_to_string(perm), perm.size(),
                            rank);
  }
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[static_cast<size_t>(p)]) {
      return invalid_argument("perm {} is not a permutation of [0, {})", dims_to_string(perm), rank);
    }
    seen[static_cast<size_t>(p)] = true;
  }
  return perm;
}

Status transpose_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  auto perm = transpose_perm(ctx.node(), x->rank());
  if (!perm.is_ok()) return ctx.error(perm.status());
  std::vector<int64_t> in_strides = strides_of(x->dims());
  Dims out_dims;
  std::vector<int64_t> strides;
  for (int64_t p : *perm) {
    out_dims.push_back(x->dim(p));
    strides.push_back(in_strides[static_cast<size_t>(p)]);
  }
  auto out = take_elements(*x, strided_indices(out_dims, strides), out_dims);
  if (!out.is_ok()) return ctx.error(out.status());
  ctx.set_output(0, std::move(out).value());
  return Status::ok();
}

Status transpose_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* in = known_rank_shape(ctx, 0);
  if (in == nullptr) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> perm, transpose_perm(ctx.node(), in->rank()));
  std::vector<Dim> out;
  for (int64_t p : perm) out.push_back((*in)[p]);
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

}  // namespace

void register_shape_ops(Registry& r) {
  r.add({.name = "Identity", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = identity_kernel, .infer = identity_infer});
  r.add({.name = "Shape", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = shape_kernel, .infer = shape_infer});
  r.add({.name = "Size", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = size_kernel, .infer = size_infer});
  // Reshape-1 took the shape as an attribute; Kiln serves opset 5 onwards.
  r.add({.name = "Reshape", .domain = "", .since_version = 5, .min_inputs = 2, .max_inputs = 2,
         .kernel = reshape_kernel, .infer = reshape_infer});
  r.add({.name = "Flatten", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = flatten_kernel, .infer = flatten_infer});
  r.add({.name = "Squeeze", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 2,
         .kernel = squeeze_kernel, .infer = squeeze_infer});
  r.add({.name = "Unsqueeze", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 2,
         .kernel = unsqueeze_kernel, .infer = unsqueeze_infer});
  r.add({.name = "Expand", .domain = "", .since_version = 8, .min_inputs = 2, .max_inputs = 2,
         .kernel = expand_kernel, .infer = expand_infer});
  r.add({.name = "Transpose", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = transpose_kernel, .infer = transpose_infer});
}

}  // namespace kiln::ops
