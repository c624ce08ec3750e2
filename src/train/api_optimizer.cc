// kiln::train::Optimizer (include/kiln/train.h): steps with AMP's unscale,
// overflow skip and clipping; checkpoints.
#include <algorithm>

#include "core/error.h"
#include "train/api_internal.h"
#include "train/checkpoint.h"

namespace kiln::train {

Optimizer::Optimizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Optimizer::Optimizer(Optimizer&&) noexcept = default;
Optimizer& Optimizer::operator=(Optimizer&&) noexcept = default;
Optimizer::~Optimizer() = default;

namespace {

Status check_lr(double lr) {
  if (!(lr > 0)) return invalid_argument("learning rate must be positive, got {}", lr);
  return Status::ok();
}

}  // namespace

Result<Optimizer> Optimizer::sgd(Model& model, const SgdOptions& o) {
  KILN_RETURN_IF_ERROR(check_lr(o.lr));
  if (o.momentum < 0 || o.weight_decay < 0) return invalid_argument("momentum and weight decay must be >= 0");
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0)) {
    return invalid_argument("Nesterov momentum needs momentum > 0 and zero dampening");
  }
  auto impl = std::make_unique<Impl>();
  impl->model = model.impl_.get();
  impl->core = OptimizerCore::sgd({o.lr, o.momentum, o.dampening, o.weight_decay, o.nesterov});
  return Optimizer(std::move(impl));
}

static Result<std::unique_ptr<Optimizer::Impl>> make_adam(Model::Impl* model, const AdamOptions& o, bool decoupled) {
  KILN_RETURN_IF_ERROR(check_lr(o.lr));
  if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1 && o.eps > 0 && o.weight_decay >= 0)) {
    return invalid_argument("Adam needs betas in [0, 1), eps > 0 and weight decay >= 0");
  }
  auto impl = std::make_unique<Optimizer::Impl>();
  impl->model = model;
  impl->core = OptimizerCore::adam({o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, decoupled});
  return impl;
}

Result<Optimizer> Optimizer::adam(Model& model, const AdamOptions& o) {
  KILN_ASSIGN_OR_RETURN(auto impl, make_adam(model.impl_.get(), o, false));
  return Optimizer(std::move(impl));
}

Result<Optimizer> Optimizer::adamw(Model& model, const AdamOptions& o) {
  KILN_ASSIGN_OR_RETURN(auto impl, make_adam(model.impl_.get(), o, true));
  return Optimizer(std::move(impl));
}

Result<bool> Optimizer::step() {
  Impl& o = *impl_;
  std::vector<Param>& params = o.model->params;
  for (const Param& p : params) {
    if (!p.grad.defined()) return failed_precondition("step() before backward(): parameter '{}' has no gradient", p.name);
  }
  if (o.amp_active) {
    bool found_inf = o.scaler.unscale(params);
    if (found_inf) {
      o.scaler.update(true);
      return false;
    }
  }
  o.last_norm = o.max_grad_norm > 0 ? clip_grad_norm(params, o.max_grad_norm) : clip_grad_norm(params, 0);
  KILN_RETURN_IF_ERROR(o.core->step(params));
  if (!o.model->amp.master_weights) o.model->round_weights();
  if (o.amp_active) o.scaler.update(false);
  return true;
}

double Optimizer::lr() const { return impl_->core->lr(); }
void Optimizer::set_lr(double lr) { impl_->core->set_lr(lr); }
void Optimizer::set_max_grad_norm(double max_norm) { impl_->max_grad_norm = max_norm; }
double Optimizer::last_grad_norm() const { return impl_->last_norm; }
int64_t Optimizer::steps() const { return impl_->core->steps(); }
int64_t Optimizer::skipped_steps() const { return impl_->scaler.skipped_steps(); }
double Optimizer::loss_scale() const { return impl_->scaler.scale(); }

Status Optimizer::save_checkpoint(const std::string& path) const {
  const Impl& o = *impl_;
  TensorMap out;
  for (const ir::Value* v : o.model->model.graph->constants()) {
    if (v->constant().dtype() == DataType::kFloat32) out["weight/" + v->name()] = v->constant();
  }
  for (const auto& [key, t] : o.core->state()) out["optim/" + key] = t;
  Tensor steps = Tensor::empty(DataType::kInt64, {2});
  steps.data<int64_t>()[0] = o.core->steps();
  steps.data<int64_t>()[1] = o.scaler.skipped_steps();
  out["meta/steps"] = steps;
  Tensor scaler = Tensor::empty(DataType::kFloat64, {2});
  scaler.data<double>()[0] = o.scaler.scale();
  scaler.data<double>()[1] = static_cast<double>(o.scaler.growth_tracker());
  out["meta/scaler"] = scaler;
  return save_tensors(path, out);
}

Status Optimizer::load_checkpoint(const std::string& path) {
  Impl& o = *impl_;
  KILN_ASSIGN_OR_RETURN(TensorMap in, load_tensors(path));
  // Validate everything before changing anything.
  std::map<std::string, Tensor> optim;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (destination constant, source)
  for (const ir::Value* v : o.model->model.graph->constants()) {
    if (v->constant().dtype() != DataType::kFloat32) continue;
    auto it = in.find("weight/" + v->name());
    if (it == in.end()) return invalid_argument("checkpoint '{}' lacks weight '{}'", path, v->name());
    if (it->second.dtype() != DataType::kFloat32 || it->second.dims() != v->constant().dims()) {
      return invalid_argument("checkpoint '{}': weight '{}' is {}, the model has {}", path, v->name(),
                              it->second.debug_string(), v->constant().debug_string());
    }
    copies.emplace_back(v->constant(), it->second);
  }
  for (const auto& [key, t] : in) {
    if (key.rfind("optim/", 0) == 0) optim[key.substr(6)] = t;
  }
  auto steps = in.find("meta/steps");
  auto scaler = in.find("meta/scaler");
  if (steps == in.end() || steps->second.dtype() != DataType::kInt64 || steps->second.numel() != 2 ||
      scaler == in.end() || scaler->second.dtype() != DataType::kFloat64 || scaler->second.numel() != 2) {
    return invalid_argument("checkpoint '{}' lacks the optimizer step and loss-scaler entries", path);
  }
  double scale = scaler->second.data<double>()[0];
  if (!(scale > 0)) return invalid_argument("checkpoint '{}' has loss scale {}", path, scale);
  KILN_RETURN_IF_ERROR(o.core->load_state(optim, steps->second.data<int64_t>()[0]));
  for (auto& [dst, src] : copies) std::copy_n(src.data<float>(), src.numel(), dst.data<float>());
  o.scaler.restore(scale, static_cast<int64_t>(scaler->second.data<double>()[1]), steps->second.data<int64_t>()[1]);
  return Status::ok();
}

}  // namespace kiln::train
