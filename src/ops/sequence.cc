// Op family: sequences and optionals.
//
// Here: SequenceEmpty, SequenceConstruct, SequenceInsert, SequenceAt,
// SequenceErase, SequenceLength. SplitToSequence and ConcatFromSequence are in
// sequence_split.cc, SequenceMap in sequence_map.cc, Optional* in
// sequence_optional.cc.
//
// A sequence is a Datum of kind kSequence: its tensors (shared, never modified
// in place: every op builds a new vector) and its element type, which an empty
// sequence keeps too. All tensors of a sequence have that element type.
#include "core/error.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"
#include "ops/sequence_internal.h"

namespace kiln::ops {

Result<const Datum*> sequence_input(const KernelContext& ctx, size_t i, const std::string& what) {
  if (!ctx.has_input(i)) return invalid_argument("{}: input '{}' is missing", ctx.node().describe(), what);
  const Datum& d = ctx.datum(i);
  if (!d.is_sequence()) {
    return invalid_argument("{}: input '{}' must be a sequence of tensors, got {}", ctx.node().describe(), what,
                            d.is_tensor() ? "a tensor" : d.is_optional() ? "an optional" : "nothing");
  }
  return &d;
}

ir::ValueType sequence_type(ir::ValueType elem) {
  return ir::ValueType::wrapping(ir::ValueType::Kind::kSequence, std::move(elem));
}

ir::ValueType sequence_elem(const ir::ValueType& t) {
  if (t.kind != ir::ValueType::Kind::kSequence || !t.elem) return {};
  return *t.elem;
}

DataType items_dtype(const std::vector<Tensor>& items, DataType fallback) {
  return items.empty() ? fallback : items.front().dtype();
}

namespace {

// The static type of a tensor a sequence may hold together with items of
// type `a`: same dtype, dims where both agree.
ir::ValueType merge_elem(const ir::ValueType& a, const ir::ValueType& b) {
  if (a == b) return a;
  if (!a.is_tensor() || !b.is_tensor() || a.dtype != b.dtype) {
    if (a.is_tensor() && b.is_tensor() && a.dtype == DataType::kUndefined) return ir::ValueType::tensor(b.dtype);
    return {};
  }
  if (!a.shape.rank_known() || !b.shape.rank_known() || a.shape.rank() != b.shape.rank()) {
    return ir::ValueType::tensor(a.dtype);
  }
  std::vector<Dim> dims;
  for (int64_t i = 0; i < a.shape.rank(); ++i) dims.push_back(a.shape[i] == b.shape[i] ? a.shape[i] : Dim());
  return ir::ValueType::tensor(a.dtype, Shape(std::move(dims)));
}

// Checks that tensor `t` may join a sequence of element type `elem`.
Status check_item_dtype(const KernelContext& ctx, const Tensor& t, DataType elem, const std::string& what) {
  if (elem != DataType::kUndefined && t.dtype() != elem) {
    return invalid_argument("{}: {} has type {} but the sequence holds {}", ctx.node().describe(), what,
                            data_type_name(t.dtype()), data_type_name(elem));
  }
  return Status::ok();
}

// Reads the optional scalar `position` input (int32/int64) and maps it into
// [0, n) (or [0, n] when `allow_end`); negative positions count from the back.
Result<int64_t> read_position(const KernelContext& ctx, size_t i, int64_t n, bool allow_end) {
  KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
  if (t->dtype() != DataType::kInt32 && t->dtype() != DataType::kInt64) {
    return invalid_argument("{}: input 'position' must be int32 or int64, got {}", ctx.node().describe(),
                            data_type_name(t->dtype()));
  }
  if (t->numel() != 1) {
    return invalid_argument("{}: input 'position' must be a scalar, got {}", ctx.node().describe(),
                            t->debug_string());
  }
  KILN_ASSIGN_OR_RETURN(int64_t pos, to_int64_scalar(*t));
  const int64_t hi = allow_end ? n : n - 1;
  if (pos < -n || pos > hi) {
    return out_of_range("{}: position {} is out of range [{}, {}] for a sequence of {} tensors",
                        ctx.node().describe(), pos, -n, hi, n);
  }
  return pos < 0 ? pos + n : pos;
}

// ---- SequenceEmpty -----------------------------------------------------------

Result<DataType> empty_dtype(const ir::Node& node) {
  const int64_t v = node.attr_int("dtype", static_cast<int64_t>(DataType::kFloat32));
  auto t = data_type_from_int(v);
  KILN_CHECK_ARG(t.has_value(), "{}: attribute 'dtype' = {} is not a tensor element type", node.describe(), v);
  return *t;
}

Status sequence_empty_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DataType dtype, empty_dtype(ctx.node()));
  ctx.set_output(0, Datum::sequence({}, dtype));
  return Status::ok();
}

Status sequence_empty_infer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DataType dtype, empty_dtype(ctx.node()));
  ctx.set_output_type(0, sequence_type(ir::ValueType::tensor(dtype)));
  return Status::ok();
}

// ---- SequenceConstruct -------------------------------------------------------

Status sequence_construct_kernel(KernelContext& ctx) {
  std::vector<Tensor> items;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
    KILN_RETURN_IF_ERROR(check_item_dtype(ctx, *t, items_dtype(items, DataType::kUndefined),
                                          "input " + std::to_string(i)));
    items.push_back(*t);
  }
  DataType dtype = items_dtype(items, DataType::kUndefined);
  ctx.set_output(0, Datum::sequence(std::move(items), dtype));
  return Status::ok();
}

Status sequence_construct_infer(InferContext& ctx) {
  ir::ValueType elem = ctx.input_type(0);
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const ir::ValueType& t = ctx.input_type(i);
    if (t.is_tensor() && elem.is_tensor() && t.dtype != DataType::kUndefined && elem.dtype != DataType::kUndefined &&
        t.dtype != elem.dtype) {
      return invalid_argument("{}: input {} has type {} but input 0 has {}; a sequence holds one element type",
                              ctx.node().describe(), i, data_type_name(t.dtype), data_type_name(elem.dtype));
    }
    if (i > 0) elem = merge_elem(elem, t);
  }
  ctx.set_output_type(0, sequence_type(std::move(elem)));
  return Status::ok();
}

// ---- SequenceInsert ----------------------------------------------------------

Status sequence_insert_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Datum* seq, sequence_input(ctx, 0, "input_sequence"));
  KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(1));
  KILN_RETURN_IF_ERROR(check_item_dtype(ctx, *t, seq->elem_type(), "input 'tensor'"));
  const auto n = static_cast<int64_t>(seq->items().size());
  int64_t pos = n;
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(pos, read_position(ctx, 2, n, /*allow_end=*/true));
  }
  std::vector<Tensor> items = seq->items();
  items.insert(items.begin() + pos, *t);
  ctx.set_output(0, Datum::sequence(std::move(items), t->dtype()));
  return Status::ok();
}

Status sequence_insert_infer(InferContext& ctx) {
  ir::ValueType elem = sequence_elem(ctx.input_type(0));
  const ir::ValueType& t = ctx.input_type(1);
  if (elem.is_tensor() && t.is_tensor() && elem.dtype != DataType::kUndefined && t.dtype != DataType::kUndefined &&
      elem.dtype != t.dtype) {
    return invalid_argument("{}: input 'tensor' has type {} but the sequence holds {}", ctx.node().describe(),
                            data_type_name(t.dtype), data_type_name(elem.dtype));
  }
  if (elem.kind == ir::ValueType::Kind::kUnknown) {
    ctx.set_output_type(0, sequence_type(t.is_tensor() ? ir::ValueType::tensor(t.dtype) : ir::ValueType{}));
  } else {
    ctx.set_output_type(0, sequence_type(merge_elem(elem, t)));
  }
  return Status::ok();
}

// ---- SequenceAt, SequenceErase, SequenceLength -------------------------------

Status sequence_at_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Datum* seq, sequence_input(ctx, 0, "input_sequence"));
  const auto n = static_cast<int64_t>(seq->items().size());
  KILN_ASSIGN_OR_RETURN(int64_t pos, read_position(ctx, 1, n, /*allow_end=*/false));
  ctx.set_output(0, Datum(seq->items()[static_cast<size_t>(pos)]));
  return Status::ok();
}

Status sequence_at_infer(InferContext& ctx) {
  ctx.set_output_type(0, sequence_elem(ctx.input_type(0)));
  return Status::ok();
}

Status sequence_erase_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Datum* seq, sequence_input(ctx, 0, "input_sequence"));
  const auto n = static_cast<int64_t>(seq->items().size());
  if (n == 0) return invalid_argument("{}: cannot erase from an empty sequence", ctx.node().describe());
  int64_t pos = n - 1;
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(pos, read_position(ctx, 1, n, /*allow_end=*/false));
  }
  std::vector<Tensor> items = seq->items();
  items.erase(items.begin() + pos);
  ctx.set_output(0, Datum::sequence(std::move(items), seq->elem_type()));
  return Status::ok();
}

Status same_as_input_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::ok();
}

Status sequence_length_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Datum* seq, sequence_input(ctx, 0, "input_sequence"));
  ctx.set_output(0, Datum(Tensor::scalar<int64_t>(DataType::kInt64, static_cast<int64_t>(seq->items().size()))));
  return Status::ok();
}

Status sequence_length_infer(InferContext& ctx) {
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kInt64, Shape::of({})));
  return Status::ok();
}

}  // namespace

void register_sequence(Registry& r) {
  r.add({.name = "SequenceEmpty", .domain = "", .since_version = 11, .min_inputs = 0, .max_inputs = 0,
         .kernel = sequence_empty_kernel, .infer = sequence_empty_infer});
  r.add({.name = "SequenceConstruct", .domain = "", .since_version = 11, .min_inputs = 1, .max_inputs = -1,
         .kernel = sequence_construct_kernel, .infer = sequence_construct_infer});
  r.add({.name = "SequenceInsert", .domain = "", .since_version = 11, .min_inputs = 2, .max_inputs = 3,
         .kernel = sequence_insert_kernel, .infer = sequence_insert_infer});
  r.add({.name = "SequenceAt", .domain = "", .since_version = 11, .min_inputs = 2, .max_inputs = 2,
         .kernel = sequence_at_kernel, .infer = sequence_at_infer});
  r.add({.name = "SequenceErase", .domain = "", .since_version = 11, .min_inputs = 1, .max_inputs = 2,
         .kernel = sequence_erase_kernel, .infer = same_as_input_infer});
  r.add({.name = "SequenceLength", .domain = "", .since_version = 11, .min_inputs = 1, .max_inputs = 1,
         .kernel = sequence_length_kernel, .infer = sequence_length_infer});
  register_sequence_split(r);
  register_sequence_map(r);
  register_sequence_optional(r);
}

}  // namespace kiln::ops
