// BatchNormalization folding: Conv / ConvTranspose / Gemm followed by an
// inference-mode BatchNormalization, or by a Mul with a per-output-channel
// constant (BN as exporters sometimes write it: Mul then Add; the Add is
// left for vertical fusion as a bias), becomes the same op with rewritten
// weights and bias:
//
//   s = scale / sqrt(var + eps)       (per output channel)
//   W' = W * s                        (along the output-channel axis)
//   B' = (B - mean) * s + bias        (B = 0 when absent; beta * C for Gemm)
//
// Only when the producer's output feeds nothing but the BN (and is not a
// graph output), every weight and statistic is a float32 constant, and the
// BN's optional mean/var outputs are unused. New constants are created; the
// old weights stay for any other reader (dead-code elimination drops them).
#include <cmath>

#include "core/error.h"
#include "ops/epilogue.h"
#include "passes/graph_util.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

const Tensor* float_constant(const ir::Value* v) {
  const Tensor* t = constant_of(v);
  return t != nullptr && t->dtype() == DataType::kFloat32 ? t : nullptr;
}

struct BnParams {
  std::vector<float> s;      // per-channel multiplier
  std::vector<float> shift;  // bias - mean * s
  std::vector<float> mean;
};

// The folded multiplier and shift of an inference BN over `channels` channels.
std::optional<BnParams> bn_params(const ir::Node& bn, int64_t channels, const Pinned& pinned) {
  if (bn.attr_int("training_mode", 0) != 0 || bn.num_inputs() < 5) return std::nullopt;
  for (size_t i = 1; i < bn.num_outputs(); ++i) {
    if (bn.output(i) != nullptr && !unused(bn.output(i), pinned)) return std::nullopt;
  }
  const Tensor* scale = float_constant(bn.input(1));
  const Tensor* bias = float_constant(bn.input(2));
  const Tensor* mean = float_constant(bn.input(3));
  const Tensor* var = float_constant(bn.input(4));
  for (const Tensor* t : {scale, bias, mean, var}) {
    if (t == nullptr || t->rank() != 1 || t->dim(0) != channels) return std::nullopt;
  }
  const float eps = bn.attr_float("epsilon", 1e-5f);
  BnParams p;
  for (int64_t c = 0; c < channels; ++c) {
    const float s = scale->data<float>()[c] / std::sqrt(var->data<float>()[c] + eps);
    p.s.push_back(s);
    p.mean.push_back(mean->data<float>()[c]);
    p.shift.push_back(bias->data<float>()[c] - mean->data<float>()[c] * s);
  }
  return p;
}

// Mul(Y, t) with t a float32 constant of one value per output channel of the
// Conv/ConvTranspose/Gemm `p` (dims 1 except along Y's channel axis): a BN
// with multiplier t and no shift. Exporters write BN this way too.
std::optional<BnParams> mul_params(const ir::Node& p, const ir::Node& mul, int64_t channels) {
  const ir::Value* y = p.output(0);
  const ir::Value* other = mul.input(0) == y ? mul.input(1) : mul.input(0);
  const Tensor* t = float_constant(other);
  if (t == nullptr || mul.input(0) == mul.input(1) || !y->type().shape.rank_known()) return std::nullopt;
  const int64_t rank = y->type().shape.rank();
  const int64_t axis = is_op(&p, "Gemm") ? t->rank() - 1 : 1 - (rank - t->rank());
  if (t->rank() > rank) return std::nullopt;
  for (int64_t i = 0; i < t->rank(); ++i) {
    if (t->dim(i) != 1 && !(i == axis && t->dim(i) == channels)) return std::nullopt;
  }
  BnParams b;
  for (int64_t c = 0; c < channels; ++c) {
    b.s.push_back(t->data<float>()[t->numel() == 1 ? 0 : c]);
    b.shift.push_back(0.0f);
    b.mean.push_back(0.0f);
  }
  return b;
}

class BatchNormFolding : public Pass {
 public:
  std::string_view name() const override { return "batchnorm_folding"; }
  Result<bool> run(ir::Graph& graph) override {
    return for_each_graph(graph, [this](ir::Graph& g) { return run_graph(g); });
  }

 private:
  Result<bool> run_graph(ir::Graph& graph) {
    const Pinned pinned(graph);
    bool changed = false;
    std::vector<ir::Node*> bns;
    for (const auto& n : graph.nodes()) {
      if (is_op(n.get(), "BatchNormalization") || is_op(n.get(), "Mul")) bns.push_back(n.get());
    }
    for (ir::Node* bn : bns) {
      ir::Value* x = bn->input(0);
      // Mul by a per-channel constant: either operand may be the producer's output.
      if (is_op(bn, "Mul") && constant_of(x) != nullptr) x = bn->input(1);
      ir::Node* p = x ? x->producer() : nullptr;
      if (p == nullptr || p->graph() != &graph || !single_use(x, pinned) || !is_float32(x)) continue;
      KILN_ASSIGN_OR_RETURN(bool folded, fold(graph, p, bn, pinned));
      changed = changed || folded;
    }
    return changed;
  }

  Result<bool> fold(ir::Graph& graph, ir::Node* p, ir::Node* bn, const Pinned& pinned) {
    const bool conv = is_op(p, "Conv");
    const bool deconv = is_op(p, "ConvTranspose");
    const bool gemm = is_op(p, "Gemm");
    if (!conv && !deconv && !gemm) return false;
    const Tensor* w = float_constant(p->input(1));
    if (w == nullptr || w->rank() < 2) return false;
    const int64_t group = p->attr_int("group", 1);
    if (group < 1) return false;
    Tensor w2 = w->clone();
    float* wp = w2.data<float>();
    int64_t channels = 0;
    if (conv) {
      channels = w->dim(0);
    } else if (deconv) {
      if (w->dim(0) % group != 0) return false;
      channels = w->dim(1) * group;
    } else {
      if (w->rank() != 2) return false;
      channels = p->attr_int("transB", 0) != 0 ? w->dim(0) : w->dim(1);
    }
    auto bnp = is_op(bn, "Mul") ? mul_params(*p, *bn, channels) : bn_params(*bn, channels, pinned);
    if (!bnp) return false;
    const std::vector<float>& s = bnp->s;
    // Scale W along its output-channel axis.
    if (conv || (gemm && p->attr_int("transB", 0) != 0)) {
      const int64_t inner = w->numel() / w->dim(0);
      for (int64_t o = 0; o < w->dim(0); ++o) {
        for (int64_t i = 0; i < inner; ++i) wp[o * inner + i] *= s[static_cast<size_t>(o)];
      }
    } else if (gemm) {
      const int64_t n = w->dim(1);
      for (int64_t k = 0; k < w->dim(0); ++k) {
        for (int64_t j = 0; j < n; ++j) wp[k * n + j] *= s[static_cast<size_t>(j)];
      }
    } else {
      const int64_t cin = w->dim(0), mg = w->dim(1), per_group_in = cin / group;
      const int64_t inner = w->numel() / (cin * mg);
      for (int64_t c = 0; c < cin; ++c) {
        for (int64_t j = 0; j < mg; ++j) {
          const float f = s[static_cast<size_t>((c / per_group_in) * mg + j)];
          for (int64_t i = 0; i < inner; ++i) wp[(c * mg + j) * inner + i] *= f;
        }
      }
    }
    // The producer's own bias, per output channel.
    std::vector<float> b(static_cast<size_t>(channels), 0.0f);
    const size_t bias_input = 2;
    if (p->has_input(bias_input)) {
      const Tensor* bt = float_constant(p->input(bias_input));
      if (bt == nullptr) return false;
      const float beta = gemm ? p->attr_float("beta", 1.0f) : 1.0f;
      if (bt->numel() == 1) {
        for (float& v : b) v = beta * bt->data<float>()[0];
      } else if (bt->numel() == channels && (bt->rank() == 1 || (bt->rank() == 2 && bt->dim(0) == 1))) {
        for (int64_t c = 0; c < channels; ++c) b[static_cast<size_t>(c)] = beta * bt->data<float>()[c];
      } else {
        return false;  // a Gemm C varying along M cannot become a per-channel bias
      }
    }
    Tensor b2 = Tensor::empty(DataType::kFloat32, {channels});
    for (int64_t c = 0; c < channels; ++c) {
      const auto ci = static_cast<size_t>(c);
      b2.data<float>()[c] = b[ci] * s[ci] + bnp->shift[ci];
    }
    KILN_ASSIGN_OR_RETURN(ir::Value * wv, new_constant(graph, p->input(1)->name() + "_bnfold", std::move(w2)));
    KILN_ASSIGN_OR_RETURN(ir::Value * bv, new_constant(graph, bn->name() + "_bias_bnfold", std::move(b2)));
    p->set_input(1, wv);
    p->set_input(bias_input, bv);
    if (gemm) p->set_attr(ir::Attribute::make_float("beta", 1.0f));
    std::vector<std::string> names;
    append_fused_from(p, names);
    names.push_back(bn->name());
    ir::Value* out = bn->output(0);
    graph.remove_node(bn);
    p->set_output(0, out);
    ir::Attribute a;
    a.name = ops::kFusedFromAttr;
    a.kind = ir::Attribute::Kind::kStrings;
    a.strings = std::move(names);
    p->set_attr(std::move(a));
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> make_batchnorm_folding() { return std::make_unique<BatchNormFolding>(); }

}  // namespace kiln::passes
