#include "plan/shapes.h"

#include <unordered_set>
#include <utility>
#include <vector>

#include "ops/shape_inference.h"

namespace kiln::plan {
namespace {

void save_types(const ir::Graph& g, std::vector<std::pair<ir::Value*, ir::ValueType>>& saved) {
  for (ir::Value* v : all_values(g)) saved.emplace_back(v, v->type());
  for (const auto& node : g.nodes()) {
    for (const ir::Graph* sub : node->subgraphs()) save_types(*sub, saved);
  }
}

}  // namespace

std::vector<ir::Value*> all_values(const ir::Graph& g) {
  std::vector<ir::Value*> out;
  std::unordered_set<const ir::Value*> seen;
  auto add = [&](ir::Value* v) {
    if (v != nullptr && seen.insert(v).second) out.push_back(v);
  };
  for (ir::Value* v : g.inputs()) add(v);
  for (ir::Value* v : g.captures()) add(v);
  for (ir::Value* v : g.constants()) add(v);
  for (const auto& node : g.nodes()) {
    for (ir::Value* v : node->inputs()) add(v);
    for (ir::Value* v : node->outputs()) add(v);
  }
  for (ir::Value* v : g.outputs()) add(v);
  return out;
}

ValueDims static_shapes(const ir::Graph& graph) {
  ValueDims out;
  for (const ir::Value* v : all_values(graph)) {
    if (!v->type().is_tensor()) continue;
    if (auto dims = v->type().shape.concrete()) out.emplace(v, std::move(*dims));
  }
  return out;
}

Result<ValueDims> concrete_shapes(ir::Graph& graph, const std::map<std::string, Dims>& inputs) {
  std::vector<std::pair<ir::Value*, ir::ValueType>> saved;
  save_types(graph, saved);
  for (ir::Value* v : graph.inputs()) {
    auto it = inputs.find(v->name());
    if (it == inputs.end() || !v->type().is_tensor()) continue;
    v->set_type(ir::ValueType::tensor(v->type().dtype, Shape::of(it->second)));
  }
  Status st = ops::infer_shapes(graph);
  ValueDims out;
  if (st.is_ok()) out = static_shapes(graph);
  for (auto& [v, t] : saved) v->set_type(std::move(t));
  if (!st.is_ok()) return std::move(st).with_context("shape inference with the profile's shapes");
  return out;
}

}  // namespace kiln::plan
