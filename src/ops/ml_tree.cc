// TreeEnsemble (ai.onnx.ml opset 5): sums (or averages, or takes the min or
// max of) the leaf weights each tree reaches for a row of X, per target, then
// applies post_transform. Part of register_ml.
//
// Interior nodes are the nodes_* arrays; a branch points either to another
// node or, when nodes_trueleafs/nodes_falseleafs says so, to a leaf (the
// leaf_* arrays). BRANCH_MEMBER nodes test membership in the next
// NaN-terminated run of membership_values. A NaN feature takes the true branch
// where nodes_missing_value_tracks_true is 1; otherwise it compares as NaN
// does (false, except for NEQ).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/ml_tree.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

enum class Mode : int64_t { kLeq, kLt, kGte, kGt, kEq, kNeq, kMember };
enum class Aggregate : int64_t { kAverage, kSum, kMin, kMax };
enum class PostTransform : int64_t { kNone, kSoftmax, kLogistic, kSoftmaxZero, kProbit };

struct TreeModel {
  std::vector<double> splits;
  std::vector<int64_t> features;
  std::vector<Mode> modes;
  std::vector<int64_t> true_ids, false_ids;
  std::vector<int64_t> true_leafs, false_leafs;
  std::vector<int64_t> nan_true;
  std::vector<std::vector<double>> members;  // per node; empty unless kMember
  std::vector<int64_t> leaf_targets;
  std::vector<double> leaf_weights;
  std::vector<int64_t> roots;
  Aggregate aggregate = Aggregate::kSum;
  PostTransform post = PostTransform::kNone;
  int64_t n_targets = 0;
};

Result<std::vector<double>> tensor_attr_doubles(const ir::Node& node, const std::string& name, bool required) {
  const Tensor* t = node.attr_tensor(name);
  if (t == nullptr) {
    if (required) return invalid_argument("{}: attribute '{}' (a tensor) is required", node.describe(), name);
    return std::vector<double>{};
  }
  auto f = to_float64(*t);
  if (!f.is_ok()) return f.status().with_context(fmt::format("{}: attribute '{}'", node.describe(), name));
  return std::vector<double>(f->data<double>(), f->data<double>() + f->numel());
}

Result<TreeModel> read_tree_model(const ir::Node& node) {
  const std::string where = node.describe();
  TreeModel m;
  for (const char* name : {"nodes_featureids", "nodes_truenodeids", "nodes_falsenodeids", "nodes_trueleafs",
                           "nodes_falseleafs", "leaf_targetids", "tree_roots"}) {
    if (!node.has_attr(name)) return invalid_argument("{}: attribute '{}' is required", where, name);
  }
  KILN_ASSIGN_OR_RETURN(m.splits, tensor_attr_doubles(node, "nodes_splits", true));
  KILN_ASSIGN_OR_RETURN(std::vector<double> modes, tensor_attr_doubles(node, "nodes_modes", true));
  KILN_ASSIGN_OR_RETURN(m.leaf_weights, tensor_attr_doubles(node, "leaf_weights", true));
  KILN_ASSIGN_OR_RETURN(std::vector<double> membership, tensor_attr_doubles(node, "membership_values", false));
  m.features = node.attr_ints("nodes_featureids");
  m.true_ids = node.attr_ints("nodes_truenodeids");
  m.false_ids = node.attr_ints("nodes_falsenodeids");
  m.true_leafs = node.attr_ints("nodes_trueleafs");
  m.false_leafs = node.attr_ints("nodes_falseleafs");
  m.leaf_targets = node.attr_ints("leaf_targetids");
  m.roots = node.attr_ints("tree_roots");
  const size_t n = m.features.size();
  m.nan_true = node.attr_ints("nodes_missing_value_tracks_true", std::vector<int64_t>(n, 0));
  if (m.splits.size() != n || modes.size() != n || m.true_ids.size() != n || m.false_ids.size() != n ||
      m.true_leafs.size() != n || m.false_leafs.size() != n || m.nan_true.size() != n) {
    return invalid_argument("{}: the nodes_* attributes must all have {} entries (nodes_featureids)", where, n);
  }
  const size_t leaves = m.leaf_targets.size();
  if (m.leaf_weights.size() != leaves) {
    return invalid_argument("{}: leaf_weights has {} entries but leaf_targetids has {}", where,
                            m.leaf_weights.size(), leaves);
  }
  const int64_t aggregate = node.attr_int("aggregate_function", 1);
  const int64_t post = node.attr_int("post_transform", 0);
  if (aggregate < 0 || aggregate > 3) return invalid_argument("{}: aggregate_function {} is not 0..3", where, aggregate);
  if (post < 0 || post > 4) return invalid_argument("{}: post_transform {} is not 0..4", where, post);
  m.aggregate = static_cast<Aggregate>(aggregate);
  m.post = static_cast<PostTransform>(post);

  int64_t max_target = -1;
  for (int64_t t : m.leaf_targets) max_target = std::max(max_target, t);
  m.n_targets = node.attr_int("n_targets", max_target + 1);
  if (m.n_targets < 1 || m.n_targets > kMaxTensorElements) {
    return invalid_argument("{}: n_targets must be >= 1, got {}", where, m.n_targets);
  }
  for (int64_t t : m.leaf_targets) {
    if (t < 0 || t >= m.n_targets) {
      return invalid_argument("{}: leaf_targetids has {}, outside [0, {})", where, t, m.n_targets);
    }
  }

  m.modes.resize(n);
  m.members.resize(n);
  size_t next_member = 0;
  for (size_t i = 0; i < n; ++i) {
    if (modes[i] < 0 || modes[i] > 6 || modes[i] != std::floor(modes[i])) {
      return invalid_argument("{}: nodes_modes[{}] is {}, not a mode 0..6", where, i, modes[i]);
    }
    m.modes[i] = static_cast<Mode>(static_cast<int64_t>(modes[i]));
    if (m.features[i] < 0) return invalid_argument("{}: nodes_featureids[{}] is negative", where, i);
    for (auto [id, leaf] : {std::pair{m.true_ids[i], m.true_leafs[i]}, std::pair{m.false_ids[i], m.false_leafs[i]}}) {
      const auto limit = static_cast<int64_t>(leaf != 0 ? leaves : n);
      if (id < 0 || id >= limit) {
        return invalid_argument("{}: node {} branches to {} {}, outside [0, {})", where, i, leaf != 0 ? "leaf" : "node",
                                id, limit);
      }
    }
    if (m.modes[i] == Mode::kMember) {
      // This node's members: membership_values up to the next NaN.
      while (next_member < membership.size() && !std::isnan(membership[next_member])) {
        m.members[i].push_back(membership[next_member++]);
      }
      if (next_member == membership.size()) {
        return invalid_argument("{}: membership_values has no NaN-terminated set for BRANCH_MEMBER node {}", where, i);
      }
      ++next_member;
    }
  }
  for (int64_t r : m.roots) {
    if (r < 0 || r >= static_cast<int64_t>(n)) return invalid_argument("{}: tree root {} is not a node", where, r);
  }
  return m;
}

bool branch_true(const TreeModel& m, size_t i, double x) {
  if (std::isnan(x) && m.nan_true[i] != 0) return true;
  const double s = m.splits[i];
  switch (m.modes[i]) {
    case Mode::kLeq: return x <= s;
    case Mode::kLt: return x < s;
    case Mode::kGte: return x >= s;
    case Mode::kGt: return x > s;
    case Mode::kEq: return x == s;
    case Mode::kNeq: return x != s;
    case Mode::kMember: return std::find(m.members[i].begin(), m.members[i].end(), x) != m.members[i].end();
  }
  return false;
}

// The leaf the tree at `root` reaches for `row` (F features).
Result<int64_t> find_leaf(const TreeModel& m, int64_t root, const double* row, int64_t f) {
  auto i = static_cast<size_t>(root);
  // A root whose branches both name the same leaf is a one-leaf tree.
  if (m.true_leafs[i] != 0 && m.false_leafs[i] != 0 && m.true_ids[i] == m.false_ids[i]) return m.true_ids[i];
  for (size_t steps = 0; steps <= m.modes.size(); ++steps) {
    if (m.features[i] >= f) {
      return invalid_argument("node {} reads feature {} but X has {} features", i, m.features[i], f);
    }
    const bool t = branch_true(m, i, row[m.features[i]]);
    const int64_t next = t ? m.true_ids[i] : m.false_ids[i];
    if ((t ? m.true_leafs[i] : m.false_leafs[i]) != 0) return next;
    i = static_cast<size_t>(next);
  }
  return invalid_argument("the tree at root {} has a cycle", root);
}

// Inverse error function: an initial guess refined by Newton steps on std::erf.
double erf_inv(double y) {
  if (!(y >= -1 && y <= 1)) return std::numeric_limits<double>::quiet_NaN();
  if (y == -1) return -std::numeric_limits<double>::infinity();
  if (y == 1) return std::numeric_limits<double>::infinity();
  const double a = 0.147;
  const double ln = std::log(1 - y * y);
  const double t = 2 / (std::numbers::pi * a) + ln / 2;
  double x = std::copysign(std::sqrt(std::sqrt(t * t - ln / a) - t), y);
  for (int k = 0; k < 3; ++k) x -= (std::erf(x) - y) / (2 / std::sqrt(std::numbers::pi) * std::exp(-x * x));
  return x;
}

void post_transform(PostTransform post, double* v, int64_t n) {
  switch (post) {
    case PostTransform::kNone: return;
    case PostTransform::kLogistic:
      for (int64_t i = 0; i < n; ++i) v[i] = 1 / (1 + std::exp(-v[i]));
      return;
    case PostTransform::kProbit:
      for (int64_t i = 0; i < n; ++i) v[i] = std::numbers::sqrt2 * erf_inv(2 * v[i] - 1);
      return;
    case PostTransform::kSoftmax:
    case PostTransform::kSoftmaxZero: {
      // SOFTMAX_ZERO leaves zero scores at zero and normalizes the others.
      const bool keep_zero = post == PostTransform::kSoftmaxZero;
      const double mx = *std::max_element(v, v + n);
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        v[i] = keep_zero && v[i] == 0 ? 0 : std::exp(v[i] - mx);
        sum += v[i];
      }
      if (sum > 0) {
        for (int64_t i = 0; i < n; ++i) v[i] /= sum;
      }
      return;
    }
  }
}

Status tree_ensemble_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(TreeModel m, read_tree_model(ctx.node()));
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  const DataType dt = x->dtype();
  if (dt != DataType::kFloat32 && dt != DataType::kFloat64 && dt != DataType::kFloat16) {
    return ctx.error(invalid_argument("input X must be float, double or float16, got {}", data_type_name(dt)));
  }
  if (x->rank() != 2) return ctx.error(invalid_argument("input X must be 2-D [N, F], got {}", dims_to_string(x->dims())));
  const int64_t rows = x->dim(0);
  const int64_t f = x->dim(1);
  KILN_ASSIGN_OR_RETURN(Tensor xd, to_float64(*x));

  // MIN/MAX start from the output type's extremes, as targets no leaf reaches keep them.
  const double lowest = dt == DataType::kFloat64 ? std::numeric_limits<double>::lowest()
                  : dt == DataType::kFloat32 ? std::numeric_limits<float>::lowest() : -65504.0;
  const double init = m.aggregate == Aggregate::kMin ? -lowest : m.aggregate == Aggregate::kMax ? lowest : 0.0;
  Tensor scores = Tensor::empty(DataType::kFloat64, {rows, m.n_targets});
  double* out = scores.data<double>();
  for (int64_t r = 0; r < rows; ++r) {
    double* row_out = out + r * m.n_targets;
    std::fill(row_out, row_out + m.n_targets, init);
    for (int64_t root : m.roots) {
      auto leaf = find_leaf(m, root, xd.data<double>() + r * f, f);
      if (!leaf.is_ok()) return ctx.error(leaf.status());
      const double w = m.leaf_weights[static_cast<size_t>(*leaf)];
      double& acc = row_out[m.leaf_targets[static_cast<size_t>(*leaf)]];
      switch (m.aggregate) {
        case Aggregate::kSum:
        case Aggregate::kAverage: acc += w; break;
        case Aggregate::kMin: acc = std::min(acc, w); break;
        case Aggregate::kMax: acc = std::max(acc, w); break;
      }
    }
    if (m.aggregate == Aggregate::kAverage && !m.roots.empty()) {
      for (int64_t t = 0; t < m.n_targets; ++t) row_out[t] /= static_cast<double>(m.roots.size());
    }
    post_transform(m.post, row_out, m.n_targets);
  }
  KILN_ASSIGN_OR_RETURN(Tensor y, cast_tensor(scores, dt));
  ctx.set_output(0, std::move(y));
  return Status::ok();
}

Status tree_ensemble_infer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(TreeModel m, read_tree_model(ctx.node()));
  const ir::ValueType& x = ctx.input_type(0);
  if (!x.is_tensor()) return Status::ok();
  Shape out = Shape({Dim(), Dim(m.n_targets)});
  if (x.shape.rank_known()) {
    if (x.shape.rank() != 2) {
      return invalid_argument("{}: input X must be 2-D [N, F], got rank {}", ctx.node().describe(), x.shape.rank());
    }
    out[0] = x.shape[0];
  }
  ctx.set_output_type(0, ir::ValueType::tensor(x.dtype, out));
  return Status::ok();
}

}  // namespace

void register_tree_ensemble(Registry& r) {
  r.add({.name = "TreeEnsemble", .domain = "ai.onnx.ml", .since_version = 5, .min_inputs = 1, .max_inputs = 1,
         .kernel = tree_ensemble_kernel, .infer = tree_ensemble_infer});
}

}  // namespace kiln::ops
