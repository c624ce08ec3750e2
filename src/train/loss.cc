#include "train/loss.h"

#include <cmath>

#include "core/error.h"

namespace kiln::train {

namespace {

Result<int64_t> label_at(const Tensor& labels, int64_t i) {
  switch (labels.dtype()) {
    case DataType::kInt64: return labels.data<int64_t>()[i];
    case DataType::kInt32: return labels.data<int32_t>()[i];
    default: return invalid_argument("labels must be int64 or int32, got {}", data_type_name(labels.dtype()));
  }
}

template <class T>
Result<LossValue> cross_entropy_t(const Tensor& logits, const Tensor& labels) {
  int64_t n = logits.dim(0);
  int64_t c = logits.dim(1);
  LossValue out;
  KILN_ASSIGN_OR_RETURN(out.grad, Tensor::allocate(logits.dtype(), logits.dims()));
  const T* px = logits.data<T>();
  T* pg = out.grad.data<T>();
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    KILN_ASSIGN_OR_RETURN(int64_t label, label_at(labels, i));
    if (label < 0 || label >= c) return invalid_argument("label {} of sample {} is outside [0, {})", label, i, c);
    const T* row = px + i * c;
    T mx = row[0];
    for (int64_t k = 1; k < c; ++k) mx = std::max(mx, row[k]);
    T sum = 0;
    for (int64_t k = 0; k < c; ++k) sum += std::exp(row[k] - mx);
    T lse = mx + std::log(sum);
    total += static_cast<double>(lse - row[label]);
    for (int64_t k = 0; k < c; ++k) {
      T p = std::exp(row[k] - lse);
      pg[i * c + k] = (p - (k == label ? T(1) : T(0))) / static_cast<T>(n);
    }
  }
  out.value = total / static_cast<double>(n);
  return out;
}

template <class T>
Result<LossValue> mse_t(const Tensor& pred, const Tensor& target) {
  LossValue out;
  KILN_ASSIGN_OR_RETURN(out.grad, Tensor::allocate(pred.dtype(), pred.dims()));
  const T* p = pred.data<T>();
  const T* t = target.data<T>();
  T* g = out.grad.data<T>();
  double total = 0;
  T inv_n = T(1) / static_cast<T>(pred.numel());
  for (int64_t i = 0; i < pred.numel(); ++i) {
    T d = p[i] - t[i];
    total += static_cast<double>(d * d);
    g[i] = T(2) * d * inv_n;
  }
  out.value = total / static_cast<double>(pred.numel());
  return out;
}

bool is_float(const Tensor& t) { return t.dtype() == DataType::kFloat32 || t.dtype() == DataType::kFloat64; }

}  // namespace

Result<LossValue> softmax_cross_entropy(const Tensor& logits, const Tensor& labels) {
  if (!is_float(logits) || logits.rank() != 2) {
    return invalid_argument("cross-entropy logits must be float [N, C], got {}", logits.debug_string());
  }
  if (labels.rank() != 1 || labels.dim(0) != logits.dim(0)) {
    return invalid_argument("cross-entropy labels must be [{}], got {}", logits.dim(0), labels.debug_string());
  }
  if (logits.dim(0) == 0 || logits.dim(1) == 0) return invalid_argument("cross-entropy over an empty batch");
  if (logits.dtype() == DataType::kFloat64) return cross_entropy_t<double>(logits, labels);
  return cross_entropy_t<float>(logits, labels);
}

Result<LossValue> mse_loss(const Tensor& pred, const Tensor& target) {
  if (!is_float(pred) || pred.dtype() != target.dtype() || pred.dims() != target.dims()) {
    return invalid_argument("MSE needs float pred and target of equal dims and type, got {} and {}", pred.debug_string(),
                            target.debug_string());
  }
  if (pred.numel() == 0) return invalid_argument("MSE over an empty tensor");
  if (pred.dtype() == DataType::kFloat64) return mse_t<double>(pred, target);
  return mse_t<float>(pred, target);
}

}  // namespace kiln::train
