// Part of the loss family (register_loss): Det, Shrink, CumProd, BitCast.
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "ops/loss_internal.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

Status same_as_input_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::ok();
}

// ---- Det ---------------------------------------------------------------------

// Determinant of the m x m row-major matrix `a` (overwritten) by Gaussian
// elimination with partial pivoting. The empty matrix has determinant 1.
double determinant(std::vector<double>& a, int64_t m) {
  double det = 1;
  for (int64_t col = 0; col < m; ++col) {
    int64_t pivot = col;
    for (int64_t r = col + 1; r < m; ++r) {
      if (std::abs(a[static_cast<size_t>(r * m + col)]) > std::abs(a[static_cast<size_t>(pivot * m + col)])) pivot = r;
    }
    double p = a[static_cast<size_t>(pivot * m + col)];
    if (p == 0) return 0;
    if (pivot != col) {
      for (int64_t k = 0; k < m; ++k) {
        std::swap(a[static_cast<size_t>(pivot * m + k)], a[static_cast<size_t>(col * m + k)]);
      }
      det = -det;
    }
    det *= p;
    for (int64_t r = col + 1; r < m; ++r) {
      double f = a[static_cast<size_t>(r * m + col)] / p;
      for (int64_t k = col; k < m; ++k) a[static_cast<size_t>(r * m + k)] -= f * a[static_cast<size_t>(col * m + k)];
    }
  }
  return det;
}

Status det_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  if (!is_floating(x->dtype()) || element_size(x->dtype()) < 2) {
    return ctx.error(unimplemented("Det: element type {} is not supported", data_type_name(x->dtype())));
  }
  int64_t r = x->rank();
  if (r < 2 || x->dim(r - 1) != x->dim(r - 2)) {
    return ctx.error(invalid_argument("input must have shape [*, M, M], got {}", x->debug_string()));
  }
  int64_t m = x->dim(r - 1);
  Dims batch(x->dims().begin(), x->dims().end() - 2);
  auto xd = to_float64(*x);
  if (!xd.is_ok()) return ctx.error(xd.status());
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(DataType::kFloat64, batch));
  const double* src = xd->data<double>();
  for (int64_t b = 0; b < out.numel(); ++b) {
    std::vector<double> a(src + b * m * m, src + (b + 1) * m * m);
    out.data<double>()[b] = determinant(a, m);
  }
  auto cast = cast_tensor(out, x->dtype());
  if (!cast.is_ok()) return ctx.error(cast.status());
  ctx.set_output(0, std::move(cast).value());
  return Status::ok();
}

Status det_infer(InferContext& ctx) {
  const ir::ValueType& x = ctx.input_type(0);
  if (!x.is_tensor()) return Status::ok();
  Shape out;
  if (x.shape.rank_known()) {
    if (x.shape.rank() < 2) return invalid_argument("Det input must have rank >= 2, got {}", x.to_string());
    std::vector<Dim> dims(x.shape.dims().begin(), x.shape.dims().end() - 2);
    out = Shape(dims);
  }
  ctx.set_output_type(0, ir::ValueType::tensor(x.dtype, out));
  return Status::ok();
}

// ---- Shrink ------------------------------------------------------------------

// double -> integer T truncating toward zero and wrapping modulo 2^bits like
// numpy's astype (e.g. -1.0 -> 255 for uint8); NaN and values beyond 64 bits give 0.
template <class T>
T truncate_wrapping(double y) {
  constexpr double kTwo63 = 9223372036854775808.0;
  if (y >= -kTwo63 && y < kTwo63) return static_cast<T>(static_cast<int64_t>(y));
  if (y >= kTwo63 && y < 2 * kTwo63) return static_cast<T>(static_cast<uint64_t>(y));
  return T(0);
}

// y = x + bias where x < -lambd, x - bias where x > lambd, else 0. Floats
// compute in their own precision (fp16/bf16 in float), integers in double and
// convert back truncating (and wrapping), as ONNX's reference does.
Status shrink_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  double lambd = ctx.node().attr_float("lambd", 0.5f);
  double bias = ctx.node().attr_float("bias", 0.0f);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, x->dtype(), x->dims()));
  return ctx.error(visit_numeric(x->dtype(), "Shrink", [&](auto tag) -> Status {
    using T = decltype(tag);
    using C = std::conditional_t<std::is_integral_v<T>, double, compute_type_t<T>>;
    const T* src = x->data<T>();
    T* dst = out->data<T>();
    auto lo = static_cast<C>(-lambd);
    auto hi = static_cast<C>(lambd);
    auto b = static_cast<C>(bias);
    for (int64_t i = 0; i < x->numel(); ++i) {
      auto v = static_cast<C>(src[i]);
      C y = v < lo ? static_cast<C>(v + b) : v > hi ? static_cast<C>(v - b) : C(0);
      if constexpr (std::is_integral_v<T>) {
        dst[i] = truncate_wrapping<T>(y);
      } else {
        dst[i] = static_cast<T>(y);
      }
    }
    return Status::ok();
  }));
}

// ---- CumProd -----------------------------------------------------------------

// a * b with two's complement wrap-around for integers (no signed overflow).
template <class C>
C wrapping_mul(C a, C b) {
  if constexpr (std::is_integral_v<C>) {
    // uint64_t arithmetic is modular and wide enough for every C; narrowing back is modular (C++20).
    return static_cast<C>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
  } else {
    return a * b;
  }
}

Status cumprod_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* axis_t, ctx.tensor_input(1));
  if (axis_t->numel() != 1 || axis_t->rank() > 1) {
    return ctx.error(invalid_argument("axis must be a scalar, got {}", axis_t->debug_string()));
  }
  auto axis_v = to_int64_scalar(*axis_t);
  if (!axis_v.is_ok()) return ctx.error(axis_v.status().with_context("axis"));
  auto axis_r = normalize_axis(*axis_v, x->rank());
  if (!axis_r.is_ok()) return ctx.error(axis_r.status());
  auto axis = static_cast<size_t>(*axis_r);
  bool exclusive = ctx.node().attr_int("exclusive", 0) != 0;
  bool reverse = ctx.node().attr_int("reverse", 0) != 0;
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, x->dtype(), x->dims()));
  int64_t dim = x->dim(static_cast<int64_t>(axis));
  int64_t outer = 1;
  int64_t inner = 1;
  for (size_t i = 0; i < axis; ++i) outer *= x->dims()[i];
  for (size_t i = axis + 1; i < x->dims().size(); ++i) inner *= x->dims()[i];
  return ctx.error(visit_numeric(x->dtype(), "CumProd", [&](auto tag) -> Status {
    using T = decltype(tag);
    using C = compute_type_t<T>;
    const T* src = x->data<T>();
    T* dst = out->data<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t in = 0; in < inner; ++in) {
        C acc = C(1);
        for (int64_t s = 0; s < dim; ++s) {
          int64_t i = reverse ? dim - 1 - s : s;
          int64_t at = (o * dim + i) * inner + in;
          auto v = static_cast<C>(src[at]);
          if (!exclusive) acc = wrapping_mul(acc, v);
          dst[at] = static_cast<T>(acc);
          if (exclusive) acc = wrapping_mul(acc, v);
        }
      }
    }
    return Status::ok();
  }));
}

// ---- BitCast -----------------------------------------------------------------

Result<DataType> bitcast_target(const ir::Node& node) {
  if (!node.has_attr("to")) return invalid_argument("attribute 'to' is required");
  int64_t to = node.attr_int("to", 0);
  auto t = data_type_from_int(to);
  if (!t) return invalid_argument("attribute 'to' = {} is not a data type", to);
  if (*t == DataType::kString) return invalid_argument("cannot bitcast to string");
  return *t;
}

bool is_sub_byte(DataType t) { return bits_per_element(t) < 8; }

// Reinterprets the bits of every element (little endian, as ONNX asks).
// Sub-byte types are stored one element per byte: their low `bits` bits are
// the pattern, and int4/int2 are kept sign-extended. Kiln's bool is a C++
// bool, so a byte pattern other than 0/1 becomes true.
Status bitcast_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  auto to = bitcast_target(ctx.node());
  if (!to.is_ok()) return ctx.error(to.status());
  DataType from = x->dtype();
  if (from == DataType::kString) return ctx.error(invalid_argument("cannot bitcast a string tensor"));
  int bits = bits_per_element(from);
  if (bits != bits_per_element(*to)) {
    return ctx.error(invalid_argument("cannot bitcast {} ({} bits) to {} ({} bits): the widths differ",
                                      data_type_name(from), bits, data_type_name(*to), bits_per_element(*to)));
  }
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, *to, x->dims()));
  if (x->numel() == 0) return Status::ok();
  if (is_sub_byte(from)) {
    const auto* src = static_cast<const uint8_t*>(x->raw_data());
    auto* dst = static_cast<uint8_t*>(out->raw_data());
    auto mask = static_cast<uint8_t>((1u << bits) - 1);
    auto sign = static_cast<uint8_t>(1u << (bits - 1));
    bool signed_to = *to == DataType::kInt4 || *to == DataType::kInt2;
    for (int64_t i = 0; i < x->numel(); ++i) {
      auto v = static_cast<uint8_t>(src[i] & mask);
      if (signed_to && (v & sign) != 0) v = static_cast<uint8_t>(v | ~mask);
      dst[i] = v;
    }
  } else if (*to == DataType::kBool) {
    const auto* src = static_cast<const uint8_t*>(x->raw_data());
    for (int64_t i = 0; i < x->numel(); ++i) out->data<bool>()[i] = src[i] != 0;
  } else {
    std::memcpy(out->raw_data(), x->raw_data(), x->nbytes());
  }
  return Status::ok();
}

Status bitcast_infer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DataType to, bitcast_target(ctx.node()));
  const ir::ValueType& x = ctx.input_type(0);
  if (x.is_tensor() && x.dtype != DataType::kUndefined && bits_per_element(x.dtype) != bits_per_element(to)) {
    return invalid_argument("cannot bitcast {} to {}: the widths differ", data_type_name(x.dtype),
                            data_type_name(to));
  }
  ctx.set_output_type(0, ir::ValueType::tensor(to, x.is_tensor() ? x.shape : Shape()));
  return Status::ok();
}

}  // namespace

void register_loss_math(Registry& r) {
  r.add({.name = "Det", .domain = "", .since_version = 11, .min_inputs = 1, .max_inputs = 1, .kernel = det_kernel,
         .infer = det_infer});
  r.add({.name = "Shrink", .domain = "", .since_version = 9, .min_inputs = 1, .max_inputs = 1,
         .kernel = shrink_kernel, .infer = same_as_input_infer});
  r.add({.name = "CumProd", .domain = "", .since_version = 26, .min_inputs = 2, .max_inputs = 2,
         .kernel = cumprod_kernel, .infer = same_as_input_infer});
  r.add({.name = "BitCast", .domain = "", .since_version = 26, .min_inputs = 1, .max_inputs = 1,
         .kernel = bitcast_kernel, .infer = bitcast_infer});
}

}  // namespace kiln::ops
