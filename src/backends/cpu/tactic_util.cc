#include "backends/cpu/tactics.h"
#include "core/error.h"
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
