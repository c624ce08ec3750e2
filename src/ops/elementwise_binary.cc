// Elementwise binary arithmetic: Add, Sub, Mul, Div, Mod, Pow (numpy
// broadcasting). Part of register_elementwise.
//
// Integer arithmetic wraps modulo 2^bits (computed in uint64 so signed
// overflow is never undefined behaviour). Integer Div truncates toward zero
// as in C; integer division or modulo by zero is an error.
#include <cmath>
#include <limits>

#include "ops/elementwise_util.h"

namespace kiln::ops::ew {
namespace {

template <class T>
constexpr bool kIsInt = std::is_integral_v<T> && !std::is_same_v<T, bool>;

template <class T>
T wrap(uint64_t v) {
  return static_cast<T>(v);  // modular since C++20
}

struct AddOp {
  template <class V>
  static V apply(V a, V b) {
    if constexpr (kIsInt<V>) return wrap<V>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
    else return a + b;
  }
};
struct SubOp {
  template <class V>
  static V apply(V a, V b) {
    if constexpr (kIsInt<V>) return wrap<V>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
    else return a - b;
  }
};
struct MulOp {
  template <class V>
  static V apply(V a, V b) {
    if constexpr (kIsInt<V>) return wrap<V>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
    else return a * b;
  }
};
struct DivOp {
  // Precondition for integers: b != 0 (checked before the loop).
  template <class V>
  static V apply(V a, V b) {
    if constexpr (kIsInt<V> && std::is_signed_v<V>) {
      if (b == -1) return wrap<V>(uint64_t{0} - static_cast<uint64_t>(a));  // INT_MIN / -1 wraps
      return static_cast<V>(a / b);
    } else {
      return static_cast<V>(a / b);
    }
  }
};

template <class T>
bool has_zero(const Tensor& t) {
  const T* p = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (p[i] == T(0)) return true;
  }
  return false;
}

template <class Op>
Status arithmetic_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* a, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* b, ctx.tensor_input(1));
  KILN_RETURN_IF_ERROR(check_same_type(ctx, *a, *b));
  KILN_RETURN_IF_ERROR(check_legacy_broadcast(ctx, *a, *b));
  return dispatch<kNumericTypes>(a->dtype(), ctx.node().op_type(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (std::is_same_v<Op, DivOp> && kIsInt<T>) {
      KILN_CHECK_ARG(!has_zero<T>(*b), "{}: integer division by zero", ctx.node().describe());
    }
    return binary_kernel<T, T, T>(ctx, *a, *b, [](auto x, auto y) { return Op::apply(x, y); });
  });
}

// ---- Mod ------------------------------------------------------------------------

// fmod=0: the result takes the divisor's sign (Python's %, A - floor(A/B) * B).
template <class V>
V floor_mod(V a, V b) {
  if constexpr (kIsInt<V>) {
    if constexpr (std::is_signed_v<V>) {
      if (b == -1) return 0;  // avoids INT_MIN % -1
      V r = static_cast<V>(a % b);
      if (r != 0 && ((r < 0) != (b < 0))) r = static_cast<V>(r + b);
      return r;
    } else {
      return static_cast<V>(a % b);
    }
  } else {
    V r = std::fmod(a, b);  // NaN for an infinite a, a zero b or a NaN
    if (r != 0) {
      if ((r < 0) != (b < 0)) r += b;  // a finite, b infinite: gives b when the signs differ
    } else {
      r = std::copysign(V(0), b);
    }
    return r;
  }
}

// fmod=1: the result takes the dividend's sign (C's fmod, A - trunc(A/B) * B).
template <class V>
V trunc_mod(V a, V b) {
  if constexpr (kIsInt<V>) {
    if constexpr (std::is_signed_v<V>) {
      if (b == -1) return 0;
    }
    return static_cast<V>(a % b);
  } else {
    return std::fmod(a, b);
  }
}

Status mod_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* a, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* b, ctx.tensor_input(1));
  KILN_RETURN_IF_ERROR(check_same_type(ctx, *a, *b));
  int64_t fmod = ctx.node().attr_int("fmod", 0);
  KILN_CHECK_ARG(fmod == 0 || fmod == 1, "{}: attribute fmod must be 0 or 1, got {}", ctx.node().describe(), fmod);
  return dispatch<kNumericTypes>(a->dtype(), "Mod", [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (kIsInt<T>) {
      KILN_CHECK_ARG(!has_zero<T>(*b), "{}: integer modulo by zero", ctx.node().describe());
    }
    if (fmod == 1) return binary_kernel<T, T, T>(ctx, *a, *b, [](auto x, auto y) { return trunc_mod(x, y); });
    return binary_kernel<T, T, T>(ctx, *a, *b, [](auto x, auto y) { return floor_mod(x, y); });
  });
}

// ---- Pow ------------------------------------------------------------------------

// x^e for an integer x and an integral e >= 0, wrapping like repeated Mul.
template <class V>
V int_pow(V x, double e) {
  // Any e >= 64 gives the same result as 64 or 65 of matching parity: |x| >= 2
  // has wrapped to 0 by then, and 0, 1 and -1 depend on parity only.
  uint64_t n = e >= 64 ? (std::fmod(e, 2.0) == 0 ? 64 : 65) : static_cast<uint64_t>(e);
  uint64_t base = static_cast<uint64_t>(x);
  uint64_t result = 1;
  while (n != 0) {
    if (n & 1u) result *= base;
    base *= base;
    n >>= 1;
  }
  return wrap<V>(result);
}

// Float to integer as in Cast: truncates; NaN gives 0, out of range saturates.
template <class V>
V saturate_to_int(double v) {
  if (std::isnan(v)) return 0;
  if (v <= static_cast<double>(std::numeric_limits<V>::lowest())) return std::numeric_limits<V>::lowest();
  if (v >= static_cast<double>(std::numeric_limits<V>::max())) return std::numeric_limits<V>::max();
  return static_cast<V>(v);
}

// The output has the base's type. The exponent is read as double (exact for
// every float type and for integers up to 2^53). Float bases compute in double
// and round once; integer bases with a non-negative integral exponent compute
// exactly (wrapping), otherwise in double truncated toward zero.
Status pow_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* a, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* b, ctx.tensor_input(1));
  KILN_RETURN_IF_ERROR(check_legacy_broadcast(ctx, *a, *b));
  if (b->dtype() == DataType::kBool || b->dtype() == DataType::kString) {
    return unimplemented("{}: exponent element type {} is not supported", ctx.node().describe(),
                         data_type_name(b->dtype()));
  }
  auto e = to_float64(*b);
  if (!e.is_ok()) return ctx.error(e.status());
  const Tensor& exponent = e.value();
  return dispatch<kNumericTypes>(a->dtype(), "Pow", [&](auto tag) -> Status {
    using T = decltype(tag);
    using V = compute_type_t<T>;
    if constexpr (kIsInt<T>) {
      return binary_kernel<T, double, T>(ctx, *a, exponent, [](V x, double y) -> V {
        if (y >= 0 && std::trunc(y) == y) return int_pow<V>(x, y);
        return saturate_to_int<V>(std::pow(static_cast<double>(x), y));
      });
    } else {
      return binary_kernel<T, double, T>(ctx, *a, exponent, [](V x, double y) -> V {
        if (y == 2) return x * x;  // exact in V, the same as rounding the double result
        return static_cast<V>(std::pow(static_cast<double>(x), y));
      });
    }
  });
}

Status binary_infer(InferContext& ctx) { return infer_broadcast(ctx, DataType::kUndefined); }

}  // namespace

void register_binary_arithmetic(Registry& r) {
  auto add = [&](std::string_view name, int since, KernelFn kernel) {
    r.add({.name = name, .domain = "", .since_version = since, .min_inputs = 2, .max_inputs = 2,
           .kernel = kernel, .infer = binary_infer});
  };
  add("Add", 1, arithmetic_kernel<AddOp>);
  add("Sub", 1, arithmetic_kernel<SubOp>);
  add("Mul", 1, arithmetic_kernel<MulOp>);
  add("Div", 1, arithmetic_kernel<DivOp>);
  add("Mod", 10, mod_kernel);
  add("Pow", 1, pow_kernel);
}

}  // namespace kiln::ops::ew
