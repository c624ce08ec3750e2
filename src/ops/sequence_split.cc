// SplitToSequence and ConcatFromSequence: a tensor to a sequence of slices
// along an axis and back (part of the sequence family, see sequence.cc).
#include <algorithm>

#include "core/error.h"
#include "ops/op_util.h"
#include "ops/registry.h"
#include "ops/sequence_internal.h"

namespace kiln::ops {
namespace {

// Elements before / after `axis` of `dims`.
int64_t outer_size(const Dims& dims, int64_t axis) {
  int64_t n = 1;
  for (int64_t i = 0; i < axis; ++i) n *= dims[static_cast<size_t>(i)];
  return n;
}
int64_t inner_size(const Dims& dims, int64_t axis) {
  int64_t n = 1;
  for (auto i = static_cast<size_t>(axis) + 1; i < dims.size(); ++i) n *= dims[i];
  return n;
}

// ---- SplitToSequence ---------------------------------------------------------

// The lengths of the pieces along an axis of length `dim`: from `split` (a
// scalar chunk length, the last piece taking what is left, or one length per
// piece), or pieces of 1 when `split` is absent.
Result<std::vector<int64_t>> piece_lengths(const ir::Node& node, const Tensor* split, int64_t dim) {
  if (split == nullptr) return std::vector<int64_t>(static_cast<size_t>(dim), 1);
  if (split->dtype() != DataType::kInt32 && split->dtype() != DataType::kInt64) {
    return invalid_argument("{}: input 'split' must be int32 or int64, got {}", node.describe(),
                            data_type_name(split->dtype()));
  }
  if (split->rank() > 1) {
    return invalid_argument("{}: input 'split' must be a scalar or 1-D, got {}", node.describe(),
                            split->debug_string());
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> values, to_int64_vector(*split));
  if (split->rank() == 0) {
    const int64_t chunk = values[0];
    KILN_CHECK_ARG(chunk > 0, "{}: scalar 'split' must be positive, got {}", node.describe(), chunk);
    std::vector<int64_t> lengths(static_cast<size_t>(dim / chunk), chunk);
    if (dim % chunk != 0) lengths.push_back(dim % chunk);
    return lengths;
  }
  int64_t total = 0;
  for (int64_t v : values) {
    KILN_CHECK_ARG(v >= 0, "{}: 'split' holds a negative length {}", node.describe(), v);
    total += v;
  }
  KILN_CHECK_ARG(total == dim, "{}: the lengths in 'split' sum to {} but the axis has length {}", node.describe(),
                 total, dim);
  return values;
}

Status split_to_sequence_kernel(KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  const Tensor* split = nullptr;
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(split, ctx.tensor_input(1));
  }
  KILN_CHECK_ARG(x->rank() > 0, "{}: input must have rank >= 1 to be split", node.describe());
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(node.attr_int("axis", 0), x->rank()));
  const int64_t keepdims = node.attr_int("keepdims", 1);
  KILN_CHECK_ARG(keepdims == 0 || keepdims == 1, "{}: attribute 'keepdims' must be 0 or 1, got {}", node.describe(),
                 keepdims);
  const Dims& dims = x->dims();
  const int64_t dim = dims[static_cast<size_t>(axis)];
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> lengths, piece_lengths(node, split, dim));
  // keepdims applies only when 'split' is absent (every piece has length 1).
  const bool drop_axis = split == nullptr && keepdims == 0;
  const int64_t outer = outer_size(dims, axis);
  const int64_t inner = inner_size(dims, axis);
  std::vector<Tensor> items;
  int64_t start = 0;
  for (int64_t len : lengths) {
    Dims piece_dims = dims;
    piece_dims[static_cast<size_t>(axis)] = len;
    if (drop_axis) piece_dims.erase(piece_dims.begin() + axis);
    KILN_ASSIGN_OR_RETURN(Tensor piece, Tensor::allocate(x->dtype(), piece_dims));
    for (int64_t o = 0; o < outer; ++o) {
      copy_elements(*x, (o * dim + start) * inner, piece, o * len * inner, len * inner);
    }
    items.push_back(std::move(piece));
    start += len;
  }
  ctx.set_output(0, Datum::sequence(std::move(items), x->dtype()));
  return Status::ok();
}

Status split_to_sequence_infer(InferContext& ctx) {
  const ir::ValueType& in = ctx.input_type(0);
  if (!in.is_tensor()) return Status::ok();
  if (!in.shape.rank_known()) {
    ctx.set_output_type(0, sequence_type(ir::ValueType::tensor(in.dtype)));
    return Status::ok();
  }
  const int64_t rank = in.shape.rank();
  KILN_CHECK_ARG(rank > 0, "{}: input must have rank >= 1 to be split", ctx.node().describe());
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.node().attr_int("axis", 0), rank));
  std::vector<Dim> dims = in.shape.dims();
  if (!ctx.has_input(1)) {
    if (ctx.node().attr_int("keepdims", 1) == 0) {
      dims.erase(dims.begin() + axis);
    } else {
      dims[static_cast<size_t>(axis)] = Dim(1);
    }
  } else {
    // The pieces' length along the axis is known when every piece has the same one.
    Dim len;
    if (const Tensor* split = ctx.input_constant(1)) {
      auto values = to_int64_vector(*split);
      const Dim& d = dims[static_cast<size_t>(axis)];
      if (values.is_ok() && !values->empty()) {
        const std::vector<int64_t>& v = *values;
        bool all_equal = std::all_of(v.begin(), v.end(), [&](int64_t x) { return x == v[0]; });
        bool even = split->rank() == 1 || (d.known() && v[0] > 0 && d.value % v[0] == 0);
        if (all_equal && even) len = Dim(v[0]);
      }
    }
    dims[static_cast<size_t>(axis)] = len;
  }
  ctx.set_output_type(0, sequence_type(ir::ValueType::tensor(in.dtype, Shape(std::move(dims)))));
  return Status::ok();
}

// ---- ConcatFromSequence ------------------------------------------------------

Status concat_from_sequence_kernel(KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  KILN_ASSIGN_OR_RETURN(const Datum* seq, sequence_input(ctx, 0, "input_sequence"));
  const ir::Attribute* axis_attr = node.attr("axis");
  KILN_CHECK_ARG(axis_attr != nullptr, "{}: attribute 'axis' is required", node.describe());
  const int64_t new_axis = node.attr_int("new_axis", 0);
  KILN_CHECK_ARG(new_axis == 0 || new_axis == 1, "{}: attribute 'new_axis' must be 0 or 1, got {}", node.describe(),
                 new_axis);
  const std::vector<Tensor>& items = seq->items();
  KILN_CHECK_ARG(!items.empty(), "{}: cannot concatenate an empty sequence", node.describe());
  const Tensor& first = items.front();
  // With new_axis each item gains an axis of length 1 at `axis`; the items are
  // then concatenated along it as they would be by Concat.
  auto item_dims = [&](const Tensor& t, int64_t axis) {
    Dims d = t.dims();
    if (new_axis == 1) d.insert(d.begin() + axis, 1);
    return d;
  };
  const int64_t rank = first.rank() + new_axis;
  KILN_CHECK_ARG(rank > 0, "{}: cannot concatenate scalars without new_axis=1", node.describe());
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(axis_attr->i, rank));
  const Dims base = item_dims(first, axis);
  int64_t total = 0;
  for (size_t k = 0; k < items.size(); ++k) {
    const Tensor& t = items[k];
    KILN_CHECK_ARG(t.dtype() == first.dtype(), "{}: item {} has type {} but item 0 has {}", node.describe(), k,
                   data_type_name(t.dtype()), data_type_name(first.dtype()));
    KILN_CHECK_ARG(t.rank() == first.rank(), "{}: item {} has rank {} but item 0 has rank {}", node.describe(), k,
                   t.rank(), first.rank());
    Dims d = item_dims(t, axis);
    for (size_t i = 0; i < d.size(); ++i) {
      KILN_CHECK_ARG(static_cast<int64_t>(i) == axis || d[i] == base[i],
                     "{}: item {} has shape {} but item 0 has {}; they may differ only on axis {}", node.describe(), k,
                     dims_to_string(t.dims()), dims_to_string(first.dims()), axis);
    }
    total += d[static_cast<size_t>(axis)];
  }
  Dims out_dims = base;
  out_dims[static_cast<size_t>(axis)] = total;
  KILN_ASSIGN_OR_RETURN(Tensor* out, ctx.allocate_output(0, first.dtype(), out_dims));
  const int64_t outer = outer_size(base, axis);
  const int64_t inner = inner_size(base, axis);
  for (int64_t o = 0; o < outer; ++o) {
    int64_t offset = 0;
    for (const Tensor& t : items) {
      const int64_t len = item_dims(t, axis)[static_cast<size_t>(axis)];
      copy_elements(t, o * len * inner, *out, (o * total + offset) * inner, len * inner);
      offset += len;
    }
  }
  return Status::ok();
}

Status concat_from_sequence_infer(InferContext& ctx) {
  const ir::ValueType elem = sequence_elem(ctx.input_type(0));
  if (!elem.is_tensor()) return Status::ok();
  const int64_t new_axis = ctx.node().attr_int("new_axis", 0);
  KILN_CHECK_ARG(new_axis == 0 || new_axis == 1, "{}: attribute 'new_axis' must be 0 or 1, got {}",
                 ctx.node().describe(), new_axis);
  if (!elem.shape.rank_known()) {
    ctx.set_output_type(0, ir::ValueType::tensor(elem.dtype));
    return Status::ok();
  }
  const int64_t rank = elem.shape.rank() + new_axis;
  if (rank == 0 || !ctx.node().has_attr("axis")) {
    ctx.set_output_type(0, ir::ValueType::tensor(elem.dtype));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.node().attr_int("axis", 0), rank));
  std::vector<Dim> dims = elem.shape.dims();
  if (new_axis == 1) {
    dims.insert(dims.begin() + axis, Dim());
  } else {
    dims[static_cast<size_t>(axis)] = Dim();  // the number of items is not known statically
  }
  ctx.set_output_type(0, ir::ValueType::tensor(elem.dtype, Shape(std::move(dims))));
  return Status::ok();
}

}  // namespace

void register_sequence_split(Registry& r) {
  r.add({.name = "SplitToSequence", .domain = "", .since_version = 11, .min_inputs = 1, .max_inputs = 2,
         .kernel = split_to_sequence_kernel, .infer = split_to_sequence_infer});
  r.add({.name = "ConcatFromSequence", .domain = "", .since_version = 11, .min_inputs = 1, .max_inputs = 1,
         .kernel = concat_from_sequence_kernel, .infer = concat_from_sequence_infer});
}

}  // namespace kiln::ops
