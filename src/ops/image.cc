// Op family: ImageDecoder. (Not yet implemented.)
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_image(Registry& r) { (void)r; }

}  // namespace kiln::ops
