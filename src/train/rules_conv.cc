// Gradient rule for 2-D Conv (groups, strides, dilations, pads, auto_pad).
#include "core/error.h"
#include "train/grad_rule.h"
#include "train/window.h"

namespace kiln::train {

namespace {

struct ConvGeom {
  int64_t n, c, m, groups;
  Window2d w;
};

Result<ConvGeom> conv_geom(const NodeRecord& rec) {
  const Tensor& x = rec.inputs[0];
  const Tensor& wt = rec.inputs[1];
  if (x.rank() != 4 || wt.rank() != 4) return invalid_argument("training supports 2-D Conv (4-D X and W) only");
  ConvGeom g{};
  g.n = x.dim(0);
  g.c = x.dim(1);
  g.m = wt.dim(0);
  g.groups = rec.node->attr_int("group", 1);
  if (g.groups <= 0 || g.c % g.groups != 0 || g.m % g.groups != 0 || wt.dim(1) * g.groups != g.c) {
    return invalid_argument("Conv channels {} / weight [{}] do not match group {}", g.c, fmt::join(wt.dims(), ","), g.groups);
  }
  KILN_ASSIGN_OR_RETURN(g.w, window_2d(*rec.node, x.dim(2), x.dim(3), wt.dim(2), wt.dim(3)));
  if (g.w.kh != wt.dim(2) || g.w.kw != wt.dim(3)) return invalid_argument("kernel_shape differs from the weight's");
  if (rec.inputs.size() > 2 && rec.inputs[2].defined() && rec.inputs[2].numel() != g.m) {
    return invalid_argument("Conv bias has {} elements, expected {}", rec.inputs[2].numel(), g.m);
  }
  return g;
}

// Calls f(weight_index, y_index, x_index) for every multiply of the convolution.
template <class F>
void for_each_tap(const ConvGeom& g, F&& f) {
  const Window2d& w = g.w;
  int64_t cg = g.c / g.groups;
  int64_t mg = g.m / g.groups;
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t m = 0; m < g.m; ++m) {
      int64_t grp = m / mg;
      for (int64_t cl = 0; cl < cg; ++cl) {
        int64_t c = grp * cg + cl;
        for (int64_t ki = 0; ki < w.kh; ++ki) {
          for (int64_t kj = 0; kj < w.kw; ++kj) {
            int64_t widx = ((m * cg + cl) * w.kh + ki) * w.kw + kj;
            for (int64_t oh = 0; oh < w.oh; ++oh) {
              int64_t ih = oh * w.sh - w.pt + ki * w.dh;
              if (ih < 0 || ih >= w.ih) continue;
              int64_t ybase = ((n * g.m + m) * w.oh + oh) * w.ow;
              int64_t xbase = ((n * g.c + c) * w.ih + ih) * w.iw;
              for (int64_t ow = 0; ow < w.ow; ++ow) {
                int64_t iw = ow * w.sw - w.pl + kj * w.dw;
                if (iw < 0 || iw >= w.iw) continue;
                f(widx, ybase + ow, xbase + iw);
              }
            }
          }
        }
      }
    }
  }
}

template <class T>
Status conv_forward_t(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(ConvGeom g, conv_geom(rec));
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), {g.n, g.m, g.w.oh, g.w.ow}));
  const T* px = rec.inputs[0].data<T>();
  const T* pw = rec.inputs[1].data<T>();
  T* py = y.data<T>();
  for_each_tap(g, [&](int64_t wi, int64_t yi, int64_t xi) { py[yi] += pw[wi] * px[xi]; });
  if (rec.inputs.size() > 2 && rec.inputs[2].defined()) {
    const T* pb = rec.inputs[2].data<T>();
    int64_t plane = g.w.oh * g.w.ow;
    for (int64_t i = 0; i < y.numel(); ++i) py[i] += pb[(i / plane) % g.m];
  }
  rec.outputs = {y};
  return Status::ok();
}

template <class T>
Status conv_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  KILN_ASSIGN_OR_RETURN(ConvGeom g, conv_geom(rec));
  const T* px = rec.inputs[0].data<T>();
  const T* pw = rec.inputs[1].data<T>();
  const T* pdy = dy.data<T>();
  if (need[0]) {
    KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), rec.inputs[0].dims()));
    T* g0 = dx[0].data<T>();
    for_each_tap(g, [&](int64_t wi, int64_t yi, int64_t xi) { g0[xi] += pw[wi] * pdy[yi]; });
  }
  if (need[1]) {
    KILN_ASSIGN_OR_RETURN(dx[1], new_tensor(rec.dtype(), rec.inputs[1].dims()));
    T* g1 = dx[1].data<T>();
    for_each_tap(g, [&](int64_t wi, int64_t yi, int64_t xi) { g1[wi] += px[xi] * pdy[yi]; });
  }
  if (need.size() > 2 && need[2]) {
    KILN_ASSIGN_OR_RETURN(dx[2], new_tensor(rec.dtype(), rec.inputs[2].dims()));
    T* g2 = dx[2].data<T>();
    int64_t plane = g.w.oh * g.w.ow;
    for (int64_t i = 0; i < dy.numel(); ++i) g2[(i / plane) % g.m] += pdy[i];
  }
  return Status::ok();
}

Status conv_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, conv_forward_t, rec); }
Status conv_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                     std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, conv_backward_t, rec, dy[0], need, dx);
}

const GradRule kRules[] = {
    {"Conv", conv_forward, conv_backward, OpClass::kLowPrecision},
};

}  // namespace

std::span<const GradRule> conv_rules() { return kRules; }

}  // namespace kiln::train
