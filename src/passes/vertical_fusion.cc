// Vertical fusion: a Conv, Gemm or MatMul and the elementwise nodes that
// follow it become one kiln.FusedConv / kiln.FusedGemm / kiln.FusedMatMul
// with an epilogue (ops/epilogue.h):
//
//   Y = op(...) [+ bias] [+ Z] [activation] [+ Z]
//
// - bias: an Add of a constant that is per output channel (Conv: [M,1,1] or
//   [1,M,1,1]; Gemm/MatMul: [N], [1,N], [1,1,N]...), merged with the op's own
//   bias if it has one;
// - residual Z: an Add of a non-constant value of exactly Y's (static or
//   symbolic) shape, before or after the activation (one per fused node);
// - activation: Relu, Clip with constant bounds (Relu6), Sigmoid, HardSigmoid,
//   HardSwish, LeakyRelu, Tanh, Gelu (ONNX Gelu or kiln.Gelu, which the GELU
//   fusion pass makes of the erf and tanh primitive forms), and SiLU written
//   x * Sigmoid(x).
//
// A node is absorbed only while the value between it and the chain has one
// use and is neither a graph output nor captured by a subgraph. Float32 only.
#include <limits>

#include "core/error.h"
#include "ops/epilogue.h"
#include "passes/graph_util.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

using ops::Activation;
using ops::Epilogue;

enum class Kind { kConv, kGemm, kMatMul };

struct Chain {
  ir::Node* op = nullptr;
  Kind kind = Kind::kConv;
  std::vector<ir::Node*> absorbed;  // in order
  ir::Value* out = nullptr;         // the chain's current output
  Tensor bias;                      // accumulated extra bias (1-D), undefined if none
  ir::Value* residual = nullptr;
  Epilogue epilogue;
  bool has_activation = false;
};

// The output-channel count of the op: the dim the bias runs along.
std::optional<int64_t> channels(const Chain& c) {
  const ir::Value* y = c.op->output(0);
  if (!y->type().is_tensor() || !y->type().shape.rank_known() || y->type().shape.rank() < 2) return std::nullopt;
  const Shape& s = y->type().shape;
  const Dim& d = c.kind == Kind::kConv ? s[1] : s[s.rank() - 1];
  if (!d.known()) return std::nullopt;
  return d.value;
}

// A constant that adds one value per output channel, as a 1-D tensor.
std::optional<Tensor> per_channel(const Chain& c, const ir::Value* v) {
  const Tensor* t = constant_of(v);
  auto m = channels(c);
  if (t == nullptr || !m || t->dtype() != DataType::kFloat32) return std::nullopt;
  const int64_t rank = c.op->output(0)->type().shape.rank();
  if (t->rank() > rank) return std::nullopt;
  // Position of the channel axis within t's dims (right-aligned broadcasting).
  const int64_t axis = c.kind == Kind::kConv ? 1 - (rank - t->rank()) : t->rank() - 1;
  for (int64_t i = 0; i < t->rank(); ++i) {
    if (i == axis) {
      if (t->dim(i) != *m && t->dim(i) != 1) return std::nullopt;
    } else if (t->dim(i) != 1) {
      return std::nullopt;
    }
  }
  Tensor out = Tensor::empty(DataType::kFloat32, {*m});
  const bool scalar_like = t->numel() == 1;
  for (int64_t i = 0; i < *m; ++i) out.data<float>()[i] = t->data<float>()[scalar_like ? 0 : i];
  return out;
}

// The Add `n` reading `y`: its other operand.
ir::Value* other_operand(const ir::Node* n, const ir::Value* y) {
  if (n->num_inputs() != 2) return nullptr;
  if (n->input(0) == y) return n->input(1);
  if (n->input(1) == y) return n->input(0);
  return nullptr;
}

// Reads `n` as an activation of `y`; returns the nodes it spans (the SiLU
// pattern spans Sigmoid and Mul) and the node whose output is the result.
std::optional<std::pair<Epilogue, std::vector<ir::Node*>>> activation_of(ir::Value* y, const Pinned& pinned) {
  Epilogue e;
  const auto& uses = y->uses();
  if (pinned(y)) return std::nullopt;
  if (uses.size() == 2) {
    // SiLU: Mul(y, Sigmoid(y)) in either operand order.
    ir::Node* a = uses[0].node;
    ir::Node* b = uses[1].node;
    if (is_op(a, "Mul")) std::swap(a, b);
    if (is_op(a, "Sigmoid") && is_op(b, "Mul") && single_use(a->output(0), pinned) &&
        a->output(0)->uses()[0].node == b && other_operand(b, y) == a->output(0)) {
      e.activation = Activation::kSilu;
      return std::make_pair(e, std::vector<ir::Node*>{a, b});
    }
    return std::nullopt;
  }
  if (uses.size() != 1) return std::nullopt;
  ir::Node* n = uses[0].node;
  if (n->num_inputs() == 0 || n->input(0) != y || uses[0].input_index != 0) return std::nullopt;
  const std::string& op = n->op_type();
  const bool kiln = n->domain() == kKilnDomain;
  if (!n->domain().empty() && !kiln) return std::nullopt;
  if (!kiln && op == "Relu") {
    e.activation = Activation::kRelu;
  } else if (!kiln && op == "Sigmoid") {
    e.activation = Activation::kSigmoid;
  } else if (!kiln && op == "Tanh") {
    e.activation = Activation::kTanh;
  } else if (!kiln && op == "HardSwish") {
    e.activation = Activation::kHardSwish;
  } else if (!kiln && op == "HardSigmoid") {
    e.activation = Activation::kHardSigmoid;
    e.alpha = n->attr_float("alpha", 0.2f);
    e.beta = n->attr_float("beta", 0.5f);
  } else if (!kiln && op == "LeakyRelu") {
    e.activation = Activation::kLeakyRelu;
    e.alpha = n->attr_float("alpha", 0.01f);
  } else if (op == "Gelu") {
    const std::string approx = n->attr_string("approximate", "none");
    if (approx != "none" && approx != "tanh") return std::nullopt;
    e.activation = approx == "none" ? Activation::kGelu : Activation::kGeluTanh;
  } else if (!kiln && op == "Clip") {
    e.activation = Activation::kClip;
    float lo = -std::numeric_limits<float>::infinity();
    float hi = std::numeric_limits<float>::infinity();
    if (n->opset() < 11) {
      lo = n->attr_float("min", lo);
      hi = n->attr_float("max", hi);
    } else {
      if (n->has_input(1)) {
        auto v = float_scalar(n->input(1));
        if (!v) return std::nullopt;
        lo = *v;
      }
      if (n->has_input(2)) {
        auto v = float_scalar(n->input(2));
        if (!v) return std::nullopt;
        hi = *v;
      }
    }
    e.alpha = lo;
    e.beta = hi;
  } else {
    return std::nullopt;
  }
  return std::make_pair(e, std::vector<ir::Node*>{n});
}

class VerticalFusion : public Pass {
 public:
  std::string_view name() const override { return "vertical_fusion"; }
  Result<bool> run(ir::Graph& graph) override {
    return for_each_graph(graph, [this](ir::Graph& g) { return run_graph(g); });
  }

 private:
  Result<bool> run_graph(ir::Graph& graph) {
    const Pinned pinned(graph);
    std::vector<ir::Node*> ops;
    for (const auto& n : graph.nodes()) {
      if (is_op(n.get(), "Conv") || is_op(n.get(), "Gemm") || is_op(n.get(), "MatMul")) ops.push_back(n.get());
    }
    bool changed = false;
    for (ir::Node* op : ops) {
      KILN_ASSIGN_OR_RETURN(bool c, fuse(graph, op, pinned));
      changed = changed || c;
    }
    return changed;
  }

  // Absorbs the next node if it is an Add of a per-channel constant.
  bool take_bias(Chain& c, const Pinned& pinned) {
    ir::Node* add = only_consumer(c.out, pinned);
    if (!is_op(add, "Add") || c.has_activation || c.residual != nullptr || c.bias.defined()) return false;
    // per_channel() admits only constants whose dims are 1 except along the
    // (known) channel dim, so the Add cannot broadcast Y up.
    auto b = per_channel(c, other_operand(add, c.out));
    if (!b) return false;
    c.bias = std::move(*b);
    c.absorbed.push_back(add);
    c.out = add->output(0);
    return true;
  }

  bool take_residual(Chain& c, const Pinned& pinned) {
    ir::Node* add = only_consumer(c.out, pinned);
    if (!is_op(add, "Add") || c.residual != nullptr) return false;
    ir::Value* z = other_operand(add, c.out);
    if (z == nullptr || z == c.out || constant_of(z) != nullptr || !is_float32(z)) return false;
    if (!same_shape(z, c.out) || !same_shape(add->output(0), c.out)) return false;
    c.residual = z;
    c.epilogue.residual_after_activation = c.has_activation;
    c.absorbed.push_back(add);
    c.out = add->output(0);
    return true;
  }

  bool take_activation(Chain& c, const Pinned& pinned) {
    if (c.has_activation) return false;
    auto act = activation_of(c.out, pinned);
    if (!act) return false;
    const bool after = c.epilogue.residual_after_activation;
    c.epilogue = act->first;
    c.epilogue.residual_after_activation = after;
    c.has_activation = true;
    for (ir::Node* n : act->second) c.absorbed.push_back(n);
    c.out = act->second.back()->output(0);
    return true;
  }

  Result<bool> fuse(ir::Graph& graph, ir::Node* op, const Pinned& pinned) {
    Chain c;
    c.op = op;
    c.kind = is_op(op, "Conv") ? Kind::kConv : is_op(op, "Gemm") ? Kind::kGemm : Kind::kMatMul;
    c.out = op->output(0);
    if (!is_float32(c.out) || !is_float32(op->input(0)) || !is_float32(op->input(1))) return false;
    if (c.kind == Kind::kMatMul) {
      // Batched MatMul with a 1-D operand changes Y's rank; keep to rank >= 2 operands.
      const Shape& a = op->input(0)->type().shape;
      const Shape& b = op->input(1)->type().shape;
      if (!a.rank_known() || !b.rank_known() || a.rank() < 2 || b.rank() < 2) return false;
    }
    take_bias(c, pinned);
    take_residual(c, pinned);
    take_activation(c, pinned);
    if (c.has_activation) take_residual(c, pinned);
    if (c.absorbed.empty()) return false;
    return build(graph, c);
  }

  Result<bool> build(ir::Graph& graph, Chain& c) {
    ir::Node* op = c.op;
    ir::Value* bias = nullptr;
    if (c.kind == Kind::kMatMul) {
      if (c.bias.defined()) {
        KILN_ASSIGN_OR_RETURN(bias, new_constant(graph, op->name() + "_bias", c.bias));
      }
    } else {
      // Conv's B or Gemm's C, merged with the absorbed bias.
      ir::Value* own = op->input(2);
      if (c.bias.defined() && own != nullptr) {
        const Tensor* t = constant_of(own);
        const float beta = c.kind == Kind::kGemm ? op->attr_float("beta", 1.0f) : 1.0f;
        const int64_t m = c.bias.numel();
        if (t == nullptr || t->dtype() != DataType::kFloat32 || !(t->numel() == m || t->numel() == 1) ||
            (c.kind == Kind::kGemm && t->rank() == 2 && t->dim(0) != 1)) {
          return false;
        }
        Tensor merged = c.bias.clone();
        for (int64_t i = 0; i < m; ++i) merged.data<float>()[i] += beta * t->data<float>()[t->numel() == 1 ? 0 : i];
        KILN_ASSIGN_OR_RETURN(bias, new_constant(graph, op->name() + "_bias", std::move(merged)));
      } else if (c.bias.defined()) {
        KILN_ASSIGN_OR_RETURN(bias, new_constant(graph, op->name() + "_bias", c.bias));
      } else {
        bias = own;
      }
    }
    const char* fused_op = c.kind == Kind::kConv ? "FusedConv" : c.kind == Kind::kGemm ? "FusedGemm" : "FusedMatMul";
    std::vector<ir::Value*> inputs = {op->input(0), op->input(1), bias, c.residual};
    while (!inputs.empty() && inputs.back() == nullptr) inputs.pop_back();
    ir::Node* last = c.absorbed.back();
    ir::Node* fused = insert_kiln_node(graph, last, fused_op, inputs, {}, op->name());
    copy_attributes(*op, *fused);
    if (c.kind == Kind::kGemm && c.bias.defined()) fused->set_attr(ir::Attribute::make_float("beta", 1.0f));
    c.epilogue.to_node(*fused);
    std::vector<const ir::Node*> sources = {op};
    for (const ir::Node* n : c.absorbed) sources.push_back(n);
    set_fused_from(fused, sources);
    ir::Value* out = c.out;
    graph.remove_node(op);
    for (ir::Node* n : c.absorbed) graph.remove_node(n);
    fused->set_output(0, out);
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> make_vertical_fusion() { return std::make_unique<VerticalFusion>(); }

}  // namespace kiln::passes
