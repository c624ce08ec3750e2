// Float16 activations for fp16 builds (TensorRT's fp16 I/O between layers,
// where the layers take it). Once tactics are chosen, the value of a 16-bit
// round trip (a kiln.Pointwise ending in Cast(to float16) -> Cast(to float),
// see passes/half_inputs.cc) is stored as float16 when every reader's tactic
// takes a float16 input 0 (backends::Tactic::takes_float16_input): the body
// drops its final Cast, the value's type becomes float16 (half the bytes in
// the memory plan and in the caches), and the Pointwise kernel is prepared
// again. The readers widen the value exactly, so no output changes.
#pragma once

#include <memory>
#include <vector>

#include "backends/tactic.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "plan/plan.h"

namespace kiln::plan {

// The top-level nodes of `graph` in the order of `layers` and `kernels` (one
// per node). Returns how many values became float16.
Result<int64_t> store_half_values(ir::Graph& graph, std::vector<Layer>& layers,
                                  std::vector<std::shared_ptr<const backends::Kernel>>& kernels,
                                  const backends::TacticRegistry& registry);

}  // namespace kiln::plan
