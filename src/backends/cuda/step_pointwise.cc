// Steps whose kernel is generated CUDA C (kPointwise, kMaskedSoftmax):
// compiled with NVRTC for the current device when the plan is prepared,
// launched with cudaLaunchKernel.
#include <cuda_runtime_api.h>

#include <algorithm>

#include "backends/cuda/nvrtc_compile.h"
#include "backends/cuda/softmax_codegen.h"
#include "backends/cuda/step_ops.h"
#include "core/error.h"

namespace kiln::backends::cuda {
namespace {

class GeneratedStep final : public PreparedStep {
 public:
  Status prepare(const Plan& plan, const Step& step) {
    step_ = &step;
    const PlanValue& y = plan.values[static_cast<size_t>(step.outputs[0])];
    if (!pointwise_stores(y.dtype)) return internal_error("{}: output type {}", step.label, data_type_name(y.dtype));
    if (step.pw_args.empty()) return internal_error("{}: no kernel arguments", step.label);
    std::string source;
    const char* name = nullptr;
    if (step.kind == StepKind::kPointwise) {
      if (step.pointwise == nullptr) return internal_error("{}: no kernel", step.label);
      source = step.pointwise->source;
      name = kPointwiseKernelName;
      constexpr int64_t kThreads = 256;  // one thread per element, grid-stride loop
      threads_ = kThreads;
      blocks_ = std::min<int64_t>((step.pw_args[0] + kThreads - 1) / kThreads, int64_t{1} << 20);
    } else {
      const bool has_mask = step.inputs.size() > 1 && step.inputs[1] >= 0;
      const int row_rank = has_mask ? static_cast<int>((step.pw_args.size() - 3) / 2) : 0;
      source = masked_softmax_source(has_mask, row_rank, y.dtype);
      name = kMaskedSoftmaxKernelName;
      threads_ = 32 * kMaskedSoftmaxRowsPerBlock;  // one warp per row
      blocks_ = step.cols == 0 ? 0 : (step.rows + kMaskedSoftmaxRowsPerBlock - 1) / kMaskedSoftmaxRowsPerBlock;
    }
    if (blocks_ > 0x7fffffff) return unimplemented("{}: {} blocks do not fit one launch", step.label, blocks_);
    KILN_ASSIGN_OR_RETURN(kernel_, load_generated_kernel(source, name));
    return Status::ok();
  }

  Status enqueue(GpuContext& ctx) const override {
    const Step& step = *step_;
    if (blocks_ == 0) return Status::ok();
    // Parameters in the kernel's order: y, the present inputs, then args by value.
    std::vector<void*> ptrs;
    ptrs.push_back(ctx.ptrs[static_cast<size_t>(step.outputs[0])]);
    for (int v : step.inputs) {
      if (v >= 0) ptrs.push_back(ctx.ptrs[static_cast<size_t>(v)]);
    }
    std::vector<void*> params;
    for (void*& p : ptrs) params.push_back(&p);
    params.push_back(const_cast<int64_t*>(step.pw_args.data()));
    return check_cuda(cudaLaunchKernel(kernel_, dim3(static_cast<unsigned>(blocks_)),
                                       dim3(static_cast<unsigned>(threads_)), params.data(), 0, ctx.stream),
                      fmt::format("cudaLaunchKernel({}, {})", step_kind_name(step.kind), step.label));
  }

  std::string describe() const override { return "nvrtc kernel"; }

 private:
  const Step* step_ = nullptr;
  LoadedKernel kernel_ = nullptr;
  int64_t threads_ = 0, blocks_ = 0;
};

}  // namespace

Result<std::unique_ptr<PreparedStep>> prepare_generated(const Plan& plan, const Step& step, GpuContext& /*ctx*/) {
  auto op = std::make_unique<GeneratedStep>();
  KILN_RETURN_IF_ERROR(op->prepare(plan, step));
  return std::unique_ptr<PreparedStep>(std::move(op));
}

}  // namespace kiln::backends::cuda
