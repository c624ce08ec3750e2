// Gradient rules: for each differentiable op, a forward kernel that records
// what its backward needs, and the backward (vector-Jacobian product).
//
// Kernels compute in the tape's compute type (float32, or float64 for
// gradient checks) with accumulation in that type; they never round: the
// tape rounds inputs, outputs and gradients to the node's precision.
// Everything that depends on user data (ranks, dims, attributes) is
// validated and reported as an error naming the node.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "train/precision.h"

namespace kiln::train {

// What one executed node left on the tape.
struct NodeRecord {
  const ir::Node* node = nullptr;
  Precision precision = Precision::kFp32;
  bool training = true;
  uint64_t seed = 0;                 // for random ops (Dropout), fixed per node and step
  std::vector<Tensor> inputs;        // as the kernel saw them; undefined for an omitted input
  std::vector<Tensor> outputs;       // set by forward
  std::vector<Tensor> saved;         // extra state for backward (masks, statistics, argmax)
  // Running statistics the forward may update in place (BatchNormalization's
  // mean and variance constants); undefined where the tape owns no such state.
  std::vector<Tensor> state;

  DataType dtype() const { return inputs.empty() ? DataType::kFloat32 : inputs[0].dtype(); }
  bool f64() const { return dtype() == DataType::kFloat64; }
  Status error(Status s) const { return std::move(s).with_context(node->describe()); }
};

// How AMP's O1 treats an op (PyTorch autocast's lists): kLowPrecision ops
// (GEMM, convolution) run in fp16/bf16; kFp32 ops (softmax, reductions,
// normalization) always run in fp32; kPromote ops run in the widest
// precision of their inputs.
enum class OpClass { kLowPrecision, kFp32, kPromote };

struct GradRule {
  std::string_view op_type;
  Status (*forward)(NodeRecord& rec) = nullptr;
  // dy: one gradient per output (undefined: that output gets no gradient,
  // treat as zero). need[i]: input i wants a gradient. Sets dx[i] (pre-sized
  // to the node's input count) for the inputs it differentiates.
  Status (*backward)(const NodeRecord& rec, std::span<const Tensor> dy, const std::vector<bool>& need,
                     std::vector<Tensor>& dx) = nullptr;
  OpClass op_class = OpClass::kPromote;
  // Inputs that are never differentiable (shapes, integer indices, running
  // statistics): bit i set excludes input i.
  uint32_t no_grad_inputs = 0;
  // Normalization layers: kept in fp32 by O2 ("keep_batchnorm_fp32").
  bool is_norm = false;
};

// The rule for a node's op (default domain), or nullptr.
const GradRule* find_grad_rule(std::string_view op_type);
// Every op type with a rule, for docs and tests.
std::vector<std::string_view> grad_rule_ops();

// Rule families (one file each), collected by find_grad_rule.
std::span<const GradRule> linear_rules();       // Gemm, MatMul
std::span<const GradRule> elementwise_rules();  // Add, Sub, Mul, Div, Relu, Sigmoid, Tanh, Gelu, ...
std::span<const GradRule> conv_rules();         // Conv
std::span<const GradRule> pool_rules();         // MaxPool, AveragePool, GlobalAveragePool
std::span<const GradRule> norm_rules();         // BatchNormalization, LayerNormalization
std::span<const GradRule> shape_rules();        // Flatten, Reshape, Transpose, Identity
std::span<const GradRule> softmax_rules();      // Softmax, LogSoftmax
std::span<const GradRule> reduce_rules();       // ReduceMean, ReduceSum

// Helpers shared by the rule files.
Result<Tensor> new_tensor(DataType dtype, const Dims& dims);
// Sum of `t` reduced to `dims` (the inverse of numpy broadcasting to t's dims).
Result<Tensor> reduce_to(const Tensor& t, const Dims& dims);
// The numpy broadcast of two shapes, or an error.
Result<Dims> broadcast_dims(const Dims& a, const Dims& b);
// For each element of `out`, the linear index of the element of a tensor of
// dims `in` (broadcast to `out`) that it reads.
std::vector<int64_t> broadcast_map(const Dims& in, const Dims& out);

#define KILN_TRAIN_DISPATCH(rec, fn, ...) \
  ((rec).f64() ? fn<double>(__VA_ARGS__) : fn<float>(__VA_ARGS__))

}  // namespace kiln::train
