// Op family tensor_ops, part: assorted construction and rearrangement ops.
// Dropout, OneHot, CumSum, Trilu, EyeLike, DepthToSpace, SpaceToDepth.
#include <cmath>

#include "core/error.h"
#include "ops/random_util.h"
#include "ops/registry.h"
#include "ops/tensor_ops_internal.h"

namespace kiln::ops {
namespace {

Status same_as_input_infer(InferContext& ctx) {
  ctx.set_output_type(0, ctx.input_type(0));
  return Status::ok();
}

// ---- Dropout -----------------------------------------------------------------

// Without training_mode (opset 12 input; earlier opsets are inference only)
// Dropout is the identity and its mask is all true (all ones in the input's
// type before opset 10). Before opset 7 the is_test attribute is ignored, as
// inference engines commonly do. In training mode each element is kept with
// probability 1 - ratio and scaled by 1 / (1 - ratio); the mask comes from
// RandomSource, seeded by the `seed` attribute when present.
Status dropout_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  bool training = false;
  double ratio = 0.5;
  if (ctx.opset() >= 12 && ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* tm, ctx.tensor_input(2));
    auto tv = to_scalar_double(*tm);
    if (!tv.is_ok()) return ctx.error(tv.status().with_context("training_mode"));
    training = *tv != 0;
    if (ctx.has_input(1)) {
      KILN_ASSIGN_OR_RETURN(const Tensor* r, ctx.tensor_input(1));
      auto rv = to_scalar_double(*r);
      if (!rv.is_ok()) return ctx.error(rv.status().with_context("ratio"));
      ratio = *rv;
    }
    if (training && !(ratio >= 0 && ratio < 1)) {
      return ctx.error(invalid_argument("ratio must be in [0, 1), got {}", ratio));
    }
  }
  bool drop = training && ratio != 0;
  Tensor mask;
  if (drop || ctx.wants_output(1)) {
    KILN_ASSIGN_OR_RETURN(mask, Tensor::allocate(DataType::kBool, x->dims()));
    std::fill_n(mask.data<bool>(), mask.numel(), true);
  }
  if (drop) {
    auto xd = to_float64(*x);
    if (!xd.is_ok()) return ctx.error(xd.status());
    RandomSource rng = RandomSource::for_node(ctx.node());
    double scale = 1.0 / (1.0 - ratio);
    for (int64_t i = 0; i < x->numel(); ++i) {
      mask.data<bool>()[i] = rng.uniform() >= ratio;
      xd->data<double>()[i] = mask.data<bool>()[i] ? xd->data<double>()[i] * scale : 0.0;
    }
    auto y = cast_tensor(*xd, x->dtype());
    if (!y.is_ok()) return ctx.error(y.status());
    ctx.set_output(0, std::move(y).value());
  } else {
    ctx.set_output(0, ctx.datum(0));
  }
  if (ctx.wants_output(1)) {
    if (ctx.opset() < 10) {
      auto cast = cast_tensor(mask, x->dtype());
      if (!cast.is_ok()) return ctx.error(cast.status());
      mask = std::move(cast).value();
    }
    ctx.set_output(1, std::move(mask));
  }
  return Status::ok();
}

Status dropout_infer(InferContext& ctx) {
  const ir::ValueType& in = ctx.input_type(0);
  ctx.set_output_type(0, in);
  if (ctx.num_outputs() > 1) {
    ctx.set_output_type(1, ir::ValueType::tensor(ctx.opset() >= 10 ? DataType::kBool : input_dtype(ctx, 0),
                                                 in.is_tensor() ? in.shape : Shape()));
  }
  return Status::ok();
}

// ---- OneHot ------------------------------------------------------------------

Status one_hot_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* ind_t, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* depth_t, ctx.tensor_input(1));
  KILN_ASSIGN_OR_RETURN(const Tensor* values, ctx.tensor_input(2));
  auto depth_d = to_scalar_double(*depth_t);
  if (!depth_d.is_ok()) return ctx.error(depth_d.status().with_context("depth"));
  if (!(*depth_d >= 1) || *depth_d > static_cast<double>(kMaxTensorElements)) {
    return ctx.error(invalid_argument("depth {} must be a positive count", *depth_d));
  }
  int64_t depth = static_cast<int64_t>(*depth_d);
  if (values->numel() != 2) {
    return ctx.error(invalid_argument("values must hold [off_value, on_value], got {}", values->debug_string()));
  }
  int64_t rank = ind_t->rank() + 1;
  int64_t axis = ctx.node().attr_int("axis", -1);
  if (axis < -rank || axis >= rank) return ctx.error(invalid_argument("axis {} is out of range for rank {}", axis, rank));
  if (axis < 0) axis += rank;
  auto ind_cast = cast_tensor(*ind_t, DataType::kInt64);
  if (!ind_cast.is_ok()) return ctx.error(ind_cast.status());
  const int64_t* indices = ind_cast->data<int64_t>();
  Dims out_dims = ind_t->dims();
  out_dims.insert(out_dims.begin() + axis, depth);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, values->dtype(), out_dims));
  for (int64_t i = 0; i < out->numel(); ++i) copy_elements(*values, 0, *out, i, 1);
  int64_t outer = dims_product(ind_t->dims(), 0, static_cast<size_t>(axis));
  int64_t inner = dims_product(ind_t->dims(), static_cast<size_t>(axis), ind_t->dims().size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t in = 0; in < inner; ++in) {
      int64_t idx = indices[o * inner + in];
      if (idx < 0) idx += depth;
      if (idx < 0 || idx >= depth) continue;  // outside [-depth, depth): all off, per the spec
      copy_elements(*values, 1, *out, (o * depth + idx) * inner + in, 1);
    }
  }
  return Status::ok();
}

Status one_hot_infer(InferContext& ctx) {
  const Shape* in = known_rank_shape(ctx, 0);
  DataType dtype = input_dtype(ctx, 2);
  if (in == nullptr) {
    ctx.set_output_type(0, ir::ValueType::tensor(dtype));
    return Status::ok();
  }
  int64_t rank = in->rank() + 1;
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.node().attr_int("axis", -1), rank));
  Dim depth;
  if (const Tensor* d = ctx.input_constant(1)) {
    KILN_ASSIGN_OR_RETURN(double v, to_scalar_double(*d));
    if (v >= 1 && v <= static_cast<double>(kMaxTensorElements)) depth = Dim(static_cast<int64_t>(v));
  }
  std::vector<Dim> out = in->dims();
  out.insert(out.begin() + axis, depth);
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, Shape(out)));
  return Status::ok();
}

// ---- CumSum ------------------------------------------------------------------

Status cumsum_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* axis_t, ctx.tensor_input(1));
  auto axis_v = to_int64_scalar(*axis_t);
  if (!axis_v.is_ok()) return ctx.error(axis_v.status().with_context("axis"));
  auto axis_r = normalize_axis(*axis_v, x->rank());
  if (!axis_r.is_ok()) return ctx.error(axis_r.status());
  int64_t axis = *axis_r;
  bool exclusive = ctx.node().attr_int("exclusive", 0) != 0;
  bool reverse = ctx.node().attr_int("reverse", 0) != 0;
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, x->dtype(), x->dims()));
  int64_t dim = x->dim(axis);
  int64_t outer = dims_product(x->dims(), 0, static_cast<size_t>(axis));
  int64_t inner = dims_product(x->dims(), static_cast<size_t>(axis) + 1, x->dims().size());
  return ctx.error(visit_numeric(x->dtype(), "CumSum", [&](auto tag) -> Status {
    using T = decltype(tag);
    using C = compute_type_t<T>;
    const T* src = x->data<T>();
    T* dst = out->data<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t in = 0; in < inner; ++in) {
        C acc = C(0);
        for (int64_t s = 0; s < dim; ++s) {
          int64_t i = reverse ? dim - 1 - s : s;
          int64_t at = (o * dim + i) * inner + in;
          C v = static_cast<C>(src[at]);
          if (!exclusive) acc = static_cast<C>(acc + v);
          dst[at] = static_cast<T>(acc);
          if (exclusive) acc = static_cast<C>(acc + v);
        }
      }
    }
    return Status::ok();
  }));
}

// ---- Trilu -------------------------------------------------------------------

Status trilu_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  if (x->rank() < 2) return ctx.error(invalid_argument("input must have rank >= 2, got {}", x->debug_string()));
  int64_t k = 0;
  if (ctx.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* k_t, ctx.tensor_input(1));
    auto kv = to_int64_scalar(*k_t);
    if (!kv.is_ok()) return ctx.error(kv.status().with_context("k"));
    k = *kv;
  }
  bool upper = ctx.node().attr_int("upper", 1) != 0;
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, x->dtype(), x->dims()));
  int64_t rows = x->dim(x->rank() - 2);
  int64_t cols = x->dim(x->rank() - 1);
  int64_t mats = dims_product(x->dims(), 0, x->dims().size() - 2);
  for (int64_t m = 0; m < mats; ++m) {
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        // j - i and k are compared without forming i + k, which could overflow.
        bool keep = upper ? j - i >= k : j - i <= k;
        if (keep) copy_elements(*x, (m * rows + i) * cols + j, *out, (m * rows + i) * cols + j, 1);
      }
    }
  }
  return Status::ok();
}

// ---- EyeLike -----------------------------------------------------------------

Result<DataType> eye_like_dtype(const ir::Node& node, DataType input) {
  if (!node.has_attr("dtype")) return input;
  int64_t v = node.attr_int("dtype", 0);
  auto dt = data_type_from_int(v);
  if (!dt) return invalid_argument("{}: dtype {} is not a valid element type", node.describe(), v);
  return *dt;
}

Status eye_like_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  if (x->rank() != 2) return ctx.error(invalid_argument("input must be 2-D, got {}", x->debug_string()));
  KILN_ASSIGN_OR_RETURN(DataType dt, eye_like_dtype(ctx.node(), x->dtype()));
  int64_t k = ctx.node().attr_int("k", 0);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, dt, x->dims()));
  return ctx.error(visit_numeric(dt, "EyeLike", [&](auto tag) -> Status {
    using T = decltype(tag);
    T one = static_cast<T>(compute_type_t<T>(1));
    for (int64_t i = 0; i < x->dim(0); ++i) {
      for (int64_t j = 0; j < x->dim(1); ++j) {
        if (j - i == k) out->data<T>()[i * x->dim(1) + j] = one;
      }
    }
    return Status::ok();
  }, /*with_bool=*/true));
}

Status eye_like_infer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(DataType dt, eye_like_dtype(ctx.node(), input_dtype(ctx, 0)));
  const Shape* in = known_rank_shape(ctx, 0);
  ctx.set_output_type(0, ir::ValueType::tensor(dt, in ? *in : Shape::unknown_dims(2)));
  return Status::ok();
}

// ---- DepthToSpace / SpaceToDepth ---------------------------------------------

Result<int64_t> block_size(const ir::Node& node) {
  if (!node.has_attr("blocksize")) return invalid_argument("{}: attribute 'blocksize' is required", node.describe());
  int64_t b = node.attr_int("blocksize", 0);
  if (b < 1) return invalid_argument("{}: blocksize {} must be positive", node.describe(), b);
  return b;
}

Status depth_to_space_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(int64_t b, block_size(ctx.node()));
  std::string mode = ctx.opset() >= 11 ? ctx.node().attr_string("mode", "DCR") : "DCR";
  if (mode != "DCR" && mode != "CRD") return ctx.error(invalid_argument("mode '{}' must be DCR or CRD", mode));
  if (x->rank() != 4 || x->dim(1) % (b * b) != 0) {
    return ctx.error(invalid_argument("input {} must be 4-D with channels divisible by {}", x->debug_string(), b * b));
  }
  int64_t n = x->dim(0), c = x->dim(1) / (b * b), h = x->dim(2), w = x->dim(3);
  Dims out_dims = {n, c, h * b, w * b};
  std::vector<int64_t> src;
  src.reserve(static_cast<size_t>(x->numel()));
  for (int64_t in = 0; in < n; ++in) {
    for (int64_t ic = 0; ic < c; ++ic) {
      for (int64_t oh = 0; oh < h * b; ++oh) {
        for (int64_t ow = 0; ow < w * b; ++ow) {
          int64_t i = oh % b, j = ow % b;
          int64_t ch = mode == "DCR" ? (i * b + j) * c + ic : ic * b * b + i * b + j;
          src.push_back(((in * x->dim(1) + ch) * h + oh / b) * w + ow / b);
        }
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor out, take_elements(*x, src, out_dims));
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status space_to_depth_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(int64_t b, block_size(ctx.node()));
  if (x->rank() != 4 || x->dim(2) % b != 0 || x->dim(3) % b != 0) {
    return ctx.error(invalid_argument("input {} must be 4-D with H and W divisible by {}", x->debug_string(), b));
  }
  // Opset 28 added CRD order (channel-major) beside the original DCR (block-major).
  std::string mode = ctx.opset() >= 28 ? ctx.node().attr_string("mode", "DCR") : "DCR";
  if (mode != "DCR" && mode != "CRD") return ctx.error(invalid_argument("mode '{}' must be DCR or CRD", mode));
  bool crd = mode == "CRD";
  int64_t n = x->dim(0), c = x->dim(1), h = x->dim(2) / b, w = x->dim(3) / b;
  Dims out_dims = {n, c * b * b, h, w};
  std::vector<int64_t> src;
  src.reserve(static_cast<size_t>(x->numel()));
  for (int64_t in = 0; in < n; ++in) {
    for (int64_t oc = 0; oc < c * b * b; ++oc) {
      int64_t ic = crd ? oc / (b * b) : oc % c;
      int64_t block = crd ? oc % (b * b) : oc / c;
      int64_t i = block / b, j = block % b;
      for (int64_t oh = 0; oh < h; ++oh) {
        for (int64_t ow = 0; ow < w; ++ow) {
          src.push_back(((in * c + ic) * x->dim(2) + oh * b + i) * x->dim(3) + ow * b + j);
        }
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor out, take_elements(*x, src, out_dims));
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

// Shared by DepthToSpace (to_depth false) and SpaceToDepth (true).
Status block_infer(InferContext& ctx, bool to_depth) {
  DataType dtype = input_dtype(ctx, 0);
  const Shape* in = known_rank_shape(ctx, 0);
  KILN_ASSIGN_OR_RETURN(int64_t b, block_size(ctx.node()));
  Shape out = Shape::unknown_dims(4);
  if (in != nullptr && in->rank() == 4) {
    out[0] = (*in)[0];
    auto scale = [](const Dim& d, int64_t num, int64_t den) { return d.known() ? Dim(d.value * num / den) : Dim(); };
    out[1] = scale((*in)[1], to_depth ? b * b : 1, to_depth ? 1 : b * b);
    out[2] = scale((*in)[2], to_depth ? 1 : b, to_depth ? b : 1);
    out[3] = scale((*in)[3], to_depth ? 1 : b, to_depth ? b : 1);
  }
  ctx.set_output_type(0, ir::ValueType::tensor(dtype, out));
  return Status::ok();
}

Status depth_to_space_infer(InferContext& ctx) { return block_infer(ctx, false); }
Status space_to_depth_infer(InferContext& ctx) { return block_infer(ctx, true); }

}  // namespace

void register_tensor_ops_misc(Registry& r) {
  r.add({.name = "Dropout", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 3, .min_outputs = 1,
         .max_outputs = 2, .kernel = dropout_kernel, .infer = dropout_infer});
  r.add({.name = "OneHot", .domain = "", .since_version = 9, .min_inputs = 3, .max_inputs = 3,
         .kernel = one_hot_kernel, .infer = one_hot_infer});
  r.add({.name = "CumSum", .domain = "", .since_version = 11, .min_inputs = 2, .max_inputs = 2,
         .kernel = cumsum_kernel, .infer = same_as_input_infer});
  r.add({.name = "Trilu", .domain = "", .since_version = 14, .min_inputs = 1, .max_inputs = 2,
         .kernel = trilu_kernel, .infer = same_as_input_infer});
  r.add({.name = "EyeLike", .domain = "", .since_version = 9, .min_inputs = 1, .max_inputs = 1,
         .kernel = eye_like_kernel, .infer = eye_like_infer});
  r.add({.name = "DepthToSpace", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = depth_to_space_kernel, .infer = depth_to_space_infer});
  r.add({.name = "SpaceToDepth", .domain = "", .since_version = 1, .min_inputs = 1, .max_inputs = 1,
         .kernel = space_to_depth_kernel, .infer = space_to_depth_infer});
}

}  // namespace kiln::ops
