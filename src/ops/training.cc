// Op family: ai.onnx.preview.training: Momentum, Adagrad, Adam, Gradient. (Not yet implemented.)
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_training(Registry& r) { (void)r; }

}  // namespace kiln::ops
