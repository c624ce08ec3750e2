// Op family geometry, part: sliding-block ops. Col2Im, DeformConv,
// CenterCropPad.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "ops/geometry_internal.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

using geometry::input_dtype;
using geometry::is_real_float;
using geometry::known_rank_shape;

// Advances a row-major multi-index over `dims`; false after the last one.
bool next_index(std::vector<int64_t>& idx, const Dims& dims) {
  for (size_t d = dims.size(); d-- > 0;) {
    if (++idx[d] < dims[d]) return true;
    idx[d] = 0;
  }
  return false;
}

int64_t product(const Dims& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// Sliding-window geometry over r spatial dims: kernel, strides, dilations and
// begin/end pads, each validated.
struct Window {
  Dims kernel, strides, dilations, pads;  // pads: r begins then r ends
};

Result<Window> read_window(const ir::Node& node, Dims kernel) {
  size_t r = kernel.size();
  Window w;
  w.kernel = std::move(kernel);
  w.strides = node.attr_ints("strides", Dims(r, 1));
  w.dilations = node.attr_ints("dilations", Dims(r, 1));
  w.pads = node.attr_ints("pads", Dims(2 * r, 0));
  if (w.strides.size() != r || w.dilations.size() != r || w.pads.size() != 2 * r) {
    return invalid_argument("strides {}, dilations {} and pads {} must have {}, {} and {} entries",
                            dims_to_string(w.strides), dims_to_string(w.dilations), dims_to_string(w.pads), r, r,
                            2 * r);
  }
  // Bounded so that window arithmetic (dilation * kernel, image + pads) cannot overflow.
  constexpr int64_t kMax = int64_t{1} << 31;
  for (const Dims* v : {&w.kernel, &w.strides, &w.dilations, &w.pads}) {
    for (int64_t d : *v) {
      if (d > kMax) return invalid_argument("window value {} is too large", d);
    }
  }
  for (size_t i = 0; i < r; ++i) {
    if (w.kernel[i] <= 0) return invalid_argument("kernel shape {} must be positive", dims_to_string(w.kernel));
    if (w.strides[i] <= 0) return invalid_argument("strides {} must be positive", dims_to_string(w.strides));
    if (w.dilations[i] <= 0) return invalid_argument("dilations {} must be positive", dims_to_string(w.dilations));
  }
  for (int64_t p : w.pads) {
    if (p < 0) return invalid_argument("pads {} must not be negative", dims_to_string(w.pads));
  }
  return w;
}

// Number of window positions along each dim of an image of `image` dims.
Result<Dims> block_counts(const Window& w, const Dims& image) {
  size_t r = image.size();
  Dims counts(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t span = w.dilations[i] * (w.kernel[i] - 1) + 1;
    int64_t padded = image[i] + w.pads[i] + w.pads[i + r];
    counts[i] = padded >= span ? (padded - span) / w.strides[i] + 1 : 0;
    if (counts[i] <= 0) {
      return invalid_argument("the window (kernel {}, dilations {}) does not fit the padded image {}",
                              dims_to_string(w.kernel), dims_to_string(w.dilations), dims_to_string(image));
    }
  }
  return counts;
}

// ---- Col2Im ------------------------------------------------------------------

template <class T>
void col2im(const Tensor& in, Tensor& out, const Window& w, const Dims& image, const Dims& counts) {
  using C = compute_type_t<T>;
  int64_t batch = in.dim(0), channels = out.dim(1);
  int64_t k_size = product(w.kernel), blocks = product(counts), image_size = product(image);
  size_t r = image.size();
  std::vector<C> acc(static_cast<size_t>(image_size));
  const T* src = in.data<T>();
  T* dst = out.data<T>();
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t c = 0; c < channels; ++c) {
      std::fill(acc.begin(), acc.end(), C{});
      std::vector<int64_t> k(r, 0);
      for (int64_t ki = 0; ki < k_size; ++ki, next_index(k, w.kernel)) {
        const T* row = src + ((n * channels + c) * k_size + ki) * blocks;
        std::vector<int64_t> b(r, 0);
        for (int64_t bi = 0; bi < blocks; ++bi, next_index(b, counts)) {
          int64_t offset = 0;
          bool inside = true;
          for (size_t i = 0; i < r && inside; ++i) {
            int64_t pos = b[i] * w.strides[i] - w.pads[i] + k[i] * w.dilations[i];
            inside = pos >= 0 && pos < image[i];
            offset = offset * image[i] + pos;
          }
          if (inside) acc[static_cast<size_t>(offset)] += static_cast<C>(row[bi]);
        }
      }
      for (int64_t i = 0; i < image_size; ++i) dst[(n * channels + c) * image_size + i] = static_cast<T>(acc[static_cast<size_t>(i)]);
    }
  }
}

Result<Dims> shape_input(const Tensor& t, const char* name) {
  if (t.rank() != 1) return invalid_argument("{} {} must be 1-D", name, t.debug_string());
  auto v = to_int64_vector(t);
  if (!v.is_ok()) return v.status().with_context(name);
  return std::move(v).value();
}

Status col2im_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* image_t, ctx.tensor_input(1));
  KILN_ASSIGN_OR_RETURN(const Tensor* block_t, ctx.tensor_input(2));
  KILN_ASSIGN_OR_RETURN(Dims image, shape_input(*image_t, "image_shape"));
  KILN_ASSIGN_OR_RETURN(Dims block, shape_input(*block_t, "block_shape"));
  if (image.empty() || image.size() != block.size()) {
    return invalid_argument("image_shape {} and block_shape {} must have the same, non-zero length",
                            dims_to_string(image), dims_to_string(block));
  }
  for (int64_t d : image) {
    if (d <= 0 || d > kMaxTensorElements) return invalid_argument("image_shape {} must be positive", dims_to_string(image));
  }
  KILN_RETURN_IF_ERROR(checked_numel(block).status());
  KILN_ASSIGN_OR_RETURN(Window w, read_window(ctx.node(), block));
  KILN_ASSIGN_OR_RETURN(Dims counts, block_counts(w, image));
  int64_t k_size = product(block);
  if (x->rank() != 3 || x->dim(1) % k_size != 0 || x->dim(2) != product(counts)) {
    return invalid_argument("input {} must have shape [N, C * {}, {}] (block_shape {}, {} blocks)", x->debug_string(),
                            k_size, product(counts), dims_to_string(block), dims_to_string(counts));
  }
  Dims out_dims = {x->dim(0), x->dim(1) / k_size};
  out_dims.insert(out_dims.end(), image.begin(), image.end());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, x->dtype(), out_dims));
  return visit_numeric(x->dtype(), "Col2Im", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) col2im<T>(*x, *out, w, image, counts);
    return Status::ok();
  });
}

Status col2im_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Tensor* image_t = ctx.input_constant(1);
  if (image_t == nullptr) {
    const Shape* is = known_rank_shape(ctx, 1);
    bool len_known = is != nullptr && is->rank() == 1 && (*is)[0].known();
    ctx.set_output_type(0, ir::ValueType::tensor(dtype, len_known ? Shape::unknown_dims((*is)[0].value + 2) : Shape()));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(Dims image, to_int64_vector(*image_t));
  std::vector<Dim> out(2);
  for (int64_t d : image) out.emplace_back(d);
  if (const Shape* xs = known_rank_shape(ctx, 0); xs != nullptr && xs->rank() == 3) {
    out[0] = (*xs)[0];
    const Tensor* block_t = ctx.input_constant(2);
    if (block_t != nullptr && (*xs)[1].known()) {
      KILN_ASSIGN_OR_RETURN(Dims block, to_int64_vector(*block_t));
      int64_t k = product(block);
      if (k > 0 && (*xs)[1].value % k == 0) out[1] = Dim((*xs)[1].value / k);
    }
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

// ---- DeformConv --------------------------------------------------------------

// Multilinear sample of `plane` (dims `size`) at `pos`; positions outside the
// image contribute zero (GridSample's zeros padding with aligned corners).
double sample_zero_padded(const double* plane, const Dims& size, const std::vector<double>& pos) {
  size_t r = size.size();
  std::vector<int64_t> base(r);
  std::vector<double> frac(r);
  for (size_t i = 0; i < r; ++i) {
    double f = std::floor(pos[i]);
    if (!(f > -2 && f < static_cast<double>(size[i]))) return 0.0;  // no tap inside (also NaN)
    base[i] = static_cast<int64_t>(f);
    frac[i] = pos[i] - f;
  }
  double sum = 0;
  for (int64_t corner = 0; corner < (int64_t{1} << r); ++corner) {
    double w = 1;
    int64_t offset = 0;
    for (size_t i = 0; i < r; ++i) {
      int64_t bit = (corner >> (r - 1 - i)) & 1;
      int64_t idx = base[i] + bit;
      if (idx < 0 || idx >= size[i]) {
        w = 0;
        break;
      }
      w *= bit != 0 ? frac[i] : 1 - frac[i];
      offset = offset * size[i] + idx;
    }
    if (w != 0) sum += w * plane[offset];
  }
  return sum;
}

Status deform_conv_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* wt, ctx.tensor_input(1));
  KILN_ASSIGN_OR_RETURN(const Tensor* off, ctx.tensor_input(2));
  if (!is_real_float(x->dtype())) return invalid_argument("X type {} is not a float type", data_type_name(x->dtype()));
  if (x->rank() < 3 || wt->rank() != x->rank() || off->rank() != x->rank()) {
    return invalid_argument("X {}, W {} and offset {} must have the same rank (at least 3)", x->debug_string(),
                            wt->debug_string(), off->debug_string());
  }
  size_t r = static_cast<size_t>(x->rank() - 2);
  int64_t batch = x->dim(0), in_c = x->dim(1), out_c = wt->dim(0);
  int64_t group = ctx.node().attr_int("group", 1);
  int64_t offset_group = ctx.node().attr_int("offset_group", 1);
  if (group <= 0 || offset_group <= 0) {
    return invalid_argument("group {} and offset_group {} must be positive", group, offset_group);
  }
  if (in_c != wt->dim(1) * group || out_c % group != 0 || in_c % offset_group != 0) {
    return invalid_argument("X {} and W {} do not fit group {} and offset_group {}", x->debug_string(),
                            wt->debug_string(), group, offset_group);
  }
  Dims w_kernel(wt->dims().begin() + 2, wt->dims().end());
  Dims kernel = ctx.node().attr_ints("kernel_shape", w_kernel);
  if (kernel != w_kernel) {
    return invalid_argument("kernel_shape {} differs from W's spatial dims {}", dims_to_string(kernel),
                            dims_to_string(w_kernel));
  }
  KILN_ASSIGN_OR_RETURN(Window win, read_window(ctx.node(), kernel));
  Dims image(x->dims().begin() + 2, x->dims().end());
  KILN_ASSIGN_OR_RETURN(Dims out_sp, block_counts(win, image));
  int64_t k_size = product(kernel);
  Dims off_expect = {batch, offset_group * k_size * static_cast<int64_t>(r)};
  off_expect.insert(off_expect.end(), out_sp.begin(), out_sp.end());
  if (off->dims() != off_expect) {
    return invalid_argument("offset {} must have shape {}", off->debug_string(), dims_to_string(off_expect));
  }
  Tensor bias, mask;
  if (ctx.has_input(3)) {
    if (ctx.input(3).rank() != 1 || ctx.input(3).dim(0) != out_c) {
      return invalid_argument("B {} must have shape [{}]", ctx.input(3).debug_string(), out_c);
    }
    KILN_ASSIGN_OR_RETURN(bias, to_float64(ctx.input(3)));
  }
  if (ctx.has_input(4)) {
    Dims mask_expect = off_expect;
    mask_expect[1] = offset_group * k_size;
    if (ctx.input(4).dims() != mask_expect) {
      return invalid_argument("mask {} must have shape {}", ctx.input(4).debug_string(), dims_to_string(mask_expect));
    }
    KILN_ASSIGN_OR_RETURN(mask, to_float64(ctx.input(4)));
  }
  Dims out_dims = {batch, out_c};
  out_dims.insert(out_dims.end(), out_sp.begin(), out_sp.end());
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(DataType::kFloat64, out_dims));
  KILN_ASSIGN_OR_RETURN(Tensor xd, to_float64(*x));
  KILN_ASSIGN_OR_RETURN(Tensor wd, to_float64(*wt));
  KILN_ASSIGN_OR_RETURN(Tensor od, to_float64(*off));
  int64_t image_size = product(image), points = product(out_sp);
  int64_t in_per_group = in_c / group, out_per_group = out_c / group, in_per_offset_group = in_c / offset_group;
  // For one output point: col[ic * k_size + k] = the masked sample that
  // kernel tap k of input channel ic reads.
  std::vector<double> col(static_cast<size_t>(in_c * k_size));
  std::vector<double> pos(r);
  double* y = out.data<double>();
  for (int64_t n = 0; n < batch; ++n) {
    std::vector<int64_t> o(r, 0);
    for (int64_t p = 0; p < points; ++p, next_index(o, out_sp)) {
      std::vector<int64_t> k(r, 0);
      for (int64_t ki = 0; ki < k_size; ++ki, next_index(k, kernel)) {
        for (int64_t og = 0; og < offset_group; ++og) {
          int64_t off_channel = (og * k_size + ki) * static_cast<int64_t>(r);
          for (size_t i = 0; i < r; ++i) {
            double delta = od.data<double>()[((n * off_expect[1]) + off_channel + static_cast<int64_t>(i)) * points + p];
            pos[i] = static_cast<double>(o[i] * win.strides[i] - win.pads[i] + k[i] * win.dilations[i]) + delta;
          }
          double m = mask.defined() ? mask.data<double>()[(n * offset_group * k_size + og * k_size + ki) * points + p] : 1.0;
          for (int64_t ic = og * in_per_offset_group; ic < (og + 1) * in_per_offset_group; ++ic) {
            const double* plane = xd.data<double>() + (n * in_c + ic) * image_size;
            col[static_cast<size_t>(ic * k_size + ki)] = m * sample_zero_padded(plane, image, pos);
          }
        }
      }
      for (int64_t oc = 0; oc < out_c; ++oc) {
        int64_t g = oc / out_per_group;
        double acc = bias.defined() ? bias.data<double>()[oc] : 0.0;
        for (int64_t icl = 0; icl < in_per_group; ++icl) {
          const double* wrow = wd.data<double>() + (oc * in_per_group + icl) * k_size;
          const double* crow = col.data() + (g * in_per_group + icl) * k_size;
          for (int64_t ki = 0; ki < k_size; ++ki) acc += wrow[ki] * crow[ki];
        }
        y[(n * out_c + oc) * points + p] = acc;
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor cast, cast_tensor(out, x->dtype()));
  ctx.set_output(0, std::move(cast));
  return Status::ok();
}

Status deform_conv_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* os = known_rank_shape(ctx, 2);
  if (os == nullptr || os->rank() < 3) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  Shape out = *os;
  out[1] = Dim();
  if (const Shape* ws = known_rank_shape(ctx, 1); ws != nullptr && ws->rank() >= 1) out[1] = (*ws)[0];
  if (const Shape* xs = known_rank_shape(ctx, 0); xs != nullptr && xs->rank() >= 1 && !out[0].known()) {
    out[0] = (*xs)[0];
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
  return Status::ok();
}

// ---- CenterCropPad -----------------------------------------------------------

// The axes CenterCropPad resizes: the attribute (default every axis).
Result<std::vector<int64_t>> crop_axes(const ir::Node& node, int64_t rank) {
  std::vector<int64_t> axes = node.attr_ints("axes");
  if (!node.has_attr("axes")) {
    axes.resize(static_cast<size_t>(rank));
    for (int64_t i = 0; i < rank; ++i) axes[static_cast<size_t>(i)] = i;
  }
  return normalize_axes(axes, rank);
}

Status center_crop_pad_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* shape_t, ctx.tensor_input(1));
  KILN_ASSIGN_OR_RETURN(Dims shape, shape_input(*shape_t, "shape"));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, crop_axes(ctx.node(), x->rank()));
  if (shape.size() != axes.size()) {
    return invalid_argument("shape {} has {} entries for {} axes", dims_to_string(shape), shape.size(), axes.size());
  }
  Dims out_dims = x->dims();
  // Per axis, the input index of each output index (-1: padding). Both crop
  // and pad centre the kept part, the odd element going to the end.
  std::vector<std::vector<int64_t>> src(static_cast<size_t>(x->rank()));
  for (size_t i = 0; i < axes.size(); ++i) {
    if (shape[i] < 0) return invalid_argument("shape {} has a negative dim", dims_to_string(shape));
    out_dims[static_cast<size_t>(axes[i])] = shape[i];
  }
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, x->dtype(), out_dims));
  for (int64_t a = 0; a < x->rank(); ++a) {
    int64_t in = x->dim(a), out = out_dims[static_cast<size_t>(a)];
    int64_t shift = in >= out ? (in - out) / 2 : -((out - in) / 2);
    auto& table = src[static_cast<size_t>(a)];
    table.resize(static_cast<size_t>(out));
    for (int64_t j = 0; j < out; ++j) table[static_cast<size_t>(j)] = j + shift >= 0 && j + shift < in ? j + shift : -1;
  }
  if (y->numel() == 0) return Status::ok();
  std::vector<int64_t> in_strides = strides_of(x->dims());
  std::vector<int64_t> idx(out_dims.size(), 0);
  int64_t o = 0;
  do {
    int64_t from = 0;
    for (size_t a = 0; a < idx.size() && from >= 0; ++a) {
      int64_t s = src[a][static_cast<size_t>(idx[a])];
      from = s < 0 ? -1 : from + s * in_strides[a];
    }
    if (from >= 0) copy_elements(*x, from, *y, o, 1);
    ++o;
  } while (next_index(idx, out_dims));
  return Status::ok();
}

Status center_crop_pad_infer(InferContext& ctx) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* xs = known_rank_shape(ctx, 0);
  if (xs == nullptr) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axes, crop_axes(ctx.node(), xs->rank()));
  Shape out = *xs;
  const Tensor* shape_t = ctx.input_constant(1);
  std::vector<int64_t> shape;
  if (shape_t != nullptr) {
    KILN_ASSIGN_OR_RETURN(shape, to_int64_vector(*shape_t));
    if (shape.size() != axes.size()) {
      return invalid_argument("shape has {} entries for {} axes", shape.size(), axes.size());
    }
  }
  for (size_t i = 0; i < axes.size(); ++i) out[axes[i]] = shape_t != nullptr ? Dim(shape[i]) : Dim();
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
  return Status::ok();
}

}  // namespace

void register_geometry_blocks(Registry& r) {
  r.add({.name = "Col2Im", .domain = "", .since_version = 18, .min_inputs = 3, .max_inputs = 3,
         .kernel = col2im_kernel, .infer = col2im_infer});
  // DeformConv-22 only adds bfloat16.
  r.add({.name = "DeformConv", .domain = "", .since_version = 19, .min_inputs = 3, .max_inputs = 5,
         .kernel = deform_conv_kernel, .infer = deform_conv_infer});
  r.add({.name = "CenterCropPad", .domain = "", .since_version = 18, .min_inputs = 2, .max_inputs = 2,
         .kernel = center_crop_pad_kernel, .infer = center_crop_pad_infer});
}

}  // namespace kiln::ops
