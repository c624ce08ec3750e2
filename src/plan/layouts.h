// Blocked activation layouts between kernels (onnxruntime's NCHWc
// transformer, TensorRT's reformat-free I/O): once tactics are chosen, a
// value stays in a tactic's blocked channel layout when its producer and
// every consumer name the same one (backends::Tactic::blocked_layout), so
// the reorders to and from NCHW around each of those kernels disappear.
//
// The value keeps its NCHW dims: the layouts tactics name hold whole
// channel blocks, so the byte size and the memory plan do not change. Only
// the kernels at both ends know the bytes are blocked, through their node's
// "kiln_blocked" attribute, which the plan file stores with the node. Values
// that leave the plan (graph outputs) or that a subgraph captures stay NCHW.
#pragma once

#include <memory>
#include <vector>

#include "backends/tactic.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "plan/plan.h"

namespace kiln::plan {

// Marks the top-level nodes of `graph` (in the order of `layers` and
// `kernels`, one per node) and prepares again the kernels of the nodes it
// marks. Returns how many values stay blocked.
Result<int64_t> assign_blocked_layouts(ir::Graph& graph, std::vector<Layer>& layers,
                                       std::vector<std::shared_ptr<const backends::Kernel>>& kernels,
                                       const backends::TacticRegistry& registry);

}  // namespace kiln::plan
