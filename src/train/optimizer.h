// Optimizers over fp32 parameters: SGD (momentum, dampening, Nesterov,
// L2 weight decay) and Adam / AdamW (decoupled weight decay), PyTorch's
// update rules. State is fp32, one tensor per slot per parameter, and can be
// saved and restored by name (checkpoints).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::train {

// A trainable parameter: `value` shares storage with the model's fp32
// weights (the master copy); `grad` is fp32 with the same dims, or undefined.
struct Param {
  std::string name;
  Tensor value;
  Tensor grad;
};

struct SgdConfig {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
};

struct AdamConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool decoupled = false;  // AdamW
};

class OptimizerCore {
 public:
  static std::unique_ptr<OptimizerCore> sgd(const SgdConfig& config);
  static std::unique_ptr<OptimizerCore> adam(const AdamConfig& config);
  virtual ~OptimizerCore() = default;

  // Applies one update to every parameter that has a gradient.
  Status step(std::span<Param> params);
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  int64_t steps() const { return steps_; }

  // Named state tensors ("<param>/<slot>") and the step count, for checkpoints.
  std::map<std::string, Tensor> state() const;
  Status load_state(const std::map<std::string, Tensor>& state, int64_t steps);

 protected:
  explicit OptimizerCore(double lr) : lr_(lr) {}
  virtual Status update(Param& p, std::map<std::string, Tensor>& slots) = 0;
  // The state slot `slot` of the parameter, zero-initialized on first use.
  Result<Tensor> slot(std::map<std::string, Tensor>& slots, const std::string& name, const Param& p);

  double lr_;
  int64_t steps_ = 0;

 private:
  std::map<std::string, std::map<std::string, Tensor>> state_;  // param name -> slot -> tensor
};

// Scales every gradient so that their global L2 norm (accumulated in fp64) is
// at most max_norm; returns the norm before clipping (inf/NaN when a gradient is).
double clip_grad_norm(std::span<Param> params, double max_norm);

}  // namespace kiln::train
