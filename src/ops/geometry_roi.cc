// Op family geometry, part: region ops. RoiAlign, NonMaxSuppression.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "ops/geometry_internal.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

using geometry::input_dtype;
using geometry::is_real_float;
using geometry::known_rank_shape;

// ---- RoiAlign ----------------------------------------------------------------

struct RoiAlignParams {
  bool max_mode = false;
  bool half_pixel = false;  // else output_half_pixel (no half-pixel shift, ROI at least 1x1)
  int64_t out_h = 1;
  int64_t out_w = 1;
  int64_t sampling_ratio = 0;  // 0: ceil(roi size / output size) samples per bin
  double spatial_scale = 1.0;
};

// Opset 10 has no coordinate_transformation_mode: it behaves as
// output_half_pixel. From 16 the attribute defaults to half_pixel.
Result<RoiAlignParams> roi_align_params(const ir::Node& node) {
  RoiAlignParams p;
  std::string mode = node.attr_string("mode", "avg");
  if (mode != "avg" && mode != "max") return invalid_argument("mode '{}' must be avg or max", mode);
  p.max_mode = mode == "max";
  std::string ctm = node.opset() >= 16 ? node.attr_string("coordinate_transformation_mode", "half_pixel")
                                       : "output_half_pixel";
  if (ctm != "half_pixel" && ctm != "output_half_pixel") {
    return invalid_argument("coordinate_transformation_mode '{}' must be half_pixel or output_half_pixel", ctm);
  }
  p.half_pixel = ctm == "half_pixel";
  p.out_h = node.attr_int("output_height", 1);
  p.out_w = node.attr_int("output_width", 1);
  if (p.out_h <= 0 || p.out_w <= 0) {
    return invalid_argument("output_height {} and output_width {} must be positive", p.out_h, p.out_w);
  }
  p.sampling_ratio = node.attr_int("sampling_ratio", 0);
  if (p.sampling_ratio < 0) return invalid_argument("sampling_ratio {} must not be negative", p.sampling_ratio);
  p.spatial_scale = node.attr_float("spatial_scale", 1.0f);
  if (!std::isfinite(p.spatial_scale)) return invalid_argument("spatial_scale {} is not finite", p.spatial_scale);
  return p;
}

// One bilinear sample: four input offsets within a plane and their weights
// (all zero when the point lies outside [-1, size]).
struct Sample {
  int64_t pos[4] = {0, 0, 0, 0};
  double w[4] = {0, 0, 0, 0};
};

// The most bilinear samples RoiAlign keeps for one roi.
constexpr int64_t kMaxSamples = int64_t{1} << 26;

Sample bilinear_sample(double y, double x, int64_t height, int64_t width) {
  Sample s;
  if (y < -1.0 || y > static_cast<double>(height) || x < -1.0 || x > static_cast<double>(width)) return s;
  y = std::max(y, 0.0);
  x = std::max(x, 0.0);
  auto y_low = static_cast<int64_t>(y);
  auto x_low = static_cast<int64_t>(x);
  int64_t y_high = y_low + 1, x_high = x_low + 1;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = static_cast<double>(y_low);
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = static_cast<double>(x_low);
  }
  double ly = y - static_cast<double>(y_low), lx = x - static_cast<double>(x_low);
  double hy = 1 - ly, hx = 1 - lx;
  s.pos[0] = y_low * width + x_low;
  s.pos[1] = y_low * width + x_high;
  s.pos[2] = y_high * width + x_low;
  s.pos[3] = y_high * width + x_high;
  s.w[0] = hy * hx;
  s.w[1] = hy * lx;
  s.w[2] = ly * hx;
  s.w[3] = ly * lx;
  return s;
}

Status roi_align_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* rois, ctx.tensor_input(1));
  KILN_ASSIGN_OR_RETURN(const Tensor* batch_t, ctx.tensor_input(2));
  KILN_ASSIGN_OR_RETURN(RoiAlignParams p, roi_align_params(ctx.node()));
  if (!is_real_float(x->dtype())) return invalid_argument("X type {} is not a float type", data_type_name(x->dtype()));
  if (x->rank() != 4) return invalid_argument("X {} must be 4-D [N, C, H, W]", x->debug_string());
  if (rois->rank() != 2 || rois->dim(1) != 4) {
    return invalid_argument("rois {} must have shape [num_rois, 4]", rois->debug_string());
  }
  if (batch_t->rank() != 1 || batch_t->dim(0) != rois->dim(0)) {
    return invalid_argument("batch_indices {} must have shape [{}]", batch_t->debug_string(), rois->dim(0));
  }
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> batch, to_int64_vector(*batch_t));
  int64_t n_rois = rois->dim(0), channels = x->dim(1), height = x->dim(2), width = x->dim(3);
  for (int64_t b : batch) {
    if (b < 0 || b >= x->dim(0)) return out_of_range("batch index {} is outside [0, {})", b, x->dim(0));
  }
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(DataType::kFloat64, {n_rois, channels, p.out_h, p.out_w}));
  if (out.numel() == 0) {
    KILN_ASSIGN_OR_RETURN(Tensor cast, cast_tensor(out, x->dtype()));
    ctx.set_output(0, std::move(cast));
    return Status::ok();
  }
  if (height == 0 || width == 0) return invalid_argument("X {} has an empty spatial dim", x->debug_string());
  KILN_ASSIGN_OR_RETURN(Tensor xd, to_float64(*x));
  KILN_ASSIGN_OR_RETURN(Tensor rd, to_float64(*rois));
  double* y = out.data<double>();
  double offset = p.half_pixel ? 0.5 : 0.0;
  std::vector<Sample> samples;
  for (int64_t n = 0; n < n_rois; ++n) {
    const double* roi = rd.data<double>() + n * 4;
    if (!std::isfinite(roi[0]) || !std::isfinite(roi[1]) || !std::isfinite(roi[2]) || !std::isfinite(roi[3])) {
      return invalid_argument("roi {} has a non-finite coordinate", n);
    }
    double start_w = roi[0] * p.spatial_scale - offset;
    double start_h = roi[1] * p.spatial_scale - offset;
    double roi_w = roi[2] * p.spatial_scale - offset - start_w;
    double roi_h = roi[3] * p.spatial_scale - offset - start_h;
    if (!p.half_pixel) {
      roi_w = std::max(roi_w, 1.0);
      roi_h = std::max(roi_h, 1.0);
    }
    double bin_h = roi_h / static_cast<double>(p.out_h);
    double bin_w = roi_w / static_cast<double>(p.out_w);
    double grid_hd = p.sampling_ratio > 0 ? static_cast<double>(p.sampling_ratio) : std::max(0.0, std::ceil(bin_h));
    double grid_wd = p.sampling_ratio > 0 ? static_cast<double>(p.sampling_ratio) : std::max(0.0, std::ceil(bin_w));
    // The samples of every bin are kept at once: bound their number.
    if (grid_hd * grid_wd * static_cast<double>(p.out_h * p.out_w) > static_cast<double>(kMaxSamples)) {
      return invalid_argument("roi {} needs too many samples ({} x {} per bin)", n, grid_hd, grid_wd);
    }
    auto grid_h = static_cast<int64_t>(grid_hd);
    auto grid_w = static_cast<int64_t>(grid_wd);
    double count = static_cast<double>(std::max<int64_t>(grid_h * grid_w, 1));
    // Samples for every output bin, shared by the channels.
    samples.clear();
    for (int64_t ph = 0; ph < p.out_h; ++ph) {
      for (int64_t pw = 0; pw < p.out_w; ++pw) {
        for (int64_t iy = 0; iy < grid_h; ++iy) {
          double yy = start_h + static_cast<double>(ph) * bin_h +
                      (static_cast<double>(iy) + 0.5) * bin_h / static_cast<double>(grid_h);
          for (int64_t ix = 0; ix < grid_w; ++ix) {
            double xx = start_w + static_cast<double>(pw) * bin_w +
                        (static_cast<double>(ix) + 0.5) * bin_w / static_cast<double>(grid_w);
            samples.push_back(bilinear_sample(yy, xx, height, width));
          }
        }
      }
    }
    int64_t per_bin = grid_h * grid_w;
    for (int64_t c = 0; c < channels; ++c) {
      const double* plane = xd.data<double>() + (batch[static_cast<size_t>(n)] * channels + c) * height * width;
      for (int64_t bin = 0; bin < p.out_h * p.out_w; ++bin) {
        double acc = 0;
        for (int64_t k = 0; k < per_bin; ++k) {
          const Sample& s = samples[static_cast<size_t>(bin * per_bin + k)];
          if (p.max_mode) {
            // As ONNX's reference: the largest weighted corner, not the interpolated value.
            double v = std::max({s.w[0] * plane[s.pos[0]], s.w[1] * plane[s.pos[1]], s.w[2] * plane[s.pos[2]],
                                 s.w[3] * plane[s.pos[3]]});
            acc = k == 0 ? v : std::max(acc, v);
          } else {
            acc += s.w[0] * plane[s.pos[0]] + s.w[1] * plane[s.pos[1]] + s.w[2] * plane[s.pos[2]] +
                   s.w[3] * plane[s.pos[3]];
          }
        }
        y[(n * channels + c) * p.out_h * p.out_w + bin] = p.max_mode ? acc : acc / count;
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(Tensor cast, cast_tensor(out, x->dtype()));
  ctx.set_output(0, std::move(cast));
  return Status::ok();
}

Status roi_align_infer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(RoiAlignParams p, roi_align_params(ctx.node()));
  std::vector<Dim> out = {Dim(), Dim(), Dim(p.out_h), Dim(p.out_w)};
  if (const Shape* rs = known_rank_shape(ctx, 1); rs != nullptr && rs->rank() == 2) out[0] = (*rs)[0];
  if (const Shape* bs = known_rank_shape(ctx, 2); bs != nullptr && bs->rank() == 1 && (*bs)[0].known()) {
    out[0] = (*bs)[0];
  }
  if (const Shape* xs = known_rank_shape(ctx, 0); xs != nullptr && xs->rank() == 4) out[1] = (*xs)[1];
  ctx.set_output_type(0, ir::ValueType::tensor(input_dtype(ctx, 0), Shape(out)));
  return Status::ok();
}

// ---- NonMaxSuppression -------------------------------------------------------

struct Box {
  double x_min, y_min, x_max, y_max;
};

// Boxes are [y1, x1, y2, x2] (any diagonal corners) or, with
// center_point_box, [x_center, y_center, width, height].
Box read_box(const double* b, bool center) {
  if (center) return {b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2};
  return {std::min(b[1], b[3]), std::min(b[0], b[2]), std::max(b[1], b[3]), std::max(b[0], b[2])};
}

// True when the intersection over union of a and b exceeds the threshold.
bool suppresses(const Box& a, const Box& b, double iou_threshold) {
  double ix_min = std::max(a.x_min, b.x_min), ix_max = std::min(a.x_max, b.x_max);
  double iy_min = std::max(a.y_min, b.y_min), iy_max = std::min(a.y_max, b.y_max);
  if (ix_max <= ix_min || iy_max <= iy_min) return false;
  double inter = (ix_max - ix_min) * (iy_max - iy_min);
  double area_a = (a.x_max - a.x_min) * (a.y_max - a.y_min);
  double area_b = (b.x_max - b.x_min) * (b.y_max - b.y_min);
  double uni = area_a + area_b - inter;
  if (inter <= 0 || area_a <= 0 || area_b <= 0 || uni <= 0) return false;
  return inter / uni > iou_threshold;
}

// An optional scalar input, or `fallback` when absent or empty.
Result<double> optional_scalar(const KernelContext& ctx, size_t i, double fallback, const char* name) {
  if (!ctx.has_input(i) || ctx.input(i).numel() == 0) return fallback;
  auto v = to_scalar_double(ctx.input(i));
  if (!v.is_ok()) return v.status().with_context(name);
  return *v;
}

Status nms_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* boxes_t, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* scores_t, ctx.tensor_input(1));
  if (boxes_t->rank() != 3 || boxes_t->dim(2) != 4) {
    return invalid_argument("boxes {} must have shape [batches, boxes, 4]", boxes_t->debug_string());
  }
  if (scores_t->rank() != 3 || scores_t->dim(0) != boxes_t->dim(0) || scores_t->dim(2) != boxes_t->dim(1)) {
    return invalid_argument("scores {} must have shape [{}, classes, {}] for boxes {}", scores_t->debug_string(),
                            boxes_t->dim(0), boxes_t->dim(1), boxes_t->debug_string());
  }
  int64_t center_point_box = ctx.node().attr_int("center_point_box", 0);
  if (center_point_box != 0 && center_point_box != 1) {
    return invalid_argument("center_point_box {} must be 0 or 1", center_point_box);
  }
  KILN_ASSIGN_OR_RETURN(double max_boxes_d, optional_scalar(ctx, 2, 0, "max_output_boxes_per_class"));
  KILN_ASSIGN_OR_RETURN(double iou_threshold, optional_scalar(ctx, 3, 0, "iou_threshold"));
  bool has_score_threshold = ctx.has_input(4) && ctx.input(4).numel() != 0;
  KILN_ASSIGN_OR_RETURN(double score_threshold, optional_scalar(ctx, 4, 0, "score_threshold"));
  if (!(iou_threshold >= 0 && iou_threshold <= 1)) {
    return invalid_argument("iou_threshold {} must be in [0, 1]", iou_threshold);
  }
  auto max_boxes = max_boxes_d >= 0 ? static_cast<int64_t>(std::min(max_boxes_d, 9e18)) : 0;
  KILN_ASSIGN_OR_RETURN(Tensor bd, to_float64(*boxes_t));
  KILN_ASSIGN_OR_RETURN(Tensor sd, to_float64(*scores_t));
  int64_t batches = boxes_t->dim(0), n_boxes = boxes_t->dim(1), classes = scores_t->dim(1);
  std::vector<int64_t> selected_rows;  // (batch, class, box) triples
  std::vector<int64_t> order;
  std::vector<Box> kept;
  for (int64_t b = 0; b < batches; ++b) {
    const double* box_data = bd.data<double>() + b * n_boxes * 4;
    for (int64_t c = 0; c < classes; ++c) {
      const double* score = sd.data<double>() + (b * classes + c) * n_boxes;
      order.clear();
      for (int64_t i = 0; i < n_boxes; ++i) {
        if (!has_score_threshold || score[i] > score_threshold) order.push_back(i);
      }
      // Highest score first; equal scores keep the lower box index first.
      std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) { return score[i] > score[j]; });
      kept.clear();
      for (int64_t i : order) {
        if (static_cast<int64_t>(kept.size()) >= max_boxes) break;
        Box box = read_box(box_data + i * 4, center_point_box == 1);
        bool keep = std::none_of(kept.begin(), kept.end(), [&](const Box& k) { return suppresses(box, k, iou_threshold); });
        if (!keep) continue;
        kept.push_back(box);
        selected_rows.insert(selected_rows.end(), {b, c, i});
      }
    }
  }
  int64_t count = static_cast<int64_t>(selected_rows.size()) / 3;
  KILN_ASSIGN_OR_RETURN(Tensor* out, ctx.allocate_output(0, DataType::kInt64, {count, 3}));
  std::copy(selected_rows.begin(), selected_rows.end(), out->data<int64_t>());
  return Status::ok();
}

Status nms_infer(InferContext& ctx) {
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kInt64, Shape({Dim(), Dim(3)})));
  return Status::ok();
}

}  // namespace

void register_geometry_roi(Registry& r) {
  // RoiAlign-10 always uses output_half_pixel; 16 adds the attribute (default
  // half_pixel); 22 adds bfloat16. One kernel reads the opset.
  r.add({.name = "RoiAlign", .domain = "", .since_version = 10, .min_inputs = 3, .max_inputs = 3,
         .kernel = roi_align_kernel, .infer = roi_align_infer});
  r.add({.name = "NonMaxSuppression", .domain = "", .since_version = 10, .min_inputs = 2, .max_inputs = 5,
         .kernel = nms_kernel, .infer = nms_infer});
}

}  // namespace kiln::ops
