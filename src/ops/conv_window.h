// Sliding-window geometry shared by the Conv and pool families: reading the
// kernel_shape/strides/dilations/pads/auto_pad attributes, validating them,
// and computing output extents.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/shape.h"
#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::ops {

class Registry;

struct Window {
  std::vector<int64_t> kernel;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads;  // begins of every axis, then ends: 2 * spatial entries
  std::string auto_pad = "NOTSET";  // NOTSET, SAME_UPPER, SAME_LOWER or VALID

  size_t spatial() const { return kernel.size(); }
  int64_t pad_begin(size_t axis) const { return pads[axis]; }
  int64_t pad_end(size_t axis) const { return pads[spatial() + axis]; }
  // Extent of the dilated kernel along an axis.
  int64_t span(size_t axis) const { return (kernel[axis] - 1) * dilations[axis] + 1; }
};

// Reads strides, dilations (when `with_dilations`), pads and auto_pad of
// `node` for `kernel.size()` spatial axes. Checks counts and values: kernel
// dims and strides and dilations must be positive, pads non-negative (unless
// `allow_negative_pads`), auto_pad one of the four spellings.
Result<Window> read_window(const ir::Node& node, std::vector<int64_t> kernel, bool with_dilations = true,
                           bool allow_negative_pads = false);

// Output length along `axis` of a forward window (Conv, pools) over an input
// of length `in`. For SAME_UPPER/SAME_LOWER it writes the pads it chooses into
// `w`; VALID zeroes them. `ceil_mode` (pools) rounds the window count up but
// keeps the last window starting inside the input or its begin padding.
Result<int64_t> window_output_dim(int64_t in, size_t axis, Window& w, bool ceil_mode = false);

// Shape-inference variant: the output dims for known input dims, unknown Dims elsewhere.
Result<std::vector<Dim>> window_output_shape(const std::vector<Dim>& in, Window w, bool ceil_mode = false);

// Geometry of one Conv/ConvTranspose/pool application on N-D data [N, C, spatial...].
struct ConvGeom {
  int64_t batch = 0;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t group = 1;
  Dims in;   // input spatial dims
  Dims out;  // output spatial dims
  Window w;  // kernel, strides, dilations and (resolved) pads
};

// Product of the entries (1 for none): the element count of a box of these dims.
int64_t volume(const std::vector<int64_t>& v);

// ConvTranspose lives in conv_transpose.cc; register_conv calls this.
void register_conv_transpose(Registry& r);

}  // namespace kiln::ops
