// Op family: ai.onnx.ml operators. (Not yet implemented.)
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_ml(Registry& r) { (void)r; }

}  // namespace kiln::ops
