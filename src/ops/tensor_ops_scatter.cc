// Op family tensor_ops, part: scattering by index. ScatterElements, ScatterND,
// and the deprecated Scatter (opset 9-10, ScatterElements without reduction).
//
// The output is a copy of data with updates written (or reduced: add, mul
// since opset 16; max, min since 18) at the indexed positions, in the order of
// the updates. Indices may be negative; out-of-range ones are an error.
#include <algorithm>

#include "core/error.h"
#include "ops/registry.h"
#include "ops/tensor_ops_internal.h"

namespace kiln::ops {
namespace {

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

Result<Reduction> parse_reduction(const ir::Node& node) {
  std::string r = node.attr_string("reduction", "none");
  if (r == "none") return Reduction::kNone;
  if (node.opset() >= 16 && r == "add") return Reduction::kAdd;
  if (node.opset() >= 16 && r == "mul") return Reduction::kMul;
  if (node.opset() >= 18 && r == "max") return Reduction::kMax;
  if (node.opset() >= 18 && r == "min") return Reduction::kMin;
  return invalid_argument("reduction '{}' is not valid at opset {}", r, node.opset());
}

// Writes update slice n (elements [n*slice, (n+1)*slice) of updates) onto
// out at dst[n], combining with `red`.
Status apply_updates(Tensor& out, const Tensor& updates, const std::vector<int64_t>& dst, int64_t slice,
                     Reduction red) {
  if (red == Reduction::kNone) {
    for (size_t n = 0; n < dst.size(); ++n) copy_elements(updates, static_cast<int64_t>(n) * slice, out, dst[n], slice);
    return Status::ok();
  }
  return visit_numeric(out.dtype(), "Scatter reduction", [&](auto tag) -> Status {
    using T = decltype(tag);
    using C = compute_type_t<T>;
    T* o = out.data<T>();
    const T* u = updates.data<T>();
    for (size_t n = 0; n < dst.size(); ++n) {
      for (int64_t s = 0; s < slice; ++s) {
        C a = static_cast<C>(o[dst[n] + s]);
        C b = static_cast<C>(u[static_cast<int64_t>(n) * slice + s]);
        C v = a;
        switch (red) {
          case Reduction::kAdd: v = static_cast<C>(a + b); break;
          case Reduction::kMul: v = static_cast<C>(a * b); break;
          case Reduction::kMax: v = std::max(a, b); break;
          case Reduction::kMin: v = std::min(a, b); break;
          case Reduction::kNone: v = b; break;
        }
        o[dst[n] + s] = static_cast<T>(v);
      }
    }
    return Status::ok();
  });
}

Result<int64_t> resolve_index(int64_t i, int64_t dim) {
  if (i < -dim || i >= dim) return out_of_range("index {} is out of range for an axis of size {}", i, dim);
  return i < 0 ? i + dim : i;
}

// ---- ScatterElements / Scatter -----------------------------------------------

Status scatter_elements_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* data, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* ind_t, ctx.tensor_input(1));
  KILN_ASSIGN_OR_RETURN(const Tensor* updates, ctx.tensor_input(2));
  auto red = parse_reduction(ctx.node());
  if (!red.is_ok()) return ctx.error(red.status());
  if (ind_t->rank() != data->rank() || updates->dims() != ind_t->dims() || updates->dtype() != data->dtype()) {
    return ctx.error(invalid_argument("indices {} and updates {} must have one shape and the rank of data {}",
                                      ind_t->debug_string(), updates->debug_string(), data->debug_string()));
  }
  auto axis_r = normalize_axis(ctx.node().attr_int("axis", 0), data->rank());
  if (!axis_r.is_ok()) return ctx.error(axis_r.status());
  int64_t axis = *axis_r;
  if (ind_t->numel() > 0) {
    for (int64_t d = 0; d < data->rank(); ++d) {
      if (d != axis && ind_t->dim(d) > data->dim(d)) {
        return ctx.error(invalid_argument("indices {} exceed data {} on axis {}", ind_t->debug_string(),
                                          data->debug_string(), d));
      }
    }
  }
  auto indices = to_int64_vector(*ind_t);
  if (!indices.is_ok()) return ctx.error(indices.status());
  std::vector<int64_t> strides = strides_of(data->dims());
  std::vector<int64_t> dst(indices->size());
  std::vector<int64_t> coord(static_cast<size_t>(data->rank()), 0);
  for (size_t n = 0; n < indices->size(); ++n) {
    auto i = resolve_index((*indices)[n], data->dim(axis));
    if (!i.is_ok()) return ctx.error(i.status());
    int64_t offset = 0;
    for (size_t d = 0; d < coord.size(); ++d) {
      offset += (static_cast<int64_t>(d) == axis ? *i : coord[d]) * strides[d];
    }
    dst[n] = offset;
    for (size_t d = coord.size(); d-- > 0;) {
      if (++coord[d] < ind_t->dims()[d]) break;
      coord[d] = 0;
    }
  }
  Tensor out = data->clone();
  KILN_RETURN_IF_ERROR(ctx.error(apply_updates(out, *updates, dst, 1, *red)));
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

// ---- ScatterND ---------------------------------------------------------------

Status scatter_nd_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* data, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* ind_t, ctx.tensor_input(1));
  KILN_ASSIGN_OR_RETURN(const Tensor* updates, ctx.tensor_input(2));
  auto red = parse_reduction(ctx.node());
  if (!red.is_ok()) return ctx.error(red.status());
  int64_t q = ind_t->rank();
  if (q < 1 || data->rank() < 1) return ctx.error(invalid_argument("data and indices must have rank >= 1"));
  int64_t k = ind_t->dim(q - 1);
  if (k < 1 || k > data->rank()) {
    return ctx.error(invalid_argument("the last dim of indices ({}) must be in [1, {}]", k, data->rank()));
  }
  Dims want(ind_t->dims().begin(), ind_t->dims().end() - 1);
  want.insert(want.end(), data->dims().begin() + k, data->dims().end());
  if (updates->dims() != want || updates->dtype() != data->dtype()) {
    return ctx.error(invalid_argument("updates {} must be {}{}", updates->debug_string(),
                                      data_type_name(data->dtype()), dims_to_string(want)));
  }
  auto indices = to_int64_vector(*ind_t);
  if (!indices.is_ok()) return ctx.error(indices.status());
  std::vector<int64_t> strides = strides_of(data->dims());
  int64_t slice = dims_product(data->dims(), static_cast<size_t>(k), data->dims().size());
  int64_t count = dims_product(ind_t->dims(), 0, static_cast<size_t>(q - 1));
  std::vector<int64_t> dst(static_cast<size_t>(count));
  for (int64_t n = 0; n < count; ++n) {
    int64_t offset = 0;
    for (int64_t j = 0; j < k; ++j) {
      auto i = resolve_index((*indices)[static_cast<size_t>(n * k + j)], data->dim(j));
      if (!i.is_ok()) return ctx.error(i.status());
      offset += *i * strides[static_cast<size_t>(j)];
    }
    dst[static_cast<size_t>(n)] = offset;
  }
  Tensor out = data->clone();
  KILN_RETURN_IF_ERROR(ctx.error(apply_updates(out, *updates, dst, slice, *red)));
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status same_as_input_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::ok();
}

}  // namespace

void register_tensor_ops_scatter(Registry& r) {
  r.add({.name = "ScatterElements", .domain = "", .since_version = 11, .min_inputs = 3, .max_inputs = 3,
         .kernel = scatter_elements_kernel, .infer = same_as_input_infer});
  r.add({.name = "ScatterND", .domain = "", .since_version = 11, .min_inputs = 3, .max_inputs = 3,
         .kernel = scatter_nd_kernel, .infer = same_as_input_infer});
  // Deprecated at opset 11 in favour of ScatterElements, which it equals.
  r.add({.name = "Scatter", .domain = "", .since_version = 9, .until_version = 10, .min_inputs = 3,
         .max_inputs = 3, .kernel = scatter_elements_kernel, .infer = same_as_input_infer});
}

}  // namespace kiln::ops
