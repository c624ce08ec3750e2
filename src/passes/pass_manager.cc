#include "passes/pass_manager.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/logging.h"
#include "passes/graph_util.h"

namespace kiln::passes {

int64_t count_nodes(const ir::Graph& graph) {
  int64_t n = 0;
  for (const auto& node : graph.nodes()) {
    ++n;
    for (const ir::Graph* sub : node->subgraphs()) n += count_nodes(*sub);
  }
  return n;
}

Result<std::vector<PassReport>> PassManager::run(ir::Graph& graph) const {
  std::vector<PassReport> reports;
  const InitializerInputsAreConstant scope(options_.initializer_inputs_are_constant);
  for (const auto& pass : passes_) {
    const std::string name(pass->name());
    const bool disabled =
        std::find(options_.disabled.begin(), options_.disabled.end(), name) != options_.disabled.end();
    if (!disabled) {
      PassReport report;
      report.name = name;
      report.nodes_before = count_nodes(graph);
      const auto start = std::chrono::steady_clock::now();
      auto changed = pass->run(graph);
      if (!changed.is_ok()) return changed.status().with_context(fmt::format("pass '{}'", name));
      report.milliseconds = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      report.changed = *changed;
      report.nodes_after = count_nodes(graph);
      if (options_.verify) {
        Status s = graph.verify();
        if (!s.is_ok()) return internal_error("pass '{}' left an invalid graph: {}", name, s.message());
      }
      KILN_LOG_DEBUG("pass {}: {} -> {} nodes in {:.2f} ms", name, report.nodes_before, report.nodes_after,
                     report.milliseconds);
      reports.push_back(std::move(report));
    }
    if (options_.dump != nullptr && options_.dump_after == name) *options_.dump << graph.to_string();
    if (!options_.stop_after.empty() && options_.stop_after == name) break;
  }
  return reports;
}

}  // namespace kiln::passes
