// Op family: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss, Det, Shrink, MaxUnpool, CumProd, BitCast, TensorScatter. (Not yet implemented.)
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_loss(Registry& r) { (void)r; }

}  // namespace kiln::ops
