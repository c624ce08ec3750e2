// Layer elimination: removes nodes that do nothing at inference time and
// collapses chains of data-movement nodes.
//
//   Identity; Dropout in inference mode (no training_mode, or a constant
//   false one, and the mask output unused); Reshape / Expand / Cast / Pad /
//   Slice / Transpose that provably return their input; Transpose pairs
//   (composed into one Transpose, or removed when they cancel); Reshape of a
//   Reshape / Flatten / Squeeze / Unsqueeze (the inner node is skipped, since a
//   Reshape without 0 entries depends only on the element count); and chains
//   of those ops whose final shape is static, into one Reshape.
//
// Every rule needs the facts it relies on to be static (constant shapes,
// known dims); otherwise the node stays.
#include <numeric>

#include "core/error.h"
#include "ops/op_util.h"
#include "passes/graph_util.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

std::optional<std::vector<int64_t>> int_constant(const ir::Value* v) {
  const Tensor* t = constant_of(v);
  if (t == nullptr || (t->dtype() != DataType::kInt64 && t->dtype() != DataType::kInt32)) return std::nullopt;
  auto r = ops::to_int64_vector(*t);
  if (!r.is_ok()) return std::nullopt;
  return *r;
}

const Shape* tensor_shape(const ir::Value* v) {
  if (v == nullptr || !v->type().is_tensor() || !v->type().shape.rank_known()) return nullptr;
  return &v->type().shape;
}

// Reshape(x, s) returns x unchanged: s keeps every dim (0 copies a dim; a
// known dim equals x's; at most one -1, which then must be the one left).
bool reshape_is_noop(const ir::Node& n) {
  auto s = int_constant(n.input(1));
  const Shape* x = tensor_shape(n.input(0));
  if (!s || x == nullptr || static_cast<int64_t>(s->size()) != x->rank()) return false;
  const bool allow_zero = n.attr_int("allowzero", 0) != 0;
  int minus_one = 0;
  for (size_t i = 0; i < s->size(); ++i) {
    const int64_t want = (*s)[i];
    const Dim& d = (*x)[static_cast<int64_t>(i)];
    if (want == 0 && !allow_zero) continue;
    if (want == -1) {
      ++minus_one;
      continue;
    }
    if (!d.known() || d.value != want) return false;
  }
  return minus_one <= 1;
}

bool transpose_is_identity(const std::vector<int64_t>& perm) {
  for (size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

// The permutation of a Transpose (default: reversed dims, needs a known rank).
std::optional<std::vector<int64_t>> perm_of(const ir::Node& n) {
  std::vector<int64_t> perm = n.attr_ints("perm");
  if (!perm.empty()) return perm;
  const Shape* x = tensor_shape(n.input(0));
  if (x == nullptr) return std::nullopt;
  perm.resize(static_cast<size_t>(x->rank()));
  std::iota(perm.rbegin(), perm.rend(), 0);
  return perm;
}

bool cast_is_noop(const ir::Node& n) {
  const ir::Value* x = n.input(0);
  if (x == nullptr || !x->type().is_tensor() || x->type().dtype == DataType::kUndefined) return false;
  return n.attr_int("to", -1) == static_cast<int64_t>(x->type().dtype);
}

bool pad_is_noop(const ir::Node& n) {
  std::vector<int64_t> pads;
  if (n.opset() < 11) {
    pads = n.attr_ints("pads");
    if (!n.has_attr("pads")) return false;
  } else {
    auto p = int_constant(n.input(1));
    if (!p) return false;
    pads = *p;
  }
  for (int64_t p : pads) {
    if (p != 0) return false;
  }
  return true;
}

// Slice of whole dims: starts 0, ends past the (known) dim, steps 1.
bool slice_is_noop(const ir::Node& n) {
  if (n.opset() < 10) return false;
  const Shape* x = tensor_shape(n.input(0));
  auto starts = int_constant(n.input(1));
  auto ends = int_constant(n.input(2));
  if (x == nullptr || !starts || !ends || starts->size() != ends->size()) return false;
  std::vector<int64_t> axes(starts->size());
  std::iota(axes.begin(), axes.end(), 0);
  if (n.has_input(3)) {
    auto a = int_constant(n.input(3));
    if (!a || a->size() != starts->size()) return false;
    axes = *a;
  }
  if (n.has_input(4)) {
    auto steps = int_constant(n.input(4));
    if (!steps || steps->size() != starts->size()) return false;
    for (int64_t s : *steps) {
      if (s != 1) return false;
    }
  }
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t axis = axes[i] < 0 ? axes[i] + x->rank() : axes[i];
    if (axis < 0 || axis >= x->rank()) return false;
    const Dim& d = (*x)[axis];
    if ((*starts)[i] != 0 || !d.known() || (*ends)[i] < d.value) return false;
  }
  return true;
}

// Expand(x, s) with every entry of s 1 or x's known dim, and s no longer than x's rank.
bool expand_is_noop(const ir::Node& n) {
  auto s = int_constant(n.input(1));
  const Shape* x = tensor_shape(n.input(0));
  if (!s || x == nullptr || static_cast<int64_t>(s->size()) > x->rank()) return false;
  const int64_t off = x->rank() - static_cast<int64_t>(s->size());
  for (size_t i = 0; i < s->size(); ++i) {
    const int64_t want = (*s)[i];
    const Dim& d = (*x)[off + static_cast<int64_t>(i)];
    if (want != 1 && !(d.known() && d.value == want)) return false;
  }
  return true;
}

bool is_reshape_like(const ir::Node* n) {
  return is_op(n, "Reshape") || is_op(n, "Flatten") || is_op(n, "Squeeze") || is_op(n, "Unsqueeze");
}

class LayerElimination : public Pass {
 public:
  std::string_view name() const override { return "layer_elimination"; }
  Result<bool> run(ir::Graph& graph) override {
    return for_each_graph(graph, [this](ir::Graph& g) { return run_graph(g); });
  }

 private:
  Result<bool> run_graph(ir::Graph& graph) {
    const Pinned pinned(graph);
    bool changed = false;
    for (bool again = true; again;) {
      again = false;
      std::vector<ir::Node*> order;
      for (const auto& n : graph.nodes()) order.push_back(n.get());
      for (ir::Node* n : order) {
        KILN_ASSIGN_OR_RETURN(bool c, rewrite(graph, n, pinned));
        if (c) {
          again = changed = true;
          break;  // `order` may hold removed nodes now
        }
      }
    }
    return changed;
  }

  // Applies the first rule that fits `n`.
  Result<bool> rewrite(ir::Graph& graph, ir::Node* n, const Pinned& pinned) {
    if (!n->domain().empty() || n->num_outputs() == 0) return false;
    const std::string& op = n->op_type();
    ir::Value* in = n->input(0);
    ir::Value* out = n->output(0);
    if (op == "Identity") return bypass(graph, n, in, out, pinned);
    if (op == "Dropout") return drop_dropout(graph, n, pinned);
    if ((op == "Reshape" && reshape_is_noop(*n)) || (op == "Cast" && cast_is_noop(*n)) ||
        (op == "Pad" && pad_is_noop(*n)) || (op == "Slice" && slice_is_noop(*n)) ||
        (op == "Expand" && expand_is_noop(*n))) {
      return bypass(graph, n, in, out, pinned);
    }
    if (op == "Transpose") return transpose(graph, n, pinned);
    if (op == "Reshape") return reshape_chain(graph, n);
    if (is_reshape_like(n)) return static_chain(graph, n);
    return false;
  }

  bool drop_dropout(ir::Graph& graph, ir::Node* n, const Pinned& pinned) {
    if (n->num_outputs() > 1 && n->output(1) != nullptr && !unused(n->output(1), pinned)) return false;
    if (n->opset() >= 12 && n->has_input(2)) {
      const Tensor* t = constant_of(n->input(2));
      if (t == nullptr || t->numel() != 1 || t->dtype() != DataType::kBool || t->data<bool>()[0]) return false;
    }
    if (n->num_outputs() > 1 && n->output(1) != nullptr) n->set_output(1, nullptr);
    return bypass(graph, n, n->input(0), n->output(0), pinned);
  }

  Result<bool> transpose(ir::Graph& graph, ir::Node* n, const Pinned& pinned) {
    auto perm = perm_of(*n);
    if (!perm) return false;
    if (transpose_is_identity(*perm)) return bypass(graph, n, n->input(0), n->output(0), pinned);
    ir::Node* inner = producer_of(n->input(0), "Transpose");
    if (inner == nullptr) return false;
    auto inner_perm = perm_of(*inner);
    if (!inner_perm || inner_perm->size() != perm->size()) return false;
    // out[i] = mid[perm[i]] = x[inner_perm[perm[i]]].
    std::vector<int64_t> composed(perm->size());
    for (size_t i = 0; i < perm->size(); ++i) {
      const int64_t p = (*perm)[i];
      if (p < 0 || p >= static_cast<int64_t>(perm->size())) return false;
      composed[i] = (*inner_perm)[static_cast<size_t>(p)];
    }
    ir::Value* x = inner->input(0);
    if (transpose_is_identity(composed)) {
      if (!pinned(n->output(0))) {
        graph.replace_all_uses(n->output(0), x);
        graph.remove_node(n);
        return true;
      }
      return false;
    }
    n->set_input(0, x);
    n->set_attr(ir::Attribute::make_ints("perm", composed));
    return true;
  }

  // Reshape(R(x), s) -> Reshape(x, s) when s has no 0 entries and R is reshape-like.
  Result<bool> reshape_chain(ir::Graph& graph, ir::Node* n) {
    ir::Node* inner = n->input(0) ? n->input(0)->producer() : nullptr;
    auto s = int_constant(n->input(1));
    if (!is_reshape_like(inner) || !s) return static_chain(graph, n);
    for (int64_t d : *s) {
      if (d == 0) return static_chain(graph, n);
    }
    n->set_input(0, inner->input(0));
    return true;
  }

  // A chain of reshape-like nodes ending in `n` whose output dims are all
  // known becomes one Reshape of the chain's input to those dims.
  Result<bool> static_chain(ir::Graph& graph, ir::Node* n) {
    ir::Node* inner = n->input(0) ? n->input(0)->producer() : nullptr;
    if (!is_reshape_like(inner)) return false;
    auto dims = n->output(0)->type().shape.concrete();
    if (!dims || !n->output(0)->type().is_tensor()) return false;
    ir::Value* x = inner->input(0);
    while (is_reshape_like(x->producer())) x = x->producer()->input(0);
    Tensor target = Tensor::empty(DataType::kInt64, {static_cast<int64_t>(dims->size())});
    std::copy(dims->begin(), dims->end(), target.data<int64_t>());
    KILN_ASSIGN_OR_RETURN(ir::Value * shape, new_constant(graph, n->name() + "_shape", std::move(target)));
    ir::Node* r = insert_onnx_node(graph, n, "Reshape", {x, shape}, {}, n->name());
    ir::Value* out = n->output(0);
    graph.remove_node(n);
    r->set_output(0, out);
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> make_layer_elimination() { return std::make_unique<LayerElimination>(); }

}  // namespace kiln::passes
