// Op family tensor_ops, part: gathering by index. Gather, GatherElements, GatherND.
//
// Indices may be negative (counting from the back of the indexed axis); any
// index outside [-dim, dim) is an OutOfRange error naming the node.
#include "core/error.h"
#include "ops/registry.h"
#include "ops/tensor_ops_internal.h"

namespace kiln::ops {
namespace {

// Maps index `i` into [0, dim) or fails.
Result<int64_t> resolve_index(int64_t i, int64_t dim) {
  if (i < -dim || i >= dim) return out_of_range("index {} is out of range for an axis of size {}", i, dim);
  return i < 0 ? i + dim : i;
}

// ---- Gather ------------------------------------------------------------------

Status gather_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* data, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* ind_t, ctx.tensor_input(1));
  auto axis_r = normalize_axis(ctx.node().attr_int("axis", 0), data->rank());
  if (!axis_r.is_ok()) return ctx.error(axis_r.status());
  int64_t axis = *axis_r;
  auto indices = to_int64_vector(*ind_t);
  if (!indices.is_ok()) return ctx.error(indices.status());
  int64_t dim = data->dim(axis);
  for (int64_t& i : *indices) {
    auto r = resolve_index(i, dim);
    if (!r.is_ok()) return ctx.error(r.status());
    i = *r;
  }
  Dims out_dims(data->dims().begin(), data->dims().begin() + axis);
  out_dims.insert(out_dims.end(), ind_t->dims().begin(), ind_t->dims().end());
  out_dims.insert(out_dims.end(), data->dims().begin() + axis + 1, data->dims().end());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, data->dtype(), out_dims));
  int64_t outer = dims_product(data->dims(), 0, static_cast<size_t>(axis));
  int64_t inner = dims_product(data->dims(), static_cast<size_t>(axis) + 1, data->dims().size());
  int64_t pos = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i : *indices) {
      copy_elements(*data, (o * dim + i) * inner, *out, pos, inner);
      pos += inner;
    }
  }
  return Status::ok();
}

Status gather_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* data = known_rank_shape(ctx, 0);
  const Shape* ind = known_rank_shape(ctx, 1);
  if (data == nullptr || ind == nullptr) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.node().attr_int("axis", 0), data->rank()));
  std::vector<Dim> out(data->dims().begin(), data->dims().begin() + axis);
  out.insert(out.end(), ind->dims().begin(), ind->dims().end());
  out.insert(out.end(), data->dims().begin() + axis + 1, data->dims().end());
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

// ---- GatherElements ----------------------------------------------------------

Status gather_elements_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* data, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* ind_t, ctx.tensor_input(1));
  if (ind_t->rank() != data->rank()) {
    return ctx.error(invalid_argument("indices {} must have the rank of data {}", ind_t->debug_string(),
                                      data->debug_string()));
  }
  auto axis_r = normalize_axis(ctx.node().attr_int("axis", 0), data->rank());
  if (!axis_r.is_ok()) return ctx.error(axis_r.status());
  int64_t axis = *axis_r;
  auto indices = to_int64_vector(*ind_t);
  if (!indices.is_ok()) return ctx.error(indices.status());
  if (ind_t->numel() > 0) {
    for (int64_t d = 0; d < data->rank(); ++d) {
      if (d != axis && ind_t->dim(d) > data->dim(d)) {
        return ctx.error(invalid_argument("indices {} exceed data {} on axis {}", ind_t->debug_string(),
                                          data->debug_string(), d));
      }
    }
  }
  std::vector<int64_t> strides = strides_of(data->dims());
  std::vector<int64_t> src(indices->size());
  std::vector<int64_t> coord(static_cast<size_t>(data->rank()), 0);
  for (size_t n = 0; n < indices->size(); ++n) {
    auto i = resolve_index((*indices)[n], data->dim(axis));
    if (!i.is_ok()) return ctx.error(i.status());
    int64_t offset = 0;
    for (size_t d = 0; d < coord.size(); ++d) {
      offset += (static_cast<int64_t>(d) == axis ? *i : coord[d]) * strides[d];
    }
    src[n] = offset;
    for (size_t d = coord.size(); d-- > 0;) {
      if (++coord[d] < ind_t->dims()[d]) break;
      coord[d] = 0;
    }
  }
  auto out = take_elements(*data, src, ind_t->dims());
  if (!out.is_ok()) return ctx.error(out.status());
  ctx.set_output(0, std::move(out).value());
  return Status::ok();
}

Status gather_elements_infer(InferContext& ctx) {
  const Shape* ind = known_rank_shape(ctx, 1);
  ctx.set_output_type(0, ir::ValueType::tensor(input_dtype(ctx, 0), ind ? *ind : Shape()));
  return Status::ok();
}

// ---- GatherND ----------------------------------------------------------------

Status gather_nd_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* data, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* ind_t, ctx.tensor_input(1));
  int64_t b = ctx.opset() >= 12 ? ctx.node().attr_int("batch_dims", 0) : 0;
  int64_t r = data->rank();
  int64_t q = ind_t->rank();
  if (r < 1 || q < 1) return ctx.error(invalid_argument("data and indices must have rank >= 1"));
  if (b < 0 || b >= std::min(r, q)) {
    return ctx.error(invalid_argument("batch_dims {} must be in [0, {})", b, std::min(r, q)));
  }
  int64_t m = ind_t->dim(q - 1);
  if (m < 1 || m > r - b) {
    return ctx.error(invalid_argument("the last dim of indices ({}) must be in [1, {}]", m, r - b));
  }
  for (int64_t d = 0; d < b; ++d) {
    if (data->dim(d) != ind_t->dim(d)) {
      return ctx.error(invalid_argument("batch dim {} differs: data {} vs indices {}", d, data->debug_string(),
                                        ind_t->debug_string()));
    }
  }
  auto indices = to_int64_vector(*ind_t);
  if (!indices.is_ok()) return ctx.error(indices.status());
  Dims out_dims(ind_t->dims().begin(), ind_t->dims().end() - 1);
  out_dims.insert(out_dims.end(), data->dims().begin() + b + m, data->dims().end());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, data->dtype(), out_dims));
  std::vector<int64_t> strides = strides_of(data->dims());
  int64_t batches = dims_product(data->dims(), 0, static_cast<size_t>(b));
  int64_t batch_size = dims_product(data->dims(), static_cast<size_t>(b), data->dims().size());
  int64_t per_batch = dims_product(ind_t->dims(), static_cast<size_t>(b), static_cast<size_t>(q - 1));
  int64_t slice = dims_product(data->dims(), static_cast<size_t>(b + m), data->dims().size());
  int64_t pos = 0;
  for (int64_t bi = 0; bi < batches; ++bi) {
    for (int64_t j = 0; j < per_batch; ++j) {
      const int64_t* tuple = indices->data() + (bi * per_batch + j) * m;
      int64_t offset = bi * batch_size;
      for (int64_t k = 0; k < m; ++k) {
        auto i = resolve_index(tuple[k], data->dim(b + k));
        if (!i.is_ok()) return ctx.error(i.status());
        offset += *i * strides[static_cast<size_t>(b + k)];
      }
      copy_elements(*data, offset, *out, pos, slice);
      pos += slice;
    }
  }
  return Status::ok();
}

Status gather_nd_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* data = known_rank_shape(ctx, 0);
  const Shape* ind = known_rank_shape(ctx, 1);
  int64_t b = ctx.opset() >= 12 ? ctx.node().attr_int("batch_dims", 0) : 0;
  if (data == nullptr || ind == nullptr || ind->rank() < 1 || !(*ind)[ind->rank() - 1].known()) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  int64_t m = (*ind)[ind->rank() - 1].value;
  if (b < 0 || m < 1 || b + m > data->rank()) {
    return invalid_argument("{}: indices of depth {} with batch_dims {} do not fit data of rank {}",
                            ctx.node().describe(), m, b, data->rank());
  }
  std::vector<Dim> out(ind->dims().begin(), ind->dims().end() - 1);
  out.insert(out.end(), data->dims().begin() + b + m, data->dims().end());
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

}  // namespace

void register_tensor_ops_gather(Registry& r) {
  r.add({.name = "Gather", .domain = "", .since_version = 1, .min_inputs = 2, .max_inputs = 2,
         .kernel = gather_kernel, .infer = gather_infer});
  r.add({.name = "GatherElements", .domain = "", .since_version = 11, .min_inputs = 2, .max_inputs = 2,
         .kernel = gather_elements_kernel, .infer = gather_elements_infer});
  r.add({.name = "GatherND", .domain = "", .since_version = 11, .min_inputs = 2, .max_inputs = 2,
         .kernel = gather_nd_kernel, .infer = gather_nd_infer});
}

}  // namespace kiln::ops
