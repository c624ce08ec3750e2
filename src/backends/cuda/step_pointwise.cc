// kPointwise steps: the plan's generated kernel, compiled with NVRTC for the
// current device when the plan is prepared, launched with cudaLaunchKernel.
#include <cuda_runtime_api.h>

#include <algorithm>

#include "backends/cuda/nvrtc_compile.h"
#include "backends/cuda/step_ops.h"
#include "core/error.h"

namespace kiln::backends::cuda {
namespace {

class PointwiseStep final : public PreparedStep {
 public:
  Status prepare(const Plan& plan, const Step& step) {
    step_ = &step;
    if (step.pointwise == nullptr || step.pw_args.empty()) return internal_error("{}: no kernel", step.label);
    const PlanValue& y = plan.values[static_cast<size_t>(step.outputs[0])];
    if (!pointwise_stores(y.dtype)) return internal_error("{}: output type {}", step.label, data_type_name(y.dtype));
    KILN_ASSIGN_OR_RETURN(kernel_, load_generated_kernel(step.pointwise->source, kPointwiseKernelName));
    return Status::ok();
  }

  Status enqueue(GpuContext& ctx) const override {
    const Step& step = *step_;
    const int64_t n = step.pw_args[0];
    if (n == 0) return Status::ok();
    // Parameters in the kernel's order: y, x, t0..tk, then args by value.
    std::vector<void*> ptrs;
    ptrs.push_back(ctx.ptrs[static_cast<size_t>(step.outputs[0])]);
    for (int v : step.inputs) ptrs.push_back(ctx.ptrs[static_cast<size_t>(v)]);
    std::vector<void*> params;
    for (void*& p : ptrs) params.push_back(&p);
    params.push_back(const_cast<int64_t*>(step.pw_args.data()));
    constexpr int64_t kThreads = 256;
    const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, int64_t{1} << 20);
    return check_cuda(
        cudaLaunchKernel(kernel_, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), params.data(), 0, ctx.stream),
        fmt::format("cudaLaunchKernel(pointwise, {})", step.label));
  }

  std::string describe() const override { return "nvrtc kernel"; }

 private:
  const Step* step_ = nullptr;
  LoadedKernel kernel_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<PreparedStep>> prepare_pointwise(const Plan& plan, const Step& step, GpuContext& /*ctx*/) {
  auto op = std::make_unique<PointwiseStep>();
  KILN_RETURN_IF_ERROR(op->prepare(plan, step));
  return std::unique_ptr<PreparedStep>(std::move(op));
}

}  // namespace kiln::backends::cuda
