#include "passes/pipeline.h"

namespace kiln::passes {

// The pipeline is empty until the passes land; the builder already calls it.
Result<std::vector<PassReport>> optimize(ir::Graph& graph, const PipelineOptions& options) {
  (void)graph;
  (void)options;
  return std::vector<PassReport>{};
}

std::vector<std::string> pipeline_pass_names() { return {}; }

}  // namespace kiln::passes
