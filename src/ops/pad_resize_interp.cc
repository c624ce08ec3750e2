// Resize (10, 11, 13, 18, 19) and Upsample (7, 9): part of the pad_resize
// family, registered by register_pad_resize.
//
// Interpolation is separable, so it runs one resized axis at a time. Each
// axis gets a table of taps (input index and weight) per output position,
// built as in the ONNX spec and reference: the source coordinate x comes from
// coordinate_transformation_mode; with base = floor(x) (x - 1 when x is an
// integer) and ratio = x - base in (0, 1], an n-tap filter reads inputs
// base - n/2 + 1 ... base + n/2, clamped to the axis (edge padding).
// Nearest mode is a pure gather (exact for every element type).
#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "ops/op_util.h"
#include "ops/pad_resize.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

struct ResizeParams {
  std::string mode = "nearest";         // nearest, linear, cubic
  std::string coord = "half_pixel";     // coordinate_transformation_mode, or "legacy" (opset < 11, Upsample)
  std::string nearest = "round_prefer_floor";
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0.0;
  bool antialias = false;
  std::vector<int64_t> axes;   // resized axes, normalized
  std::vector<double> scales;  // per axis of the tensor
  Dims out;                    // output dims
  std::vector<double> roi_start, roi_end;  // per axis of the tensor
};

double source_coordinate(const ResizeParams& p, size_t d, int64_t o, int64_t in_len) {
  const double scale = p.scales[d];
  const double out_len = static_cast<double>(p.out[d]);
  const double x = static_cast<double>(o);
  const std::string& c = p.coord;
  if (c == "half_pixel") return (x + 0.5) / scale - 0.5;
  if (c == "pytorch_half_pixel") return out_len > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
  if (c == "align_corners") {
    // ONNX takes the resized length as in_len * scale, unrounded, when scales are given.
    const double resized = scale * static_cast<double>(in_len);
    return resized == 1 ? 0.0 : x * static_cast<double>(in_len - 1) / (resized - 1);
  }
  if (c == "asymmetric" || c == "legacy") return x / scale;
  if (c == "tf_half_pixel_for_nn") return (x + 0.5) / scale;
  if (c == "half_pixel_symmetric") {
    const double adjustment = out_len / (scale * static_cast<double>(in_len));
    const double center = static_cast<double>(in_len) / 2;
    return center * (1 - adjustment) + (x + 0.5) / scale - 0.5;
  }
  // tf_crop_and_resize
  const double s = p.roi_start[d], e = p.roi_end[d], span = static_cast<double>(in_len - 1);
  return out_len > 1 ? s * span + x * (e - s) * span / (out_len - 1) : 0.5 * (s + e) * span;
}

int64_t nearest_index(const ResizeParams& p, size_t d, double x) {
  if (p.coord == "legacy") return p.scales[d] < 1 ? static_cast<int64_t>(std::ceil(x)) : static_cast<int64_t>(std::floor(x));
  if (p.nearest == "floor") return static_cast<int64_t>(std::floor(x));
  if (p.nearest == "ceil") return static_cast<int64_t>(std::ceil(x));
  if (p.nearest == "round_prefer_ceil") return static_cast<int64_t>(std::floor(x + 0.5));
  return static_cast<int64_t>(std::ceil(x - 0.5));  // round_prefer_floor
}

double cubic_weight(double x, double a) {
  x = std::abs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0;
}

// Taps of one axis: n per output position.
struct Taps {
  int64_t n = 0;
  std::vector<int64_t> index;
  std::vector<double> weight;
  std::vector<bool> extrapolate;  // tf_crop_and_resize positions outside the input
};

Taps interpolation_taps(const ResizeParams& p, size_t d, int64_t in_len) {
  Taps t;
  const int64_t out_len = p.out[d];
  const double s = std::min(p.scales[d], 1.0);  // antialias widens the filter when downsampling
  const bool cubic = p.mode == "cubic";
  const int64_t rel_start = p.antialias ? static_cast<int64_t>(std::floor((cubic ? -2.0 : -1.0) / s)) + 1 : (cubic ? -1 : 0);
  t.n = 2 - 2 * rel_start;
  for (int64_t o = 0; o < out_len; ++o) {
    const double x = source_coordinate(p, d, o, in_len);
    t.extrapolate.push_back(p.coord == "tf_crop_and_resize" && (x < 0 || x > static_cast<double>(in_len - 1)));
    const double fl = std::floor(x);
    const double base = fl == x ? x - 1 : fl;
    const double ratio = x - base;
    std::vector<double> w(static_cast<size_t>(t.n));
    std::vector<int64_t> idx(static_cast<size_t>(t.n));
    double sum = 0;
    for (int64_t k = 0; k < t.n; ++k) {
      const int64_t i = rel_start + k;
      const double dist = (static_cast<double>(i) - ratio) * (p.antialias ? s : 1.0);
      double wk = cubic ? cubic_weight(dist, p.cubic_a) : std::max(0.0, 1 - std::abs(dist));
      const int64_t src = static_cast<int64_t>(base) + i;
      if (p.exclude_outside && (src < 0 || src >= in_len)) wk = 0;
      w[static_cast<size_t>(k)] = wk;
      idx[static_cast<size_t>(k)] = std::clamp<int64_t>(src, 0, in_len - 1);
      sum += wk;
    }
    const bool normalize = (p.antialias || p.exclude_outside) && sum != 0;
    for (int64_t k = 0; k < t.n; ++k) {
      t.index.push_back(idx[static_cast<size_t>(k)]);
      t.weight.push_back(normalize ? w[static_cast<size_t>(k)] / sum : w[static_cast<size_t>(k)]);
    }
  }
  return t;
}

// Linear or cubic resize: separable passes over the resized axes, in double.
Result<Tensor> interpolate(const Tensor& x, const ResizeParams& p) {
  KILN_ASSIGN_OR_RETURN(Tensor cur, to_float64(x));
  if (cur.raw_data() == x.raw_data()) cur = cur.clone();
  for (int64_t a : p.axes) {
    const size_t d = static_cast<size_t>(a);
    const int64_t in_len = cur.dim(a);
    if (in_len == p.out[d] && p.scales[d] == 1.0 && p.coord != "tf_crop_and_resize") continue;
    if (in_len == 0 && p.out[d] > 0) return invalid_argument("cannot resize the empty axis {}", a);
    const Taps t = interpolation_taps(p, d, in_len);
    Dims nd = cur.dims();
    nd[d] = p.out[d];
    KILN_ASSIGN_OR_RETURN(Tensor next, Tensor::allocate(DataType::kFloat64, nd));
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < a; ++i) outer *= cur.dim(i);
    for (int64_t i = a + 1; i < cur.rank(); ++i) inner *= cur.dim(i);
    const double* src = cur.data<double>();
    double* dst = next.data<double>();
    for (int64_t b = 0; b < outer; ++b) {
      for (int64_t o = 0; o < p.out[d]; ++o) {
        double* row = dst + (b * p.out[d] + o) * inner;
        if (t.extrapolate[static_cast<size_t>(o)]) {
          std::fill(row, row + inner, p.extrapolation);
          continue;
        }
        for (int64_t k = 0; k < t.n; ++k) {
          const size_t tk = static_cast<size_t>(o * t.n + k);
          const double w = t.weight[tk];
          if (w == 0) continue;
          const double* in_row = src + (b * in_len + t.index[tk]) * inner;
          for (int64_t i = 0; i < inner; ++i) row[i] += w * in_row[i];
        }
      }
    }
    cur = std::move(next);
  }
  if (is_integer(x.dtype())) {  // round half to even, then saturate (as the reference does)
    double* v = cur.data<double>();
    for (int64_t i = 0; i < cur.numel(); ++i) v[i] = std::nearbyint(v[i]);
  }
  return cast_tensor(cur, x.dtype());
}

Result<Tensor> nearest_resize(const Tensor& x, const ResizeParams& p) {
  std::vector<std::vector<int64_t>> src(static_cast<size_t>(x.rank()));
  for (int64_t a = 0; a < x.rank(); ++a) {
    const size_t d = static_cast<size_t>(a);
    const int64_t in_len = x.dim(a);
    const bool resized = std::find(p.axes.begin(), p.axes.end(), a) != p.axes.end();
    if (in_len == 0 && p.out[d] > 0) return invalid_argument("cannot resize the empty axis {}", a);
    for (int64_t o = 0; o < p.out[d]; ++o) {
      if (!resized) {
        src[d].push_back(o);
        continue;
      }
      const double c = source_coordinate(p, d, o, in_len);
      if (p.coord == "tf_crop_and_resize" && (c < 0 || c > static_cast<double>(in_len - 1))) {
        src[d].push_back(-1);
        continue;
      }
      src[d].push_back(std::clamp<int64_t>(nearest_index(p, d, c), 0, in_len - 1));
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor fill, cast_tensor(Tensor::scalar<double>(DataType::kFloat64, p.extrapolation), x.dtype()));
  return gather_by_axis_maps(x, p.out, src, fill);
}

Result<std::vector<double>> float_values(const Tensor& t) {
  KILN_ASSIGN_OR_RETURN(Tensor d, to_float64(t));
  return std::vector<double>(d.data<double>(), d.data<double>() + d.numel());
}

// Fills p.scales and p.out from scales (one per resized axis) or sizes.
Status output_geometry(const Tensor& x, const std::vector<double>* scales, const std::vector<int64_t>* sizes,
                       const std::string& policy, ResizeParams& p) {
  const size_t r = static_cast<size_t>(x.rank());
  p.scales.assign(r, 1.0);
  p.out = x.dims();
  if (scales != nullptr) {
    if (scales->size() != p.axes.size()) {
      return invalid_argument("scales has {} values, expected {}", scales->size(), p.axes.size());
    }
    for (size_t i = 0; i < p.axes.size(); ++i) {
      const double s = (*scales)[i];
      if (!(s > 0) || !std::isfinite(s)) return invalid_argument("scales must be positive, got {}", s);
      const size_t d = static_cast<size_t>(p.axes[i]);
      p.scales[d] = s;
      const double len = std::floor(static_cast<double>(x.dim(p.axes[i])) * s);
      if (len > static_cast<double>(kMaxTensorElements)) return invalid_argument("scale {} makes axis {} too large", s, d);
      p.out[d] = static_cast<int64_t>(len);
    }
    return Status::ok();
  }
  if (sizes->size() != p.axes.size()) {
    return invalid_argument("sizes has {} values, expected {}", sizes->size(), p.axes.size());
  }
  for (size_t i = 0; i < p.axes.size(); ++i) {
    const int64_t in = x.dim(p.axes[i]);
    if ((*sizes)[i] < 0) return invalid_argument("sizes must be non-negative, got {}", (*sizes)[i]);
    if (in == 0 && (*sizes)[i] != 0) return invalid_argument("cannot resize the empty axis {}", p.axes[i]);
    p.scales[static_cast<size_t>(p.axes[i])] = in == 0 ? 1.0 : static_cast<double>((*sizes)[i]) / static_cast<double>(in);
    p.out[static_cast<size_t>(p.axes[i])] = (*sizes)[i];
  }
  if (policy == "stretch") return Status::ok();
  if (policy != "not_larger" && policy != "not_smaller") {
    return invalid_argument("unknown keep_aspect_ratio_policy '{}'", policy);
  }
  double s = policy == "not_larger" ? INFINITY : 0.0;
  for (int64_t a : p.axes) {
    const double v = p.scales[static_cast<size_t>(a)];
    s = policy == "not_larger" ? std::min(s, v) : std::max(s, v);
  }
  for (int64_t a : p.axes) {
    p.scales[static_cast<size_t>(a)] = s;
    p.out[static_cast<size_t>(a)] = static_cast<int64_t>(std::floor(s * static_cast<double>(x.dim(a)) + 0.5));
  }
  return Status::ok();
}

Status check_choice(const std::string& what, const std::string& v, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (v == a) return Status::ok();
  }
  return invalid_argument("unknown {} '{}'", what, v);
}

Status run_resize(KernelContext& ctx, ResizeParams& p) {
  const Tensor& x = ctx.input(0);
  auto numel = checked_numel(p.out);
  if (!numel.is_ok()) return ctx.error(numel.status());
  if (*numel == 0) {  // empty output: skip building per-axis tables
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, x.dtype(), p.out));
    (void)y;
    return Status::ok();
  }
  Result<Tensor> y = p.mode == "nearest" ? nearest_resize(x, p) : interpolate(x, p);
  if (!y.is_ok()) return ctx.error(y.status());
  ctx.set_output(0, std::move(y).value());
  return Status::ok();
}

Status resize_kernel(KernelContext& ctx) {
  const auto& node = ctx.node();
  const Tensor& x = ctx.input(0);
  const int64_t opset = ctx.opset();
  ResizeParams p;
  p.mode = node.attr_string("mode", "nearest");
  KILN_RETURN_IF_ERROR(ctx.error(opset >= 11 ? check_choice("mode", p.mode, {"nearest", "linear", "cubic"})
                                             : check_choice("mode", p.mode, {"nearest", "linear"})));
  for (int64_t d = 0; d < x.rank(); ++d) p.axes.push_back(d);
  if (opset < 11) {  // Resize-10: X, scales; asymmetric coordinates
    p.coord = "legacy";
    if (!ctx.has_input(1)) return ctx.error(invalid_argument("input 'scales' is required"));
    auto s = float_values(ctx.input(1));
    if (!s.is_ok()) return ctx.error(s.status());
    KILN_RETURN_IF_ERROR(ctx.error(output_geometry(x, &*s, nullptr, "stretch", p)));
    return run_resize(ctx, p);
  }
  p.coord = node.attr_string("coordinate_transformation_mode", "half_pixel");
  KILN_RETURN_IF_ERROR(ctx.error(check_choice(
      "coordinate_transformation_mode", p.coord,
      {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize",
       "tf_half_pixel_for_nn"})));
  p.nearest = node.attr_string("nearest_mode", "round_prefer_floor");
  KILN_RETURN_IF_ERROR(ctx.error(
      check_choice("nearest_mode", p.nearest, {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"})));
  p.cubic_a = node.attr_float("cubic_coeff_a", -0.75f);
  p.exclude_outside = node.attr_int("exclude_outside", 0) != 0;
  p.extrapolation = node.attr_float("extrapolation_value", 0.0f);
  p.antialias = opset >= 18 && node.attr_int("antialias", 0) != 0;
  if (opset >= 18 && node.has_attr("axes")) {
    auto axes = normalize_axes(node.attr_ints("axes"), x.rank());
    if (!axes.is_ok()) return ctx.error(axes.status());
    p.axes = std::move(axes).value();
  }
  const bool has_scales = ctx.has_input(2) && ctx.input(2).numel() > 0;
  const bool has_sizes = ctx.has_input(3) && ctx.input(3).numel() > 0;
  if (has_scales == has_sizes) {
    return ctx.error(invalid_argument("exactly one of 'scales' and 'sizes' must be given"));
  }
  // roi: [starts..., ends...] over the resized axes; only tf_crop_and_resize reads it.
  const size_t r = static_cast<size_t>(x.rank());
  p.roi_start.assign(r, 0.0);
  p.roi_end.assign(r, 1.0);
  if (p.coord == "tf_crop_and_resize") {
    if (!ctx.has_input(1) || ctx.input(1).numel() == 0) {
      return ctx.error(invalid_argument("tf_crop_and_resize needs the 'roi' input"));
    }
    auto roi = float_values(ctx.input(1));
    if (!roi.is_ok()) return ctx.error(roi.status());
    if (roi->size() != 2 * p.axes.size()) {
      return ctx.error(invalid_argument("roi has {} values, expected {}", roi->size(), 2 * p.axes.size()));
    }
    for (size_t i = 0; i < p.axes.size(); ++i) {
      p.roi_start[static_cast<size_t>(p.axes[i])] = (*roi)[i];
      p.roi_end[static_cast<size_t>(p.axes[i])] = (*roi)[p.axes.size() + i];
    }
  }
  const std::string policy = opset >= 18 ? node.attr_string("keep_aspect_ratio_policy", "stretch") : "stretch";
  Status st;
  if (has_scales) {
    auto s = float_values(ctx.input(2));
    if (!s.is_ok()) return ctx.error(s.status());
    st = output_geometry(x, &*s, nullptr, policy, p);
  } else {
    auto s = to_int64_vector(ctx.input(3));
    if (!s.is_ok()) return ctx.error(s.status().with_context("sizes"));
    st = output_geometry(x, nullptr, &*s, policy, p);
  }
  KILN_RETURN_IF_ERROR(ctx.error(st));
  return run_resize(ctx, p);
}

// Upsample: scales (attribute at opset 7, input from 9) per axis, nearest or linear, asymmetric coordinates.
Status upsample_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ResizeParams p;
  p.mode = ctx.node().attr_string("mode", "nearest");
  if (p.mode == "bilinear") p.mode = "linear";
  KILN_RETURN_IF_ERROR(ctx.error(check_choice("mode", p.mode, {"nearest", "linear"})));
  p.coord = "legacy";
  for (int64_t d = 0; d < x.rank(); ++d) p.axes.push_back(d);
  std::vector<double> scales;
  if (ctx.opset() < 9) {
    for (float f : ctx.node().attr_floats("scales")) scales.push_back(f);
  } else {
    if (!ctx.has_input(1)) return ctx.error(invalid_argument("input 'scales' is required from opset 9"));
    auto s = float_values(ctx.input(1));
    if (!s.is_ok()) return ctx.error(s.status());
    scales = std::move(s).value();
  }
  for (double s : scales) {
    if (s < 1) return ctx.error(invalid_argument("Upsample scales must be >= 1, got {}", s));
  }
  KILN_RETURN_IF_ERROR(ctx.error(output_geometry(x, &scales, nullptr, "stretch", p)));
  return run_resize(ctx, p);
}

Status resize_infer(InferContext& ctx) {
  const auto& xt = ctx.input_type(0);
  ir::ValueType out = ir::ValueType::tensor(xt.dtype);
  if (xt.shape.rank_known()) out.shape = Shape::unknown_dims(xt.shape.rank());
  // Fully derivable when X's dims and the scales/sizes are known, with no axes/policy subtleties.
  const bool simple = ctx.node().op_type() == "Resize" && ctx.opset() >= 11 && !ctx.node().has_attr("axes") &&
                      ctx.node().attr_string("keep_aspect_ratio_policy", "stretch") == "stretch";
  const Tensor* sizes = ctx.num_inputs() > 3 ? ctx.input_constant(3) : nullptr;
  const Tensor* scales = ctx.num_inputs() > 2 ? ctx.input_constant(2) : nullptr;
  if (simple && xt.shape.rank_known()) {
    if (sizes != nullptr && sizes->numel() == xt.shape.rank()) {
      if (auto v = to_int64_vector(*sizes); v.is_ok()) {
        for (int64_t d = 0; d < xt.shape.rank(); ++d) out.shape[d] = Dim((*v)[static_cast<size_t>(d)]);
      }
    } else if (scales != nullptr && scales->numel() == xt.shape.rank()) {
      if (auto v = float_values(*scales); v.is_ok()) {
        for (int64_t d = 0; d < xt.shape.rank(); ++d) {
          if (xt.shape[d].known()) {
            out.shape[d] = Dim(static_cast<int64_t>(std::floor(static_cast<double>(xt.shape[d].value) * (*v)[static_cast<size_t>(d)])));
          }
        }
      }
    }
  }
  ctx.set_output_type(0, out);
  return Status::ok();
}

}  // namespace

void register_resize_ops(Registry& r) {
  r.add({.name = "Resize", .domain = "", .since_version = 10, .min_inputs = 1, .max_inputs = 4,
         .kernel = resize_kernel, .infer = resize_infer});
  r.add({.name = "Upsample", .domain = "", .since_version = 7, .min_inputs = 1, .max_inputs = 2,
         .kernel = upsample_kernel, .infer = resize_infer});
}

}  // namespace kiln::ops
