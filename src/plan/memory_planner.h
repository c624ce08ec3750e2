// The memory planner ("dynamic tensor memory"): places every intermediate
// activation of the top-level graph in one arena per execution context.
//
// Each planned value lives from the node that produces it to its last use
// (a node whose subgraph reads it by name counts as a use). Values whose
// lifetimes do not overlap share bytes; values are placed greedily, largest
// first, at the lowest offset that fits between the blocks already placed
// with overlapping lifetimes. Two forms of reuse go further:
//  - views: the output of Identity/Reshape/Flatten/Squeeze/Unsqueeze/Dropout
//    (the reference kernels return a view of an owned input) shares its
//    input's block, whose lifetime then extends to the view's last use;
//  - in place: an elementwise node whose input dies at that node, has the
//    output's dtype and dims and fills the same bytes, writes its output into
//    that input's block (only for the reference kernels, which read element i
//    before writing element i);
//  - concat elimination: a Concat whose inputs are produced by other nodes,
//    used by it alone, and lie in contiguous slices of its output (every dim
//    before the axis is 1) gets one block; each input is placed at its slice,
//    so its producer writes straight into the output and the Concat itself
//    has nothing left to do (the runtime checks the inputs are in place).
// Graph inputs, outputs, constants, non-tensors and values whose dims are not
// known at build time are not planned: they live on the heap.
#pragma once

#include <string>
#include <vector>

#include "backends/tactic.h"
#include "ir/graph.h"
#include "plan/plan.h"
#include "plan/shapes.h"

namespace kiln::plan {

struct MemoryPlanOptions {
  bool in_place = true;
  // Where tactics are looked up for Tactic::output_over_input; nullptr: the global registry.
  const backends::TacticRegistry* registry = nullptr;
  bool views = true;
  bool concats = true;
  int64_t alignment = 64;
};

// `dims`: every value's dims at the profile's max shapes. `tactics`: the
// chosen tactic per top-level node: outputs go over an input for the
// elementwise ops' reference kernels and where the tactic says it can
// (Tactic::output_over_input).
MemoryPlan plan_memory(const ir::Graph& graph, const ValueDims& dims, const std::vector<std::string>& tactics,
                       const MemoryPlanOptions& options = {});

}  // namespace kiln::plan
