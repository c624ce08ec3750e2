// Internal helpers of the "fused" op family (fused.cc, fused_misc.cc).
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "ops/op_def.h"

namespace kiln::ops {

class Registry;

// Runs ONNX op `op`'s reference kernel for `ctx`'s node (its attributes) on `inputs`.
Status run_onnx_kernel(std::string_view op, KernelContext& ctx, std::span<const Datum> inputs,
                       std::vector<Datum>& outputs);
// y = epilogue(y + bias over the last dim (optional), residual (optional)), in place; float32 only.
Status apply_epilogue(const KernelContext& ctx, Tensor& y, const Tensor* bias_last_dim, const Tensor* residual);

// kiln.Attention, kiln.LayerNormalization, kiln.Gelu, kiln.Pointwise.
void register_fused_misc(Registry& r);

}  // namespace kiln::ops
