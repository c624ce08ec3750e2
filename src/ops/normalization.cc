// Op family: normalization. BatchNormalization, InstanceNormalization, LRN,
// LpNormalization and MeanVarianceNormalization here; LayerNormalization,
// GroupNormalization and RMSNormalization in normalization_layer.cc.
//
// Kernels compute in double and round once to the output type.
#include "ops/normalization.h"

#include <cmath>

#include "core/error.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {

Result<std::vector<double>> norm_doubles(const Tensor& t) {
  KILN_ASSIGN_OR_RETURN(Tensor d, to_float64(t));
  return std::vector<double>(d.data<double>(), d.data<double>() + d.numel());
}

Status norm_set_output(KernelContext& ctx, size_t i, DataType dtype, const Dims& dims,
                               const std::vector<double>& values) {
  auto t = Tensor::allocate(DataType::kFloat64, dims);
  if (!t.is_ok()) return ctx.error(t.status());
  std::copy(values.begin(), values.end(), t->data<double>());
  auto out = cast_tensor(*t, dtype);
  if (!out.is_ok()) return ctx.error(out.status());
  ctx.set_output(i, std::move(out).value());
  return Status::ok();
}

void norm_row_moments(const std::vector<double>& x, int64_t rows, int64_t len, std::vector<double>& mean,
                 std::vector<double>& var) {
  mean.assign(static_cast<size_t>(rows), 0.0);
  var.assign(static_cast<size_t>(rows), 0.0);
  for (int64_t r = 0; r < rows && len > 0; ++r) {
    const double* row = x.data() + r * len;
    double sum = 0;
    for (int64_t i = 0; i < len; ++i) sum += row[i];
    const double m = sum / static_cast<double>(len);
    double sq = 0;
    for (int64_t i = 0; i < len; ++i) sq += (row[i] - m) * (row[i] - m);
    mean[static_cast<size_t>(r)] = m;
    var[static_cast<size_t>(r)] = sq / static_cast<double>(len);
  }
}

Result<std::vector<double>> norm_broadcast_param(const Tensor& p, const Dims& block, const char* name) {
  auto b = broadcast_dims(p.dims(), block);
  if (!b.is_ok() || *b != block) {
    return invalid_argument("{} of shape {} does not broadcast to the normalized shape {}", name,
                            dims_to_string(p.dims()), dims_to_string(block));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<double> v, norm_doubles(p));
  KILN_ASSIGN_OR_RETURN(int64_t n, checked_numel(block));
  std::vector<double> out(static_cast<size_t>(n));
  BroadcastIterator it(block, {p.dims()});
  for (int64_t i = 0; i < n; ++i) {
    out[static_cast<size_t>(i)] = v[static_cast<size_t>(it.offset(0))];
    if (i + 1 < n) it.next();
  }
  return out;
}

namespace {

// A parameter as doubles: `count` elements, 1-D unless `any_rank`.
Result<std::vector<double>> channel_param(const Tensor& t, int64_t count, const char* name, bool any_rank = false) {
  if (t.numel() != count || (t.rank() != 1 && !any_rank)) {
    return invalid_argument("{} must have shape [{}], got {}", name, count, dims_to_string(t.dims()));
  }
  return norm_doubles(t);
}

// ---- BatchNormalization ----------------------------------------------------------

Status batch_norm_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.error(invalid_argument("X must have rank >= 2, got {}", dims_to_string(x.dims())));
  const int64_t n = x.dim(0), c = x.dim(1);
  const int64_t inner = c == 0 || n == 0 ? 0 : x.numel() / (n * c);
  const double eps = ctx.node().attr_float("epsilon", 1e-5f);
  // Before opset 9, spatial=0 gives every element of [C, D1, ...] its own statistics.
  const bool per_activation = ctx.opset() < 9 && ctx.node().attr_int("spatial", 1) == 0;
  const int64_t groups = per_activation ? c * inner : c;
  const int64_t run = per_activation ? 1 : inner;  // consecutive elements sharing a parameter
  const bool training = ctx.opset() >= 14 ? ctx.node().attr_int("training_mode", 0) != 0 : false;
  if (ctx.opset() < 14 && (ctx.wants_output(1) || ctx.wants_output(2))) {
    return ctx.error(unimplemented("training-mode BatchNormalization is only supported from opset 14"));
  }
  if (!training && ctx.opset() >= 14 && (ctx.wants_output(1) || ctx.wants_output(2))) {
    return ctx.error(invalid_argument("running_mean and running_var outputs need training_mode=1"));
  }
  std::vector<std::vector<double>> p(4);
  const char* names[] = {"scale", "B", "input_mean", "input_var"};
  for (size_t i = 0; i < 4; ++i) {
    auto v = channel_param(ctx.input(i + 1), groups, names[i], per_activation);
    if (!v.is_ok()) return ctx.error(v.status());
    p[i] = std::move(v).value();
  }
  KILN_ASSIGN_OR_RETURN(std::vector<double> xv, norm_doubles(x));
  std::vector<double> mean = p[2], var = p[3];
  if (training) {
    const double count = static_cast<double>(n * inner);
    std::fill(mean.begin(), mean.end(), 0.0);
    std::fill(var.begin(), var.end(), 0.0);
    for (int64_t i = 0; i < x.numel(); ++i) mean[static_cast<size_t>((i / run) % groups)] += xv[static_cast<size_t>(i)];
    for (auto& m : mean) m = count > 0 ? m / count : 0.0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double d = xv[static_cast<size_t>(i)] - mean[static_cast<size_t>((i / run) % groups)];
      var[static_cast<size_t>((i / run) % groups)] += d * d;
    }
    for (auto& v : var) v = count > 0 ? v / count : 0.0;
  }
  std::vector<double> y(xv.size());
  for (int64_t i = 0; i < x.numel(); ++i) {
    const size_t ch = static_cast<size_t>((i / run) % groups);
    y[static_cast<size_t>(i)] = p[0][ch] * (xv[static_cast<size_t>(i)] - mean[ch]) / std::sqrt(var[ch] + eps) + p[1][ch];
  }
  KILN_RETURN_IF_ERROR(norm_set_output(ctx, 0, x.dtype(), x.dims(), y));
  if (training) {
    const double momentum = ctx.node().attr_float("momentum", 0.9f);
    std::vector<double> running_mean(mean.size()), running_var(var.size());
    for (size_t i = 0; i < mean.size(); ++i) {
      running_mean[i] = p[2][i] * momentum + mean[i] * (1 - momentum);
      running_var[i] = p[3][i] * momentum + var[i] * (1 - momentum);
    }
    if (ctx.wants_output(1)) {
      KILN_RETURN_IF_ERROR(norm_set_output(ctx, 1, ctx.input(3).dtype(), ctx.input(3).dims(), running_mean));
    }
    if (ctx.wants_output(2)) {
      KILN_RETURN_IF_ERROR(norm_set_output(ctx, 2, ctx.input(4).dtype(), ctx.input(4).dims(), running_var));
    }
  }
  return Status::ok();
}

Status batch_norm_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  if (ctx.num_outputs() > 1) ctx.set_output_type(1, ctx.input_type(3));
  if (ctx.num_outputs() > 2) ctx.set_output_type(2, ctx.input_type(4));
  return Status::ok();
}

Status same_as_input_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::ok();
}

// ---- InstanceNormalization ---------------------------------------------------------

Status instance_norm_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) return ctx.error(invalid_argument("X must have rank >= 3, got {}", dims_to_string(x.dims())));
  const int64_t n = x.dim(0), c = x.dim(1);
  const int64_t len = n * c == 0 ? 0 : x.numel() / (n * c);
  auto scale = channel_param(ctx.input(1), c, "scale");
  if (!scale.is_ok()) return ctx.error(scale.status());
  auto bias = channel_param(ctx.input(2), c, "B");
  if (!bias.is_ok()) return ctx.error(bias.status());
  const double eps = ctx.node().attr_float("epsilon", 1e-5f);
  KILN_ASSIGN_OR_RETURN(std::vector<double> xv, norm_doubles(x));
  std::vector<double> mean, var;
  norm_row_moments(xv, n * c, len, mean, var);
  for (int64_t r = 0; r < n * c; ++r) {
    const size_t ch = static_cast<size_t>(r % c);
    const double inv = 1.0 / std::sqrt(var[static_cast<size_t>(r)] + eps);
    for (int64_t i = 0; i < len; ++i) {
      double& v = xv[static_cast<size_t>(r * len + i)];
      v = (*scale)[ch] * (v - mean[static_cast<size_t>(r)]) * inv + (*bias)[ch];
    }
  }
  return norm_set_output(ctx, 0, x.dtype(), x.dims(), xv);
}

// ---- LRN -----------------------------------------------------------------------

Status lrn_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) return ctx.error(invalid_argument("X must have rank >= 3, got {}", dims_to_string(x.dims())));
  const auto& node = ctx.node();
  const int64_t size = node.attr_int("size", 0);
  if (size <= 0) return ctx.error(invalid_argument("attribute 'size' must be a positive integer, got {}", size));
  const double alpha = node.attr_float("alpha", 1e-4f);
  const double beta = node.attr_float("beta", 0.75f);
  const double bias = node.attr_float("bias", 1.0f);
  const int64_t n = x.dim(0), c = x.dim(1);
  const int64_t inner = n * c == 0 ? 0 : x.numel() / (n * c);
  const int64_t before = (size - 1) / 2, after = size - 1 - before;  // channels [c - floor, c + ceil]
  KILN_ASSIGN_OR_RETURN(std::vector<double> xv, norm_doubles(x));
  std::vector<double> y(xv.size());
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t i = 0; i < inner; ++i) {
        double sq = 0;
        for (int64_t k = std::max<int64_t>(0, ch - before); k <= std::min(c - 1, ch + after); ++k) {
          const double v = xv[static_cast<size_t>((b * c + k) * inner + i)];
          sq += v * v;
        }
        const size_t at = static_cast<size_t>((b * c + ch) * inner + i);
        y[at] = xv[at] / std::pow(bias + alpha / static_cast<double>(size) * sq, beta);
      }
    }
  }
  return norm_set_output(ctx, 0, x.dtype(), x.dims(), y);
}

// ---- LpNormalization -------------------------------------------------------------

Status lp_norm_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t p = ctx.node().attr_int("p", 2);
  if (p != 1 && p != 2) return ctx.error(invalid_argument("p must be 1 or 2, got {}", p));
  auto axis = normalize_axis(ctx.node().attr_int("axis", -1), x.rank());
  if (!axis.is_ok()) return ctx.error(axis.status());
  int64_t outer = 1, len = x.rank() == 0 ? 1 : x.dim(*axis), inner = 1;
  for (int64_t d = 0; d < *axis; ++d) outer *= x.dim(d);
  for (int64_t d = *axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  KILN_ASSIGN_OR_RETURN(std::vector<double> xv, norm_doubles(x));
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      double norm = 0;
      for (int64_t k = 0; k < len; ++k) {
        const double v = xv[static_cast<size_t>((o * len + k) * inner + i)];
        norm += p == 1 ? std::abs(v) : v * v;
      }
      if (p == 2) norm = std::sqrt(norm);
      for (int64_t k = 0; k < len; ++k) {
        double& v = xv[static_cast<size_t>((o * len + k) * inner + i)];
        v = norm == 0 ? 0.0 : v / norm;  // a zero vector stays zero
      }
    }
  }
  return norm_set_output(ctx, 0, x.dtype(), x.dims(), xv);
}

// ---- MeanVarianceNormalization -------------------------------------------------------

Status mvn_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  auto axes = normalize_axes(ctx.node().attr_ints("axes", {0, 2, 3}), x.rank());
  if (!axes.is_ok()) return ctx.error(axes.status());
  // Statistics are kept per index over the axes not reduced.
  Dims kept = x.dims();
  for (int64_t a : *axes) kept[static_cast<size_t>(a)] = 1;
  KILN_ASSIGN_OR_RETURN(std::vector<double> xv, norm_doubles(x));
  KILN_ASSIGN_OR_RETURN(int64_t groups, checked_numel(kept));
  const double count = groups == 0 ? 0.0 : static_cast<double>(x.numel()) / static_cast<double>(groups);
  std::vector<double> sum(static_cast<size_t>(groups), 0.0), sq(static_cast<size_t>(groups), 0.0);
  std::vector<int64_t> group_of(static_cast<size_t>(x.numel()));
  BroadcastIterator it(x.dims(), {kept});
  for (int64_t i = 0; i < x.numel(); ++i) {
    group_of[static_cast<size_t>(i)] = it.offset(0);
    if (i + 1 < x.numel()) it.next();
  }
  for (int64_t i = 0; i < x.numel(); ++i) {
    const size_t g = static_cast<size_t>(group_of[static_cast<size_t>(i)]);
    sum[g] += xv[static_cast<size_t>(i)];
    sq[g] += xv[static_cast<size_t>(i)] * xv[static_cast<size_t>(i)];
  }
  // The ONNX function body: (X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9).
  for (int64_t i = 0; i < x.numel(); ++i) {
    const size_t g = static_cast<size_t>(group_of[static_cast<size_t>(i)]);
    const double mean = sum[g] / count;
    const double var = std::max(0.0, sq[g] / count - mean * mean);
    xv[static_cast<size_t>(i)] = (xv[static_cast<size_t>(i)] - mean) / (std::sqrt(var) + 1e-9);
  }
  return norm_set_output(ctx, 0, x.dtype(), x.dims(), xv);
}

}  // namespace

void register_normalization(Registry& r) {
  r.add({.name = "BatchNormalization", .domain = "", .since_version = 1, .min_inputs = 5, .max_inputs = 5,
         .min_outputs = 1, .max_outputs = 5, .kernel = batch_norm_kernel, .infer = batch_norm_infer});
  r.add({.name = "InstanceNormalization", .domain = "", .since_version = 1, .min_inputs = 3, .max_inputs = 3,
         .kernel = instance_norm_kernel, .infer = same_as_input_infer});
  r.add({.name = "LRN", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1, .kernel = lrn_kernel,
         .infer = same_as_input_infer});
  r.add({.name = "LpNormalization", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = lp_norm_kernel, .infer = same_as_input_infer});
  r.add({.name = "MeanVarianceNormalization", .domain = "", .since_version = 9, .min_inputs = 1, .max_inputs = 1,
         .kernel = mvn_kernel, .infer = same_as_input_infer});
  register_layer_normalizations(r);
}

}  // namespace kiln::ops
