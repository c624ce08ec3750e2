// GELU fusion: the primitive forms exporters emit become one Gelu node (ONNX
// Gelu from opset 20, kiln.Gelu before), which vertical fusion can then take
// into a FusedMatMul/FusedGemm epilogue.
//
//   erf form:  x * 0.5 * (1 + Erf(x / sqrt(2)))   (Div by sqrt 2 or Mul by 1/sqrt 2)
//   tanh form: x * 0.5 * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
//              (x^3 as Pow(x, 3) or x * x * x)
//
// The final product is accepted in the orders exporters write it:
// (x * 0.5) * (1 + ...), (x * (1 + ...)) * 0.5 and ((1 + ...) * 0.5) * x.
// Every intermediate value must have one use and not be a graph output.
#include "core/error.h"
#include "passes/graph_util.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

constexpr double kSqrt2 = 1.4142135623730951;
constexpr double kSqrt2OverPi = 0.7978845608028654;

// `n` is a binary op whose operands are {x, a constant near c}.
bool with_const(const ir::Node* n, std::string_view op, const ir::Value* x, double c) {
  if (!is_op(n, op) || n->num_inputs() != 2) return false;
  for (int i = 0; i < 2; ++i) {
    auto v = float_scalar(n->input(static_cast<size_t>(i)));
    if (n->input(static_cast<size_t>(1 - i)) == x && v && near(*v, c)) return true;
  }
  return false;
}

// The operand of binary `n` other than `v` (nullptr if v is not an operand).
ir::Value* other(const ir::Node* n, const ir::Value* v) {
  if (n == nullptr || n->num_inputs() != 2) return nullptr;
  if (n->input(0) == v) return n->input(1);
  if (n->input(1) == v) return n->input(0);
  return nullptr;
}

struct Match {
  ir::Value* x = nullptr;
  std::vector<ir::Node*> nodes;
  ir::Value* out = nullptr;
};

// From `one_plus` = 1 + f(x): the product with x and 0.5, in any of the orders.
bool match_product(ir::Value* one_plus, Match& m, const Pinned& pinned) {
  ir::Node* m1 = only_consumer(one_plus, pinned);
  if (!is_op(m1, "Mul")) return false;
  ir::Value* t = other(m1, one_plus);
  if (t == nullptr) return false;
  m.nodes.push_back(m1);
  if (t == m.x) {  // (x * (1 + f)) * 0.5
    ir::Node* m2 = only_consumer(m1->output(0), pinned);
    if (!with_const(m2, "Mul", m1->output(0), 0.5)) return false;
    m.nodes.push_back(m2);
    m.out = m2->output(0);
    return true;
  }
  if (ir::Node* h = t->producer(); with_const(h, "Mul", m.x, 0.5) && single_use(t, pinned)) {  // (x * 0.5) * (1 + f)
    m.nodes.push_back(h);
    m.out = m1->output(0);
    return true;
  }
  if (auto c = float_scalar(t); c && near(*c, 0.5)) {  // ((1 + f) * 0.5) * x
    ir::Node* m2 = only_consumer(m1->output(0), pinned);
    if (!is_op(m2, "Mul") || other(m2, m1->output(0)) != m.x) return false;
    m.nodes.push_back(m2);
    m.out = m2->output(0);
    return true;
  }
  return false;
}

// 1 + f where f is the output of `f_node`; returns the Add's output.
ir::Value* one_plus(ir::Node* f_node, Match& m, const Pinned& pinned) {
  ir::Node* add = only_consumer(f_node->output(0), pinned);
  if (!with_const(add, "Add", f_node->output(0), 1.0)) return nullptr;
  m.nodes.push_back(add);
  return add->output(0);
}

std::optional<Match> match_erf(ir::Node* erf, const Pinned& pinned) {
  Match m;
  ir::Value* u = erf->input(0);
  ir::Node* scale = u ? u->producer() : nullptr;
  if (scale == nullptr || !single_use(u, pinned)) return std::nullopt;
  ir::Value* x = nullptr;
  for (int i = 0; i < 2 && x == nullptr; ++i) {
    ir::Value* cand = scale->input(static_cast<size_t>(i));
    if (with_const(scale, "Mul", cand, 1.0 / kSqrt2)) x = cand;
  }
  if (x == nullptr && is_op(scale, "Div") && with_const(scale, "Div", scale->input(0), kSqrt2) &&
      float_scalar(scale->input(1))) {
    x = scale->input(0);
  }
  if (x == nullptr) return std::nullopt;
  m.x = x;
  m.nodes = {scale, erf};
  ir::Value* op = one_plus(erf, m, pinned);
  if (op == nullptr || !match_product(op, m, pinned)) return std::nullopt;
  return m;
}

// x^3 as Pow(x, 3), Mul(x, Mul(x, x)) or Mul(Mul(x, x), x).
bool match_cube(ir::Value* cube, ir::Value* x, Match& m, const Pinned& pinned) {
  ir::Node* p = cube->producer();
  if (p == nullptr || !single_use(cube, pinned)) return false;
  if (with_const(p, "Pow", x, 3.0) && p->input(0) == x) {
    m.nodes.push_back(p);
    return true;
  }
  if (!is_op(p, "Mul")) return false;
  ir::Value* sq = other(p, x);
  ir::Node* s = sq ? sq->producer() : nullptr;
  if (!is_op(s, "Mul") || s->input(0) != x || s->input(1) != x || !single_use(sq, pinned)) return false;
  m.nodes.push_back(s);
  m.nodes.push_back(p);
  return true;
}

std::optional<Match> match_tanh(ir::Node* tanh, const Pinned& pinned) {
  Match m;
  ir::Value* u = tanh->input(0);
  ir::Node* outer = u ? u->producer() : nullptr;
  if (!is_op(outer, "Mul") || !single_use(u, pinned)) return std::nullopt;
  ir::Value* s = nullptr;
  for (int i = 0; i < 2 && s == nullptr; ++i) {
    ir::Value* cand = outer->input(static_cast<size_t>(i));
    if (with_const(outer, "Mul", cand, kSqrt2OverPi)) s = cand;
  }
  ir::Node* add = s ? s->producer() : nullptr;
  if (!is_op(add, "Add") || !single_use(s, pinned)) return std::nullopt;
  // add = x + 0.044715 * x^3
  for (int i = 0; i < 2 && m.x == nullptr; ++i) {
    ir::Value* x = add->input(static_cast<size_t>(i));
    ir::Value* term = add->input(static_cast<size_t>(1 - i));
    ir::Node* k = term ? term->producer() : nullptr;
    if (k == nullptr || !is_op(k, "Mul") || !single_use(term, pinned)) continue;
    for (int j = 0; j < 2; ++j) {
      ir::Value* cube = k->input(static_cast<size_t>(j));
      if (!with_const(k, "Mul", cube, 0.044715)) continue;
      Match trial;
      if (match_cube(cube, x, trial, pinned)) {
        m.x = x;
        m.nodes = trial.nodes;
        m.nodes.push_back(k);
        break;
      }
    }
  }
  if (m.x == nullptr) return std::nullopt;
  m.nodes.push_back(add);
  m.nodes.push_back(outer);
  m.nodes.push_back(tanh);
  ir::Value* op = one_plus(tanh, m, pinned);
  if (op == nullptr || !match_product(op, m, pinned)) return std::nullopt;
  return m;
}

class GeluFusion : public Pass {
 public:
  std::string_view name() const override { return "gelu_fusion"; }
  Result<bool> run(ir::Graph& graph) override {
    return for_each_graph(graph, [this](ir::Graph& g) { return run_graph(g); });
  }

 private:
  Result<bool> run_graph(ir::Graph& graph) {
    const Pinned pinned(graph);
    std::vector<ir::Node*> seeds;
    for (const auto& n : graph.nodes()) {
      if (is_op(n.get(), "Erf") || is_op(n.get(), "Tanh")) seeds.push_back(n.get());
    }
    bool changed = false;
    for (ir::Node* seed : seeds) {
      const bool erf = is_op(seed, "Erf");
      auto m = erf ? match_erf(seed, pinned) : match_tanh(seed, pinned);
      if (!m || !is_float32(m->x) || !is_float32(m->out)) continue;
      ir::Node* last = m->nodes.back();
      for (ir::Node* n : m->nodes) {
        if (n == m->out->producer()) last = n;
      }
      const bool onnx_gelu = onnx_opset(graph) >= 20;
      const std::string name = graph.unique_name(seed->name() + "_gelu");
      ir::Node* gelu = onnx_gelu ? insert_onnx_node(graph, last, "Gelu", {m->x}, {}, name)
                                 : insert_kiln_node(graph, last, "Gelu", {m->x}, {}, name);
      gelu->set_attr(ir::Attribute::make_string("approximate", erf ? "none" : "tanh"));
      std::vector<const ir::Node*> sources(m->nodes.begin(), m->nodes.end());
      set_fused_from(gelu, sources);
      ir::Value* out = m->out;
      for (ir::Node* n : m->nodes) graph.remove_node(n);
      gelu->set_output(0, out);
      changed = true;
    }
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_gelu_fusion() { return std::make_unique<GeluFusion>(); }

}  // namespace kiln::passes
