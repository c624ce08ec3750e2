#include <bit>
#include <cstdint>

#include "backends/cpu/gemm.h"
#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/float_types.h"
#include "ops/epilogue.h"
#include "ops/registry.h"

namespace kiln::backends::cpu {

OwnFusableTactic::OwnFusableTactic(std::string_view family, std::string_view op, Isa isa, bool fused)
    : isa_(isa),
      fused_(fused),
      op_(fused ? "Fused" + std::string(op) : std::string(op)),
      name_(std::string(fused ? "own.fused_" : "own.") + std::string(family) + "." + std::string(isa_name(isa))) {}

bool OwnFusableTactic::serves(const ir::Node& node) const {
  if (node.op_type() != op_) return false;
  return !fused_ || ops::Epilogue::from_node(node).is_ok();
}

bool is_f32(const ir::Value* v) {
  return v != nullptr && v->type().is_tensor() && v->type().dtype == DataType::kFloat32;
}

bool is_f16(const ir::Value* v) {
  return v != nullptr && v->type().is_tensor() && v->type().dtype == DataType::kFloat16;
}

namespace {

// n is Cast(to float32) of a bfloat16 value: its input is typed bfloat16 or
// comes from a Cast(to bfloat16).
bool casts_bf16_to_f32(const ir::Node& n) {
  if (!n.domain().empty() || n.op_type() != "Cast" || n.num_inputs() != 1) return false;
  if (n.attr_int("to", 0) != static_cast<int64_t>(DataType::kFloat32)) return false;
  const ir::Value* x = n.input(0);
  if (x == nullptr) return false;
  if (x->type().is_tensor() && x->type().dtype == DataType::kBFloat16) return true;
  const ir::Node* p = x->producer();
  return p != nullptr && p->domain().empty() && p->op_type() == "Cast" &&
         p->attr_int("to", 0) == static_cast<int64_t>(DataType::kBFloat16);
}

}  // namespace

bool holds_bf16_values(const ir::Value* v) {
  if (!is_f32(v) || v->producer() == nullptr) return false;
  const ir::Node& p = *v->producer();
  if (casts_bf16_to_f32(p)) return true;
  if (p.domain() != "kiln" || p.op_type() != "Pointwise" || p.num_outputs() != 1) return false;
  const ir::Graph* body = p.attr_graph("body");
  if (body == nullptr || body->nodes().empty() || body->outputs().size() != 1) return false;
  const ir::Node& last = *body->nodes().back();
  return last.num_outputs() == 1 && last.output(0) == body->outputs()[0] && casts_bf16_to_f32(last);
}

bool bf16_operands(const ir::Node& node) {
  const ir::Value* b = node.input(1);
  // The graph test first: the scan of the weights is the expensive part.
  return bf16_dot_supported() && holds_bf16_values(node.input(0)) && b != nullptr && b->is_constant() &&
         all_bf16_values(b->constant());
}

bool all_bf16_values(const Tensor& t) {
  if (t.dtype() != DataType::kFloat32) return false;
  for (float v : t.span<float>()) {
    if ((std::bit_cast<uint32_t>(v) & 0xffffu) != 0) return false;
  }
  return true;
}

bool all_f16_values(const Tensor& t) {
  return t.dtype() == DataType::kFloat32 && all_float16_values(t.span<float>());
}

bool f16_weights(const ir::Node& node) {
  const ir::Value* b = node.input(1);
  return f16c_supported() && b != nullptr && b->is_constant() &&
         all_f16_values(b->constant());
}

bool weights_served(const ir::Node& node, WeightFormat format, bool constant_weights) {
  switch (format) {
    case WeightFormat::kFp32:
      return true;
    case WeightFormat::kBf16:
      return constant_weights && bf16_operands(node);
    case WeightFormat::kFp16:
      return constant_weights && f16_weights(node);
  }
  return false;
}

Status run_reference(ops::KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  const ops::OpDef* def = ops::Registry::global().find(node.domain(), node.op_type(), node.opset());
  if (def == nullptr || def->kernel == nullptr) {
    return ctx.error(unimplemented("no reference kernel to fall back on"));
  }
  // Reference kernels may count on zero-filled outputs, which the arena
  // skips for fast kernels (Kernel::fills_outputs): the heap gives them.
  ctx.set_allocator(nullptr);
  return def->kernel(ctx);
}

}  // namespace kiln::backends::cpu
