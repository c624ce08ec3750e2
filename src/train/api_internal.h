// The state behind kiln/train.h's pimpl classes (shared by api_model.cc and
// api_optimizer.cc).
#pragma once

#include <memory>
#include <vector>

#include "ir/graph.h"
#include "kiln/train.h"
#include "train/amp.h"
#include "train/loss_scaler.h"
#include "train/optimizer.h"
#include "train/tape.h"

namespace kiln::train {

struct Model::Impl {
  ir::Model model;
  std::vector<const ir::Value*> param_values;  // trainable float32 constants
  std::vector<Param> params;                   // value shares the constant's storage
  Tape train_tape;
  Tape eval_tape;
  AmpConfig amp;
  PrecisionPlan plan;
  uint64_t seed = 0;
  uint64_t forwards = 0;
  bool recorded = false;

  explicit Impl(ir::Model m) : model(std::move(m)), train_tape(*model.graph), eval_tape(*model.graph) {}
  // Finds the parameters and checks every op has a gradient rule.
  Status init();
  // Rounds the weights themselves to the low precision (O3: no master copy).
  void round_weights();
};

struct Optimizer::Impl {
  Model::Impl* model = nullptr;  // borrowed; the model outlives the optimizer
  std::unique_ptr<OptimizerCore> core;
  LossScaler scaler{LossScalerConfig{1.0, 2.0, 0.5, 2000, false}};
  bool amp_active = false;
  double max_grad_norm = 0;
  double last_norm = 0;
};

}  // namespace kiln::train
