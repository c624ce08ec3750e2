// The Kiln IR: Graph, Node and Value.
//
// A Graph owns its Values and Nodes. Nodes are kept in topological order
// (verify() checks it; topo_sort() restores it). Every Value has exactly one
// definition: it is a graph input, a constant (an initializer or a folded
// value), a capture of a value from an enclosing graph (subgraphs of If, Loop
// and Scan), or the output of exactly one Node. Values keep their use lists
// current as nodes are added, rewired or removed.
//
// Pointers to Values and Nodes stay valid until they are removed from their
// Graph. A Graph is not thread-safe to mutate; an immutable Graph may be read
// from many threads.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/attribute.h"
#include "ir/value_type.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::ir {

class Graph;
class Node;

struct Use {
  Node* node;
  int input_index;
};

class Value {
 public:
  const std::string& name() const { return name_; }
  const ValueType& type() const { return type_; }
  void set_type(ValueType type) { type_ = std::move(type); }

  // Constant data: an initializer, or a value folded at build time.
  bool is_constant() const { return constant_.defined(); }
  const Tensor& constant() const { return constant_; }
  void set_constant(Tensor t) { constant_ = std::move(t); }

  Node* producer() const { return producer_; }  // nullptr for inputs, constants, captures
  int producer_output() const { return producer_output_; }
  const std::vector<Use>& uses() const { return uses_; }
  Graph* graph() const { return graph_; }

  bool is_graph_input() const { return is_input_; }
  bool is_graph_output() const { return is_output_; }
  // A reference from a subgraph to a value of an enclosing graph, bound by name at run time.
  bool is_capture() const { return is_capture_; }

 private:
  friend class Graph;
  friend class Node;
  std::string name_;
  ValueType type_;
  Tensor constant_;
  Node* producer_ = nullptr;
  int producer_output_ = -1;
  std::vector<Use> uses_;
  Graph* graph_ = nullptr;
  bool is_input_ = false;
  bool is_output_ = false;
  bool is_capture_ = false;
};

class Node {
 public:
  const std::string& op_type() const { return op_type_; }
  const std::string& domain() const { return domain_; }  // "" is the default ONNX domain
  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  // The opset version in force for this node's domain (from the model's opset imports).
  int64_t opset() const { return opset_; }
  void set_opset(int64_t v) { opset_ = v; }
  Graph* graph() const { return graph_; }

  // Inputs and outputs keep ONNX positions; an omitted optional one is nullptr.
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  size_t num_inputs() const { return inputs_.size(); }
  size_t num_outputs() const { return outputs_.size(); }
  Value* input(size_t i) const { return i < inputs_.size() ? inputs_[i] : nullptr; }
  Value* output(size_t i) const { return i < outputs_.size() ? outputs_[i] : nullptr; }
  bool has_input(size_t i) const { return input(i) != nullptr; }
  void set_input(size_t i, Value* v);  // rewires use lists; grows the input list if needed
  void add_input(Value* v) { set_input(inputs_.size(), v); }
  void set_output(size_t i, Value* v);  // v must have no other producer

  // Attributes.
  const std::map<std::string, Attribute>& attributes() const { return attrs_; }
  const Attribute* attr(const std::string& name) const;
  bool has_attr(const std::string& name) const { return attr(name) != nullptr; }
  void set_attr(Attribute a) { attrs_[a.name] = std::move(a); }
  void remove_attr(const std::string& name) { attrs_.erase(name); }
  int64_t attr_int(const std::string& name, int64_t fallback) const;
  float attr_float(const std::string& name, float fallback) const;
  std::string attr_string(const std::string& name, const std::string& fallback = "") const;
  std::vector<int64_t> attr_ints(const std::string& name, std::vector<int64_t> fallback = {}) const;
  std::vector<float> attr_floats(const std::string& name, std::vector<float> fallback = {}) const;
  std::vector<std::string> attr_strings(const std::string& name) const;
  const Tensor* attr_tensor(const std::string& name) const;
  Graph* attr_graph(const std::string& name) const;
  // Every subgraph held by this node's attributes.
  std::vector<Graph*> subgraphs() const;

  // "node 'conv_12' (Conv)" for error messages.
  std::string describe() const;

 private:
  friend class Graph;
  std::string op_type_;
  std::string domain_;
  std::string name_;
  int64_t opset_ = 0;
  Graph* graph_ = nullptr;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  std::map<std::string, Attribute> attrs_;
  std::list<std::unique_ptr<Node>>::iterator self_;
};

class Graph {
 public:
  explicit Graph(std::string name = "", Graph* parent = nullptr) : name_(std::move(name)), parent_(parent) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  Graph* parent() const { return parent_; }
  void set_parent(Graph* p) { parent_ = p; }

  // Values. Names are unique within a graph; add_value fails on a duplicate.
  Result<Value*> add_value(const std::string& name, ValueType type = {});
  Value* find_value(const std::string& name) const;
  // A fresh name "prefix", "prefix_1", ... not used in this graph.
  std::string unique_name(const std::string& prefix) const;
  Result<Value*> add_constant(const std::string& name, Tensor t);
  // A value of an enclosing graph referenced here by name.
  Result<Value*> add_capture(const std::string& name, ValueType type = {});
  const std::vector<Value*>& captures() const { return captures_; }

  void add_input(Value* v);
  void add_output(Value* v);
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  void set_outputs(std::vector<Value*> outs);
  // Constant values that are not graph inputs (ONNX initializers and folded constants).
  std::vector<Value*> constants() const;
  size_t num_values() const { return values_.size(); }

  // Nodes, in topological order once verified.
  Node* add_node(std::string op_type, std::vector<Value*> inputs, std::vector<Value*> outputs,
                 std::string name = "", std::string domain = "");
  // Inserts before `pos` (nullptr appends).
  Node* insert_node(Node* pos, std::string op_type, std::vector<Value*> inputs,
                    std::vector<Value*> outputs, std::string name = "", std::string domain = "");
  // Unlinks the node from its inputs' use lists and leaves its outputs without a producer.
  void remove_node(Node* n);
  const std::list<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  size_t num_nodes() const { return nodes_.size(); }
  // Replaces every use of `from` (and graph-output slots) with `to`.
  void replace_all_uses(Value* from, Value* to);
  // Removes values with no producer role, no uses, and not inputs/outputs/captures.
  void remove_unused_values();

  // Reorders nodes topologically; fails naming a node on a cycle.
  Status topo_sort();
  // Checks single definition, topological order, use lists and outputs; recurses into subgraphs.
  Status verify() const;

  // The opset imports of the model (on the top-level graph; subgraphs ask their parent).
  const std::map<std::string, int64_t>& opset_imports() const;
  void set_opset_imports(std::map<std::string, int64_t> opsets) { opsets_ = std::move(opsets); }

  // Human-readable listing of inputs, constants, nodes and outputs.
  std::string to_string() const;

 private:
  std::string name_;
  Graph* parent_ = nullptr;
  std::vector<std::unique_ptr<Value>> values_;
  std::unordered_map<std::string, Value*> by_name_;
  std::list<std::unique_ptr<Node>> nodes_;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  std::vector<Value*> captures_;
  std::map<std::string, int64_t> opsets_;
};

// A whole model: the top-level graph and the metadata that travels with it.
struct Model {
  std::shared_ptr<Graph> graph;
  int64_t ir_version = 0;
  std::string producer_name;
  std::string producer_version;
  std::string source_path;  // file the model came from, for messages
  std::map<std::string, std::string> metadata;

  // The opset version for `domain` ("" or "ai.onnx" is the default domain), 0 if not imported.
  int64_t opset(const std::string& domain = "") const;
};

}  // namespace kiln::ir
