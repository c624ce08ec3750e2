// Comparison, logic and bit operations, and Where: Equal, Less, Greater,
// LessOrEqual, GreaterOrEqual, And, Or, Xor, Not, BitShift, BitwiseAnd,
// BitwiseOr, BitwiseXor, BitwiseNot, Where. Part of register_elementwise.
//
// Comparisons give bool tensors; NaN compares unequal to everything.
#include <array>
#include <string>
#include <utility>

#include "ops/elementwise_util.h"

namespace kiln::ops::ew {
namespace {

// Broadcasts N inputs, allocates output 0 and returns it with the plan.
template <size_t N>
Result<std::pair<Tensor*, BroadcastPlan>> prepare(KernelContext& ctx, const std::array<const Tensor*, N>& ins,
                                                  DataType out_type) {
  std::array<Dims, N> dims;
  for (size_t k = 0; k < N; ++k) dims[k] = ins[k]->dims();
  auto out_dims = broadcast_dims(std::span<const Dims>(dims));
  if (!out_dims.is_ok()) return ctx.error(out_dims.status());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, out_type, out_dims.value()));
  return std::make_pair(out, plan_broadcast(out_dims.value(), dims));
}

// ---- Comparisons ----------------------------------------------------------------

struct EqualOp {
  template <class V>
  static bool apply(const V& a, const V& b) { return a == b; }
};
struct LessOp {
  template <class V>
  static bool apply(const V& a, const V& b) { return a < b; }
};
struct GreaterOp {
  template <class V>
  static bool apply(const V& a, const V& b) { return a > b; }
};
struct LessOrEqualOp {
  template <class V>
  static bool apply(const V& a, const V& b) { return a <= b; }
};
struct GreaterOrEqualOp {
  template <class V>
  static bool apply(const V& a, const V& b) { return a >= b; }
};

// Equal also compares strings (opset >= 11).
template <class Op, bool kStrings>
Status compare_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* a, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* b, ctx.tensor_input(1));
  KILN_RETURN_IF_ERROR(check_same_type(ctx, *a, *b));
  KILN_RETURN_IF_ERROR(check_legacy_broadcast(ctx, *a, *b));
  if (kStrings && a->dtype() == DataType::kString) {
    KILN_ASSIGN_OR_RETURN(auto prep, prepare<2>(ctx, {a, b}, DataType::kBool));
    const std::string* pa = a->data<std::string>();
    const std::string* pb = b->data<std::string>();
    bool* po = prep.first->data<bool>();
    run_plan(prep.second, ctx.pool(), [&](int64_t o, int64_t n, const int64_t* off, const int64_t* st) {
      for (int64_t i = 0; i < n; ++i) po[o + i] = Op::apply(pa[off[0] + i * st[0]], pb[off[1] + i * st[1]]);
    });
    return Status::ok();
  }
  return dispatch<kNumericTypes | kBoolType>(a->dtype(), ctx.node().op_type(), [&](auto tag) -> Status {
    using T = decltype(tag);
    return binary_kernel<T, T, bool>(ctx, *a, *b, [](auto x, auto y) { return Op::apply(x, y); });
  });
}

// ---- Logic (bool) -----------------------------------------------------------------

struct AndOp {
  static bool apply(bool a, bool b) { return a && b; }
};
struct OrOp {
  static bool apply(bool a, bool b) { return a || b; }
};
struct XorOp {
  static bool apply(bool a, bool b) { return a != b; }
};

template <class Op>
Status logic_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* a, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* b, ctx.tensor_input(1));
  KILN_RETURN_IF_ERROR(check_same_type(ctx, *a, *b));
  KILN_RETURN_IF_ERROR(check_legacy_broadcast(ctx, *a, *b));
  return dispatch<kBoolType>(a->dtype(), ctx.node().op_type(), [&](auto) -> Status {
    return binary_kernel<bool, bool, bool>(ctx, *a, *b, [](bool x, bool y) { return Op::apply(x, y); });
  });
}

Status not_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  return dispatch<kBoolType>(x->dtype(), "Not", [&](auto) -> Status {
    return unary_kernel<bool, bool>(ctx, *x, [](bool v) { return !v; });
  });
}

// ---- Bit operations (integers) ----------------------------------------------------

struct BitAndOp {
  template <class V>
  static V apply(V a, V b) { return static_cast<V>(a & b); }
};
struct BitOrOp {
  template <class V>
  static V apply(V a, V b) { return static_cast<V>(a | b); }
};
struct BitXorOp {
  template <class V>
  static V apply(V a, V b) { return static_cast<V>(a ^ b); }
};

template <class Op>
Status bitwise_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* a, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* b, ctx.tensor_input(1));
  KILN_RETURN_IF_ERROR(check_same_type(ctx, *a, *b));
  return dispatch<kIntTypes>(a->dtype(), ctx.node().op_type(), [&](auto tag) -> Status {
    using T = decltype(tag);
    return binary_kernel<T, T, T>(ctx, *a, *b, [](T x, T y) { return Op::apply(x, y); });
  });
}

Status bitwise_not_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  return dispatch<kIntTypes>(x->dtype(), "BitwiseNot", [&](auto tag) -> Status {
    using T = decltype(tag);
    return unary_kernel<T, T>(ctx, *x, [](T v) { return static_cast<T>(~v); });
  });
}

// Shift amounts that are negative or >= the bit width give what sign
// extension alone gives: -1 for a right shift of a negative X, else 0 (the
// opset-28 definition; earlier opsets left them unspecified).
template <class V>
V shift(V x, V y, bool left) {
  constexpr int kBits = static_cast<int>(sizeof(V) * 8);
  bool in_range;
  if constexpr (std::is_signed_v<V>) {
    in_range = y >= 0 && y < kBits;
  } else {
    in_range = y < static_cast<V>(kBits);
  }
  if (left) return in_range ? static_cast<V>(static_cast<uint64_t>(x) << y) : V(0);
  if (in_range) return static_cast<V>(x >> y);  // arithmetic for signed V
  if constexpr (std::is_signed_v<V>) {
    if (x < 0) return V(-1);
  }
  return V(0);
}

Status bit_shift_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* a, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* b, ctx.tensor_input(1));
  KILN_RETURN_IF_ERROR(check_same_type(ctx, *a, *b));
  std::string direction = ctx.node().attr_string("direction");
  KILN_CHECK_ARG(direction == "LEFT" || direction == "RIGHT",
                 "{}: attribute direction must be 'LEFT' or 'RIGHT', got '{}'", ctx.node().describe(), direction);
  const bool left = direction == "LEFT";
  return dispatch<kIntTypes>(a->dtype(), "BitShift", [&](auto tag) -> Status {
    using T = decltype(tag);
    return binary_kernel<T, T, T>(ctx, *a, *b, [left](T x, T y) { return shift(x, y, left); });
  });
}

// ---- Where --------------------------------------------------------------------------

// An opaque element of `Size` bytes, copied as a whole.
template <size_t Size>
struct Bytes {
  unsigned char b[Size];
};

template <class E>
void where_loop(KernelContext& ctx, const BroadcastPlan& plan, const bool* c, const E* x, const E* y, E* out) {
  run_plan(plan, ctx.pool(), [&](int64_t o, int64_t n, const int64_t* off, const int64_t* st) {
    for (int64_t i = 0; i < n; ++i) {
      out[o + i] = c[off[0] + i * st[0]] ? x[off[1] + i * st[1]] : y[off[2] + i * st[2]];
    }
  });
}

// Selects X where the condition holds and Y elsewhere; any element type.
Status where_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* c, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(1));
  KILN_ASSIGN_OR_RETURN(const Tensor* y, ctx.tensor_input(2));
  KILN_CHECK_ARG(c->dtype() == DataType::kBool, "{}: condition must be bool, got {}", ctx.node().describe(),
                 data_type_name(c->dtype()));
  KILN_CHECK_ARG(x->dtype() == y->dtype(), "{}: X and Y have different element types {} and {}",
                 ctx.node().describe(), data_type_name(x->dtype()), data_type_name(y->dtype()));
  KILN_ASSIGN_OR_RETURN(auto prep, prepare<3>(ctx, {c, x, y}, x->dtype()));
  const BroadcastPlan& plan = prep.second;
  Tensor& out = *prep.first;
  const bool* pc = c->data<bool>();
  if (x->dtype() == DataType::kString) {
    where_loop(ctx, plan, pc, x->data<std::string>(), y->data<std::string>(), out.data<std::string>());
    return Status::ok();
  }
  auto run = [&](auto tag) {
    using E = decltype(tag);
    where_loop(ctx, plan, pc, x->data<E>(), y->data<E>(), out.data<E>());
    return Status::ok();
  };
  switch (element_size(x->dtype())) {
    case 1: return run(uint8_t{});
    case 2: return run(uint16_t{});
    case 4: return run(uint32_t{});
    case 8: return run(uint64_t{});
    case 16: return run(Bytes<16>{});
    default:
      return unimplemented("{}: element type {} is not supported", ctx.node().describe(),
                           data_type_name(x->dtype()));
  }
}

// ---- Shape inference ---------------------------------------------------------------

Status bool_broadcast_infer(InferContext& ctx) { return infer_broadcast(ctx, DataType::kBool); }
Status broadcast_infer(InferContext& ctx) { return infer_broadcast(ctx, DataType::kUndefined); }
Status same_infer(InferContext& ctx) { return infer_same_as_input(ctx); }
Status where_infer(InferContext& ctx) {
  DataType t = ctx.input_type(1).is_tensor() ? ctx.input_type(1).dtype : DataType::kUndefined;
  if (t == DataType::kUndefined && ctx.input_type(2).is_tensor()) t = ctx.input_type(2).dtype;
  return infer_broadcast(ctx, t);
}

}  // namespace

void register_logical(Registry& r) {
  auto add = [&](std::string_view name, int since, int inputs, KernelFn kernel, InferFn infer) {
    r.add({.name = name, .domain = "", .since_version = since, .min_inputs = inputs, .max_inputs = inputs,
           .kernel = kernel, .infer = infer});
  };
  add("Equal", 1, 2, compare_kernel<EqualOp, true>, bool_broadcast_infer);
  add("Less", 1, 2, compare_kernel<LessOp, false>, bool_broadcast_infer);
  add("Greater", 1, 2, compare_kernel<GreaterOp, false>, bool_broadcast_infer);
  add("LessOrEqual", 12, 2, compare_kernel<LessOrEqualOp, false>, bool_broadcast_infer);
  add("GreaterOrEqual", 12, 2, compare_kernel<GreaterOrEqualOp, false>, bool_broadcast_infer);
  add("And", 1, 2, logic_kernel<AndOp>, bool_broadcast_infer);
  add("Or", 1, 2, logic_kernel<OrOp>, bool_broadcast_infer);
  add("Xor", 1, 2, logic_kernel<XorOp>, bool_broadcast_infer);
  add("Not", 1, 1, not_kernel, same_infer);
  add("BitShift", 11, 2, bit_shift_kernel, broadcast_infer);
  add("BitwiseAnd", 18, 2, bitwise_kernel<BitAndOp>, broadcast_infer);
  add("BitwiseOr", 18, 2, bitwise_kernel<BitOrOp>, broadcast_infer);
  add("BitwiseXor", 18, 2, bitwise_kernel<BitXorOp>, broadcast_infer);
  add("BitwiseNot", 18, 1, bitwise_not_kernel, same_infer);
  add("Where", 9, 3, where_kernel, where_infer);
}

}  // namespace kiln::ops::ew
