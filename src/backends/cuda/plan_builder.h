// Internal to the plan: the builder that build_plan() runs. plan.cc holds
// values, layouts, host evaluation, I/O and the arena; plan_ops.cc lowers
// each op.
#pragma once

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "backends/cuda/plan.h"

namespace kiln::backends::cuda {

class PlanBuilder {
 public:
  PlanBuilder(const ir::Graph& graph, const PlanOptions& options);
  Result<Plan> build(const std::vector<Dims>& input_dims, const std::vector<DataType>& input_dtypes);

  // --- values (plan.cc)
  // A new device value (own buffer); NHWC with H*W == 1 or C == 1 is stored as row-major (same memory).
  int device_value(const std::string& name, DataType dtype, Dims dims, Layout layout = Layout::kRowMajor);
  // A value sharing `of`'s buffer with other dims (row-major reshape).
  int alias_value(int of, const std::string& name, Dims dims);
  int host_value(const std::string& name, Tensor t);
  // Persistent device copy of host value `vid` converted to `dtype` (and, for
  // a 4-D OIHW weight with `ohwi`, permuted to OHWI). Cached.
  Result<int> device_const(int vid, DataType dtype, bool ohwi = false);
  // A device value for `vid`: itself, or a device copy of a host value (storage dtype).
  Result<int> on_device(int vid);
  // The plan value of an ir value (constants become host values on first use).
  Result<int> value_of(const ir::Value* v);
  int input_id(const ir::Node& n, size_t i);     // -1 when absent; valid after resolve_inputs
  DataType storage(DataType graph_dtype) const;  // floating -> activation type
  bool nhwc_memory(int vid) const;
  Result<int> as_nhwc(int vid);
  Result<int> as_row_major(int vid);
  // A new device value holding `vid` broadcast to `full` (one strided copy
  // step of node `n`), `vid`'s elements read as dims `src` (its own dims or a
  // reshape of them, aligned right as numpy broadcasting does).
  Result<int> broadcast_copy(const ir::Node& n, int vid, const Dims& src, const Dims& full);
  int add_step(Step s);
  Step make_step(StepKind kind, const ir::Node* node);
  PlanValue& val(int vid) { return plan_.values[static_cast<size_t>(vid)]; }
  const Plan& plan() const { return plan_; }
  // The single consumer of ir value `v` when it has exactly one use and is
  // not a graph output; else nullptr.
  const ir::Node* sole_consumer(const ir::Value* v) const;
  bool available(const ir::Value* v) const { return vmap_.count(v) != 0; }
  void bind(const ir::Value* v, int vid) { vmap_[v] = vid; }
  void consume(const ir::Node* n) { consumed_.insert(n); }
  Result<Tensor> host_tensor(const ir::Node& n, size_t i);  // input i, which must be known on the host
  std::vector<const ir::Node*> match_gelu(const ir::Value* x) const;
  // The output dims of Reshape node `n` for an input of `xd` (0 and -1 resolved).
  Result<Dims> reshape_target(const ir::Node& n, const Dims& xd);

  // --- ops (plan_ops.cc)
  Status lower_node(const ir::Node& n);
  // Evaluates `n` on the host when all its inputs are known there, else lowers it (plan.cc).
  Status place_node(const ir::Node& n);

  const PlanOptions& options() const { return options_; }

  // --- int8 (plan_ops_quant.cc)
  // A DequantizeLinear output left in int8 for the GEMMs that read it.
  struct QuantAct {
    int q = -1;              // the int8 device value
    float scale = 0.0f;      // per tensor
    int32_t zero_point = 0;  // of the stored int8 values
    int dequantized = -1;    // its float version, once a consumer needed one
  };
  Status lower_quantize(const ir::Node& n);
  Status lower_dequantize(const ir::Node& n);
  // MatMul/Gemm whose input 0 is a QuantAct: the int8 GEMM, or the float
  // GEMM on the dequantized activation where int8 cannot run it.
  Status lower_qgemm(const ir::Node& n);
  bool reads_quant_act(const ir::Node& n) const { return n.has_input(0) && quant_acts_.count(n.input(0)) != 0; }
  Status lower_kiln_qgemm(const ir::Node& n);  // kiln.QGemm (passes/qdq_lowering.cc): requantized int8 GEMM

 private:
  Status eval_on_host(const ir::Node& n);
  Status lower_conv(const ir::Node& n);
  Status lower_gemm(const ir::Node& n);
  Status lower_elementwise(const ir::Node& n);
  Status lower_shape_op(const ir::Node& n);
  Status lower_misc(const ir::Node& n);
  Status lower_pool(const ir::Node& n);
  Status lower_norm(const ir::Node& n);
  // plan_ops_fused.cc: kiln.Attention, kiln.Pointwise, Split (the horizontal fusion's)
  Status lower_attention(const ir::Node& n);
  Status lower_split(const ir::Node& n);
  Status lower_pointwise(const ir::Node& n);
  // Lowers (or evaluates on the host) the nodes of `body` with its inputs bound to `inputs`.
  Status lower_body(const ir::Graph& body, const std::vector<int>& inputs);
  // Y = alpha * A x B with numpy batching (row-major device values), into a new value of `dtype`.
  Result<int> batched_matmul(const ir::Node& n, int a, int b, float alpha, DataType dtype, const std::string& name);
  // A broadcast elementwise binary step (operands of one float type).
  Result<int> broadcast_binary(const ir::Node& n, kernels::EwOp op, int a, int b, const std::string& name);
  Status finish_arena();

  const ir::Graph& graph_;
  PlanOptions options_;
  Plan plan_;
  std::unordered_map<const ir::Value*, int> vmap_;
  std::set<const ir::Node*> consumed_;
  std::map<std::tuple<int, int, bool>, int> const_cache_;
  std::map<int, int> nhwc_cache_, row_major_cache_;
  std::map<int, int> mask_f32_cache_;  // attention masks cast to float, shared by the layers
  std::unordered_map<const ir::Value*, QuantAct> quant_acts_;
  std::set<const ir::Value*> shifted_u8_;  // uint8 QuantizeLinear outputs stored as int8 q - 128
  int next_buffer_ = 0;
};

// Broadcast of two dim lists (numpy rules), or an error.
Result<Dims> broadcast_dims(const Dims& a, const Dims& b);
// Element strides of `d` broadcast to `out` (0 on broadcast dims), or an
// error when `d` does not fit into `out` without enlarging it.
Result<Dims> broadcast_strides(const Dims& d, const Dims& out);
// Row-major element strides of `dims`.
Dims row_major_strides(const Dims& dims);
// Converts a host tensor of any numeric type to `dtype` (float/f16/bf16/int64/int32...).
Result<Tensor> convert_tensor(const Tensor& t, DataType dtype);
// Integer values of a host tensor (int32/int64).
Result<std::vector<int64_t>> tensor_ints(const Tensor& t);
// Float values of a host tensor of a floating or integer type.
Result<std::vector<float>> tensor_floats(const Tensor& t);

}  // namespace kiln::backends::cuda
