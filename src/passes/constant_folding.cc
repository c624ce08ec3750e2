// Constant folding: evaluates nodes whose inputs are all constant with the
// reference kernels (the interpreter's own kernels, so folding cannot
// disagree with execution), and folds shape arithmetic: Shape and Size of a
// value whose dims are statically known, and Gather of such a Shape at known
// positions, even though the value itself is not constant. Repeats (with
// shape inference in between) until nothing more folds, so a
// Shape/Gather/Concat/Unsqueeze chain feeding a Reshape becomes one constant.
//
// Never folded: ops marked nondeterministic in their OpDef (RandomNormal,
// Bernoulli, ...), Dropout (layer elimination removes it in inference mode),
// nodes with subgraphs, and results larger than kMaxGrowth elements that are
// also larger than their inputs (an Expand or ConstantOfShape to a huge
// tensor stays a node: folding it would only bloat the model), except for
// weights, up to kMaxWeightElements.
#include <algorithm>
#include <set>

#include "core/datum.h"
#include "core/error.h"
#include "core/logging.h"
#include "ops/registry.h"
#include "ops/shape_inference.h"
#include "passes/graph_util.h"
#include "passes/pass.h"

namespace kiln::passes {
namespace {

// A folded result may exceed the total size of its inputs by this many elements at most,
constexpr int64_t kMaxGrowth = int64_t{1} << 16;
// unless it is only read as weights (then the run time would build the same
// tensor on every run; models that store weights as ConstantOfShape do this).
constexpr int64_t kMaxWeightElements = int64_t{1} << 27;

// Every output of `n` is read only as a weight: input >= 1 of a Conv,
// ConvTranspose, Gemm, MatMul or BatchNormalization.
bool feeds_only_weights(const ir::Node& n) {
  for (const ir::Value* v : n.outputs()) {
    if (v == nullptr) continue;
    if (v->is_graph_output() || v->uses().empty()) return false;
    for (const ir::Use& u : v->uses()) {
      const ir::Node* c = u.node;
      const bool weight_op = is_op(c, "Conv") || is_op(c, "ConvTranspose") || is_op(c, "Gemm") || is_op(c, "MatMul") ||
                             is_op(c, "BatchNormalization");
      if (!weight_op || u.input_index < 1) return false;
    }
  }
  return true;
}

// Ops whose output size comes from input values rather than input sizes:
// folded only when shape inference already knows the output is small.
const std::set<std::string, std::less<>> kGenerators = {
    "ConstantOfShape", "Expand", "Tile",   "Range",         "OneHot",     "EyeLike",       "Resize",
    "Upsample",        "Pad",    "Col2Im", "CenterCropPad", "HannWindow", "HammingWindow", "BlackmanWindow",
    "MelWeightMatrix"};

int64_t input_elements(const ir::Node& n) {
  int64_t total = 0;
  for (const ir::Value* v : n.inputs()) {
    if (const Tensor* t = constant_of(v)) total += t->numel();
  }
  return total;
}

bool all_inputs_constant(const ir::Node& n) {
  for (const ir::Value* v : n.inputs()) {
    if (v != nullptr && constant_of(v) == nullptr) return false;
  }
  return true;
}

Tensor int64_vector(const std::vector<int64_t>& values) {
  Tensor t = Tensor::empty(DataType::kInt64, {static_cast<int64_t>(values.size())});
  std::copy(values.begin(), values.end(), t.data<int64_t>());
  return t;
}

// Replaces node `n` by constants holding `outputs` (one per output).
void fold_into_constants(ir::Graph& graph, ir::Node* n, std::vector<Tensor> outputs) {
  std::vector<ir::Value*> outs = n->outputs();
  graph.remove_node(n);
  for (size_t i = 0; i < outs.size(); ++i) {
    if (outs[i] == nullptr) continue;
    outs[i]->set_type(ir::ValueType::tensor(outputs[i].dtype(), Shape::of(outputs[i].dims())));
    outs[i]->set_constant(std::move(outputs[i]));
  }
}

// The dims of the value a Shape node reads, with Shape-15's start/end applied.
std::optional<std::vector<Dim>> shape_slice(const ir::Node& n) {
  const ir::Value* x = n.input(0);
  if (x == nullptr || !x->type().is_tensor() || !x->type().shape.rank_known()) return std::nullopt;
  std::vector<Dim> dims = x->type().shape.dims();
  if (const Tensor* t = constant_of(x)) dims = std::vector<Dim>(t->dims().begin(), t->dims().end());
  const auto rank = static_cast<int64_t>(dims.size());
  auto clamp = [&](int64_t i) {
    if (i < 0) i += rank;
    return std::clamp<int64_t>(i, 0, rank);
  };
  int64_t start = clamp(n.attr_int("start", 0));
  int64_t end = clamp(n.attr_int("end", rank));
  if (end < start) end = start;
  return std::vector<Dim>(dims.begin() + start, dims.begin() + end);
}

// Shape/Size of a statically shaped value, Gather of a Shape at known dims.
std::optional<Tensor> fold_shape_arithmetic(const ir::Node& n) {
  if (is_op(&n, "Shape")) {
    auto dims = shape_slice(n);
    if (!dims) return std::nullopt;
    std::vector<int64_t> values;
    for (const Dim& d : *dims) {
      if (!d.known()) return std::nullopt;
      values.push_back(d.value);
    }
    return int64_vector(values);
  }
  if (is_op(&n, "Size")) {
    auto dims = static_dims(n.input(0));
    if (!dims) return std::nullopt;
    int64_t numel = 1;
    for (int64_t d : *dims) numel *= d;
    return Tensor::scalar<int64_t>(DataType::kInt64, numel);
  }
  if (is_op(&n, "Gather") && n.attr_int("axis", 0) == 0) {
    const ir::Node* shape = producer_of(n.input(0), "Shape");
    const Tensor* idx = constant_of(n.input(1));
    if (shape == nullptr || idx == nullptr || idx->rank() > 1 || idx->dtype() != DataType::kInt64) {
      return std::nullopt;
    }
    auto dims = shape_slice(*shape);
    if (!dims) return std::nullopt;
    const auto rank = static_cast<int64_t>(dims->size());
    std::vector<int64_t> values;
    for (int64_t i : idx->span<int64_t>()) {
      if (i < -rank || i >= rank) return std::nullopt;
      const Dim& d = (*dims)[static_cast<size_t>(i < 0 ? i + rank : i)];
      if (!d.known()) return std::nullopt;
      values.push_back(d.value);
    }
    if (idx->rank() == 0) return Tensor::scalar<int64_t>(DataType::kInt64, values[0]);
    return int64_vector(values);
  }
  return std::nullopt;
}

// Evaluates `n` on its constant inputs; nullopt when it must not or cannot be folded.
std::optional<std::vector<Tensor>> evaluate(ir::Node& n) {
  if (n.op_type() == "Dropout" || !n.subgraphs().empty()) return std::nullopt;
  const ops::OpDef* def = ops::Registry::global().find(n.domain(), n.op_type(), n.opset());
  if (def == nullptr || def->kernel == nullptr || def->nondeterministic) return std::nullopt;
  if (!ops::check_arity(*def, n).is_ok()) return std::nullopt;
  for (const ir::Value* out : n.outputs()) {
    if (out != nullptr && out->type().kind != ir::ValueType::Kind::kTensor &&
        out->type().kind != ir::ValueType::Kind::kUnknown) {
      return std::nullopt;
    }
  }
  int64_t limit = std::max(kMaxGrowth, input_elements(n));
  if (feeds_only_weights(n)) limit = std::max(limit, kMaxWeightElements);
  if (kGenerators.count(n.op_type()) > 0) {
    // Shape inference on the now-constant inputs tells the output size before
    // anything is allocated.
    if (def->infer == nullptr) return std::nullopt;
    ops::InferContext ictx(n);
    if (!def->infer(ictx).is_ok()) return std::nullopt;
    for (const ir::Value* out : n.outputs()) {
      if (out == nullptr) continue;
      auto dims = out->type().shape.concrete();
      if (!dims) return std::nullopt;
      auto numel = checked_numel(*dims);
      if (!numel.is_ok() || *numel > limit) return std::nullopt;
    }
  }
  std::vector<Datum> inputs;
  for (const ir::Value* v : n.inputs()) inputs.push_back(v == nullptr ? Datum() : Datum(v->constant()));
  std::vector<Datum> outputs(n.num_outputs());
  ops::KernelContext ctx(n, inputs, outputs, nullptr, nullptr);
  if (!def->kernel(ctx).is_ok()) return std::nullopt;  // left for run time, which reports the error
  std::vector<Tensor> result;
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (n.output(i) == nullptr) {
      result.emplace_back();
      continue;
    }
    if (!outputs[i].is_tensor() || outputs[i].tensor().numel() > limit) return std::nullopt;
    // Outputs may alias the inputs' storage (Reshape, Identity); constants own their data.
    result.push_back(outputs[i].tensor().is_owned() ? outputs[i].tensor() : outputs[i].tensor().clone());
  }
  return result;
}

// Range(0, Gather(Shape(x), i), 1) has x's dim i as its length: gives the
// output that (symbolic) dim where shape inference left it unknown, so
// position ids built from a dynamic sequence length keep the sequence's
// symbol (and later passes can prove shapes equal).
bool refine_range(ir::Node& n) {
  if (!is_op(&n, "Range") || n.output(0) == nullptr) return false;
  ir::Value* out = n.output(0);
  const Shape& s = out->type().shape;
  if (!out->type().is_tensor() || (s.rank_known() && (s.rank() != 1 || s[0].known() || !s[0].symbol.empty()))) {
    return false;
  }
  auto start = scalar_of(n.input(0));
  auto delta = scalar_of(n.input(2));
  const ir::Node* gather = producer_of(n.input(1), "Gather");
  if (!start || *start != 0.0 || !delta || *delta != 1.0 || gather == nullptr || gather->attr_int("axis", 0) != 0) {
    return false;
  }
  const ir::Node* shape = producer_of(gather->input(0), "Shape");
  const Tensor* idx = constant_of(gather->input(1));
  if (shape == nullptr || idx == nullptr || idx->rank() != 0 || idx->dtype() != DataType::kInt64) return false;
  auto dims = shape_slice(*shape);
  const int64_t i = idx->data<int64_t>()[0];
  const auto rank = dims ? static_cast<int64_t>(dims->size()) : 0;
  if (!dims || i < -rank || i >= rank) return false;
  const Dim& d = (*dims)[static_cast<size_t>(i < 0 ? i + rank : i)];
  if (d.symbol.empty()) return false;
  out->set_type(ir::ValueType::tensor(out->type().dtype, Shape(std::vector<Dim>{d})));
  return true;
}

Result<bool> fold_graph(ir::Graph& graph) {
  bool changed = false;
  for (int round = 0; round < 16; ++round) {
    bool round_changed = false;
    for (const auto& n : graph.nodes()) round_changed = refine_range(*n) || round_changed;
    std::vector<ir::Node*> order;
    for (const auto& n : graph.nodes()) order.push_back(n.get());
    for (ir::Node* n : order) {
      if (auto t = fold_shape_arithmetic(*n)) {
        fold_into_constants(graph, n, {std::move(*t)});
        round_changed = true;
        continue;
      }
      if (!all_inputs_constant(*n)) continue;
      if (auto outs = evaluate(*n)) {
        fold_into_constants(graph, n, std::move(*outs));
        round_changed = true;
      }
    }
    if (!round_changed) break;
    changed = true;
    // Constants now known may make more shapes static (a Reshape's target, an
    // Expand's shape), which lets the next round fold further.
    if (graph.parent() == nullptr) {
      Status s = ops::infer_shapes(graph);
      if (!s.is_ok()) KILN_LOG_DEBUG("constant folding: shape inference: {}", s.message());
    }
  }
  if (changed) remove_dead_nodes(graph);
  return changed;
}

class ConstantFolding : public Pass {
 public:
  std::string_view name() const override { return "constant_folding"; }
  Result<bool> run(ir::Graph& graph) override { return for_each_graph(graph, fold_graph); }
};

}  // namespace

std::unique_ptr<Pass> make_constant_folding() { return std::make_unique<ConstantFolding>(); }

}  // namespace kiln::passes
