#include "backends/cpu/conv_geometry.h"

#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "ops/conv_window.h"

namespace kiln::backends::cpu {

Result<Conv2dGeom> conv2d_geometry(const ir::Node& node, const Dims& x, const Dims& w) {
  if ((x.size() != 3 && x.size() != 4) || w.size() != x.size()) {
    return invalid_argument("conv tactics take 1-D and 2-D convs, got X {} and W {}", dims_to_string(x),
                            dims_to_string(w));
  }
  Conv2dGeom g;
  g.n = x[0];
  g.c = x[1];
  g.m = w[0];
  g.group = node.attr_int("group", 1);
  if (g.group <= 0 || g.c % g.group != 0 || w[1] * g.group != g.c || g.m % g.group != 0) {
    return invalid_argument("channels of X {} and W {} do not match group {}", dims_to_string(x), dims_to_string(w),
                            g.group);
  }
  std::vector<int64_t> kernel(w.begin() + 2, w.end());
  if (node.has_attr("kernel_shape") && node.attr_ints("kernel_shape") != kernel) {
    return invalid_argument("kernel_shape does not match W {}", dims_to_string(w));
  }
  KILN_ASSIGN_OR_RETURN(ops::Window win, ops::read_window(node, kernel));
  std::vector<int64_t> out;
  for (size_t d = 0; d < kernel.size(); ++d) {
    KILN_ASSIGN_OR_RETURN(int64_t o, ops::window_output_dim(x[2 + d], d, win));
    out.push_back(o);
  }
  if (x.size() == 4) {
    g.h = x[2];
    g.w = x[3];
    g.kh = kernel[0];
    g.kw = kernel[1];
    g.sh = win.strides[0];
    g.sw = win.strides[1];
    g.dh = win.dilations[0];
    g.dw = win.dilations[1];
    g.pt = win.pad_begin(0);
    g.pl = win.pad_begin(1);
    g.oh = out[0];
    g.ow = out[1];
  } else {
    g.h = 1;
    g.w = x[2];
    g.kw = kernel[0];
    g.sw = win.strides[0];
    g.dw = win.dilations[0];
    g.pl = win.pad_begin(0);
    g.oh = 1;
    g.ow = out[0];
  }
  return g;
}

bool conv_node_supported(const ir::Node& node, bool half_x) {
  if (!(is_f32(node.input(0)) || (half_x && is_f16(node.input(0)))) || !is_f32(node.input(1))) return false;
  if (node.input(2) != nullptr && !is_f32(node.input(2))) return false;
  const ir::Value* w = node.input(1);
  if (!w->is_constant()) return false;
  const Tensor& wt = w->constant();
  if (wt.dtype() != DataType::kFloat32 || (wt.rank() != 3 && wt.rank() != 4)) return false;
  const int64_t group = node.attr_int("group", 1);
  if (group <= 0 || wt.dim(0) % group != 0) return false;
  return true;
}

}  // namespace kiln::backends::cpu
