#include "ops/conv_window.h"

#include "core/error.h"

namespace kiln::ops {

int64_t volume(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t x : v) p *= x;
  return p;
}

namespace {

Result<std::vector<int64_t>> spatial_attr(const ir::Node& node, const std::string& name, size_t count,
                                          int64_t fallback) {
  std::vector<int64_t> v = node.attr_ints(name, std::vector<int64_t>(count, fallback));
  if (v.size() != count) {
    return invalid_argument("{}: attribute '{}' has {} values, expected {}", node.describe(), name, v.size(), count);
  }
  return v;
}

}  // namespace

Result<Window> read_window(const ir::Node& node, std::vector<int64_t> kernel, bool with_dilations,
                           bool allow_negative_pads) {
  Window w;
  const size_t n = kernel.size();
  for (int64_t k : kernel) {
    if (k <= 0) return invalid_argument("{}: kernel dims must be positive, got {}", node.describe(), fmt::join(kernel, ","));
  }
  w.kernel = std::move(kernel);
  KILN_ASSIGN_OR_RETURN(w.strides, spatial_attr(node, "strides", n, 1));
  for (int64_t s : w.strides) {
    if (s <= 0) return invalid_argument("{}: strides must be positive, got {}", node.describe(), fmt::join(w.strides, ","));
  }
  w.dilations.assign(n, 1);
  if (with_dilations) {
    KILN_ASSIGN_OR_RETURN(w.dilations, spatial_attr(node, "dilations", n, 1));
    for (int64_t d : w.dilations) {
      if (d <= 0) {
        return invalid_argument("{}: dilations must be positive, got {}", node.describe(), fmt::join(w.dilations, ","));
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(w.pads, spatial_attr(node, "pads", 2 * n, 0));
  for (int64_t p : w.pads) {
    if (p < 0 && !allow_negative_pads) {
      return invalid_argument("{}: pads must be non-negative, got {}", node.describe(), fmt::join(w.pads, ","));
    }
  }
  // A bound that keeps every size computation below within int64 for any real tensor.
  constexpr int64_t kMaxWindowValue = int64_t{1} << 24;
  for (const auto* v : {&w.kernel, &w.strides, &w.dilations, &w.pads}) {
    for (int64_t x : *v) {
      if (x > kMaxWindowValue || x < -kMaxWindowValue) {
        return invalid_argument("{}: window attribute value {} is out of range", node.describe(), x);
      }
    }
  }
  w.auto_pad = node.attr_string("auto_pad", "NOTSET");
  if (w.auto_pad.empty()) w.auto_pad = "NOTSET";
  if (w.auto_pad != "NOTSET" && w.auto_pad != "SAME_UPPER" && w.auto_pad != "SAME_LOWER" && w.auto_pad != "VALID") {
    return invalid_argument("{}: unknown auto_pad '{}'", node.describe(), w.auto_pad);
  }
  return w;
}

Result<int64_t> window_output_dim(int64_t in, size_t axis, Window& w, bool ceil_mode) {
  const int64_t s = w.strides[axis];
  const int64_t span = w.span(axis);
  const size_t n = w.spatial();
  if (w.auto_pad == "SAME_UPPER" || w.auto_pad == "SAME_LOWER") {
    const int64_t out = (in + s - 1) / s;
    const int64_t total = std::max<int64_t>(0, (out - 1) * s + span - in);
    const int64_t small = total / 2;
    w.pads[axis] = w.auto_pad == "SAME_UPPER" ? small : total - small;
    w.pads[n + axis] = total - w.pads[axis];
    return out;
  }
  if (w.auto_pad == "VALID") {
    w.pads[axis] = 0;
    w.pads[n + axis] = 0;
  }
  const int64_t pb = w.pads[axis];
  const int64_t room = in + pb + w.pads[n + axis] - span;
  if (room < 0) {
    return invalid_argument("window of extent {} on axis {} is larger than the padded input ({} + {} + {})", span,
                            axis, in, pb, w.pads[n + axis]);
  }
  int64_t out = room / s + 1;
  if (ceil_mode) {
    out = (room + s - 1) / s + 1;
    if ((out - 1) * s >= in + pb) --out;  // the last window must start inside the input or its begin padding
  }
  return out;
}

Result<std::vector<Dim>> window_output_shape(const std::vector<Dim>& in, Window w, bool ceil_mode) {
  std::vector<Dim> out(in.size());
  for (size_t i = 0; i < in.size() && i < w.spatial(); ++i) {
    if (!in[i].known()) continue;
    KILN_ASSIGN_OR_RETURN(int64_t o, window_output_dim(in[i].value, i, w, ceil_mode));
    out[i] = Dim(o);
  }
  return out;
}

}  // namespace kiln::ops
