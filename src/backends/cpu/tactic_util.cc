#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "ops/registry.h"

namespace kiln::backends::cpu {

bool is_f32(const ir::Value* v) {
  return v != nullptr && v->type().is_tensor() && v->type().dtype == DataType::kFloat32;
}

Status run_reference(ops::KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  const ops::OpDef* def = ops::Registry::global().find(node.domain(), node.op_type(), node.opset());
  if (def == nullptr || def->kernel == nullptr) {
    return ctx.error(unimplemented("no reference kernel to fall back on"));
  }
  return def->kernel(ctx);
}

}  // namespace kiln::backends::cpu
