// Op family tensor_ops, part: selecting ranges. Slice, Compress, ReverseSequence.
#include <algorithm>
#include <limits>

#include "core/error.h"
#include "ops/registry.h"
#include "ops/tensor_ops_internal.h"

namespace kiln::ops {
namespace {

// ---- Slice -------------------------------------------------------------------

struct SliceArgs {
  std::vector<int64_t> starts, ends, axes, steps;
};

// Checks lengths, fills default axes/steps, rejects zero steps; normalizes axes.
Status finish_slice_args(SliceArgs& a, int64_t rank, bool has_axes, bool has_steps) {
  size_t n = a.starts.size();
  if (a.ends.size() != n) {
    return invalid_argument("starts has {} entries but ends has {}", n, a.ends.size());
  }
  if (!has_axes) {
    a.axes.clear();
    for (size_t i = 0; i < n; ++i) a.axes.push_back(static_cast<int64_t>(i));
  }
  if (!has_steps) a.steps.assign(n, 1);
  if (a.axes.size() != n) return invalid_argument("axes has {} entries but starts has {}", a.axes.size(), n);
  if (a.steps.size() != n) return invalid_argument("steps has {} entries but starts has {}", a.steps.size(), n);
  for (int64_t s : a.steps) {
    if (s == 0) return invalid_argument("steps {} contains 0", dims_to_string(a.steps));
  }
  KILN_ASSIGN_OR_RETURN(a.axes, normalize_axes(a.axes, rank));
  return Status::ok();
}

// The first index and element count of one sliced axis of size `dim`, with
// ONNX's clamping: negative start/end count from the back; then for step > 0
// both clamp to [0, dim], for step < 0 start clamps to [0, dim-1] and end to
// [-1, dim-1].
void slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t& first, int64_t& count) {
  first = 0;
  count = 0;
  if (dim == 0) return;
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    if (end > start) count = 1 + (end - start - 1) / step;
  } else {
    start = std::clamp<int64_t>(start, 0, dim - 1);
    end = std::clamp<int64_t>(end, -1, dim - 1);
    int64_t neg = step == std::numeric_limits<int64_t>::min() ? std::numeric_limits<int64_t>::max() : -step;
    if (start > end) count = 1 + (start - end - 1) / neg;
  }
  first = start;
}

Status slice_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  SliceArgs a;
  bool has_axes = false;
  bool has_steps = false;
  if (ctx.opset() < 10) {
    a.starts = ctx.node().attr_ints("starts");
    a.ends = ctx.node().attr_ints("ends");
    has_axes = ctx.node().has_attr("axes");
    a.axes = ctx.node().attr_ints("axes");
  } else {
    if (!ctx.has_input(1) || !ctx.has_input(2)) return ctx.error(invalid_argument("starts and ends are required"));
    std::vector<int64_t>* dst[] = {&a.starts, &a.ends, &a.axes, &a.steps};
    for (size_t i = 1; i < 5; ++i) {
      if (!ctx.has_input(i)) continue;
      KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
      auto v = to_int64_vector(*t);
      if (!v.is_ok()) return ctx.error(v.status().with_context(fmt::format("input {}", i)));
      *dst[i - 1] = std::move(v).value();
    }
    has_axes = ctx.has_input(3);
    has_steps = ctx.has_input(4);
  }
  KILN_RETURN_IF_ERROR(ctx.error(finish_slice_args(a, x->rank(), has_axes, has_steps)));
  // Per axis: source offset of each output coordinate.
  std::vector<int64_t> strides = strides_of(x->dims());
  Dims out_dims = x->dims();
  std::vector<int64_t> first(out_dims.size(), 0);
  std::vector<int64_t> step(out_dims.size(), 1);
  for (size_t i = 0; i < a.axes.size(); ++i) {
    size_t ax = static_cast<size_t>(a.axes[i]);
    slice_axis(x->dims()[ax], a.starts[i], a.ends[i], a.steps[i], first[ax], out_dims[ax]);
    step[ax] = a.steps[i];
  }
  std::vector<std::vector<int64_t>> table(out_dims.size());
  for (size_t d = 0; d < out_dims.size(); ++d) {
    for (int64_t c = 0; c < out_dims[d]; ++c) table[d].push_back((first[d] + c * step[d]) * strides[d]);
  }
  auto out = take_elements(*x, table_indices(out_dims, table), out_dims);
  if (!out.is_ok()) return ctx.error(out.status());
  ctx.set_output(0, std::move(out).value());
  return Status::ok();
}

Status slice_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* in = known_rank_shape(ctx, 0);
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, in ? Shape::unknown_dims(in->rank()) : Shape()));
  if (in == nullptr) return Status::ok();
  SliceArgs a;
  bool has_axes = false;
  bool has_steps = false;
  if (ctx.opset() < 10) {
    a.starts = ctx.node().attr_ints("starts");
    a.ends = ctx.node().attr_ints("ends");
    has_axes = ctx.node().has_attr("axes");
    a.axes = ctx.node().attr_ints("axes");
  } else {
    std::vector<int64_t>* dst[] = {&a.starts, &a.ends, &a.axes, &a.steps};
    for (size_t i = 1; i < 5; ++i) {
      if (!ctx.has_input(i)) continue;
      const Tensor* t = ctx.input_constant(i);
      if (t == nullptr) return Status::ok();
      KILN_ASSIGN_OR_RETURN(*dst[i - 1], to_int64_vector(*t));
    }
    has_axes = ctx.has_input(3);
    has_steps = ctx.has_input(4);
  }
  KILN_RETURN_IF_ERROR(finish_slice_args(a, in->rank(), has_axes, has_steps).with_context(ctx.node().describe()));
  Shape out = *in;
  for (size_t i = 0; i < a.axes.size(); ++i) {
    const Dim& d = (*in)[a.axes[i]];
    int64_t first = 0;
    int64_t count = 0;
    if (d.known()) slice_axis(d.value, a.starts[i], a.ends[i], a.steps[i], first, count);
    out[a.axes[i]] = d.known() ? Dim(count) : Dim();
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
  return Status::ok();
}

// ---- Compress ----------------------------------------------------------------

Status compress_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* cond, ctx.tensor_input(1));
  if (cond->dtype() != DataType::kBool || cond->rank() != 1) {
    return ctx.error(invalid_argument("condition must be a 1-D bool tensor, got {}", cond->debug_string()));
  }
  bool has_axis = ctx.node().has_attr("axis");
  Tensor data = *x;
  int64_t axis = 0;
  if (has_axis) {
    auto a = normalize_axis(ctx.node().attr_int("axis", 0), x->rank());
    if (!a.is_ok()) return ctx.error(a.status());
    axis = *a;
  } else {
    data = x->reshaped({x->numel()}).value();  // compress the flattened input
  }
  int64_t dim = data.dim(axis);
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < cond->numel(); ++i) {
    if (!cond->data<bool>()[i]) continue;
    if (i >= dim) {
      return ctx.error(out_of_range("condition selects index {} but the axis has size {}", i, dim));
    }
    kept.push_back(i);
  }
  int64_t outer = dims_product(data.dims(), 0, static_cast<size_t>(axis));
  int64_t inner = dims_product(data.dims(), static_cast<size_t>(axis) + 1, data.dims().size());
  Dims out_dims = data.dims();
  out_dims[static_cast<size_t>(axis)] = static_cast<int64_t>(kept.size());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, x->dtype(), out_dims));
  int64_t pos = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t k : kept) {
      copy_elements(data, (o * dim + k) * inner, *out, pos, inner);
      pos += inner;
    }
  }
  return Status::ok();
}

Status compress_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* in = known_rank_shape(ctx, 0);
  Shape out = Shape::unknown_dims(1);
  if (ctx.node().has_attr("axis")) {
    out = Shape();
    if (in != nullptr) {
      KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.node().attr_int("axis", 0), in->rank()));
      out = *in;
      out[axis] = Dim();
    }
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
  return Status::ok();
}

// ---- ReverseSequence ---------------------------------------------------------

Status reverse_sequence_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* lens_t, ctx.tensor_input(1));
  int64_t batch_axis = ctx.node().attr_int("batch_axis", 1);
  int64_t time_axis = ctx.node().attr_int("time_axis", 0);
  if (x->rank() < 2) return ctx.error(invalid_argument("input must have rank >= 2, got {}", x->debug_string()));
  if (batch_axis < 0 || batch_axis > 1 || time_axis < 0 || time_axis > 1 || batch_axis == time_axis) {
    return ctx.error(invalid_argument("batch_axis {} and time_axis {} must be 0 and 1 in some order", batch_axis,
                                      time_axis));
  }
  auto lens = to_int64_vector(*lens_t);
  if (!lens.is_ok()) return ctx.error(lens.status());
  int64_t batch = x->dim(batch_axis);
  int64_t time = x->dim(time_axis);
  if (lens_t->rank() != 1 || lens_t->dim(0) != batch) {
    return ctx.error(invalid_argument("sequence_lens {} must have shape [{}]", lens_t->debug_string(), batch));
  }
  for (int64_t len : *lens) {
    if (len < 0 || len > time) {
      return ctx.error(out_of_range("sequence length {} is outside [0, {}]", len, time));
    }
  }
  std::vector<int64_t> strides = strides_of(x->dims());
  int64_t bs = strides[static_cast<size_t>(batch_axis)];
  int64_t ts = strides[static_cast<size_t>(time_axis)];
  int64_t inner = dims_product(x->dims(), 2, x->dims().size());
  std::vector<int64_t> index(static_cast<size_t>(x->numel()));
  for (int64_t b = 0; b < batch; ++b) {
    int64_t len = (*lens)[static_cast<size_t>(b)];
    for (int64_t t = 0; t < time; ++t) {
      int64_t src_t = t < len ? len - 1 - t : t;
      for (int64_t i = 0; i < inner; ++i) {
        index[static_cast<size_t>(b * bs + t * ts + i)] = b * bs + src_t * ts + i;
      }
    }
  }
  auto out = take_elements(*x, index, x->dims());
  if (!out.is_ok()) return ctx.error(out.status());
  ctx.set_output(0, std::move(out).value());
  return Status::ok();
}

Status same_as_input_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::ok();
}

}  // namespace

void register_tensor_ops_slice(Registry& r) {
  r.add({.name = "Slice", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 5,
         .kernel = slice_kernel, .infer = slice_infer});
  r.add({.name = "Compress", .domain = "", .since_version = 9, .min_inputs = 2, .max_inputs = 2,
         .kernel = compress_kernel, .infer = compress_infer});
  r.add({.name = "ReverseSequence", .domain = "", .since_version = 10, .min_inputs = 2, .max_inputs = 2,
         .kernel = reverse_sequence_kernel, .infer = same_as_input_infer});
}

}  // namespace kiln::ops
