// Op family: tensor construction and data movement. This file holds Constant,
// ConstantOfShape, Concat, Split, Tile and Range, and the family's single
// registration entry point; the other ops live in tensor_ops_<part>.cc.
//
// Data-movement kernels copy elements generically (copy_elements /
// take_elements), so they serve every element type, strings and bool included.
#include <cmath>
#include <limits>

#include "core/error.h"
#include "ops/families.h"
#include "ops/registry.h"
#include "ops/split.h"
#include "ops/tensor_ops_internal.h"

namespace kiln::ops {
namespace {

// ---- Constant ----------------------------------------------------------------

// The tensor a Constant node produces; exactly one value attribute must be set.
Result<Tensor> constant_value(const ir::Node& node) {
  static const char* const kNames[] = {"value",      "sparse_value", "value_float",  "value_floats",
                                       "value_int",  "value_ints",   "value_string", "value_strings"};
  const ir::Attribute* found = nullptr;
  for (const char* name : kNames) {
    if (const ir::Attribute* a = node.attr(name)) {
      if (found != nullptr) {
        return invalid_argument("{}: both '{}' and '{}' are set; Constant takes exactly one", node.describe(),
                                found->name, a->name);
      }
      found = a;
    }
  }
  if (found == nullptr) return invalid_argument("{}: Constant has no value attribute", node.describe());
  const std::string& name = found->name;
  if (name == "sparse_value") {
    return unimplemented("{}: sparse_value constants are not supported", node.describe());
  }
  if (name == "value") {
    if (!found->t.defined()) return invalid_argument("{}: attribute 'value' is not a tensor", node.describe());
    return found->t.is_owned() ? found->t : found->t.clone();
  }
  if (name == "value_float") return Tensor::scalar<float>(DataType::kFloat32, found->f);
  if (name == "value_int") return Tensor::scalar<int64_t>(DataType::kInt64, found->i);
  if (name == "value_string") {
    Tensor t = Tensor::empty(DataType::kString, {});
    t.data<std::string>()[0] = found->s;
    return t;
  }
  if (name == "value_floats") {
    Tensor t = Tensor::empty(DataType::kFloat32, {static_cast<int64_t>(found->floats.size())});
    std::copy(found->floats.begin(), found->floats.end(), t.data<float>());
    return t;
  }
  if (name == "value_ints") {
    Tensor t = Tensor::empty(DataType::kInt64, {static_cast<int64_t>(found->ints.size())});
    std::copy(found->ints.begin(), found->ints.end(), t.data<int64_t>());
    return t;
  }
  Tensor t = Tensor::empty(DataType::kString, {static_cast<int64_t>(found->strings.size())});
  std::copy(found->strings.begin(), found->strings.end(), t.data<std::string>());
  return t;
}

Status constant_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Tensor t, constant_value(ctx.node()));
  ctx.set_output(0, std::move(t));
  return Status::ok();
}

Status constant_infer(InferContext& ctx) {
  auto t = constant_value(ctx.node());
  if (t.status().code() == StatusCode::kUnimplemented) return Status::ok();
  KILN_RETURN_IF_ERROR(t.status());
  ctx.set_output_type(0, ir::ValueType::tensor(t->dtype(), Shape::of(t->dims())));
  return Status::ok();
}

// ---- ConstantOfShape ---------------------------------------------------------

// The fill value: the one-element 'value' attribute, float 0 by default.
Result<Tensor> fill_value(const ir::Node& node) {
  const Tensor* v = node.attr_tensor("value");
  if (v == nullptr) return Tensor::scalar<float>(DataType::kFloat32, 0.0f);
  if (v->numel() != 1) {
    return invalid_argument("{}: 'value' must hold one element, got {}", node.describe(), v->debug_string());
  }
  return *v;
}

Status constant_of_shape_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* shape_t, ctx.tensor_input(0));
  auto dims = to_int64_vector(*shape_t);
  if (!dims.is_ok()) return ctx.error(dims.status());
  if (shape_t->rank() > 1) return ctx.error(invalid_argument("shape must be 1-D, got {}", shape_t->debug_string()));
  KILN_ASSIGN_OR_RETURN(Tensor value, fill_value(ctx.node()));
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, value.dtype(), std::move(dims).value()));
  for (int64_t i = 0; i < out->numel(); ++i) copy_elements(value, 0, *out, i, 1);
  return Status::ok();
}

Status constant_of_shape_infer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Tensor value, fill_value(ctx.node()));
  Shape out;
  if (const Tensor* shape_t = ctx.input_constant(0)) {
    KILN_ASSIGN_OR_RETURN(Dims dims, to_int64_vector(*shape_t));
    KILN_RETURN_IF_ERROR(checked_numel(dims).status());
    out = Shape::of(dims);
  } else if (const Shape* s = known_rank_shape(ctx, 0); s != nullptr && s->rank() == 1 && (*s)[0].known()) {
    out = Shape::unknown_dims((*s)[0].value);
  }
  ctx.set_output_type(0, ir::ValueType::tensor(value.dtype(), out));
  return Status::ok();
}

// ---- Concat ------------------------------------------------------------------

// Concat's axis: required from opset 4, 1 by default before.
Result<int64_t> concat_axis(const ir::Node& node) {
  if (!node.has_attr("axis")) {
    if (node.opset() < 4) return 1;
    return invalid_argument("{}: attribute 'axis' is required", node.describe());
  }
  return node.attr_int("axis", 0);
}

Status concat_kernel(KernelContext& ctx) {
  std::vector<const Tensor*> ins;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
    ins.push_back(t);
  }
  const Tensor& first = *ins[0];
  KILN_ASSIGN_OR_RETURN(int64_t raw_axis, concat_axis(ctx.node()));
  auto axis_r = normalize_axis(raw_axis, first.rank());
  if (!axis_r.is_ok()) return ctx.error(axis_r.status());
  int64_t axis = *axis_r;
  Dims out_dims = first.dims();
  out_dims[static_cast<size_t>(axis)] = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    const Tensor& t = *ins[i];
    bool ok = t.dtype() == first.dtype() && t.rank() == first.rank();
    for (int64_t d = 0; ok && d < t.rank(); ++d) ok = d == axis || t.dim(d) == first.dim(d);
    if (!ok) {
      return ctx.error(invalid_argument("input {} ({}) does not match input 0 ({}) off axis {}", i, t.debug_string(),
                                        first.debug_string(), axis));
    }
    out_dims[static_cast<size_t>(axis)] += t.dim(axis);
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, first.dtype(), out_dims));
  int64_t outer = dims_product(out_dims, 0, static_cast<size_t>(axis));
  int64_t inner = dims_product(out_dims, static_cast<size_t>(axis) + 1, out_dims.size());
  int64_t pos = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor* t : ins) {
      int64_t block = t->dim(axis) * inner;
      copy_elements(*t, o * block, *out, pos, block);
      pos += block;
    }
  }
  return Status::ok();
}

Status concat_infer(InferContext& ctx) {
  DataType dtype = DataType::kUndefined;
  const Shape* ref = nullptr;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (dtype == DataType::kUndefined) dtype = input_dtype(ctx, i);
    if (ref == nullptr) ref = known_rank_shape(ctx, i);
  }
  if (ref == nullptr) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(int64_t raw_axis, concat_axis(ctx.node()));
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(raw_axis, ref->rank()));
  std::vector<Dim> out(static_cast<size_t>(ref->rank()));
  int64_t axis_sum = 0;
  bool axis_known = true;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Shape* s = known_rank_shape(ctx, i);
    if (s == nullptr) {
      axis_known = false;
      continue;
    }
    if (s->rank() != ref->rank()) {
      return invalid_argument("{}: input {} has rank {}, input 0 has rank {}", ctx.node().describe(), i, s->rank(),
                              ref->rank());
    }
    for (int64_t d = 0; d < s->rank(); ++d) {
      const Dim& dim = (*s)[d];
      if (d == axis) {
        axis_known = axis_known && dim.known();
        axis_sum += dim.known() ? dim.value : 0;
      } else if (!out[static_cast<size_t>(d)].known() && (dim.known() || !dim.symbol.empty())) {
        out[static_cast<size_t>(d)] = dim;
      }
    }
  }
  if (axis_known) out[static_cast<size_t>(axis)] = Dim(axis_sum);
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

// ---- Split -------------------------------------------------------------------

}  // namespace

// Declared in ops/split.h.
Result<std::vector<int64_t>> split_sizes(const ir::Node& node, int64_t dim, const std::vector<int64_t>* split) {
  size_t n = node.num_outputs();
  bool has_num = node.opset() >= 18 && node.has_attr("num_outputs");
  if (split != nullptr) {
    if (has_num) return invalid_argument("{}: both 'split' and 'num_outputs' are given", node.describe());
    if (split->size() != n) {
      return invalid_argument("{}: split {} has {} entries for {} outputs", node.describe(),
                              dims_to_string(*split), split->size(), n);
    }
    int64_t sum = 0;
    for (int64_t s : *split) {
      if (s < 0) return invalid_argument("{}: split {} has a negative size", node.describe(), dims_to_string(*split));
      sum += s;
    }
    if (sum != dim) {
      return invalid_argument("{}: split {} sums to {}, but the axis has size {}", node.describe(),
                              dims_to_string(*split), sum, dim);
    }
    return *split;
  }
  if (has_num) {
    int64_t num = node.attr_int("num_outputs", 0);
    if (num != static_cast<int64_t>(n)) {
      return invalid_argument("{}: num_outputs is {} but the node has {} outputs", node.describe(), num, n);
    }
    int64_t chunk = (dim + num - 1) / num;
    std::vector<int64_t> sizes(n, chunk);
    sizes.back() = dim - chunk * (num - 1);
    if (sizes.back() < 0) {
      return invalid_argument("{}: an axis of size {} cannot be split into {} outputs", node.describe(), dim, num);
    }
    return sizes;
  }
  if (dim % static_cast<int64_t>(n) != 0) {
    return invalid_argument("{}: an axis of size {} cannot be split evenly into {} outputs", node.describe(), dim, n);
  }
  return std::vector<int64_t>(n, dim / static_cast<int64_t>(n));
}

bool split_from_attr(const ir::Node& node, std::vector<int64_t>& split) {
  if (node.opset() >= 13 || !node.has_attr("split")) return false;
  split = node.attr_ints("split");
  return true;
}

Result<std::vector<int64_t>> split_sizes_for(const ir::Node& node, int64_t dim, const Tensor* split_input) {
  std::vector<int64_t> split;
  bool given = split_from_attr(node, split);
  if (!given && (node.opset() >= 13 || node.opset() < 2) && split_input != nullptr) {
    KILN_ASSIGN_OR_RETURN(split, to_int64_vector(*split_input));
    given = true;
  }
  return split_sizes(node, dim, given ? &split : nullptr);
}

namespace {

Status split_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  auto axis_r = normalize_axis(ctx.node().attr_int("axis", 0), x->rank());
  if (!axis_r.is_ok()) return ctx.error(axis_r.status());
  int64_t axis = *axis_r;
  auto sizes_r = split_sizes_for(ctx.node(), x->dim(axis), ctx.has_input(1) ? &ctx.input(1) : nullptr);
  if (!sizes_r.is_ok()) return ctx.error(sizes_r.status());
  const std::vector<int64_t>& sizes = *sizes_r;
  int64_t outer = dims_product(x->dims(), 0, static_cast<size_t>(axis));
  int64_t inner = dims_product(x->dims(), static_cast<size_t>(axis) + 1, x->dims().size());
  int64_t start = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    Dims dims = x->dims();
    dims[static_cast<size_t>(axis)] = sizes[k];
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(k, x->dtype(), dims));
    for (int64_t o = 0; o < outer; ++o) {
      copy_elements(*x, (o * x->dim(axis) + start) * inner, *out, o * sizes[k] * inner, sizes[k] * inner);
    }
    start += sizes[k];
  }
  return Status::ok();
}

Status split_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* in = known_rank_shape(ctx, 0);
  for (size_t k = 0; k < ctx.num_outputs(); ++k) ctx.set_output_type(k, ir::ValueType::tensor(dtype));
  if (in == nullptr) return Status::ok();
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.node().attr_int("axis", 0), in->rank()));
  std::vector<int64_t> split;
  bool given = split_from_attr(ctx.node(), split);
  bool sizes_known = true;
  if (!given && (ctx.opset() >= 13 || ctx.opset() < 2) && ctx.has_input(1)) {
    if (const Tensor* t = ctx.input_constant(1)) {
      KILN_ASSIGN_OR_RETURN(split, to_int64_vector(*t));
      given = true;
    } else {
      sizes_known = false;
    }
  }
  const Dim& dim = (*in)[axis];
  std::vector<int64_t> sizes;
  if (sizes_known && dim.known()) {
    // A split that cannot work leaves the sizes unknown rather than failing:
    // the node may sit in an If branch that never runs for these shapes (ONNX's
    // AffineGrid function splits a 5-element size into 4 in its 2-D branch).
    // The kernel reports the error if the node does run.
    auto r = split_sizes(ctx.node(), dim.value, given ? &split : nullptr);
    if (r.is_ok()) sizes = std::move(r).value();
  } else if (given) {
    sizes = split;  // the sum cannot be checked against an unknown dim
  }
  for (size_t k = 0; k < ctx.num_outputs(); ++k) {
    Shape s = *in;
    s[axis] = k < sizes.size() ? Dim(sizes[k]) : Dim();
    ctx.set_output_type(k, ir::ValueType::tensor(dtype, s));
  }
  return Status::ok();
}

// ---- Tile --------------------------------------------------------------------

Status tile_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* reps_t, ctx.tensor_input(1));
  auto reps = to_int64_vector(*reps_t);
  if (!reps.is_ok()) return ctx.error(reps.status());
  if (static_cast<int64_t>(reps->size()) != x->rank()) {
    return ctx.error(invalid_argument("repeats has {} entries for an input of rank {}", reps->size(), x->rank()));
  }
  Dims out_dims;
  std::vector<int64_t> strides = strides_of(x->dims());
  for (int64_t d = 0; d < x->rank(); ++d) {
    int64_t r = (*reps)[static_cast<size_t>(d)];
    if (r < 0) return ctx.error(invalid_argument("repeats {} has a negative entry", dims_to_string(*reps)));
    if (x->dim(d) != 0 && r > kMaxTensorElements / x->dim(d)) {
      return ctx.error(out_of_range("repeats {} make the output too large", dims_to_string(*reps)));
    }
    out_dims.push_back(x->dim(d) * r);
  }
  KILN_RETURN_IF_ERROR(ctx.error(checked_numel(out_dims).status()));
  std::vector<std::vector<int64_t>> table(out_dims.size());
  for (size_t d = 0; d < out_dims.size(); ++d) {
    for (int64_t c = 0; c < out_dims[d]; ++c) table[d].push_back((c % x->dims()[d]) * strides[d]);
  }
  KILN_ASSIGN_OR_RETURN(Tensor out, take_elements(*x, table_indices(out_dims, table), out_dims));
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status tile_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* in = known_rank_shape(ctx, 0);
  const Tensor* reps_t = ctx.input_constant(1);
  if (in == nullptr) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  Shape out = Shape::unknown_dims(in->rank());
  if (reps_t != nullptr) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> reps, to_int64_vector(*reps_t));
    if (static_cast<int64_t>(reps.size()) != in->rank()) {
      return invalid_argument("{}: repeats has {} entries for an input of rank {}", ctx.node().describe(),
                              reps.size(), in->rank());
    }
    for (int64_t d = 0; d < in->rank(); ++d) {
      int64_t r = reps[static_cast<size_t>(d)];
      if (r == 1) out[d] = (*in)[d];
      else if ((*in)[d].known() && r >= 0) out[d] = Dim((*in)[d].value * r);
    }
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
  return Status::ok();
}

// ---- Range -------------------------------------------------------------------

// Number of Range elements: max(ceil((limit - start) / delta), 0).
template <class T>
Result<int64_t> range_count(T start, T limit, T delta) {
  if (delta == T(0)) return invalid_argument("delta must not be 0");
  double n = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
  if constexpr (std::is_integral_v<T>) {
    // Exact for integers: ceil division without the double's rounding.
    __extension__ typedef __int128 Wide;
    Wide diff = static_cast<Wide>(limit) - static_cast<Wide>(start);
    Wide d = static_cast<Wide>(delta);
    Wide q = diff / d;
    if (diff % d != 0 && ((diff < 0) == (d < 0))) ++q;
    n = q < 0 ? 0.0 : static_cast<double>(q);
  }
  if (!(n > 0)) return 0;  // also NaN
  if (n > static_cast<double>(kMaxTensorElements)) return out_of_range("Range would have {} elements", n);
  return static_cast<int64_t>(n);
}

// Range on float16/bfloat16 (opset 27): start, limit and delta are widened
// to the stash_type (float by default, or double) and each element
// start + i * delta is computed there and rounded back once.
Status range_half_kernel(KernelContext& ctx, const Tensor& start_t, const Tensor& limit_t, const Tensor& delta_t) {
  int64_t stash = ctx.node().attr_int("stash_type", 1);
  if (stash != 1 && stash != 11) {
    return ctx.error(invalid_argument("stash_type must be 1 (float) or 11 (double), got {}", stash));
  }
  KILN_ASSIGN_OR_RETURN(double start, to_scalar_double(start_t));
  KILN_ASSIGN_OR_RETURN(double limit, to_scalar_double(limit_t));
  KILN_ASSIGN_OR_RETURN(double delta, to_scalar_double(delta_t));
  Result<int64_t> n = stash == 1 ? range_count<float>(static_cast<float>(start), static_cast<float>(limit),
                                                       static_cast<float>(delta))
                                 : range_count<double>(start, limit, delta);
  if (!n.is_ok()) return ctx.error(n.status());
  KILN_ASSIGN_OR_RETURN(Tensor values, Tensor::allocate(DataType::kFloat64, {*n}));
  for (int64_t i = 0; i < *n; ++i) {
    values.data<double>()[i] = stash == 1 ? static_cast<double>(static_cast<float>(start) +
                                                                static_cast<float>(i) * static_cast<float>(delta))
                                          : start + static_cast<double>(i) * delta;
  }
  auto out = cast_tensor(values, start_t.dtype());
  if (!out.is_ok()) return ctx.error(out.status());
  ctx.set_output(0, std::move(out).value());
  return Status::ok();
}

Status range_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* start_t, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* limit_t, ctx.tensor_input(1));
  KILN_ASSIGN_OR_RETURN(const Tensor* delta_t, ctx.tensor_input(2));
  DataType dt = start_t->dtype();
  for (const Tensor* t : {start_t, limit_t, delta_t}) {
    if (t->dtype() != dt || t->numel() != 1) {
      return ctx.error(invalid_argument("start, limit and delta must be scalars of one type, got {}",
                                        t->debug_string()));
    }
  }
  if (dt == DataType::kFloat16 || dt == DataType::kBFloat16) return range_half_kernel(ctx, *start_t, *limit_t, *delta_t);
  if (dt != DataType::kFloat32 && dt != DataType::kFloat64 && dt != DataType::kInt16 && dt != DataType::kInt32 &&
      dt != DataType::kInt64) {
    return ctx.error(unimplemented("Range does not support element type {}", data_type_name(dt)));
  }
  return ctx.error(visit_numeric(dt, "Range", [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16> || std::is_same_v<T, bool>) {
      return internal_error("unreachable");
    } else {
      T start = start_t->data<T>()[0];
      T delta = delta_t->data<T>()[0];
      KILN_ASSIGN_OR_RETURN(int64_t n, range_count<T>(start, limit_t->data<T>()[0], delta));
      KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, dt, {n}));
      for (int64_t i = 0; i < n; ++i) out->data<T>()[i] = static_cast<T>(start + static_cast<T>(i) * delta);
      return Status::ok();
    }
  }));
}

Status range_infer(InferContext& ctx) {
  ctx.set_output_type(0, ir::ValueType::tensor(input_dtype(ctx, 0), Shape::unknown_dims(1)));
  return Status::ok();
}

}  // namespace

void register_tensor_ops(Registry& r) {
  r.add({.name = "Constant", .domain = "", .since_version = 1, .min_inputs = 0, .max_inputs = 0,
         .kernel = constant_kernel, .infer = constant_infer});
  r.add({.name = "ConstantOfShape", .domain = "", .since_version = 9, .min_inputs = 1, .max_inputs = 1,
         .kernel = constant_of_shape_kernel, .infer = constant_of_shape_infer});
  r.add({.name = "Concat", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = -1,
         .kernel = concat_kernel, .infer = concat_infer});
  r.add({.name = "Split", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 2, .min_outputs = 1,
         .max_outputs = -1, .kernel = split_kernel, .infer = split_infer});
  // Tile-1 took (tiles, axis) inputs; Kiln serves opset 6 onwards.
  r.add({.name = "Tile", .domain = "", .since_version = 6, .min_inputs = 2, .max_inputs = 2,
         .kernel = tile_kernel, .infer = tile_infer});
  r.add({.name = "Range", .domain = "", .since_version = 11, .min_inputs = 3, .max_inputs = 3,
         .kernel = range_kernel, .infer = range_infer});
  register_tensor_ops_slice(r);
  register_tensor_ops_gather(r);
  register_tensor_ops_scatter(r);
  register_tensor_ops_select(r);
  register_tensor_ops_misc(r);
  register_tensor_ops_einsum(r);
}

}  // namespace kiln::ops
