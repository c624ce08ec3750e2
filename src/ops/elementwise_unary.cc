// Elementwise unary math: Neg, Abs, Sign, Sqrt, Exp, Log, Reciprocal, Floor,
// Ceil, Round, trigonometric and hyperbolic functions, Erf, IsNaN, IsInf.
// Part of register_elementwise.
//
// Float math follows IEEE/C semantics (Sqrt(-1) and Log(-1) are NaN, Log(0)
// is -inf); fp16 and bf16 compute in float. Integer Neg/Abs wrap (-INT_MIN is
// INT_MIN).
#include <cmath>

#include "ops/elementwise_util.h"

namespace kiln::ops::ew {
namespace {

template <class V>
constexpr bool kIsInt = std::is_integral_v<V> && !std::is_same_v<V, bool>;

template <class V>
V wrap_negate(V x) {
  return static_cast<V>(uint64_t{0} - static_cast<uint64_t>(x));
}

// Each op: a struct with `static V apply(V)` over compute types.
#define KILN_FLOAT_UNARY(Name, expr)    \
  struct Name {                         \
    template <class V>                  \
    static V apply(V x) {               \
      return static_cast<V>(expr);      \
    }                                   \
  };

KILN_FLOAT_UNARY(SqrtOp, std::sqrt(x))
KILN_FLOAT_UNARY(ExpOp, std::exp(x))
KILN_FLOAT_UNARY(LogOp, std::log(x))
KILN_FLOAT_UNARY(ReciprocalOp, V(1) / x)
KILN_FLOAT_UNARY(FloorOp, std::floor(x))
KILN_FLOAT_UNARY(CeilOp, std::ceil(x))
// Half to even, as numpy's rint (the default rounding mode is to nearest even).
KILN_FLOAT_UNARY(RoundOp, std::nearbyint(x))
KILN_FLOAT_UNARY(SinOp, std::sin(x))
KILN_FLOAT_UNARY(CosOp, std::cos(x))
KILN_FLOAT_UNARY(TanOp, std::tan(x))
KILN_FLOAT_UNARY(AsinOp, std::asin(x))
KILN_FLOAT_UNARY(AcosOp, std::acos(x))
KILN_FLOAT_UNARY(AtanOp, std::atan(x))
KILN_FLOAT_UNARY(SinhOp, std::sinh(x))
KILN_FLOAT_UNARY(CoshOp, std::cosh(x))
KILN_FLOAT_UNARY(AsinhOp, std::asinh(x))
KILN_FLOAT_UNARY(AcoshOp, std::acosh(x))
KILN_FLOAT_UNARY(AtanhOp, std::atanh(x))
KILN_FLOAT_UNARY(ErfOp, std::erf(x))

#undef KILN_FLOAT_UNARY

struct NegOp {
  template <class V>
  static V apply(V x) {
    if constexpr (kIsInt<V>) return wrap_negate(x);
    else return -x;
  }
};
struct AbsOp {
  template <class V>
  static V apply(V x) {
    if constexpr (kIsInt<V> && std::is_signed_v<V>) return x < 0 ? wrap_negate(x) : x;
    else if constexpr (kIsInt<V>) return x;
    else return std::abs(x);
  }
};
struct SignOp {
  template <class V>
  static V apply(V x) {
    if constexpr (std::is_unsigned_v<V>) {
      return static_cast<V>(x != 0);
    } else {
      if constexpr (std::is_floating_point_v<V>) {
        if (std::isnan(x)) return x;
      }
      return static_cast<V>((x > V(0)) - (x < V(0)));
    }
  }
};

template <uint64_t Mask, class Op>
Status unary_op_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  return dispatch<Mask>(x->dtype(), ctx.node().op_type(), [&](auto tag) -> Status {
    using T = decltype(tag);
    return unary_kernel<T, T>(ctx, *x, [](auto v) { return Op::apply(v); });
  });
}

Status isnan_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  return dispatch<kFloatTypes>(x->dtype(), "IsNaN", [&](auto tag) -> Status {
    using T = decltype(tag);
    return unary_kernel<T, bool>(ctx, *x, [](auto v) { return std::isnan(v); });
  });
}

Status isinf_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  const bool negative = ctx.node().attr_int("detect_negative", 1) != 0;
  const bool positive = ctx.node().attr_int("detect_positive", 1) != 0;
  return dispatch<kFloatTypes>(x->dtype(), "IsInf", [&](auto tag) -> Status {
    using T = decltype(tag);
    return unary_kernel<T, bool>(ctx, *x, [&](auto v) {
      return std::isinf(v) && (v > 0 ? positive : negative);
    });
  });
}

Status same_infer(InferContext& ctx) { return infer_same_as_input(ctx); }

Status bool_infer(InferContext& ctx) {
  const ir::ValueType& t = ctx.input_type(0);
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kBool, t.is_tensor() ? t.shape : Shape()));
  return Status::ok();
}

}  // namespace

void register_unary_math(Registry& r) {
  auto add = [&](std::string_view name, int since, KernelFn kernel, InferFn infer = same_infer) {
    r.add({.name = name, .domain = "", .since_version = since, .min_inputs = 1, .max_inputs = 1,
           .kernel = kernel, .infer = infer});
  };
  add("Neg", 1, unary_op_kernel<kSignedNumericTypes, NegOp>);
  add("Abs", 1, unary_op_kernel<kNumericTypes, AbsOp>);
  add("Sign", 9, unary_op_kernel<kNumericTypes, SignOp>);
  add("Sqrt", 1, unary_op_kernel<kFloatTypes, SqrtOp>);
  add("Exp", 1, unary_op_kernel<kFloatTypes, ExpOp>);
  add("Log", 1, unary_op_kernel<kFloatTypes, LogOp>);
  add("Reciprocal", 1, unary_op_kernel<kFloatTypes, ReciprocalOp>);
  add("Floor", 1, unary_op_kernel<kFloatTypes, FloorOp>);
  add("Ceil", 1, unary_op_kernel<kFloatTypes, CeilOp>);
  add("Round", 11, unary_op_kernel<kFloatTypes, RoundOp>);
  add("Sin", 7, unary_op_kernel<kFloatTypes, SinOp>);
  add("Cos", 7, unary_op_kernel<kFloatTypes, CosOp>);
  add("Tan", 7, unary_op_kernel<kFloatTypes, TanOp>);
  add("Asin", 7, unary_op_kernel<kFloatTypes, AsinOp>);
  add("Acos", 7, unary_op_kernel<kFloatTypes, AcosOp>);
  add("Atan", 7, unary_op_kernel<kFloatTypes, AtanOp>);
  add("Sinh", 9, unary_op_kernel<kFloatTypes, SinhOp>);
  add("Cosh", 9, unary_op_kernel<kFloatTypes, CoshOp>);
  add("Asinh", 9, unary_op_kernel<kFloatTypes, AsinhOp>);
  add("Acosh", 9, unary_op_kernel<kFloatTypes, AcoshOp>);
  add("Atanh", 9, unary_op_kernel<kFloatTypes, AtanhOp>);
  add("Erf", 9, unary_op_kernel<kFloatTypes, ErfOp>);
  add("IsNaN", 9, isnan_kernel, bool_infer);
  add("IsInf", 10, isinf_kernel, bool_infer);
}

}  // namespace kiln::ops::ew
