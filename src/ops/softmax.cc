// Op family: Softmax, LogSoftmax, Hardmax.
//
// Opset >= 13 normalizes along `axis` (default -1). Before 13 the input is
// coerced to 2-D at `axis` (default 1), [d0*...*d(axis-1), d(axis)*...*d(n-1)],
// and each row of that matrix is normalized. Both are computed as a view
// [outer, n, inner] normalized over n (inner = 1 for the old form).
//
// Softmax and LogSoftmax subtract the row max before exponentiating; the sum
// of exponentials accumulates in double. A row holding NaN gives NaN.
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "ops/elementwise_util.h"
#include "ops/families.h"

namespace kiln::ops {
namespace {

enum class Kind { kSoftmax, kLogSoftmax, kHardmax };

struct Layout {
  int64_t outer = 1;
  int64_t n = 1;
  int64_t inner = 1;
};

Result<Layout> layout_of(const ir::Node& node, const Dims& dims) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  const bool legacy = node.opset() < 13;
  int64_t axis = node.attr_int("axis", legacy ? 1 : -1);
  // The legacy form also accepts axis == rank (every row has one element).
  int64_t limit = legacy ? rank + 1 : rank;
  KILN_CHECK_ARG(axis >= -rank && axis < limit, "{}: axis {} is out of range for input of rank {}",
                 node.describe(), axis, rank);
  if (axis < 0) axis += rank;
  Layout l;
  for (int64_t d = 0; d < axis; ++d) l.outer *= dims[static_cast<size_t>(d)];
  if (legacy) {
    for (int64_t d = axis; d < rank; ++d) l.n *= dims[static_cast<size_t>(d)];
  } else {
    l.n = dims[static_cast<size_t>(axis)];
    for (int64_t d = axis + 1; d < rank; ++d) l.inner *= dims[static_cast<size_t>(d)];
  }
  return l;
}

// Normalizes one row: x[r * stride] for r in [0, n).
template <Kind K, class T>
void normalize_row(const T* x, T* y, int64_t n, int64_t stride, std::vector<compute_type_t<T>>& tmp) {
  using V = compute_type_t<T>;
  if constexpr (K == Kind::kHardmax) {
    int64_t best = 0;
    V bv = ew::load(x[0]);
    for (int64_t r = 1; r < n && !std::isnan(bv); ++r) {
      V v = ew::load(x[r * stride]);
      if (v > bv || std::isnan(v)) {
        bv = v;
        best = r;
      }
    }
    for (int64_t r = 0; r < n; ++r) y[r * stride] = ew::store<T>(r == best ? V(1) : V(0));
  } else {
    V m = -std::numeric_limits<V>::infinity();
    for (int64_t r = 0; r < n; ++r) {
      V v = ew::load(x[r * stride]);
      if (v > m || std::isnan(v)) m = v;
      if (std::isnan(m)) break;
    }
    // Softmax is defined as Exp(x - max) / ReduceSum(Exp(x - max)): for the
    // 16-bit types each of those steps yields a T tensor, so the difference,
    // the exponentials and their sum are rounded to T before the division
    // (rounding only the quotient leaves results up to 2 ulps from the spec's).
    auto round_t = [](V v) { return ew::load(ew::store<T>(v)); };
    double sum = 0;
    for (int64_t r = 0; r < n; ++r) {
      const V d = ew::load(x[r * stride]) - m;
      const V e = K == Kind::kSoftmax ? round_t(std::exp(round_t(d))) : std::exp(d);
      tmp[static_cast<size_t>(r)] = e;
      sum += static_cast<double>(e);
    }
    if constexpr (K == Kind::kSoftmax) {
      if constexpr (!std::is_same_v<V, T>) {
        const V sum_t = round_t(static_cast<V>(sum));
        for (int64_t r = 0; r < n; ++r) y[r * stride] = ew::store<T>(tmp[static_cast<size_t>(r)] / sum_t);
      } else {
        for (int64_t r = 0; r < n; ++r) {
          y[r * stride] = ew::store<T>(static_cast<V>(static_cast<double>(tmp[static_cast<size_t>(r)]) / sum));
        }
      }
    } else {
      const V log_sum = static_cast<V>(std::log(sum));
      for (int64_t r = 0; r < n; ++r) y[r * stride] = ew::store<T>(ew::load(x[r * stride]) - m - log_sum);
    }
  }
}

template <Kind K>
Status softmax_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(Layout l, layout_of(ctx.node(), x->dims()));
  return ew::dispatch<ew::kFloatTypes>(x->dtype(), ctx.node().op_type(), [&](auto tag) -> Status {
    using T = decltype(tag);
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, x->dtype(), x->dims()));
    if (x->numel() == 0) return Status::ok();
    const T* px = x->data<T>();
    T* py = out->data<T>();
    const int64_t rows = l.outer * l.inner;
    auto run = [&](int64_t begin, int64_t end) {
      std::vector<compute_type_t<T>> tmp(static_cast<size_t>(l.n));
      for (int64_t row = begin; row < end; ++row) {
        int64_t o = row / l.inner;
        int64_t i = row % l.inner;
        int64_t base = o * l.n * l.inner + i;
        normalize_row<K>(px + base, py + base, l.n, l.inner, tmp);
      }
    };
    ThreadPool* pool = ctx.pool();
    if (pool != nullptr && pool->threads() > 1 && x->numel() >= ew::kParallelMin && rows > 1) {
      pool->parallel_for(rows, std::max<int64_t>(1, ew::kParallelGrain / l.n), run);
    } else {
      run(0, rows);
    }
    return Status::ok();
  });
}

Status softmax_infer(InferContext& ctx) { return ew::infer_same_as_input(ctx); }

}  // namespace

void register_softmax(Registry& r) {
  auto add = [&](std::string_view name, KernelFn kernel) {
    r.add({.name = name, .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1, .kernel = kernel,
           .infer = softmax_infer});
  };
  add("Softmax", softmax_kernel<Kind::kSoftmax>);
  add("LogSoftmax", softmax_kernel<Kind::kLogSoftmax>);
  add("Hardmax", softmax_kernel<Kind::kHardmax>);
}

}  // namespace kiln::ops
