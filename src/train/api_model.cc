// kiln::train::Model, losses and AMP initialization (include/kiln/train.h).
#include <algorithm>

#include "core/error.h"
#include "onnx/importer.h"
#include "train/api_internal.h"
#include "train/loss.h"
#include "train/model_builder.h"
#include "train/onnx_export.h"

namespace kiln::train {

Result<Loss> cross_entropy(const Tensor& logits, const Tensor& labels) {
  KILN_ASSIGN_OR_RETURN(Tensor l, convert_float(logits, DataType::kFloat32));
  KILN_ASSIGN_OR_RETURN(LossValue v, softmax_cross_entropy(l, labels));
  return Loss{v.value, v.grad};
}

Result<Loss> mse(const Tensor& pred, const Tensor& target) {
  KILN_ASSIGN_OR_RETURN(Tensor p, convert_float(pred, DataType::kFloat32));
  KILN_ASSIGN_OR_RETURN(Tensor t, convert_float(target, DataType::kFloat32));
  KILN_ASSIGN_OR_RETURN(LossValue v, mse_loss(p, t));
  return Loss{v.value, v.grad};
}

Status Model::Impl::init() {
  const ir::Graph& g = *model.graph;
  if (g.inputs().size() != 1) return invalid_argument("training needs a model with one input, got {}", g.inputs().size());
  if (g.outputs().empty()) return invalid_argument("model has no outputs");
  for (const auto& n : g.nodes()) {
    if (find_grad_rule(n->op_type()) == nullptr || (!n->domain().empty() && n->domain() != "ai.onnx")) {
      return unimplemented("{}: op {} has no gradient rule (see docs/TRAINING.md)", n->describe(), n->op_type());
    }
  }
  for (const ir::Value* v : g.constants()) {
    // Scalars (attention scales, constants of decomposed ops) are fixed, not weights.
    if (v->constant().dtype() != DataType::kFloat32 || v->constant().rank() == 0) continue;
    bool trainable = false;
    for (const ir::Use& u : v->uses()) {
      const GradRule* r = find_grad_rule(u.node->op_type());
      if (r != nullptr && (r->no_grad_inputs & (1u << u.input_index)) == 0) trainable = true;
    }
    if (!trainable) continue;
    param_values.push_back(v);
    params.push_back(Param{v->name(), v->constant(), Tensor()});
  }
  train_tape.set_trainable(param_values);
  return Status::ok();
}

void Model::Impl::round_weights() {
  for (Param& p : params) round_in_place(p.value, amp.low);
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Result<Model> Model::sequential(const Dims& sample_dims, const std::vector<std::string>& layers, uint64_t seed) {
  KILN_ASSIGN_OR_RETURN(ir::Model m, build_sequential(sample_dims, layers, seed));
  auto impl = std::make_unique<Impl>(std::move(m));
  impl->seed = seed;
  KILN_RETURN_IF_ERROR(impl->init());
  return Model(std::move(impl));
}

Result<Model> Model::load_onnx(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(ir::Model m, onnx::import_model_file(path));
  auto impl = std::make_unique<Impl>(std::move(m));
  Status s = impl->init();
  if (!s.is_ok()) return std::move(s).with_context(path);
  return Model(std::move(impl));
}

Result<Tensor> Model::forward(const Tensor& input) {
  TapeOptions opt;
  opt.training = true;
  opt.seed = impl_->seed * 1000003 + impl_->forwards++;
  impl_->recorded = false;
  Tensor in[] = {input};
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, impl_->train_tape.forward(in, opt));
  impl_->recorded = true;
  return outs[0];
}

Status Model::backward(const Tensor& output_grad) {
  if (!impl_->recorded) return failed_precondition("backward() needs a forward() first");
  std::vector<Tensor> seeds(impl_->model.graph->outputs().size());
  seeds[0] = output_grad;
  KILN_RETURN_IF_ERROR(impl_->train_tape.backward(seeds));
  for (size_t i = 0; i < impl_->params.size(); ++i) {
    Param& p = impl_->params[i];
    Tensor g = impl_->train_tape.grad(impl_->param_values[i]);
    if (g.defined()) {
      KILN_ASSIGN_OR_RETURN(g, convert_float(g, DataType::kFloat32));
      p.grad = g.clone();
    } else {
      KILN_ASSIGN_OR_RETURN(p.grad, Tensor::allocate(DataType::kFloat32, p.value.dims()));
    }
  }
  return Status::ok();
}

Result<Tensor> Model::predict(const Tensor& input) {
  TapeOptions opt;
  opt.training = false;
  Tensor in[] = {input};
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> outs, impl_->eval_tape.forward(in, opt));
  impl_->eval_tape.clear();
  return outs[0];
}

std::vector<std::string> Model::parameter_names() const {
  std::vector<std::string> names;
  for (const Param& p : impl_->params) names.push_back(p.name);
  return names;
}

int64_t Model::num_parameters() const {
  int64_t n = 0;
  for (const Param& p : impl_->params) n += p.value.numel();
  return n;
}

Result<Tensor> Model::parameter(const std::string& name) const {
  for (const Param& p : impl_->params) {
    if (p.name == name) return p.value;
  }
  return not_found("no parameter '{}'", name);
}

Result<Tensor> Model::grad(const std::string& name) const {
  for (const Param& p : impl_->params) {
    if (p.name != name) continue;
    if (!p.grad.defined()) return failed_precondition("parameter '{}' has no gradient yet", name);
    return p.grad;
  }
  return not_found("no parameter '{}'", name);
}

std::string Model::amp_level() const { return impl_->amp.name(); }

Status Model::save_onnx(const std::string& path) const { return export_onnx(impl_->model, path); }
Result<std::string> Model::onnx_bytes() const { return export_onnx_bytes(impl_->model); }

Status amp_initialize(Model& model, Optimizer& optimizer, std::string_view level, const AmpOptions& options) {
  KILN_ASSIGN_OR_RETURN(AmpConfig config, parse_amp_level(level));
  if (options.init_scale) {
    if (!(*options.init_scale > 0)) return invalid_argument("loss scale must be positive");
    config.scaler.init_scale = *options.init_scale;
  }
  if (options.growth_interval) {
    if (*options.growth_interval <= 0) return invalid_argument("growth interval must be positive");
    config.scaler.growth_interval = *options.growth_interval;
  }
  if (options.dynamic) config.scaler.dynamic = *options.dynamic;
  Model::Impl& m = *model.impl_;
  if (optimizer.impl_->model != &m) return invalid_argument("the optimizer belongs to another model");
  m.amp = config;
  m.plan = make_precision_plan(*m.model.graph, config, m.param_values);
  m.train_tape.set_precision_plan(&m.plan);
  m.eval_tape.set_precision_plan(&m.plan);
  if (!config.master_weights) m.round_weights();
  optimizer.impl_->scaler = LossScaler(config.scaler);
  optimizer.impl_->amp_active = config.level != AmpLevel::kO0 || config.scaler.dynamic;
  return Status::ok();
}

Status amp_scaled_backward(Model& model, Optimizer& optimizer, const Loss& loss) {
  if (!loss.grad.defined()) return invalid_argument("loss has no gradient");
  KILN_ASSIGN_OR_RETURN(Tensor g, convert_float(loss.grad, DataType::kFloat32));
  g = g.clone();
  float scale = static_cast<float>(optimizer.loss_scale());
  for (float& v : g.span<float>()) v *= scale;
  return model.backward(g);
}

}  // namespace kiln::train
