// ConvTranspose (part of the conv family; registered by register_conv).
//
// The gradient of Conv with respect to its input: for each (image, group)
// pair, col = W_g^T [M/g * K, C/g] times X_g [C/g, in_size], then col2im
// scatters-adds every column entry into the output position its kernel tap
// lands on. Output extent per axis:
//   stride * (in - 1) + output_padding + (kernel - 1) * dilation + 1 - pad_begin - pad_end
// With output_shape (or auto_pad SAME_*, where output_shape = in * stride),
// the pads are derived from that equation instead (see the ONNX spec).
#include <algorithm>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/conv_window.h"
#include "ops/gemm_kernel.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

// y[m][output position of (input i, kernel tap kidx)] += col[(m * K + kidx) * in_size + i], for m < channels.
template <class T>
void col2im(const T* col, int64_t channels, const ConvGeom& g, T* y) {
  const size_t nd = g.in.size();
  const int64_t ksize = volume(g.w.kernel);
  const int64_t out_size = volume(g.out);
  const int64_t in_last = g.in[nd - 1];
  const int64_t out_last = g.out[nd - 1];
  if (in_last == 0) return;
  const int64_t outer = volume(g.in) / in_last;
  const std::vector<int64_t> out_strides = strides_of(g.out);
  std::vector<int64_t> kpos(nd, 0);
  std::vector<int64_t> ipos(nd, 0);
  const T* src = col;
  for (int64_t c = 0; c < channels; ++c) {
    T* yc = y + c * out_size;
    std::fill(kpos.begin(), kpos.end(), 0);
    for (int64_t kidx = 0; kidx < ksize; ++kidx) {
      std::fill(ipos.begin(), ipos.end(), 0);
      const int64_t oy0 = kpos[nd - 1] * g.w.dilations[nd - 1] - g.w.pad_begin(nd - 1);
      for (int64_t o = 0; o < outer; ++o) {
        bool inside = true;
        int64_t base = 0;
        for (size_t d = 0; d + 1 < nd; ++d) {
          const int64_t oy = ipos[d] * g.w.strides[d] - g.w.pad_begin(d) + kpos[d] * g.w.dilations[d];
          if (oy < 0 || oy >= g.out[d]) inside = false;
          base += oy * out_strides[d];
        }
        if (inside) {
          T* row = yc + base;
          for (int64_t j = 0; j < in_last; ++j) {
            const int64_t oy = oy0 + j * g.w.strides[nd - 1];
            if (oy >= 0 && oy < out_last) row[oy] += src[j];
          }
        }
        src += in_last;
        for (size_t d = nd - 1; d-- > 0;) {
          if (++ipos[d] < g.in[d]) break;
          ipos[d] = 0;
        }
      }
      for (size_t d = nd; d-- > 0;) {
        if (++kpos[d] < g.w.kernel[d]) break;
        kpos[d] = 0;
      }
    }
  }
}

// y[N, M, out...] = conv_transpose(x[N, C, in...], w[C, M/group, kernel...]) + bias[M]. y starts zeroed.
template <class T>
void conv_transpose_forward(const T* x, const T* w, const T* bias, T* y, const ConvGeom& g, ThreadPool* pool) {
  const int64_t cg = g.in_channels / g.group;
  const int64_t mg = g.out_channels / g.group;
  const int64_t in_size = volume(g.in);
  const int64_t out_size = volume(g.out);
  const int64_t rows = mg * volume(g.w.kernel);
  // W_g^T for every group: [rows, cg].
  std::vector<T> wt(static_cast<size_t>(g.group * rows * cg));
  for (int64_t gi = 0; gi < g.group; ++gi) {
    const T* wg = w + gi * cg * rows;
    T* dst = wt.data() + gi * rows * cg;
    for (int64_t c = 0; c < cg; ++c) {
      for (int64_t r = 0; r < rows; ++r) dst[r * cg + c] = wg[c * rows + r];
    }
  }
  auto run_task = [&](int64_t t, std::vector<T>& col, ThreadPool* inner) {
    const int64_t n = t / g.group;
    const int64_t gi = t % g.group;
    const T* xg = x + (n * g.in_channels + gi * cg) * in_size;
    T* yg = y + (n * g.out_channels + gi * mg) * out_size;
    col.assign(static_cast<size_t>(rows * in_size), T(0));
    gemm_accumulate<T>(rows, in_size, cg, wt.data() + gi * rows * cg, cg, xg, in_size, col.data(), in_size, inner);
    col2im(col.data(), mg, g, yg);
    if (bias != nullptr) {
      for (int64_t m = 0; m < mg; ++m) {
        for (int64_t i = 0; i < out_size; ++i) yg[m * out_size + i] += bias[gi * mg + m];
      }
    }
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

// The attributes of a ConvTranspose with a known kernel; `in` holds the spatial
// input dims (-1 where unknown, for shape inference). Fills pads and returns
// the output spatial dims (-1 where unknown).
Result<std::vector<int64_t>> transpose_output(const ir::Node& node, const std::vector<int64_t>& in, Window& w) {
  const size_t nd = in.size();
  std::vector<int64_t> out_pad = node.attr_ints("output_padding", std::vector<int64_t>(nd, 0));
  if (out_pad.size() != nd) {
    return invalid_argument("output_padding has {} values, expected {}", out_pad.size(), nd);
  }
  for (size_t d = 0; d < nd; ++d) {
    if (out_pad[d] < 0 || out_pad[d] >= std::max(w.strides[d], w.dilations[d])) {
      return invalid_argument("output_padding {} on axis {} must be in [0, max(stride, dilation))", out_pad[d], d);
    }
  }
  std::vector<int64_t> shape = node.attr_ints("output_shape");
  if (shape.size() == nd + 2) shape.erase(shape.begin(), shape.begin() + 2);  // [N, C, spatial...] spelling
  if (!shape.empty() && shape.size() != nd) {
    return invalid_argument("output_shape has {} values, expected {}", shape.size(), nd);
  }
  const bool same = w.auto_pad == "SAME_UPPER" || w.auto_pad == "SAME_LOWER";
  if (w.auto_pad == "VALID") std::fill(w.pads.begin(), w.pads.end(), 0);
  std::vector<int64_t> out(nd, -1);
  for (size_t d = 0; d < nd; ++d) {
    if (in[d] < 0) continue;
    const int64_t full = w.strides[d] * (in[d] - 1) + out_pad[d] + w.span(d);
    if (!shape.empty() || same) {
      const int64_t target = !shape.empty() ? shape[d] : in[d] * w.strides[d];
      if (target < 0) return invalid_argument("output_shape must be non-negative, got {}", target);
      const int64_t total = full - target;
      // Floor division, as ONNX's reference: a negative total (output_shape
      // beyond the full extent) becomes a negative end pad, i.e. extra output.
      const int64_t small = total >= 0 ? total / 2 : -((-total + 1) / 2);
      w.pads[d] = w.auto_pad == "SAME_UPPER" ? small : total - small;
      w.pads[nd + d] = total - w.pads[d];
      out[d] = target;
    } else {
      out[d] = full - w.pad_begin(d) - w.pad_end(d);
      if (out[d] < 0) {
        return invalid_argument("pads {} + {} exceed the full output extent {} on axis {}", w.pad_begin(d),
                                w.pad_end(d), full, d);
      }
    }
  }
  return out;
}

Result<std::vector<int64_t>> kernel_of(const ir::Node& node, const Dims& wdims) {
  std::vector<int64_t> kernel(wdims.begin() + 2, wdims.end());
  if (node.has_attr("kernel_shape") && node.attr_ints("kernel_shape") != kernel) {
    return invalid_argument("kernel_shape [{}] does not match W of shape {}",
                            fmt::join(node.attr_ints("kernel_shape"), ","), dims_to_string(wdims));
  }
  return kernel;
}

Result<ConvGeom> transpose_geometry(const ir::Node& node, const Tensor& x, const Tensor& w) {
  if (x.rank() < 3) {
    return invalid_argument("X must have rank >= 3 ([N, C, spatial...]), got {}", dims_to_string(x.dims()));
  }
  if (w.rank() != x.rank()) return invalid_argument("W has rank {} but X has rank {}", w.rank(), x.rank());
  ConvGeom g;
  g.batch = x.dim(0);
  g.in_channels = x.dim(1);
  g.group = node.attr_int("group", 1);
  if (g.group <= 0) return invalid_argument("group must be positive, got {}", g.group);
  if (w.dim(0) != g.in_channels || g.in_channels % g.group != 0) {
    return invalid_argument("X has {} channels but W {} expects {} (group {})", g.in_channels,
                            dims_to_string(w.dims()), w.dim(0), g.group);
  }
  g.out_channels = w.dim(1) * g.group;
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, kernel_of(node, w.dims()));
  KILN_ASSIGN_OR_RETURN(g.w, read_window(node, kernel, true, /*allow_negative_pads=*/false));
  g.in.assign(x.dims().begin() + 2, x.dims().end());
  KILN_ASSIGN_OR_RETURN(g.out, transpose_output(node, g.in, g.w));
  return g;
}

Status conv_transpose_kernel(KernelContext& ctx) {
  const DataType dtype = ctx.input(0).dtype();
  if (ctx.input(1).dtype() != dtype || (ctx.has_input(2) && ctx.input(2).dtype() != dtype)) {
    return ctx.error(invalid_argument("X, W and B must have one element type"));
  }
  auto geom = transpose_geometry(ctx.node(), ctx.input(0), ctx.input(1));
  if (!geom.is_ok()) return ctx.error(geom.status());
  const ConvGeom& g = *geom;
  if (ctx.has_input(2) && (ctx.input(2).rank() != 1 || ctx.input(2).dim(0) != g.out_channels)) {
    return ctx.error(invalid_argument("B must have shape [{}], got {}", g.out_channels,
                                      dims_to_string(ctx.input(2).dims())));
  }
  const bool half = dtype == DataType::kFloat16 || dtype == DataType::kBFloat16;
  Tensor x = ctx.input(0), w = ctx.input(1), b = ctx.has_input(2) ? ctx.input(2) : Tensor();
  if (half) {
    KILN_ASSIGN_OR_RETURN(x, to_float32(x));
    KILN_ASSIGN_OR_RETURN(w, to_float32(w));
    if (b.defined()) {
      KILN_ASSIGN_OR_RETURN(b, to_float32(b));
    }
  }
  Dims out_dims{g.batch, g.out_channels};
  out_dims.insert(out_dims.end(), g.out.begin(), g.out.end());
  auto y = Tensor::allocate(x.dtype(), out_dims);
  if (!y.is_ok()) return ctx.error(y.status());
  if (x.dtype() == DataType::kFloat32) {
    conv_transpose_forward<float>(x.data<float>(), w.data<float>(), b.defined() ? b.data<float>() : nullptr,
                                  y->data<float>(), g, ctx.pool());
  } else if (x.dtype() == DataType::kFloat64) {
    conv_transpose_forward<double>(x.data<double>(), w.data<double>(), b.defined() ? b.data<double>() : nullptr,
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

Status conv_transpose_infer(InferContext& ctx) {
  const auto& xt = ctx.input_type(0);
  const auto& wt = ctx.input_type(1);
  if (!xt.shape.rank_known() || xt.shape.rank() < 3) {
    ctx.set_output_type(0, ir::ValueType::tensor(xt.dtype));
    return Status::ok();
  }
  std::vector<Dim> out(static_cast<size_t>(xt.shape.rank()));
  out[0] = xt.shape[0];
  const bool w_known = wt.shape.rank_known() && wt.shape.rank() == xt.shape.rank() && wt.shape.fully_known();
  if (w_known) {
    out[1] = Dim(wt.shape[1].value * ctx.node().attr_int("group", 1));
    Dims wdims = *wt.shape.concrete();
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, kernel_of(ctx.node(), wdims));
    KILN_ASSIGN_OR_RETURN(Window w, read_window(ctx.node(), kernel));
    std::vector<int64_t> in;
    for (int64_t d = 2; d < xt.shape.rank(); ++d) in.push_back(xt.shape[d].known() ? xt.shape[d].value : -1);
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> o, transpose_output(ctx.node(), in, w));
    for (size_t d = 0; d < o.size(); ++d) {
      if (o[d] >= 0) out[d + 2] = Dim(o[d]);
    }
  }
  ctx.set_output_type(0, ir::ValueType::tensor(xt.dtype, Shape(out)));
  return Status::ok();
}

}  // namespace

void register_conv_transpose(Registry& r) {
  r.add({.name = "ConvTranspose", .domain = "", .since_version = 1, .min_inputs = 2, .max_inputs = 3,
         .kernel = conv_transpose_kernel, .infer = conv_transpose_infer});
}

}  // namespace kiln::ops
