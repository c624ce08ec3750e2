#include "backends/cpu/cpu_backend.h"

#include "backends/tactic.h"

namespace kiln::backends::cpu {

void register_tactics(TacticRegistry& registry) { (void)registry; }

}  // namespace kiln::backends::cpu
