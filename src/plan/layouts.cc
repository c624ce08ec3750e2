#include "plan/layouts.h"

#include <array>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "ops/op_def.h"
#include "passes/graph_util.h"

namespace kiln::plan {

namespace {

// Whether a float value's channels (dim 1, known) are whole blocks of `block`.
bool whole_blocks(const ir::Value* v, int64_t block) {
  const ir::ValueType& t = v->type();
  return block > 0 && t.shape.rank_known() && t.shape.rank() == 4 && t.shape[1].known() &&
         t.shape[1].value % block == 0;
}

}  // namespace

int64_t layout_block(std::string_view layout) {
  if (layout == "nChw16c") return 16;
  if (layout == "nChw8c") return 8;
  return 0;
}

BlockedSpan blocked_span(const ir::Value* v, const passes::Pinned& pinned,
                         const std::function<bool(const ir::Node&)>& transparent, std::string_view layout) {
  BlockedSpan span;
  const int64_t block = layout_block(layout);
  const bool padded = block > 0 && !whole_blocks(v, block);
  std::vector<const ir::Value*> todo = {v};
  while (!todo.empty() && span.spannable) {
    const ir::Value* w = todo.back();
    todo.pop_back();
    if (pinned(w) || w->uses().empty()) span.spannable = false;
    for (const ir::Use& u : w->uses()) {
      if (transparent(*u.node)) {
        if (padded || u.input_index != 0 || u.node->num_outputs() != 1 || u.node->output(0) == nullptr) {
          span.spannable = false;
        } else {
          todo.push_back(u.node->output(0));
        }
        continue;
      }
      if (u.input_index != 0 && u.input_index != 3) span.spannable = false;
      span.ends.push_back(u);
    }
  }
  return span;
}

Result<std::vector<ir::Node*>> lowered_nodes(const ir::Graph& graph, size_t layers, size_t kernels,
                                             std::string_view step) {
  std::vector<ir::Node*> nodes;
  for (const auto& n : graph.nodes()) nodes.push_back(n.get());
  if (nodes.size() != layers || nodes.size() != kernels) {
    return internal_error("{}: {} nodes, {} layers, {} kernels", step, nodes.size(), layers, kernels);
  }
  return nodes;
}

Status prepare_again(const backends::Tactic& tactic, const ir::Node& node, Layer& layer,
                     std::shared_ptr<const backends::Kernel>& kernel, std::string_view step) {
  auto k = tactic.prepare(node);
  if (!k.is_ok()) return k.status().with_context(std::string(step));
  kernel = std::shared_ptr<const backends::Kernel>(std::move(k).value());
  layer.state = kernel->serialize();
  return Status::ok();
}

Status check_blocked_marks(const ir::Graph& graph) {
  for (const auto& n : graph.nodes()) {
    auto m = ops::read_blocked_marks(*n);  // malformed marks: the kernels refuse them when prepared
    if (!m.is_ok()) continue;
    for (const auto& [read, input] : {std::pair{m->src, size_t{0}}, std::pair{m->residual, size_t{3}}}) {
      if (!read || input >= n->num_inputs() || n->input(input) == nullptr) continue;
      const ir::Value* v = n->input(input);
      if (whole_blocks(v, m->block)) continue;  // same bytes as NCHW: nothing to read past
      const ir::Node* p = v->producer();
      auto pm = p != nullptr ? ops::read_blocked_marks(*p) : Result<ops::BlockedMarks>(ops::BlockedMarks{});
      if (!pm.is_ok() || !pm->dst || pm->block != m->block || p->output(0) != v) {
        return invalid_argument("{} reads '{}' in padded blocks of {} channels, which its producer does not write",
                                n->describe(), v->name(), m->block);
      }
    }
  }
  return Status::ok();
}

Result<int64_t> assign_blocked_layouts(ir::Graph& graph, std::vector<Layer>& layers,
                                       std::vector<std::shared_ptr<const backends::Kernel>>& kernels,
                                       const backends::TacticRegistry& registry) {
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Node*> nodes,
                        lowered_nodes(graph, layers.size(), kernels.size(), "blocked layouts"));
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
  // A transparent node's kernel runs as it is on blocked bytes: no flags.
  auto transparent = [&](const ir::Node& n) {
    auto it = step.find(&n);
    return it != step.end() && tactic[it->second] != nullptr && tactic[it->second]->layout_transparent(n);
  };
  for (size_t k = 0; k < nodes.size(); ++k) {
    if (layout[k].empty() || nodes[k]->num_outputs() != 1) continue;
    const ir::Value* v = nodes[k]->output(0);
    if (v == nullptr) continue;
    const BlockedSpan span = blocked_span(v, pinned, transparent, layout[k]);
    bool ok = span.spannable;
    for (const ir::Use& u : span.ends) {
      auto it = step.find(u.node);
      ok = ok && it != step.end() && layout[it->second] == layout[k];
    }
    if (!ok) continue;
    flags[k][2] = 1;
    for (const ir::Use& u : span.ends) flags[step[u.node]][u.input_index == 0 ? 0 : 1] = 1;
    ++kept;
  }
  for (size_t k = 0; k < nodes.size(); ++k) {
    if (flags[k] == std::array<int64_t, 3>{0, 0, 0}) continue;
    const int64_t block = layout_block(layout[k]);
    nodes[k]->set_attr(ir::Attribute::make_ints("kiln_blocked", {flags[k][0], flags[k][1], flags[k][2], block}));
    KILN_RETURN_IF_ERROR(prepare_again(*tactic[k], *nodes[k], layers[k], kernels[k], "blocked layouts"));
  }
  return kept;
}

}  // namespace kiln::plan
