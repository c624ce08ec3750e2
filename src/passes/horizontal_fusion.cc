// Horizontal fusion: sibling ops reading the same input with constant
// weights are merged into one wider op followed by a Split:
//
//   1x1 Conv / kiln.FusedConv (group 1): weights concatenated along the
//     output channels, split on axis 1 (Inception branches);
//   MatMul / kiln.FusedMatMul with 2-D weights: weights concatenated along
//     the columns, split on the last axis (Q/K/V projections).
//
// Siblings merge only when they have the same op and equal attributes
// (including the epilogue), constant float32 weights, constant or absent
// biases (an absent one becomes zeros) and no residual input.
#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"
#include "ops/epilogue.h"
#include "passes/graph_util.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

bool same_attribute(const ir::Attribute& a, const ir::Attribute& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case ir::Attribute::Kind::kInt:
      return a.i == b.i;
    case ir::Attribute::Kind::kFloat:
      return a.f == b.f;
    case ir::Attribute::Kind::kString:
      return a.s == b.s;
    case ir::Attribute::Kind::kInts:
      return a.ints == b.ints;
    case ir::Attribute::Kind::kFloats:
      return a.floats == b.floats;
    case ir::Attribute::Kind::kStrings:
      return a.strings == b.strings;
    default:
      return false;
  }
}

bool same_attributes(const ir::Node& a, const ir::Node& b) {
  auto count = [](const ir::Node& n) {
    size_t k = 0;
    for (const auto& [name, _] : n.attributes()) k += name != ops::kFusedFromAttr;
    return k;
  };
  if (count(a) != count(b)) return false;
  for (const auto& [name, attr] : a.attributes()) {
    if (name == ops::kFusedFromAttr) continue;
    const ir::Attribute* other = b.attr(name);
    if (other == nullptr || !same_attribute(attr, *other)) return false;
  }
  return true;
}

bool is_conv(const ir::Node* n) {
  return is_op(n, "Conv") || (n->domain() == kKilnDomain && n->op_type() == "FusedConv");
}
bool is_matmul(const ir::Node* n) {
  return is_op(n, "MatMul") || (n->domain() == kKilnDomain && n->op_type() == "FusedMatMul");
}

const Tensor* float_const(const ir::Value* v) {
  const Tensor* t = constant_of(v);
  return t != nullptr && t->dtype() == DataType::kFloat32 ? t : nullptr;
}

// `n` reads `x` as input 0 and is a candidate for merging.
bool candidate(const ir::Node* n, const ir::Value* x) {
  if (n->input(0) != x || n->num_outputs() != 1 || n->input(1) == x) return false;
  if (n->has_input(3)) return false;  // residual
  const Tensor* w = float_const(n->input(1));
  if (w == nullptr || !is_float32(n->output(0))) return false;
  if (n->has_input(2) && float_const(n->input(2)) == nullptr) return false;
  if (is_conv(n)) {
    if (n->attr_int("group", 1) != 1 || w->rank() < 3) return false;
    for (int64_t i = 2; i < w->rank(); ++i) {
      if (w->dim(i) != 1) return false;
    }
    return !n->has_input(2) || float_const(n->input(2))->numel() == w->dim(0);
  }
  if (is_matmul(n)) {
    const ir::Value* xv = n->input(0);
    if (w->rank() != 2 || !xv->type().shape.rank_known() || xv->type().shape.rank() < 2) return false;
    return !n->has_input(2) || float_const(n->input(2))->numel() == w->dim(1);
  }
  return false;
}

class HorizontalFusion : public Pass {
 public:
  std::string_view name() const override { return "horizontal_fusion"; }
  Result<bool> run(ir::Graph& graph) override {
    return for_each_graph(graph, [this](ir::Graph& g) { return run_graph(g); });
  }

 private:
  Result<bool> run_graph(ir::Graph& graph) {
    std::map<const ir::Node*, size_t> position;
    std::vector<ir::Value*> inputs;
    for (const auto& n : graph.nodes()) {
      position[n.get()] = position.size();
      if (n->input(0) != nullptr) inputs.push_back(n->input(0));
    }
    bool changed = false;
    std::set<const ir::Value*> seen;
    for (ir::Value* x : inputs) {
      if (!seen.insert(x).second) continue;
      // Group the candidate readers of x by op and attributes.
      std::vector<std::vector<ir::Node*>> groups;
      for (const ir::Use& u : x->uses()) {
        ir::Node* n = u.node;
        if (u.input_index != 0 || n->graph() != &graph || !candidate(n, x)) continue;
        bool placed = false;
        for (auto& g : groups) {
          if (g[0]->op_type() == n->op_type() && g[0]->domain() == n->domain() && same_attributes(*g[0], *n)) {
            if (std::find(g.begin(), g.end(), n) == g.end()) g.push_back(n);
            placed = true;
            break;
          }
        }
        if (!placed) groups.push_back({n});
      }
      for (auto& g : groups) {
        if (g.size() < 2) continue;
        std::sort(g.begin(), g.end(), [&](const ir::Node* a, const ir::Node* b) { return position[a] < position[b]; });
        KILN_ASSIGN_OR_RETURN(bool c, merge(graph, x, g));
        changed = changed || c;
      }
    }
    return changed;
  }

  Result<bool> merge(ir::Graph& graph, ir::Value* x, const std::vector<ir::Node*>& group) {
    const bool conv = is_conv(group[0]);
    const Tensor& w0 = *float_const(group[0]->input(1));
    std::vector<int64_t> widths;
    int64_t total = 0;
    bool any_bias = false;
    for (const ir::Node* n : group) {
      const Tensor& w = *float_const(n->input(1));
      if (w.rank() != w0.rank()) return false;
      for (int64_t i = 0; i < w.rank(); ++i) {
        if (i != (conv ? 0 : 1) && w.dim(i) != w0.dim(i)) return false;
      }
      widths.push_back(conv ? w.dim(0) : w.dim(1));
      total += widths.back();
      any_bias = any_bias || n->has_input(2);
    }
    // Concatenated weights and biases.
    Dims wd = w0.dims();
    wd[conv ? 0 : 1] = total;
    Tensor w = Tensor::empty(DataType::kFloat32, wd);
    Tensor b = Tensor::empty(DataType::kFloat32, {total});
    float* wp = w.data<float>();
    float* bp = b.data<float>();
    int64_t offset = 0;
    for (size_t k = 0; k < group.size(); ++k) {
      const Tensor& wk = *float_const(group[k]->input(1));
      const float* src = wk.data<float>();
      if (conv) {
        std::copy(src, src + wk.numel(), wp + offset * (wk.numel() / widths[k]));
      } else {
        const int64_t rows = wk.dim(0);
        for (int64_t r = 0; r < rows; ++r) {
          std::copy(src + r * widths[k], src + (r + 1) * widths[k], wp + r * total + offset);
        }
      }
      const Tensor* bk = group[k]->has_input(2) ? float_const(group[k]->input(2)) : nullptr;
      for (int64_t i = 0; i < widths[k]; ++i) bp[offset + i] = bk != nullptr ? bk->data<float>()[i] : 0.0f;
      offset += widths[k];
    }
    ir::Node* first = group[0];
    KILN_ASSIGN_OR_RETURN(ir::Value * wv, new_constant(graph, first->name() + "_merged_weight", std::move(w)));
    ir::Value* bv = nullptr;
    if (any_bias) {
      KILN_ASSIGN_OR_RETURN(bv, new_constant(graph, first->name() + "_merged_bias", std::move(b)));
    }
    // The merged output: the first sibling's type with the split axis widened.
    ir::ValueType type = first->output(0)->type();
    const int64_t rank = type.shape.rank_known() ? type.shape.rank() : x->type().shape.rank();
    const int64_t axis = conv ? 1 : rank - 1;
    if (type.shape.rank_known() && axis < type.shape.rank()) type.shape[axis] = Dim(total);
    KILN_ASSIGN_OR_RETURN(ir::Value * merged_out, new_value(graph, first->name() + "_merged", type));
    std::vector<ir::Value*> inputs = {x, wv};
    if (bv != nullptr) inputs.push_back(bv);
    const std::string name = graph.unique_name(first->name() + "_merged");
    ir::Node* merged = first->domain().empty()
                           ? insert_onnx_node(graph, first, first->op_type(), inputs, {merged_out}, name)
                           : insert_kiln_node(graph, first, first->op_type(), inputs, {merged_out}, name);
    copy_attributes(*first, *merged);
    std::vector<const ir::Node*> sources(group.begin(), group.end());
    set_fused_from(merged, sources);
    // Split back into the siblings' outputs, right after the merged op.
    Tensor sizes = Tensor::empty(DataType::kInt64, {static_cast<int64_t>(widths.size())});
    std::copy(widths.begin(), widths.end(), sizes.data<int64_t>());
    std::vector<ir::Value*> split_inputs = {merged_out};
    const bool split_input = onnx_opset(graph) >= 13;
    if (split_input) {
      KILN_ASSIGN_OR_RETURN(ir::Value * sv, new_constant(graph, name + "_split", sizes));
      split_inputs.push_back(sv);
    }
    ir::Node* split = insert_onnx_node(graph, first, "Split", split_inputs, {}, name + "_split");
    split->set_attr(ir::Attribute::make_int("axis", axis));
    if (!split_input) split->set_attr(ir::Attribute::make_ints("split", widths));
    std::vector<ir::Value*> outs;
    for (ir::Node* n : group) outs.push_back(n->output(0));
    for (ir::Node* n : group) graph.remove_node(n);
    for (size_t i = 0; i < outs.size(); ++i) split->set_output(i, outs[i]);
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> make_horizontal_fusion() { return std::make_unique<HorizontalFusion>(); }

}  // namespace kiln::passes
