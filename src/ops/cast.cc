// Op family: Cast, CastLike.
//
// The standard types (numeric, bool, float16, bfloat16, string) convert with
// ops::cast_tensor: float to integer truncates toward zero (NaN and
// out-of-range values, undefined in ONNX, saturate here), to bool is x != 0,
// numbers print to strings and strings parse as numbers. The float8, float4,
// int4/uint4 and int2/uint2 types convert in cast_small.cc.
#include <algorithm>
#include <cctype>
#include <string>

#include "ops/cast_small.h"
#include "ops/elementwise_util.h"
#include "ops/families.h"

namespace kiln::ops {
namespace {

// Cast-1 names the target type as a string ("FLOAT", "INT64", ...).
Result<DataType> target_type(const ir::Node& node) {
  const ir::Attribute* a = node.attr("to");
  KILN_CHECK_ARG(a != nullptr, "{}: attribute 'to' is required", node.describe());
  if (a->kind == ir::Attribute::Kind::kString) {
    std::string lower = a->s;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto t = data_type_from_name(lower);
    KILN_CHECK_ARG(t.has_value(), "{}: attribute 'to' names unknown type '{}'", node.describe(), a->s);
    return *t;
  }
  auto t = data_type_from_int(a->i);
  KILN_CHECK_ARG(t.has_value(), "{}: attribute 'to' = {} is not a tensor element type", node.describe(), a->i);
  return *t;
}

Status cast_to(KernelContext& ctx, const Tensor& x, DataType to) {
  if (x.dtype() == to) {
    ctx.set_output(0, Datum(x));
    return Status::ok();
  }
  const bool saturate = ctx.node().attr_int("saturate", 1) != 0;
  Result<Tensor> out = is_small_type(x.dtype()) || is_small_type(to)
                           ? cast_small(x, to, saturate, ctx.node().attr_string("round_mode", "up"))
                           : cast_tensor(x, to);
  if (!out.is_ok()) return ctx.error(out.status());
  ctx.set_output(0, Datum(std::move(out).value()));
  return Status::ok();
}

Status cast_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(DataType to, target_type(ctx.node()));
  return cast_to(ctx, *x, to);
}

Status cast_like_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* like, ctx.tensor_input(1));
  return cast_to(ctx, *x, like->dtype());
}

Status cast_infer(InferContext& ctx) {
  auto to = target_type(ctx.node());
  if (!to.is_ok()) return to.status();
  const ir::ValueType& in = ctx.input_type(0);
  ctx.set_output_type(0, ir::ValueType::tensor(to.value(), in.is_tensor() ? in.shape : Shape()));
  return Status::ok();
}

Status cast_like_infer(InferContext& ctx) {
  const ir::ValueType& in = ctx.input_type(0);
  const ir::ValueType& like = ctx.input_type(1);
  ctx.set_output_type(0, ir::ValueType::tensor(like.is_tensor() ? like.dtype : DataType::kUndefined,
                                               in.is_tensor() ? in.shape : Shape()));
  return Status::ok();
}

}  // namespace

void register_cast(Registry& r) {
  r.add({.name = "Cast", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = cast_kernel, .infer = cast_infer});
  r.add({.name = "CastLike", .domain = "", .since_version = 15, .min_inputs = 2, .max_inputs = 2,
         .kernel = cast_like_kernel, .infer = cast_like_infer});
}

}  // namespace kiln::ops
