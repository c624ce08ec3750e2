// Part of the quantization family: the int8 layers that the Q/DQ lowering
// (passes/qdq_lowering.cc) makes, in the "kiln" domain. Both keep 8-bit
// tensors in and out, so consecutive int8 layers never pass through float.
//
//   kiln.QConv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
//              y_zero_point, [B]) -> y
//     QLinearConv's inputs and Conv's attributes, plus the epilogue attribute
//     "activation" (ops/epilogue.h; only "Relu"), applied before
//     quantization: relu then quantize equals quantize then max(q, y_zero_point),
//     as rounding is monotone and 0 quantizes to the zero point.
//   kiln.QGemm(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
//              y_zero_point, [bias]) -> y
//     y = quantize((a - a_zp) @ (b - b_zp) + bias) with a of shape [..., K], b
//     a constant-shaped [K, N] int8 matrix, b_scale/b_zero_point a scalar or
//     [N] (per output column), bias int32 [N] in units of a_scale * b_scale,
//     plus "activation" as for QConv.
//
// Requantization follows QLinearConv's reference exactly: the multiplier is
// float32(float32(a_scale * b_scale) / y_scale), applied in float64 to the
// exact integer sum, rounded half to even, saturated.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/epilogue.h"
#include "ops/op_util.h"
#include "ops/quantization.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

// The epilogue of a QConv/QGemm: none or Relu.
Result<bool> read_relu(const KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Epilogue e, Epilogue::from_node(ctx.node()));
  if (e.activation != Activation::kNone && e.activation != Activation::kRelu) {
    return unimplemented("activation other than Relu on an int8 layer");
  }
  return e.activation == Activation::kRelu;
}

// max(y, zero_point) elementwise (ReLU in the quantized domain).
Status clamp_at_zero_point(Tensor& y, const Tensor& zp) {
  KILN_ASSIGN_OR_RETURN(Tensor zv, quant_values(zp));
  const double z = zv.data<double>()[0];
  if (y.dtype() == DataType::kUInt8) {
    auto* d = y.data<uint8_t>();
    for (int64_t i = 0; i < y.numel(); ++i) d[i] = static_cast<uint8_t>(std::max<double>(d[i], z));
  } else if (y.dtype() == DataType::kInt8) {
    auto* d = y.data<int8_t>();
    for (int64_t i = 0; i < y.numel(); ++i) d[i] = static_cast<int8_t>(std::max<double>(d[i], z));
  } else {
    return unimplemented("output type {}", data_type_name(y.dtype()));
  }
  return Status::ok();
}

// The output of a kiln.QConv/QGemm: `y`, clamped at y_zero_point (input 7)
// when the node carries the fused Relu.
Status set_quantized_output(KernelContext& ctx, Result<Tensor> y) {
  auto relu = read_relu(ctx);
  if (!relu.is_ok()) return ctx.error(relu.status());
  if (!y.is_ok()) return ctx.error(y.status());
  if (*relu) {
    Status s = clamp_at_zero_point(*y, ctx.input(7));
    if (!s.is_ok()) return ctx.error(std::move(s));
  }
  ctx.set_output(0, std::move(y).value());
  return Status::ok();
}

Status qconv_kernel(KernelContext& ctx) {
  std::vector<Datum> inputs(ctx.num_inputs());
  for (size_t i = 0; i < ctx.num_inputs(); ++i) inputs[i] = ctx.datum(i);
  return set_quantized_output(ctx, run_reference_op(ctx, "QLinearConv", 10, std::move(inputs)));
}

Status qconv_infer(InferContext& ctx) {
  const OpDef* def = Registry::global().find("", "QLinearConv", 10);
  if (def == nullptr || def->infer == nullptr) return Status::ok();
  return def->infer(ctx);
}

Result<Tensor> qgemm(const KernelContext& ctx) {
  const Tensor* in[8];
  for (size_t i = 0; i < 8; ++i) {
    KILN_ASSIGN_OR_RETURN(in[i], ctx.tensor_input(i));
  }
  const Tensor &a = *in[0], &a_scale = *in[1], &a_zp = *in[2], &b = *in[3], &b_scale = *in[4], &b_zp = *in[5],
               &y_scale = *in[6], &y_zp = *in[7];
  for (const Tensor* t : {&a, &b, &y_zp}) {
    if (t->dtype() != DataType::kInt8 && t->dtype() != DataType::kUInt8) {
      return unimplemented("8-bit operands only, got {}", data_type_name(t->dtype()));
    }
  }
  if (a_zp.dtype() != a.dtype() || b_zp.dtype() != b.dtype()) {
    return invalid_argument("zero points must have their operand's type");
  }
  for (const Tensor* s : {&a_scale, &b_scale, &y_scale}) {
    if (s->dtype() != DataType::kFloat32) return unimplemented("scale type {}", data_type_name(s->dtype()));
  }
  if (a.rank() < 1 || b.rank() != 2) {
    return invalid_argument("a must have rank >= 1 and b rank 2, got {} and {}", dims_to_string(a.dims()),
                            dims_to_string(b.dims()));
  }
  const int64_t k = b.dim(0), n = b.dim(1);
  if (a.dim(a.rank() - 1) != k) {
    return invalid_argument("a {} and b {} do not multiply", dims_to_string(a.dims()), dims_to_string(b.dims()));
  }
  for (const Tensor* t : {&a_scale, &a_zp, &y_scale, &y_zp}) {
    if (t->numel() != 1) return invalid_argument("a and y scales and zero points must be scalars");
  }
  for (const Tensor* t : {&b_scale, &b_zp}) {
    if (t->numel() != 1 && t->numel() != n) {
      return invalid_argument("b_scale and b_zero_point must be scalars or have {} values", n);
    }
  }
  const Tensor* bias = ctx.has_input(8) ? &ctx.input(8) : nullptr;
  if (bias != nullptr && (bias->dtype() != DataType::kInt32 || bias->numel() != n)) {
    return invalid_argument("bias must be int32 with {} values", n);
  }
  KILN_ASSIGN_OR_RETURN(Tensor av, quant_values(a));
  KILN_ASSIGN_OR_RETURN(Tensor bv, quant_values(b));
  KILN_ASSIGN_OR_RETURN(Tensor azv, quant_values(a_zp));
  KILN_ASSIGN_OR_RETURN(Tensor bzv, quant_values(b_zp));
  KILN_ASSIGN_OR_RETURN(Tensor yzv, quant_values(y_zp));
  const int64_t rows = k > 0 ? a.numel() / k : 0;
  const double az = azv.data<double>()[0];
  const float as = a_scale.data<float>()[0], ys = y_scale.data<float>()[0];
  std::vector<double> q(static_cast<size_t>(rows * n));
  for (int64_t c = 0; c < n; ++c) {
    const auto cb = static_cast<size_t>(b_scale.numel() == 1 ? 0 : c);
    const double bz = bzv.data<double>()[b_zp.numel() == 1 ? 0 : c];
    const float ab = as * b_scale.data<float>()[cb];
    const double multiplier = static_cast<float>(ab / ys);
    for (int64_t r = 0; r < rows; ++r) {
      double acc = bias != nullptr ? bias->data<int32_t>()[c] : 0;
      for (int64_t i = 0; i < k; ++i) acc += (av.data<double>()[r * k + i] - az) * (bv.data<double>()[i * n + c] - bz);
      q[static_cast<size_t>(r * n + c)] = acc * multiplier;
    }
  }
  Dims ydims(a.dims().begin(), a.dims().end() - 1);
  ydims.push_back(n);
  return quantize_values(q, std::vector<double>(q.size(), yzv.data<double>()[0]), y_zp.dtype(), /*saturate=*/true,
                         ydims);
}

Status qgemm_kernel(KernelContext& ctx) { return set_quantized_output(ctx, qgemm(ctx)); }

// [..., N] of y_zero_point's type.
Status qgemm_infer(InferContext& ctx) {
  const ir::ValueType& at = ctx.input_type(0);
  const ir::ValueType& bt = ctx.input_type(3);
  const ir::ValueType& yz = ctx.input_type(7);
  const DataType to = yz.is_tensor() ? yz.dtype : DataType::kUndefined;
  if (!at.is_tensor() || !at.shape.rank_known() || at.shape.rank() < 1 || !bt.is_tensor() ||
      !bt.shape.rank_known() || bt.shape.rank() != 2) {
    ctx.set_output_type(0, ir::ValueType::tensor(to));
    return Status::ok();
  }
  std::vector<Dim> out(at.shape.dims().begin(), at.shape.dims().end() - 1);
  out.push_back(bt.shape[1]);
  ctx.set_output_type(0, ir::ValueType::tensor(to, Shape(out)));
  return Status::ok();
}

}  // namespace

void register_quantized_layers(Registry& r) {
  r.add({.name = "QConv",
         .domain = "kiln",
         .since_version = 1,
         .min_inputs = 8,
         .max_inputs = 9,
         .kernel = qconv_kernel,
         .infer = qconv_infer});
  r.add({.name = "QGemm",
         .domain = "kiln",
         .since_version = 1,
         .min_inputs = 8,
         .max_inputs = 9,
         .kernel = qgemm_kernel,
         .infer = qgemm_infer});
}

}  // namespace kiln::ops
