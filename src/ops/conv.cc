// Op family: convolution. Conv and ConvInteger here; ConvTranspose in
// conv_transpose.cc. N-D (any number of spatial axes) with strides,
// dilations, explicit or automatic pads and groups.
//
// Conv lowers each (image, group) pair to one GEMM: W_g [M/g, C/g * K] times
// the im2col matrix [C/g * K, out_size], where K is the kernel size. A 1x1
// kernel with unit strides and no pads uses the input itself as that matrix.
// Work is split over (image, group) pairs when there are enough of them,
// otherwise inside the GEMM.
#include <algorithm>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/conv_window.h"
#include "ops/families.h"
#include "ops/gemm_kernel.h"
#include "ops/kernel_guard.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

// col[(c * K + kidx) * out_size + o] = x[c][input position of output o under kernel tap kidx], 0 in padding.
template <class T>
void im2col(const T* x, int64_t channels, const ConvGeom& g, T* col) {
  const size_t nd = g.in.size();
  const int64_t ksize = volume(g.w.kernel);
  const int64_t in_size = volume(g.in);
  const int64_t out_last = g.out[nd - 1];
  const int64_t in_last = g.in[nd - 1];
  const int64_t s_last = g.w.strides[nd - 1];
  if (out_last == 0) return;
  const int64_t outer = volume(g.out) / out_last;
  const std::vector<int64_t> in_strides = strides_of(g.in);
  std::vector<int64_t> kpos(nd, 0);
  std::vector<int64_t> opos(nd, 0);
  T* dst = col;
  for (int64_t c = 0; c < channels; ++c) {
    const T* xc = x + c * in_size;
    std::fill(kpos.begin(), kpos.end(), 0);
    for (int64_t kidx = 0; kidx < ksize; ++kidx) {
      std::fill(opos.begin(), opos.end(), 0);
      const int64_t ix0 = kpos[nd - 1] * g.w.dilations[nd - 1] - g.w.pad_begin(nd - 1);
      for (int64_t o = 0; o < outer; ++o) {
        bool inside = true;
        int64_t base = 0;
        for (size_t d = 0; d + 1 < nd; ++d) {
          const int64_t ix = opos[d] * g.w.strides[d] - g.w.pad_begin(d) + kpos[d] * g.w.dilations[d];
          if (ix < 0 || ix >= g.in[d]) inside = false;
          base += ix * in_strides[d];
        }
        if (!inside) {
          std::fill(dst, dst + out_last, T(0));
        } else {
          const T* row = xc + base;
          for (int64_t j = 0; j < out_last; ++j) {
            const int64_t ix = ix0 + j * s_last;
            dst[j] = ix >= 0 && ix < in_last ? row[ix] : T(0);
          }
        }
        dst += out_last;
        for (size_t d = nd - 1; d-- > 0;) {  // odometer over the leading output axes
          if (++opos[d] < g.out[d]) break;
          opos[d] = 0;
        }
      }
      for (size_t d = nd; d-- > 0;) {  // next kernel tap
        if (++kpos[d] < g.w.kernel[d]) break;
        kpos[d] = 0;
      }
    }
  }
}

// y[N, M, out...] = conv(x[N, C, in...], w[M, C/group, kernel...]) + bias[M]. y starts zeroed.
template <class T>
void conv_forward(const T* x, const T* w, const T* bias, T* y, const ConvGeom& g, ThreadPool* pool) {
  const int64_t cg = g.in_channels / g.group;
  const int64_t mg = g.out_channels / g.group;
  const int64_t in_size = volume(g.in);
  const int64_t out_size = volume(g.out);
  const int64_t kdim = cg * volume(g.w.kernel);
  bool pointwise = true;
  for (size_t d = 0; d < g.in.size(); ++d) {
    if (g.w.kernel[d] != 1 || g.w.strides[d] != 1 || g.w.pad_begin(d) != 0 || g.w.pad_end(d) != 0) pointwise = false;
  }
  auto run_task = [&](int64_t t, std::vector<T>& col, ThreadPool* inner) {
    const int64_t n = t / g.group;
    const int64_t gi = t % g.group;
    const T* xg = x + (n * g.in_channels + gi * cg) * in_size;
    T* yg = y + (n * g.out_channels + gi * mg) * out_size;
    if (bias != nullptr) {
      for (int64_t r = 0; r < mg; ++r) std::fill(yg + r * out_size, yg + (r + 1) * out_size, bias[gi * mg + r]);
    }
    const T* cols = xg;
    if (!pointwise) {
      col.resize(static_cast<size_t>(kdim * out_size));
      im2col(xg, cg, g, col.data());
      cols = col.data();
    }
    gemm_accumulate<T>(mg, out_size, kdim, w + gi * mg * kdim, kdim, cols, out_size, yg, out_size, inner);
  };
  const int64_t tasks = g.batch * g.group;
  if (pool != nullptr && pool->threads() > 1 && tasks >= pool->threads()) {
    pool->parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
      std::vector<T> col;
      for (int64_t t = begin; t < end; ++t) run_task(t, col, nullptr);
    });
  } else {
    std::vector<T> col;
    for (int64_t t = 0; t < tasks; ++t) run_task(t, col, pool);
  }
}

// Checks X, W (and the kernel_shape attribute) and fills the geometry of a Conv or ConvInteger.
Result<ConvGeom> conv_geometry(const ir::Node& node, const Tensor& x, const Tensor& w) {
  if (x.rank() < 3) {
    return invalid_argument("X must have rank >= 3 ([N, C, spatial...]), got {}", dims_to_string(x.dims()));
  }
  if (w.rank() != x.rank()) {
    return invalid_argument("W has rank {} but X has rank {}", w.rank(), x.rank());
  }
  ConvGeom g;
  g.batch = x.dim(0);
  g.in_channels = x.dim(1);
  g.out_channels = w.dim(0);
  g.group = node.attr_int("group", 1);
  if (g.group <= 0) return invalid_argument("group must be positive, got {}", g.group);
  if (g.in_channels % g.group != 0 || w.dim(1) * g.group != g.in_channels) {
    return invalid_argument("X has {} channels but W {} expects {} per group times group {}", g.in_channels,
                            dims_to_string(w.dims()), w.dim(1), g.group);
  }
  if (g.out_channels % g.group != 0) {
    return invalid_argument("W has {} output channels, not divisible by group {}", g.out_channels, g.group);
  }
  std::vector<int64_t> kernel(w.dims().begin() + 2, w.dims().end());
  if (node.has_attr("kernel_shape") && node.attr_ints("kernel_shape") != kernel) {
    return invalid_argument("kernel_shape [{}] does not match W of shape {}", fmt::join(node.attr_ints("kernel_shape"), ","),
                            dims_to_string(w.dims()));
  }
  KILN_ASSIGN_OR_RETURN(g.w, read_window(node, kernel));
  g.in.assign(x.dims().begin() + 2, x.dims().end());
  for (size_t d = 0; d < g.in.size(); ++d) {
    KILN_ASSIGN_OR_RETURN(int64_t o, window_output_dim(g.in[d], d, g.w));
    g.out.push_back(o);
  }
  return g;
}

Dims conv_output_dims(const ConvGeom& g) {
  Dims out{g.batch, g.out_channels};
  out.insert(out.end(), g.out.begin(), g.out.end());
  return out;
}

// ---- Conv ----------------------------------------------------------------------

Status conv_kernel(KernelContext& ctx) {
  const DataType dtype = ctx.input(0).dtype();
  const bool half = dtype == DataType::kFloat16 || dtype == DataType::kBFloat16;
  if (ctx.input(1).dtype() != dtype || (ctx.has_input(2) && ctx.input(2).dtype() != dtype)) {
    return ctx.error(invalid_argument("X, W and B must have one element type"));
  }
  auto geom = conv_geometry(ctx.node(), ctx.input(0), ctx.input(1));
  if (!geom.is_ok()) return ctx.error(geom.status());
  const ConvGeom& g = *geom;
  if (ctx.has_input(2) && (ctx.input(2).rank() != 1 || ctx.input(2).dim(0) != g.out_channels)) {
    return ctx.error(invalid_argument("B must have shape [{}], got {}", g.out_channels,
                                      dims_to_string(ctx.input(2).dims())));
  }
  Tensor x = ctx.input(0), w = ctx.input(1), b = ctx.has_input(2) ? ctx.input(2) : Tensor();
  if (half) {
    KILN_ASSIGN_OR_RETURN(x, to_float32(x));
    KILN_ASSIGN_OR_RETURN(w, to_float32(w));
    if (b.defined()) {
      KILN_ASSIGN_OR_RETURN(b, to_float32(b));
    }
  }
  // One task's im2col scratch: kernel volume x C/group rows, one column per output position.
  int64_t scratch = 0;
  if (__builtin_mul_overflow(g.in_channels / g.group * volume(g.w.kernel), volume(g.out), &scratch)) scratch = -1;
  Status fits = check_scratch(scratch, static_cast<int64_t>(element_size(x.dtype())), "im2col buffer");
  if (!fits.is_ok()) return ctx.error(std::move(fits));
  auto y = Tensor::allocate(x.dtype(), conv_output_dims(g));
  if (!y.is_ok()) return ctx.error(y.status());
  if (x.dtype() == DataType::kFloat32) {
    conv_forward<float>(x.data<float>(), w.data<float>(), b.defined() ? b.data<float>() : nullptr, y->data<float>(), g,
                        ctx.pool());
  } else if (x.dtype() == DataType::kFloat64) {
    conv_forward<double>(x.data<double>(), w.data<double>(), b.defined() ? b.data<double>() : nullptr,
                         y->data<double>(), g, ctx.pool());
  } else {
    return ctx.error(unimplemented("element type {} is not supported", data_type_name(dtype)));
  }
  if (half) {
    KILN_ASSIGN_OR_RETURN(Tensor back, cast_tensor(*y, dtype));
    ctx.set_output(0, std::move(back));
  } else {
    ctx.set_output(0, std::move(y).value());
  }
  return Status::ok();
}

// Output type of Conv-like ops: [N, W[0], spatial...] with the spatial dims known where X's are.
Status conv_like_infer(InferContext& ctx, DataType out_type) {
  const auto& xt = ctx.input_type(0);
  const auto& wt = ctx.input_type(1);
  if (!xt.shape.rank_known() || xt.shape.rank() < 3) {
    ctx.set_output_type(0, ir::ValueType::tensor(out_type));
    return Status::ok();
  }
  const int64_t spatial = xt.shape.rank() - 2;
  std::vector<Dim> out(static_cast<size_t>(xt.shape.rank()));
  out[0] = xt.shape[0];
  const bool w_known = wt.shape.rank_known() && wt.shape.rank() == xt.shape.rank();
  if (w_known) out[1] = wt.shape[0];
  std::vector<int64_t> kernel = ctx.node().attr_ints("kernel_shape");
  if (kernel.empty() && w_known) {
    for (int64_t d = 2; d < wt.shape.rank(); ++d) {
      if (!wt.shape[d].known()) {
        kernel.clear();
        break;
      }
      kernel.push_back(wt.shape[d].value);
    }
  }
  if (static_cast<int64_t>(kernel.size()) == spatial) {
    KILN_ASSIGN_OR_RETURN(Window w, read_window(ctx.node(), kernel));
    std::vector<Dim> in(xt.shape.dims().begin() + 2, xt.shape.dims().end());
    KILN_ASSIGN_OR_RETURN(std::vector<Dim> o, window_output_shape(in, w));
    std::copy(o.begin(), o.end(), out.begin() + 2);
  }
  ctx.set_output_type(0, ir::ValueType::tensor(out_type, Shape(out)));
  return Status::ok();
}

Status conv_infer(InferContext& ctx) { return conv_like_infer(ctx, ctx.input_type(0).dtype); }

// ---- ConvInteger -----------------------------------------------------------------

// x - zero_point as int32; `zp` is a scalar, or for W one value per output channel.
Result<Tensor> shift_by_zero_point(const Tensor& x, const Tensor* zp, const char* name) {
  if (x.dtype() != DataType::kUInt8 && x.dtype() != DataType::kInt8) {
    return invalid_argument("{} must be uint8 or int8, got {}", name, data_type_name(x.dtype()));
  }
  KILN_ASSIGN_OR_RETURN(Tensor xi, cast_tensor(x, DataType::kInt32));
  if (zp == nullptr) return xi;
  if (zp->dtype() != x.dtype()) {
    return invalid_argument("{} zero point is {} but {} is {}", name, data_type_name(zp->dtype()), name,
                            data_type_name(x.dtype()));
  }
  KILN_ASSIGN_OR_RETURN(Tensor zi, cast_tensor(*zp, DataType::kInt32));
  const int32_t* z = zi.data<int32_t>();
  int32_t* d = xi.data<int32_t>();
  if (zi.numel() == 1) {
    for (int64_t i = 0; i < xi.numel(); ++i) d[i] -= z[0];
    return xi;
  }
  if (zi.rank() != 1 || x.rank() < 1 || zi.dim(0) != x.dim(0)) {
    return invalid_argument("{} zero point of shape {} must be a scalar or have one value per output channel ({})",
                            name, dims_to_string(zp->dims()), x.rank() > 0 ? x.dim(0) : 0);
  }
  const int64_t per = x.dim(0) == 0 ? 0 : xi.numel() / x.dim(0);
  for (int64_t i = 0; i < xi.numel(); ++i) d[i] -= z[i / per];
  return xi;
}

Status conv_integer_kernel(KernelContext& ctx) {
  if (ctx.has_input(2) && ctx.input(2).numel() != 1) {
    return ctx.error(invalid_argument("x_zero_point must be a scalar, got {}", dims_to_string(ctx.input(2).dims())));
  }
  auto x = shift_by_zero_point(ctx.input(0), ctx.has_input(2) ? &ctx.input(2) : nullptr, "x");
  if (!x.is_ok()) return ctx.error(x.status());
  auto w = shift_by_zero_point(ctx.input(1), ctx.has_input(3) ? &ctx.input(3) : nullptr, "w");
  if (!w.is_ok()) return ctx.error(w.status());
  auto geom = conv_geometry(ctx.node(), *x, *w);
  if (!geom.is_ok()) return ctx.error(geom.status());
  auto y = ctx.allocate_output(0, DataType::kInt32, conv_output_dims(*geom));
  if (!y.is_ok()) return y.status();
  conv_forward<int32_t>(x->data<int32_t>(), w->data<int32_t>(), nullptr, (*y)->data<int32_t>(), *geom, ctx.pool());
  return Status::ok();
}

Status conv_integer_infer(InferContext& ctx) { return conv_like_infer(ctx, DataType::kInt32); }

}  // namespace

void register_conv(Registry& r) {
  r.add({.name = "Conv", .domain = "", .since_version = 1, .min_inputs = 2, .max_inputs = 3,
         .kernel = conv_kernel, .infer = conv_infer});
  r.add({.name = "ConvInteger", .domain = "", .since_version = 10, .min_inputs = 2, .max_inputs = 4,
         .kernel = conv_integer_kernel, .infer = conv_integer_infer});
  register_conv_transpose(r);
}

}  // namespace kiln::ops
