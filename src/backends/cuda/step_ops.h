// Internal to the engine: how each plan step is put on the stream. Conv and
// GEMM steps are prepared once per plan (descriptors, algorithm choice);
// the others are plain kernel launches or copies.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/device.h"
#include "backends/cuda/plan.h"

namespace kiln::backends::cuda {

// What a step needs at enqueue time. Pointers are owned by the engine.
struct GpuContext {
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  Precision precision = Precision::kFp32;
  bool fuse_conv_epilogue = true;                    // try cudnnConvolutionBiasActivationForward
  std::vector<void*> ptrs;                           // device pointer per plan value (null for host values)
  std::vector<PinnedBuffer>* in_staging = nullptr;   // per graph input
  std::vector<PinnedBuffer>* out_staging = nullptr;  // per graph output
  // Convolution algorithms already chosen, by configuration: key -> (algo,
  // math type). The engine's, shared by its plans; set while a plan is prepared.
  std::map<std::string, std::pair<int, int>>* conv_algos = nullptr;
};

class PreparedStep {
 public:
  virtual ~PreparedStep() = default;
  virtual Status enqueue(GpuContext& ctx) const = 0;
  // The choices made at preparation ("cudnn algo 1, fused epilogue"), for profiles.
  virtual std::string describe() const = 0;
};

// Prepares a kConv step: descriptors, algorithm (cuDNN heuristics + timing).
Result<std::unique_ptr<PreparedStep>> prepare_conv(const Plan& plan, const Step& step, GpuContext& ctx);
// Prepares a kGemm step: cuBLASLt descriptors and algorithm.
Result<std::unique_ptr<PreparedStep>> prepare_gemm(const Plan& plan, const Step& step, GpuContext& ctx);
// Prepares a kPointwise or kMaskedSoftmax step: compiles (NVRTC, cached) and loads its kernel.
Result<std::unique_ptr<PreparedStep>> prepare_generated(const Plan& plan, const Step& step, GpuContext& ctx);
// The int8 GEMM (step.gemm.int8) and the kQuantize / kDequantize kernels (step_gemm_int8.cc).
Result<std::unique_ptr<PreparedStep>> prepare_gemm_int8(const Plan& plan, const Step& step, GpuContext& ctx);
Status enqueue_quant(const Plan& plan, const Step& step, GpuContext& ctx);
// Enqueues any other step kind.
Status enqueue_simple(const Plan& plan, const Step& step, GpuContext& ctx);

// The fastest of `count` candidates (algorithms) on ctx.stream: each is
// launched once (a warm-up: CUDA loads kernels lazily, at first launch), then
// timed as the best of three windows of three launches (a GPU shared with
// other work slows some windows down, never speeds one up). The three
// launches are replayed from a CUDA graph, as the engine runs them, so the
// window holds GPU time only, not the libraries' host work per call; a
// candidate whose launches cannot be captured is timed launched directly. `launch(i)`
// enqueues candidate i once and says false for a candidate that cannot run.
// Returns the index of the fastest, or -1 when none ran; `best_ms` gets its
// time per launch and `timed` the number of candidates timed.
Result<int> fastest_candidate(GpuContext& ctx, int count, const std::function<Result<bool>(int)>& launch,
                              float* best_ms = nullptr, int* timed = nullptr);

// cuDNN / CUDA type of an activation storage type.
cudnnDataType_t cudnn_type(DataType t);
cudaDataType_t cuda_type(DataType t);

}  // namespace kiln::backends::cuda

namespace kiln::backends::cuda {
// The element-wise op of an epilogue's activation (parameters in alpha/beta).
kernels::EwOp activation_op(ops::Activation a);
}  // namespace kiln::backends::cuda
