// Op family: losses and assorted math. NegativeLogLikelihoodLoss and
// SoftmaxCrossEntropyLoss live here; Det, Shrink, CumProd and BitCast in
// loss_math.cc; MaxUnpool and TensorScatter in loss_scatter.cc.
//
// The loss kernels compute in double and round once to the input's type.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "ops/families.h"
#include "ops/loss_internal.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

bool is_loss_float(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat64 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

enum class Reduction { kNone, kSum, kMean };

Result<Reduction> parse_reduction(const ir::Node& node) {
  std::string r = node.attr_string("reduction", "mean");
  if (r == "none") return Reduction::kNone;
  if (r == "sum") return Reduction::kSum;
  if (r == "mean") return Reduction::kMean;
  return invalid_argument("reduction must be 'none', 'sum' or 'mean', got '{}'", r);
}

// Validated operands of a loss: scores x of shape (N, C, d1..dk) as double,
// target (N, d1..dk) as int64 and the optional per-class weight (C).
struct LossOperands {
  Tensor x;  // float64, (N, C, d1..dk)
  std::vector<int64_t> target;
  std::vector<double> weight;  // empty when absent
  Dims target_dims;
  int64_t n = 0;
  int64_t c = 0;
  int64_t d = 1;  // product of d1..dk
};

Result<LossOperands> loss_operands(const KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* target, ctx.tensor_input(1));
  if (!is_loss_float(x->dtype())) {
    return unimplemented("input element type {} is not supported", data_type_name(x->dtype()));
  }
  if (x->rank() < 2) return invalid_argument("input must have shape (N, C, d1..dk), got {}", x->debug_string());
  if (target->dtype() != DataType::kInt32 && target->dtype() != DataType::kInt64) {
    return invalid_argument("target must be int32 or int64, got {}", data_type_name(target->dtype()));
  }
  LossOperands op;
  op.n = x->dim(0);
  op.c = x->dim(1);
  Dims expected_target{op.n};
  for (int64_t i = 2; i < x->rank(); ++i) {
    expected_target.push_back(x->dim(i));
    op.d *= x->dim(i);
  }
  if (target->dims() != expected_target) {
    return invalid_argument("target has shape {}, expected {} for input {}", dims_to_string(target->dims()),
                            dims_to_string(expected_target), x->debug_string());
  }
  op.target_dims = target->dims();
  KILN_ASSIGN_OR_RETURN(op.target, to_int64_vector(*target));
  KILN_ASSIGN_OR_RETURN(op.x, to_float64(*x));
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* w, ctx.tensor_input(2));
    if (w->rank() != 1 || w->dim(0) != op.c) {
      return invalid_argument("weight must have shape [{}] (one per class), got {}", op.c, w->debug_string());
    }
    if (w->dtype() != x->dtype()) {
      return invalid_argument("weight type {} differs from input type {}", data_type_name(w->dtype()),
                              data_type_name(x->dtype()));
    }
    KILN_ASSIGN_OR_RETURN(Tensor wd, to_float64(*w));
    op.weight.assign(wd.data<double>(), wd.data<double>() + wd.numel());
  }
  return op;
}

// The loss of every target element, -w[t] * score[n, t, d] (0 where t is
// ignore_index), reduced as asked, as a float64 tensor.
// `scores` holds log-probabilities laid out as (N, C, D).
Result<Tensor> nll(const LossOperands& op, const double* scores, const ir::Node& node) {
  KILN_ASSIGN_OR_RETURN(Reduction reduction, parse_reduction(node));
  bool has_ignore = node.has_attr("ignore_index");
  int64_t ignore = node.attr_int("ignore_index", 0);
  KILN_ASSIGN_OR_RETURN(Tensor loss, Tensor::allocate(DataType::kFloat64, op.target_dims));
  double* l = loss.data<double>();
  double loss_sum = 0;
  double weight_sum = 0;
  for (int64_t i = 0; i < op.n; ++i) {
    for (int64_t k = 0; k < op.d; ++k) {
      int64_t at = i * op.d + k;
      int64_t t = op.target[static_cast<size_t>(at)];
      if (has_ignore && t == ignore) continue;  // loss and weight 0
      if (t < 0 || t >= op.c) {
        return out_of_range("target value {} at element {} is outside [0, {})", t, at, op.c);
      }
      double w = op.weight.empty() ? 1.0 : op.weight[static_cast<size_t>(t)];
      l[at] = -w * scores[(i * op.c + t) * op.d + k];
      loss_sum += l[at];
      weight_sum += w;
    }
  }
  if (reduction == Reduction::kNone) return loss;
  // Mean divides by the total weight of the counted elements (0/0 is NaN, as in ONNX's reference).
  double v = reduction == Reduction::kSum ? loss_sum : loss_sum / weight_sum;
  return Tensor::scalar<double>(DataType::kFloat64, v);
}

Status set_loss_output(KernelContext& ctx, size_t i, const Tensor& value, DataType dtype) {
  auto cast = cast_tensor(value, dtype);
  if (!cast.is_ok()) return ctx.error(cast.status());
  ctx.set_output(i, std::move(cast).value());
  return Status::ok();
}

Status nll_kernel(KernelContext& ctx) {
  auto op = loss_operands(ctx);
  if (!op.is_ok()) return ctx.error(op.status());
  auto loss = nll(*op, op->x.data<double>(), ctx.node());
  if (!loss.is_ok()) return ctx.error(loss.status());
  return set_loss_output(ctx, 0, *loss, ctx.input(0).dtype());
}

Status sce_kernel(KernelContext& ctx) {
  auto op = loss_operands(ctx);
  if (!op.is_ok()) return ctx.error(op.status());
  // log_softmax over the class axis, numerically stable (max subtracted).
  KILN_ASSIGN_OR_RETURN(Tensor log_prob, Tensor::allocate(DataType::kFloat64, op->x.dims()));
  const double* x = op->x.data<double>();
  double* lp = log_prob.data<double>();
  for (int64_t i = 0; i < op->n; ++i) {
    for (int64_t k = 0; k < op->d; ++k) {
      auto at = [&](int64_t cls) { return (i * op->c + cls) * op->d + k; };
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t cls = 0; cls < op->c; ++cls) mx = std::max(mx, x[at(cls)]);
      double sum = 0;
      for (int64_t cls = 0; cls < op->c; ++cls) sum += std::exp(x[at(cls)] - mx);
      double log_sum = std::log(sum);
      for (int64_t cls = 0; cls < op->c; ++cls) lp[at(cls)] = x[at(cls)] - mx - log_sum;
    }
  }
  auto loss = nll(*op, lp, ctx.node());
  if (!loss.is_ok()) return ctx.error(loss.status());
  DataType dtype = ctx.input(0).dtype();
  KILN_RETURN_IF_ERROR(set_loss_output(ctx, 0, *loss, dtype));
  if (ctx.wants_output(1)) KILN_RETURN_IF_ERROR(set_loss_output(ctx, 1, log_prob, dtype));
  return Status::ok();
}

// Output 0: the target's shape with reduction "none", a scalar otherwise;
// SoftmaxCrossEntropyLoss's log_prob has the input's type.
Status loss_infer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Reduction reduction, parse_reduction(ctx.node()));
  const ir::ValueType& x = ctx.input_type(0);
  DataType dtype = x.is_tensor() ? x.dtype : DataType::kUndefined;
  Shape out = Shape::of({});
  if (reduction == Reduction::kNone) {
    const ir::ValueType& t = ctx.input_type(1);
    out = t.is_tensor() ? t.shape : Shape::unknown_rank();
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
  if (ctx.num_outputs() > 1) ctx.set_output_type(1, ir::ValueType::tensor(dtype, x.is_tensor() ? x.shape : Shape()));
  return Status::ok();
}

}  // namespace

void register_loss(Registry& r) {
  r.add({.name = "NegativeLogLikelihoodLoss", .domain = "", .since_version = 12, .min_inputs = 2, .max_inputs = 3,
         .kernel = nll_kernel, .infer = loss_infer});
  r.add({.name = "SoftmaxCrossEntropyLoss", .domain = "", .since_version = 12, .min_inputs = 2, .max_inputs = 3,
         .min_outputs = 1, .max_outputs = 2, .kernel = sce_kernel, .infer = loss_infer});
  register_loss_math(r);
  register_loss_scatter(r);
}

}  // namespace kiln::ops
