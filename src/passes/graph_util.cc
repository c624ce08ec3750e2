#include "passes/graph_util.h"

#include <cmath>
#include <iterator>

#include "core/error.h"
#include "core/float_types.h"
#include "ops/epilogue.h"

namespace kiln::passes {

Result<bool> for_each_graph(ir::Graph& graph, const std::function<Result<bool>(ir::Graph&)>& fn) {
  KILN_ASSIGN_OR_RETURN(bool changed, fn(graph));
  std::vector<ir::Graph*> subs;
  for (const auto& n : graph.nodes()) {
    // The bodies of kiln ops (kiln.Pointwise) are built by passes, already final.
    if (n->domain() == kKilnDomain) continue;
    for (ir::Graph* g : n->subgraphs()) subs.push_back(g);
  }
  for (ir::Graph* g : subs) {
    KILN_ASSIGN_OR_RETURN(bool sub_changed, for_each_graph(*g, fn));
    changed = changed || sub_changed;
  }
  return changed;
}

Result<bool> fuse_from_seeds(ir::Graph& graph, std::string_view seed_op,
                             const std::function<Result<bool>(ir::Graph&, ir::Node*, const Pinned&)>& fuse) {
  const Pinned pinned(graph);
  std::vector<ir::Node*> seeds;
  for (const auto& n : graph.nodes()) {
    if (is_op(n.get(), seed_op)) seeds.push_back(n.get());
  }
  bool changed = false;
  for (ir::Node* seed : seeds) {
    KILN_ASSIGN_OR_RETURN(bool c, fuse(graph, seed, pinned));
    changed = changed || c;
  }
  return changed;
}

namespace {
void collect_captures(const ir::Graph& graph, std::unordered_set<std::string>& names) {
  for (const auto& n : graph.nodes()) {
    for (const ir::Graph* g : n->subgraphs()) {
      for (const ir::Value* c : g->captures()) names.insert(c->name());
      collect_captures(*g, names);
    }
  }
}
}  // namespace

std::unordered_set<std::string> captured_names(const ir::Graph& graph) {
  std::unordered_set<std::string> names;
  collect_captures(graph, names);
  return names;
}

bool single_use(const ir::Value* v, const Pinned& pinned) {
  return v != nullptr && v->uses().size() == 1 && !pinned(v);
}

bool unused(const ir::Value* v, const Pinned& pinned) { return v != nullptr && v->uses().empty() && !pinned(v); }

bool is_op(const ir::Node* n, std::string_view op) { return n != nullptr && n->domain().empty() && n->op_type() == op; }

ir::Node* producer_of(const ir::Value* v, std::string_view op) {
  if (v == nullptr) return nullptr;
  ir::Node* p = v->producer();
  return is_op(p, op) ? p : nullptr;
}

ir::Node* only_consumer(const ir::Value* v, const Pinned& pinned) {
  return single_use(v, pinned) ? v->uses()[0].node : nullptr;
}

namespace {
thread_local bool initializer_inputs_are_constant = false;
}  // namespace

InitializerInputsAreConstant::InitializerInputsAreConstant(bool on) : previous_(initializer_inputs_are_constant) {
  initializer_inputs_are_constant = on;
}
InitializerInputsAreConstant::~InitializerInputsAreConstant() { initializer_inputs_are_constant = previous_; }

const Tensor* constant_of(const ir::Value* v) {
  if (v == nullptr || !v->is_constant()) return nullptr;
  return !v->is_graph_input() || initializer_inputs_are_constant ? &v->constant() : nullptr;
}

std::optional<double> scalar_of(const ir::Value* v) {
  const Tensor* t = constant_of(v);
  if (t == nullptr || t->numel() != 1) return std::nullopt;
  switch (t->dtype()) {
    case DataType::kFloat32:
      return static_cast<double>(t->data<float>()[0]);
    case DataType::kFloat64:
      return t->data<double>()[0];
    case DataType::kFloat16:
      return static_cast<double>(static_cast<float>(t->data<Float16>()[0]));
    case DataType::kBFloat16:
      return static_cast<double>(static_cast<float>(t->data<BFloat16>()[0]));
    case DataType::kInt64:
      return static_cast<double>(t->data<int64_t>()[0]);
    case DataType::kInt32:
      return static_cast<double>(t->data<int32_t>()[0]);
    default:
      return std::nullopt;
  }
}

bool is_float32(const ir::Value* v) {
  return v != nullptr && v->type().is_tensor() && v->type().dtype == DataType::kFloat32;
}

std::optional<Dims> static_dims(const ir::Value* v) {
  if (v == nullptr || !v->type().is_tensor()) return std::nullopt;
  if (const Tensor* t = constant_of(v)) return t->dims();
  return v->type().shape.concrete();
}

int64_t onnx_opset(const ir::Graph& graph) {
  const auto& m = graph.opset_imports();
  auto it = m.find("");
  if (it == m.end()) it = m.find("ai.onnx");
  return it == m.end() ? 0 : it->second;
}

void import_kiln_domain(ir::Graph& graph) {
  ir::Graph* top = &graph;
  while (top->parent() != nullptr) top = top->parent();
  std::map<std::string, int64_t> opsets = top->opset_imports();
  if (opsets.count(std::string(kKilnDomain))) return;
  opsets[std::string(kKilnDomain)] = kKilnOpset;
  top->set_opset_imports(std::move(opsets));
}

Result<ir::Value*> new_value(ir::Graph& graph, const std::string& prefix, ir::ValueType type) {
  return graph.add_value(graph.unique_name(prefix), std::move(type));
}

Result<ir::Value*> new_constant(ir::Graph& graph, const std::string& prefix, Tensor t) {
  return graph.add_constant(graph.unique_name(prefix), std::move(t));
}

ir::Node* insert_onnx_node(ir::Graph& graph, ir::Node* pos, const std::string& op, std::vector<ir::Value*> inputs,
                           std::vector<ir::Value*> outputs, const std::string& name) {
  ir::Node* n = graph.insert_node(pos, op, std::move(inputs), std::move(outputs), name);
  n->set_opset(onnx_opset(graph));
  return n;
}

ir::Node* insert_kiln_node(ir::Graph& graph, ir::Node* pos, const std::string& op, std::vector<ir::Value*> inputs,
                           std::vector<ir::Value*> outputs, const std::string& name) {
  import_kiln_domain(graph);
  ir::Node* n = graph.insert_node(pos, op, std::move(inputs), std::move(outputs), name, std::string(kKilnDomain));
  n->set_opset(kKilnOpset);
  return n;
}

bool bypass(ir::Graph& graph, ir::Node* n, ir::Value* in, ir::Value* out, const Pinned& pinned) {
  if (in == nullptr || out == nullptr || in == out) return false;
  if (!pinned(out)) {
    graph.replace_all_uses(out, in);
    graph.remove_node(n);
    return true;
  }
  ir::Node* p = in->producer();
  if (p == nullptr || p->graph() != &graph || p == n || in->uses().size() != 1 || pinned(in)) return false;
  const int slot = in->producer_output();
  graph.remove_node(n);
  p->set_output(static_cast<size_t>(slot), out);
  return true;
}

void append_fused_from(const ir::Node* n, std::vector<std::string>& names) {
  std::vector<std::string> own = n->attr_strings(ops::kFusedFromAttr);
  if (own.empty()) {
    names.push_back(n->name());
  } else {
    names.insert(names.end(), own.begin(), own.end());
  }
}

void set_fused_from(ir::Node* fused, const std::vector<const ir::Node*>& sources) {
  std::vector<std::string> names;
  for (const ir::Node* s : sources) append_fused_from(s, names);
  ir::Attribute a;
  a.name = ops::kFusedFromAttr;
  a.kind = ir::Attribute::Kind::kStrings;
  a.strings = std::move(names);
  fused->set_attr(std::move(a));
}

namespace {

bool is_cast_to(const ir::Node& n, DataType to) {
  return n.domain().empty() && n.op_type() == "Cast" && n.num_inputs() == 1 && n.num_outputs() == 1 &&
         n.attr_int("to", 0) == static_cast<int64_t>(to);
}

}  // namespace

bool ends_in_half_round_trip(const ir::Node& p) {
  if (p.domain() != kKilnDomain || p.op_type() != "Pointwise" || p.num_inputs() != 1 || p.num_outputs() != 1) {
    return false;
  }
  const ir::Graph* body = p.attr_graph("body");
  if (body == nullptr || body->outputs().size() != 1 || body->nodes().size() < 2) return false;
  const ir::Node* up = body->nodes().back().get();
  const ir::Node* down = std::prev(body->nodes().end(), 2)->get();
  if (!is_cast_to(*up, DataType::kFloat32) || !is_cast_to(*down, DataType::kFloat16)) return false;
  return up->input(0) == down->output(0) && up->output(0) == body->outputs()[0] && down->output(0)->uses().size() == 1;
}

bool remove_dead_nodes(ir::Graph& graph) {
  const Pinned pinned(graph);
  bool changed = false;
  bool again = true;
  while (again) {
    again = false;
    // Walk backwards so a chain of dead nodes goes in one sweep.
    std::vector<ir::Node*> order;
    for (const auto& n : graph.nodes()) order.push_back(n.get());
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      ir::Node* n = *it;
      bool dead = true;
      for (const ir::Value* v : n->outputs()) {
        if (v != nullptr && !unused(v, pinned)) dead = false;
      }
      if (!dead) continue;
      graph.remove_node(n);
      changed = again = true;
    }
  }
  if (captured_names(graph).empty()) graph.remove_unused_values();
  return changed;
}

}  // namespace kiln::passes

namespace kiln::passes {

bool same_shape(const ir::Value* a, const ir::Value* b) {
  if (a == nullptr || b == nullptr || !a->type().is_tensor() || !b->type().is_tensor()) return false;
  const Shape& x = a->type().shape;
  const Shape& y = b->type().shape;
  if (!x.rank_known() || !y.rank_known() || x.rank() != y.rank()) return false;
  for (int64_t i = 0; i < x.rank(); ++i) {
    const Dim& p = x[i];
    const Dim& q = y[i];
    if (p.known() && q.known() && p.value == q.value) continue;
    if (!p.known() && !q.known() && !p.symbol.empty() && p.symbol == q.symbol) continue;
    return false;
  }
  return true;
}

void copy_attributes(const ir::Node& from, ir::Node& to) {
  for (const auto& [name, a] : from.attributes()) {
    if (name != ops::kFusedFromAttr) to.set_attr(a);
  }
}

std::optional<float> float_scalar(const ir::Value* v) {
  const Tensor* t = constant_of(v);
  if (t == nullptr || t->numel() != 1) return std::nullopt;
  if (t->dtype() != DataType::kFloat32 && t->dtype() != DataType::kFloat64 && t->dtype() != DataType::kFloat16 &&
      t->dtype() != DataType::kBFloat16) {
    return std::nullopt;
  }
  auto s = scalar_of(v);
  if (!s) return std::nullopt;
  return static_cast<float>(*s);
}

bool near(double a, double b, double tol) { return std::fabs(a - b) <= tol * std::max(1.0, std::fabs(b)); }

}  // namespace kiln::passes
