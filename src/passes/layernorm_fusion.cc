// LayerNormalization fusion: the primitive form
//
//   mean = ReduceMean(x, last axis)       d = Sub(x, mean)
//   var  = ReduceMean(Pow(d, 2) | Mul(d, d), last axis)
//   y    = Div(d, Sqrt(Add(var, eps)))   [* gamma] [+ beta]
//
// becomes LayerNormalization(x, gamma, beta, axis=-1, epsilon) (ONNX from
// opset 17, kiln.LayerNormalization before). Both reductions must be over the
// last axis only with keepdims; gamma and beta constants over the last dim
// (all-ones / absent beta when the Mul / Add are missing, which needs the
// last dim to be known). Intermediates must have one use (d has its two).
#include "core/error.h"
#include "ops/op_util.h"
#include "passes/graph_util.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

// `r` is ReduceMean over the last axis of its input, keeping dims.
bool reduces_last_axis(const ir::Node* r) {
  if (!is_op(r, "ReduceMean") || r->attr_int("keepdims", 1) != 1) return false;
  const ir::Value* x = r->input(0);
  if (x == nullptr || !x->type().is_tensor() || !x->type().shape.rank_known()) return false;
  const int64_t rank = x->type().shape.rank();
  std::vector<int64_t> axes;
  if (r->opset() >= 18) {
    const Tensor* t = constant_of(r->input(1));
    if (t == nullptr) return false;
    auto v = ops::to_int64_vector(*t);
    if (!v.is_ok()) return false;
    axes = *v;
  } else {
    axes = r->attr_ints("axes");
  }
  return axes.size() == 1 && rank >= 1 && (axes[0] == -1 || axes[0] == rank - 1);
}

// A constant of `d` elements laid along the last axis, as a 1-D float32 tensor.
std::optional<Tensor> last_axis_vector(const ir::Value* v, int64_t d) {
  const Tensor* t = constant_of(v);
  if (t == nullptr || t->dtype() != DataType::kFloat32 || t->numel() != d) return std::nullopt;
  for (int64_t i = 0; i + 1 < t->rank(); ++i) {
    if (t->dim(i) != 1) return std::nullopt;
  }
  if (t->rank() == 0 && d != 1) return std::nullopt;
  return t->clone().reshaped({d}).value();
}

ir::Value* other(const ir::Node* n, const ir::Value* v) {
  if (n == nullptr || n->num_inputs() != 2) return nullptr;
  if (n->input(0) == v) return n->input(1);
  if (n->input(1) == v) return n->input(0);
  return nullptr;
}

class LayerNormFusion : public Pass {
 public:
  std::string_view name() const override { return "layernorm_fusion"; }
  Result<bool> run(ir::Graph& graph) override {
    return for_each_graph(graph, [this](ir::Graph& g) { return run_graph(g); });
  }

 private:
  Result<bool> run_graph(ir::Graph& graph) {
    return fuse_from_seeds(graph, "Sub", [this](ir::Graph& g, ir::Node* n, const Pinned& pinned) {
      return fuse(g, n, pinned);
    });
  }

  Result<bool> fuse(ir::Graph& graph, ir::Node* sub, const Pinned& pinned) {
    ir::Value* x = sub->input(0);
    ir::Value* mean = sub->input(1);
    ir::Node* rm1 = mean ? mean->producer() : nullptr;
    if (!reduces_last_axis(rm1) || rm1->input(0) != x || !single_use(mean, pinned) || !is_float32(x)) return false;
    ir::Value* d = sub->output(0);
    if (pinned(d)) return false;
    // d feeds the square and the Div.
    ir::Node* square = nullptr;
    ir::Node* div = nullptr;
    for (const ir::Use& u : d->uses()) {
      ir::Node* n = u.node;
      if (is_op(n, "Div") && u.input_index == 0) {
        div = n;
      } else if (is_op(n, "Pow")) {
        auto e = float_scalar(n->input(1));
        if (u.input_index == 0 && e && *e == 2.0f) square = n;
      } else if (is_op(n, "Mul") && n->input(0) == d && n->input(1) == d) {
        square = n;
      }
    }
    const size_t expected_uses = is_op(square, "Mul") ? 3 : 2;
    if (square == nullptr || div == nullptr || d->uses().size() != expected_uses) return false;
    ir::Node* rm2 = only_consumer(square->output(0), pinned);
    if (!reduces_last_axis(rm2)) return false;
    ir::Node* add_eps = only_consumer(rm2->output(0), pinned);
    ir::Value* eps_v = add_eps ? other(add_eps, rm2->output(0)) : nullptr;
    auto eps = float_scalar(eps_v);
    if (!is_op(add_eps, "Add") || !eps) return false;
    ir::Node* sqrt = only_consumer(add_eps->output(0), pinned);
    if (!is_op(sqrt, "Sqrt") || !single_use(sqrt->output(0), pinned) || div->input(1) != sqrt->output(0)) return false;
    std::vector<ir::Node*> nodes = {rm1, sub, square, rm2, add_eps, sqrt, div};
    ir::Value* y = div->output(0);
    const Shape& xs = x->type().shape;
    const Dim last = xs.rank() > 0 ? xs[xs.rank() - 1] : Dim();
    std::optional<Tensor> gamma, beta;
    if (ir::Node* mul = only_consumer(y, pinned); is_op(mul, "Mul") && last.known()) {
      gamma = last_axis_vector(other(mul, y), last.value);
      if (gamma) {
        nodes.push_back(mul);
        y = mul->output(0);
      }
    }
    if (ir::Node* add = only_consumer(y, pinned); is_op(add, "Add") && last.known()) {
      beta = last_axis_vector(other(add, y), last.value);
      if (beta) {
        nodes.push_back(add);
        y = add->output(0);
      }
    }
    if (!gamma) {
      if (!last.known()) return false;
      Tensor ones = Tensor::empty(DataType::kFloat32, {last.value});
      for (float& v : ones.span<float>()) v = 1.0f;
      gamma = std::move(ones);
    }
    if (!same_shape(y, x)) return false;
    KILN_ASSIGN_OR_RETURN(ir::Value * g, new_constant(graph, sub->name() + "_gamma", std::move(*gamma)));
    ir::Value* b = nullptr;
    if (beta) {
      KILN_ASSIGN_OR_RETURN(b, new_constant(graph, sub->name() + "_beta", std::move(*beta)));
    }
    ir::Node* last_node = y->producer();
    std::vector<ir::Value*> inputs = {x, g};
    if (b != nullptr) inputs.push_back(b);
    const std::string name = graph.unique_name(sub->name() + "_layernorm");
    ir::Node* ln = onnx_opset(graph) >= 17 ? insert_onnx_node(graph, last_node, "LayerNormalization", inputs, {}, name)
                                           : insert_kiln_node(graph, last_node, "LayerNormalization", inputs, {}, name);
    ln->set_attr(ir::Attribute::make_int("axis", -1));
    ln->set_attr(ir::Attribute::make_float("epsilon", *eps));
    std::vector<const ir::Node*> sources(nodes.begin(), nodes.end());
    set_fused_from(ln, sources);
    for (ir::Node* n : nodes) graph.remove_node(n);
    ln->set_output(0, y);
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> make_layernorm_fusion() { return std::make_unique<LayerNormFusion>(); }

}  // namespace kiln::passes
