// Attention fusion: scaled dot-product attention written with primitives,
//
//   S = MatMul(Q, Kt)  [Mul(S, c) | Div(S, c)]  [Add(., mask)]
//   P = Softmax(., last axis)                   Y = MatMul(P, V)
//
// becomes kiln.Attention(Q, Kt, V, [mask]) with attribute scale (c or 1/c).
// Kt is the already transposed keys, as BERT exporters produce them (a
// Transpose with perm [0,2,3,1]); the Transpose stays a node of its own.
// The mask Add must not broadcast the scores up (its output has the scores'
// provable shape); every intermediate has one use. Float32 only.
#include "core/error.h"
#include "passes/graph_util.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

bool softmax_last_axis(const ir::Node* s) {
  if (!is_op(s, "Softmax")) return false;
  const ir::Value* x = s->input(0);
  if (x == nullptr || !x->type().is_tensor() || !x->type().shape.rank_known()) return false;
  const int64_t rank = x->type().shape.rank();
  const int64_t axis = s->attr_int("axis", s->opset() >= 13 ? -1 : 1);
  return axis == -1 || axis == rank - 1;
}

// `n` is the QK MatMul, or a Mul/Div of it by a scalar constant.
bool leads_to_matmul(const ir::Node* n) {
  if (is_op(n, "MatMul")) return true;
  if (!is_op(n, "Mul") && !is_op(n, "Div")) return false;
  for (int i = 0; i < 2; ++i) {
    const ir::Value* c = n->input(static_cast<size_t>(i));
    const ir::Value* s = n->input(static_cast<size_t>(1 - i));
    if (float_scalar(c) && s != nullptr && is_op(s->producer(), "MatMul") && (i == 1 || is_op(n, "Mul"))) return true;
  }
  return false;
}

class AttentionFusion : public Pass {
 public:
  std::string_view name() const override { return "attention_fusion"; }
  Result<bool> run(ir::Graph& graph) override {
    return for_each_graph(graph, [this](ir::Graph& g) { return run_graph(g); });
  }

 private:
  Result<bool> run_graph(ir::Graph& graph) {
    return fuse_from_seeds(graph, "Softmax", [this](ir::Graph& g, ir::Node* n, const Pinned& pinned) {
      return fuse(g, n, pinned);
    });
  }

  Result<bool> fuse(ir::Graph& graph, ir::Node* softmax, const Pinned& pinned) {
    if (!softmax_last_axis(softmax)) return false;
    ir::Node* pv = only_consumer(softmax->output(0), pinned);
    if (!is_op(pv, "MatMul") || pv->input(0) != softmax->output(0)) return false;
    std::vector<ir::Node*> nodes = {softmax, pv};
    ir::Value* cur = softmax->input(0);
    ir::Value* mask = nullptr;
    float scale = 1.0f;
    ir::Node* p = cur->producer();
    if (is_op(p, "Add") && single_use(cur, pinned)) {
      // Which operand is the scores: the one coming from the MatMul chain.
      for (int i = 0; i < 2 && mask == nullptr; ++i) {
        ir::Value* s = p->input(static_cast<size_t>(i));
        ir::Node* sp = s ? s->producer() : nullptr;
        if (leads_to_matmul(sp)) {
          ir::Value* m = p->input(static_cast<size_t>(1 - i));
          if (!is_float32(m) || !same_shape(p->output(0), s)) return false;
          mask = m;
          nodes.push_back(p);
          cur = s;
        }
      }
      if (mask == nullptr) return false;
      p = cur->producer();
    }
    if ((is_op(p, "Mul") || is_op(p, "Div")) && single_use(cur, pinned)) {
      ir::Value* s = nullptr;
      std::optional<float> c;
      if (is_op(p, "Div")) {
        c = float_scalar(p->input(1));
        s = p->input(0);
        if (c && *c != 0.0f) c = 1.0f / *c;
      } else {
        for (int i = 0; i < 2 && !c; ++i) {
          c = float_scalar(p->input(static_cast<size_t>(i)));
          s = p->input(static_cast<size_t>(1 - i));
        }
      }
      if (!c || *c == 0.0f) return false;
      scale = *c;
      nodes.push_back(p);
      cur = s;
      p = cur->producer();
    }
    if (!is_op(p, "MatMul") || !single_use(cur, pinned)) return false;
    nodes.push_back(p);
    ir::Value* q = p->input(0);
    ir::Value* kt = p->input(1);
    ir::Value* v = pv->input(1);
    for (const ir::Value* t : {q, kt, v}) {
      if (!is_float32(t) || !t->type().shape.rank_known() || t->type().shape.rank() < 2) return false;
    }
    if (!is_float32(pv->output(0))) return false;
    std::vector<ir::Value*> inputs = {q, kt, v};
    if (mask != nullptr) inputs.push_back(mask);
    const std::string name = graph.unique_name(softmax->name() + "_attention");
    ir::Node* attn = insert_kiln_node(graph, pv, "Attention", inputs, {}, name);
    attn->set_attr(ir::Attribute::make_float("scale", scale));
    std::vector<const ir::Node*> sources(nodes.rbegin(), nodes.rend());
    set_fused_from(attn, sources);
    ir::Value* out = pv->output(0);
    for (ir::Node* n : nodes) graph.remove_node(n);
    attn->set_output(0, out);
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> make_attention_fusion() { return std::make_unique<AttentionFusion>(); }

}  // namespace kiln::passes
