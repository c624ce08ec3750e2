// Op family: elementwise. Arithmetic, math, activations, comparison, logic,
// Where, Clip and the variadic Sum/Mean/Max/Min.
//
// The ops live in several files (see the parts listed in elementwise_util.h);
// this file holds the family's entry point and the shared broadcast and
// shape inference helpers.
#include <algorithm>

#include "ops/elementwise_util.h"
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace ew {

BroadcastPlan plan_broadcast(const Dims& out, std::span<const Dims> inputs) {
  BroadcastPlan p;
  p.numel = 1;
  for (int64_t d : out) p.numel *= d;
  std::vector<std::vector<int64_t>> full;
  full.reserve(inputs.size());
  for (const Dims& in : inputs) full.push_back(broadcast_strides(in, out));
  p.strides.assign(inputs.size(), {});
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;  // contributes nothing to any offset
    bool merge = !p.out.empty();
    for (size_t k = 0; k < inputs.size() && merge; ++k) {
      // The previous merged dim continues this one if its stride is this
      // dim's stride times this dim's size (true for 0 == 0 * n as well).
      merge = p.strides[k].back() == full[k][d] * out[d];
    }
    if (merge) {
      p.out.back() *= out[d];
      for (size_t k = 0; k < inputs.size(); ++k) p.strides[k].back() = full[k][d];
    } else {
      p.out.push_back(out[d]);
      for (size_t k = 0; k < inputs.size(); ++k) p.strides[k].push_back(full[k][d]);
    }
  }
  if (p.out.empty()) {  // a scalar or all-ones output: one element
    p.out.push_back(1);
    for (auto& s : p.strides) s.push_back(0);
  }
  return p;
}

Status check_legacy_broadcast(KernelContext& ctx, const Tensor& a, const Tensor& b) {
  if (ctx.opset() >= 7) return Status::ok();
  const ir::Node& node = ctx.node();
  if (node.attr_int("broadcast", 0) == 0) {
    KILN_CHECK_ARG(a.dims() == b.dims(), "{}: inputs {} and {} differ in shape and broadcast=0 (opset {})",
                   node.describe(), a.debug_string(), b.debug_string(), ctx.opset());
    return Status::ok();
  }
  // Legacy broadcasting matches B to a block of A's dims starting at `axis`;
  // at the suffix position (the default) this is numpy broadcasting.
  if (node.has_attr("axis")) {
    int64_t axis = node.attr_int("axis", 0);
    if (axis < 0) axis += a.rank();
    if (axis != a.rank() - b.rank()) {
      return unimplemented("{}: legacy broadcast with axis={} (opset {}) is not supported", node.describe(),
                           node.attr_int("axis", 0), ctx.opset());
    }
  }
  return Status::ok();
}

Status infer_same_as_input(InferContext& ctx, size_t from) {
  ctx.set_output_type(0, ctx.input_type(from));
  return Status::ok();
}

Status infer_broadcast(InferContext& ctx, DataType dtype, size_t first, size_t last) {
  if (last == 0) last = ctx.num_inputs();
  if (dtype == DataType::kUndefined && ctx.input_type(first).is_tensor()) dtype = ctx.input_type(first).dtype;
  std::vector<Shape> shapes;
  for (size_t i = first; i < last; ++i) {
    if (!ctx.has_input(i)) continue;
    const ir::ValueType& t = ctx.input_type(i);
    shapes.push_back(t.is_tensor() ? t.shape : Shape::unknown_rank());
  }
  auto shape = broadcast_shapes(shapes);
  if (!shape.is_ok()) return shape.status().with_context(ctx.node().describe());
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, std::move(shape).value()));
  return Status::ok();
}

}  // namespace ew

void register_elementwise(Registry& r) {
  ew::register_binary_arithmetic(r);
  ew::register_unary_math(r);
  ew::register_activations(r);
  ew::register_logical(r);
  ew::register_variadic(r);
}

}  // namespace kiln::ops
