// Op family: geometry. GridSample and AffineGrid here; RoiAlign and
// NonMaxSuppression in geometry_roi.cc; Col2Im, DeformConv and CenterCropPad
// in geometry_blocks.cc. register_geometry is the family's one entry point.
//
// Kernels compute in double and cast the result to the output type.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/families.h"
#include "ops/geometry_internal.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

using geometry::input_dtype;
using geometry::is_real_float;
using geometry::known_rank_shape;

// ---- GridSample --------------------------------------------------------------

enum class Interp { kNearest, kLinear, kCubic };
enum class Padding { kZeros, kBorder, kReflection };

struct GridSampleParams {
  Interp mode = Interp::kLinear;
  Padding padding = Padding::kZeros;
  bool align_corners = false;
};

// Opset 16 names the modes bilinear/nearest/bicubic and is 4-D only; from
// opset 20 they are linear/nearest/cubic over any number of spatial dims.
Result<GridSampleParams> grid_sample_params(const ir::Node& node) {
  GridSampleParams p;
  bool v16 = node.opset() < 20;
  std::string mode = node.attr_string("mode", v16 ? "bilinear" : "linear");
  if (mode == "nearest") {
    p.mode = Interp::kNearest;
  } else if (mode == (v16 ? "bilinear" : "linear")) {
    p.mode = Interp::kLinear;
  } else if (mode == (v16 ? "bicubic" : "cubic")) {
    p.mode = Interp::kCubic;
  } else {
    return invalid_argument("mode '{}' is not supported at opset {} (expected {})", mode, node.opset(),
                            v16 ? "bilinear, nearest or bicubic" : "linear, nearest or cubic");
  }
  std::string padding = node.attr_string("padding_mode", "zeros");
  if (padding == "zeros") {
    p.padding = Padding::kZeros;
  } else if (padding == "border") {
    p.padding = Padding::kBorder;
  } else if (padding == "reflection") {
    p.padding = Padding::kReflection;
  } else {
    return invalid_argument("padding_mode '{}' is not supported (expected zeros, border or reflection)", padding);
  }
  p.align_corners = node.attr_int("align_corners", 0) != 0;
  return p;
}

// Reflects x by the nearer border until it lies in [lo, hi].
double reflect(double x, double lo, double hi) {
  double range = hi - lo;
  if (range <= 0) return lo;
  if (x < lo) {
    double dx = lo - x;
    double n = std::floor(dx / range);
    double r = dx - n * range;
    return std::fmod(n, 2.0) == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    double dx = x - hi;
    double n = std::floor(dx / range);
    double r = dx - n * range;
    return std::fmod(n, 2.0) == 0 ? hi - r : lo + r;
  }
  return x;
}

// Keys cubic convolution weights (alpha = -0.75) of taps -1, 0, 1, 2 for a
// fractional position t in [0, 1).
void cubic_weights(double t, double w[4]) {
  constexpr double kA = -0.75;
  auto near = [](double x) { return ((kA + 2) * x - (kA + 3)) * x * x + 1; };
  auto far = [](double x) { return ((kA * x - 5 * kA) * x + 8 * kA) * x - 4 * kA; };
  w[0] = far(t + 1);
  w[1] = near(t);
  w[2] = near(1 - t);
  w[3] = far(2 - t);
}

// One spatial axis of GridSample's input: its size and the bounds that
// align_corners gives the sampling area.
struct Axis {
  int64_t size = 0;
  double lo = 0;
  double hi = 0;
};

// The index read for integer position i on `axis`, or -1 for a zero.
int64_t tap_index(int64_t i, const Axis& axis, Padding padding) {
  if (i >= 0 && i < axis.size) return i;
  switch (padding) {
    case Padding::kZeros: return -1;
    case Padding::kBorder: return std::clamp<int64_t>(i, 0, axis.size - 1);
    case Padding::kReflection: {
      auto r = static_cast<int64_t>(reflect(static_cast<double>(i), axis.lo, axis.hi));
      return std::clamp<int64_t>(r, 0, axis.size - 1);
    }
  }
  return -1;
}

// Samples one output point of one (n, c) plane. `plane` holds the spatial
// input, `coords` the unnormalized position per spatial axis.
double grid_sample_point(const double* plane, const std::vector<Axis>& axes, const std::vector<int64_t>& strides,
                         std::vector<double>& coords, const GridSampleParams& p) {
  size_t r = axes.size();
  for (size_t i = 0; i < r; ++i) {
    double& x = coords[i];
    if (p.mode == Interp::kNearest) x = std::nearbyint(x);  // ties to even, as PyTorch
    if (x < axes[i].lo || x > axes[i].hi) {
      if (p.padding == Padding::kBorder) {
        x = std::clamp(x, 0.0, static_cast<double>(axes[i].size - 1));
      } else if (p.padding == Padding::kReflection) {
        x = reflect(x, axes[i].lo, axes[i].hi);
      }
    }
    if (std::isnan(x)) return std::numeric_limits<double>::quiet_NaN();
    // Far outside, every tap reads padding; clamping keeps the integer casts defined.
    x = std::clamp(x, axes[i].lo - 4, axes[i].hi + 4);
  }
  if (p.mode == Interp::kNearest) {
    int64_t offset = 0;
    for (size_t i = 0; i < r; ++i) {
      int64_t idx = tap_index(static_cast<int64_t>(coords[i]), axes[i], p.padding);
      if (idx < 0) return 0.0;
      offset += idx * strides[i];
    }
    return plane[offset];
  }
  // Separable interpolation: the weighted sum over every combination of taps.
  int taps = p.mode == Interp::kLinear ? 2 : 4;
  int first = p.mode == Interp::kLinear ? 0 : -1;
  std::vector<std::array<double, 4>> weights(r);
  std::vector<std::array<int64_t, 4>> index(r);
  for (size_t i = 0; i < r; ++i) {
    double base = std::floor(coords[i]);
    double t = coords[i] - base;
    if (p.mode == Interp::kLinear) {
      weights[i] = {1 - t, t, 0, 0};
    } else {
      cubic_weights(t, weights[i].data());
    }
    for (int k = 0; k < taps; ++k) {
      index[i][static_cast<size_t>(k)] = tap_index(static_cast<int64_t>(base) + first + k, axes[i], p.padding);
    }
  }
  double sum = 0;
  std::vector<int> tap(r, 0);
  while (true) {
    double w = 1;
    int64_t offset = 0;
    for (size_t i = 0; i < r && w != 0; ++i) {
      int64_t idx = index[i][static_cast<size_t>(tap[i])];
      if (idx < 0) w = 0;
      w *= weights[i][static_cast<size_t>(tap[i])];
      offset += idx * strides[i];
    }
    if (w != 0) sum += w * plane[offset];
    size_t d = r;
    while (d > 0 && ++tap[d - 1] == taps) tap[--d] = 0;
    if (d == 0) break;
  }
  return sum;
}

Status grid_sample_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* grid, ctx.tensor_input(1));
  KILN_ASSIGN_OR_RETURN(GridSampleParams p, grid_sample_params(ctx.node()));
  int64_t rank = x->rank();
  if (rank < 3 || (ctx.opset() < 20 && rank != 4)) {
    return invalid_argument("X {} must be {}", x->debug_string(), ctx.opset() < 20 ? "4-D" : "[N, C, D1, ..., Dr]");
  }
  size_t r = static_cast<size_t>(rank - 2);
  if (grid->rank() != rank || grid->dim(0) != x->dim(0) || grid->dims().back() != static_cast<int64_t>(r)) {
    return invalid_argument("grid {} must have shape [N, ..., {}] of rank {} for X {}", grid->debug_string(), r, rank,
                            x->debug_string());
  }
  if (!is_real_float(grid->dtype())) {
    return invalid_argument("grid type {} is not a float type", data_type_name(grid->dtype()));
  }
  int64_t n_batch = x->dim(0), channels = x->dim(1);
  Dims out_dims = {n_batch, channels};
  for (size_t i = 0; i < r; ++i) out_dims.push_back(grid->dim(static_cast<int64_t>(i) + 1));
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(DataType::kFloat64, out_dims));
  KILN_ASSIGN_OR_RETURN(Tensor xd, to_float64(*x));
  KILN_ASSIGN_OR_RETURN(Tensor gd, to_float64(*grid));
  std::vector<Axis> axes(r);
  std::vector<int64_t> strides(r);
  int64_t plane_size = 1;
  for (size_t i = r; i-- > 0;) {
    Axis& a = axes[i];
    a.size = x->dim(static_cast<int64_t>(i) + 2);
    a.lo = p.align_corners ? 0.0 : -0.5;
    a.hi = p.align_corners ? static_cast<double>(a.size - 1) : static_cast<double>(a.size) - 0.5;
    strides[i] = plane_size;
    plane_size *= a.size;
  }
  int64_t points = 1;
  for (size_t i = 0; i < r; ++i) points *= out_dims[i + 2];
  std::vector<double> coords(r);
  const double* g = gd.data<double>();
  double* y = out.data<double>();
  for (int64_t n = 0; n < n_batch; ++n) {
    for (int64_t c = 0; c < channels; ++c) {
      const double* plane = xd.data<double>() + (n * channels + c) * plane_size;
      for (int64_t o = 0; o < points; ++o) {
        // The grid's last axis lists coordinates innermost axis first (x, y, z).
        const double* gp = g + (n * points + o) * static_cast<int64_t>(r);
        for (size_t i = 0; i < r; ++i) {
          // Unnormalized in float, as ONNX's reference does.
          auto v = static_cast<float>(gp[r - 1 - i]);
          auto size = static_cast<float>(axes[i].size);
          float u = p.align_corners ? (v + 1) / 2.0f * (size - 1) : ((v + 1) * size - 1) / 2.0f;
          coords[i] = u;
        }
        y[(n * channels + c) * points + o] =
            plane_size == 0 ? 0.0 : grid_sample_point(plane, axes, strides, coords, p);
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor cast, cast_tensor(out, x->dtype()));
  ctx.set_output(0, std::move(cast));
  return Status::ok();
}

Status grid_sample_infer(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(grid_sample_params(ctx.node()).status());
  DataType dtype = input_dtype(ctx, 0);
  const Shape* xs = known_rank_shape(ctx, 0);
  const Shape* gs = known_rank_shape(ctx, 1);
  int64_t rank = xs != nullptr ? xs->rank() : (gs != nullptr ? gs->rank() : -1);
  if (rank < 0) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  if (rank < 3 || (xs != nullptr && gs != nullptr && xs->rank() != gs->rank())) {
    return invalid_argument("X and grid must have the same rank (at least 3)");
  }
  std::vector<Dim> out(static_cast<size_t>(rank));
  if (xs != nullptr) {
    out[0] = (*xs)[0];
    out[1] = (*xs)[1];
  } else {
    out[0] = (*gs)[0];
  }
  if (gs != nullptr) {
    for (int64_t i = 1; i + 1 < rank; ++i) out[static_cast<size_t>(i) + 1] = (*gs)[i];
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

// ---- AffineGrid --------------------------------------------------------------

// The normalized coordinate of sample i of `size` along one axis.
double base_coord(int64_t i, int64_t size, bool align_corners) {
  if (align_corners) return size <= 1 ? 0.0 : -1.0 + 2.0 * static_cast<double>(i) / static_cast<double>(size - 1);
  return -1.0 + (2.0 * static_cast<double>(i) + 1.0) / static_cast<double>(size);
}

Status affine_grid_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* theta, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* size_t_, ctx.tensor_input(1));
  if (!is_real_float(theta->dtype())) {
    return invalid_argument("theta type {} is not a float type", data_type_name(theta->dtype()));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> size, to_int64_vector(*size_t_));
  if (size_t_->rank() != 1 || (size.size() != 4 && size.size() != 5)) {
    return invalid_argument("size {} must be [N, C, H, W] or [N, C, D, H, W]", dims_to_string(size));
  }
  int64_t r = static_cast<int64_t>(size.size()) - 2;
  if (theta->rank() != 3 || theta->dim(0) != size[0] || theta->dim(1) != r || theta->dim(2) != r + 1) {
    return invalid_argument("theta {} must have shape [{}, {}, {}] for size {}", theta->debug_string(), size[0], r,
                            r + 1, dims_to_string(size));
  }
  for (int64_t s : size) {
    if (s < 0) return invalid_argument("size {} has a negative dim", dims_to_string(size));
  }
  bool align = ctx.node().attr_int("align_corners", 0) != 0;
  Dims out_dims = {size[0]};
  for (int64_t i = 0; i < r; ++i) out_dims.push_back(size[static_cast<size_t>(i) + 2]);
  out_dims.push_back(r);
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(DataType::kFloat64, out_dims));
  KILN_ASSIGN_OR_RETURN(Tensor td, to_float64(*theta));
  int64_t points = 1;
  for (int64_t i = 0; i < r; ++i) points *= size[static_cast<size_t>(i) + 2];
  double* y = out.data<double>();
  std::vector<double> homo(static_cast<size_t>(r) + 1, 1.0);  // (x, y[, z], 1)
  for (int64_t n = 0; n < size[0]; ++n) {
    const double* t = td.data<double>() + n * r * (r + 1);
    for (int64_t o = 0; o < points; ++o) {
      int64_t rest = o;
      // Spatial axes outermost first (D, H, W); the point lists them innermost first.
      for (int64_t i = r; i-- > 0;) {
        int64_t dim = size[static_cast<size_t>(i) + 2];
        homo[static_cast<size_t>(r - 1 - i)] = base_coord(rest % dim, dim, align);
        rest /= dim;
      }
      for (int64_t k = 0; k < r; ++k) {
        double v = 0;
        for (int64_t j = 0; j <= r; ++j) v += t[k * (r + 1) + j] * homo[static_cast<size_t>(j)];
        y[(n * points + o) * r + k] = v;
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor cast, cast_tensor(out, theta->dtype()));
  ctx.set_output(0, std::move(cast));
  return Status::ok();
}

Status affine_grid_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  if (const Tensor* size_t_ = ctx.input_constant(1)) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> size, to_int64_vector(*size_t_));
    if (size.size() != 4 && size.size() != 5) {
      return invalid_argument("size {} must be [N, C, H, W] or [N, C, D, H, W]", dims_to_string(size));
    }
    Dims out = {size[0]};
    out.insert(out.end(), size.begin() + 2, size.end());
    out.push_back(static_cast<int64_t>(size.size()) - 2);
    ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape::of(out)));
    return Status::ok();
  }
  const Shape* ss = known_rank_shape(ctx, 1);
  Shape out;
  if (ss != nullptr && ss->rank() == 1 && (*ss)[0].known()) {
    int64_t r = (*ss)[0].value - 2;
    out = Shape::unknown_dims(r + 2);
    out[r + 1] = Dim(r);
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
  return Status::ok();
}

}  // namespace

void register_geometry(Registry& r) {
  // GridSample-16 is 4-D with bilinear/bicubic; 20 generalizes to N-D with
  // linear/cubic; 22 only adds bfloat16. One kernel reads the opset.
  r.add({.name = "GridSample", .domain = "", .since_version = 16, .min_inputs = 2, .max_inputs = 2,
         .kernel = grid_sample_kernel, .infer = grid_sample_infer});
  r.add({.name = "AffineGrid", .domain = "", .since_version = 20, .min_inputs = 2, .max_inputs = 2,
         .kernel = affine_grid_kernel, .infer = affine_grid_infer});
  register_geometry_roi(r);
  register_geometry_blocks(r);
}

}  // namespace kiln::ops
