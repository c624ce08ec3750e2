// Op family: linear quantization. QuantizeLinear and DequantizeLinear here;
// DynamicQuantizeLinear, QLinearMatMul and QLinearConv in quantization_qlinear.cc.
//
// Semantics follow the ONNX spec and its reference implementation
// (onnx/reference/ops/op_quantize_linear.py, op_dequantize_linear.py):
//
// - Granularity comes from the scale's shape: one element is per-tensor; a
//   1-D scale of x.dim(axis) elements is per-axis; with block_size (opset 21)
//   the scale has x's shape except along `axis`, where it holds
//   ceil(x.dim(axis) / block_size) blocks. The zero point has the scale's shape.
// - QuantizeLinear divides x by the scale in the precision numpy's promotion
//   gives (int32 with anything: float64; equal 16-bit floats: that type;
//   otherwise float32), or in the `precision` attribute's type (opset 23),
//   then rounds half to even, adds the zero point and saturates (integers), or
//   converts to float8 (`saturate`, opset 19) or float4e2m1 (always saturating)
//   with the float conversions of ops/cast_small.h.
// - DequantizeLinear computes (x - zero_point) * scale in float32 (float64
//   when x is int32 with a zero point, as numpy promotes) and converts to
//   `output_dtype` (opset 23) or the scale's type.
#include "ops/quantization.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "core/error.h"
#include "ops/cast_small.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {

// ---- Shared helpers (quantization.h) -------------------------------------------------

Result<Tensor> quant_values(const Tensor& t) {
  if (is_small_type(t.dtype())) return cast_small(t, DataType::kFloat64, /*saturate=*/true, "up");
  return to_float64(t);
}

double round_to_precision(double v, DataType t) {
  switch (t) {
    case DataType::kFloat32:
      return static_cast<float>(v);
    case DataType::kFloat16:
      return static_cast<float>(Float16(static_cast<float>(v)));
    case DataType::kBFloat16:
      return static_cast<float>(BFloat16(static_cast<float>(v)));
    default:
      return v;
  }
}

bool quant_int_range(DataType t, int64_t& lo, int64_t& hi) {
  switch (t) {
    case DataType::kInt8:
      lo = -128, hi = 127;
      return true;
    case DataType::kUInt8:
      lo = 0, hi = 255;
      return true;
    case DataType::kInt16:
      lo = -32768, hi = 32767;
      return true;
    case DataType::kUInt16:
      lo = 0, hi = 65535;
      return true;
    case DataType::kInt4:
      lo = -8, hi = 7;
      return true;
    case DataType::kUInt4:
      lo = 0, hi = 15;
      return true;
    case DataType::kInt2:
      lo = -2, hi = 1;
      return true;
    case DataType::kUInt2:
      lo = 0, hi = 3;
      return true;
    default:
      return false;
  }
}

Result<Tensor> quantize_values(const std::vector<double>& q, const std::vector<double>& zero_points, DataType to,
                               bool saturate, Dims dims) {
  auto zero_point = [&](size_t i) { return zero_points.empty() ? 0.0 : zero_points[i]; };
  int64_t lo = 0, hi = 0;
  if (quant_int_range(to, lo, hi)) {
    KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(to, std::move(dims)));
    for (size_t i = 0; i < q.size(); ++i) {
      const double r = std::nearbyint(q[i]);  // the default rounding mode: half to even
      const double v = std::isnan(r) ? zero_point(i) : std::clamp(r + zero_point(i), double(lo), double(hi));
      const auto iv = static_cast<int64_t>(v);
      // The sub-byte types are stored one value per byte (int4/int2 sign-extended).
      switch (to) {
        case DataType::kInt16:
          out.data<int16_t>()[i] = static_cast<int16_t>(iv);
          break;
        case DataType::kUInt16:
          out.data<uint16_t>()[i] = static_cast<uint16_t>(iv);
          break;
        case DataType::kInt8:
        case DataType::kInt4:
        case DataType::kInt2:
          out.data<int8_t>()[i] = static_cast<int8_t>(iv);
          break;
        default:
          out.data<uint8_t>()[i] = static_cast<uint8_t>(iv);
          break;
      }
    }
    return out;
  }
  const bool fp4 = to == DataType::kFloat4E2M1;
  if (to == DataType::kFloat8E4M3FN || to == DataType::kFloat8E4M3FNUZ || to == DataType::kFloat8E5M2 ||
      to == DataType::kFloat8E5M2FNUZ || fp4) {
    KILN_ASSIGN_OR_RETURN(Tensor values, Tensor::allocate(DataType::kFloat64, std::move(dims)));
    double* v = values.data<double>();
    for (size_t i = 0; i < q.size(); ++i) {
      // The reference adds float4's zero point always but float8's never (it
      // must be 0 there); adding only a non-zero one keeps -0 as the reference does.
      v[i] = q[i];
      if (fp4 || zero_point(i) != 0) v[i] += zero_point(i);
    }
    return cast_small(values, to, saturate || fp4, "up");
  }
  return unimplemented("{} is not a quantized type", data_type_name(to));
}

Result<Tensor> run_reference_op(const KernelContext& ctx, std::string_view op, int64_t opset,
                                std::vector<Datum> inputs) {
  const OpDef* def = Registry::global().find("", op, opset);
  if (def == nullptr || def->kernel == nullptr) return internal_error("no reference kernel for {}", op);
  std::vector<Datum> outputs(1);
  KernelContext inner(ctx.node(), inputs, outputs, ctx.pool(), ctx.runner());
  Status s = def->kernel(inner);
  if (!s.is_ok()) {
    // The inner kernel prefixed the (shared) node's description; the caller adds it once more.
    const std::string prefix = ctx.node().describe() + ": ";
    const std::string& m = s.message();
    return Status(s.code(), m.starts_with(prefix) ? m.substr(prefix.size()) : m);
  }
  if (!outputs[0].is_tensor()) return internal_error("{} gave no tensor", op);
  return outputs[0].tensor();
}

namespace {

// ---- Types per opset ---------------------------------------------------------------

// The first opset whose QuantizeLinear output / DequantizeLinear input may be
// `t`; 0 if none. (float6 types of opset 28 are not Kiln types.)
int quant_type_since(DataType t) {
  switch (t) {
    case DataType::kInt8:
    case DataType::kUInt8:
      return 10;
    case DataType::kFloat8E4M3FN:
    case DataType::kFloat8E4M3FNUZ:
    case DataType::kFloat8E5M2:
    case DataType::kFloat8E5M2FNUZ:
      return 19;
    case DataType::kInt16:
    case DataType::kUInt16:
    case DataType::kInt4:
    case DataType::kUInt4:
      return 21;
    case DataType::kFloat4E2M1:
      return 23;
    case DataType::kInt2:
    case DataType::kUInt2:
      return 25;
    default:
      return 0;
  }
}

bool is_float_scale_type(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

// The element type the quantized side may have at `opset`.
Status check_quant_type(DataType t, int64_t opset, const char* what) {
  const int since = quant_type_since(t);
  if (since == 0 || opset < since) {
    return unimplemented("{} type {} is not supported at opset {}", what, data_type_name(t), opset);
  }
  return Status::ok();
}

// Scale types: float32 before opset 19, then the 16-bit floats, float8e8m0 from opset 24
// (QuantizeLinear also accepts int32 from opset 19).
Status check_scale_type(DataType t, int64_t opset, bool allow_int32, const char* what) {
  bool ok = t == DataType::kFloat32 ||
            (opset >= 19 && (is_float_scale_type(t) || (allow_int32 && t == DataType::kInt32))) ||
            (opset >= 24 && t == DataType::kFloat8E8M0);
  if (!ok) return unimplemented("{} type {} is not supported at opset {}", what, data_type_name(t), opset);
  return Status::ok();
}

// The type of an optional dtype attribute (0 or absent: nullopt).
Result<std::optional<DataType>> dtype_attr(const ir::Node& node, const char* name) {
  const int64_t v = node.attr_int(name, 0);
  if (v == 0) return std::optional<DataType>();
  auto t = data_type_from_int(v);
  if (!t) return invalid_argument("{} {} is not a tensor element type", name, v);
  return std::optional<DataType>(*t);
}

// ---- Scale layout ---------------------------------------------------------------

// Where each element of x finds its scale and zero point.
struct ScaleLayout {
  enum class Kind { kTensor, kAxis, kBlocked } kind = Kind::kTensor;
  int64_t axis_dim = 1;    // x.dim(axis)
  int64_t inner = 1;       // product of x's dims after the axis
  int64_t scale_axis = 1;  // the scale's dim along the axis (blocked)
  int64_t block = 1;

  // Index into the scale of x's element i (row-major).
  int64_t index(int64_t i) const {
    switch (kind) {
      case Kind::kTensor:
        return 0;
      case Kind::kAxis:
        return (i / inner) % axis_dim;
      case Kind::kBlocked: {
        const int64_t r = i % inner;
        const int64_t a = (i / inner) % axis_dim;
        const int64_t o = i / inner / axis_dim;
        return (o * scale_axis + a / block) * inner + r;
      }
    }
    return 0;
  }
};

Result<ScaleLayout> scale_layout(const Dims& x, const Dims& scale, int64_t axis, int64_t block_size,
                                 const char* scale_name) {
  ScaleLayout l;
  KILN_ASSIGN_OR_RETURN(int64_t n, checked_numel(scale));
  if (block_size < 0) return invalid_argument("block_size must be positive, got {}", block_size);
  if (n == 1) return l;
  const auto rank = static_cast<int64_t>(x.size());
  auto ax = normalize_axis(axis, rank);
  if (!ax.is_ok()) {
    return invalid_argument("axis {} is out of range for x of shape {}", axis, dims_to_string(x));
  }
  const auto a = static_cast<size_t>(*ax);
  l.axis_dim = x[a];
  for (size_t d = a + 1; d < x.size(); ++d) l.inner *= x[d];
  if (block_size == 0) {
    if (scale.size() != 1 || scale[0] != x[a]) {
      return invalid_argument(
          "{} of shape {} must be a scalar or 1-D with x's {} elements along axis {} (x is {}); blocked "
          "quantization needs block_size",
          scale_name, dims_to_string(scale), x[a], *ax, dims_to_string(x));
    }
    l.kind = ScaleLayout::Kind::kAxis;
    return l;
  }
  const int64_t blocks = x[a] / block_size + (x[a] % block_size != 0 ? 1 : 0);
  bool fits = scale.size() == x.size() && scale[a] == blocks;
  for (size_t d = 0; fits && d < x.size(); ++d) fits = d == a || scale[d] == x[d];
  if (!fits) {
    Dims want = x;
    if (!want.empty()) want[a] = blocks;
    return invalid_argument("{} of shape {} does not fit x of shape {} in blocks of {} along axis {}: expected {}",
                            scale_name, dims_to_string(scale), dims_to_string(x), block_size, *ax,
                            dims_to_string(want));
  }
  l.kind = ScaleLayout::Kind::kBlocked;
  l.scale_axis = scale[a];
  l.block = block_size;
  return l;
}

Status check_zero_point_shape(const Tensor& zp, const Tensor& scale, const char* zp_name, const char* scale_name) {
  if (zp.dims() == scale.dims() || (zp.numel() == 1 && scale.numel() == 1)) return Status::ok();
  return invalid_argument("{} has shape {} but {} has shape {}; they must match", zp_name, dims_to_string(zp.dims()),
                          scale_name, dims_to_string(scale.dims()));
}

// ---- QuantizeLinear -------------------------------------------------------------

// The type numpy divides x by the scale in (the reference's `x / y_scale`).
DataType division_type(DataType x, DataType scale) {
  if (x == DataType::kInt32 || scale == DataType::kInt32) return DataType::kFloat64;
  if (x == scale) return x;
  return DataType::kFloat32;
}

Result<Tensor> quantize(const KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  const int64_t opset = ctx.opset();
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* scale, ctx.tensor_input(1));
  const Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const DataType xt = x->dtype();
  if (!(xt == DataType::kFloat32 || xt == DataType::kInt32 || (opset >= 19 && is_float_scale_type(xt)))) {
    return unimplemented("x type {} is not supported at opset {}", data_type_name(xt), opset);
  }
  KILN_RETURN_IF_ERROR(check_scale_type(scale->dtype(), opset, /*allow_int32=*/true, "y_scale"));

  DataType to = DataType::kUInt8;
  std::optional<DataType> output_dtype;
  if (opset >= 21) {
    KILN_ASSIGN_OR_RETURN(output_dtype, dtype_attr(node, "output_dtype"));
    if (output_dtype) to = *output_dtype;
  }
  if (zp != nullptr) {
    if (output_dtype && *output_dtype != zp->dtype()) {
      return invalid_argument("output_dtype {} differs from y_zero_point's type {}", data_type_name(*output_dtype),
                              data_type_name(zp->dtype()));
    }
    to = zp->dtype();
  }
  KILN_RETURN_IF_ERROR(check_quant_type(to, opset, "output"));

  const int64_t axis = opset >= 13 ? node.attr_int("axis", 1) : 1;
  const int64_t block_size = opset >= 21 ? node.attr_int("block_size", 0) : 0;
  KILN_ASSIGN_OR_RETURN(ScaleLayout layout, scale_layout(x->dims(), scale->dims(), axis, block_size, "y_scale"));
  if (zp != nullptr) KILN_RETURN_IF_ERROR(check_zero_point_shape(*zp, *scale, "y_zero_point", "y_scale"));

  DataType precision = division_type(xt, scale->dtype());
  if (opset >= 23) {
    KILN_ASSIGN_OR_RETURN(std::optional<DataType> p, dtype_attr(node, "precision"));
    if (p) {
      if (!is_float_scale_type(*p) && *p != DataType::kFloat64) {
        return invalid_argument("precision must be a floating type, got {}", data_type_name(*p));
      }
      precision = *p;
    }
  }
  const bool saturate = opset < 19 || node.attr_int("saturate", 1) != 0;

  KILN_ASSIGN_OR_RETURN(Tensor xv, quant_values(*x));
  KILN_ASSIGN_OR_RETURN(Tensor sv, quant_values(*scale));
  Tensor zv;
  if (zp != nullptr) {
    KILN_ASSIGN_OR_RETURN(zv, quant_values(*zp));
  }
  const int64_t n = x->numel();
  std::vector<double> q(static_cast<size_t>(n));
  std::vector<double> zps(zp != nullptr ? static_cast<size_t>(n) : 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = layout.index(i);
    const double num = round_to_precision(xv.data<double>()[i], precision);
    const double den = round_to_precision(sv.data<double>()[s], precision);
    q[static_cast<size_t>(i)] = round_to_precision(num / den, precision);
    if (zp != nullptr) zps[static_cast<size_t>(i)] = zv.data<double>()[s];
  }
  return quantize_values(q, zps, to, saturate, x->dims());
}

Status quantize_kernel(KernelContext& ctx) {
  auto y = quantize(ctx);
  if (!y.is_ok()) return ctx.error(y.status());
  ctx.set_output(0, std::move(y).value());
  return Status::ok();
}

Status quantize_infer(InferContext& ctx) {
  DataType to = DataType::kUInt8;
  if (ctx.opset() >= 21) {
    KILN_ASSIGN_OR_RETURN(std::optional<DataType> od, dtype_attr(ctx.node(), "output_dtype"));
    if (od) to = *od;
  }
  if (ctx.has_input(2)) {
    const ir::ValueType& zt = ctx.input_type(2);
    if (zt.is_tensor() && zt.dtype != DataType::kUndefined) to = zt.dtype;
  }
  const ir::ValueType& xt = ctx.input_type(0);
  ctx.set_output_type(0, ir::ValueType::tensor(to, xt.is_tensor() ? xt.shape : Shape()));
  return Status::ok();
}

// ---- DequantizeLinear ----------------------------------------------------------

Result<DataType> dequantize_output_type(const ir::Node& node, DataType scale_type) {
  std::optional<DataType> od;
  if (node.opset() >= 23) {
    KILN_ASSIGN_OR_RETURN(od, dtype_attr(node, "output_dtype"));
  }
  if (!od) {
    if (scale_type == DataType::kFloat8E8M0) {
      return invalid_argument("output_dtype is required when x_scale is float8e8m0");
    }
    return scale_type;
  }
  if (!is_float_scale_type(*od)) {
    return invalid_argument("output_dtype must be float, float16 or bfloat16, got {}", data_type_name(*od));
  }
  return *od;
}

Result<Tensor> dequantize(const KernelContext& ctx) {
  const ir::Node& node = ctx.node();
  const int64_t opset = ctx.opset();
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* scale, ctx.tensor_input(1));
  const Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const DataType xt = x->dtype();
  if (xt != DataType::kInt32) KILN_RETURN_IF_ERROR(check_quant_type(xt, opset, "x"));
  KILN_RETURN_IF_ERROR(check_scale_type(scale->dtype(), opset, /*allow_int32=*/false, "x_scale"));
  if (zp != nullptr && zp->dtype() != xt) {
    return invalid_argument("x_zero_point is {} but x is {}", data_type_name(zp->dtype()), data_type_name(xt));
  }
  KILN_ASSIGN_OR_RETURN(DataType to, dequantize_output_type(node, scale->dtype()));
  const int64_t axis = opset >= 13 ? node.attr_int("axis", 1) : 1;
  const int64_t block_size = opset >= 21 ? node.attr_int("block_size", 0) : 0;
  KILN_ASSIGN_OR_RETURN(ScaleLayout layout, scale_layout(x->dims(), scale->dims(), axis, block_size, "x_scale"));
  if (zp != nullptr) KILN_RETURN_IF_ERROR(check_zero_point_shape(*zp, *scale, "x_zero_point", "x_scale"));

  KILN_ASSIGN_OR_RETURN(Tensor xv, quant_values(*x));
  KILN_ASSIGN_OR_RETURN(Tensor sv, quant_values(*scale));
  Tensor zv;
  if (zp != nullptr) {
    KILN_ASSIGN_OR_RETURN(zv, quant_values(*zp));
  }
  // numpy: float32(x) - int32 zero point promotes to float64; every other case stays float32.
  const bool wide = xt == DataType::kInt32 && zp != nullptr;
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::allocate(DataType::kFloat64, x->dims()));
  for (int64_t i = 0; i < x->numel(); ++i) {
    const int64_t s = layout.index(i);
    double d = static_cast<float>(xv.data<double>()[i]);
    if (zp != nullptr && zv.data<double>()[s] != 0) {
      d -= zv.data<double>()[s];
      if (!wide) d = static_cast<float>(d);
    }
    double r = d * sv.data<double>()[s];
    if (!wide) r = static_cast<float>(r);
    y.data<double>()[i] = r;
  }
  return cast_tensor(y, to);
}

Status dequantize_kernel(KernelContext& ctx) {
  auto y = dequantize(ctx);
  if (!y.is_ok()) return ctx.error(y.status());
  ctx.set_output(0, std::move(y).value());
  return Status::ok();
}

Status dequantize_infer(InferContext& ctx) {
  const ir::ValueType& xt = ctx.input_type(0);
  const ir::ValueType& st = ctx.input_type(1);
  DataType to = DataType::kUndefined;
  if (st.is_tensor() && st.dtype != DataType::kUndefined) {
    auto t = dequantize_output_type(ctx.node(), st.dtype);
    if (t.is_ok()) to = *t;
  } else if (ctx.opset() >= 23) {
    KILN_ASSIGN_OR_RETURN(std::optional<DataType> od, dtype_attr(ctx.node(), "output_dtype"));
    if (od) to = *od;
  }
  ctx.set_output_type(0, ir::ValueType::tensor(to, xt.is_tensor() ? xt.shape : Shape()));
  return Status::ok();
}

}  // namespace

void register_quantization(Registry& r) {
  r.add({.name = "QuantizeLinear",
         .domain = "",
         .since_version = 10,
         .min_inputs = 2,
         .max_inputs = 3,
         .kernel = quantize_kernel,
         .infer = quantize_infer});
  r.add({.name = "DequantizeLinear",
         .domain = "",
         .since_version = 10,
         .min_inputs = 2,
         .max_inputs = 3,
         .kernel = dequantize_kernel,
         .infer = dequantize_infer});
  register_qlinear_ops(r);
}

}  // namespace kiln::ops
