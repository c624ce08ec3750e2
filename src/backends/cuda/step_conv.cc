// Convolution steps: cuDNN forward convolution (algorithm chosen by cuDNN's
// timed search among its heuristically ranked candidates) followed by the
// channel epilogue kernel (bias, residual, activation).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "backends/cuda/kernels.h"
#include "backends/cuda/plan_builder.h"
#include "backends/cuda/step_ops.h"
#include "core/error.h"

namespace kiln::backends::cuda {
namespace {

class ConvStep final : public PreparedStep {
 public:
  ~ConvStep() override {
    if (x_) (void)cudnnDestroyTensorDescriptor(x_);
    if (y_) (void)cudnnDestroyTensorDescriptor(y_);
    if (w_) (void)cudnnDestroyFilterDescriptor(w_);
    if (conv_) (void)cudnnDestroyConvolutionDescriptor(conv_);
    if (bias_desc_) (void)cudnnDestroyTensorDescriptor(bias_desc_);
    if (act_desc_) (void)cudnnDestroyActivationDescriptor(act_desc_);
  }

  Status prepare(const Plan& plan, const Step& step, GpuContext& ctx) {
    step_ = &step;
    const PlanValue& xv = plan.values[static_cast<size_t>(step.inputs[0])];
    const PlanValue& wv = plan.values[static_cast<size_t>(step.inputs[1])];
    const PlanValue& yv = plan.values[static_cast<size_t>(step.outputs[0])];
    const Dims& xd = xv.dims;
    const Dims& yd = yv.dims;
    const Dims& wd = wv.dims;  // logical OIHW (stored OHWI when channels-last)
    bool nhwc = plan.options.channels_last;
    cudnnTensorFormat_t fmt_ = nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    cudnnDataType_t dt = cudnn_type(yv.dtype);
    auto i32 = [](int64_t v) { return static_cast<int>(v); };
    KILN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x_));
    KILN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y_));
    KILN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w_));
    KILN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_));
    KILN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x_, fmt_, dt, i32(xd[0]), i32(xd[1]), i32(xd[2]), i32(xd[3])));
    KILN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y_, fmt_, dt, i32(yd[0]), i32(yd[1]), i32(yd[2]), i32(yd[3])));
    KILN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_, dt, fmt_, i32(wd[0]), i32(wd[1]), i32(wd[2]), i32(wd[3])));
    const ConvParams& c = step.conv;
    KILN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv_, i32(c.pads[0]), i32(c.pads[1]), i32(c.strides[0]),
                                                     i32(c.strides[1]), i32(c.dilations[0]), i32(c.dilations[1]),
                                                     CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    KILN_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv_, i32(c.group)));
    bool strict = ctx.precision == Precision::kFp32;
    KILN_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_, strict ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    int on = 0, oc = 0, oh = 0, ow = 0;
    KILN_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv_, x_, w_, &on, &oc, &oh, &ow));
    if (on != yd[0] || oc != yd[1] || oh != yd[2] || ow != yd[3]) {
      return internal_error("cuDNN output dims [{},{},{},{}] differ from the plan's {}", on, oc, oh, ow,
                            dims_to_string(yd));
    }
    std::string key = fmt::format("{}|{}|{}|{},{},{},{},{},{},{}|{}|{}", dims_to_string(xd), dims_to_string(wd),
                                  static_cast<int>(dt), c.pads[0], c.pads[1], c.strides[0], c.strides[1],
                                  c.dilations[0], c.dilations[1], c.group, nhwc, strict);
    if (ctx.conv_algos == nullptr) return internal_error("{}: no algorithm cache while preparing", step.label);
    auto it = ctx.conv_algos->find(key);
    if (it == ctx.conv_algos->end()) {
      KILN_ASSIGN_OR_RETURN(auto choice, choose_algo(ctx, strict));
      it = ctx.conv_algos->emplace(key, choice).first;
    }
    algo_ = static_cast<cudnnConvolutionFwdAlgo_t>(it->second.first);
    math_ = it->second.second;
    if (!strict) KILN_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_, static_cast<cudnnMathType_t>(math_)));
    KILN_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(ctx.cudnn, x_, w_, conv_, y_, algo_, &ws_bytes_));
    if (ws_bytes_ > ctx.workspace_bytes) {
      return resource_exhausted("{}: cuDNN algorithm needs {} bytes of workspace, {} available", step.label, ws_bytes_,
                                ctx.workspace_bytes);
    }
    n_ = 1;
    for (int64_t d : yd) n_ *= d;
    channels_ = yd[1];
    inner_ = nhwc ? 1 : yd[2] * yd[3];
    dtype_ = kernel_dtype(yv.dtype);
    needs_epilogue_ = step.inputs[2] >= 0 || step.inputs[3] >= 0 || step.epilogue.activation != ops::Activation::kNone;
    if (ctx.fuse_conv_epilogue && needs_epilogue_) {
      Status st = try_fused(plan, ctx);
      if (!st.is_ok()) fused_ = false;  // the separate epilogue kernel stays
    }
    return Status::ok();
  }

  std::string describe() const override {
    return fmt::format("cudnn algo {} math {}{}{}", static_cast<int>(algo_), static_cast<int>(math_),
                       timed_candidates_ > 0 ? fmt::format(", best of {} timed", timed_candidates_) : "",
                       fused_            ? ", fused epilogue"
                       : needs_epilogue_ ? ", separate epilogue"
                                         : "");
  }

  Status enqueue(GpuContext& ctx) const override {
    if (fused_) return enqueue_fused(ctx);
    return enqueue_unfused(ctx);
  }

 private:
  Status enqueue_fused(GpuContext& ctx) const {
    const Step& step = *step_;
    void* x = ctx.ptrs[static_cast<size_t>(step.inputs[0])];
    void* w = ctx.ptrs[static_cast<size_t>(step.inputs[1])];
    void* y = ctx.ptrs[static_cast<size_t>(step.outputs[0])];
    bool has_z = step.inputs[3] >= 0;
    void* z = has_z ? ctx.ptrs[static_cast<size_t>(step.inputs[3])] : y;
    float alpha1 = 1.0f, alpha2 = has_z ? 1.0f : 0.0f;
    return check_cudnn(
        cudnnConvolutionBiasActivationForward(ctx.cudnn, &alpha1, x_, x, w_, w, conv_, algo_, ctx.workspace, ws_bytes_,
                                              &alpha2, y_, z, bias_desc_, fused_bias_.get(), act_desc_, y_, y),
        fmt::format("cudnnConvolutionBiasActivationForward({})", step.label));
  }

  Status enqueue_unfused(GpuContext& ctx) const {
    const Step& step = *step_;
    void* x = ctx.ptrs[static_cast<size_t>(step.inputs[0])];
    void* w = ctx.ptrs[static_cast<size_t>(step.inputs[1])];
    void* y = ctx.ptrs[static_cast<size_t>(step.outputs[0])];
    float alpha = 1.0f, beta = 0.0f;
    KILN_RETURN_IF_ERROR(check_cudnn(
        cudnnConvolutionForward(ctx.cudnn, &alpha, x_, x, w_, w, conv_, algo_, ctx.workspace, ws_bytes_, &beta, y_, y),
        fmt::format("cudnnConvolutionForward({})", step.label)));
    if (!needs_epilogue_ || n_ == 0) return Status::ok();
    const float* bias =
        step.inputs[2] >= 0 ? static_cast<const float*>(ctx.ptrs[static_cast<size_t>(step.inputs[2])]) : nullptr;
    const void* z = step.inputs[3] >= 0 ? ctx.ptrs[static_cast<size_t>(step.inputs[3])] : nullptr;
    int rc = kernels::channel_epilogue(dtype_, y, y, n_, channels_, inner_, nullptr, bias, z,
                                       step.epilogue.residual_after_activation, activation_op(step.epilogue.activation),
                                       step.epilogue.alpha, step.epilogue.beta, ctx.stream);
    return rc == 0 ? Status::ok()
                   : check_cuda(static_cast<cudaError_t>(rc), fmt::format("conv epilogue kernel ({})", step.label));
  }

  // cudnnConvolutionBiasActivationForward does bias, residual and Relu /
  // clipped Relu in the convolution. Its type and algorithm rules are
  // strict, so it is used only after it ran here and matched the separate
  // epilogue on a test pattern (the plan's buffers, before any real data).
  Status try_fused(const Plan& plan, GpuContext& ctx) {
    const Step& step = *step_;
    const ops::Epilogue& ep = step.epilogue;
    bool relu = ep.activation == ops::Activation::kRelu;
    bool clipped = ep.activation == ops::Activation::kClip && ep.alpha == 0.0f && ep.beta > 0.0f;
    // Identity is allowed only with the implicit precomputed-GEMM algorithm.
    bool identity =
        ep.activation == ops::Activation::kNone && algo_ == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    if (!(relu || clipped || identity) || ep.residual_after_activation || step.inputs[2] < 0) {
      return unimplemented("epilogue not fusable");
    }
    const PlanValue& bv = plan.values[static_cast<size_t>(step.inputs[2])];
    const PlanValue& yv = plan.values[static_cast<size_t>(step.outputs[0])];
    KILN_ASSIGN_OR_RETURN(Tensor bias, convert_tensor(bv.host, yv.dtype));
    KILN_ASSIGN_OR_RETURN(fused_bias_, DeviceBuffer::allocate(bias.nbytes()));
    KILN_CUDA_CHECK(cudaMemcpy(fused_bias_.get(), bias.raw_data(), bias.nbytes(), cudaMemcpyHostToDevice));
    KILN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&bias_desc_));
    KILN_CUDNN_CHECK(cudnnSetTensor4dDescriptor(bias_desc_, CUDNN_TENSOR_NCHW, cudnn_type(yv.dtype), 1,
                                                static_cast<int>(channels_), 1, 1));
    KILN_CUDNN_CHECK(cudnnCreateActivationDescriptor(&act_desc_));
    cudnnActivationMode_t mode = relu      ? CUDNN_ACTIVATION_RELU
                                 : clipped ? CUDNN_ACTIVATION_CLIPPED_RELU
                                           : CUDNN_ACTIVATION_IDENTITY;
    KILN_CUDNN_CHECK(cudnnSetActivationDescriptor(act_desc_, mode, CUDNN_NOT_PROPAGATE_NAN,
                                                  clipped ? static_cast<double>(ep.beta) : 0.0));
    // Test pattern: constant bytes in x (and z), the real weights.
    const PlanValue& xv = plan.values[static_cast<size_t>(step.inputs[0])];
    void* x = ctx.ptrs[static_cast<size_t>(step.inputs[0])];
    void* y = ctx.ptrs[static_cast<size_t>(step.outputs[0])];
    KILN_CUDA_CHECK(cudaMemsetAsync(x, 0x3c, static_cast<size_t>(xv.nbytes()), ctx.stream));
    if (step.inputs[3] >= 0) {
      const PlanValue& zv = plan.values[static_cast<size_t>(step.inputs[3])];
      KILN_CUDA_CHECK(cudaMemsetAsync(ctx.ptrs[static_cast<size_t>(step.inputs[3])], 0x3a,
                                      static_cast<size_t>(zv.nbytes()), ctx.stream));
    }
    size_t bytes = static_cast<size_t>(yv.nbytes());
    KILN_ASSIGN_OR_RETURN(PinnedBuffer expect, PinnedBuffer::allocate(bytes));
    KILN_ASSIGN_OR_RETURN(PinnedBuffer got, PinnedBuffer::allocate(bytes));
    KILN_RETURN_IF_ERROR(enqueue_unfused(ctx));
    KILN_CUDA_CHECK(cudaMemcpyAsync(expect.get(), y, bytes, cudaMemcpyDeviceToHost, ctx.stream));
    KILN_CUDA_CHECK(cudaMemsetAsync(y, 0, bytes, ctx.stream));
    KILN_RETURN_IF_ERROR(enqueue_fused(ctx));
    KILN_CUDA_CHECK(cudaMemcpyAsync(got.get(), y, bytes, cudaMemcpyDeviceToHost, ctx.stream));
    KILN_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    Tensor a = Tensor::borrow(yv.dtype, yv.dims, expect.get());
    Tensor b = Tensor::borrow(yv.dtype, yv.dims, got.get());
    KILN_ASSIGN_OR_RETURN(Tensor af, convert_tensor(a, DataType::kFloat32));
    KILN_ASSIGN_OR_RETURN(Tensor bf, convert_tensor(b, DataType::kFloat32));
    double scale = 1e-3, diff = 0.0;
    for (int64_t i = 0; i < af.numel(); ++i) {
      double u = af.data<float>()[i], v = bf.data<float>()[i];
      scale = std::max(scale, std::fabs(u));
      double d = std::fabs(u - v);
      diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    }
    double tol = yv.dtype == DataType::kFloat32 ? 1e-4 : 2e-2;
    if (!(diff <= tol * scale)) return internal_error("fused convolution differs by {}", diff);
    // Keep the fused call only where it is also faster.
    KILN_ASSIGN_OR_RETURN(int faster, fastest_candidate(ctx, 2, [&](int i) -> Result<bool> {
                            KILN_RETURN_IF_ERROR(i == 0 ? enqueue_unfused(ctx) : enqueue_fused(ctx));
                            return true;
                          }));
    fused_ = faster == 1;
    return Status::ok();
  }

  // Candidates: cuDNN's timed search (cudnnFindConvolutionForwardAlgorithmEx)
  // and its heuristic ranking, on the plan's buffers. cuDNN's own timing is
  // not trusted for the choice: with CUDA's lazy module loading, the first
  // launch of each kernel includes loading it, which favours whichever
  // kernel ran before. Every candidate is therefore run once more and then
  // timed over several launches here, and the fastest is kept.
  Result<std::pair<int, int>> choose_algo(GpuContext& ctx, bool strict) {
    const Step& step = *step_;
    void* x = ctx.ptrs[static_cast<size_t>(step.inputs[0])];
    void* w = ctx.ptrs[static_cast<size_t>(step.inputs[1])];
    void* y = ctx.ptrs[static_cast<size_t>(step.outputs[0])];
    constexpr int kMax = 16;
    cudnnConvolutionFwdAlgoPerf_t perf[kMax];
    std::vector<std::pair<int, int>> candidates;
    auto add = [&](int algo, int math) {
      std::pair<int, int> c(algo, math);
      if (std::find(candidates.begin(), candidates.end(), c) == candidates.end()) candidates.push_back(c);
    };
    int returned = 0;
    KILN_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(ctx.cudnn, x_, x, w_, w, conv_, y_, y, kMax, &returned,
                                                            perf, ctx.workspace, ctx.workspace_bytes));
    for (int i = 0; i < returned; ++i) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > ctx.workspace_bytes) continue;
      if (strict && perf[i].mathType != CUDNN_FMA_MATH && perf[i].mathType != CUDNN_DEFAULT_MATH) continue;
      add(static_cast<int>(perf[i].algo), static_cast<int>(perf[i].mathType));
    }
    KILN_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(ctx.cudnn, x_, w_, conv_, y_, kMax, &returned, perf));
    for (int i = 0; i < returned; ++i) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > ctx.workspace_bytes) continue;
      add(static_cast<int>(perf[i].algo), static_cast<int>(strict ? CUDNN_FMA_MATH : perf[i].mathType));
    }
    if (candidates.empty()) return unimplemented("{}: cuDNN has no forward algorithm for this convolution", step.label);
    float alpha = 1.0f, beta = 0.0f, best_ms = 0.0f;
    static const bool trace = std::getenv("KILN_GPU_TRACE") != nullptr;  // each choice on stderr
    KILN_ASSIGN_OR_RETURN(
        int best,
        fastest_candidate(
            ctx, static_cast<int>(candidates.size()),
            [&](int i) -> Result<bool> {
              const auto [algo_id, math] = candidates[static_cast<size_t>(i)];
              auto algo = static_cast<cudnnConvolutionFwdAlgo_t>(algo_id);
              size_t ws = 0;
              if (cudnnSetConvolutionMathType(conv_, static_cast<cudnnMathType_t>(math)) != CUDNN_STATUS_SUCCESS ||
                  cudnnGetConvolutionForwardWorkspaceSize(ctx.cudnn, x_, w_, conv_, y_, algo, &ws) !=
                      CUDNN_STATUS_SUCCESS ||
                  ws > ctx.workspace_bytes) {
                return false;
              }
              return cudnnConvolutionForward(ctx.cudnn, &alpha, x_, x, w_, w, conv_, algo, ctx.workspace, ws, &beta, y_,
                                             y) == CUDNN_STATUS_SUCCESS;
            },
            &best_ms, &timed_candidates_));
    if (trace && best >= 0) {
      std::fprintf(stderr, "conv %s: algo %d math %d, %.4f ms, the fastest of %d timed\n", step.label.c_str(),
                   candidates[static_cast<size_t>(best)].first, candidates[static_cast<size_t>(best)].second, best_ms,
                   timed_candidates_);
    }
    (void)cudaGetLastError();
    KILN_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_, strict ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    if (best < 0) return unimplemented("{}: no cuDNN forward algorithm ran for this convolution", step.label);
    return candidates[static_cast<size_t>(best)];
  }

  const Step* step_ = nullptr;
  cudnnTensorDescriptor_t x_ = nullptr, y_ = nullptr;
  cudnnFilterDescriptor_t w_ = nullptr;
  cudnnConvolutionDescriptor_t conv_ = nullptr;
  cudnnConvolutionFwdAlgo_t algo_ = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  int math_ = 0;
  size_t ws_bytes_ = 0;
  int64_t n_ = 0, channels_ = 0, inner_ = 1;
  kernels::DType dtype_ = kernels::DType::kF32;
  bool needs_epilogue_ = false;
  bool fused_ = false;
  int timed_candidates_ = 0;  // candidates timed by choose_algo (0 when the choice was cached)
  DeviceBuffer fused_bias_;
  cudnnTensorDescriptor_t bias_desc_ = nullptr;
  cudnnActivationDescriptor_t act_desc_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<PreparedStep>> prepare_conv(const Plan& plan, const Step& step, GpuContext& ctx) {
  auto op = std::make_unique<ConvStep>();
  KILN_RETURN_IF_ERROR(op->prepare(plan, step, ctx));
  return std::unique_ptr<PreparedStep>(std::move(op));
}

}  // namespace kiln::backends::cuda
