// Gradient rules for Softmax and LogSoftmax (fp32 in every AMP level but O3).
#include <cmath>

#include "core/error.h"
#include "train/grad_rule.h"

namespace kiln::train {

namespace {

// The op reduces over `len` contiguous groups of `inner`: before opset 13 the
// input is coerced to 2-D at `axis` (len = product of dims from axis on).
struct SoftmaxGeom {
  int64_t outer, len, inner;
};

Result<SoftmaxGeom> softmax_geom(const NodeRecord& rec) {
  const Tensor& x = rec.inputs[0];
  bool legacy = rec.node->opset() > 0 && rec.node->opset() < 13;
  int64_t axis = rec.node->attr_int("axis", legacy ? 1 : -1);
  if (axis < 0) axis += x.rank();
  if (axis < 0 || axis >= x.rank()) return invalid_argument("softmax axis out of range for rank {}", x.rank());
  SoftmaxGeom g{1, 1, 1};
  for (int64_t i = 0; i < x.rank(); ++i) {
    if (i < axis) {
      g.outer *= x.dim(i);
    } else if (i == axis || legacy) {
      g.len *= x.dim(i);
    } else {
      g.inner *= x.dim(i);
    }
  }
  if (g.len == 0 && x.numel() == 0) g.outer = 0;  // nothing to normalize
  return g;
}

template <class T>
Status softmax_forward_t(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(SoftmaxGeom g, softmax_geom(rec));
  bool log = rec.node->op_type() == "LogSoftmax";
  const Tensor& x = rec.inputs[0];
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), x.dims()));
  const T* px = x.data<T>();
  T* py = y.data<T>();
  for (int64_t o = 0; o < g.outer; ++o) {
    for (int64_t in = 0; in < g.inner; ++in) {
      int64_t base = o * g.len * g.inner + in;
      T mx = px[base];
      for (int64_t k = 1; k < g.len; ++k) mx = std::max(mx, px[base + k * g.inner]);
      T sum = 0;
      for (int64_t k = 0; k < g.len; ++k) sum += std::exp(px[base + k * g.inner] - mx);
      T lse = std::log(sum);
      for (int64_t k = 0; k < g.len; ++k) {
        T z = px[base + k * g.inner] - mx;
        py[base + k * g.inner] = log ? z - lse : std::exp(z) / sum;
      }
    }
  }
  rec.outputs = {y};
  return Status::ok();
}

template <class T>
Status softmax_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  if (!need[0]) return Status::ok();
  KILN_ASSIGN_OR_RETURN(SoftmaxGeom g, softmax_geom(rec));
  bool log = rec.node->op_type() == "LogSoftmax";
  KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), dy.dims()));
  const T* py = rec.outputs[0].data<T>();
  const T* pdy = dy.data<T>();
  T* pg = dx[0].data<T>();
  for (int64_t o = 0; o < g.outer; ++o) {
    for (int64_t in = 0; in < g.inner; ++in) {
      int64_t base = o * g.len * g.inner + in;
      T acc = 0;
      for (int64_t k = 0; k < g.len; ++k) {
        int64_t i = base + k * g.inner;
        acc += log ? pdy[i] : pdy[i] * py[i];
      }
      for (int64_t k = 0; k < g.len; ++k) {
        int64_t i = base + k * g.inner;
        pg[i] = log ? pdy[i] - std::exp(py[i]) * acc : py[i] * (pdy[i] - acc);
      }
    }
  }
  return Status::ok();
}

Status softmax_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, softmax_forward_t, rec); }
Status softmax_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                        std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, softmax_backward_t, rec, dy[0], need, dx);
}

const GradRule kRules[] = {
    {"Softmax", softmax_forward, softmax_backward, OpClass::kFp32},
    {"LogSoftmax", softmax_forward, softmax_backward, OpClass::kFp32},
};

}  // namespace

std::span<const GradRule> softmax_rules() { return kRules; }

}  // namespace kiln::train
