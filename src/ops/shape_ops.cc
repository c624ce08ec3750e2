// Op family: shape manipulation. Shape, Size, Reshape, Flatten, Squeeze,
// Unsqueeze, Expand, Transpose, Identity.
//
// Each op: a kernel (the reference implementation) and a shape inference
// function, registered with its opset range at the bottom of the file.
#include "core/error.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

// ---- Identity ----------------------------------------------------------------

Status identity_kernel(KernelContext& ctx) {
  ctx.set_output(0, ctx.datum(0));
  return Status::ok();
}

Status identity_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::ok();
}

}  // namespace

void register_shape_ops(Registry& r) {
  r.add({.name = "Identity", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = identity_kernel, .infer = identity_infer});
}

}  // namespace kiln::ops
