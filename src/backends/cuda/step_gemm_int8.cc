// Int8 steps: the int8 GEMM on cuBLASLt (IMMA) and the QuantizeLinear /
// DequantizeLinear kernels.
//
// The GEMM, Y[m,n] = A[m,k] W[n,k]^T, is computed column-major as
// Y^T (n x m) = W (stored k x n, op T) x A^T (k x m, op N): cuBLASLt's int8
// kernels on regular (non-COL32) layouts take only this "TN" form, with
// leading dimensions (k, k, n) and n, k multiples of 4 (the plan checks
// n and k; it falls back to the float GEMM otherwise). Compute type 32I,
// scale type 32I (alpha 1, beta 0), D int32 [m,n] in the arena; an
// epilogue kernel then dequantizes into the activation type (Q/DQ layers)
// or requantizes to int8/uint8 (kiln.QGemm). Where cuBLASLt cannot take the
// GEMM (k or n not a multiple of 4, or it offers no algorithm on some GPU),
// a plain kernel computes the same int32 sums.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "backends/cuda/kernels_quant.h"
#include "backends/cuda/step_ops.h"
#include "core/error.h"

namespace kiln::backends::cuda {
namespace {

class Int8GemmStep final : public PreparedStep {
 public:
  ~Int8GemmStep() override {
    for (cublasLtMatrixLayout_t l : {a_, b_, d_}) {
      if (l) (void)cublasLtMatrixLayoutDestroy(l);
    }
    if (desc_) (void)cublasLtMatmulDescDestroy(desc_);
  }

  Status prepare(const Plan& plan, const Step& step, GpuContext& ctx) {
    step_ = &step;
    const GemmParams& g = step.gemm;
    if (g.batch != 1 || g.trans_a || !g.trans_b || step.inputs.size() != 5 || step.outputs.size() != 2) {
      return internal_error("{}: malformed int8 GEMM step", step.label);
    }
    dtype_ = kernel_dtype(plan.values[static_cast<size_t>(step.outputs[0])].dtype);
    requantize_ = dtype_ == kernels::DType::kI8 || dtype_ == kernels::DType::kU8;
    if (g.m == 0 || g.n == 0) return Status::ok();
    Status st = g.k % 4 != 0 || g.n % 4 != 0
                    ? unimplemented("k={} n={}: the int8 kernels need multiples of 4", g.k, g.n)
                    : prepare_cublaslt(ctx);
    if (!st.is_ok()) {  // never fail the plan over it: the plain kernel computes the same int32 sums
      simple_ = true;
      why_simple_ = st.message();
    }
    return Status::ok();
  }

  // Descriptors, heuristics and the fastest candidate on the plan's buffers.
  Status prepare_cublaslt(GpuContext& ctx) {
    const Step& step = *step_;
    const GemmParams& g = step.gemm;
    KILN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc_, CUBLAS_COMPUTE_32I, CUDA_R_32I));
    cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
    KILN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, sizeof(op_t)));
    KILN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &op_n, sizeof(op_n)));
    auto u = [](int64_t v) { return static_cast<uint64_t>(v); };
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a_, CUDA_R_8I, u(g.k), u(g.n), g.k));
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b_, CUDA_R_8I, u(g.k), u(g.m), g.k));
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d_, CUDA_R_32I, u(g.n), u(g.m), g.n));

    cublasLtMatmulPreference_t pref = nullptr;
    KILN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = ctx.workspace_bytes;
    Status st = check_cublas(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
        "cublasLtMatmulPreferenceSetAttribute");
    cublasLtMatmulHeuristicResult_t results[8];
    int returned = 0;
    if (st.is_ok()) {
      st = check_cublas(
          cublasLtMatmulAlgoGetHeuristic(ctx.lt, desc_, a_, b_, d_, d_, pref, 8, results, &returned),
          fmt::format("cublasLtMatmulAlgoGetHeuristic({}, int8 m={} n={} k={})", step.label, g.m, g.n, g.k));
    }
    (void)cublasLtMatmulPreferenceDestroy(pref);
    KILN_RETURN_IF_ERROR(st);
    if (returned == 0) return unimplemented("{}: cuBLASLt has no int8 algorithm for this GEMM", step.label);
    candidates_ = returned;
    algo_ = results[0].algo;
    if (returned > 1) {  // time the candidates on the plan's buffers, keep the fastest
      KILN_ASSIGN_OR_RETURN(
          chosen_, fastest_candidate(ctx, returned, [&](int i) -> Result<bool> {
            if (results[i].state != CUBLAS_STATUS_SUCCESS || results[i].workspaceSize > ctx.workspace_bytes) {
              return false;
            }
            algo_ = results[i].algo;
            KILN_RETURN_IF_ERROR(enqueue_matmul(ctx));
            return true;
          }));
      if (chosen_ < 0) return unimplemented("{}: no cuBLASLt int8 algorithm fits the workspace", step.label);
      algo_ = results[chosen_].algo;
    }
    return Status::ok();
  }

  std::string describe() const override {
    const GemmParams& g = step_->gemm;
    const char* epilogue = requantize_ ? "requantize" : "dequantize";
    if (simple_) {
      return fmt::format("own int8 kernel m={} n={} k={} (cuBLASLt: {}), {} epilogue", g.m, g.n, g.k, why_simple_,
                         epilogue);
    }
    return fmt::format("cublasLt int8 m={} n={} k={}, candidate {} of {}, {} epilogue", g.m, g.n, g.k, chosen_ + 1,
                       candidates_, epilogue);
  }

  Status enqueue(GpuContext& ctx) const override {
    const Step& step = *step_;
    const GemmParams& g = step.gemm;
    if (g.m == 0 || g.n == 0) return Status::ok();
    KILN_RETURN_IF_ERROR(enqueue_matmul(ctx));
    auto ptr = [&](int v) -> void* { return v < 0 ? nullptr : ctx.ptrs[static_cast<size_t>(v)]; };
    const ops::Epilogue& ep = step.epilogue;
    if (requantize_) {
      int rc = kernels::int8_gemm_requantize(
          dtype_, ptr(step.outputs[0]), static_cast<const int32_t*>(ptr(step.outputs[1])), g.m, g.n,
          static_cast<const double*>(ptr(step.inputs[2])), static_cast<const double*>(ptr(step.inputs[3])),
          static_cast<int32_t>(step.p0), ep.activation == ops::Activation::kRelu, ctx.stream);
      return rc == 0 ? Status::ok()
                     : check_cuda(static_cast<cudaError_t>(rc), fmt::format("int8 requantize kernel ({})", step.label));
    }
    int rc = kernels::int8_gemm_epilogue(
        dtype_, ptr(step.outputs[0]), static_cast<const int32_t*>(ptr(step.outputs[1])), g.m, g.n,
        static_cast<const float*>(ptr(step.inputs[2])), static_cast<const float*>(ptr(step.inputs[3])),
        ptr(step.inputs[4]), ep.residual_after_activation, activation_op(ep.activation), ep.alpha, ep.beta, ctx.stream);
    return rc == 0
               ? Status::ok()
               : check_cuda(static_cast<cudaError_t>(rc), fmt::format("int8 GEMM epilogue kernel ({})", step.label));
  }

 private:
  Status enqueue_matmul(GpuContext& ctx) const {
    const Step& step = *step_;
    const void* a = ctx.ptrs[static_cast<size_t>(step.inputs[0])];
    const void* w = ctx.ptrs[static_cast<size_t>(step.inputs[1])];
    void* acc = ctx.ptrs[static_cast<size_t>(step.outputs[1])];
    if (simple_) {
      const GemmParams& g = step.gemm;
      int rc = kernels::int8_gemm_simple(static_cast<int32_t*>(acc), static_cast<const int8_t*>(a),
                                         static_cast<const int8_t*>(w), g.m, g.n, g.k, ctx.stream);
      return rc == 0 ? Status::ok()
                     : check_cuda(static_cast<cudaError_t>(rc), fmt::format("int8 GEMM kernel ({})", step.label));
    }
    int32_t alpha = 1, beta = 0;
    return check_cublas(cublasLtMatmul(ctx.lt, desc_, &alpha, w, a_, a, b_, &beta, acc, d_, acc, d_, &algo_,
                                       ctx.workspace, ctx.workspace_bytes, ctx.stream),
                        fmt::format("cublasLtMatmul({}, int8)", step.label));
  }

  const Step* step_ = nullptr;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, d_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  int chosen_ = 0;
  int candidates_ = 0;
  bool requantize_ = false;  // int8/uint8 output (kiln.QGemm)
  bool simple_ = false;      // cuBLASLt refused: kernels::int8_gemm_simple
  std::string why_simple_;
  kernels::DType dtype_ = kernels::DType::kF32;
};

int64_t numel_of(const Dims& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

}  // namespace

Result<std::unique_ptr<PreparedStep>> prepare_gemm_int8(const Plan& plan, const Step& step, GpuContext& ctx) {
  auto op = std::make_unique<Int8GemmStep>();
  KILN_RETURN_IF_ERROR(op->prepare(plan, step, ctx));
  return std::unique_ptr<PreparedStep>(std::move(op));
}

Status enqueue_quant(const Plan& plan, const Step& step, GpuContext& ctx) {
  const PlanValue& xv = plan.values[static_cast<size_t>(step.inputs[0])];
  const PlanValue& yv = plan.values[static_cast<size_t>(step.outputs[0])];
  int64_t n = numel_of(yv.dims);
  if (n == 0) return Status::ok();
  if (step.channels < 1 || step.inner < 1) {  // a lowering bug; on the GPU it would read out of bounds
    return internal_error("{}: {} step has channels {} and inner {}", step.label, step_kind_name(step.kind),
                          step.channels, step.inner);
  }
  const void* x = ctx.ptrs[static_cast<size_t>(step.inputs[0])];
  void* y = ctx.ptrs[static_cast<size_t>(step.outputs[0])];
  const auto* scale = static_cast<const float*>(ctx.ptrs[static_cast<size_t>(step.inputs[1])]);
  const auto* zp = static_cast<const int32_t*>(ctx.ptrs[static_cast<size_t>(step.inputs[2])]);
  int rc = step.kind == StepKind::kQuantize
               ? kernels::quantize_linear(kernel_dtype(xv.dtype), x, kernel_dtype(yv.dtype), y, n, step.channels,
                                          step.inner, scale, zp, ctx.stream)
               : kernels::dequantize_linear(kernel_dtype(xv.dtype), x, kernel_dtype(yv.dtype), y, n, step.channels,
                                            step.inner, scale, zp, ctx.stream);
  return rc == 0 ? Status::ok()
                 : check_cuda(static_cast<cudaError_t>(rc),
                              fmt::format("{} kernel for {}", step_kind_name(step.kind), step.label));
}

}  // namespace kiln::backends::cuda
