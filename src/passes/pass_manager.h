// PassManager: runs passes in order, timing each, verifying the graph after
// each (when asked) and dumping it after a named pass.
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "passes/pass.h"
#include "passes/pipeline.h"

namespace kiln::passes {

class PassManager {
 public:
  explicit PassManager(PipelineOptions options) : options_(std::move(options)) {}

  void add(std::unique_ptr<Pass> pass) { passes_.push_back(std::move(pass)); }
  const std::vector<std::unique_ptr<Pass>>& passes() const { return passes_; }

  // Runs every pass not in options.disabled, in order; stops after
  // options.stop_after when set. Errors name the pass that failed.
  Result<std::vector<PassReport>> run(ir::Graph& graph) const;

 private:
  PipelineOptions options_;
  std::vector<std::unique_ptr<Pass>> passes_;
};

// Nodes in `graph` and, recursively, in its subgraphs.
int64_t count_nodes(const ir::Graph& graph);

}  // namespace kiln::passes
