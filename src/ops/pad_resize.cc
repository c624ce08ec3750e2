// Op family: Pad here; Resize and Upsample in pad_resize_interp.cc.
//
// Pad modes: constant, reflect (mirror without repeating the edge, applied
// repeatedly when a pad exceeds the axis), edge and wrap. Negative pads crop:
// the crop happens first, and reflect/edge/wrap see the cropped axis.
#include "ops/pad_resize.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

template <class T>
void gather_typed(const T* x, T* y, const Dims& in, const Dims& out, const std::vector<std::vector<int64_t>>& src,
                  const T& fill, int64_t out_numel) {
  const size_t r = out.size();
  if (r == 0) {
    if (out_numel == 1) y[0] = x[0];
    return;
  }
  const std::vector<int64_t> strides = strides_of(in);
  const int64_t last = out[r - 1];
  if (last == 0) return;
  const std::vector<int64_t>& src_last = src[r - 1];
  std::vector<int64_t> idx(r - 1, 0);
  for (int64_t base_out = 0; base_out < out_numel; base_out += last) {
    bool inside = true;
    int64_t base = 0;
    for (size_t d = 0; d + 1 < r; ++d) {
      const int64_t s = src[d][static_cast<size_t>(idx[d])];
      if (s < 0) inside = false;
      base += s * strides[d];
    }
    for (int64_t j = 0; j < last; ++j) {
      const int64_t s = src_last[static_cast<size_t>(j)];
      y[base_out + j] = inside && s >= 0 ? x[base + s] : fill;
    }
    for (size_t d = r - 1; d-- > 0;) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
}

template <class T>
T fill_value(const Tensor& fill) {
  T v{};
  if (fill.defined() && fill.numel() == 1) std::memcpy(&v, fill.raw_data(), sizeof(T));
  return v;
}

}  // namespace

Result<Tensor> gather_by_axis_maps(const Tensor& x, const Dims& out, const std::vector<std::vector<int64_t>>& src,
                                   const Tensor& fill) {
  KILN_ASSIGN_OR_RETURN(Tensor y, Tensor::allocate(x.dtype(), out));
  const int64_t n = y.numel();
  if (x.dtype() == DataType::kString) {
    std::string f = fill.defined() && fill.numel() == 1 ? fill.data<std::string>()[0] : std::string();
    gather_typed<std::string>(x.data<std::string>(), y.data<std::string>(), x.dims(), out, src, f, n);
    return y;
  }
  switch (element_size(x.dtype())) {
    case 1: gather_typed<uint8_t>(x.data<uint8_t>(), y.data<uint8_t>(), x.dims(), out, src, fill_value<uint8_t>(fill), n); break;
    case 2: gather_typed<uint16_t>(x.data<uint16_t>(), y.data<uint16_t>(), x.dims(), out, src, fill_value<uint16_t>(fill), n); break;
    case 4: gather_typed<uint32_t>(x.data<uint32_t>(), y.data<uint32_t>(), x.dims(), out, src, fill_value<uint32_t>(fill), n); break;
    case 8: gather_typed<uint64_t>(x.data<uint64_t>(), y.data<uint64_t>(), x.dims(), out, src, fill_value<uint64_t>(fill), n); break;
    default:
      return unimplemented("element type {} is not supported", data_type_name(x.dtype()));
  }
  return y;
}

namespace {

// Source index along one axis for output position o, or -1 for the constant.
// `lo`/`len`: the part of the input axis that survives cropping; `before`: added positions.
int64_t pad_source(int64_t o, int64_t before, int64_t lo, int64_t len, const std::string& mode) {
  const int64_t i = o - before;
  if (i >= 0 && i < len) return lo + i;
  if (mode == "constant") return -1;
  if (mode == "edge") return lo + (i < 0 ? 0 : len - 1);
  if (mode == "wrap") return lo + ((i % len) + len) % len;
  // reflect
  if (len == 1) return lo;
  const int64_t period = 2 * (len - 1);
  const int64_t m = ((i % period) + period) % period;
  return lo + (m < len ? m : period - m);
}

Status pad_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const auto& node = ctx.node();
  const int64_t rank = x.rank();
  const std::string mode = node.attr_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap") {
    return ctx.error(invalid_argument("unknown mode '{}'", mode));
  }
  if (mode == "wrap" && ctx.opset() < 19) return ctx.error(invalid_argument("mode 'wrap' needs opset 19"));
  std::vector<int64_t> pads;
  Tensor fill;
  std::vector<int64_t> axes;
  if (ctx.opset() < 11) {
    if (!node.has_attr("pads")) return ctx.error(invalid_argument("attribute 'pads' is required before opset 11"));
    pads = node.attr_ints("pads");
    Tensor v = Tensor::scalar<double>(DataType::kFloat64, node.attr_float("value", 0.0f));
    auto f = cast_tensor(v, x.dtype());
    if (!f.is_ok()) return ctx.error(f.status());
    fill = std::move(f).value();
  } else {
    if (!ctx.has_input(1)) return ctx.error(invalid_argument("input 'pads' is required from opset 11"));
    auto p = to_int64_vector(ctx.input(1));
    if (!p.is_ok()) return ctx.error(p.status().with_context("pads"));
    pads = std::move(p).value();
    if (ctx.has_input(2) && ctx.input(2).numel() > 0) {
      const Tensor& cv = ctx.input(2);
      if (cv.dtype() != x.dtype() || cv.numel() != 1) {
        return ctx.error(invalid_argument("constant_value must be one {} value, got {}", data_type_name(x.dtype()),
                                          cv.debug_string()));
      }
      fill = cv;
    }
    if (ctx.has_input(3)) {
      auto a = to_int64_vector(ctx.input(3));
      if (!a.is_ok()) return ctx.error(a.status().with_context("axes"));
      axes = std::move(a).value();
    }
  }
  if (axes.empty()) {
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  }
  auto norm_axes = normalize_axes(axes, rank);
  if (!norm_axes.is_ok()) return ctx.error(norm_axes.status());
  const size_t na = norm_axes->size();
  if (pads.size() != 2 * na) {
    return ctx.error(invalid_argument("pads has {} values, expected {} (2 per padded axis)", pads.size(), 2 * na));
  }
  std::vector<int64_t> begin(static_cast<size_t>(rank), 0), end(static_cast<size_t>(rank), 0);
  for (int64_t v : pads) {
    if (v > kMaxTensorElements || v < -kMaxTensorElements) {
      return ctx.error(invalid_argument("pad {} is out of range", v));
    }
  }
  for (size_t i = 0; i < na; ++i) {
    begin[static_cast<size_t>((*norm_axes)[i])] = pads[i];
    end[static_cast<size_t>((*norm_axes)[i])] = pads[na + i];
  }
  Dims out(static_cast<size_t>(rank));
  std::vector<std::vector<int64_t>> src(static_cast<size_t>(rank));
  for (int64_t d = 0; d < rank; ++d) {
    const size_t di = static_cast<size_t>(d);
    const int64_t lo = std::max<int64_t>(0, -begin[di]);
    const int64_t len = x.dim(d) - lo - std::max<int64_t>(0, -end[di]);
    if (len < 0) {
      return ctx.error(invalid_argument("pads {} and {} on axis {} crop more than its {} elements", begin[di], end[di],
                                        d, x.dim(d)));
    }
    const int64_t before = std::max<int64_t>(0, begin[di]);
    out[di] = len + before + std::max<int64_t>(0, end[di]);
    if (len == 0 && out[di] > 0 && mode != "constant") {
      return ctx.error(invalid_argument("cannot pad the empty axis {} in mode '{}'", d, mode));
    }
  }
  auto numel = checked_numel(out);
  if (!numel.is_ok()) return ctx.error(numel.status());
  if (*numel == 0) {  // nothing to gather (and no index maps to build for the other axes)
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, x.dtype(), out));
    (void)y;
    return Status::ok();
  }
  for (int64_t d = 0; d < rank; ++d) {
    const size_t di = static_cast<size_t>(d);
    const int64_t lo = std::max<int64_t>(0, -begin[di]);
    const int64_t len = x.dim(d) - lo - std::max<int64_t>(0, -end[di]);
    const int64_t before = std::max<int64_t>(0, begin[di]);
    for (int64_t o = 0; o < out[di]; ++o) src[di].push_back(pad_source(o, before, lo, len, mode));
  }
  auto y = gather_by_axis_maps(x, out, src, fill);
  if (!y.is_ok()) return ctx.error(y.status());
  ctx.set_output(0, std::move(y).value());
  return Status::ok();
}

Status pad_infer(InferContext& ctx) {
  const auto& xt = ctx.input_type(0);
  ir::ValueType out = ir::ValueType::tensor(xt.dtype);
  if (xt.shape.rank_known()) {
    out.shape = Shape::unknown_dims(xt.shape.rank());
    std::vector<int64_t> pads;
    const Tensor* pc = ctx.opset() >= 11 ? ctx.input_constant(1) : nullptr;
    if (ctx.opset() < 11) {
      pads = ctx.node().attr_ints("pads");
    } else if (pc != nullptr) {
      if (auto p = to_int64_vector(*pc); p.is_ok()) pads = *p;
    }
    const bool all_axes = ctx.opset() < 18 || !ctx.has_input(3);
    if (all_axes && static_cast<int64_t>(pads.size()) == 2 * xt.shape.rank()) {
      for (int64_t d = 0; d < xt.shape.rank(); ++d) {
        if (xt.shape[d].known()) {
          out.shape[d] = Dim(xt.shape[d].value + pads[static_cast<size_t>(d)] +
                             pads[static_cast<size_t>(d + xt.shape.rank())]);
        }
      }
    }
  }
  ctx.set_output_type(0, out);
  return Status::ok();
}

}  // namespace

void register_pad_resize(Registry& r) {
  r.add({.name = "Pad", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 4, .kernel = pad_kernel,
         .infer = pad_infer});
  register_resize_ops(r);
}

}  // namespace kiln::ops
