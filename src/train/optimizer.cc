#include "train/optimizer.h"

#include <cmath>

#include "core/error.h"

namespace kiln::train {

namespace {

class Sgd final : public OptimizerCore {
 public:
  explicit Sgd(const SgdConfig& c) : OptimizerCore(c.lr), c_(c) {}

 private:
  Status update(Param& p, std::map<std::string, Tensor>& slots) override {
    float* w = p.value.data<float>();
    const float* g = p.grad.data<float>();
    float* buf = nullptr;
    bool first = !slots.count("momentum");
    if (c_.momentum != 0) {
      KILN_ASSIGN_OR_RETURN(Tensor m, slot(slots, "momentum", p));
      buf = m.data<float>();
    }
    const double wd = c_.weight_decay;
    const double mu = c_.momentum;
    for (int64_t i = 0; i < p.value.numel(); ++i) {
      double d = static_cast<double>(g[i]) + wd * w[i];
      if (buf != nullptr) {
        double b = first ? d : mu * buf[i] + (1.0 - c_.dampening) * d;
        buf[i] = static_cast<float>(b);
        d = c_.nesterov ? d + mu * b : b;
      }
      w[i] = static_cast<float>(w[i] - lr_ * d);
    }
    return Status::ok();
  }
  SgdConfig c_;
};

class Adam final : public OptimizerCore {
 public:
  explicit Adam(const AdamConfig& c) : OptimizerCore(c.lr), c_(c) {}

 private:
  Status update(Param& p, std::map<std::string, Tensor>& slots) override {
    KILN_ASSIGN_OR_RETURN(Tensor m, slot(slots, "exp_avg", p));
    KILN_ASSIGN_OR_RETURN(Tensor v, slot(slots, "exp_avg_sq", p));
    float* w = p.value.data<float>();
    const float* g = p.grad.data<float>();
    float* pm = m.data<float>();
    float* pv = v.data<float>();
    double t = static_cast<double>(steps_);
    double bc1 = 1.0 - std::pow(c_.beta1, t);
    double bc2 = 1.0 - std::pow(c_.beta2, t);
    for (int64_t i = 0; i < p.value.numel(); ++i) {
      double gi = g[i];
      double wi = w[i];
      if (c_.decoupled) {
        wi -= lr_ * c_.weight_decay * wi;
      } else {
        gi += c_.weight_decay * wi;
      }
      double mi = c_.beta1 * pm[i] + (1 - c_.beta1) * gi;
      double vi = c_.beta2 * pv[i] + (1 - c_.beta2) * gi * gi;
      pm[i] = static_cast<float>(mi);
      pv[i] = static_cast<float>(vi);
      wi -= lr_ * (mi / bc1) / (std::sqrt(vi / bc2) + c_.eps);
      w[i] = static_cast<float>(wi);
    }
    return Status::ok();
  }
  AdamConfig c_;
};

}  // namespace

std::unique_ptr<OptimizerCore> OptimizerCore::sgd(const SgdConfig& config) { return std::make_unique<Sgd>(config); }
std::unique_ptr<OptimizerCore> OptimizerCore::adam(const AdamConfig& config) { return std::make_unique<Adam>(config); }

Result<Tensor> OptimizerCore::slot(std::map<std::string, Tensor>& slots, const std::string& name, const Param& p) {
  auto it = slots.find(name);
  if (it != slots.end()) {
    if (it->second.dims() != p.value.dims()) return invalid_argument("optimizer state '{}/{}' has the wrong dims", p.name, name);
    return it->second;
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(DataType::kFloat32, p.value.dims()));
  slots[name] = t;
  return t;
}

Status OptimizerCore::step(std::span<Param> params) {
  ++steps_;
  for (Param& p : params) {
    if (!p.grad.defined()) continue;
    if (p.value.dtype() != DataType::kFloat32 || p.grad.dtype() != DataType::kFloat32 ||
        p.grad.dims() != p.value.dims()) {
      return invalid_argument("parameter '{}': value {} and gradient {} must be float32 of equal dims", p.name,
                              p.value.debug_string(), p.grad.debug_string());
    }
    KILN_RETURN_IF_ERROR(update(p, state_[p.name]));
  }
  return Status::ok();
}

std::map<std::string, Tensor> OptimizerCore::state() const {
  std::map<std::string, Tensor> out;
  for (const auto& [param, slots] : state_) {
    for (const auto& [name, t] : slots) out[param + "/" + name] = t;
  }
  return out;
}

Status OptimizerCore::load_state(const std::map<std::string, Tensor>& state, int64_t steps) {
  if (steps < 0) return invalid_argument("optimizer step count {} is negative", steps);
  std::map<std::string, std::map<std::string, Tensor>> loaded;
  for (const auto& [key, t] : state) {
    size_t slash = key.rfind('/');
    if (slash == std::string::npos || t.dtype() != DataType::kFloat32) {
      return invalid_argument("bad optimizer state entry '{}'", key);
    }
    loaded[key.substr(0, slash)][key.substr(slash + 1)] = t.clone();
  }
  state_ = std::move(loaded);
  steps_ = steps;
  return Status::ok();
}

double clip_grad_norm(std::span<Param> params, double max_norm) {
  double sq = 0;
  for (const Param& p : params) {
    if (!p.grad.defined()) continue;
    for (float g : p.grad.span<float>()) sq += static_cast<double>(g) * g;
  }
  double norm = std::sqrt(sq);
  if (std::isfinite(norm) && norm > max_norm && max_norm > 0) {
    double k = max_norm / (norm + 1e-6);
    for (Param& p : params) {
      if (!p.grad.defined()) continue;
      for (float& g : p.grad.span<float>()) g = static_cast<float>(g * k);
    }
  }
  return norm;
}

}  // namespace kiln::train
