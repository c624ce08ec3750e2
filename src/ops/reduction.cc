// Op family: reductions. ReduceSum, ReduceMean, ReduceMax, ReduceMin,
// ReduceProd, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp,
// ReduceSumSquare (this file) and ArgMax, ArgMin (reduction_arg.cc).
//
// Axes come from the `axes` attribute before the opset where they became an
// optional input (13 for ReduceSum, 18 for the others). No axes reduce every
// dim, except that with the input form and noop_with_empty_axes=1 the input
// passes through unchanged. Reducing an empty set gives the reduction's
// identity: 0 for sums and norms, 1 for products, -inf (or the type's lowest
// value) for max, +inf (or the highest) for min, -inf for the log reductions,
// and NaN (0 for integers) for the mean.
//
// Float types accumulate in double; integer sums and products wrap modulo
// 2^64 and are then narrowed to the element type (modular, as numpy's).
#include <cmath>
#include <limits>

#include "ops/elementwise_util.h"
#include "ops/families.h"
#include "ops/reduction_util.h"

namespace kiln::ops {
namespace {

using ew::dispatch;
using ew::load;
using ew::store;

template <class V>
constexpr bool kIsFloat = std::is_floating_point_v<V>;

// The accumulator type of the sum-like reductions.
template <class V>
using sum_acc_t = std::conditional_t<kIsFloat<V>, double, uint64_t>;

template <class V>
sum_acc_t<V> widen(V x) {
  return static_cast<sum_acc_t<V>>(x);  // integers sign-extend into uint64: modular
}

template <class V>
V narrow(sum_acc_t<V> a) {
  return static_cast<V>(a);
}

template <class V>
sum_acc_t<V> abs_of(V x) {
  if constexpr (kIsFloat<V>) {
    return std::abs(static_cast<double>(x));
  } else if constexpr (std::is_signed_v<V>) {
    return x < 0 ? uint64_t{0} - static_cast<uint64_t>(x) : static_cast<uint64_t>(x);
  } else {
    return static_cast<uint64_t>(x);
  }
}

// Each reducer: A init(), A update(A, V), V finish(A, count).
template <class V>
struct SumR {
  using A = sum_acc_t<V>;
  static A init() { return 0; }
  static A update(A a, V x) { return a + widen(x); }
  static V finish(A a, int64_t) { return narrow<V>(a); }
};

template <class V>
struct SumSquareR {
  using A = sum_acc_t<V>;
  static A init() { return 0; }
  static A update(A a, V x) { return a + widen(x) * widen(x); }
  static V finish(A a, int64_t) { return narrow<V>(a); }
};

template <class V>
struct MeanR {
  using A = sum_acc_t<V>;
  static A init() { return 0; }
  static A update(A a, V x) { return a + widen(x); }
  static V finish(A a, int64_t n) {
    if constexpr (kIsFloat<V>) {
      return static_cast<V>(a / static_cast<double>(n));  // NaN for an empty set
    } else if constexpr (std::is_signed_v<V>) {
      return n == 0 ? V(0) : static_cast<V>(static_cast<int64_t>(a) / n);
    } else {
      return n == 0 ? V(0) : static_cast<V>(a / static_cast<uint64_t>(n));
    }
  }
};

template <class V>
struct ProdR {
  using A = sum_acc_t<V>;
  static A init() { return 1; }
  static A update(A a, V x) { return a * widen(x); }
  static V finish(A a, int64_t) { return narrow<V>(a); }
};

template <class V>
struct L1R {
  using A = sum_acc_t<V>;
  static A init() { return 0; }
  static A update(A a, V x) { return a + abs_of(x); }
  static V finish(A a, int64_t) { return narrow<V>(a); }
};

template <class V>
struct L2R {
  using A = double;
  static A init() { return 0; }
  static A update(A a, V x) { return a + static_cast<double>(x) * static_cast<double>(x); }
  static V finish(A a, int64_t) {
    double r = std::sqrt(a);
    if constexpr (kIsFloat<V>) {
      return static_cast<V>(r);
    } else {
      return r >= static_cast<double>(std::numeric_limits<V>::max()) ? std::numeric_limits<V>::max()
                                                                     : static_cast<V>(r);
    }
  }
};

template <class V>
struct LogSumR {
  using A = double;
  static A init() { return 0; }
  static A update(A a, V x) { return a + static_cast<double>(x); }
  static V finish(A a, int64_t) { return static_cast<V>(std::log(a)); }
};

// Online log-sum-exp: m is the running max, s the sum of exp(x - m).
struct LseAcc {
  double m = -std::numeric_limits<double>::infinity();
  double s = 0;
};

template <class V>
struct LogSumExpR {
  using A = LseAcc;
  static A init() { return {}; }
  static A update(A a, V v) {
    double x = static_cast<double>(v);
    if (x == -std::numeric_limits<double>::infinity()) return a;  // adds exp(-inf) = 0
    if (x > a.m) {
      a.s = a.s * std::exp(a.m - x) + 1;
      a.m = x;
    } else if (x == a.m) {
      a.s += 1;
    } else {
      a.s += std::exp(x - a.m);  // NaN x makes s NaN
    }
    return a;
  }
  static V finish(A a, int64_t) { return static_cast<V>(a.m + std::log(a.s)); }
};

template <class V>
struct MaxR {
  using A = V;
  static A init() {
    if constexpr (std::is_same_v<V, bool>) return false;
    else if constexpr (kIsFloat<V>) return -std::numeric_limits<V>::infinity();
    else return std::numeric_limits<V>::lowest();
  }
  static A update(A a, V x) {
    if constexpr (kIsFloat<V>) {
      if (std::isnan(a)) return a;
      if (std::isnan(x)) return x;
    }
    return a < x ? x : a;
  }
  static V finish(A a, int64_t) { return a; }
};

template <class V>
struct MinR {
  using A = V;
  static A init() {
    if constexpr (std::is_same_v<V, bool>) return true;
    else if constexpr (kIsFloat<V>) return std::numeric_limits<V>::infinity();
    else return std::numeric_limits<V>::max();
  }
  static A update(A a, V x) {
    if constexpr (kIsFloat<V>) {
      if (std::isnan(a)) return a;
      if (std::isnan(x)) return x;
    }
    return x < a ? x : a;
  }
  static V finish(A a, int64_t) { return a; }
};

// Reduces x (type T) over plan.reduced into out with reducer R<V>.
template <class T, template <class> class R>
void reduce_loop(const ReducePlan& plan, ThreadPool* pool, const Tensor& x, Tensor& out) {
  using V = compute_type_t<T>;
  using Red = R<V>;
  // Accumulator storage (std::vector<bool> packs bits; keep bytes instead).
  using A = std::conditional_t<std::is_same_v<typename Red::A, bool>, uint8_t, typename Red::A>;
  const T* px = x.data<T>();
  T* po = out.data<T>();
  const int64_t count = plan.count;
  if (plan.contiguous) {
    // x viewed as [outer, count, inner]; out as [outer, inner].
    const int64_t outer = plan.outer;
    const int64_t inner = plan.inner;
    auto rows = [&](int64_t ob, int64_t oe) {
      std::vector<A> acc(static_cast<size_t>(inner));
      for (int64_t o = ob; o < oe; ++o) {
        std::fill(acc.begin(), acc.end(), Red::init());
        const T* base = px + o * count * inner;
        for (int64_t r = 0; r < count; ++r) {
          const T* row = base + r * inner;
          for (int64_t i = 0; i < inner; ++i) acc[static_cast<size_t>(i)] = Red::update(acc[static_cast<size_t>(i)], load(row[i]));
        }
        for (int64_t i = 0; i < inner; ++i) po[o * inner + i] = store<T>(Red::finish(acc[static_cast<size_t>(i)], count));
      }
    };
    const int64_t work = outer * count * inner;
    if (pool != nullptr && pool->threads() > 1 && work >= ew::kParallelMin && outer > 1) {
      pool->parallel_for(outer, std::max<int64_t>(1, ew::kParallelGrain / std::max<int64_t>(1, count * inner)), rows);
    } else {
      rows(0, outer);
    }
    return;
  }
  // General case: walk x in order, tracking the offset of each element's output.
  std::vector<A> acc(static_cast<size_t>(out.numel()), Red::init());
  BroadcastIterator it(x.dims(), {plan.keep_dims});
  for (int64_t i = 0; i < x.numel(); ++i, it.next()) {
    A& a = acc[static_cast<size_t>(it.offset(0))];
    a = Red::update(a, load(px[i]));
  }
  for (int64_t i = 0; i < out.numel(); ++i) po[i] = store<T>(Red::finish(acc[static_cast<size_t>(i)], count));
}

template <uint64_t Mask, template <class> class R>
Status reduce_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  const int axes_input_opset = ctx.node().op_type() == "ReduceSum" ? 13 : 18;
  KILN_ASSIGN_OR_RETURN(ReducePlan plan, make_reduce_plan(ctx, *x, ctx.opset() >= axes_input_opset));
  return dispatch<Mask>(x->dtype(), ctx.node().op_type(), [&](auto tag) -> Status {
    using T = decltype(tag);
    if (plan.noop) {
      ctx.set_output(0, Datum(*x));
      return Status::ok();
    }
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, x->dtype(), plan.out_dims));
    reduce_loop<T, R>(plan, ctx.pool(), *x, *out);
    return Status::ok();
  });
}

Status reduce_infer(InferContext& ctx) {
  const int axes_input_opset = ctx.node().op_type() == "ReduceSum" ? 13 : 18;
  return infer_reduce(ctx, ctx.opset() >= axes_input_opset, DataType::kUndefined);
}

constexpr uint64_t kSumTypes = ew::kNumericTypes;
constexpr uint64_t kMaxTypes = ew::kNumericTypes | ew::kBoolType;

}  // namespace

void register_reduction(Registry& r) {
  auto add = [&](std::string_view name, KernelFn kernel) {
    r.add({.name = name, .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 2, .kernel = kernel,
           .infer = reduce_infer});
  };
  add("ReduceSum", reduce_kernel<kSumTypes, SumR>);
  add("ReduceMean", reduce_kernel<kSumTypes, MeanR>);
  add("ReduceProd", reduce_kernel<kSumTypes, ProdR>);
  add("ReduceL1", reduce_kernel<kSumTypes, L1R>);
  add("ReduceL2", reduce_kernel<kSumTypes, L2R>);
  add("ReduceSumSquare", reduce_kernel<kSumTypes, SumSquareR>);
  add("ReduceMax", reduce_kernel<kMaxTypes, MaxR>);
  add("ReduceMin", reduce_kernel<kMaxTypes, MinR>);
  add("ReduceLogSum", reduce_kernel<ew::kFloatTypes, LogSumR>);
  add("ReduceLogSumExp", reduce_kernel<ew::kFloatTypes, LogSumExpR>);
  register_arg_reductions(r);
}

}  // namespace kiln::ops
