// Internals shared by the elementwise, reduction and softmax families:
// element-type sets and dispatch, broadcast loops over flat ranges, and the
// shape inference helpers those ops have in common.
//
// The loops here are the reference kernels' inner loops. They stay plain, but
// they merge broadcast dims so the innermost loop is long and runs over
// contiguous memory (or a repeated scalar), which keeps whole models that run
// on the reference kernels fast enough for tests.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ir/value_type.h"
#include "ops/op_def.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops::ew {

// ---- Element-type sets --------------------------------------------------------

constexpr uint64_t type_bit(DataType t) { return uint64_t{1} << static_cast<int>(t); }

inline constexpr uint64_t kFloatTypes = type_bit(DataType::kFloat32) | type_bit(DataType::kFloat64) |
                                        type_bit(DataType::kFloat16) | type_bit(DataType::kBFloat16);
inline constexpr uint64_t kSignedIntTypes = type_bit(DataType::kInt8) | type_bit(DataType::kInt16) |
                                            type_bit(DataType::kInt32) | type_bit(DataType::kInt64);
inline constexpr uint64_t kUnsignedIntTypes = type_bit(DataType::kUInt8) | type_bit(DataType::kUInt16) |
                                              type_bit(DataType::kUInt32) | type_bit(DataType::kUInt64);
inline constexpr uint64_t kIntTypes = kSignedIntTypes | kUnsignedIntTypes;
inline constexpr uint64_t kNumericTypes = kFloatTypes | kIntTypes;
inline constexpr uint64_t kSignedNumericTypes = kFloatTypes | kSignedIntTypes;
inline constexpr uint64_t kBoolType = type_bit(DataType::kBool);

// Calls f(T{}) with the C++ element type of `dtype` if `dtype` is in Mask
// (only those instantiations are compiled); otherwise an Unimplemented error
// "<op>: element type <t> is not supported".
template <uint64_t Mask, class F>
Status dispatch(DataType dtype, std::string_view op, F&& f) {
#define KILN_EW_CASE(enumerator, type)                              \
  case DataType::enumerator:                                        \
    if constexpr ((Mask & type_bit(DataType::enumerator)) != 0) {   \
      return f(type{});                                             \
    }                                                               \
    break;
  switch (dtype) {
    KILN_EW_CASE(kFloat32, float)
    KILN_EW_CASE(kFloat64, double)
    KILN_EW_CASE(kFloat16, Float16)
    KILN_EW_CASE(kBFloat16, BFloat16)
    KILN_EW_CASE(kInt8, int8_t)
    KILN_EW_CASE(kInt16, int16_t)
    KILN_EW_CASE(kInt32, int32_t)
    KILN_EW_CASE(kInt64, int64_t)
    KILN_EW_CASE(kUInt8, uint8_t)
    KILN_EW_CASE(kUInt16, uint16_t)
    KILN_EW_CASE(kUInt32, uint32_t)
    KILN_EW_CASE(kUInt64, uint64_t)
    KILN_EW_CASE(kBool, bool)
    default:
      break;
  }
#undef KILN_EW_CASE
  return unimplemented("{}: element type {} is not supported", op, data_type_name(dtype));
}

// Storage type T to its compute type and back (identity except fp16/bf16).
template <class T>
inline compute_type_t<T> load(T v) {
  return static_cast<compute_type_t<T>>(v);
}
template <class T, class V>
inline T store(V v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
    return T(static_cast<float>(v));
  } else {
    return static_cast<T>(v);
  }
}

// Tensors at least this large are split over the thread pool.
inline constexpr int64_t kParallelMin = int64_t{1} << 16;
inline constexpr int64_t kParallelGrain = int64_t{1} << 14;

// Runs fn(begin, end) over [0, n), on the pool when n is large.
template <class Fn>
void parallel_range(ThreadPool* pool, int64_t n, int64_t grain, Fn&& fn) {
  if (pool != nullptr && pool->threads() > 1 && n >= kParallelMin) {
    pool->parallel_for(n, grain, fn);
  } else if (n > 0) {
    fn(0, n);
  }
}

// ---- Broadcast loops ------------------------------------------------------------

// Inputs broadcast to one output shape, with size-1 output dims dropped and
// adjacent dims merged where every input walks them contiguously (or not at
// all). The innermost stride of every input is then 0 or 1.
struct BroadcastPlan {
  Dims out;                                   // merged output dims, rank >= 1
  std::vector<std::vector<int64_t>> strides;  // per input, per merged dim
  int64_t numel = 0;
};

// Precondition: every input broadcasts to `out` (checked by broadcast_dims).
BroadcastPlan plan_broadcast(const Dims& out, std::span<const Dims> inputs);

// Calls fn(out_offset, n, in_offsets, in_inner_strides) for runs of output
// elements [out_offset, out_offset + n) along the innermost merged dim: input k
// supplies element in_offsets[k] + i * in_inner_strides[k] for i in [0, n).
template <class Fn>
void for_each_run(const BroadcastPlan& p, int64_t begin, int64_t end, Fn&& fn) {
  const size_t rank = p.out.size();
  const size_t k_inputs = p.strides.size();
  const int64_t inner = p.out[rank - 1];
  std::vector<int64_t> index(rank);
  std::vector<int64_t> offsets(k_inputs, 0);
  std::vector<int64_t> inner_strides(k_inputs);
  for (size_t k = 0; k < k_inputs; ++k) inner_strides[k] = p.strides[k][rank - 1];
  int64_t rem = begin;
  for (size_t d = rank; d-- > 0;) {
    index[d] = rem % p.out[d];
    rem /= p.out[d];
    for (size_t k = 0; k < k_inputs; ++k) offsets[k] += index[d] * p.strides[k][d];
  }
  int64_t pos = begin;
  while (pos < end) {
    int64_t n = std::min(inner - index[rank - 1], end - pos);
    fn(pos, n, offsets.data(), inner_strides.data());
    pos += n;
    index[rank - 1] += n;
    for (size_t k = 0; k < k_inputs; ++k) offsets[k] += n * inner_strides[k];
    for (size_t d = rank - 1; index[d] == p.out[d] && d > 0; --d) {
      for (size_t k = 0; k < k_inputs; ++k) offsets[k] += p.strides[k][d - 1] - p.out[d] * p.strides[k][d];
      index[d] = 0;
      ++index[d - 1];
    }
  }
}

// for_each_run over the whole plan, split over the pool when large.
template <class Fn>
void run_plan(const BroadcastPlan& p, ThreadPool* pool, Fn&& fn) {
  parallel_range(pool, p.numel, kParallelGrain, [&](int64_t b, int64_t e) { for_each_run(p, b, e, fn); });
}

// out[i] = f(a[i'], b[i'']) over a broadcast plan of two inputs. f takes and
// returns compute types (float for fp16/bf16).
template <class TA, class TB, class TO, class F>
void binary_loop(const BroadcastPlan& p, ThreadPool* pool, const TA* a, const TB* b, TO* out, F f) {
  run_plan(p, pool, [&](int64_t o, int64_t n, const int64_t* off, const int64_t* st) {
    const TA* pa = a + off[0];
    const TB* pb = b + off[1];
    TO* po = out + o;
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) po[i] = store<TO>(f(load(pa[i]), load(pb[i])));
    } else if (st[0] == 1) {
      const auto vb = load(pb[0]);
      for (int64_t i = 0; i < n; ++i) po[i] = store<TO>(f(load(pa[i]), vb));
    } else if (st[1] == 1) {
      const auto va = load(pa[0]);
      for (int64_t i = 0; i < n; ++i) po[i] = store<TO>(f(va, load(pb[i])));
    } else {
      const TO v = store<TO>(f(load(pa[0]), load(pb[0])));
      for (int64_t i = 0; i < n; ++i) po[i] = v;
    }
  });
}

// Reads inputs 0 and 1, broadcasts them, allocates output 0 of type TO and
// fills it with f over the compute values of TA and TB.
template <class TA, class TB, class TO, class F>
Status binary_kernel(KernelContext& ctx, const Tensor& a, const Tensor& b, F f) {
  KILN_ASSIGN_OR_RETURN(Dims out_dims, broadcast_dims(a.dims(), b.dims()));
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, data_type_of<TO>(), out_dims));
  const Dims ins[] = {a.dims(), b.dims()};
  BroadcastPlan plan = plan_broadcast(out_dims, ins);
  binary_loop(plan, ctx.pool(), a.data<TA>(), b.data<TB>(), out->data<TO>(), f);
  return Status::ok();
}

// out[i] = f(x[i]) over a tensor of type TI into a new output 0 of type TO.
template <class TI, class TO, class F>
Status unary_kernel(KernelContext& ctx, const Tensor& x, F f) {
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, data_type_of<TO>(), x.dims()));
  const TI* px = x.data<TI>();
  TO* po = out->data<TO>();
  parallel_range(ctx.pool(), x.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) po[i] = store<TO>(f(load(px[i])));
  });
  return Status::ok();
}

// Opset < 7 binary ops carry legacy `broadcast`/`axis` attributes. Accepts
// what numpy broadcasting computes the same way (equal shapes; broadcast=1
// with B matched at the suffix); errors on the rest.
Status check_legacy_broadcast(KernelContext& ctx, const Tensor& a, const Tensor& b);

// Both inputs must have one element type.
inline Status check_same_type(KernelContext& ctx, const Tensor& a, const Tensor& b) {
  KILN_CHECK_ARG(a.dtype() == b.dtype(), "{}: inputs have different element types {} and {}",
                 ctx.node().describe(), data_type_name(a.dtype()), data_type_name(b.dtype()));
  return Status::ok();
}

// ---- Shape inference --------------------------------------------------------------

// Output 0 gets input `from`'s type (e.g. unary ops).
Status infer_same_as_input(InferContext& ctx, size_t from = 0);
// Output 0: the element type `dtype` (input 0's when kUndefined) and the
// broadcast of the shapes of inputs [first, last) (all inputs when last is 0).
Status infer_broadcast(InferContext& ctx, DataType dtype, size_t first = 0, size_t last = 0);

// ---- The parts of register_elementwise (one per file) -------------------------------

void register_binary_arithmetic(Registry& r);  // elementwise_binary.cc: Add, Sub, Mul, Div, Pow, Mod
void register_unary_math(Registry& r);         // elementwise_unary.cc: Neg, Abs, Sqrt, trig, IsNaN...
void register_activations(Registry& r);        // activations.cc: Relu, Sigmoid, Gelu, PRelu, Clip...
void register_logical(Registry& r);            // logical.cc: comparisons, And/Or/Xor/Not, bitwise, Where
void register_variadic(Registry& r);           // elementwise_variadic.cc: Sum, Mean, Max, Min

}  // namespace kiln::ops::ew
