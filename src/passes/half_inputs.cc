// Half inputs (`--fp16` builds): the matrix layers that read a 16-bit round
// trip become fused ops, so that the builder can store the round trip's
// value as float16 for them (src/plan/half_values.h).
//
// quant/half_precision.h puts Cast(to float16) -> Cast(to float) before each
// Conv/Gemm/MatMul, and pointwise fusion ends a kiln.Pointwise with the two.
// Where every reader of that Pointwise's output is a matrix layer that an
// fp16 tactic may run (weights: a constant of half values; a Conv
// ungrouped), a plain Conv/MatMul/Gemm reader becomes kiln.FusedConv /
// FusedMatMul / FusedGemm with no epilogue: the same values, and a reference
// kernel that takes a float16 input 0 (ops/fused.cc). Which layers then read
// float16 is the tactics' choice, made after this pass.
//
// Off unless PipelineOptions::half_inputs (the builder sets it for fp16 builds).
#include <string>
#include <vector>

#include "core/error.h"
#include "core/float_types.h"
#include "passes/graph_util.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

// The matrix op `n` is (the ONNX op's name), or "" for any other node.
std::string matrix_op(const ir::Node& n) {
  const std::string& op = n.op_type();
  if (n.domain().empty() && (op == "Conv" || op == "MatMul" || op == "Gemm")) return op;
  if (n.domain() == kKilnDomain && (op == "FusedConv" || op == "FusedMatMul" || op == "FusedGemm")) {
    return op.substr(5);
  }
  return "";
}

// `n` reads `x` as input 0 only, and an fp16 tactic runs it.
bool takes_half_input(const ir::Node& n, const ir::Value* x) {
  const std::string op = matrix_op(n);
  if (op.empty() || n.input(0) != x) return false;
  for (size_t i = 1; i < n.num_inputs(); ++i) {
    if (n.input(i) == x) return false;
  }
  if (op == "Conv" && n.attr_int("group", 1) != 1) return false;  // depthwise kernels read float32
  const Tensor* w = constant_of(n.input(1));
  return w != nullptr && w->dtype() == DataType::kFloat32 && all_float16_values(w->span<float>());
}

class HalfInputs : public Pass {
 public:
  explicit HalfInputs(bool enabled) : enabled_(enabled) {}
  std::string_view name() const override { return "half_inputs"; }

  Result<bool> run(ir::Graph& graph) override {
    if (!enabled_) return false;
    const Pinned pinned(graph);
    std::vector<ir::Node*> chains;
    for (const auto& n : graph.nodes()) {
      if (ends_in_half_round_trip(*n)) chains.push_back(n.get());
    }
    bool changed = false;
    for (ir::Node* p : chains) {
      KILN_ASSIGN_OR_RETURN(bool did, rewrite(graph, p, pinned));
      changed = changed || did;
    }
    return changed;
  }

 private:
  Result<bool> rewrite(ir::Graph& graph, ir::Node* p, const Pinned& pinned) {
    if (!ends_in_half_round_trip(*p)) return false;
    ir::Value* out = p->output(0);
    if (pinned(out) || out->uses().empty() || !is_float32(out)) return false;
    std::vector<ir::Node*> plain;
    for (const ir::Use& u : out->uses()) {
      if (!takes_half_input(*u.node, out)) return false;
      if (u.node->domain().empty()) plain.push_back(u.node);
    }
    for (ir::Node* n : plain) {
      std::vector<ir::Value*> inputs = n->inputs();
      while (!inputs.empty() && inputs.back() == nullptr) inputs.pop_back();
      ir::Node* fused = insert_kiln_node(graph, n, "Fused" + n->op_type(), inputs, {}, n->name());
      copy_attributes(*n, *fused);
      set_fused_from(fused, {n});
      ir::Value* y = n->output(0);
      graph.remove_node(n);
      fused->set_output(0, y);
    }
    return !plain.empty();
  }

  bool enabled_;
};

}  // namespace

std::unique_ptr<Pass> make_half_inputs(bool enabled) { return std::make_unique<HalfInputs>(enabled); }

}  // namespace kiln::passes
