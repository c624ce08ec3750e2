// Part of the quantization family: DynamicQuantizeLinear, QLinearMatMul and
// QLinearConv, following the ONNX spec and reference implementation
// (onnx/reference/ops/op_dynamic_quantize_linear.py, op_qlinear_matmul.py,
// op_qlinear_conv.py).
//
// QLinearMatMul and QLinearConv subtract the zero points, run the MatMul or
// Conv reference kernel on float64 values (exact: products of 8-bit values
// summed stay far below 2^53 for any realistic reduction length, so
// accumulation cannot overflow), then requantize with the multiplier
// a_scale * b_scale / y_scale computed in the scales' precision, rounding half
// to even and saturating to the output type.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "ops/conv_window.h"
#include "ops/op_util.h"
#include "ops/quantization.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

bool is_float8(DataType t) {
  return t == DataType::kFloat8E4M3FN || t == DataType::kFloat8E4M3FNUZ || t == DataType::kFloat8E5M2 ||
         t == DataType::kFloat8E5M2FNUZ;
}

// int8/uint8, and from opset 21 (QLinearMatMul) the float8 types.
Status check_qlinear_type(DataType t, bool allow_float8, const char* what) {
  if (t == DataType::kInt8 || t == DataType::kUInt8 || (allow_float8 && is_float8(t))) return Status::ok();
  return unimplemented("{} type {} is not supported", what, data_type_name(t));
}

Status check_zero_point_type(const Tensor& zp, const Tensor& x, const char* zp_name, const char* x_name) {
  if (zp.dtype() == x.dtype()) return Status::ok();
  return invalid_argument("{} is {} but {} is {}", zp_name, data_type_name(zp.dtype()), x_name,
                          data_type_name(x.dtype()));
}

Status check_scalar(const Tensor& t, const char* name) {
  if (t.numel() == 1) return Status::ok();
  return invalid_argument("{} must be a scalar (per-tensor), got shape {}", name, dims_to_string(t.dims()));
}

// Values of a tensor as float64 (exact), as a vector.
Result<std::vector<double>> values_vector(const Tensor& t) {
  KILN_ASSIGN_OR_RETURN(Tensor v, quant_values(t));
  return std::vector<double>(v.data<double>(), v.data<double>() + v.numel());
}

// ---- DynamicQuantizeLinear ---------------------------------------------------------

// y = saturate(round(x / scale) + zero_point) to uint8, with the scale and zero
// point chosen from x's range widened to include 0. Computed in float32 as the
// reference does. NaN elements are left out of the range and quantize to the zero point.
Status dynamic_quantize_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  if (x->dtype() != DataType::kFloat32) {
    return ctx.error(unimplemented("x type {} is not supported (float only)", data_type_name(x->dtype())));
  }
  const float* xv = x->data<float>();
  float maxx = 0, minx = 0;
  for (int64_t i = 0; i < x->numel(); ++i) {
    if (std::isnan(xv[i])) continue;
    maxx = std::max(maxx, xv[i]);
    minx = std::min(minx, xv[i]);
  }
  const float scale = (maxx == minx ? 1.0f : maxx - minx) / 255.0f;
  const float initial_zp = 0.0f - minx / scale;
  const float zp = std::nearbyint(std::clamp(std::isnan(initial_zp) ? 0.0f : initial_zp, 0.0f, 255.0f));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kUInt8, x->dims()));
  for (int64_t i = 0; i < x->numel(); ++i) {
    const float q = std::nearbyint(xv[i] / scale) + zp;
    y->data<uint8_t>()[i] = static_cast<uint8_t>(std::isnan(q) ? zp : std::clamp(q, 0.0f, 255.0f));
  }
  ctx.set_output(1, Tensor::scalar<float>(DataType::kFloat32, scale));
  ctx.set_output(2, Tensor::scalar<uint8_t>(DataType::kUInt8, static_cast<uint8_t>(zp)));
  return Status::ok();
}

Status dynamic_quantize_infer(InferContext& ctx) {
  const ir::ValueType& xt = ctx.input_type(0);
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kUInt8, xt.is_tensor() ? xt.shape : Shape()));
  ctx.set_output_type(1, ir::ValueType::tensor(DataType::kFloat32, Shape::of({})));
  ctx.set_output_type(2, ir::ValueType::tensor(DataType::kUInt8, Shape::of({})));
  return Status::ok();
}

// ---- QLinearMatMul ----------------------------------------------------------------

// The dims of a scale or zero point of operand x (dims `x`) viewed so that
// they broadcast to x: {} for a scalar; A's may vary along rows only ([M]
// becomes [M, 1]; or [..., M, 1]), B's along columns only ([N] or [..., 1, N]).
Result<Dims> operand_param_view(const Dims& x, const Tensor& p, bool per_row, const char* name) {
  if (p.numel() == 1) return Dims{};
  const char* expected = per_row ? "a scalar, [M] or [..., M, 1]" : "a scalar, [N] or [..., 1, N]";
  if (x.size() < 2) {
    return invalid_argument("{} of shape {} must be a scalar for a 1-D operand", name, dims_to_string(p.dims()));
  }
  Dims view = p.dims();
  if (view.size() == 1 && per_row) view = {view[0], 1};
  Dims target = x;
  target[per_row ? target.size() - 1 : target.size() - 2] = 1;
  bool fits = view.size() <= target.size();
  for (size_t i = 0; fits && i < view.size(); ++i) {
    const int64_t v = view[view.size() - 1 - i];
    fits = v == 1 || v == target[target.size() - 1 - i];
  }
  if (!fits) {
    return invalid_argument("{} of shape {} does not fit an operand of shape {}: expected {}", name,
                            dims_to_string(p.dims()), dims_to_string(x), expected);
  }
  return view;
}

// x - zero_point (zero point broadcast through `view`), as float64.
Result<Tensor> minus_zero_point(const Tensor& x, const Tensor& zp, const Dims& view) {
  KILN_ASSIGN_OR_RETURN(Tensor out, quant_values(x));
  KILN_ASSIGN_OR_RETURN(std::vector<double> z, values_vector(zp));
  BroadcastIterator it(x.dims(), {view});
  double* d = out.data<double>();
  for (int64_t i = 0; i < out.numel(); ++i) {
    d[i] -= z[static_cast<size_t>(it.offset(0))];
    if (i + 1 < out.numel()) it.next();
  }
  return out;
}

// Inputs: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point.
Result<Tensor> qlinear_matmul(const KernelContext& ctx) {
  const Tensor* in[8];
  for (size_t i = 0; i < 8; ++i) {
    KILN_ASSIGN_OR_RETURN(in[i], ctx.tensor_input(i));
  }
  const Tensor &a = *in[0], &a_scale = *in[1], &a_zp = *in[2], &b = *in[3], &b_scale = *in[4], &b_zp = *in[5],
               &y_scale = *in[6], &y_zp = *in[7];
  const bool float8 = ctx.opset() >= 21;
  KILN_RETURN_IF_ERROR(check_qlinear_type(a.dtype(), float8, "a"));
  KILN_RETURN_IF_ERROR(check_qlinear_type(b.dtype(), float8, "b"));
  KILN_RETURN_IF_ERROR(check_qlinear_type(y_zp.dtype(), float8, "y_zero_point"));
  KILN_RETURN_IF_ERROR(check_zero_point_type(a_zp, a, "a_zero_point", "a"));
  KILN_RETURN_IF_ERROR(check_zero_point_type(b_zp, b, "b_zero_point", "b"));
  const DataType st = a_scale.dtype();
  const bool st_ok =
      st == DataType::kFloat32 || (ctx.opset() >= 21 && (st == DataType::kFloat16 || st == DataType::kBFloat16));
  if (!st_ok) return unimplemented("scale type {} is not supported at opset {}", data_type_name(st), ctx.opset());
  if (b_scale.dtype() != st || y_scale.dtype() != st) {
    return invalid_argument("a_scale, b_scale and y_scale must have one type, got {}, {} and {}", data_type_name(st),
                            data_type_name(b_scale.dtype()), data_type_name(y_scale.dtype()));
  }
  KILN_ASSIGN_OR_RETURN(Dims as_view, operand_param_view(a.dims(), a_scale, true, "a_scale"));
  KILN_ASSIGN_OR_RETURN(Dims az_view, operand_param_view(a.dims(), a_zp, true, "a_zero_point"));
  KILN_ASSIGN_OR_RETURN(Dims bs_view, operand_param_view(b.dims(), b_scale, false, "b_scale"));
  KILN_ASSIGN_OR_RETURN(Dims bz_view, operand_param_view(b.dims(), b_zp, false, "b_zero_point"));
  KILN_RETURN_IF_ERROR(check_scalar(y_scale, "y_scale"));
  KILN_RETURN_IF_ERROR(check_scalar(y_zp, "y_zero_point"));

  KILN_ASSIGN_OR_RETURN(Tensor ai, minus_zero_point(a, a_zp, az_view));
  KILN_ASSIGN_OR_RETURN(Tensor bi, minus_zero_point(b, b_zp, bz_view));
  KILN_ASSIGN_OR_RETURN(Tensor c, run_reference_op(ctx, "MatMul", 13, {Datum(ai), Datum(bi)}));

  KILN_ASSIGN_OR_RETURN(std::vector<double> as, values_vector(a_scale));
  KILN_ASSIGN_OR_RETURN(std::vector<double> bs, values_vector(b_scale));
  KILN_ASSIGN_OR_RETURN(std::vector<double> ys, values_vector(y_scale));
  KILN_ASSIGN_OR_RETURN(std::vector<double> yz, values_vector(y_zp));
  // The scale views broadcast to the output: [..., M, 1] and [..., 1, N] (or
  // scalars, the only form a 1-D operand allows). A 1-D operand's M or N is
  // dropped from the output, so drop it from the other operand's view too.
  if (b.rank() == 1 && !as_view.empty()) as_view.pop_back();
  if (a.rank() == 1 && bs_view.size() >= 2) bs_view.erase(bs_view.end() - 2);
  const auto n = static_cast<size_t>(c.numel());
  std::vector<double> q(n);
  BroadcastIterator it(c.dims(), {as_view, bs_view});
  for (size_t i = 0; i < n; ++i) {
    const double ab =
        round_to_precision(as[static_cast<size_t>(it.offset(0))] * bs[static_cast<size_t>(it.offset(1))], st);
    const double multiplier = round_to_precision(ab / ys[0], st);
    q[i] = c.data<double>()[i] * multiplier;
    if (i + 1 < n) it.next();
  }
  return quantize_values(q, std::vector<double>(n, yz[0]), y_zp.dtype(), /*saturate=*/true, c.dims());
}

Status qlinear_matmul_kernel(KernelContext& ctx) {
  auto y = qlinear_matmul(ctx);
  if (!y.is_ok()) return ctx.error(y.status());
  ctx.set_output(0, std::move(y).value());
  return Status::ok();
}

// numpy matmul's output shape; unknown where the inputs do not decide it.
Shape matmul_output_shape(const Shape& a, const Shape& b) {
  if (!a.rank_known() || !b.rank_known() || a.rank() == 0 || b.rank() == 0) return Shape();
  std::vector<Dim> da = a.dims(), db = b.dims();
  const bool a_vec = da.size() == 1, b_vec = db.size() == 1;
  if (a_vec) da.insert(da.begin(), Dim(1));
  if (b_vec) db.push_back(Dim(1));
  auto batch = broadcast_shapes(Shape(std::vector<Dim>(da.begin(), da.end() - 2)),
                                Shape(std::vector<Dim>(db.begin(), db.end() - 2)));
  if (!batch.is_ok()) return Shape();
  std::vector<Dim> out = batch->dims();
  if (!a_vec) out.push_back(da[da.size() - 2]);
  if (!b_vec) out.push_back(db.back());
  return Shape(out);
}

Status qlinear_matmul_infer(InferContext& ctx) {
  const ir::ValueType& yz = ctx.input_type(7);
  ctx.set_output_type(0, ir::ValueType::tensor(yz.is_tensor() ? yz.dtype : DataType::kUndefined,
                                               matmul_output_shape(ctx.input_type(0).shape, ctx.input_type(3).shape)));
  return Status::ok();
}

// ---- QLinearConv -----------------------------------------------------------------

// Inputs: x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
// y_zero_point, optional int32 bias B (quantized with scale x_scale * w_scale).
Result<Tensor> qlinear_conv(const KernelContext& ctx) {
  const Tensor* in[8];
  for (size_t i = 0; i < 8; ++i) {
    KILN_ASSIGN_OR_RETURN(in[i], ctx.tensor_input(i));
  }
  const Tensor &x = *in[0], &x_scale = *in[1], &x_zp = *in[2], &w = *in[3], &w_scale = *in[4], &w_zp = *in[5],
               &y_scale = *in[6], &y_zp = *in[7];
  KILN_RETURN_IF_ERROR(check_qlinear_type(x.dtype(), false, "x"));
  KILN_RETURN_IF_ERROR(check_qlinear_type(w.dtype(), false, "w"));
  KILN_RETURN_IF_ERROR(check_qlinear_type(y_zp.dtype(), false, "y_zero_point"));
  KILN_RETURN_IF_ERROR(check_zero_point_type(x_zp, x, "x_zero_point", "x"));
  KILN_RETURN_IF_ERROR(check_zero_point_type(w_zp, w, "w_zero_point", "w"));
  for (const Tensor* s : {&x_scale, &w_scale, &y_scale}) {
    if (s->dtype() != DataType::kFloat32) {
      return unimplemented("scale type {} is not supported (float only)", data_type_name(s->dtype()));
    }
  }
  KILN_RETURN_IF_ERROR(check_scalar(x_scale, "x_scale"));
  KILN_RETURN_IF_ERROR(check_scalar(x_zp, "x_zero_point"));
  KILN_RETURN_IF_ERROR(check_scalar(y_scale, "y_scale"));
  KILN_RETURN_IF_ERROR(check_scalar(y_zp, "y_zero_point"));
  if (w.rank() < 1) return invalid_argument("w must have rank >= 3, got {}", dims_to_string(w.dims()));
  const int64_t m = w.dim(0);
  for (auto [p, name] : {std::pair{&w_scale, "w_scale"}, std::pair{&w_zp, "w_zero_point"}}) {
    if (p->numel() != 1 && (p->rank() != 1 || p->dim(0) != m)) {
      return invalid_argument("{} of shape {} must be a scalar or have one value per output channel ([{}])", name,
                              dims_to_string(p->dims()), m);
    }
  }
  Datum bias;
  if (ctx.has_input(8)) {
    if (ctx.input(8).dtype() != DataType::kInt32) {
      return invalid_argument("B must be int32, got {}", data_type_name(ctx.input(8).dtype()));
    }
    KILN_ASSIGN_OR_RETURN(Tensor bd, quant_values(ctx.input(8)));
    bias = Datum(std::move(bd));
  }

  // Per-channel zero points of W vary along its first axis: view them as [M, 1, ...].
  Dims w_view = w_zp.numel() == 1 ? Dims{} : Dims(static_cast<size_t>(w.rank()), 1);
  if (!w_view.empty()) w_view[0] = m;
  KILN_ASSIGN_OR_RETURN(Tensor xi, minus_zero_point(x, x_zp, {}));
  KILN_ASSIGN_OR_RETURN(Tensor wi, minus_zero_point(w, w_zp, w_view));
  KILN_ASSIGN_OR_RETURN(Tensor res, run_reference_op(ctx, "Conv", 11, {Datum(xi), Datum(wi), bias}));

  KILN_ASSIGN_OR_RETURN(std::vector<double> xs, values_vector(x_scale));
  KILN_ASSIGN_OR_RETURN(std::vector<double> ws, values_vector(w_scale));
  KILN_ASSIGN_OR_RETURN(std::vector<double> ys, values_vector(y_scale));
  KILN_ASSIGN_OR_RETURN(std::vector<double> yz, values_vector(y_zp));
  std::vector<double> multiplier(static_cast<size_t>(m));
  for (size_t c = 0; c < multiplier.size(); ++c) {
    const double xw = round_to_precision(xs[0] * ws[ws.size() == 1 ? 0 : c], DataType::kFloat32);
    multiplier[c] = round_to_precision(xw / ys[0], DataType::kFloat32);
  }
  // res is [N, M, spatial...]: element i belongs to channel (i / spatial) % M.
  int64_t spatial = 1;
  for (int64_t d = 2; d < res.rank(); ++d) spatial *= res.dim(d);
  const auto n = static_cast<size_t>(res.numel());
  std::vector<double> q(n);
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<size_t>((static_cast<int64_t>(i) / spatial) % m);
    q[i] = res.data<double>()[i] * multiplier[c];
  }
  return quantize_values(q, std::vector<double>(n, yz[0]), y_zp.dtype(), /*saturate=*/true, res.dims());
}

Status qlinear_conv_kernel(KernelContext& ctx) {
  auto y = qlinear_conv(ctx);
  if (!y.is_ok()) return ctx.error(y.status());
  ctx.set_output(0, std::move(y).value());
  return Status::ok();
}

// [N, M, spatial...] with the spatial dims known where x's and the kernel's are.
Status qlinear_conv_infer(InferContext& ctx) {
  const ir::ValueType& xt = ctx.input_type(0);
  const ir::ValueType& wt = ctx.input_type(3);
  const ir::ValueType& yz = ctx.input_type(7);
  const DataType to = yz.is_tensor() ? yz.dtype : DataType::kUndefined;
  if (!xt.is_tensor() || !xt.shape.rank_known() || xt.shape.rank() < 3) {
    ctx.set_output_type(0, ir::ValueType::tensor(to));
    return Status::ok();
  }
  const int64_t rank = xt.shape.rank();
  std::vector<Dim> out(static_cast<size_t>(rank));
  out[0] = xt.shape[0];
  const bool w_known = wt.is_tensor() && wt.shape.rank_known() && wt.shape.rank() == rank;
  if (w_known) out[1] = wt.shape[0];
  std::vector<int64_t> kernel = ctx.node().attr_ints("kernel_shape");
  if (kernel.empty() && w_known) {
    for (int64_t d = 2; d < rank; ++d) {
      if (!wt.shape[d].known()) {
        kernel.clear();
        break;
      }
      kernel.push_back(wt.shape[d].value);
    }
  }
  if (static_cast<int64_t>(kernel.size()) == rank - 2) {
    KILN_ASSIGN_OR_RETURN(Window w, read_window(ctx.node(), kernel));
    std::vector<Dim> in(xt.shape.dims().begin() + 2, xt.shape.dims().end());
    KILN_ASSIGN_OR_RETURN(std::vector<Dim> o, window_output_shape(in, w));
    std::copy(o.begin(), o.end(), out.begin() + 2);
  }
  ctx.set_output_type(0, ir::ValueType::tensor(to, Shape(out)));
  return Status::ok();
}

}  // namespace

void register_qlinear_ops(Registry& r) {
  r.add({.name = "DynamicQuantizeLinear",
         .domain = "",
         .since_version = 11,
         .min_inputs = 1,
         .max_inputs = 1,
         .min_outputs = 3,
         .max_outputs = 3,
         .kernel = dynamic_quantize_kernel,
         .infer = dynamic_quantize_infer});
  r.add({.name = "QLinearMatMul",
         .domain = "",
         .since_version = 10,
         .min_inputs = 8,
         .max_inputs = 8,
         .kernel = qlinear_matmul_kernel,
         .infer = qlinear_matmul_infer});
  r.add({.name = "QLinearConv",
         .domain = "",
         .since_version = 10,
         .min_inputs = 8,
         .max_inputs = 9,
         .kernel = qlinear_conv_kernel,
         .infer = qlinear_conv_infer});
  register_quantized_layers(r);
}

}  // namespace kiln::ops
