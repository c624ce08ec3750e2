// Gradient rule for 2-D Conv (groups, strides, dilations, pads, auto_pad),
// computed as im2col + matrix products.
#include "core/error.h"
#include "train/grad_rule.h"
#include "train/matmul.h"
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

// Per image and group, convolution is a matrix product with the unfolded
// input: col[(c, ki, kj), (oh, ow)] = x[c, oh*sh - pt + ki*dh, ow*sw - pl + kj*dw]
// (zero in the padding), Y[m, p] = W[m, ckk] col[ckk, p].
struct ColGeom {
  int64_t cg, mg, ckk, plane;
};

ColGeom col_geom(const ConvGeom& g) {
  int64_t cg = g.c / g.groups;
  return {cg, g.m / g.groups, cg * g.w.kh * g.w.kw, g.w.oh * g.w.ow};
}

// Unfolds channels [c0, c0 + cg) of image plane x (C x IH x IW) into col.
template <class T>
void im2col(const ConvGeom& g, const T* x, T* col, int64_t cg) {
  const Window2d& w = g.w;
  int64_t row = 0;
  for (int64_t c = 0; c < cg; ++c) {
    for (int64_t ki = 0; ki < w.kh; ++ki) {
      for (int64_t kj = 0; kj < w.kw; ++kj, ++row) {
        T* out = col + row * w.oh * w.ow;
        for (int64_t oh = 0; oh < w.oh; ++oh) {
          int64_t ih = oh * w.sh - w.pt + ki * w.dh;
          for (int64_t ow = 0; ow < w.ow; ++ow) {
            int64_t iw = ow * w.sw - w.pl + kj * w.dw;
            bool inside = ih >= 0 && ih < w.ih && iw >= 0 && iw < w.iw;
            out[oh * w.ow + ow] = inside ? x[(c * w.ih + ih) * w.iw + iw] : T(0);
          }
        }
      }
    }
  }
}

// The adjoint of im2col: adds col back into the image gradient dx.
template <class T>
void col2im(const ConvGeom& g, const T* col, T* dx, int64_t cg) {
  const Window2d& w = g.w;
  int64_t row = 0;
  for (int64_t c = 0; c < cg; ++c) {
    for (int64_t ki = 0; ki < w.kh; ++ki) {
      for (int64_t kj = 0; kj < w.kw; ++kj, ++row) {
        const T* in = col + row * w.oh * w.ow;
        for (int64_t oh = 0; oh < w.oh; ++oh) {
          int64_t ih = oh * w.sh - w.pt + ki * w.dh;
          if (ih < 0 || ih >= w.ih) continue;
          for (int64_t ow = 0; ow < w.ow; ++ow) {
            int64_t iw = ow * w.sw - w.pl + kj * w.dw;
            if (iw >= 0 && iw < w.iw) dx[(c * w.ih + ih) * w.iw + iw] += in[oh * w.ow + ow];
          }
        }
      }
    }
  }
}

template <class T>
Status conv_forward_t(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(ConvGeom g, conv_geom(rec));
  ColGeom cgm = col_geom(g);
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), {g.n, g.m, g.w.oh, g.w.ow}));
  KILN_ASSIGN_OR_RETURN(Tensor col, new_tensor(rec.dtype(), {cgm.ckk, cgm.plane}));
  const T* px = rec.inputs[0].data<T>();
  const T* pw = rec.inputs[1].data<T>();
  T* py = y.data<T>();
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      im2col(g, px + ((n * g.c + grp * cgm.cg) * g.w.ih) * g.w.iw, col.data<T>(), cgm.cg);
      T* out = py + (n * g.m + grp * cgm.mg) * cgm.plane;
      matmul_strided<T>(pw + grp * cgm.mg * cgm.ckk, col.data<T>(), out,
                        {cgm.mg, cgm.ckk, cgm.plane, cgm.ckk, 1, cgm.plane, 1, cgm.plane, 1}, T(1), false);
    }
  }
  if (rec.inputs.size() > 2 && rec.inputs[2].defined()) {
    const T* pb = rec.inputs[2].data<T>();
    for (int64_t i = 0; i < y.numel(); ++i) py[i] += pb[(i / cgm.plane) % g.m];
  }
  rec.outputs = {y};
  return Status::ok();
}

template <class T>
Status conv_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  KILN_ASSIGN_OR_RETURN(ConvGeom g, conv_geom(rec));
  ColGeom cgm = col_geom(g);
  const T* px = rec.inputs[0].data<T>();
  const T* pw = rec.inputs[1].data<T>();
  const T* pdy = dy.data<T>();
  KILN_ASSIGN_OR_RETURN(Tensor col, new_tensor(rec.dtype(), {cgm.ckk, cgm.plane}));
  T* g0 = nullptr;
  T* g1 = nullptr;
  if (need[0]) {
    KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), rec.inputs[0].dims()));
    g0 = dx[0].data<T>();
  }
  if (need[1]) {
    KILN_ASSIGN_OR_RETURN(dx[1], new_tensor(rec.dtype(), rec.inputs[1].dims()));
    g1 = dx[1].data<T>();
  }
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* dyg = pdy + (n * g.m + grp * cgm.mg) * cgm.plane;
      int64_t x_off = ((n * g.c + grp * cgm.cg) * g.w.ih) * g.w.iw;
      if (g1 != nullptr) {  // dW[m, ckk] += dY[m, p] col[ckk, p]
        im2col(g, px + x_off, col.data<T>(), cgm.cg);
        matmul_strided<T>(dyg, col.data<T>(), g1 + grp * cgm.mg * cgm.ckk,
                          {cgm.mg, cgm.plane, cgm.ckk, cgm.plane, 1, 1, cgm.plane, cgm.ckk, 1}, T(1), true);
      }
      if (g0 != nullptr) {  // dcol = W^T dY, folded back into dX
        matmul_strided<T>(pw + grp * cgm.mg * cgm.ckk, dyg, col.data<T>(),
                          {cgm.ckk, cgm.mg, cgm.plane, 1, cgm.ckk, cgm.plane, 1, cgm.plane, 1}, T(1), false);
        col2im(g, col.data<T>(), g0 + x_off, cgm.cg);
      }
    }
  }
  if (need.size() > 2 && need[2]) {
    KILN_ASSIGN_OR_RETURN(dx[2], new_tensor(rec.dtype(), rec.inputs[2].dims()));
    T* g2 = dx[2].data<T>();
    for (int64_t i = 0; i < dy.numel(); ++i) g2[(i / cgm.plane) % g.m] += pdy[i];
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
