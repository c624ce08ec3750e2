// LayerNormalization (17), GroupNormalization (18, 21) and RMSNormalization
// (23): part of the normalization family, registered by register_normalization.
#include <cmath>

#include "core/error.h"
#include "ops/normalization.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

// The element type of Mean/InvStdDev named by stash_type (float by default).
Result<DataType> stash_type(const ir::Node& node) {
  const int64_t v = node.attr_int("stash_type", 1);
  auto t = data_type_from_int(v);
  if (!t || !is_floating(*t)) return invalid_argument("stash_type {} is not a floating-point type", v);
  return *t;
}

struct Split {
  int64_t axis = 0;
  int64_t rows = 1;  // product of dims before axis
  int64_t len = 1;   // product of dims from axis on
  Dims block;        // dims from axis on
};

Result<Split> split_at_axis(const Tensor& x, int64_t axis_attr) {
  Split s;
  KILN_ASSIGN_OR_RETURN(s.axis, normalize_axis(axis_attr, x.rank()));
  for (int64_t d = 0; d < x.rank(); ++d) {
    if (d < s.axis) {
      s.rows *= x.dim(d);
    } else {
      s.len *= x.dim(d);
      s.block.push_back(x.dim(d));
    }
  }
  return s;
}

// ---- LayerNormalization --------------------------------------------------------

Status layer_norm_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  auto split = split_at_axis(x, ctx.node().attr_int("axis", -1));
  if (!split.is_ok()) return ctx.error(split.status());
  auto stash = stash_type(ctx.node());
  if (!stash.is_ok()) return ctx.error(stash.status());
  auto scale = norm_broadcast_param(ctx.input(1), split->block, "Scale");
  if (!scale.is_ok()) return ctx.error(scale.status());
  std::vector<double> bias(static_cast<size_t>(split->len), 0.0);
  if (ctx.has_input(2)) {
    auto b = norm_broadcast_param(ctx.input(2), split->block, "B");
    if (!b.is_ok()) return ctx.error(b.status());
    bias = std::move(b).value();
  }
  const double eps = ctx.node().attr_float("epsilon", 1e-5f);
  KILN_ASSIGN_OR_RETURN(std::vector<double> xv, norm_doubles(x));
  std::vector<double> mean, var;
  norm_row_moments(xv, split->rows, split->len, mean, var);
  std::vector<double> inv_std(mean.size());
  for (int64_t r = 0; r < split->rows; ++r) {
    const size_t ri = static_cast<size_t>(r);
    inv_std[ri] = 1.0 / std::sqrt(var[ri] + eps);
    for (int64_t i = 0; i < split->len; ++i) {
      double& v = xv[static_cast<size_t>(r * split->len + i)];
      v = (v - mean[ri]) * inv_std[ri] * (*scale)[static_cast<size_t>(i)] + bias[static_cast<size_t>(i)];
    }
  }
  KILN_RETURN_IF_ERROR(norm_set_output(ctx, 0, x.dtype(), x.dims(), xv));
  Dims stat_dims = x.dims();
  for (int64_t d = split->axis; d < x.rank(); ++d) stat_dims[static_cast<size_t>(d)] = 1;
  if (ctx.wants_output(1)) KILN_RETURN_IF_ERROR(norm_set_output(ctx, 1, *stash, stat_dims, mean));
  if (ctx.wants_output(2)) KILN_RETURN_IF_ERROR(norm_set_output(ctx, 2, *stash, stat_dims, inv_std));
  return Status::ok();
}

Status layer_norm_infer(InferContext& ctx) {
  const auto& xt = ctx.input_type(0);
  ctx.set_output_type(0, xt);
  KILN_ASSIGN_OR_RETURN(DataType stash, stash_type(ctx.node()));
  Shape stats;
  if (xt.shape.rank_known()) {
    stats = xt.shape;
    auto axis = normalize_axis(ctx.node().attr_int("axis", -1), xt.shape.rank());
    if (!axis.is_ok()) return axis.status().with_context(ctx.node().describe());
    for (int64_t d = *axis; d < stats.rank(); ++d) stats[d] = Dim(1);
  }
  for (size_t i = 1; i < ctx.num_outputs() && i < 3; ++i) ctx.set_output_type(i, ir::ValueType::tensor(stash, stats));
  return Status::ok();
}

// ---- GroupNormalization --------------------------------------------------------

// Opset 18 scales each group (scale/bias of shape [num_groups]); opset 21 each channel ([C]).
Status group_norm_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return ctx.error(invalid_argument("X must have rank >= 2, got {}", dims_to_string(x.dims())));
  const int64_t groups = ctx.node().attr_int("num_groups", 0);
  const int64_t n = x.dim(0), c = x.dim(1);
  if (groups <= 0 || c % groups != 0) {
    return ctx.error(invalid_argument("num_groups {} must be positive and divide the {} channels", groups, c));
  }
  const bool per_channel = ctx.opset() >= 21;
  const int64_t params = per_channel ? c : groups;
  std::vector<double> scale, bias;
  for (size_t i = 1; i <= 2; ++i) {
    const Tensor& t = ctx.input(i);
    if (t.rank() != 1 || t.dim(0) != params) {
      return ctx.error(invalid_argument("{} must have shape [{}] at opset {}, got {}", i == 1 ? "scale" : "bias", params,
                                        ctx.opset(), dims_to_string(t.dims())));
    }
    KILN_ASSIGN_OR_RETURN(std::vector<double> v, norm_doubles(t));
    (i == 1 ? scale : bias) = std::move(v);
  }
  const double eps = ctx.node().attr_float("epsilon", 1e-5f);
  const int64_t spatial = n * c == 0 ? 0 : x.numel() / (n * c);
  const int64_t per_group = (c / groups) * spatial;
  KILN_ASSIGN_OR_RETURN(std::vector<double> xv, norm_doubles(x));
  std::vector<double> mean, var;
  norm_row_moments(xv, n * groups, per_group, mean, var);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t ch = (i / spatial) % c;
    const size_t row = static_cast<size_t>(i / per_group);
    const size_t pi = static_cast<size_t>(per_channel ? ch : ch / (c / groups));
    double& v = xv[static_cast<size_t>(i)];
    v = (v - mean[row]) / std::sqrt(var[row] + eps) * scale[pi] + bias[pi];
  }
  return norm_set_output(ctx, 0, x.dtype(), x.dims(), xv);
}

// ---- RMSNormalization ------------------------------------------------------------

Status rms_norm_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  auto split = split_at_axis(x, ctx.node().attr_int("axis", -1));
  if (!split.is_ok()) return ctx.error(split.status());
  auto stash = stash_type(ctx.node());
  if (!stash.is_ok()) return ctx.error(stash.status());
  auto scale = norm_broadcast_param(ctx.input(1), split->block, "scale");
  if (!scale.is_ok()) return ctx.error(scale.status());
  const double eps = ctx.node().attr_float("epsilon", 1e-5f);
  KILN_ASSIGN_OR_RETURN(std::vector<double> xv, norm_doubles(x));
  for (int64_t r = 0; r < split->rows; ++r) {
    double* row = xv.data() + r * split->len;
    double sq = 0;
    for (int64_t i = 0; i < split->len; ++i) sq += row[i] * row[i];
    const double inv = 1.0 / std::sqrt(sq / static_cast<double>(split->len) + eps);
    for (int64_t i = 0; i < split->len; ++i) row[i] = row[i] * inv * (*scale)[static_cast<size_t>(i)];
  }
  return norm_set_output(ctx, 0, x.dtype(), x.dims(), xv);
}

Status same_as_input_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::ok();
}

}  // namespace

void register_layer_normalizations(Registry& r) {
  r.add({.name = "LayerNormalization", .domain = "", .since_version = 17, .min_inputs = 2, .max_inputs = 3,
         .min_outputs = 1, .max_outputs = 3, .kernel = layer_norm_kernel, .infer = layer_norm_infer});
  r.add({.name = "GroupNormalization", .domain = "", .since_version = 18, .min_inputs = 3, .max_inputs = 3,
         .kernel = group_norm_kernel, .infer = same_as_input_infer});
  r.add({.name = "RMSNormalization", .domain = "", .since_version = 23, .min_inputs = 2, .max_inputs = 2,
         .kernel = rms_norm_kernel, .infer = same_as_input_infer});
}

}  // namespace kiln::ops
