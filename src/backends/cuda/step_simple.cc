// Enqueueing the steps that are plain kernel launches or copies.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>

#include "backends/cuda/kernels.h"
#include "backends/cuda/step_ops.h"
#include "core/error.h"

namespace kiln::backends::cuda {
namespace {

Status launched(int rc, const Step& step) {
  if (rc == 0) return Status::ok();
  return check_cuda(static_cast<cudaError_t>(rc),
                    fmt::format("{} kernel for {}", step_kind_name(step.kind), step.label));
}

int64_t numel_of(const Dims& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

}  // namespace

cudnnDataType_t cudnn_type(DataType t) {
  switch (t) {
    case DataType::kFloat16:
      return CUDNN_DATA_HALF;
    case DataType::kBFloat16:
      return CUDNN_DATA_BFLOAT16;
    default:
      return CUDNN_DATA_FLOAT;
  }
}

cudaDataType_t cuda_type(DataType t) {
  switch (t) {
    case DataType::kFloat16:
      return CUDA_R_16F;
    case DataType::kBFloat16:
      return CUDA_R_16BF;
    default:
      return CUDA_R_32F;
  }
}

Status enqueue_simple(const Plan& plan, const Step& step, GpuContext& ctx) {
  auto ptr = [&](size_t i) -> void* {
    int v = i < step.inputs.size() ? step.inputs[i] : -1;
    return v < 0 ? nullptr : ctx.ptrs[static_cast<size_t>(v)];
  };
  auto value = [&](int v) -> const PlanValue& { return plan.values[static_cast<size_t>(v)]; };
  cudaStream_t s = ctx.stream;
  void* out = step.outputs.empty() ? nullptr : ctx.ptrs[static_cast<size_t>(step.outputs[0])];
  const PlanValue* ov = step.outputs.empty() ? nullptr : &value(step.outputs[0]);
  switch (step.kind) {
    case StepKind::kUpload: {
      const PinnedBuffer& src = (*ctx.in_staging)[static_cast<size_t>(step.io)];
      if (ov->nbytes() == 0) return Status::ok();
      return check_cuda(cudaMemcpyAsync(out, src.get(), static_cast<size_t>(ov->nbytes()), cudaMemcpyHostToDevice, s),
                        fmt::format("cudaMemcpyAsync(H2D, {})", step.label));
    }
    case StepKind::kDownload: {
      const PlanValue& iv = value(step.inputs[0]);
      const PinnedBuffer& dst = (*ctx.out_staging)[static_cast<size_t>(step.io)];
      if (iv.nbytes() == 0) return Status::ok();
      return check_cuda(cudaMemcpyAsync(dst.get(), ptr(0), static_cast<size_t>(iv.nbytes()), cudaMemcpyDeviceToHost, s),
                        fmt::format("cudaMemcpyAsync(D2H, {})", step.label));
    }
    case StepKind::kElementwise: {
      int64_t n = numel_of(ov->dims);
      if (n == 0) return Status::ok();
      return launched(kernels::elementwise(kernel_dtype(ov->dtype), step.op, out, ptr(0), ptr(1), n, step.flat,
                                           step.a_scalar, step.b_scalar, step.ew, step.p0, step.p1, s),
                      step);
    }
    case StepKind::kEpilogue: {
      int64_t n = numel_of(ov->dims);
      if (n == 0) return Status::ok();
      return launched(
          kernels::channel_epilogue(kernel_dtype(ov->dtype), out, ptr(0), n, step.channels, step.inner,
                                    static_cast<const float*>(ptr(1)), static_cast<const float*>(ptr(2)), ptr(3),
                                    step.epilogue.residual_after_activation, kernels::EwOp::kIdentity, 0.0f, 0.0f, s),
          step);
    }
    case StepKind::kCast: {
      int64_t n = numel_of(ov->dims);
      if (n == 0) return Status::ok();
      return launched(
          kernels::cast(kernel_dtype(value(step.inputs[0]).dtype), ptr(0), kernel_dtype(ov->dtype), out, n, s), step);
    }
    case StepKind::kCopy: {
      if (numel_of(ov->dims) == 0) return Status::ok();
      return launched(kernels::strided_copy(static_cast<int>(element_size(ov->dtype)), out, ptr(0), step.copy.rank,
                                            step.copy.dims, step.copy.strides, step.copy.offset, s),
                      step);
    }
    case StepKind::kGather: {
      const PlanValue& iv = value(step.inputs[1]);
      return launched(
          kernels::gather(static_cast<int>(element_size(ov->dtype)), out, ptr(0), static_cast<const int64_t*>(ptr(1)),
                          step.outer, step.axis_dim, numel_of(iv.dims), step.inner, s),
          step);
    }
    case StepKind::kSoftmax:
      return launched(kernels::softmax_rows(kernel_dtype(ov->dtype), out, ptr(0), step.rows, step.cols, s), step);
    case StepKind::kLayerNorm:
      return launched(kernels::layernorm_rows(kernel_dtype(ov->dtype), out, ptr(0), static_cast<const float*>(ptr(1)),
                                              static_cast<const float*>(ptr(2)), step.rows, step.cols, step.epsilon, s),
                      step);
    case StepKind::kPool:
      return launched(kernels::pool2d(kernel_dtype(ov->dtype), out, ptr(0), step.pool, s), step);
    case StepKind::kGlobalAvgPool:
      return launched(kernels::global_avg_pool(kernel_dtype(ov->dtype), out, ptr(0), step.pool.n, step.pool.c,
                                               step.pool.h * step.pool.w, step.pool.channels_last, s),
                      step);
    case StepKind::kConcat: {
      size_t es = element_size(ov->dtype);
      const Dims& od = ov->dims;
      size_t axis = static_cast<size_t>(step.axis_dim);
      int64_t outer = numel_of(Dims(od.begin(), od.begin() + static_cast<std::ptrdiff_t>(axis)));
      int64_t out_row =
          numel_of(Dims(od.begin() + static_cast<std::ptrdiff_t>(axis), od.end())) * static_cast<int64_t>(es);
      int64_t offset = 0;
      for (size_t i = 0; i < step.inputs.size(); ++i) {
        const Dims& d = value(step.inputs[i]).dims;
        int64_t row = numel_of(Dims(d.begin() + static_cast<std::ptrdiff_t>(axis), d.end())) * static_cast<int64_t>(es);
        if (row > 0 && outer > 0) {
          KILN_RETURN_IF_ERROR(
              check_cuda(cudaMemcpy2DAsync(static_cast<char*>(out) + offset, static_cast<size_t>(out_row), ptr(i),
                                           static_cast<size_t>(row), static_cast<size_t>(row),
                                           static_cast<size_t>(outer), cudaMemcpyDeviceToDevice, s),
                         fmt::format("cudaMemcpy2DAsync({})", step.label)));
        }
        offset += row;
      }
      return Status::ok();
    }
    case StepKind::kQuantize:
    case StepKind::kDequantize:
      return enqueue_quant(plan, step, ctx);
    case StepKind::kConv:
    case StepKind::kGemm:
    case StepKind::kPointwise:
    case StepKind::kMaskedSoftmax:
      return internal_error("{} step enqueued without preparation", step_kind_name(step.kind));
  }
  return internal_error("unknown step kind");
}

}  // namespace kiln::backends::cuda

namespace kiln::backends::cuda {

kernels::EwOp activation_op(ops::Activation a) {
  using kernels::EwOp;
  switch (a) {
    case ops::Activation::kNone:
      return EwOp::kIdentity;
    case ops::Activation::kRelu:
      return EwOp::kRelu;
    case ops::Activation::kClip:
      return EwOp::kClip;
    case ops::Activation::kSigmoid:
      return EwOp::kSigmoid;
    case ops::Activation::kHardSigmoid:
      return EwOp::kHardSigmoid;
    case ops::Activation::kHardSwish:
      return EwOp::kHardSwish;
    case ops::Activation::kLeakyRelu:
      return EwOp::kLeakyRelu;
    case ops::Activation::kTanh:
      return EwOp::kTanh;
    case ops::Activation::kSilu:
      return EwOp::kSilu;
    case ops::Activation::kGelu:
      return EwOp::kGelu;
    case ops::Activation::kGeluTanh:
      return EwOp::kGeluTanh;
  }
  return EwOp::kIdentity;
}

namespace {

// `runs` launches of one candidate captured into a CUDA graph, so that timing
// it measures the GPU's time only: launched directly, cuDNN's and cuBLASLt's
// host-side work per call (descriptor checks, execution-plan lookup) can
// exceed a short kernel's run time, the GPU then idles between launches and
// the window measures the host. The engine replays its steps from a graph,
// so a host-bound choice would be the wrong one there.
class CapturedRuns {
 public:
  CapturedRuns() = default;
  CapturedRuns(const CapturedRuns&) = delete;
  CapturedRuns& operator=(const CapturedRuns&) = delete;
  ~CapturedRuns() { reset(); }

  // False (and nothing kept) when the launches cannot be captured or one
  // fails under capture: the caller then times direct launches.
  bool capture(cudaStream_t stream, int runs, const std::function<Result<bool>(int)>& launch, int i) {
    reset();
    if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    bool ok = true;
    for (int r = 0; r < runs && ok; ++r) {
      Result<bool> ran = launch(i);
      ok = ran.is_ok() && *ran;
    }
    cudaError_t end = cudaStreamEndCapture(stream, &graph_);
    if (!ok || end != cudaSuccess || graph_ == nullptr ||
        cudaGraphInstantiate(&exec_, graph_, 0) != cudaSuccess) {
      (void)cudaGetLastError();
      reset();
      return false;  // timed by direct launches instead
    }
    return true;
  }

  Status launch(cudaStream_t stream) const { return check_cuda(cudaGraphLaunch(exec_, stream), "cudaGraphLaunch"); }

 private:
  void reset() {
    if (exec_ != nullptr) (void)cudaGraphExecDestroy(exec_);
    if (graph_ != nullptr) (void)cudaGraphDestroy(graph_);
    exec_ = nullptr;
    graph_ = nullptr;
  }
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace

Result<int> fastest_candidate(GpuContext& ctx, int count, const std::function<Result<bool>(int)>& launch,
                              float* best_ms, int* timed) {
  constexpr int kWindows = 3, kRuns = 3;
  KILN_ASSIGN_OR_RETURN(Event start, Event::create());
  KILN_ASSIGN_OR_RETURN(Event stop, Event::create());
  int best = -1, ran = 0;
  float best_time = INFINITY;
  CapturedRuns graph;
  for (int i = 0; i < count; ++i) {
    KILN_ASSIGN_OR_RETURN(bool ok, launch(i));  // warm-up
    if (!ok) continue;
    const bool captured = graph.capture(ctx.stream, kRuns, launch, i);
    if (captured) KILN_RETURN_IF_ERROR(graph.launch(ctx.stream));  // the graph's own first launch
    float ms = INFINITY;
    for (int w = 0; w < kWindows && ok; ++w) {
      KILN_RETURN_IF_ERROR(start.record(ctx.stream));
      if (captured) {
        KILN_RETURN_IF_ERROR(graph.launch(ctx.stream));
      } else {
        for (int r = 0; r < kRuns && ok; ++r) {
          KILN_ASSIGN_OR_RETURN(ok, launch(i));
        }
      }
      KILN_RETURN_IF_ERROR(stop.record(ctx.stream));
      KILN_CUDA_CHECK(cudaEventSynchronize(stop.get()));
      KILN_ASSIGN_OR_RETURN(float window_ms, stop.elapsed_since(start));
      ms = std::min(ms, window_ms / kRuns);
    }
    if (!ok) continue;
    ++ran;
    if (ms < best_time) {
      best_time = ms;
      best = i;
    }
  }
  if (best_ms != nullptr) *best_ms = best_time;
  if (timed != nullptr) *timed = ran;
  return best;
}

}  // namespace kiln::backends::cuda
