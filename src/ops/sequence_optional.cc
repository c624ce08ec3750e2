// Optional, OptionalHasElement, OptionalGetElement (part of the sequence
// family, see sequence.cc).
//
// An optional is a Datum of kind kOptional: empty, or holding a tensor or a
// sequence. Since opset 18, OptionalHasElement and OptionalGetElement also
// take a plain tensor or sequence (which always "has" its element), and
// OptionalHasElement's input may be left out (an empty optional).
#include "core/error.h"
#include "ops/op_util.h"
#include "ops/registry.h"
#include "ops/sequence_internal.h"

namespace kiln::ops {
namespace {

using Kind = ir::ValueType::Kind;

// The first opset where OptionalHasElement/OptionalGetElement take plain tensors and sequences.
constexpr int64_t kPlainInputsOpset = 18;

const char* kind_name(const Datum& d) {
  switch (d.kind()) {
    case Datum::Kind::kNone: return "nothing";
    case Datum::Kind::kTensor: return "a tensor";
    case Datum::Kind::kSequence: return "a sequence";
    case Datum::Kind::kOptional: return "an optional";
  }
  return "?";
}

// ---- Optional ----------------------------------------------------------------

// The `type` attribute (a TypeProto), or nullptr.
const ir::ValueType* type_attr(const ir::Node& node) {
  const ir::Attribute* a = node.attr("type");
  if (a == nullptr || a->kind != ir::Attribute::Kind::kTypeProto || a->types.empty()) return nullptr;
  return &a->types.front();
}

// Checks the input against the `type` attribute where both say something.
Status check_against_type(const ir::Node& node, const Datum& d, const ir::ValueType& type) {
  if (type.kind == Kind::kTensor) {
    KILN_CHECK_ARG(d.is_tensor(), "{}: attribute 'type' is a tensor type but the input is {}", node.describe(),
                   kind_name(d));
    KILN_CHECK_ARG(type.dtype == DataType::kUndefined || d.tensor().dtype() == type.dtype,
                   "{}: input has type {} but attribute 'type' says {}", node.describe(),
                   data_type_name(d.tensor().dtype()), data_type_name(type.dtype));
  } else if (type.kind == Kind::kSequence) {
    KILN_CHECK_ARG(d.is_sequence(), "{}: attribute 'type' is a sequence type but the input is {}", node.describe(),
                   kind_name(d));
  }
  return Status::ok();
}

Status optional_kernel(KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  const ir::ValueType* type = type_attr(node);
  if (!ctx.has_input(0)) {
    KILN_CHECK_ARG(type != nullptr, "{}: an Optional without input needs the attribute 'type'", node.describe());
    ctx.set_output(0, Datum::optional(nullptr));
    return Status::ok();
  }
  const Datum& d = ctx.datum(0);
  KILN_CHECK_ARG(d.is_tensor() || d.is_sequence(), "{}: input must be a tensor or a sequence, got {}",
                 node.describe(), kind_name(d));
  if (type != nullptr) KILN_RETURN_IF_ERROR(check_against_type(node, d, *type));
  ctx.set_output(0, Datum::optional(std::make_shared<const Datum>(d)));
  return Status::ok();
}

Status optional_infer(InferContext& ctx) {
  const ir::ValueType* type = type_attr(ctx.node());
  if (!ctx.has_input(0)) {
    KILN_CHECK_ARG(type != nullptr, "{}: an Optional without input needs the attribute 'type'",
                   ctx.node().describe());
    ctx.set_output_type(0, ir::ValueType::wrapping(Kind::kOptional, *type));
    return Status::ok();
  }
  const ir::ValueType& in = ctx.input_type(0);
  ctx.set_output_type(0, ir::ValueType::wrapping(Kind::kOptional, in.kind != Kind::kUnknown ? in
                                                                  : type != nullptr ? *type : ir::ValueType{}));
  return Status::ok();
}

// ---- OptionalHasElement, OptionalGetElement ----------------------------------

// Checks that input 0 is an optional, or (from opset 18) a tensor or sequence.
Status check_optional_input(const KernelContext& ctx) {
  const Datum& d = ctx.datum(0);
  if (d.is_optional()) return Status::ok();
  if (ctx.opset() >= kPlainInputsOpset) {
    KILN_CHECK_ARG(d.is_tensor() || d.is_sequence(), "{}: input must be an optional, a tensor or a sequence, got {}",
                   ctx.node().describe(), kind_name(d));
    return Status::ok();
  }
  return invalid_argument("{}: input must be an optional before opset {}, got {}", ctx.node().describe(),
                          kPlainInputsOpset, kind_name(d));
}

Status optional_has_element_kernel(KernelContext& ctx) {
  bool has = false;
  if (!ctx.has_input(0)) {
    KILN_CHECK_ARG(ctx.opset() >= kPlainInputsOpset, "{}: input is required before opset {}",
                   ctx.node().describe(), kPlainInputsOpset);
  } else {
    KILN_RETURN_IF_ERROR(check_optional_input(ctx));
    const Datum& d = ctx.datum(0);
    has = !d.is_optional() || d.optional_value() != nullptr;
  }
  ctx.set_output(0, Datum(Tensor::scalar<bool>(DataType::kBool, has)));
  return Status::ok();
}

Status optional_has_element_infer(InferContext& ctx) {
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kBool, Shape::of({})));
  return Status::ok();
}

Status optional_get_element_kernel(KernelContext& ctx) {
  KILN_CHECK_ARG(ctx.has_input(0), "{}: input is missing", ctx.node().describe());
  KILN_RETURN_IF_ERROR(check_optional_input(ctx));
  const Datum& d = ctx.datum(0);
  if (!d.is_optional()) {
    ctx.set_output(0, d);
    return Status::ok();
  }
  KILN_CHECK_ARG(d.optional_value() != nullptr, "{}: the optional input is empty", ctx.node().describe());
  ctx.set_output(0, *d.optional_value());
  return Status::ok();
}

Status optional_get_element_infer(InferContext& ctx) {
  const ir::ValueType& in = ctx.input_type(0);
  if (in.kind == Kind::kOptional) {
    ctx.set_output_type(0, in.elem ? *in.elem : ir::ValueType{});
  } else if (in.kind == Kind::kTensor || in.kind == Kind::kSequence) {
    KILN_CHECK_ARG(ctx.opset() >= kPlainInputsOpset, "{}: input must be an optional before opset {}, got {}",
                   ctx.node().describe(), kPlainInputsOpset, in.to_string());
    ctx.set_output_type(0, in);
  }
  return Status::ok();
}

}  // namespace

void register_sequence_optional(Registry& r) {
  r.add({.name = "Optional", .domain = "", .since_version = 15, .min_inputs = 0, .max_inputs = 1,
         .kernel = optional_kernel, .infer = optional_infer});
  // The input is required before opset 18; the kernel checks that.
  r.add({.name = "OptionalHasElement", .domain = "", .since_version = 15, .min_inputs = 0, .max_inputs = 1,
         .kernel = optional_has_element_kernel, .infer = optional_has_element_infer});
  r.add({.name = "OptionalGetElement", .domain = "", .since_version = 15, .min_inputs = 1, .max_inputs = 1,
         .kernel = optional_get_element_kernel, .infer = optional_get_element_infer});
}

}  // namespace kiln::ops
