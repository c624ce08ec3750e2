// Helpers shared by the passes: pattern queries on the IR and node creation
// that keeps opsets, names and types consistent.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::passes {

// The domain and opset of Kiln's own ops (kiln.FusedConv, ...).
inline constexpr std::string_view kKilnDomain = "kiln";
inline constexpr int64_t kKilnOpset = 1;

// Calls fn on `graph` and then on every subgraph of its nodes, recursively
// (except the bodies of kiln-domain nodes, which passes build); true if any
// call returned true.
Result<bool> for_each_graph(ir::Graph& graph, const std::function<Result<bool>(ir::Graph&)>& fn);

// Names referenced as captures by the subgraphs of `graph`'s nodes (at any depth).
std::unordered_set<std::string> captured_names(const ir::Graph& graph);

// Values a rewrite must keep (by name and content): graph outputs and values
// captured by a subgraph. Built once per graph per pass.
class Pinned {
 public:
  explicit Pinned(const ir::Graph& graph) : captured_(captured_names(graph)) {}
  bool operator()(const ir::Value* v) const { return v->is_graph_output() || captured_.count(v->name()) > 0; }

 private:
  std::unordered_set<std::string> captured_;
};

// Runs fuse(graph, node, pinned) on every node of `graph` that is the ONNX op
// `seed_op`, collected before the first rewrite (rewrites may add or remove
// nodes); true if any call returned true.
Result<bool> fuse_from_seeds(ir::Graph& graph, std::string_view seed_op,
                             const std::function<Result<bool>(ir::Graph&, ir::Node*, const Pinned&)>& fuse);

// True if `v` has exactly one use, by a node, and is not pinned.
bool single_use(const ir::Value* v, const Pinned& pinned);
// True if nothing reads `v` and it is not pinned.
bool unused(const ir::Value* v, const Pinned& pinned);

// `n` is an op of the default ONNX domain named `op`.
bool is_op(const ir::Node* n, std::string_view op);
// The producer of `v` if it is the ONNX op `op`, else nullptr.
ir::Node* producer_of(const ir::Value* v, std::string_view op);
// The only consumer of `v` when single_use(v), else nullptr.
ir::Node* only_consumer(const ir::Value* v, const Pinned& pinned);

// The constant tensor of `v` (nullptr if `v` is null or not constant). A
// graph input with an initializer is not constant (a caller may feed it),
// except while an InitializerInputsAreConstant scope says so.
const Tensor* constant_of(const ir::Value* v);

// Within this scope (on this thread), graph inputs that have an initializer
// count as constants: ONNX IR versions before 4 list every initializer as a
// graph input, and ONNX Runtime treats those as constants too.
class InitializerInputsAreConstant {
 public:
  explicit InitializerInputsAreConstant(bool on);
  ~InitializerInputsAreConstant();
  InitializerInputsAreConstant(const InitializerInputsAreConstant&) = delete;
  InitializerInputsAreConstant& operator=(const InitializerInputsAreConstant&) = delete;

 private:
  bool previous_;
};
// A constant with one element, as a double (float, double, fp16/bf16 or integer types).
std::optional<double> scalar_of(const ir::Value* v);
// True if `v` is a float32 tensor.
bool is_float32(const ir::Value* v);
// The static dims of a tensor value if fully known.
std::optional<Dims> static_dims(const ir::Value* v);

// The default-domain opset of the model `graph` belongs to.
int64_t onnx_opset(const ir::Graph& graph);
// Registers the kiln domain in the top-level graph's opset imports.
void import_kiln_domain(ir::Graph& graph);

// A new value named after `prefix` (unique in `graph`).
Result<ir::Value*> new_value(ir::Graph& graph, const std::string& prefix, ir::ValueType type);
// A new constant value named after `prefix`.
Result<ir::Value*> new_constant(ir::Graph& graph, const std::string& prefix, Tensor t);

// Inserts an ONNX node before `pos` with the graph's default-domain opset.
ir::Node* insert_onnx_node(ir::Graph& graph, ir::Node* pos, const std::string& op, std::vector<ir::Value*> inputs,
                           std::vector<ir::Value*> outputs, const std::string& name);
// Inserts a kiln-domain node before `pos` (opset kKilnOpset; imports the domain).
ir::Node* insert_kiln_node(ir::Graph& graph, ir::Node* pos, const std::string& op, std::vector<ir::Value*> inputs,
                           std::vector<ir::Value*> outputs, const std::string& name);

// Removes node `n` whose single tensor output `out` equals its input `in`
// (Identity, a no-op Reshape...): readers of `out` read `in` instead. When
// `out` is pinned, `in`'s producer writes `out` directly if it can (same
// graph, `in` used only by `n` and not pinned). Returns false (graph
// unchanged) when neither works.
bool bypass(ir::Graph& graph, ir::Node* n, ir::Value* in, ir::Value* out, const Pinned& pinned);

// The "fused_from" list of a node being replaced: its own name, or the names
// it already carries if it is itself a fused node.
void append_fused_from(const ir::Node* n, std::vector<std::string>& names);
// Sets "fused_from" on `fused` to the names of `sources` (in order).
void set_fused_from(ir::Node* fused, const std::vector<const ir::Node*>& sources);

// `p` is a one-input kiln.Pointwise whose body ends with Cast(to float16) ->
// Cast(to float): the 16-bit round trip of an fp16 build (passes/half_inputs.cc).
bool ends_in_half_round_trip(const ir::Node& p);

// Removes nodes whose outputs are all unused and unpinned, repeatedly; and,
// when no subgraph captures anything, the values left without a role.
// True if anything was removed.
bool remove_dead_nodes(ir::Graph& graph);

}  // namespace kiln::passes

namespace kiln::passes {

// Both values are tensors whose shapes are provably equal: same rank, and
// each dim known and equal or the same named symbol.
bool same_shape(const ir::Value* a, const ir::Value* b);
// Copies every attribute of `from` except "fused_from" onto `to`.
void copy_attributes(const ir::Node& from, ir::Node& to);
// The value of a float scalar constant, if `v` is one (any float type).
std::optional<float> float_scalar(const ir::Value* v);
// |a - b| <= tol * max(1, |b|)
bool near(double a, double b, double tol = 1e-4);

}  // namespace kiln::passes
