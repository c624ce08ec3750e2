#include "plan/layouts.h"

#include <array>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "passes/graph_util.h"

namespace kiln::plan {

Result<int64_t> assign_blocked_layouts(ir::Graph& graph, std::vector<Layer>& layers,
                                       std::vector<std::shared_ptr<const backends::Kernel>>& kernels,
                                       const backends::TacticRegistry& registry) {
  std::vector<ir::Node*> nodes;
  for (const auto& n : graph.nodes()) nodes.push_back(n.get());
  if (nodes.size() != layers.size() || nodes.size() != kernels.size()) {
    return internal_error("blocked layouts: {} nodes, {} layers, {} kernels", nodes.size(), layers.size(),
                          kernels.size());
  }
  std::unordered_map<const ir::Node*, size_t> step;
  std::vector<std::string> layout(nodes.size());
  std::vector<const backends::Tactic*> tactic(nodes.size());
  for (size_t k = 0; k < nodes.size(); ++k) {
    step[nodes[k]] = k;
    tactic[k] = registry.find(layers[k].tactic);
    if (tactic[k] != nullptr) layout[k] = tactic[k]->blocked_layout(*nodes[k]);
  }
  const passes::Pinned pinned(graph);  // graph outputs and captured values stay NCHW

  // flags[k]: input 0, input 3 and output 0 of node k stay blocked.
  std::vector<std::array<int64_t, 3>> flags(nodes.size(), {0, 0, 0});
  int64_t kept = 0;
  for (size_t k = 0; k < nodes.size(); ++k) {
    if (layout[k].empty() || nodes[k]->num_outputs() != 1) continue;
    const ir::Value* v = nodes[k]->output(0);
    if (v == nullptr || v->uses().empty() || pinned(v)) continue;
    bool ok = true;
    for (const ir::Use& u : v->uses()) {
      auto it = step.find(u.node);
      ok = ok && it != step.end() && layout[it->second] == layout[k] && (u.input_index == 0 || u.input_index == 3);
    }
    if (!ok) continue;
    flags[k][2] = 1;
    for (const ir::Use& u : v->uses()) flags[step[u.node]][u.input_index == 0 ? 0 : 1] = 1;
    ++kept;
  }
  for (size_t k = 0; k < nodes.size(); ++k) {
    if (flags[k] == std::array<int64_t, 3>{0, 0, 0}) continue;
    const int64_t block = layout[k] == "nChw16c" ? 16 : 8;
    nodes[k]->set_attr(ir::Attribute::make_ints("kiln_blocked", {flags[k][0], flags[k][1], flags[k][2], block}));
    auto kernel = tactic[k]->prepare(*nodes[k]);
    if (!kernel.is_ok()) return kernel.status().with_context("blocked layouts");
    kernels[k] = std::shared_ptr<const backends::Kernel>(std::move(kernel).value());
    layers[k].state = kernels[k]->serialize();
  }
  return kept;
}

}  // namespace kiln::plan
