// Op family: pooling. MaxPool (with optional Indices), AveragePool, LpPool
// and their Global* forms, N-D.
//
// Window position o along an axis covers inputs o * stride - pad_begin +
// j * dilation for j < kernel. Taps outside the input are skipped; for
// AveragePool with count_include_pad they still count toward the divisor
// when they fall inside the explicit padding (not the extra room ceil_mode
// adds past the end padding), as in onnxruntime and PyTorch.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/conv_window.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

// The input taps of every window position along one axis.
struct AxisTaps {
  std::vector<int64_t> first;   // first valid input index
  std::vector<int64_t> count;   // number of valid taps (consecutive j, step `dilation`)
  std::vector<int64_t> padded;  // taps inside [-pad_begin, in + pad_end)
  int64_t dilation = 1;
};

std::vector<AxisTaps> axis_taps(const ConvGeom& g) {
  std::vector<AxisTaps> taps(g.in.size());
  for (size_t d = 0; d < g.in.size(); ++d) {
    AxisTaps& t = taps[d];
    t.dilation = g.w.dilations[d];
    for (int64_t o = 0; o < g.out[d]; ++o) {
      const int64_t start = o * g.w.strides[d] - g.w.pad_begin(d);
      int64_t first = -1, count = 0, padded = 0;
      for (int64_t j = 0; j < g.w.kernel[d]; ++j) {
        const int64_t p = start + j * t.dilation;
        if (p >= -g.w.pad_begin(d) && p < g.in[d] + g.w.pad_end(d)) ++padded;
        if (p < 0 || p >= g.in[d]) continue;
        if (first < 0) first = p;
        ++count;
      }
      t.first.push_back(first);
      t.count.push_back(count);
      t.padded.push_back(padded);
    }
  }
  return taps;
}

// Calls f(offset) with the in-plane offset of every valid tap of the window
// at output position `opos`, in row-major window order.
template <class F>
void visit_window(const std::vector<AxisTaps>& taps, const std::vector<int64_t>& opos,
                  const std::vector<int64_t>& in_strides, F&& f) {
  const size_t nd = taps.size();
  int64_t base = 0;
  for (size_t d = 0; d < nd; ++d) {
    const size_t o = static_cast<size_t>(opos[d]);
    if (taps[d].count[o] == 0) return;
    base += taps[d].first[o] * in_strides[d];
  }
  std::vector<int64_t> j(nd, 0);
  for (;;) {
    int64_t off = base;
    for (size_t d = 0; d < nd; ++d) off += j[d] * taps[d].dilation * in_strides[d];
    f(off);
    size_t d = nd;
    while (d-- > 0) {
      if (++j[d] < taps[d].count[static_cast<size_t>(opos[d])]) break;
      j[d] = 0;
    }
    if (d == static_cast<size_t>(-1)) return;
  }
}

// Runs fn(plane, opos, out_index) for every output element, planes ([N*C]) split over the pool.
template <class F>
void for_each_output(const ConvGeom& g, ThreadPool* pool, F&& fn) {
  const int64_t planes = g.batch * g.in_channels;
  const int64_t out_size = volume(g.out);
  auto run = [&](int64_t begin, int64_t end) {
    std::vector<int64_t> opos(g.out.size(), 0);
    for (int64_t p = begin; p < end; ++p) {
      std::fill(opos.begin(), opos.end(), 0);
      for (int64_t i = 0; i < out_size; ++i) {
        fn(p, opos, p * out_size + i);
        for (size_t d = opos.size(); d-- > 0;) {
          if (++opos[d] < g.out[d]) break;
          opos[d] = 0;
        }
      }
    }
  };
  if (pool != nullptr && pool->threads() > 1 && planes > 1) {
    pool->parallel_for(planes, 1, run);
  } else {
    run(0, planes);
  }
}

// Reads and checks X and the window attributes of a MaxPool/AveragePool/LpPool.
Result<ConvGeom> pool_geometry(const ir::Node& node, const Tensor& x, bool with_dilations, bool with_ceil) {
  if (x.rank() < 3) {
    return invalid_argument("X must have rank >= 3 ([N, C, spatial...]), got {}", dims_to_string(x.dims()));
  }
  const size_t nd = static_cast<size_t>(x.rank() - 2);
  if (!node.has_attr("kernel_shape")) return invalid_argument("attribute 'kernel_shape' is required");
  std::vector<int64_t> kernel = node.attr_ints("kernel_shape");
  if (kernel.size() != nd) {
    return invalid_argument("kernel_shape has {} values but X has {} spatial dims", kernel.size(), nd);
  }
  ConvGeom g;
  g.batch = x.dim(0);
  g.in_channels = g.out_channels = x.dim(1);
  KILN_ASSIGN_OR_RETURN(g.w, read_window(node, kernel, with_dilations));
  g.in.assign(x.dims().begin() + 2, x.dims().end());
  const bool ceil_mode = with_ceil && node.attr_int("ceil_mode", 0) != 0;
  for (size_t d = 0; d < nd; ++d) {
    KILN_ASSIGN_OR_RETURN(int64_t o, window_output_dim(g.in[d], d, g.w, ceil_mode));
    g.out.push_back(o);
  }
  return g;
}

Dims pool_output_dims(const ConvGeom& g) {
  Dims out{g.batch, g.in_channels};
  out.insert(out.end(), g.out.begin(), g.out.end());
  return out;
}

// ---- MaxPool ---------------------------------------------------------------------

template <class T>
void max_pool(const Tensor& x, const ConvGeom& g, Tensor& y, Tensor* indices, bool column_major, ThreadPool* pool) {
  using C = compute_type_t<T>;
  const std::vector<AxisTaps> taps = axis_taps(g);
  const std::vector<int64_t> in_strides = strides_of(g.in);
  const int64_t plane = volume(g.in);
  const T* xd = x.data<T>();
  T* yd = y.data<T>();
  int64_t* id = indices ? indices->data<int64_t>() : nullptr;
  for_each_output(g, pool, [&](int64_t p, const std::vector<int64_t>& opos, int64_t oi) {
    const T* xp = xd + p * plane;
    int64_t best_off = -1;
    C best = std::numeric_limits<C>::has_infinity ? -std::numeric_limits<C>::infinity() : std::numeric_limits<C>::lowest();
    visit_window(taps, opos, in_strides, [&](int64_t off) {
      const C v = static_cast<C>(xp[off]);
      if (best_off < 0 || v > best) {
        best = v;
        best_off = off;
      }
    });
    yd[oi] = best_off >= 0 ? xp[best_off] : static_cast<T>(best);
    if (id == nullptr) return;
    if (best_off < 0) {
      id[oi] = -1;
      return;
    }
    int64_t flat = best_off;
    if (column_major) {  // the same element, numbered with the first spatial axis fastest
      flat = 0;
      int64_t rest = best_off, scale = 1;
      std::vector<int64_t> idx(g.in.size());
      for (size_t d = g.in.size(); d-- > 0;) {
        idx[d] = rest % g.in[d];
        rest /= g.in[d];
      }
      for (size_t d = 0; d < g.in.size(); ++d) {
        flat += idx[d] * scale;
        scale *= g.in[d];
      }
    }
    id[oi] = p * plane + flat;
  });
}

Status max_pool_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  auto geom = pool_geometry(ctx.node(), x, /*with_dilations=*/true, /*with_ceil=*/true);
  if (!geom.is_ok()) return ctx.error(geom.status());
  const int64_t storage_order = ctx.node().attr_int("storage_order", 0);
  if (storage_order != 0 && storage_order != 1) {
    return ctx.error(invalid_argument("storage_order must be 0 or 1, got {}", storage_order));
  }
  const Dims out_dims = pool_output_dims(*geom);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, x.dtype(), out_dims));
  Tensor* indices = nullptr;
  if (ctx.wants_output(1)) {
    KILN_ASSIGN_OR_RETURN(indices, ctx.allocate_output(1, DataType::kInt64, out_dims));
  }
  switch (x.dtype()) {
    case DataType::kFloat32: max_pool<float>(x, *geom, *y, indices, storage_order == 1, ctx.pool()); break;
    case DataType::kFloat64: max_pool<double>(x, *geom, *y, indices, storage_order == 1, ctx.pool()); break;
    case DataType::kFloat16: max_pool<Float16>(x, *geom, *y, indices, storage_order == 1, ctx.pool()); break;
    case DataType::kBFloat16: max_pool<BFloat16>(x, *geom, *y, indices, storage_order == 1, ctx.pool()); break;
    case DataType::kInt8: max_pool<int8_t>(x, *geom, *y, indices, storage_order == 1, ctx.pool()); break;
    case DataType::kUInt8: max_pool<uint8_t>(x, *geom, *y, indices, storage_order == 1, ctx.pool()); break;
    default:
      return ctx.error(unimplemented("element type {} is not supported", data_type_name(x.dtype())));
  }
  return Status::ok();
}

// ---- AveragePool and LpPool ---------------------------------------------------------

enum class Reduce { kAverage, kLp };

template <class T>
void sum_pool(const Tensor& x, const ConvGeom& g, Tensor& y, Reduce kind, bool count_pad, double p,
              ThreadPool* pool) {
  const std::vector<AxisTaps> taps = axis_taps(g);
  const std::vector<int64_t> in_strides = strides_of(g.in);
  const int64_t plane = volume(g.in);
  const T* xd = x.data<T>();
  T* yd = y.data<T>();
  for_each_output(g, pool, [&](int64_t pl, const std::vector<int64_t>& opos, int64_t oi) {
    const T* xp = xd + pl * plane;
    double acc = 0;
    visit_window(taps, opos, in_strides, [&](int64_t off) {
      const double v = static_cast<double>(static_cast<compute_type_t<T>>(xp[off]));
      acc += kind == Reduce::kAverage ? v : std::pow(std::abs(v), p);
    });
    double result;
    if (kind == Reduce::kLp) {
      result = std::pow(acc, 1.0 / p);
    } else {
      int64_t n = 1;
      for (size_t d = 0; d < opos.size(); ++d) {
        const size_t o = static_cast<size_t>(opos[d]);
        n *= count_pad ? taps[d].padded[o] : taps[d].count[o];
      }
      result = n > 0 ? acc / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
    }
    yd[oi] = static_cast<T>(static_cast<compute_type_t<T>>(result));
  });
}

Status run_sum_pool(KernelContext& ctx, const ConvGeom& g, Reduce kind, bool count_pad, double p) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, x.dtype(), pool_output_dims(g)));
  switch (x.dtype()) {
    case DataType::kFloat32: sum_pool<float>(x, g, *y, kind, count_pad, p, ctx.pool()); break;
    case DataType::kFloat64: sum_pool<double>(x, g, *y, kind, count_pad, p, ctx.pool()); break;
    case DataType::kFloat16: sum_pool<Float16>(x, g, *y, kind, count_pad, p, ctx.pool()); break;
    case DataType::kBFloat16: sum_pool<BFloat16>(x, g, *y, kind, count_pad, p, ctx.pool()); break;
    default:
      return ctx.error(unimplemented("element type {} is not supported", data_type_name(x.dtype())));
  }
  return Status::ok();
}

Status average_pool_kernel(KernelContext& ctx) {
  auto geom = pool_geometry(ctx.node(), ctx.input(0), /*with_dilations=*/true, /*with_ceil=*/true);
  if (!geom.is_ok()) return ctx.error(geom.status());
  return run_sum_pool(ctx, *geom, Reduce::kAverage, ctx.node().attr_int("count_include_pad", 0) != 0, 1.0);
}

Result<double> lp_order(const ir::Node& node) {
  const double p = node.attr_float("p", 2.0f);
  if (!(p > 0)) return invalid_argument("{}: p must be positive, got {}", node.describe(), p);
  return p;
}

Status lp_pool_kernel(KernelContext& ctx) {
  auto geom = pool_geometry(ctx.node(), ctx.input(0), /*with_dilations=*/true, /*with_ceil=*/true);
  if (!geom.is_ok()) return ctx.error(geom.status());
  KILN_ASSIGN_OR_RETURN(double p, lp_order(ctx.node()));
  return run_sum_pool(ctx, *geom, Reduce::kLp, false, p);
}

Status pool_infer(InferContext& ctx) {
  const auto& xt = ctx.input_type(0);
  ir::ValueType out = ir::ValueType::tensor(xt.dtype);
  const std::vector<int64_t> kernel = ctx.node().attr_ints("kernel_shape");
  if (xt.shape.rank_known() && xt.shape.rank() >= 3 && static_cast<int64_t>(kernel.size()) == xt.shape.rank() - 2) {
    KILN_ASSIGN_OR_RETURN(Window w, read_window(ctx.node(), kernel));
    std::vector<Dim> in(xt.shape.dims().begin() + 2, xt.shape.dims().end());
    KILN_ASSIGN_OR_RETURN(std::vector<Dim> o, window_output_shape(in, w, ctx.node().attr_int("ceil_mode", 0) != 0));
    std::vector<Dim> dims{xt.shape[0], xt.shape[1]};
    dims.insert(dims.end(), o.begin(), o.end());
    out.shape = Shape(dims);
  }
  ctx.set_output_type(0, out);
  if (ctx.num_outputs() > 1) ctx.set_output_type(1, ir::ValueType::tensor(DataType::kInt64, out.shape));
  return Status::ok();
}

// ---- Global pools --------------------------------------------------------------------

// A window covering every spatial position.
Result<ConvGeom> global_geometry(const Tensor& x) {
  if (x.rank() < 2) return invalid_argument("X must have rank >= 2 ([N, C, ...]), got {}", dims_to_string(x.dims()));
  ConvGeom g;
  g.batch = x.dim(0);
  g.in_channels = g.out_channels = x.dim(1);
  g.in.assign(x.dims().begin() + 2, x.dims().end());
  const size_t nd = g.in.size();
  g.out.assign(nd, 1);
  g.w.kernel = g.in;
  g.w.strides.assign(nd, 1);
  g.w.dilations.assign(nd, 1);
  g.w.pads.assign(2 * nd, 0);
  return g;
}

Status global_max_pool_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  auto geom = global_geometry(x);
  if (!geom.is_ok()) return ctx.error(geom.status());
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, x.dtype(), pool_output_dims(*geom)));
  if (volume(geom->in) == 0) return ctx.error(invalid_argument("cannot pool over empty spatial dims"));
  return ctx.error(visit_numeric(x.dtype(), "GlobalMaxPool", [&](auto tag) -> Status {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, Float16> ||
                  std::is_same_v<T, BFloat16>) {
      max_pool<T>(x, *geom, *y, nullptr, false, ctx.pool());
      return Status::ok();
    } else {
      return unimplemented("element type {} is not supported", data_type_name(x.dtype()));
    }
  }));
}

Status global_average_pool_kernel(KernelContext& ctx) {
  auto geom = global_geometry(ctx.input(0));
  if (!geom.is_ok()) return ctx.error(geom.status());
  return run_sum_pool(ctx, *geom, Reduce::kAverage, false, 1.0);
}

Status global_lp_pool_kernel(KernelContext& ctx) {
  auto geom = global_geometry(ctx.input(0));
  if (!geom.is_ok()) return ctx.error(geom.status());
  KILN_ASSIGN_OR_RETURN(double p, lp_order(ctx.node()));
  return run_sum_pool(ctx, *geom, Reduce::kLp, false, p);
}

Status global_pool_infer(InferContext& ctx) {
  const auto& xt = ctx.input_type(0);
  ir::ValueType out = ir::ValueType::tensor(xt.dtype);
  if (xt.shape.rank_known() && xt.shape.rank() >= 2) {
    std::vector<Dim> dims(static_cast<size_t>(xt.shape.rank()), Dim(1));
    dims[0] = xt.shape[0];
    dims[1] = xt.shape[1];
    out.shape = Shape(dims);
  }
  ctx.set_output_type(0, out);
  return Status::ok();
}

// ---- MaxRoiPool --------------------------------------------------------------------

// Max over each of pooled_shape bins of every region of interest
// (batch_index, x1, y1, x2, y2) scaled by spatial_scale, with Caffe's rounding
// (as onnxruntime); an empty bin gives 0.
template <class T>
void max_roi_pool(const Tensor& x, const std::vector<double>& rois, int64_t ph, int64_t pw, double scale, Tensor& y) {
  using C = compute_type_t<T>;
  const int64_t c = x.dim(1), h = x.dim(2), w = x.dim(3);
  const T* xd = x.data<T>();
  T* yd = y.data<T>();
  const int64_t num = static_cast<int64_t>(rois.size() / 5);
  for (int64_t r = 0; r < num; ++r) {
    const double* roi = rois.data() + r * 5;
    const int64_t b = static_cast<int64_t>(roi[0]);
    // Float arithmetic, as onnxruntime: it decides which way values like 5 * 0.9 round.
    const float fs = static_cast<float>(scale);
    auto scaled = [&](double v) { return static_cast<int64_t>(std::round(static_cast<float>(v) * fs)); };
    const int64_t x1 = scaled(roi[1]), y1 = scaled(roi[2]), x2 = scaled(roi[3]), y2 = scaled(roi[4]);
    const float bin_h = static_cast<float>(std::max<int64_t>(y2 - y1 + 1, 1)) / static_cast<float>(ph);
    const float bin_w = static_cast<float>(std::max<int64_t>(x2 - x1 + 1, 1)) / static_cast<float>(pw);
    for (int64_t ch = 0; ch < c; ++ch) {
      const T* plane = xd + (b * c + ch) * h * w;
      for (int64_t i = 0; i < ph; ++i) {
        const int64_t hs = std::clamp<int64_t>(static_cast<int64_t>(std::floor(static_cast<float>(i) * bin_h)) + y1, 0, h);
        const int64_t he = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(static_cast<float>(i + 1) * bin_h)) + y1, 0, h);
        for (int64_t j = 0; j < pw; ++j) {
          const int64_t ws = std::clamp<int64_t>(static_cast<int64_t>(std::floor(static_cast<float>(j) * bin_w)) + x1, 0, w);
          const int64_t we = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(static_cast<float>(j + 1) * bin_w)) + x1, 0, w);
          C best = 0;
          bool any = false;
          for (int64_t yy = hs; yy < he; ++yy) {
            for (int64_t xx = ws; xx < we; ++xx) {
              const C v = static_cast<C>(plane[yy * w + xx]);
              if (!any || v > best) best = v;
              any = true;
            }
          }
          yd[((r * c + ch) * ph + i) * pw + j] = static_cast<T>(best);
        }
      }
    }
  }
}

Status max_roi_pool_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& rois_t = ctx.input(1);
  if (x.rank() != 4) return ctx.error(invalid_argument("X must be 4-D, got {}", dims_to_string(x.dims())));
  if (rois_t.rank() != 2 || rois_t.dim(1) != 5) {
    return ctx.error(invalid_argument("rois must have shape [num_rois, 5], got {}", dims_to_string(rois_t.dims())));
  }
  const std::vector<int64_t> pooled = ctx.node().attr_ints("pooled_shape");
  if (pooled.size() != 2 || pooled[0] <= 0 || pooled[1] <= 0) {
    return ctx.error(invalid_argument("pooled_shape must be two positive values"));
  }
  const double scale = ctx.node().attr_float("spatial_scale", 1.0f);
  auto rois_f = to_float64(rois_t);
  if (!rois_f.is_ok()) return ctx.error(rois_f.status());
  std::vector<double> rois(rois_f->data<double>(), rois_f->data<double>() + rois_f->numel());
  for (size_t i = 0; i < rois.size(); i += 5) {
    for (size_t k = 1; k < 5; ++k) {
      if (!std::isfinite(rois[i + k]) || std::abs(rois[i + k] * scale) > 1e15) {
        return ctx.error(invalid_argument("roi {} has a non-finite or huge coordinate", i / 5));
      }
    }
    if (!(rois[i] >= 0 && rois[i] < static_cast<double>(x.dim(0)))) {
      return ctx.error(out_of_range("roi {} has batch index {} outside [0, {})", i / 5, rois[i], x.dim(0)));
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, x.dtype(), {rois_t.dim(0), x.dim(1), pooled[0], pooled[1]}));
  switch (x.dtype()) {
    case DataType::kFloat32: max_roi_pool<float>(x, rois, pooled[0], pooled[1], scale, *y); break;
    case DataType::kFloat64: max_roi_pool<double>(x, rois, pooled[0], pooled[1], scale, *y); break;
    case DataType::kFloat16: max_roi_pool<Float16>(x, rois, pooled[0], pooled[1], scale, *y); break;
    default:
      return ctx.error(unimplemented("element type {} is not supported", data_type_name(x.dtype())));
  }
  return Status::ok();
}

Status max_roi_pool_infer(InferContext& ctx) {
  const auto& xt = ctx.input_type(0);
  const auto& rt = ctx.input_type(1);
  const std::vector<int64_t> pooled = ctx.node().attr_ints("pooled_shape");
  ir::ValueType out = ir::ValueType::tensor(xt.dtype);
  if (pooled.size() == 2) {
    out.shape = Shape({rt.shape.rank_known() && rt.shape.rank() == 2 ? rt.shape[0] : Dim(),
                       xt.shape.rank_known() && xt.shape.rank() == 4 ? xt.shape[1] : Dim(), Dim(pooled[0]),
                       Dim(pooled[1])});
  }
  ctx.set_output_type(0, out);
  return Status::ok();
}

}  // namespace

void register_pool(Registry& r) {
  r.add({.name = "MaxRoiPool", .domain = "", .since_version = 1, .min_inputs = 2, .max_inputs = 2,
         .kernel = max_roi_pool_kernel, .infer = max_roi_pool_infer});
  r.add({.name = "MaxPool", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1, .min_outputs = 1,
         .max_outputs = 2, .kernel = max_pool_kernel, .infer = pool_infer});
  r.add({.name = "AveragePool", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = average_pool_kernel, .infer = pool_infer});
  r.add({.name = "LpPool", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = lp_pool_kernel, .infer = pool_infer});
  r.add({.name = "GlobalMaxPool", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = global_max_pool_kernel, .infer = global_pool_infer});
  r.add({.name = "GlobalAveragePool", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = global_average_pool_kernel, .infer = global_pool_infer});
  r.add({.name = "GlobalLpPool", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = global_lp_pool_kernel, .infer = global_pool_infer});
}

}  // namespace kiln::ops
