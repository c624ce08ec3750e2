// Op family: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearMatMul, QLinearConv. (Not yet implemented.)
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_quantization(Registry& r) { (void)r; }

}  // namespace kiln::ops
