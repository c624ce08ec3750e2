// Pass: one graph-to-graph rewrite of the optimizer.
//
// A pass rewrites an ir::Graph in place and says whether it changed it. It
// must keep every graph output equal (within floating-point tolerance) on
// every input; a pass that cannot prove a rewrite legal leaves the graph
// alone. Passes handle the subgraphs of If/Loop/Scan where that is sensible
// (passes/graph_util.h: for_each_graph) and never rename or drop a value that
// is a graph output or captured by name from a subgraph.
#pragma once

#include <memory>
#include <string_view>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::passes {

class Pass {
 public:
  virtual ~Pass() = default;
  // The pass's name, as `kiln build --dump-after NAME` and the pipeline spell it.
  virtual std::string_view name() const = 0;
  // Rewrites `graph` (the top-level graph); true if anything changed.
  virtual Result<bool> run(ir::Graph& graph) = 0;
};

// The passes of the default pipeline (each in its own file).
std::unique_ptr<Pass> make_qdq_lowering();
std::unique_ptr<Pass> make_constant_folding();
std::unique_ptr<Pass> make_dead_code_elimination();
std::unique_ptr<Pass> make_layer_elimination();
std::unique_ptr<Pass> make_batchnorm_folding();
std::unique_ptr<Pass> make_layernorm_fusion();
std::unique_ptr<Pass> make_gelu_fusion();
std::unique_ptr<Pass> make_attention_fusion();
std::unique_ptr<Pass> make_horizontal_fusion();
std::unique_ptr<Pass> make_vertical_fusion();
std::unique_ptr<Pass> make_pointwise_fusion();
// Does nothing unless `enabled` (PipelineOptions::half_inputs).
std::unique_ptr<Pass> make_half_inputs(bool enabled);

}  // namespace kiln::passes
