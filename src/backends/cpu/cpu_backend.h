// The CPU backend: our own kernels with run-time ISA dispatch, and oneDNN
// primitives, offered to the builder as tactics.
#pragma once

namespace kiln::backends {
class TacticRegistry;
}

namespace kiln::backends::cpu {

// Adds every CPU tactic this machine can run to `registry`.
void register_tactics(TacticRegistry& registry);

}  // namespace kiln::backends::cpu
