// 2-D sliding-window geometry shared by Conv and the pooling rules.
#pragma once

#include <cstdint>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::train {

struct Window2d {
  int64_t kh = 1, kw = 1;
  int64_t sh = 1, sw = 1;
  int64_t dh = 1, dw = 1;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;  // pads: top, left, bottom, right
  int64_t ih = 0, iw = 0, oh = 0, ow = 0;
};

// Reads kernel_shape (or takes kh/kw from a weight), strides, dilations,
// pads and auto_pad of a 2-D Conv or pool node for an input of ih x iw,
// and derives the output size (ceil_mode when the node asks for it).
Result<Window2d> window_2d(const ir::Node& node, int64_t ih, int64_t iw, int64_t kh, int64_t kw);

}  // namespace kiln::train
