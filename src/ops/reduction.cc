// Op family: see families.h. (Not yet implemented.)
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_reduction(Registry& r) { (void)r; }

}  // namespace kiln::ops
