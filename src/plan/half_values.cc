#include "plan/half_values.h"

#include <unordered_map>

#include "core/error.h"
#include "passes/graph_util.h"
#include "plan/layouts.h"

namespace kiln::plan {

Result<int64_t> store_half_values(ir::Graph& graph, std::vector<Layer>& layers,
                                  std::vector<std::shared_ptr<const backends::Kernel>>& kernels,
                                  const backends::TacticRegistry& registry) {
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Node*> nodes,
                        lowered_nodes(graph, layers.size(), kernels.size(), "float16 values"));
  std::unordered_map<const ir::Node*, size_t> step;
  for (size_t k = 0; k < nodes.size(); ++k) step[nodes[k]] = k;
  const passes::Pinned pinned(graph);
  // Reads `v` as input 0 only, through a fused op (whose reference kernel
  // widens a float16 input 0) on a tactic that takes float16.
  auto reads_half = [&](const ir::Use& u, const ir::Value* v) {
    const ir::Node& n = *u.node;
    if (u.input_index != 0 || n.domain() != passes::kKilnDomain || n.op_type().rfind("Fused", 0) != 0) return false;
    for (size_t i = 1; i < n.num_inputs(); ++i) {
      if (n.input(i) == v) return false;
    }
    auto it = step.find(&n);
    if (it == step.end()) return false;
    const backends::Tactic* t = registry.find(layers[it->second].tactic);
    return t != nullptr && t->takes_float16_input(n);
  };
  int64_t stored = 0;
  for (size_t k = 0; k < nodes.size(); ++k) {
    ir::Node* p = nodes[k];
    if (!passes::ends_in_half_round_trip(*p)) continue;
    ir::Value* v = p->output(0);
    if (v->uses().empty() || pinned(v) || v->type().dtype != DataType::kFloat32) continue;
    bool all = true;
    for (const ir::Use& u : v->uses()) all = all && reads_half(u, v);
    if (!all) continue;
    ir::Graph* body = p->attr_graph("body");
    ir::Node* up = body->nodes().back().get();
    body->set_outputs({up->input(0)});
    body->remove_node(up);
    body->remove_unused_values();
    ir::ValueType t = v->type();
    t.dtype = DataType::kFloat16;
    v->set_type(std::move(t));
    // The Pointwise's kernel now writes float16: its tactic again, or the
    // reference when that tactic cannot.
    const backends::Tactic* tactic = registry.find(layers[k].tactic);
    if (tactic == nullptr || !tactic->supports(*p)) {
      tactic = &registry.reference();
      layers[k].tactic = std::string(tactic->name());
    }
    KILN_RETURN_IF_ERROR(prepare_again(*tactic, *p, layers[k], kernels[k], "float16 values"));
    ++stored;
  }
  return stored;
}

}  // namespace kiln::plan
