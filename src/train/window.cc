#include "train/window.h"

#include "core/error.h"

namespace kiln::train {

Result<Window2d> window_2d(const ir::Node& node, int64_t ih, int64_t iw, int64_t kh, int64_t kw) {
  Window2d w;
  w.ih = ih;
  w.iw = iw;
  std::vector<int64_t> ks = node.attr_ints("kernel_shape", {kh, kw});
  std::vector<int64_t> st = node.attr_ints("strides", {1, 1});
  std::vector<int64_t> di = node.attr_ints("dilations", {1, 1});
  std::vector<int64_t> pads = node.attr_ints("pads", {0, 0, 0, 0});
  if (ks.size() != 2 || st.size() != 2 || di.size() != 2 || pads.size() != 4) {
    return invalid_argument("training supports 2-D windows only (kernel_shape, strides, dilations of 2, pads of 4)");
  }
  w.kh = ks[0];
  w.kw = ks[1];
  w.sh = st[0];
  w.sw = st[1];
  w.dh = di[0];
  w.dw = di[1];
  if (w.kh <= 0 || w.kw <= 0 || w.sh <= 0 || w.sw <= 0 || w.dh <= 0 || w.dw <= 0) {
    return invalid_argument("kernel, strides and dilations must be positive");
  }
  std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  int64_t ekh = (w.kh - 1) * w.dh + 1;
  int64_t ekw = (w.kw - 1) * w.dw + 1;
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    int64_t oh = (ih + w.sh - 1) / w.sh;
    int64_t ow = (iw + w.sw - 1) / w.sw;
    int64_t ph = std::max<int64_t>(0, (oh - 1) * w.sh + ekh - ih);
    int64_t pw = std::max<int64_t>(0, (ow - 1) * w.sw + ekw - iw);
    bool upper = auto_pad == "SAME_UPPER";
    w.pt = upper ? ph / 2 : ph - ph / 2;
    w.pb = ph - w.pt;
    w.pl = upper ? pw / 2 : pw - pw / 2;
    w.pr = pw - w.pl;
  } else if (auto_pad == "VALID") {
    w.pt = w.pl = w.pb = w.pr = 0;
  } else if (auto_pad == "NOTSET") {
    w.pt = pads[0];
    w.pl = pads[1];
    w.pb = pads[2];
    w.pr = pads[3];
    if (w.pt < 0 || w.pl < 0 || w.pb < 0 || w.pr < 0) return invalid_argument("pads must be non-negative");
  } else {
    return invalid_argument("unknown auto_pad '{}'", auto_pad);
  }
  int64_t span_h = ih + w.pt + w.pb - ekh;
  int64_t span_w = iw + w.pl + w.pr - ekw;
  if (span_h < 0 || span_w < 0) return invalid_argument("window {}x{} larger than padded input {}x{}", ekh, ekw, ih, iw);
  bool ceil = node.attr_int("ceil_mode", 0) != 0;
  w.oh = (ceil ? (span_h + w.sh - 1) / w.sh : span_h / w.sh) + 1;
  w.ow = (ceil ? (span_w + w.sw - 1) / w.sw : span_w / w.sw) + 1;
  return w;
}

}  // namespace kiln::train
