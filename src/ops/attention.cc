// Op family: Attention, RotaryEmbedding, SwiGLU, LinearAttention, FlexAttention, CausalConvWithState. (Not yet implemented.)
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_attention(Registry& r) { (void)r; }

}  // namespace kiln::ops
