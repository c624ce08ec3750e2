// The GPU plan: an ir::Graph lowered, for one set of concrete input shapes,
// to a list of device steps over plan values. Building it is host-only (no
// GPU needed), so shape handling, fusion, layout choice, the support check
// and the memory plan are unit-tested on machines without a GPU; the engine
// (engine.h) turns the steps into cuDNN/cuBLASLt/kernel calls.
//
// Lowering decisions:
// - Values whose content is known at plan time (constants, Shape/Size of
//   device values, and any node whose inputs are all known) are evaluated on
//   the host with the op's reference kernel: shape arithmetic never reaches
//   the GPU. Device steps read such values from persistent device copies.
// - Floating values are stored in the precision's activation type (fp32,
//   fp16 or bf16); graph inputs are converted after upload and outputs back
//   before download.
// - 4-D convolution activations are kept channels-last (NHWC) when
//   PlanOptions::channels_last; other steps see row-major (NCHW) values, and
//   a transpose is inserted where a layout changes.
// - kiln.Attention becomes a batched GEMM (scale in alpha) with float
//   scores whatever the precision, one generated kernel for the mask Add
//   and the Softmax in float writing the activation type (without generated
//   kernels: Add, Softmax and a cast), and a second batched GEMM.
// - kiln.Pointwise becomes one kPointwise step whose kernel is generated
//   from the body and compiled with NVRTC when the engine prepares the plan;
//   a body the generator does not know is lowered node by node instead.
// - Conv + BatchNormalization (constant statistics) + residual Add + Relu /
//   Clip and MatMul/Gemm + bias Add + Relu are fused into one step with an
//   epilogue; kiln.FusedConv/FusedGemm/FusedMatMul are taken as they are.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/kernels.h"
#include "backends/cuda/pointwise_codegen.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "ops/epilogue.h"

namespace kiln::backends::cuda {

enum class Precision { kFp32, kTf32, kFp16, kBf16 };
Result<Precision> parse_precision(std::string_view name);  // "fp32", "tf32", "fp16", "bf16"
std::string_view precision_name(Precision p);

enum class Layout { kRowMajor, kNhwc };  // kNhwc: a 4-D [N,C,H,W] value stored as [N,H,W,C]

struct PlanOptions {
  Precision precision = Precision::kFp32;
  bool channels_last = true;
  // Channels-last convolutions with fewer than 8 input channels (a network's
  // first layer) get zero channels up to 8, for the Tensor Core kernels.
  bool pad_small_channels = false;
  // kiln.Pointwise as one NVRTC-generated kernel; off: its body's nodes one
  // by one (the engine's fallback where NVRTC cannot compile or load).
  bool generated_kernels = true;
};

// One value of the plan.
struct PlanValue {
  std::string name;                       // ir value name, or a generated one for temporaries
  DataType dtype = DataType::kUndefined;  // storage type (on the device for device values)
  Dims dims;                              // logical (ONNX-order) dims
  Layout layout = Layout::kRowMajor;
  bool on_host = false;     // content known at plan time (in `host`)
  Tensor host;              // on_host values; also the data of persistent device values
  bool persistent = false;  // device copy of constant data, uploaded once (not in the arena)
  int buffer = -1;          // arena buffer of a device value (aliases share one)
  int64_t nbytes() const;
};

enum class StepKind {
  kUpload,       // H2D: graph input `io` into outputs[0]
  kDownload,     // D2H: inputs[0] into graph output `io`
  kConv,         // cuDNN convolution + channel epilogue
  kGemm,         // cuBLASLt (batched) GEMM + epilogue
  kElementwise,  // unary/binary op with broadcasting
  kEpilogue,     // per-channel scale/bias (+ residual, activation): BatchNormalization
  kCast,
  kCopy,  // strided copy: transpose, slice, expand, layout change
  kGather,
  kSoftmax,
  kLayerNorm,
  kPool,
  kGlobalAvgPool,
  kConcat,
  kPointwise,      // a kiln.Pointwise body as one NVRTC-compiled kernel (pointwise_codegen.h)
  kMaskedSoftmax,  // attention's softmax(scores + mask), float in, activation type out (softmax_codegen.h)
  kQuantize,    // QuantizeLinear: float -> int8/uint8 (plan_ops_quant.cc)
  kDequantize,  // DequantizeLinear: int8/uint8/int32 -> float
};
std::string_view step_kind_name(StepKind k);

struct ConvParams {
  int64_t group = 1;
  int64_t pads[2] = {0, 0};  // top, left (symmetric)
  int64_t strides[2] = {1, 1};
  int64_t dilations[2] = {1, 1};
};

struct GemmParams {
  int64_t batch = 1, m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // element strides between batches
  float alpha = 1.0f, beta = 0.0f;                   // beta scales the C input (inputs[2])
  // int8 x int8 -> int32 on cuBLASLt, then a dequantizing epilogue (see the
  // kGemm input positions); batch is 1, trans_a false, trans_b true.
  bool int8 = false;
};

struct CopyParams {
  int rank = 0;
  int64_t dims[kernels::kMaxRank] = {};
  int64_t strides[kernels::kMaxRank] = {};
  int64_t offset = 0;
};

// A kiln.Pointwise body translated for the GPU: the program (evaluated on
// the host by tests) and the generated CUDA source (compiled by the engine).
struct PointwiseKernel {
  PointwiseProgram program;
  std::string source;
};

// inputs/outputs are plan value ids (-1 for an absent optional input).
// Input positions per kind:
//   kConv:  X, W, bias(float, or -1), Z(residual, or -1)
//   kGemm:  A, B, C(full [batch,m,n] or -1), bias(act dtype [n], or -1), Z(residual [batch,m,n], or -1)
//   kGemm with gemm.int8: A(int8 [m,k]), B(int8 [n,k]), scale(float [n]), bias(float [n] or -1), Z(or -1);
//           outputs Y and the int32 accumulator [m,n]; with an int8/uint8 Y (kiln.QGemm, requantized):
//           A, B, offset(f64 [n]), multiplier(f64 [n]), -1, Y's zero point in p0, Relu in epilogue
//   kQuantize, kDequantize: X, scale(float [channels]), zero point(int32 [channels]); element i is in
//           channel (i / inner) % channels
//   kEpilogue: X, scale(float), bias(float), Z(or -1)
//   kLayerNorm: X, gamma(float), beta(float or -1)
//   kGather: data, indices(int64)
//   kPointwise: x, then the body's tensor constants (float, by program slot)
//   kMaskedSoftmax: scores(float), mask(float, or -1)
struct Step {
  StepKind kind = StepKind::kCopy;
  const ir::Node* node = nullptr;  // the node it came from (for messages); null for inserted steps
  std::string label;               // "node 'conv1' (Conv)" or "layout of 'x'"
  std::vector<int> inputs;
  std::vector<int> outputs;
  int io = -1;  // graph input/output index of kUpload/kDownload

  ops::Epilogue epilogue;                       // kConv, kGemm, kEpilogue: activation and residual order
  kernels::EwOp op = kernels::EwOp::kIdentity;  // kElementwise
  float p0 = 0.0f, p1 = 0.0f;                   // kElementwise parameters
  bool flat = false, a_scalar = false, b_scalar = false;
  kernels::EwShape ew;
  ConvParams conv;
  GemmParams gemm;
  CopyParams copy;
  int64_t outer = 0, axis_dim = 0, inner = 0;        // kGather; kConcat (inner = bytes per outer row of the output)
  int64_t rows = 0, cols = 0;                        // kSoftmax, kLayerNorm
  float epsilon = 0.0f;                              // kLayerNorm
  int64_t channels = 0;                              // kEpilogue: channel of element i is (i / inner) % channels
  kernels::PoolParams pool{};                        // kPool
  std::shared_ptr<const PointwiseKernel> pointwise;  // kPointwise: program and CUDA source
  std::vector<int64_t>
      pw_args;  // kPointwise, kMaskedSoftmax: the kernel's args (pointwise_args(), masked_softmax_args())
};

// Lifetime of one arena buffer in step indices (inclusive), and its size.
struct BufferUse {
  int64_t bytes = 0;
  int first = 0;
  int last = 0;
};

// First-fit offsets for buffers whose lifetimes overlap only where they do
// not share memory; offsets are multiples of `alignment`. Returns the offsets
// and sets `total` to the arena size.
std::vector<int64_t> plan_arena(const std::vector<BufferUse>& buffers, int64_t alignment, int64_t& total);

struct Plan {
  PlanOptions options;
  DataType act_dtype = DataType::kFloat32;
  std::vector<PlanValue> values;
  std::vector<Step> steps;
  std::vector<int> input_values;  // per graph input: the uploaded value (graph dtype)
  std::vector<int>
      output_values;  // per graph output: the value downloaded (graph dtype, row-major), or an on_host value
  std::vector<DataType> output_dtypes;
  std::vector<BufferUse> buffers;
  std::vector<int64_t> buffer_offsets;
  int64_t arena_bytes = 0;

  std::string to_string() const;  // one line per step, for --verbose and tests
};

// Op types (default domain and "kiln") the GPU engine can place on the device.
bool gpu_supports_op(const ir::Node& node);

// Checks that every node can run: on the device, or on the host because all
// its inputs are known at plan time (constants and shapes). Fails naming the
// first node that cannot.
Status check_graph_supported(const ir::Graph& graph);

// Lowers `graph` for inputs of `input_dims` (one per graph input, in order).
Result<Plan> build_plan(const ir::Graph& graph, const std::vector<Dims>& input_dims,
                        const std::vector<DataType>& input_dtypes, const PlanOptions& options);

kernels::DType kernel_dtype(DataType t);  // storage types the kernels know; kF32 for others (callers check)

}  // namespace kiln::backends::cuda
