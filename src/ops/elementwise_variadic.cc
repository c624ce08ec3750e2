// Variadic elementwise ops: Sum, Mean, Max, Min over one or more inputs with
// multidirectional broadcasting. Part of register_elementwise.
//
// The result is accumulated in the output tensor input by input (in the
// element type, as numpy's pairwise ufuncs do); Max and Min propagate NaN.
#include <cmath>
#include <vector>

#include "ops/elementwise_util.h"

namespace kiln::ops::ew {
namespace {

struct SumOp {
  template <class V>
  static V apply(V a, V b) { return a + b; }
};
struct MaxOp {
  template <class V>
  static V apply(V a, V b) {
    if constexpr (std::is_floating_point_v<V>) {
      if (std::isnan(a) || std::isnan(b)) return std::isnan(a) ? a : b;
    }
    return a < b ? b : a;
  }
};
struct MinOp {
  template <class V>
  static V apply(V a, V b) {
    if constexpr (std::is_floating_point_v<V>) {
      if (std::isnan(a) || std::isnan(b)) return std::isnan(a) ? a : b;
    }
    return b < a ? b : a;
  }
};

template <uint64_t Mask, class Op, bool kMean>
Status variadic_kernel(KernelContext& ctx) {
  std::vector<const Tensor*> ins;
  std::vector<Dims> dims;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
    ins.push_back(t);
    KILN_RETURN_IF_ERROR(check_same_type(ctx, *ins.front(), *t));
    dims.push_back(t->dims());
  }
  KILN_CHECK_ARG(!ins.empty(), "{}: needs at least one input", ctx.node().describe());
  auto out_dims = broadcast_dims(dims);
  if (!out_dims.is_ok()) return ctx.error(out_dims.status());
  return dispatch<Mask>(ins[0]->dtype(), ctx.node().op_type(), [&](auto tag) -> Status {
    using T = decltype(tag);
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, data_type_of<T>(), out_dims.value()));
    T* po = out->data<T>();
    // Broadcast-copy the first input, then fold in the others.
    const Dims first[] = {dims[0]};
    BroadcastPlan copy_plan = plan_broadcast(out_dims.value(), first);
    const T* p0 = ins[0]->data<T>();
    run_plan(copy_plan, ctx.pool(), [&](int64_t o, int64_t n, const int64_t* off, const int64_t* st) {
      for (int64_t i = 0; i < n; ++i) po[o + i] = p0[off[0] + i * st[0]];
    });
    for (size_t k = 1; k < ins.size(); ++k) {
      const Dims pair[] = {out_dims.value(), dims[k]};
      BroadcastPlan plan = plan_broadcast(out_dims.value(), pair);
      binary_loop(plan, ctx.pool(), po, ins[k]->data<T>(), po, [](auto a, auto b) { return Op::apply(a, b); });
    }
    if constexpr (kMean) {
      using V = compute_type_t<T>;
      const V count = static_cast<V>(ins.size());
      for (int64_t i = 0; i < out->numel(); ++i) po[i] = store<T>(load(po[i]) / count);
    }
    return Status::ok();
  });
}

Status variadic_infer(InferContext& ctx) { return infer_broadcast(ctx, DataType::kUndefined); }

}  // namespace

void register_variadic(Registry& r) {
  auto add = [&](std::string_view name, KernelFn kernel) {
    r.add({.name = name, .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = -1, .kernel = kernel,
           .infer = variadic_infer});
  };
  add("Sum", variadic_kernel<kFloatTypes, SumOp, false>);
  add("Mean", variadic_kernel<kFloatTypes, SumOp, true>);
  add("Max", variadic_kernel<kNumericTypes, MaxOp, false>);
  add("Min", variadic_kernel<kNumericTypes, MinOp, false>);
}

}  // namespace kiln::ops::ew
