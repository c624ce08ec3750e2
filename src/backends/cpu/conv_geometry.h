// 2-D convolution geometry for the CPU conv tactics. 1-D convs are mapped to
// 2-D with a height of 1; auto_pad is resolved against the run-time input.
#pragma once

#include <cstdint>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::backends::cpu {

struct Conv2dGeom {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input
  int64_t m = 0, group = 1;            // output channels, groups
  int64_t kh = 1, kw = 1;
  int64_t sh = 1, sw = 1;
  int64_t dh = 1, dw = 1;
  int64_t pt = 0, pl = 0;  // pads at the top and left (bottom/right are implied by oh/ow)
  int64_t oh = 0, ow = 0;

  int64_t cg() const { return c / group; }
  int64_t mg() const { return m / group; }
  int64_t depth() const { return cg() * kh * kw; }  // GEMM K per group
  bool pointwise() const {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && oh == h && ow == w;
  }
  Dims output_dims(size_t rank) const { return rank == 3 ? Dims{n, m, ow} : Dims{n, m, oh, ow}; }
};

// Reads the node's Conv attributes for input dims `x` and weight dims `w`
// (rank 3 or 4). Errors on anything the reference kernel would reject; the
// tactics then let the reference kernel report it.
Result<Conv2dGeom> conv2d_geometry(const ir::Node& node, const Dims& x, const Dims& w);

// True if the node is a Conv-like node these tactics can take at build time:
// X and W float32 (X may be float16 with `half_x`: a kernel that widens it),
// W a constant of rank 3 or 4, the optional bias float32.
bool conv_node_supported(const ir::Node& node, bool half_x = false);

}  // namespace kiln::backends::cpu
