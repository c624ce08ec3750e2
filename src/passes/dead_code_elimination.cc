// Dead-code elimination: removes nodes none of whose outputs is read, is a
// graph output or is captured by a subgraph, and the values left unused.
#include "passes/graph_util.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

class DeadCodeElimination : public Pass {
 public:
  std::string_view name() const override { return "dead_code_elimination"; }
  Result<bool> run(ir::Graph& graph) override {
    return for_each_graph(graph, [](ir::Graph& g) -> Result<bool> { return remove_dead_nodes(g); });
  }
};

}  // namespace

std::unique_ptr<Pass> make_dead_code_elimination() { return std::make_unique<DeadCodeElimination>(); }

}  // namespace kiln::passes
