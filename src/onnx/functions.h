// Model-local functions (ModelProto.functions) and proto-level scoping.
//
// Kiln inlines every call to a local function at import: the call node is
// replaced by the function body, internal values get fresh names, attributes
// that refer to the caller's (ref_attr_name) are bound, and calls inside the
// body are expanded in turn. What remains are plain nodes for the graph
// importer.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "kiln/status.h"
#include "onnx/proto_convert.h"

namespace kiln::onnx {

// The names a graph defines itself: inputs, initializers and node outputs.
std::set<std::string> defined_names(const pb::GraphProto& graph);
// The names a graph (including graphs nested in it) reads but does not
// define: values it takes from enclosing scopes.
std::set<std::string> free_names(const pb::GraphProto& graph);

class FunctionLibrary {
 public:
  // Fails on a function without a name or a second definition of the same (domain, name, overload).
  Status add(const pb::FunctionProto& fn);
  // The function a node of (domain, op_type, overload) calls, or nullptr.
  const pb::FunctionProto* find(const std::string& domain, const std::string& op_type,
                                const std::string& overload) const;
  bool empty() const { return functions_.empty(); }

 private:
  std::map<std::tuple<std::string, std::string, std::string>, const pb::FunctionProto*> functions_;
};

// One node to import, after inlining.
struct NodeItem {
  const pb::NodeProto* node;  // points into the GraphProto or into InlinedGraph::storage
  std::string name;           // the node's name, synthesized when empty ("<op>_<index>")
  int64_t opset = 0;          // the opset imported by the function it came from; 0: the model's
};

struct InlinedGraph {
  std::vector<NodeItem> nodes;
  std::vector<pb::ValueInfoProto> value_info;  // declared types of inlined values, renamed
  std::deque<pb::NodeProto> storage;           // nodes created by inlining (stable addresses)
};

// How many nodes inlining may create for a model of `model_bytes` bytes.
// Nested calls can grow exponentially (F1 calls F0 twice, F2 calls F1 twice,
// ...), so a few KB could otherwise demand billions of nodes; a real model's
// inlined size is proportional to its own.
inline int64_t inline_budget(uint64_t model_bytes) {
  return std::max<int64_t>(int64_t{1} << 16, static_cast<int64_t>(model_bytes / 8));
}

// Expands the calls to local functions among `graph`'s nodes into `out`.
// `budget` counts down the nodes inlining may still create.
Status inline_functions(const pb::GraphProto& graph, const FunctionLibrary& library, int64_t& budget,
                        InlinedGraph& out);

}  // namespace kiln::onnx
