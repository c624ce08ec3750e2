// Op family: RandomUniform(Like), RandomNormal(Like), Bernoulli, Multinomial. (Not yet implemented.)
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_random(Registry& r) { (void)r; }

}  // namespace kiln::ops
