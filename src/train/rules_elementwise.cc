// Gradient rules for broadcasting binary ops and unary activations.
#include <cmath>
#include <numbers>
#include <random>

#include "core/error.h"
#include "train/grad_rule.h"

namespace kiln::train {

namespace {

// ---- Binary: Add, Sub, Mul, Div ------------------------------------------------

enum class Binary { kAdd, kSub, kMul, kDiv };

template <class T>
T apply(Binary op, T a, T b) {
  switch (op) {
    case Binary::kAdd: return a + b;
    case Binary::kSub: return a - b;
    case Binary::kMul: return a * b;
    case Binary::kDiv: return a / b;
  }
  return 0;
}

Result<Binary> binary_of(const ir::Node& node) {
  const std::string& op = node.op_type();
  if (op == "Add") return Binary::kAdd;
  if (op == "Sub") return Binary::kSub;
  if (op == "Mul") return Binary::kMul;
  if (op == "Div") return Binary::kDiv;
  return invalid_argument("not a binary op: {}", op);
}

Status check_float(const NodeRecord& rec, size_t i) {
  DataType t = rec.inputs[i].dtype();
  if (t != DataType::kFloat32 && t != DataType::kFloat64) {
    return invalid_argument("input {} must be float to train, got {}", i, data_type_name(t));
  }
  return Status::ok();
}

template <class T>
Status binary_forward_t(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(Binary op, binary_of(*rec.node));
  KILN_RETURN_IF_ERROR(check_float(rec, 0));
  KILN_RETURN_IF_ERROR(check_float(rec, 1));
  const Tensor& a = rec.inputs[0];
  const Tensor& b = rec.inputs[1];
  KILN_ASSIGN_OR_RETURN(Dims out, broadcast_dims(a.dims(), b.dims()));
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), out));
  T* py = y.data<T>();
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  if (a.dims() == out && b.dims() == out) {
    for (int64_t i = 0; i < y.numel(); ++i) py[i] = apply(op, pa[i], pb[i]);
  } else {
    std::vector<int64_t> ma = broadcast_map(a.dims(), out);
    std::vector<int64_t> mb = broadcast_map(b.dims(), out);
    for (size_t i = 0; i < ma.size(); ++i) py[i] = apply(op, pa[ma[i]], pb[mb[i]]);
  }
  rec.outputs = {y};
  return Status::ok();
}

template <class T>
Status binary_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  KILN_ASSIGN_OR_RETURN(Binary op, binary_of(*rec.node));
  const Tensor& a = rec.inputs[0];
  const Tensor& b = rec.inputs[1];
  const Dims& out = dy.dims();
  std::vector<int64_t> ma = broadcast_map(a.dims(), out);
  std::vector<int64_t> mb = broadcast_map(b.dims(), out);
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  const T* pdy = dy.data<T>();
  for (size_t side = 0; side < 2; ++side) {
    if (!need[side]) continue;
    KILN_ASSIGN_OR_RETURN(Tensor full, new_tensor(rec.dtype(), out));
    T* g = full.data<T>();
    for (size_t i = 0; i < ma.size(); ++i) {
      T av = pa[ma[i]];
      T bv = pb[mb[i]];
      T d = pdy[i];
      switch (op) {
        case Binary::kAdd: g[i] = d; break;
        case Binary::kSub: g[i] = side == 0 ? d : -d; break;
        case Binary::kMul: g[i] = side == 0 ? d * bv : d * av; break;
        case Binary::kDiv: g[i] = side == 0 ? d / bv : -d * av / (bv * bv); break;
      }
    }
    KILN_ASSIGN_OR_RETURN(dx[side], reduce_to(full, side == 0 ? a.dims() : b.dims()));
  }
  return Status::ok();
}

Status binary_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, binary_forward_t, rec); }
Status binary_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                       std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, binary_backward_t, rec, dy[0], need, dx);
}

// ---- Unary activations -----------------------------------------------------------

enum class Unary { kRelu, kLeakyRelu, kSigmoid, kTanh, kGelu, kGeluTanh, kNeg, kExp, kIdentity };

Result<Unary> unary_of(const ir::Node& node) {
  const std::string& op = node.op_type();
  if (op == "Relu") return Unary::kRelu;
  if (op == "LeakyRelu") return Unary::kLeakyRelu;
  if (op == "Sigmoid") return Unary::kSigmoid;
  if (op == "Tanh") return Unary::kTanh;
  if (op == "Neg") return Unary::kNeg;
  if (op == "Exp") return Unary::kExp;
  if (op == "Identity") return Unary::kIdentity;
  if (op == "Gelu") {
    std::string approx = node.attr_string("approximate", "none");
    if (approx == "none") return Unary::kGelu;
    if (approx == "tanh") return Unary::kGeluTanh;
    return invalid_argument("Gelu approximate must be 'none' or 'tanh', got '{}'", approx);
  }
  return invalid_argument("not a unary op: {}", op);
}

constexpr double kSqrt2OverPi = 0.7978845608028654;

template <class T>
T unary_value(Unary op, T x, T alpha) {
  switch (op) {
    case Unary::kRelu: return x > 0 ? x : T(0);
    case Unary::kLeakyRelu: return x >= 0 ? x : alpha * x;
    case Unary::kSigmoid: return T(1) / (T(1) + std::exp(-x));
    case Unary::kTanh: return std::tanh(x);
    case Unary::kGelu: return T(0.5) * x * (T(1) + std::erf(x / std::numbers::sqrt2_v<T>));
    case Unary::kGeluTanh: {
      T u = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
      return T(0.5) * x * (T(1) + std::tanh(u));
    }
    case Unary::kNeg: return -x;
    case Unary::kExp: return std::exp(x);
    case Unary::kIdentity: return x;
  }
  return x;
}

// d y / d x from the input x and output y.
template <class T>
T unary_slope(Unary op, T x, T y, T alpha) {
  switch (op) {
    case Unary::kRelu: return x > 0 ? T(1) : T(0);
    case Unary::kLeakyRelu: return x >= 0 ? T(1) : alpha;
    case Unary::kSigmoid: return y * (T(1) - y);
    case Unary::kTanh: return T(1) - y * y;
    case Unary::kGelu: {
      T cdf = T(0.5) * (T(1) + std::erf(x / std::numbers::sqrt2_v<T>));
      T pdf = std::exp(T(-0.5) * x * x) / std::sqrt(T(2) * std::numbers::pi_v<T>);
      return cdf + x * pdf;
    }
    case Unary::kGeluTanh: {
      T u = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
      T t = std::tanh(u);
      T du = T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * x * x);
      return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du;
    }
    case Unary::kNeg: return T(-1);
    case Unary::kExp: return y;
    case Unary::kIdentity: return T(1);
  }
  return T(1);
}

template <class T>
Status unary_forward_t(NodeRecord& rec) {
  KILN_ASSIGN_OR_RETURN(Unary op, unary_of(*rec.node));
  KILN_RETURN_IF_ERROR(check_float(rec, 0));
  T alpha = static_cast<T>(rec.node->attr_float("alpha", 0.01f));
  const Tensor& x = rec.inputs[0];
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), x.dims()));
  const T* px = x.data<T>();
  T* py = y.data<T>();
  for (int64_t i = 0; i < x.numel(); ++i) py[i] = unary_value(op, px[i], alpha);
  rec.outputs = {y};
  return Status::ok();
}

template <class T>
Status unary_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  if (!need[0]) return Status::ok();
  KILN_ASSIGN_OR_RETURN(Unary op, unary_of(*rec.node));
  T alpha = static_cast<T>(rec.node->attr_float("alpha", 0.01f));
  const Tensor& x = rec.inputs[0];
  KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), x.dims()));
  const T* px = x.data<T>();
  const T* py = rec.outputs[0].data<T>();
  const T* pdy = dy.data<T>();
  T* g = dx[0].data<T>();
  for (int64_t i = 0; i < x.numel(); ++i) g[i] = pdy[i] * unary_slope(op, px[i], py[i], alpha);
  return Status::ok();
}

Status unary_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, unary_forward_t, rec); }
Status unary_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                      std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, unary_backward_t, rec, dy[0], need, dx);
}

// ---- Dropout: inverted dropout in training mode, identity otherwise ---------------

Result<double> dropout_ratio(const NodeRecord& rec) {
  double ratio = rec.node->attr_float("ratio", 0.5f);  // opsets < 12
  if (rec.inputs.size() > 1 && rec.inputs[1].defined()) {
    const Tensor& r = rec.inputs[1];
    if (r.numel() != 1 || (r.dtype() != DataType::kFloat32 && r.dtype() != DataType::kFloat64)) {
      return invalid_argument("Dropout ratio must be a float scalar");
    }
    ratio = r.dtype() == DataType::kFloat64 ? r.data<double>()[0] : r.data<float>()[0];
  }
  if (!(ratio >= 0.0 && ratio < 1.0)) return invalid_argument("Dropout ratio {} is outside [0, 1)", ratio);
  return ratio;
}

template <class T>
Status dropout_forward_t(NodeRecord& rec) {
  KILN_RETURN_IF_ERROR(check_float(rec, 0));
  KILN_ASSIGN_OR_RETURN(double ratio, dropout_ratio(rec));
  const Tensor& x = rec.inputs[0];
  KILN_ASSIGN_OR_RETURN(Tensor y, new_tensor(rec.dtype(), x.dims()));
  KILN_ASSIGN_OR_RETURN(Tensor mask, new_tensor(DataType::kBool, x.dims()));
  bool active = rec.training && ratio > 0;
  std::mt19937_64 rng(rec.seed);
  std::bernoulli_distribution keep(1.0 - ratio);
  T scale = active ? static_cast<T>(1.0 / (1.0 - ratio)) : T(1);
  const T* px = x.data<T>();
  T* py = y.data<T>();
  bool* pm = mask.data<bool>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    pm[i] = !active || keep(rng);
    py[i] = pm[i] ? px[i] * scale : T(0);
  }
  rec.saved = {mask};
  rec.outputs = {y, mask};
  return Status::ok();
}

template <class T>
Status dropout_backward_t(const NodeRecord& rec, const Tensor& dy, const std::vector<bool>& need, std::vector<Tensor>& dx) {
  if (!need[0] || !dy.defined()) return Status::ok();
  KILN_ASSIGN_OR_RETURN(double ratio, dropout_ratio(rec));
  bool active = rec.training && ratio > 0;
  T scale = active ? static_cast<T>(1.0 / (1.0 - ratio)) : T(1);
  KILN_ASSIGN_OR_RETURN(dx[0], new_tensor(rec.dtype(), dy.dims()));
  const bool* pm = rec.saved[0].data<bool>();
  const T* pdy = dy.data<T>();
  T* g = dx[0].data<T>();
  for (int64_t i = 0; i < dy.numel(); ++i) g[i] = pm[i] ? pdy[i] * scale : T(0);
  return Status::ok();
}

Status dropout_forward(NodeRecord& rec) { return KILN_TRAIN_DISPATCH(rec, dropout_forward_t, rec); }
Status dropout_backward(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                        std::vector<Tensor>& dx) {
  return KILN_TRAIN_DISPATCH(rec, dropout_backward_t, rec, dy[0], need, dx);
}

const GradRule kRules[] = {
    {"Add", binary_forward, binary_backward},
    {"Sub", binary_forward, binary_backward},
    {"Mul", binary_forward, binary_backward},
    {"Div", binary_forward, binary_backward},
    {"Relu", unary_forward, unary_backward},
    {"LeakyRelu", unary_forward, unary_backward},
    {"Sigmoid", unary_forward, unary_backward},
    {"Tanh", unary_forward, unary_backward},
    {"Gelu", unary_forward, unary_backward},
    {"Neg", unary_forward, unary_backward},
    {"Exp", unary_forward, unary_backward, OpClass::kFp32},
    {"Identity", unary_forward, unary_backward},
    {"Dropout", dropout_forward, dropout_backward, OpClass::kPromote, 0b110u},
};

}  // namespace

std::span<const GradRule> elementwise_rules() { return kRules; }

}  // namespace kiln::train
