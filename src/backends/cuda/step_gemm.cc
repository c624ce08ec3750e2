// GEMM steps on cuBLASLt. Kiln's matrices are row-major; cuBLASLt's are
// column-major, so Y[m,n] = op(A) op(B) is computed as Y^T = op(B)^T op(A)^T:
// cuBLASLt's first operand is B, its second A, and its output Y^T (n x m,
// leading dim n) is Y in row-major order. The per-column bias is then a
// per-row bias of Y^T, which is what the BIAS epilogue adds.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "backends/cuda/kernels.h"
#include "backends/cuda/step_ops.h"
#include "core/error.h"

namespace kiln::backends::cuda {
namespace {

class GemmStep final : public PreparedStep {
 public:
  ~GemmStep() override {
    for (cublasLtMatrixLayout_t l : {a_, b_, c_, d_}) {
      if (l) (void)cublasLtMatrixLayoutDestroy(l);
    }
    if (desc_) (void)cublasLtMatmulDescDestroy(desc_);
  }

  Status prepare(const Plan& plan, const Step& step, GpuContext& ctx) {
    step_ = &step;
    const GemmParams& g = step.gemm;
    const PlanValue& yv = plan.values[static_cast<size_t>(step.outputs[0])];
    cudaDataType_t dt = cuda_type(yv.dtype);
    cublasComputeType_t compute = ctx.precision == Precision::kTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    KILN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc_, compute, CUDA_R_32F));
    cublasOperation_t op_first = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;   // our B
    cublasOperation_t op_second = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // our A
    KILN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)));
    KILN_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)));
    auto u = [](int64_t v) { return static_cast<uint64_t>(v); };
    // First operand (our B): stored [k,n] row-major = n x k column-major, or [n,k] when transposed.
    uint64_t fr = g.trans_b ? u(g.k) : u(g.n), fc = g.trans_b ? u(g.n) : u(g.k);
    uint64_t sr = g.trans_a ? u(g.m) : u(g.k), sc = g.trans_a ? u(g.k) : u(g.m);
    // Operands in their own storage type: attention's scores are float from half/bfloat16 operands.
    cudaDataType_t at = cuda_type(plan.values[static_cast<size_t>(step.inputs[0])].dtype);
    cudaDataType_t bt = cuda_type(plan.values[static_cast<size_t>(step.inputs[1])].dtype);
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a_, bt, fr, fc, static_cast<int64_t>(fr)));
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b_, at, sr, sc, static_cast<int64_t>(sr)));
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c_, dt, u(g.n), u(g.m), g.n));
    KILN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d_, dt, u(g.n), u(g.m), g.n));
    if (g.batch > 1) {
      int32_t count = static_cast<int32_t>(g.batch);
      int64_t strides[4] = {g.stride_b, g.stride_a, g.stride_c, g.stride_c};
      cublasLtMatrixLayout_t ls[4] = {a_, b_, c_, d_};
      for (int i = 0; i < 4; ++i) {
        KILN_CUBLAS_CHECK(
            cublasLtMatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
        KILN_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                           &strides[i], sizeof(strides[i])));
      }
    }
    // What cuBLASLt does itself: C (Gemm's full C, or the residual when it
    // comes before a Relu/no activation), bias, Relu. The rest goes to the
    // epilogue kernel.
    bool has_bias = step.inputs[3] >= 0;
    ops::Activation act = step.epilogue.activation;
    bool has_z = step.inputs[4] >= 0;
    c_input_ = step.inputs[2];
    beta_ = g.beta;
    z_in_lt_ = false;
    if (has_z && c_input_ < 0 && !step.epilogue.residual_after_activation &&
        (act == ops::Activation::kNone || act == ops::Activation::kRelu)) {
      c_input_ = step.inputs[4];
      beta_ = 1.0f;
      z_in_lt_ = true;
    }
    act_in_lt_ = act == ops::Activation::kRelu && (!has_z || z_in_lt_);
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (has_bias)
      epi = act_in_lt_ ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
    else if (act_in_lt_)
      epi = CUBLASLT_EPILOGUE_RELU;
    KILN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (has_bias) {
      void* bias = ctx.ptrs[static_cast<size_t>(step.inputs[3])];
      KILN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
      cudaDataType_t bias_type = dt;
      KILN_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
    }
    epilogue_kernel_ = (has_z && !z_in_lt_) || (act != ops::Activation::kNone && !act_in_lt_);
    n_ = g.batch * g.m * g.n;
    dtype_ = kernel_dtype(yv.dtype);

    cublasLtMatmulPreference_t pref = nullptr;
    KILN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = ctx.workspace_bytes;
    Status st = check_cublas(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
        "cublasLtMatmulPreferenceSetAttribute");
    cublasLtMatmulHeuristicResult_t results[8];
    int returned = 0;
    if (st.is_ok()) {
      st = check_cublas(cublasLtMatmulAlgoGetHeuristic(ctx.lt, desc_, a_, b_, c_, d_, pref, 8, results, &returned),
                        fmt::format("cublasLtMatmulAlgoGetHeuristic({}, m={} n={} k={} batch={})", step.label, g.m, g.n,
                                    g.k, g.batch));
    }
    (void)cublasLtMatmulPreferenceDestroy(pref);
    KILN_RETURN_IF_ERROR(st);
    if (returned == 0) return unimplemented("{}: cuBLASLt has no algorithm for this GEMM", step.label);
    candidates_ = returned;
    // Time the candidates on the plan's buffers and keep the fastest.
    algo_ = results[0].algo;
    if (returned > 1) {
      KILN_ASSIGN_OR_RETURN(
          chosen_, fastest_candidate(ctx, returned, [&](int i) -> Result<bool> {
            if (results[i].state != CUBLAS_STATUS_SUCCESS || results[i].workspaceSize > ctx.workspace_bytes) {
              return false;
            }
            algo_ = results[i].algo;
            KILN_RETURN_IF_ERROR(enqueue_matmul(ctx));
            return true;
          }));
      if (chosen_ < 0) return unimplemented("{}: no cuBLASLt algorithm fits the workspace", step.label);
      algo_ = results[chosen_].algo;
    }
    return Status::ok();
  }

  std::string describe() const override {
    const GemmParams& g = step_->gemm;
    return fmt::format("cublasLt m={} n={} k={} batch={}, candidate {} of {}{}", g.m, g.n, g.k, g.batch, chosen_ + 1,
                       candidates_, epilogue_kernel_ ? ", epilogue kernel" : "");
  }

  Status enqueue(GpuContext& ctx) const override {
    KILN_RETURN_IF_ERROR(enqueue_matmul(ctx));
    if (!epilogue_kernel_ || n_ == 0) return Status::ok();
    const Step& step = *step_;
    void* y = ctx.ptrs[static_cast<size_t>(step.outputs[0])];
    const void* z = step.inputs[4] >= 0 && !z_in_lt_ ? ctx.ptrs[static_cast<size_t>(step.inputs[4])] : nullptr;
    kernels::EwOp act = act_in_lt_ ? kernels::EwOp::kIdentity : activation_op(step.epilogue.activation);
    int rc =
        kernels::channel_epilogue(dtype_, y, y, n_, 1, 1, nullptr, nullptr, z, step.epilogue.residual_after_activation,
                                  act, step.epilogue.alpha, step.epilogue.beta, ctx.stream);
    return rc == 0 ? Status::ok()
                   : check_cuda(static_cast<cudaError_t>(rc), fmt::format("gemm epilogue kernel ({})", step.label));
  }

 private:
  Status enqueue_matmul(GpuContext& ctx) const {
    const Step& step = *step_;
    const void* a = ctx.ptrs[static_cast<size_t>(step.inputs[0])];
    const void* b = ctx.ptrs[static_cast<size_t>(step.inputs[1])];
    void* y = ctx.ptrs[static_cast<size_t>(step.outputs[0])];
    const void* c = c_input_ >= 0 ? ctx.ptrs[static_cast<size_t>(c_input_)] : y;
    float alpha = step.gemm.alpha;
    float beta = c_input_ >= 0 ? beta_ : 0.0f;
    // In place (C == D) cuBLASLt wants C's layout to be D's.
    cublasLtMatrixLayout_t c_layout = c == y ? d_ : c_;
    return check_cublas(cublasLtMatmul(ctx.lt, desc_, &alpha, b, a_, a, b_, &beta, c, c_layout, y, d_, &algo_,
                                       ctx.workspace, ctx.workspace_bytes, ctx.stream),
                        fmt::format("cublasLtMatmul({})", step.label));
  }

  const Step* step_ = nullptr;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr, d_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  int chosen_ = 0;
  int candidates_ = 0;
  int c_input_ = -1;
  float beta_ = 0.0f;
  bool z_in_lt_ = false, act_in_lt_ = false, epilogue_kernel_ = false;
  int64_t n_ = 0;
  kernels::DType dtype_ = kernels::DType::kF32;
};

}  // namespace

Result<std::unique_ptr<PreparedStep>> prepare_gemm(const Plan& plan, const Step& step, GpuContext& ctx) {
  if (step.gemm.int8) return prepare_gemm_int8(plan, step, ctx);
  auto op = std::make_unique<GemmStep>();
  KILN_RETURN_IF_ERROR(op->prepare(plan, step, ctx));
  return std::unique_ptr<PreparedStep>(std::move(op));
}

}  // namespace kiln::backends::cuda
