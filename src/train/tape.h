// Tape: reverse-mode automatic differentiation over an ir::Graph.
//
// forward() runs the graph node by node with the gradient rules' kernels
// (train/grad_rule.h), in training or inference mode, and records each node's
// inputs, outputs and saved state. backward() walks the record in reverse,
// seeding the graph outputs with the given gradients, and accumulates the
// gradient of every value that needs one (graph inputs when asked, and the
// trainable constants), summing over a value's uses.
//
// Mixed precision is emulated from a PrecisionPlan: each node computes in its
// precision (inputs rounded to it, fp32 accumulation, outputs rounded), and
// each value's gradient is rounded to the value's storage precision, as a
// framework that stores fp16 tensors would. Without a plan everything is fp32.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "train/grad_rule.h"

namespace kiln::train {

// Per-node compute precision and per-value storage precision (values not
// listed are fp32; a node's outputs are stored in the node's precision).
struct PrecisionPlan {
  std::unordered_map<const ir::Node*, Precision> nodes;
  std::unordered_map<const ir::Value*, Precision> values;  // graph inputs and constants
};

struct TapeOptions {
  bool training = true;
  // kFloat32, or kFloat64 to run the whole graph in double (gradient checks):
  // float constants and inputs are converted.
  DataType compute = DataType::kFloat32;
  uint64_t seed = 0;  // random ops derive their stream from (seed, node position)
  // Update BatchNormalization running statistics (float32 constants) in training mode.
  bool update_running_stats = true;
};

class Tape {
 public:
  // `graph` must outlive the tape; its constants are read at every forward
  // (an optimizer updates them in place between steps).
  explicit Tape(const ir::Graph& graph) : graph_(graph) {}

  // The values whose gradients backward() computes: they and everything
  // computed from them are differentiated.
  void set_trainable(std::vector<const ir::Value*> values);
  // Borrowed; nullptr for all-fp32. Must outlive the forward/backward calls.
  void set_precision_plan(const PrecisionPlan* plan) { plan_ = plan; }

  // Runs the graph on one tensor per graph input; returns the graph outputs.
  Result<std::vector<Tensor>> forward(std::span<const Tensor> inputs, const TapeOptions& options);
  // One seed gradient per graph output (undefined: no gradient from it).
  Status backward(std::span<const Tensor> output_grads);
  // The gradient of `v` after backward(), or an undefined tensor.
  Tensor grad(const ir::Value* v) const;
  // Drops the record and gradients.
  void clear();

  Precision storage_precision(const ir::Value* v) const;

 private:
  Result<Tensor> lookup(const ir::Value* v);
  const ir::Graph& graph_;
  const PrecisionPlan* plan_ = nullptr;
  TapeOptions options_;
  std::vector<const ir::Value*> trainable_;
  std::unordered_set<const ir::Value*> needs_grad_;
  std::unordered_map<const ir::Value*, Tensor> env_;
  std::unordered_map<const ir::Value*, Precision> produced_;  // storage precision of node outputs
  std::vector<NodeRecord> records_;
  std::vector<const GradRule*> rules_;
  std::unordered_map<const ir::Value*, Tensor> grads_;
};

// Converts a float32 or float64 tensor to `dtype` (float32/float64); shares storage if equal.
Result<Tensor> convert_float(const Tensor& t, DataType dtype);

}  // namespace kiln::train
