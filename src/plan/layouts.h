// Blocked activation layouts between kernels (onnxruntime's NCHWc
// transformer, TensorRT's reformat-free I/O): once tactics are chosen, a
// value stays in a tactic's blocked channel layout when its producer and
// every consumer name the same one (backends::Tactic::blocked_layout), so
// the reorders to and from NCHW around each of those kernels disappear.
//
// The value keeps its NCHW dims. Where its channels are whole blocks the
// byte size does not change; otherwise the last block is padded (oneDNN's
// padded blocked layouts, e.g. mobilenetv2's 24 channels in nChw16c), its
// storage is larger (ops::output_storage_bytes, which the memory plan and
// the kernels' allocations use) and only kernels read it: such a value does
// not pass through layout-transparent nodes, which see numel elements. Only
// the kernels at both ends know the bytes are blocked, through their node's
// "kiln_blocked" attribute, which the plan file stores with the node. Values
// that leave the plan (graph outputs) or that a subgraph captures stay NCHW.
#pragma once

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "backends/tactic.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "passes/graph_util.h"
#include "plan/plan.h"

namespace kiln::plan {

// A value and the nodes that read it as activations (input 0 or the
// residual input 3), seen through layout-transparent nodes
// (backends::Tactic::layout_transparent): a blocked layout spans the value
// and every transparent node's output up to these ends.
struct BlockedSpan {
  std::vector<ir::Use> ends;  // the readers that are not transparent
  bool spannable = true;      // false: a value on the way is pinned or unread, or read through another input
};
// `transparent(node)`: whether the tactic chosen for `node` is layout-transparent.
// A value whose channels are not whole blocks of `layout` spans no transparent
// node (an empty `layout`: no such limit).
BlockedSpan blocked_span(const ir::Value* v, const passes::Pinned& pinned,
                         const std::function<bool(const ir::Node&)>& transparent, std::string_view layout);

// Channels per block of a blocked layout name ("nChw16c": 16, "nChw8c": 8; 0 otherwise).
int64_t layout_block(std::string_view layout);

// Plan-load check of the "kiln_blocked" marks (a damaged plan must not make a
// kernel read past a value's storage): a kernel that reads input 0 or 3
// blocked in a layout that pads (channels not known to be whole blocks)
// needs that value written padded by its producer, in the same block.
Status check_blocked_marks(const ir::Graph& graph);

// The steps after tactic selection that change how values are stored
// (blocked layouts here, float16 values in half_values.h) share these:
// the top-level nodes of `graph`, one per layer and kernel (an error naming
// `step` if the counts differ), and preparing node's kernel again after its
// node changed, its state stored in the layer.
Result<std::vector<ir::Node*>> lowered_nodes(const ir::Graph& graph, size_t layers, size_t kernels,
                                             std::string_view step);
Status prepare_again(const backends::Tactic& tactic, const ir::Node& node, Layer& layer,
                     std::shared_ptr<const backends::Kernel>& kernel, std::string_view step);

// Marks the top-level nodes of `graph` (in the order of `layers` and
// `kernels`, one per node) and prepares again the kernels of the nodes it
// marks. Returns how many values stay blocked.
Result<int64_t> assign_blocked_layouts(ir::Graph& graph, std::vector<Layer>& layers,
                                       std::vector<std::shared_ptr<const backends::Kernel>>& kernels,
                                       const backends::TacticRegistry& registry);

}  // namespace kiln::plan
