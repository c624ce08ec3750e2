// Kiln training: models over the Kiln IR, losses, optimizers and automatic
// mixed precision in a few lines.
//
//   auto model = kiln::train::Model::sequential({1, 8, 8}, {"conv:16:3:1:1", "bn", "relu", "maxpool:2",
//                                                           "flatten", "linear:10"}, /*seed=*/0).value();
//   auto opt = kiln::train::Optimizer::sgd(model, {.lr = 0.05, .momentum = 0.9}).value();
//   kiln::train::amp::initialize(model, opt, "O1");             // O0 | O1 | O2 | O3, "-bf16" variants
//   for (...) {
//     auto logits = model.forward(x).value();
//     auto loss = kiln::train::cross_entropy(logits, labels).value();
//     kiln::train::amp::scaled_backward(model, opt, loss);      // backward of loss * scale
//     opt.step();                                                // unscale, skip on inf/NaN, clip, update
//   }
//   model.save_onnx("model.onnx");
//
// Mixed precision is emulated on the CPU (values rounded to fp16/bf16, fp32
// accumulation); see docs/TRAINING.md. Objects are not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::train {

// A loss value and its gradient with respect to the model output (fp32).
struct Loss {
  double value = 0;
  Tensor grad;
};

// Softmax cross-entropy of logits [N, C] against int64/int32 labels [N], mean over N.
Result<Loss> cross_entropy(const Tensor& logits, const Tensor& labels);
// Mean squared error, mean over all elements.
Result<Loss> mse(const Tensor& pred, const Tensor& target);

class Optimizer;
struct AmpOptions;

// A trainable model: an ONNX-style inference graph whose float32
// initializers of rank >= 1 feeding differentiable inputs are the parameters
// (BatchNormalization running statistics are state; scalars are constants). forward() runs it in training mode (batch statistics,
// dropout active) and records it for backward().
class Model {
 public:
  // Layer specs: see src/train/model_builder.h ("conv:16:3:1:1", "bn", "relu",
  // "maxpool:2", "gap", "flatten", "linear:10", "dropout:0.1", "layernorm", "gelu").
  static Result<Model> sequential(const Dims& sample_dims, const std::vector<std::string>& layers, uint64_t seed = 0);
  // An ONNX model whose ops all have gradient rules.
  static Result<Model> load_onnx(const std::string& path);

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  // Training-mode forward of a one-input model; returns the first output.
  Result<Tensor> forward(const Tensor& input);
  // Backward from the gradient of the last forward()'s output; replaces the
  // parameters' gradients.
  Status backward(const Tensor& output_grad);
  // Inference-mode forward (running statistics, no dropout); records nothing.
  Result<Tensor> predict(const Tensor& input);

  std::vector<std::string> parameter_names() const;
  int64_t num_parameters() const;  // total elements
  // The fp32 (master) value of a parameter; shares storage with the model.
  Result<Tensor> parameter(const std::string& name) const;
  // The fp32 gradient from the last backward().
  Result<Tensor> grad(const std::string& name) const;
  std::string amp_level() const;  // "O0" until amp::initialize

  // The inference graph with the current weights as ONNX.
  Status save_onnx(const std::string& path) const;
  Result<std::string> onnx_bytes() const;

  struct Impl;

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class Optimizer;
  friend Status amp_initialize(Model&, Optimizer&, std::string_view, const AmpOptions&);
};

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
};

// Updates a model's parameters; the model must outlive the optimizer.
class Optimizer {
 public:
  static Result<Optimizer> sgd(Model& model, const SgdOptions& options = {});
  static Result<Optimizer> adam(Model& model, const AdamOptions& options = {});
  static Result<Optimizer> adamw(Model& model, const AdamOptions& options = {});

  Optimizer(Optimizer&&) noexcept;
  Optimizer& operator=(Optimizer&&) noexcept;
  ~Optimizer();

  // One step from the current gradients. Under AMP the gradients are first
  // unscaled; if any is inf or NaN the step is skipped (returns false) and
  // the loss scale backs off. Gradient clipping (set_max_grad_norm) applies
  // to the unscaled gradients.
  Result<bool> step();
  double lr() const;
  void set_lr(double lr);
  void set_max_grad_norm(double max_norm);  // <= 0: no clipping
  double last_grad_norm() const;            // before clipping, of the last applied step
  int64_t steps() const;                    // applied steps
  int64_t skipped_steps() const;
  double loss_scale() const;

  // Weights, running statistics, optimizer and loss-scaler state.
  Status save_checkpoint(const std::string& path) const;
  Status load_checkpoint(const std::string& path);

  struct Impl;

 private:
  explicit Optimizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend Status amp_initialize(Model&, Optimizer&, std::string_view, const AmpOptions&);
  friend Status amp_scaled_backward(Model&, Optimizer&, const Loss&);
};

// Overrides of a level's loss-scaler defaults (2^16, x2 after 2000 clean
// steps, x0.5 on overflow; static 1 for bf16 and O3).
struct AmpOptions {
  std::optional<double> init_scale;
  std::optional<int64_t> growth_interval;
  std::optional<bool> dynamic;
};

Status amp_initialize(Model& model, Optimizer& optimizer, std::string_view level, const AmpOptions& options);
Status amp_scaled_backward(Model& model, Optimizer& optimizer, const Loss& loss);

namespace amp {
// Sets the model's precision plan and the optimizer's loss scaler for
// level "O0" | "O1" | "O2" | "O3", optionally "-bf16" (e.g. "O2-bf16").
inline Status initialize(Model& model, Optimizer& optimizer, std::string_view level, const AmpOptions& options = {}) {
  return amp_initialize(model, optimizer, level, options);
}
// Backward of loss * loss_scale (the optimizer unscales before stepping).
inline Status scaled_backward(Model& model, Optimizer& optimizer, const Loss& loss) {
  return amp_scaled_backward(model, optimizer, loss);
}
}  // namespace amp

}  // namespace kiln::train
