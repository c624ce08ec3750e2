// Axes handling and shape inference shared by the reduction ops.
#include "ops/reduction_util.h"

#include "core/error.h"
#include "ops/op_util.h"

namespace kiln::ops {

ReducePlan plan_reduction(const Dims& dims, const std::vector<int64_t>& axes, bool keepdims) {
  ReducePlan p;
  const size_t rank = dims.size();
  p.reduced.assign(rank, false);
  for (int64_t a : axes) p.reduced[static_cast<size_t>(a)] = true;
  p.keep_dims = dims;
  for (size_t d = 0; d < rank; ++d) {
    if (p.reduced[d]) {
      p.count *= dims[d];
      p.keep_dims[d] = 1;
    } else {
      p.out_dims.push_back(dims[d]);
    }
  }
  if (keepdims) p.out_dims = p.keep_dims;
  // Contiguous when no kept dim of size != 1 lies between two reduced dims of size != 1.
  int64_t first = -1;
  int64_t last = -1;
  for (size_t d = 0; d < rank; ++d) {
    if (p.reduced[d] && dims[d] != 1) {
      if (first < 0) first = static_cast<int64_t>(d);
      last = static_cast<int64_t>(d);
    }
  }
  p.contiguous = true;
  for (size_t d = 0; d < rank; ++d) {
    if (p.reduced[d]) continue;
    auto di = static_cast<int64_t>(d);
    if (first >= 0 && di > first && di < last && dims[d] != 1) p.contiguous = false;
    if (first < 0 || di < first) {
      p.outer *= dims[d];
    } else {
      p.inner *= dims[d];
    }
  }
  return p;
}

namespace {

// The axes a node names (not yet normalized): its `axes` attribute, or the
// values of its axes input (`axes_tensor`, nullptr when omitted).
Result<std::vector<int64_t>> read_axes(const ir::Node& node, const Tensor* axes_tensor, bool axes_from_input) {
  if (!axes_from_input) return node.attr_ints("axes");
  if (axes_tensor == nullptr) return std::vector<int64_t>{};
  KILN_CHECK_ARG(axes_tensor->rank() <= 1, "{}: axes must be 1-D, got shape {}", node.describe(),
                 dims_to_string(axes_tensor->dims()));
  auto axes = to_int64_vector(*axes_tensor);
  if (!axes.is_ok()) return axes.status().with_context(node.describe() + ": axes");
  return axes;
}

}  // namespace

Result<ReducePlan> make_reduce_plan(KernelContext& ctx, const Tensor& x, bool axes_from_input) {
  const ir::Node& node = ctx.node();
  const Tensor* axes_tensor = nullptr;
  if (ctx.has_input(1)) {
    KILN_CHECK_ARG(axes_from_input, "{}: {} takes no axes input at opset {} (use the axes attribute)",
                   node.describe(), node.op_type(), ctx.opset());
    KILN_ASSIGN_OR_RETURN(axes_tensor, ctx.tensor_input(1));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, read_axes(node, axes_tensor, axes_from_input));
  const bool keepdims = node.attr_int("keepdims", 1) != 0;
  if (axes.empty()) {
    if (axes_from_input && node.attr_int("noop_with_empty_axes", 0) != 0) {
      ReducePlan p;
      p.noop = true;
      p.out_dims = x.dims();
      return p;
    }
    for (int64_t d = 0; d < x.rank(); ++d) axes.push_back(d);
  }
  auto norm = normalize_axes(axes, x.rank());
  if (!norm.is_ok()) return norm.status().with_context(node.describe());
  return plan_reduction(x.dims(), norm.value(), keepdims);
}

Status infer_reduce(InferContext& ctx, bool axes_from_input, DataType dtype) {
  const ir::ValueType& in = ctx.input_type(0);
  if (dtype == DataType::kUndefined) dtype = in.is_tensor() ? in.dtype : DataType::kUndefined;
  if (!in.is_tensor() || !in.shape.rank_known()) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  const ir::Node& node = ctx.node();
  const bool keepdims = node.attr_int("keepdims", 1) != 0;
  const int64_t rank = in.shape.rank();
  const Tensor* axes_tensor = nullptr;
  if (axes_from_input && ctx.has_input(1)) {
    axes_tensor = ctx.input_constant(1);
    if (axes_tensor == nullptr) {  // axes decided at run time
      ctx.set_output_type(0, ir::ValueType::tensor(dtype, keepdims ? Shape::unknown_dims(rank) : Shape()));
      return Status::ok();
    }
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, read_axes(node, axes_tensor, axes_from_input));
  if (axes.empty()) {
    if (axes_from_input && node.attr_int("noop_with_empty_axes", 0) != 0) {
      ctx.set_output_type(0, ir::ValueType::tensor(dtype, in.shape));
      return Status::ok();
    }
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  }
  auto norm = normalize_axes(axes, rank);
  if (!norm.is_ok()) return norm.status().with_context(node.describe());
  std::vector<bool> reduced(static_cast<size_t>(rank), false);
  for (int64_t a : norm.value()) reduced[static_cast<size_t>(a)] = true;
  std::vector<Dim> out;
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[static_cast<size_t>(d)]) {
      out.push_back(in.shape[d]);
    } else if (keepdims) {
      out.emplace_back(1);
    }
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(std::move(out))));
  return Status::ok();
}

}  // namespace kiln::ops
