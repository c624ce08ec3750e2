// Op family: Sequence*, SplitToSequence, ConcatFromSequence, SequenceMap, Optional*. (Not yet implemented.)
#include "ops/families.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_sequence(Registry& r) { (void)r; }

}  // namespace kiln::ops
