#include "ir/graph.h"

#include <algorithm>
#include <unordered_set>

#include "core/error.h"

namespace kiln::ir {

// ---- Node ------------------------------------------------------------------

void Node::set_input(size_t i, Value* v) {
  if (i >= inputs_.size()) inputs_.resize(i + 1, nullptr);
  Value* old = inputs_[i];
  if (old != nullptr) {
    auto& uses = old->uses_;
    for (auto it = uses.begin(); it != uses.end(); ++it) {
      if (it->node == this && it->input_index == static_cast<int>(i)) {
        uses.erase(it);
        break;
      }
    }
  }
  inputs_[i] = v;
  if (v != nullptr) v->uses_.push_back({this, static_cast<int>(i)});
}

void Node::set_output(size_t i, Value* v) {
  if (i >= outputs_.size()) outputs_.resize(i + 1, nullptr);
  if (Value* old = outputs_[i]; old != nullptr && old->producer_ == this) {
    old->producer_ = nullptr;
    old->producer_output_ = -1;
  }
  outputs_[i] = v;
  if (v != nullptr) {
    v->producer_ = this;
    v->producer_output_ = static_cast<int>(i);
  }
}

const Attribute* Node::attr(const std::string& name) const {
  auto it = attrs_.find(name);
  return it == attrs_.end() ? nullptr : &it->second;
}

int64_t Node::attr_int(const std::string& name, int64_t fallback) const {
  const Attribute* a = attr(name);
  return a && a->kind == Attribute::Kind::kInt ? a->i : fallback;
}

float Node::attr_float(const std::string& name, float fallback) const {
  const Attribute* a = attr(name);
  if (a && a->kind == Attribute::Kind::kFloat) return a->f;
  if (a && a->kind == Attribute::Kind::kInt) return static_cast<float>(a->i);
  return fallback;
}

std::string Node::attr_string(const std::string& name, const std::string& fallback) const {
  const Attribute* a = attr(name);
  return a && a->kind == Attribute::Kind::kString ? a->s : fallback;
}

std::vector<int64_t> Node::attr_ints(const std::string& name, std::vector<int64_t> fallback) const {
  const Attribute* a = attr(name);
  if (a && a->kind == Attribute::Kind::kInts) return a->ints;
  if (a && a->kind == Attribute::Kind::kInt) return {a->i};
  return fallback;
}

std::vector<float> Node::attr_floats(const std::string& name, std::vector<float> fallback) const {
  const Attribute* a = attr(name);
  if (a && a->kind == Attribute::Kind::kFloats) return a->floats;
  if (a && a->kind == Attribute::Kind::kFloat) return {a->f};
  return fallback;
}

std::vector<std::string> Node::attr_strings(const std::string& name) const {
  const Attribute* a = attr(name);
  if (a && a->kind == Attribute::Kind::kStrings) return a->strings;
  if (a && a->kind == Attribute::Kind::kString) return {a->s};
  return {};
}

const Tensor* Node::attr_tensor(const std::string& name) const {
  const Attribute* a = attr(name);
  return a && a->kind == Attribute::Kind::kTensor ? &a->t : nullptr;
}

Graph* Node::attr_graph(const std::string& name) const {
  const Attribute* a = attr(name);
  return a && a->kind == Attribute::Kind::kGraph ? a->g.get() : nullptr;
}

std::vector<Graph*> Node::subgraphs() const {
  std::vector<Graph*> out;
  for (const auto& [_, a] : attrs_) {
    if (a.kind == Attribute::Kind::kGraph && a.g) out.push_back(a.g.get());
    if (a.kind == Attribute::Kind::kGraphs) {
      for (const auto& g : a.graphs) out.push_back(g.get());
    }
  }
  return out;
}

std::string Node::describe() const {
  std::string op = domain_.empty() ? op_type_ : domain_ + "." + op_type_;
  return fmt::format("node '{}' ({})", name_, op);
}

// ---- Graph -----------------------------------------------------------------

Result<Value*> Graph::add_value(const std::string& name, ValueType type) {
  if (name.empty()) return invalid_argument("graph '{}': a value has an empty name", name_);
  if (by_name_.count(name)) return invalid_argument("graph '{}': duplicate value name '{}'", name_, name);
  auto v = std::make_unique<Value>();
  v->name_ = name;
  v->type_ = std::move(type);
  v->graph_ = this;
  Value* raw = v.get();
  values_.push_back(std::move(v));
  by_name_[name] = raw;
  return raw;
}

Value* Graph::find_value(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::string Graph::unique_name(const std::string& prefix) const {
  if (!by_name_.count(prefix)) return prefix;
  for (int64_t i = 1;; ++i) {
    std::string n = fmt::format("{}_{}", prefix, i);
    if (!by_name_.count(n)) return n;
  }
}

Result<Value*> Graph::add_constant(const std::string& name, Tensor t) {
  KILN_ASSIGN_OR_RETURN(Value * v, add_value(name, ValueType::tensor(t.dtype(), Shape::of(t.dims()))));
  v->constant_ = std::move(t);
  return v;
}

Result<Value*> Graph::add_capture(const std::string& name, ValueType type) {
  KILN_ASSIGN_OR_RETURN(Value * v, add_value(name, std::move(type)));
  v->is_capture_ = true;
  captures_.push_back(v);
  return v;
}

void Graph::add_input(Value* v) {
  v->is_input_ = true;
  inputs_.push_back(v);
}

void Graph::add_output(Value* v) {
  v->is_output_ = true;
  outputs_.push_back(v);
}

void Graph::set_outputs(std::vector<Value*> outs) {
  for (Value* v : outputs_) v->is_output_ = false;
  outputs_ = std::move(outs);
  for (Value* v : outputs_) v->is_output_ = true;
}

std::vector<Value*> Graph::constants() const {
  std::vector<Value*> out;
  for (const auto& v : values_) {
    if (v->is_constant() && !v->is_input_ && v->producer_ == nullptr) out.push_back(v.get());
  }
  return out;
}

Node* Graph::insert_node(Node* pos, std::string op_type, std::vector<Value*> inputs,
                         std::vector<Value*> outputs, std::string name, std::string domain) {
  auto n = std::make_unique<Node>();
  Node* raw = n.get();
  raw->op_type_ = std::move(op_type);
  raw->domain_ = domain == "ai.onnx" ? "" : std::move(domain);
  raw->name_ = std::move(name);
  raw->graph_ = this;
  auto where = pos ? pos->self_ : nodes_.end();
  raw->self_ = nodes_.insert(where, std::move(n));
  for (size_t i = 0; i < inputs.size(); ++i) raw->set_input(i, inputs[i]);
  for (size_t i = 0; i < outputs.size(); ++i) raw->set_output(i, outputs[i]);
  return raw;
}

Node* Graph::add_node(std::string op_type, std::vector<Value*> inputs, std::vector<Value*> outputs,
                      std::string name, std::string domain) {
  return insert_node(nullptr, std::move(op_type), std::move(inputs), std::move(outputs), std::move(name),
                     std::move(domain));
}

void Graph::remove_node(Node* n) {
  for (size_t i = 0; i < n->inputs_.size(); ++i) n->set_input(i, nullptr);
  for (Value* v : n->outputs_) {
    if (v != nullptr && v->producer_ == n) {
      v->producer_ = nullptr;
      v->producer_output_ = -1;
    }
  }
  nodes_.erase(n->self_);
}

void Graph::replace_all_uses(Value* from, Value* to) {
  std::vector<Use> uses = from->uses_;
  for (const Use& u : uses) u.node->set_input(static_cast<size_t>(u.input_index), to);
  for (auto& o : outputs_) {
    if (o == from) {
      o = to;
      from->is_output_ = false;
      to->is_output_ = true;
    }
  }
}

void Graph::remove_unused_values() {
  std::unordered_set<const Value*> referenced;
  for (const auto& n : nodes_) {
    for (Value* v : n->outputs_) referenced.insert(v);
  }
  auto keep = [&](const Value* v) {
    return v->is_input_ || v->is_output_ || v->is_capture_ || !v->uses_.empty() || referenced.count(v) > 0;
  };
  std::vector<std::unique_ptr<Value>> kept;
  for (auto& v : values_) {
    if (keep(v.get())) {
      kept.push_back(std::move(v));
    } else {
      by_name_.erase(v->name_);
    }
  }
  values_ = std::move(kept);
}

Status Graph::topo_sort() {
  // Kahn's algorithm over the nodes; a value is ready when it has no producer
  // in this graph or its producer has been emitted.
  std::unordered_map<const Node*, int> pending;
  std::vector<Node*> ready;
  for (const auto& n : nodes_) {
    int count = 0;
    for (Value* v : n->inputs_) {
      if (v != nullptr && v->producer_ != nullptr && v->producer_->graph_ == this) ++count;
    }
    pending[n.get()] = count;
    if (count == 0) ready.push_back(n.get());
  }
  std::list<std::unique_ptr<Node>> sorted;
  std::unordered_map<const Node*, std::list<std::unique_ptr<Node>>::iterator> where;
  for (auto it = nodes_.begin(); it != nodes_.end(); ++it) where[it->get()] = it;
  // Keep the original order among ready nodes: process in order of appearance.
  std::unordered_map<const Node*, size_t> order;
  size_t k = 0;
  for (const auto& n : nodes_) order[n.get()] = k++;
  auto by_order = [&](Node* a, Node* b) { return order[a] > order[b]; };
  std::make_heap(ready.begin(), ready.end(), by_order);
  while (!ready.empty()) {
    std::pop_heap(ready.begin(), ready.end(), by_order);
    Node* n = ready.back();
    ready.pop_back();
    sorted.splice(sorted.end(), nodes_, where[n]);
    n->self_ = std::prev(sorted.end());
    for (Value* out : n->outputs_) {
      if (out == nullptr) continue;
      for (const Use& u : out->uses_) {
        if (u.node->graph_ != this) continue;
        if (--pending[u.node] == 0) {
          ready.push_back(u.node);
          std::push_heap(ready.begin(), ready.end(), by_order);
        }
      }
    }
  }
  if (!nodes_.empty()) {
    Node* stuck = nodes_.front().get();
    std::string desc = stuck->describe();
    // Put the remaining nodes back so the graph stays whole.
    sorted.splice(sorted.end(), nodes_);
    nodes_ = std::move(sorted);
    for (auto it = nodes_.begin(); it != nodes_.end(); ++it) (*it)->self_ = it;
    return invalid_argument("graph '{}' has a cycle through {}", name_, desc);
  }
  nodes_ = std::move(sorted);
  return Status::ok();
}

Status Graph::verify() const {
  std::unordered_set<const Value*> defined;
  for (const auto& v : values_) {
    if (v->is_input_ || v->is_capture_ || (v->is_constant() && v->producer_ == nullptr)) defined.insert(v.get());
  }
  for (const auto& n : nodes_) {
    for (size_t i = 0; i < n->inputs_.size(); ++i) {
      const Value* v = n->inputs_[i];
      if (v == nullptr) continue;
      if (v->graph_ != this) {
        return internal_error("{} input {} '{}' belongs to another graph", n->describe(), i, v->name_);
      }
      if (!defined.count(v)) {
        return invalid_argument("{} input {} '{}' is used before it is defined (or never defined)",
                                n->describe(), i, v->name_);
      }
    }
    for (const Value* v : n->outputs_) {
      if (v == nullptr) continue;
      if (v->producer_ != n.get()) return internal_error("{} output '{}' has another producer", n->describe(), v->name_);
      if (!defined.insert(v).second) {
        return invalid_argument("value '{}' is defined twice (second time by {})", v->name_, n->describe());
      }
    }
    for (const Graph* g : n->subgraphs()) {
      Status s = g->verify();
      if (!s.is_ok()) return std::move(s).with_context(n->describe());
    }
  }
  for (const Value* v : outputs_) {
    if (!defined.count(v)) return invalid_argument("graph '{}': output '{}' is never defined", name_, v->name_);
  }
  return Status::ok();
}

const std::map<std::string, int64_t>& Graph::opset_imports() const {
  if (opsets_.empty() && parent_ != nullptr) return parent_->opset_imports();
  return opsets_;
}

int64_t Model::opset(const std::string& domain) const {
  if (!graph) return 0;
  const auto& m = graph->opset_imports();
  auto it = m.find(domain == "ai.onnx" ? "" : domain);
  return it == m.end() ? 0 : it->second;
}

}  // namespace kiln::ir
