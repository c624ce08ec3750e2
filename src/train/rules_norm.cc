// Gradient rules for BatchNormalization (batch statistics in training mode,
// running statistics otherwise) and LayerNormalization. Statistics are
// accumulated in the compute type (fp32 at least), whatever the AMP level.
#include <cmath>

#include "core/error.h"
#include "train/grad_rule.h"

namespace kiln::train {

namespace {

struct BnGeom {
  int64_t n, c, plane;
};

Result<BnGeom> bn_geom(const NodeRecord& rec) {
  const Tensor& x = rec.inputs[0];
  if (x.rank() < 2) return invalid_argument("BatchNormalization needs rank >= 2, got {}", x.rank());
  BnGeom g{x.dim(0), x.dim(1), 1};
  for (int64_t i = 2; i < x.rank(); ++i) g.plane *= x.dim(i);
  for (size_t i = 1; i < 5; ++i) {
    if (i >= rec.inputs.size() || !rec.inputs[i].defined()) return invalid_argument("BatchNormalization input {} is missing", i);
    if (rec.inputs[i].dtype() != x.dtype()) return invalid_argument("BatchNormalization input {} must be {}", i, data_type_name(x.dtype()));
    if (rec.inputs[i].numel() != g.c) {
      return invalid_argument("BatchNormalization input {} has {} elements, expected {}", i, rec.inputs[i].numel(), g.c);
    }
  }
  if (g.n * g.plane == 0) return invalid_argument("BatchNormalization over an empty batch");
  return g;
}

template <class T>
Status bn_forward_t(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(BnGeom g, bn_geom(rec));
  T eps = static_cast<T>(rec.node->attr_float("epsilon", 1e-5f));
  T momentum = static_cast<T>(rec.node->attr_float("momentum", 0.9f));
  const Tensor& x = rec.inputs[0];
  const T* px = x.data<T>();
  const T* scale = rec.inputs[1].data<T>();
  const T* bias = rec.inputs[2].data<T>();
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), x.dims()));
  KILN_ASSIGN_OR_RETURN(Tensor mean, new_tensor(rec.dtype(), {g.c}));
  KILN_ASSIGN_OR_RETURN(Tensor invstd, new_tensor(rec.dtype(), {g.c}));
  T* pm = mean.data<T>();
  T* pi = invstd.data<T>();
  T count = static_cast<T>(g.n * g.plane);
  for (int64_t c = 0; c < g.c; ++c) {
    T mu;
    T var;
    if (rec.training) {
      T acc = 0;
      for (int64_t n = 0; n < g.n; ++n) {
        const T* row = px + (n * g.c + c) * g.plane;
        for (int64_t i = 0; i < g.plane; ++i) acc += row[i];
      }
      mu = acc / count;
      T acc2 = 0;
      for (int64_t n = 0; n < g.n; ++n) {
        const T* row = px + (n * g.c + c) * g.plane;
        for (int64_t i = 0; i < g.plane; ++i) acc2 += (row[i] - mu) * (row[i] - mu);
      }
      var = acc2 / count;
      if (rec.state.size() > 4 && rec.state[3].defined() && rec.state[4].defined()) {
        Tensor rm = rec.state[3];
        Tensor rv = rec.state[4];
        float& m_run = rm.data<float>()[c];
        float& v_run = rv.data<float>()[c];
        m_run = static_cast<float>(momentum * m_run + (T(1) - momentum) * mu);
        v_run = static_cast<float>(momentum * v_run + (T(1) - momentum) * var);
      }
    } else {
      mu = rec.inputs[3].data<T>()[c];
      var = rec.inputs[4].data<T>()[c];
    }
    if (!(var + eps > 0)) return invalid_argument("BatchNormalization variance + epsilon is not positive in channel {}", c);
    pm[c] = mu;
    pi[c] = T(1) / std::sqrt(var + eps);
    T* py = y.data<T>();
    for (int64_t n = 0; n < g.n; ++n) {
      int64_t base = (n * g.c + c) * g.plane;
      for (int64_t i = 0; i < g.plane; ++i) py[base + i] = (px[base + i] - mu) * pi[c] * scale[c] + bias[c];
    }
  }
  rec.saved = {mean, invstd};
  rec.outputs = {y};
  return Status::ok();
}

template <class T>
Status bn_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  KILN_ASSIGN_OR_RETURN(BnGeom g, bn_geom(rec));
  const T* px = rec.inputs[0].data<T>();
  const T* scale = rec.inputs[1].data<T>();
  const T* pm = rec.saved[0].data<T>();
  const T* pi = rec.saved[1].data<T>();
  const T* pdy = dy.data<T>();
  T count = static_cast<T>(g.n * g.plane);
  std::vector<T> dbias(static_cast<size_t>(g.c), 0);
  std::vector<T> dscale(static_cast<size_t>(g.c), 0);
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t c = 0; c < g.c; ++c) {
      int64_t base = (n * g.c + c) * g.plane;
      for (int64_t i = 0; i < g.plane; ++i) {
        dbias[c] += pdy[base + i];
        dscale[c] += pdy[base + i] * (px[base + i] - pm[c]) * pi[c];
      }
    }
  }
  if (need[0]) {
    KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), rec.inputs[0].dims()));
    T* g0 = dx[0].data<T>();
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t c = 0; c < g.c; ++c) {
        int64_t base = (n * g.c + c) * g.plane;
        for (int64_t i = 0; i < g.plane; ++i) {
          if (rec.training) {
            T xhat = (px[base + i] - pm[c]) * pi[c];
            g0[base + i] = scale[c] * pi[c] / count * (count * pdy[base + i] - dbias[c] - xhat * dscale[c]);
          } else {
            g0[base + i] = pdy[base + i] * scale[c] * pi[c];
          }
        }
      }
    }
  }
  if (need[1]) {
    KILN_ASSIGN_OR_RETURN(dx[1], new_tensor(rec.dtype(), rec.inputs[1].dims()));
    std::copy(dscale.begin(), dscale.end(), dx[1].data<T>());
  }
  if (need[2]) {
    KILN_ASSIGN_OR_RETURN(dx[2], new_tensor(rec.dtype(), rec.inputs[2].dims()));
    std::copy(dbias.begin(), dbias.end(), dx[2].data<T>());
  }
  return Status::ok();
}

// ---- LayerNormalization over dims [axis, rank) ---------------------------------

struct LnGeom {
  int64_t rows, size, axis;
};

Result<LnGeom> ln_geom(const NodeRecord& rec) {
  const Tensor& x = rec.inputs[0];
  int64_t axis = rec.node->attr_int("axis", -1);
  if (axis < 0) axis += x.rank();
  if (axis < 0 || axis >= x.rank()) return invalid_argument("LayerNormalization axis out of range for rank {}", x.rank());
  LnGeom g{1, 1, axis};
  for (int64_t i = 0; i < x.rank(); ++i) (i < axis ? g.rows : g.size) *= x.dim(i);
  if (g.size == 0) return invalid_argument("LayerNormalization over an empty axis");
  if (rec.inputs.size() < 2 || !rec.inputs[1].defined() || rec.inputs[1].numel() != g.size) {
    return invalid_argument("LayerNormalization scale must have {} elements", g.size);
  }
  if (rec.inputs.size() > 2 && rec.inputs[2].defined() && rec.inputs[2].numel() != g.size) {
    return invalid_argument("LayerNormalization bias must have {} elements", g.size);
  }
  return g;
}

template <class T>
Status ln_forward_t(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(LnGeom g, ln_geom(rec));
  T eps = static_cast<T>(rec.node->attr_float("epsilon", 1e-5f));
  const Tensor& x = rec.inputs[0];
  bool has_bias = rec.inputs.size() > 2 && rec.inputs[2].defined();
  Dims stat_dims = x.dims();
  for (int64_t i = g.axis; i < x.rank(); ++i) stat_dims[static_cast<size_t>(i)] = 1;
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), x.dims()));
  KILN_ASSIGN_OR_RETURN(Tensor mean, new_tensor(rec.dtype(), stat_dims));
  KILN_ASSIGN_OR_RETURN(Tensor invstd, new_tensor(rec.dtype(), stat_dims));
  const T* px = x.data<T>();
  const T* scale = rec.inputs[1].data<T>();
  const T* bias = has_bias ? rec.inputs[2].data<T>() : nullptr;
  T* py = y.data<T>();
  for (int64_t r = 0; r < g.rows; ++r) {
    const T* row = px + r * g.size;
    T acc = 0;
    for (int64_t i = 0; i < g.size; ++i) acc += row[i];
    T mu = acc / static_cast<T>(g.size);
    T acc2 = 0;
    for (int64_t i = 0; i < g.size; ++i) acc2 += (row[i] - mu) * (row[i] - mu);
    T inv = T(1) / std::sqrt(acc2 / static_cast<T>(g.size) + eps);
    mean.data<T>()[r] = mu;
    invstd.data<T>()[r] = inv;
    for (int64_t i = 0; i < g.size; ++i) {
      py[r * g.size + i] = (row[i] - mu) * inv * scale[i] + (bias != nullptr ? bias[i] : T(0));
    }
  }
  rec.saved = {mean, invstd};
  rec.outputs = {y, mean, invstd};
  return Status::ok();
}

template <class T>
Status ln_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  if (!dy.defined()) return Status::ok();
  KILN_ASSIGN_OR_RETURN(LnGeom g, ln_geom(rec));
  const T* px = rec.inputs[0].data<T>();
  const T* scale = rec.inputs[1].data<T>();
  const T* pm = rec.saved[0].data<T>();
  const T* pi = rec.saved[1].data<T>();
  const T* pdy = dy.data<T>();
  std::vector<T> dscale(static_cast<size_t>(g.size), 0);
  std::vector<T> dbias(static_cast<size_t>(g.size), 0);
  T* g0 = nullptr;
  if (need[0]) {
    KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), rec.inputs[0].dims()));
    g0 = dx[0].data<T>();
  }
  for (int64_t r = 0; r < g.rows; ++r) {
    T sum_d = 0;
    T sum_dx = 0;
    for (int64_t i = 0; i < g.size; ++i) {
      int64_t k = r * g.size + i;
      T xhat = (px[k] - pm[r]) * pi[r];
      T d = pdy[k] * scale[i];
      dscale[i] += pdy[k] * xhat;
      dbias[i] += pdy[k];
      sum_d += d;
      sum_dx += d * xhat;
    }
    if (g0 == nullptr) continue;
    T n = static_cast<T>(g.size);
    for (int64_t i = 0; i < g.size; ++i) {
      int64_t k = r * g.size + i;
      T xhat = (px[k] - pm[r]) * pi[r];
      g0[k] = pi[r] / n * (n * pdy[k] * scale[i] - sum_d - xhat * sum_dx);
    }
  }
  if (need[1]) {
    KILN_ASSIGN_OR_RETURN(dx[1], new_tensor(rec.dtype(), rec.inputs[1].dims()));
    std::copy(dscale.begin(), dscale.end(), dx[1].data<T>());
  }
  if (need.size() > 2 && need[2]) {
    KILN_ASSIGN_OR_RETURN(dx[2], new_tensor(rec.dtype(), rec.inputs[2].dims()));
    std::copy(dbias.begin(), dbias.end(), dx[2].data<T>());
  }
  return Status::ok();
}

Status bn_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, bn_forward_t, rec); }
Status bn_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                   std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, bn_backward_t, rec, dy[0], need, dx);
}
Status ln_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, ln_forward_t, rec); }
Status ln_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                   std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, ln_backward_t, rec, dy[0], need, dx);
}

const GradRule kRules[] = {
    {"BatchNormalization", bn_forward, bn_backward, OpClass::kFp32, 0b11000u, true},
    {"LayerNormalization", ln_forward, ln_backward, OpClass::kFp32, 0u, true},
};

}  // namespace

std::span<const GradRule> norm_rules() { return kRules; }

}  // namespace kiln::train
