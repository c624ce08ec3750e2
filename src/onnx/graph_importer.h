// GraphProto -> ir::Graph, recursively for subgraphs.
//
// A graph is imported in passes: inline local-function calls; declare every
// value the graph defines (inputs, initializers, node outputs), which catches
// duplicates; apply declared types (value_info, outputs); order the nodes
// topologically, counting the outer values a node's subgraphs read as its
// inputs; then build the nodes. A name a node reads that this graph does not
// define is looked up in the enclosing graphs and becomes a capture in every
// graph from the defining one down to this one.
#pragma once

#include <map>
#include <string>
#include <unordered_map>

#include "ir/graph.h"
#include "onnx/functions.h"
#include "onnx/importer.h"
#include "onnx/proto_convert.h"

namespace kiln::onnx {

// Model-wide state shared by the importers of all graphs of one model.
struct ImportContext {
  TensorSource source;
  ImportOptions options;
  std::map<std::string, int64_t> opsets;  // canonical domain ("" for ai.onnx) -> version
  FunctionLibrary functions;
  int64_t inline_budget = 0;  // nodes that inlining may still create (see inline_budget())
};

class GraphImporter {
 public:
  // Imports into `graph`, whose parent (if any) is `parent`'s graph. Both
  // must outlive this object.
  GraphImporter(ImportContext& ctx, ir::Graph& graph, GraphImporter* parent)
      : ctx_(ctx), graph_(graph), parent_(parent) {}

  Status import(const pb::GraphProto& proto);

 private:
  // The value `name` refers to here: a local value, or a value of an enclosing
  // graph, captured (in this graph and every graph in between). nullptr if
  // no graph defines it.
  Result<ir::Value*> resolve(const std::string& name);

  Status declare_inputs(const pb::GraphProto& proto);
  Status declare_initializers(const pb::GraphProto& proto);
  Status declare_node_outputs();
  Status apply_declared_types(const pb::GraphProto& proto);
  Result<std::vector<size_t>> topological_order() const;
  Status build_node(const NodeItem& item);
  Status set_outputs(const pb::GraphProto& proto);
  Result<std::shared_ptr<ir::Graph>> import_subgraph(const pb::GraphProto& proto, const std::string& owner);

  ImportContext& ctx_;
  ir::Graph& graph_;
  GraphImporter* parent_;
  InlinedGraph nodes_;
  std::unordered_map<std::string, size_t> producer_;  // value name -> index in nodes_.nodes
};

// "node 'name' (Op)" or "node 'name' (domain.Op)", as ir::Node::describe() writes it.
std::string describe_node(const NodeItem& item);

}  // namespace kiln::onnx
