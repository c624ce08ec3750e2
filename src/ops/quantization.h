// Shared pieces of the quantization family (quantization.cc and
// quantization_qlinear.cc). register_quantization is the one entry point.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/datum.h"
#include "kiln/tensor.h"
#include "ops/op_def.h"

namespace kiln::ops {

class Registry;

// Element values of any numeric tensor, the sub-byte and float8 types
// included, as a float64 tensor of the same dims (exact but for int64 > 2^53).
Result<Tensor> quant_values(const Tensor& t);

// `v` rounded to the precision of the floating type `t` (float32, float16,
// bfloat16; float64 returns v), the way numpy rounds an operation's result.
double round_to_precision(double v, DataType t);

// The saturation range of an integer quantized type (int8/uint8, int16/uint16,
// int4/uint4, int2/uint2); false for other types.
bool quant_int_range(DataType t, int64_t& lo, int64_t& hi);

// Quantizes real values (already divided by the scale, zero point not yet
// added) to `to`: integer types round half to even, add the zero point and
// saturate (NaN becomes the zero point); float8 types add a non-zero zero
// point and convert with `saturate`; float4e2m1 adds the zero point and
// always saturates. `zero_points[i]` is the zero point of element i (an
// empty vector means 0 everywhere).
Result<Tensor> quantize_values(const std::vector<double>& q, const std::vector<double>& zero_points, DataType to,
                               bool saturate, Dims dims);

// Runs another op's reference kernel (as registered for `opset`) on `inputs`,
// with the attributes of ctx's node; its one output, or the error it reports
// (without the node's description, which the caller adds).
// Lets QLinearConv/QLinearMatMul reuse Conv and MatMul instead of a second
// implementation.
Result<Tensor> run_reference_op(const KernelContext& ctx, std::string_view op, int64_t opset,
                                std::vector<Datum> inputs);

// DynamicQuantizeLinear, QLinearMatMul and QLinearConv (quantization_qlinear.cc).
void register_qlinear_ops(Registry& r);
// kiln.QConv and kiln.QGemm, the int8 layers of lowered Q/DQ models (quantization_fused.cc).
void register_quantized_layers(Registry& r);

}  // namespace kiln::ops
