// Gradient rules for Gemm and MatMul.
#include <algorithm>

#include "core/error.h"
#include "train/grad_rule.h"
#include "train/matmul.h"

namespace kiln::train {

namespace {

// ---- Gemm -------------------------------------------------------------------

struct GemmDims {
  int64_t m, k, n;
  int64_t am, ak, bk, bn;  // strides of op(A) and op(B)
};

Result<GemmDims> gemm_dims(const NodeRecord& rec) {
  const Tensor& a = rec.inputs[0];
  const Tensor& b = rec.inputs[1];
  if (a.rank() != 2 || b.rank() != 2) return invalid_argument("Gemm needs 2-D A and B, got {} and {}", a.rank(), b.rank());
  bool ta = rec.node->attr_int("transA", 0) != 0;
  bool tb = rec.node->attr_int("transB", 0) != 0;
  GemmDims d{};
  d.m = ta ? a.dim(1) : a.dim(0);
  d.k = ta ? a.dim(0) : a.dim(1);
  int64_t kb = tb ? b.dim(1) : b.dim(0);
  d.n = tb ? b.dim(0) : b.dim(1);
  if (kb != d.k) return invalid_argument("Gemm inner dims differ: {} vs {}", d.k, kb);
  d.am = ta ? 1 : a.dim(1);
  d.ak = ta ? a.dim(1) : 1;
  d.bk = tb ? 1 : b.dim(1);
  d.bn = tb ? b.dim(1) : 1;
  return d;
}

template <class T>
Status gemm_forward_t(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(GemmDims d, gemm_dims(rec));
  T alpha = static_cast<T>(rec.node->attr_float("alpha", 1.0f));
  T beta = static_cast<T>(rec.node->attr_float("beta", 1.0f));
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), {d.m, d.n}));
  T* py = y.data<T>();
  bool has_c = rec.inputs.size() > 2 && rec.inputs[2].defined();
  if (has_c) {
    const Tensor& c = rec.inputs[2];
    KILN_ASSIGN_OR_RETURN(Dims joint, broadcast_dims(c.dims(), y.dims()));
    if (c.rank() > 2 || joint != y.dims()) {
      return invalid_argument("Gemm C [{}] does not broadcast to [{}, {}]", fmt::join(c.dims(), ","), d.m, d.n);
    }
    std::vector<int64_t> map = broadcast_map(c.dims(), y.dims());
    for (size_t i = 0; i < map.size(); ++i) py[i] = beta * c.data<T>()[map[i]];
  }
  matmul_strided<T>(rec.inputs[0].data<T>(), rec.inputs[1].data<T>(), py,
                    {d.m, d.k, d.n, d.am, d.ak, d.bk, d.bn, d.n, 1}, alpha, has_c);
  rec.outputs = {y};
  return Status::ok();
}

template <class T>
Status gemm_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  KILN_ASSIGN_OR_RETURN(GemmDims d, gemm_dims(rec));
  T alpha = static_cast<T>(rec.node->attr_float("alpha", 1.0f));
  T beta = static_cast<T>(rec.node->attr_float("beta", 1.0f));
  const T* pdy = dy.data<T>();
  if (need[0]) {  // dA' = alpha dY op(B)^T, written through A's strides
    KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), rec.inputs[0].dims()));
    matmul_strided<T>(pdy, rec.inputs[1].data<T>(), dx[0].data<T>(), {d.m, d.n, d.k, d.n, 1, d.bn, d.bk, d.am, d.ak},
                      alpha, false);
  }
  if (need[1]) {  // dB' = alpha op(A)^T dY
    KILN_ASSIGN_OR_RETURN(dx[1], new_tensor(rec.dtype(), rec.inputs[1].dims()));
    matmul_strided<T>(rec.inputs[0].data<T>(), pdy, dx[1].data<T>(), {d.k, d.m, d.n, d.ak, d.am, d.n, 1, d.bk, d.bn},
                      alpha, false);
  }
  if (need.size() > 2 && need[2]) {
    KILN_ASSIGN_OR_RETURN(dx[2], reduce_to(dy, rec.inputs[2].dims()));
    for (T& v : dx[2].span<T>()) v *= beta;
  }
  return Status::ok();
}

Status gemm_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, gemm_forward_t, rec); }
Status gemm_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                     std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, gemm_backward_t, rec, dy[0], need, dx);
}

// ---- MatMul (numpy semantics: 1-D operands promoted, batch dims broadcast) ----

struct MatMulDims {
  Dims a, b;           // promoted to rank >= 2
  Dims batch;          // broadcast batch dims
  Dims out;            // the op's output dims (promotions removed)
  int64_t m, k, n;
  std::vector<int64_t> a_map, b_map;  // out batch index -> operand batch index
};

Result<MatMulDims> matmul_dims(const Tensor& a, const Tensor& b) {
  if (a.rank() < 1 || b.rank() < 1) return invalid_argument("MatMul operands must have rank >= 1");
  MatMulDims d;
  d.a = a.dims();
  d.b = b.dims();
  bool a1 = d.a.size() == 1;
  bool b1 = d.b.size() == 1;
  if (a1) d.a.insert(d.a.begin(), 1);
  if (b1) d.b.push_back(1);
  d.m = d.a[d.a.size() - 2];
  d.k = d.a.back();
  d.n = d.b.back();
  if (d.b[d.b.size() - 2] != d.k) return invalid_argument("MatMul inner dims differ: {} vs {}", d.k, d.b[d.b.size() - 2]);
  Dims ab(d.a.begin(), d.a.end() - 2);
  Dims bb(d.b.begin(), d.b.end() - 2);
  KILN_ASSIGN_OR_RETURN(d.batch, broadcast_dims(ab, bb));
  d.a_map = broadcast_map(ab, d.batch);
  d.b_map = broadcast_map(bb, d.batch);
  d.out = d.batch;
  if (!a1) d.out.push_back(d.m);
  if (!b1) d.out.push_back(d.n);
  return d;
}

template <class T>
Status matmul_forward_t(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(MatMulDims d, matmul_dims(rec.inputs[0], rec.inputs[1]));
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), d.out));
  const T* pa = rec.inputs[0].data<T>();
  const T* pb = rec.inputs[1].data<T>();
  T* py = y.data<T>();
  for (size_t i = 0; i < d.a_map.size(); ++i) {
    matmul_strided<T>(pa + d.a_map[i] * d.m * d.k, pb + d.b_map[i] * d.k * d.n, py + static_cast<int64_t>(i) * d.m * d.n,
                      {d.m, d.k, d.n, d.k, 1, d.n, 1, d.n, 1}, T(1), false);
  }
  rec.outputs = {y};
  return Status::ok();
}

template <class T>
Status matmul_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  KILN_ASSIGN_OR_RETURN(MatMulDims d, matmul_dims(rec.inputs[0], rec.inputs[1]));
  const T* pa = rec.inputs[0].data<T>();
  const T* pb = rec.inputs[1].data<T>();
  const T* pdy = dy.data<T>();
  if (need[0]) {  // dA = dY B^T, summed over broadcast batches
    KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), rec.inputs[0].dims()));
    for (size_t i = 0; i < d.a_map.size(); ++i) {
      matmul_strided<T>(pdy + static_cast<int64_t>(i) * d.m * d.n, pb + d.b_map[i] * d.k * d.n,
                        dx[0].data<T>() + d.a_map[i] * d.m * d.k, {d.m, d.n, d.k, d.n, 1, 1, d.n, d.k, 1}, T(1), true);
    }
  }
  if (need[1]) {  // dB = A^T dY
    KILN_ASSIGN_OR_RETURN(dx[1], new_tensor(rec.dtype(), rec.inputs[1].dims()));
    for (size_t i = 0; i < d.b_map.size(); ++i) {
      matmul_strided<T>(pa + d.a_map[i] * d.m * d.k, pdy + static_cast<int64_t>(i) * d.m * d.n,
                        dx[1].data<T>() + d.b_map[i] * d.k * d.n, {d.k, d.m, d.n, 1, d.k, d.n, 1, d.n, 1}, T(1), true);
    }
  }
  return Status::ok();
}

Status matmul_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, matmul_forward_t, rec); }
Status matmul_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                       std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, matmul_backward_t, rec, dy[0], need, dx);
}

const GradRule kRules[] = {
    {"Gemm", gemm_forward, gemm_backward, OpClass::kLowPrecision},
    {"MatMul", matmul_forward, matmul_backward, OpClass::kLowPrecision},
};

}  // namespace

std::span<const GradRule> linear_rules() { return kRules; }

}  // namespace kiln::train
