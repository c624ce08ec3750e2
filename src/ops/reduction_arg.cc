// ArgMax and ArgMin: the index (int64) of the largest / smallest element along
// `axis`. Part of register_reduction.
//
// Ties go to the first index, or the last with select_last_index=1 (opset
// 12). NaN counts as larger than everything for ArgMax and smaller than
// everything for ArgMin (numpy's rule), so the first NaN wins.
#include <cmath>

#include "ops/elementwise_util.h"
#include "ops/reduction_util.h"

namespace kiln::ops {
namespace {

// Does x replace the current best b? (kMax: ArgMax, else ArgMin.)
template <bool kMax, class V>
bool better(V x, V b, bool last) {
  if constexpr (std::is_floating_point_v<V>) {
    bool xn = std::isnan(x);
    bool bn = std::isnan(b);
    if (bn) return last && xn;
    if (xn) return true;
  }
  if constexpr (kMax) {
    return last ? !(x < b) : b < x;
  } else {
    return last ? !(b < x) : x < b;
  }
}

template <bool kMax>
Status arg_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  const ir::Node& node = ctx.node();
  auto axis = normalize_axis(node.attr_int("axis", 0), x->rank());
  if (!axis.is_ok()) return ctx.error(axis.status());
  const bool keepdims = node.attr_int("keepdims", 1) != 0;
  const bool last = node.attr_int("select_last_index", 0) != 0;
  const int64_t a = axis.value();
  KILN_CHECK_ARG(x->dim(a) > 0, "{}: cannot take {} over axis {} of size 0 (input {})", node.describe(),
                 node.op_type(), a, dims_to_string(x->dims()));
  ReducePlan plan = plan_reduction(x->dims(), {a}, keepdims);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, DataType::kInt64, plan.out_dims));
  // One reduced axis is always contiguous: x is [outer, n, inner].
  int64_t outer = 1;
  int64_t inner = 1;
  for (int64_t d = 0; d < a; ++d) outer *= x->dim(d);
  for (int64_t d = a + 1; d < x->rank(); ++d) inner *= x->dim(d);
  const int64_t n = x->dim(a);
  int64_t* po = out->data<int64_t>();
  return ew::dispatch<ew::kNumericTypes>(x->dtype(), node.op_type(), [&](auto tag) -> Status {
    using T = decltype(tag);
    const T* px = x->data<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const T* p = px + o * n * inner + i;
        auto best = ew::load(p[0]);
        int64_t best_index = 0;
        for (int64_t r = 1; r < n; ++r) {
          auto v = ew::load(p[r * inner]);
          if (better<kMax>(v, best, last)) {
            best = v;
            best_index = r;
          }
        }
        po[o * inner + i] = best_index;
      }
    }
    return Status::ok();
  });
}

Status arg_infer(InferContext& ctx) {
  const ir::ValueType& in = ctx.input_type(0);
  if (!in.is_tensor() || !in.shape.rank_known()) {
    ctx.set_output_type(0, ir::ValueType::tensor(DataType::kInt64));
    return Status::ok();
  }
  auto axis = normalize_axis(ctx.node().attr_int("axis", 0), in.shape.rank());
  if (!axis.is_ok()) return axis.status().with_context(ctx.node().describe());
  const bool keepdims = ctx.node().attr_int("keepdims", 1) != 0;
  std::vector<Dim> out;
  for (int64_t d = 0; d < in.shape.rank(); ++d) {
    if (d != axis.value()) {
      out.push_back(in.shape[d]);
    } else if (keepdims) {
      out.emplace_back(1);
    }
  }
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kInt64, Shape(std::move(out))));
  return Status::ok();
}

}  // namespace

void register_arg_reductions(Registry& r) {
  r.add({.name = "ArgMax", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = arg_kernel<true>, .infer = arg_infer});
  r.add({.name = "ArgMin", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = arg_kernel<false>, .infer = arg_infer});
}

}  // namespace kiln::ops
