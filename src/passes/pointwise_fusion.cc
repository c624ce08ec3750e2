// Pointwise chain fusion: a chain of elementwise ops, each reading the
// previous one's output (and otherwise only constants that do not broadcast
// the chain up), becomes one kiln.Pointwise node whose "body" attribute is a
// subgraph holding the chain. The reference kernel runs the body on whole
// tensors; a fast kernel can generate one loop from it.
//
// Elementwise: the unary math and activation ops, Cast, Clip with constant
// bounds, and Add/Sub/Mul/Div/Pow/Max/Min/PRelu with one constant operand.
// Links need one use, not a graph output. Chains of two or more ops only.
//
// Quantized chains: a per-tensor DequantizeLinear may start a chain and a
// per-tensor QuantizeLinear end one, so that the float values between two
// int8 layers never reach memory; such a chain may also hold inference-mode
// BatchNormalization (per channel, constant statistics), which Q/DQ models
// (quantize_static without pre-processing) leave between a Conv's Q/DQ pairs.
// And the residual add of a Q/DQ model, Add(DequantizeLinear(a),
// DequantizeLinear(b)) -> [elementwise ops] -> QuantizeLinear, becomes a
// two-input kiln.Pointwise whose body starts with the two DequantizeLinear.
#include <map>
#include <set>

#include "core/error.h"
#include "passes/graph_util.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

const std::set<std::string, std::less<>> kUnary = {"Relu",
                                                   "Sigmoid",
                                                   "Tanh",
                                                   "Exp",
                                                   "Log",
                                                   "Abs",
                                                   "Neg",
                                                   "Sqrt",
                                                   "Reciprocal",
                                                   "Erf",
                                                   "Floor",
                                                   "Ceil",
                                                   "Round",
                                                   "Sign",
                                                   "LeakyRelu",
                                                   "Elu",
                                                   "Selu",
                                                   "Celu",
                                                   "HardSigmoid",
                                                   "HardSwish",
                                                   "Softplus",
                                                   "Softsign",
                                                   "ThresholdedRelu",
                                                   "Sin",
                                                   "Cos",
                                                   "Gelu",
                                                   "Mish",
                                                   "Cast",
                                                   "Clip"};
const std::set<std::string, std::less<>> kBinary = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu"};

// Constant `c` broadcasts into `x` without enlarging it.
bool fits(const ir::Value* c, const ir::Value* x) {
  const Tensor* t = constant_of(c);
  if (t == nullptr || !x->type().is_tensor() || !x->type().shape.rank_known()) return false;
  const Shape& s = x->type().shape;
  if (t->rank() > s.rank()) return false;
  for (int64_t i = 0; i < t->rank(); ++i) {
    const int64_t d = t->dim(t->rank() - 1 - i);
    const Dim& xd = s[s.rank() - 1 - i];
    if (d != 1 && !(xd.known() && xd.value == d)) return false;
  }
  return true;
}

// A per-tensor Q/DQ node with constant scalar parameters.
bool per_tensor_qdq(const ir::Node* n, const char* op) {
  if (!n->domain().empty() || n->op_type() != op || n->num_outputs() != 1 || n->input(0) == nullptr) return false;
  if (constant_of(n->input(0)) != nullptr) return false;
  for (size_t i = 1; i < n->num_inputs(); ++i) {
    const Tensor* t = constant_of(n->input(i));
    if (n->input(i) != nullptr && (t == nullptr || t->numel() != 1)) return false;
  }
  return n->num_inputs() >= 2 && n->input(1) != nullptr;
}

// Inference-mode BatchNormalization with constant per-channel statistics.
bool inference_batchnorm(const ir::Node* n) {
  if (!n->domain().empty() || n->op_type() != "BatchNormalization" || n->num_outputs() != 1) return false;
  if (n->num_inputs() != 5 || n->attr_int("training_mode", 0) != 0 || n->opset() < 9) return false;
  if (n->input(0) == nullptr || constant_of(n->input(0)) != nullptr) return false;
  for (size_t i = 1; i < 5; ++i) {
    if (constant_of(n->input(i)) == nullptr) return false;
  }
  return true;
}

// The input through which `n` continues a chain, or -1 if `n` is not elementwise.
int data_input(const ir::Node* n) {
  const bool kiln_gelu = n->domain() == kKilnDomain && n->op_type() == "Gelu";
  if (!n->domain().empty() && !kiln_gelu) return -1;
  if (n->num_outputs() != 1 || n->output(0) == nullptr || !n->subgraphs().empty()) return -1;
  if (kiln_gelu || kUnary.count(n->op_type()) > 0) {
    if (n->input(0) == nullptr || constant_of(n->input(0)) != nullptr) return -1;
    for (size_t i = 1; i < n->num_inputs(); ++i) {
      if (n->input(i) != nullptr && !fits(n->input(i), n->input(0))) return -1;
    }
    return 0;
  }
  if (kBinary.count(n->op_type()) > 0 && n->num_inputs() == 2) {
    for (int i = 0; i < 2; ++i) {
      const ir::Value* x = n->input(static_cast<size_t>(i));
      const ir::Value* c = n->input(static_cast<size_t>(1 - i));
      if (x != nullptr && constant_of(x) == nullptr && c != nullptr && fits(c, x)) return i;
    }
  }
  return -1;
}

class PointwiseFusion : public Pass {
 public:
  std::string_view name() const override { return "pointwise_fusion"; }
  Result<bool> run(ir::Graph& graph) override {
    return for_each_graph(graph, [this](ir::Graph& g) { return run_graph(g); });
  }

 private:
  Result<bool> run_graph(ir::Graph& graph) {
    KILN_ASSIGN_OR_RETURN(bool changed, fuse_quantized_adds(graph));
    const Pinned pinned(graph);
    std::vector<ir::Node*> order;
    for (const auto& n : graph.nodes()) order.push_back(n.get());
    std::set<const ir::Node*> taken;
    for (ir::Node* head : order) {
      if (taken.count(head) > 0) continue;  // fused (and removed) with an earlier chain
      const bool quantized = per_tensor_qdq(head, "DequantizeLinear");
      if (!quantized && data_input(head) < 0) continue;
      std::vector<ir::Node*> chain = {head};
      for (;;) {
        ir::Value* out = chain.back()->output(0);
        ir::Node* next = only_consumer(out, pinned);
        if (next == nullptr || next->graph() != &graph || next->input(0) == nullptr) break;
        if (per_tensor_qdq(next, "QuantizeLinear") && next->input(0) == out) {
          chain.push_back(next);  // an 8-bit result ends the chain
          break;
        }
        if (quantized && inference_batchnorm(next) && next->input(0) == out) {
          chain.push_back(next);
          continue;
        }
        if (data_input(next) < 0 || next->input(static_cast<size_t>(data_input(next))) != out) break;
        chain.push_back(next);
      }
      for (ir::Node* n : chain) taken.insert(n);
      if (chain.size() < 2) continue;
      KILN_RETURN_IF_ERROR(build(graph, chain));
      changed = true;
    }
    return changed;
  }

  // Add(DQ(a), DQ(b)) -> [elementwise] -> Q, each link the only use of the
  // value before it: one two-input kiln.Pointwise.
  Result<bool> fuse_quantized_adds(ir::Graph& graph) {
    const Pinned pinned(graph);
    std::vector<ir::Node*> adds;
    for (const auto& n : graph.nodes()) {
      if (n->domain().empty() && n->op_type() == "Add" && n->num_inputs() == 2 && n->num_outputs() == 1) {
        adds.push_back(n.get());
      }
    }
    bool changed = false;
    std::set<const ir::Node*> gone;  // fused (and removed) with an earlier add
    for (ir::Node* add : adds) {
      if (gone.count(add) > 0) continue;
      ir::Node* dq[2];
      bool ok = true;
      for (size_t i = 0; i < 2 && ok; ++i) {
        const ir::Value* v = add->input(i);
        dq[i] = v != nullptr ? v->producer() : nullptr;
        ok = dq[i] != nullptr && dq[i]->graph() == &graph && per_tensor_qdq(dq[i], "DequantizeLinear") &&
             only_consumer(v, pinned) == add;
      }
      if (!ok || dq[0] == dq[1]) continue;
      const ir::Value* ta = add->input(0);
      const ir::Value* tb = add->input(1);
      if (!ta->type().is_tensor() || !tb->type().is_tensor() || !ta->type().shape.rank_known() ||
          !(ta->type().shape == tb->type().shape)) {
        continue;  // broadcasting adds stay
      }
      std::vector<ir::Node*> tail;
      ir::Node* q = nullptr;
      for (ir::Value* out = add->output(0);;) {
        ir::Node* next = only_consumer(out, pinned);
        if (next == nullptr || next->graph() != &graph || next->input(0) == nullptr) break;
        if (per_tensor_qdq(next, "QuantizeLinear") && next->input(0) == out) {
          q = next;
          break;
        }
        const int di = data_input(next);
        if (di < 0 || next->input(static_cast<size_t>(di)) != out) break;
        tail.push_back(next);
        out = next->output(0);
      }
      if (q == nullptr) continue;
      std::vector<ir::Node*> nodes = {dq[0], dq[1], add};
      nodes.insert(nodes.end(), tail.begin(), tail.end());
      nodes.push_back(q);
      gone.insert(nodes.begin(), nodes.end());
      KILN_RETURN_IF_ERROR(replace(graph, nodes, {dq[0]->input(0), dq[1]->input(0)}, add->name()));
      changed = true;
    }
    return changed;
  }

  // The input through which chain member `n` continues the chain: X for the
  // Q/DQ and BatchNormalization ends, else the elementwise op's data input.
  static int chain_input(const ir::Node* n) {
    const int di = data_input(n);
    return di >= 0 ? di : 0;
  }

  Status build(ir::Graph& graph, const std::vector<ir::Node*>& chain) {
    ir::Node* head = chain.front();
    return replace(graph, chain, {head->input(static_cast<size_t>(chain_input(head)))}, head->name());
  }

  // Replaces `nodes` (in order; each reads values of `xs`, outputs of the
  // nodes before it, or constants) by one kiln.Pointwise over `xs` whose body
  // holds copies of them; the last node's output becomes the Pointwise's.
  Status replace(ir::Graph& graph, const std::vector<ir::Node*>& nodes, const std::vector<ir::Value*>& xs,
                 const std::string& base) {
    auto body = std::make_shared<ir::Graph>(graph.unique_name(base + "_pointwise_body"), &graph);
    std::map<const ir::Value*, ir::Value*> mapped;
    for (size_t i = 0; i < xs.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(ir::Value * bx,
                            body->add_value(xs.size() == 1 ? std::string("x") : fmt::format("x{}", i), xs[i]->type()));
      body->add_input(bx);
      mapped[xs[i]] = bx;
    }
    int k = 0;
    for (ir::Node* n : nodes) {
      std::vector<ir::Value*> inputs(n->num_inputs(), nullptr);
      for (size_t i = 0; i < n->num_inputs(); ++i) {
        const ir::Value* v = n->input(i);
        if (v == nullptr) continue;
        if (auto it = mapped.find(v); it != mapped.end()) {
          inputs[i] = it->second;
        } else if (const Tensor* c = constant_of(v)) {
          KILN_ASSIGN_OR_RETURN(inputs[i], body->add_constant(fmt::format("c{}_{}", k, i), *c));
        } else {
          return internal_error("{}: input {} is neither in the fused chain nor a constant", n->describe(), i);
        }
      }
      KILN_ASSIGN_OR_RETURN(ir::Value * out, body->add_value(fmt::format("t{}", k), n->output(0)->type()));
      ir::Node* copy = body->add_node(n->op_type(), inputs, {out}, n->name(), n->domain());
      copy->set_opset(n->opset());
      copy_attributes(*n, *copy);
      mapped[n->output(0)] = out;
      ++k;
    }
    ir::Node* last = nodes.back();
    body->add_output(mapped[last->output(0)]);
    ir::Node* pw = insert_kiln_node(graph, last, "Pointwise", xs, {}, graph.unique_name(base + "_pointwise"));
    pw->set_attr(ir::Attribute::make_graph("body", body));
    std::vector<const ir::Node*> sources(nodes.begin(), nodes.end());
    set_fused_from(pw, sources);
    ir::Value* out = last->output(0);
    for (ir::Node* n : nodes) graph.remove_node(n);
    pw->set_output(0, out);
    return Status::ok();
  }
};

}  // namespace

std::unique_ptr<Pass> make_pointwise_fusion() { return std::make_unique<PointwiseFusion>(); }

}  // namespace kiln::passes
