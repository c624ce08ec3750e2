// Gradient rules for ReduceSum and ReduceMean (fp32 in AMP's O1 list;
// accumulation in the compute type at every level).
#include <algorithm>
#include <set>

#include "core/error.h"
#include "train/grad_rule.h"

namespace kiln::train {

namespace {

struct ReduceGeom {
  Dims kept;   // input dims with reduced axes set to 1
  Dims out;    // output dims (kept, or with reduced axes dropped)
  int64_t count = 1;  // elements per output
  bool identity = false;
};

Result<ReduceGeom> reduce_geom(const NodeRecord& rec) {
  const Tensor& x = rec.inputs[0];
  std::vector<int64_t> axes;
  bool from_input = rec.node->op_type() == "ReduceSum" ? rec.node->opset() >= 13 : rec.node->opset() >= 18;
  if (from_input) {
    if (rec.inputs.size() > 1 && rec.inputs[1].defined()) {
      const Tensor& a = rec.inputs[1];
      if (a.dtype() != DataType::kInt64 || a.rank() > 1) return invalid_argument("reduce axes must be a 1-D int64 tensor");
      axes.assign(a.data<int64_t>(), a.data<int64_t>() + a.numel());
    }
  } else {
    axes = rec.node->attr_ints("axes", {});
  }
  ReduceGeom g;
  bool keepdims = rec.node->attr_int("keepdims", 1) != 0;
  if (axes.empty() && rec.node->attr_int("noop_with_empty_axes", 0) != 0) {
    g.identity = true;
    g.kept = g.out = x.dims();
    return g;
  }
  std::set<int64_t> reduced;
  for (int64_t a : axes) {
    int64_t axis = a < 0 ? a + x.rank() : a;
    if (axis < 0 || axis >= x.rank()) return invalid_argument("reduce axis {} out of range for rank {}", a, x.rank());
    reduced.insert(axis);
  }
  if (axes.empty()) {
    for (int64_t i = 0; i < x.rank(); ++i) reduced.insert(i);
  }
  for (int64_t i = 0; i < x.rank(); ++i) {
    bool r = reduced.count(i) > 0;
    g.kept.push_back(r ? 1 : x.dim(i));
    if (r) g.count *= x.dim(i);
    if (!r || keepdims) g.out.push_back(r ? 1 : x.dim(i));
  }
  return g;
}

template <class T>
Status reduce_forward_t(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(ReduceGeom g, reduce_geom(rec));
  const Tensor& x = rec.inputs[0];
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), g.out));
  const T* px = x.data<T>();
  T* py = y.data<T>();
  if (g.identity) {
    std::copy_n(px, x.numel(), py);
  } else {
    std::vector<int64_t> map = broadcast_map(g.kept, x.dims());
    for (size_t i = 0; i < map.size(); ++i) py[map[i]] += px[i];
    if (rec.node->op_type() == "ReduceMean" && g.count > 0) {
      for (T& v : y.span<T>()) v /= static_cast<T>(g.count);
    }
  }
  rec.outputs = {y};
  return Status::ok();
}

template <class T>
Status reduce_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  if (!need[0]) return Status::ok();
  KILN_ASSIGN_OR_RETURN(ReduceGeom g, reduce_geom(rec));
  const Tensor& x = rec.inputs[0];
  KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), x.dims()));
  const T* pdy = dy.data<T>();
  T* pg = dx[0].data<T>();
  if (g.identity) {
    std::copy_n(pdy, x.numel(), pg);
    return Status::ok();
  }
  T scale = rec.node->op_type() == "ReduceMean" && g.count > 0 ? T(1) / static_cast<T>(g.count) : T(1);
  std::vector<int64_t> map = broadcast_map(g.kept, x.dims());
  for (size_t i = 0; i < map.size(); ++i) pg[i] = pdy[map[i]] * scale;
  return Status::ok();
}

Status reduce_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, reduce_forward_t, rec); }
Status reduce_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                       std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, reduce_backward_t, rec, dy[0], need, dx);
}

const GradRule kRules[] = {
    {"ReduceMean", reduce_forward, reduce_backward, OpClass::kFp32, 0b10u},
    {"ReduceSum", reduce_forward, reduce_backward, OpClass::kFp32, 0b10u},
};

}  // namespace

std::span<const GradRule> reduce_rules() { return kRules; }

}  // namespace kiln::train
