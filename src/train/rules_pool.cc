// Gradient rules for MaxPool, AveragePool (2-D) and GlobalAveragePool.
#include <limits>

#include "core/error.h"
#include "train/grad_rule.h"
#include "train/window.h"

namespace kiln::train {

namespace {

Result<Window2d> pool_window(const NodeRecord& rec) {
  const Tensor& x = rec.inputs[0];
  if (x.rank() != 4) return invalid_argument("training supports 2-D pooling (4-D input) only");
  if (!rec.node->has_attr("kernel_shape")) return invalid_argument("pooling needs kernel_shape");
  return window_2d(*rec.node, x.dim(2), x.dim(3), 1, 1);
}

template <class T>
Status maxpool_forward_t(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(Window2d w, pool_window(rec));
  const Tensor& x = rec.inputs[0];
  int64_t planes = x.dim(0) * x.dim(1);
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), {x.dim(0), x.dim(1), w.oh, w.ow}));
  KILN_ASSIGN_OR_RETURN(Tensor arg, new_tensor(DataType::kInt64, y.dims()));
  const T* px = x.data<T>();
  T* py = y.data<T>();
  int64_t* pa = arg.data<int64_t>();
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t oh = 0; oh < w.oh; ++oh) {
      for (int64_t ow = 0; ow < w.ow; ++ow) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_i = -1;
        for (int64_t ki = 0; ki < w.kh; ++ki) {
          int64_t ih = oh * w.sh - w.pt + ki * w.dh;
          if (ih < 0 || ih >= w.ih) continue;
          for (int64_t kj = 0; kj < w.kw; ++kj) {
            int64_t iw = ow * w.sw - w.pl + kj * w.dw;
            if (iw < 0 || iw >= w.iw) continue;
            int64_t i = (p * w.ih + ih) * w.iw + iw;
            if (best_i < 0 || px[i] > best) {
              best = px[i];
              best_i = i;
            }
          }
        }
        int64_t o = (p * w.oh + oh) * w.ow + ow;
        py[o] = best_i < 0 ? T(0) : best;
        pa[o] = best_i;
      }
    }
  }
  rec.saved = {arg};
  rec.outputs = {y, arg};
  return Status::ok();
}

template <class T>
Status maxpool_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  if (!need[0] || !dy.defined()) return Status::ok();
  KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), rec.inputs[0].dims()));
  const int64_t* pa = rec.saved[0].data<int64_t>();
  const T* pdy = dy.data<T>();
  T* g = dx[0].data<T>();
  for (int64_t o = 0; o < dy.numel(); ++o) {
    if (pa[o] >= 0) g[pa[o]] += pdy[o];
  }
  return Status::ok();
}

// Calls f(x_index, y_index, 1/count) for every input element of every window.
template <class F>
Status for_each_avg(const NodeRecord& rec, const Window2d& w, F&& f) {
  const Tensor& x = rec.inputs[0];
  int64_t planes = x.dim(0) * x.dim(1);
  bool include_pad = rec.node->attr_int("count_include_pad", 0) != 0;
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t oh = 0; oh < w.oh; ++oh) {
      for (int64_t ow = 0; ow < w.ow; ++ow) {
        int64_t count = 0;
        int64_t padded = 0;
        for (int pass = 0; pass < 2; ++pass) {
          for (int64_t ki = 0; ki < w.kh; ++ki) {
            int64_t ih = oh * w.sh - w.pt + ki * w.dh;
            for (int64_t kj = 0; kj < w.kw; ++kj) {
              int64_t iw = ow * w.sw - w.pl + kj * w.dw;
              bool inside = ih >= 0 && ih < w.ih && iw >= 0 && iw < w.iw;
              bool in_padded = ih < w.ih + w.pb && iw < w.iw + w.pr;  // windows past the pads do not count
              if (pass == 0) {
                count += inside ? 1 : 0;
                padded += in_padded ? 1 : 0;
              } else if (inside) {
                int64_t denom = include_pad ? padded : count;
                f((p * w.ih + ih) * w.iw + iw, (p * w.oh + oh) * w.ow + ow, 1.0 / static_cast<double>(denom));
              }
            }
          }
        }
      }
    }
  }
  return Status::ok();
}

template <class T>
Status avgpool_forward_t(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(Window2d w, pool_window(rec));
  const Tensor& x = rec.inputs[0];
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), {x.dim(0), x.dim(1), w.oh, w.ow}));
  const T* px = x.data<T>();
  T* py = y.data<T>();
  KILN_RETURN_IF_ERROR(for_each_avg(rec, w, [&](int64_t xi, int64_t yi, double s) { py[yi] += px[xi] * static_cast<T>(s); }));
  rec.outputs = {y};
  return Status::ok();
}

template <class T>
Status avgpool_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  if (!need[0]) return Status::ok();
  KILN_ASSIGN_OR_RETURN(Window2d w, pool_window(rec));
  KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), rec.inputs[0].dims()));
  const T* pdy = dy.data<T>();
  T* g = dx[0].data<T>();
  return for_each_avg(rec, w, [&](int64_t xi, int64_t yi, double s) { g[xi] += pdy[yi] * static_cast<T>(s); });
}

// GlobalAveragePool: the mean over every dim after the first two, accumulated in T.
template <class T>
Status gap_forward_t(NodeRecord& rec) {
  const Tensor& x = rec.inputs[0];
  if (x.rank() < 3) return invalid_argument("GlobalAveragePool needs rank >= 3, got {}", x.rank());
  Dims out = {x.dim(0), x.dim(1)};
  int64_t plane = 1;
  for (int64_t i = 2; i < x.rank(); ++i) {
    out.push_back(1);
    plane *= x.dim(i);
  }
  if (plane == 0) return invalid_argument("GlobalAveragePool over an empty plane");
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), out));
  const T* px = x.data<T>();
  T* py = y.data<T>();
  for (int64_t p = 0; p < x.dim(0) * x.dim(1); ++p) {
    T acc = 0;
    for (int64_t i = 0; i < plane; ++i) acc += px[p * plane + i];
    py[p] = acc / static_cast<T>(plane);
  }
  rec.outputs = {y};
  return Status::ok();
}

template <class T>
Status gap_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  if (!need[0]) return Status::ok();
  const Tensor& x = rec.inputs[0];
  KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), x.dims()));
  int64_t planes = x.dim(0) * x.dim(1);
  int64_t plane = 1;
  for (int64_t i = 2; i < x.rank(); ++i) plane *= x.dim(i);
  const T* pdy = dy.data<T>();
  T* g = dx[0].data<T>();
  for (int64_t p = 0; p < planes; ++p) {
    T v = pdy[p] / static_cast<T>(plane);
    for (int64_t i = 0; i < plane; ++i) g[p * plane + i] = v;
  }
  return Status::ok();
}

Status maxpool_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, maxpool_forward_t, rec); }
Status maxpool_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                        std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, maxpool_backward_t, rec, dy[0], need, dx);
}
Status avgpool_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, avgpool_forward_t, rec); }
Status avgpool_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                        std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, avgpool_backward_t, rec, dy[0], need, dx);
}
Status gap_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, gap_forward_t, rec); }
Status gap_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                    std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, gap_backward_t, rec, dy[0], need, dx);
}

const GradRule kRules[] = {
    {"MaxPool", maxpool_forward, maxpool_backward},
    {"AveragePool", avgpool_forward, avgpool_backward, OpClass::kFp32},
    {"GlobalAveragePool", gap_forward, gap_backward, OpClass::kFp32},
};

}  // namespace

std::span<const GradRule> pool_rules() { return kRules; }

}  // namespace kiln::train
