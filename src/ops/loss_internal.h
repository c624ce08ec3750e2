// Private to the loss family: its parts (one file each, registered by
// register_loss in loss.cc).
#pragma once

namespace kiln::ops {

class Registry;

void register_loss_math(Registry& r);     // Det, Shrink, CumProd, BitCast
void register_loss_scatter(Registry& r);  // MaxUnpool, TensorScatter

}  // namespace kiln::ops
