// Op family tensor_ops, part: selecting by value. TopK, NonZero, Unique.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "ops/registry.h"
#include "ops/tensor_ops_internal.h"

namespace kiln::ops {
namespace {

// A strict weak order on element values: NaN sorts after every number and
// equals other NaNs, so sorting and grouping stay well defined.
template <class C>
bool value_less(const C& a, const C& b) {
  if constexpr (std::is_floating_point_v<C>) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
  }
  return a < b;
}

// Calls f(T{}) for the numeric types (and bool) or std::string.
template <class F>
Status visit_any(DataType dtype, const std::string& what, F&& f) {
  if (dtype == DataType::kString) return f(std::string{});
  return visit_numeric(dtype, what, std::forward<F>(f), /*with_bool=*/true);
}

template <class T>
auto value_at(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, std::string>) {
    return p[i];
  } else {
    return static_cast<compute_type_t<T>>(p[i]);
  }
}

// ---- TopK --------------------------------------------------------------------

Status topk_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  int64_t k = 0;
  if (ctx.opset() < 10) {
    if (!ctx.node().has_attr("k")) return ctx.error(invalid_argument("attribute 'k' is required"));
    k = ctx.node().attr_int("k", 0);
  } else {
    KILN_ASSIGN_OR_RETURN(const Tensor* k_t, ctx.tensor_input(1));
    auto kv = to_int64_scalar(*k_t);
    if (!kv.is_ok()) return ctx.error(kv.status().with_context("K"));
    k = *kv;
  }
  bool largest = ctx.opset() < 11 || ctx.node().attr_int("largest", 1) != 0;
  auto axis_r = normalize_axis(ctx.node().attr_int("axis", -1), x->rank());
  if (!axis_r.is_ok()) return ctx.error(axis_r.status());
  int64_t axis = *axis_r;
  int64_t dim = x->dim(axis);
  if (k < 0 || k > dim) return ctx.error(invalid_argument("k {} is outside [0, {}]", k, dim));
  Dims out_dims = x->dims();
  out_dims[static_cast<size_t>(axis)] = k;
  KILN_ASSIGN_OR_RETURN(Tensor * values, ctx.allocate_output(0, x->dtype(), out_dims));
  KILN_ASSIGN_OR_RETURN(Tensor * indices, ctx.allocate_output(1, DataType::kInt64, out_dims));
  int64_t outer = dims_product(x->dims(), 0, static_cast<size_t>(axis));
  int64_t inner = dims_product(x->dims(), static_cast<size_t>(axis) + 1, x->dims().size());
  return ctx.error(visit_numeric(x->dtype(), "TopK", [&](auto tag) -> Status {
    using T = decltype(tag);
    const T* src = x->data<T>();
    std::vector<int64_t> order(static_cast<size_t>(dim));
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t in = 0; in < inner; ++in) {
        auto at = [&](int64_t i) { return value_at(src, (o * dim + i) * inner + in); };
        std::iota(order.begin(), order.end(), 0);
        // Stable: equal values keep the lower index first, as ONNX requires.
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
          return largest ? value_less(at(b), at(a)) : value_less(at(a), at(b));
        });
        for (int64_t j = 0; j < k; ++j) {
          int64_t dst = (o * k + j) * inner + in;
          values->data<T>()[dst] = src[(o * dim + order[static_cast<size_t>(j)]) * inner + in];
          indices->data<int64_t>()[dst] = order[static_cast<size_t>(j)];
        }
      }
    }
    return Status::ok();
  }));
}

Status topk_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* in = known_rank_shape(ctx, 0);
  Shape out;
  if (in != nullptr) {
    KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.node().attr_int("axis", -1), in->rank()));
    out = *in;
    out[axis] = Dim();
    if (ctx.opset() < 10) {
      out[axis] = Dim(ctx.node().attr_int("k", -1));
    } else if (const Tensor* k_t = ctx.input_constant(1)) {
      KILN_ASSIGN_OR_RETURN(int64_t k, to_int64_scalar(*k_t));
      out[axis] = Dim(k);
    }
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
  ctx.set_output_type(1, ir::ValueType::tensor(DataType::kInt64, out));
  return Status::ok();
}

// ---- NonZero -----------------------------------------------------------------

Status nonzero_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  // A scalar is treated as a 1-element vector (as numpy did for NonZero).
  Dims dims = x->rank() == 0 ? Dims{1} : x->dims();
  std::vector<int64_t> hits;
  KILN_RETURN_IF_ERROR(ctx.error(visit_any(x->dtype(), "NonZero", [&](auto tag) -> Status {
    using T = decltype(tag);
    const T* p = x->data<T>();
    for (int64_t i = 0; i < x->numel(); ++i) {
      bool nz = false;
      if constexpr (std::is_same_v<T, std::string>) {
        nz = !p[i].empty();
      } else {
        nz = value_at(p, i) != compute_type_t<T>(0);
      }
      if (nz) hits.push_back(i);
    }
    return Status::ok();
  })));
  int64_t rank = static_cast<int64_t>(dims.size());
  int64_t nnz = static_cast<int64_t>(hits.size());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, DataType::kInt64, {rank, nnz}));
  std::vector<int64_t> strides = strides_of(dims);
  for (int64_t j = 0; j < nnz; ++j) {
    int64_t rest = hits[static_cast<size_t>(j)];
    for (int64_t d = 0; d < rank; ++d) {
      out->data<int64_t>()[d * nnz + j] = rest / strides[static_cast<size_t>(d)];
      rest %= strides[static_cast<size_t>(d)];
    }
  }
  return Status::ok();
}

Status nonzero_infer(InferContext& ctx) {
  const Shape* in = known_rank_shape(ctx, 0);
  Shape out = Shape::unknown_dims(2);
  if (in != nullptr) out[0] = Dim(std::max<int64_t>(in->rank(), 1));
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kInt64, out));
  return Status::ok();
}

// ---- Unique ------------------------------------------------------------------

Status unique_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  bool sorted = ctx.node().attr_int("sorted", 1) != 0;
  bool has_axis = ctx.node().has_attr("axis");
  Tensor data = has_axis ? *x : x->reshaped({x->numel()}).value();
  int64_t axis = 0;
  if (has_axis) {
    auto a = normalize_axis(ctx.node().attr_int("axis", 0), x->rank());
    if (!a.is_ok()) return ctx.error(a.status());
    axis = *a;
  }
  // Slice j: the elements with coordinate j on `axis`, in row-major order.
  int64_t n = data.dim(axis);
  int64_t outer = dims_product(data.dims(), 0, static_cast<size_t>(axis));
  int64_t inner = dims_product(data.dims(), static_cast<size_t>(axis) + 1, data.dims().size());
  auto offset = [&](int64_t slice, int64_t e) { return ((e / inner) * n + slice) * inner + e % inner; };
  int64_t slice_size = outer * inner;

  // Sort slice ids stably, group equal runs; each group's first id is its first occurrence.
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::vector<int64_t>> groups;
  KILN_RETURN_IF_ERROR(ctx.error(visit_any(data.dtype(), "Unique", [&](auto tag) -> Status {
    using T = decltype(tag);
    const T* p = data.data<T>();
    auto less = [&](int64_t a, int64_t b) {
      for (int64_t e = 0; e < slice_size; ++e) {
        auto va = value_at(p, offset(a, e));
        auto vb = value_at(p, offset(b, e));
        if (value_less(va, vb)) return true;
        if (value_less(vb, va)) return false;
      }
      return false;
    };
    std::stable_sort(order.begin(), order.end(), less);
    for (int64_t id : order) {
      if (groups.empty() || less(groups.back().front(), id)) groups.emplace_back();
      groups.back().push_back(id);
    }
    return Status::ok();
  })));
  if (!sorted) {
    std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.front() < b.front(); });
  }
  int64_t u = static_cast<int64_t>(groups.size());
  Dims y_dims = data.dims();
  y_dims[static_cast<size_t>(axis)] = u;
  std::vector<int64_t> src;
  src.reserve(static_cast<size_t>(u * slice_size));
  for (int64_t o = 0; o < outer; ++o) {
    for (const auto& g : groups) {
      for (int64_t i = 0; i < inner; ++i) src.push_back(offset(g.front(), o * inner + i));
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, take_elements(data, src, y_dims));
  ctx.set_output(0, std::move(y));
  if (ctx.wants_output(1)) {
    KILN_ASSIGN_OR_RETURN(Tensor * t, ctx.allocate_output(1, DataType::kInt64, {u}));
    for (int64_t g = 0; g < u; ++g) t->data<int64_t>()[g] = groups[static_cast<size_t>(g)].front();
  }
  if (ctx.wants_output(2)) {
    KILN_ASSIGN_OR_RETURN(Tensor * t, ctx.allocate_output(2, DataType::kInt64, {n}));
    for (int64_t g = 0; g < u; ++g) {
      for (int64_t id : groups[static_cast<size_t>(g)]) t->data<int64_t>()[id] = g;
    }
  }
  if (ctx.wants_output(3)) {
    KILN_ASSIGN_OR_RETURN(Tensor * t, ctx.allocate_output(3, DataType::kInt64, {u}));
    for (int64_t g = 0; g < u; ++g) {
      t->data<int64_t>()[g] = static_cast<int64_t>(groups[static_cast<size_t>(g)].size());
    }
  }
  return Status::ok();
}

Status unique_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* in = known_rank_shape(ctx, 0);
  Shape y = Shape::unknown_dims(1);
  Shape inverse = Shape::unknown_dims(1);
  if (ctx.node().has_attr("axis")) {
    y = Shape();
    if (in != nullptr) {
      KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.node().attr_int("axis", 0), in->rank()));
      y = *in;
      y[axis] = Dim();
      inverse[0] = (*in)[axis];
    }
  } else if (in != nullptr && in->fully_known()) {
    inverse[0] = Dim(checked_numel(*in->concrete()).is_ok() ? *checked_numel(*in->concrete()) : -1);
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, y));
  ctx.set_output_type(1, ir::ValueType::tensor(DataType::kInt64, Shape::unknown_dims(1)));
  ctx.set_output_type(2, ir::ValueType::tensor(DataType::kInt64, inverse));
  ctx.set_output_type(3, ir::ValueType::tensor(DataType::kInt64, Shape::unknown_dims(1)));
  return Status::ok();
}

}  // namespace

void register_tensor_ops_select(Registry& r) {
  r.add({.name = "TopK", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 2, .min_outputs = 2,
         .max_outputs = 2, .kernel = topk_kernel, .infer = topk_infer});
  r.add({.name = "NonZero", .domain = "", .since_version = 9, .min_inputs = 1, .max_inputs = 1,
         .kernel = nonzero_kernel, .infer = nonzero_infer});
  r.add({.name = "Unique", .domain = "", .since_version = 11, .min_inputs = 1, .max_inputs = 1, .min_outputs = 1,
         .max_outputs = 4, .kernel = unique_kernel, .infer = unique_infer});
}

}  // namespace kiln::ops
