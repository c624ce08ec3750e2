// Lowering of the data-movement, pooling and normalization ops (see plan.h).
#include <algorithm>
#include <cmath>

#include "backends/cuda/plan_builder.h"
#include "core/error.h"
#include "ops/conv_window.h"

namespace kiln::backends::cuda {
namespace {

int64_t numel_of(const Dims& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

Result<int64_t> norm_axis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1)) {
    return invalid_argument("axis {} out of range for rank {}", axis, rank);
  }
  return axis < 0 ? axis + rank : axis;
}

}  // namespace

Result<Dims> PlanBuilder::reshape_target(const ir::Node& n, const Dims& xd) {
  KILN_ASSIGN_OR_RETURN(Tensor st, host_tensor(n, 1));
  KILN_ASSIGN_OR_RETURN(auto shape, tensor_ints(st));
  bool allow_zero = n.attr_int("allowzero", 0) != 0;
  Dims yd(shape.begin(), shape.end());
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < yd.size(); ++i) {
    if (yd[i] == 0 && !allow_zero) {
      if (i >= xd.size()) return invalid_argument("Reshape copies dim {} of a rank-{} input", i, xd.size());
      yd[i] = xd[i];
    }
    if (yd[i] == -1) {
      if (infer >= 0) return invalid_argument("Reshape has two -1 dims");
      infer = static_cast<int64_t>(i);
    } else if (yd[i] < 0) {
      return invalid_argument("Reshape dim {} is negative", yd[i]);
    } else {
      known *= yd[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel_of(xd) % known != 0) return invalid_argument("Reshape cannot infer the -1 dim");
    yd[static_cast<size_t>(infer)] = numel_of(xd) / known;
  }
  return yd;
}

// Identity, Dropout, Reshape, Flatten, Squeeze, Unsqueeze (row-major aliases), Shape, Size.
Status PlanBuilder::lower_shape_op(const ir::Node& n) {
  const std::string& t = n.op_type();
  KILN_ASSIGN_OR_RETURN(int x, value_of(n.input(0)));
  Dims xd = val(x).dims;
  int64_t r = static_cast<int64_t>(xd.size());
  if (t == "Shape" || t == "Size") {
    Tensor out;
    if (t == "Size") {
      out = Tensor::scalar<int64_t>(DataType::kInt64, numel_of(xd));
    } else {
      int64_t start = n.attr_int("start", 0), end = n.attr_int("end", r);
      if (start < 0) start += r;
      if (end < 0) end += r;
      start = std::clamp<int64_t>(start, 0, r);
      end = std::clamp<int64_t>(end, start, r);
      out = Tensor::empty(DataType::kInt64, {end - start});
      for (int64_t i = start; i < end; ++i) out.data<int64_t>()[i - start] = xd[static_cast<size_t>(i)];
    }
    bind(n.output(0), host_value(n.output(0)->name(), out));
    return Status::ok();
  }
  if ((t == "Dropout" && n.num_outputs() > 1 && n.output(1) != nullptr)) {
    return unimplemented("Dropout's mask output is not supported on the GPU");
  }
  Dims yd = xd;
  if (t == "Reshape") {
    KILN_ASSIGN_OR_RETURN(yd, reshape_target(n, xd));
  } else if (t == "Flatten") {
    KILN_ASSIGN_OR_RETURN(int64_t axis, norm_axis(n.attr_int("axis", 1), r + 1));
    int64_t outer = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= xd[static_cast<size_t>(i)];
    yd = {outer, numel_of(xd) / std::max<int64_t>(outer, 1)};
    if (outer == 0) yd[1] = 0;
  } else if (t == "Squeeze" || t == "Unsqueeze") {
    std::vector<int64_t> axes;
    if (n.opset() >= 13) {
      if (n.has_input(1)) {
        KILN_ASSIGN_OR_RETURN(Tensor at, host_tensor(n, 1));
        KILN_ASSIGN_OR_RETURN(axes, tensor_ints(at));
      }
    } else {
      axes = n.attr_ints("axes");
    }
    if (t == "Squeeze") {
      std::vector<bool> drop(xd.size(), false);
      if (axes.empty()) {
        for (size_t i = 0; i < xd.size(); ++i) drop[i] = xd[i] == 1;
      }
      for (int64_t a : axes) {
        KILN_ASSIGN_OR_RETURN(int64_t ax, norm_axis(a, r));
        if (xd[static_cast<size_t>(ax)] != 1)
          return invalid_argument("Squeeze of dim {} of size {}", ax, xd[static_cast<size_t>(ax)]);
        drop[static_cast<size_t>(ax)] = true;
      }
      yd.clear();
      for (size_t i = 0; i < xd.size(); ++i) {
        if (!drop[i]) yd.push_back(xd[i]);
      }
    } else {
      int64_t out_rank = r + static_cast<int64_t>(axes.size());
      std::vector<bool> ins(static_cast<size_t>(out_rank), false);
      for (int64_t a : axes) {
        KILN_ASSIGN_OR_RETURN(int64_t ax, norm_axis(a, out_rank));
        if (ins[static_cast<size_t>(ax)]) return invalid_argument("Unsqueeze axis {} repeated", ax);
        ins[static_cast<size_t>(ax)] = true;
      }
      yd.clear();
      size_t src = 0;
      for (int64_t i = 0; i < out_rank; ++i) yd.push_back(ins[static_cast<size_t>(i)] ? 1 : xd[src++]);
    }
  }
  if (numel_of(yd) != numel_of(xd)) {
    return invalid_argument("{} changes the element count: {} to {}", t, dims_to_string(xd), dims_to_string(yd));
  }
  if (!val(x).on_host) {
    KILN_ASSIGN_OR_RETURN(x, as_row_major(x));
  }
  bind(n.output(0), alias_value(x, n.output(0)->name(), yd));
  return Status::ok();
}

// Transpose, Concat, Gather, Slice, Expand, Cast.
Status PlanBuilder::lower_misc(const ir::Node& n) {
  const std::string& t = n.op_type();
  KILN_ASSIGN_OR_RETURN(int x, value_of(n.input(0)));
  const std::string out_name = n.output(0)->name();
  if (t == "Cast") {
    int64_t to = n.attr_int("to", 0);
    auto dt = data_type_from_int(to);
    if (!dt || element_size(*dt) == 0 || *dt == DataType::kString)
      return unimplemented("Cast to type {} on the GPU", to);
    KILN_ASSIGN_OR_RETURN(x, on_device(x));
    DataType target = storage(*dt);
    if (target == val(x).dtype) {
      bind(n.output(0), x);  // same storage: nothing to do
      return Status::ok();
    }
    int y = device_value(out_name, target, val(x).dims, val(x).layout);
    Step s = make_step(StepKind::kCast, &n);
    s.inputs = {x};
    s.outputs = {y};
    add_step(std::move(s));
    bind(n.output(0), y);
    return Status::ok();
  }
  if (t == "Concat") {
    std::vector<int> ins;
    Dims yd;
    KILN_ASSIGN_OR_RETURN(int64_t axis, norm_axis(n.attr_int("axis", 0), static_cast<int64_t>(val(x).dims.size())));
    for (size_t i = 0; i < n.num_inputs(); ++i) {
      if (!n.has_input(i)) continue;
      KILN_ASSIGN_OR_RETURN(int v, value_of(n.input(i)));
      KILN_ASSIGN_OR_RETURN(v, on_device(v));
      KILN_ASSIGN_OR_RETURN(v, as_row_major(v));
      const Dims& d = val(v).dims;
      if (yd.empty()) {
        yd = d;
      } else {
        if (d.size() != yd.size()) return invalid_argument("Concat inputs differ in rank");
        for (size_t k = 0; k < d.size(); ++k) {
          if (static_cast<int64_t>(k) != axis && d[k] != yd[k])
            return invalid_argument("Concat inputs differ in dim {}", k);
        }
        yd[static_cast<size_t>(axis)] += d[static_cast<size_t>(axis)];
      }
      if (val(v).dtype != val(ins.empty() ? v : ins[0]).dtype) return invalid_argument("Concat inputs differ in type");
      ins.push_back(v);
    }
    int y = device_value(out_name, val(ins[0]).dtype, yd);
    Step s = make_step(StepKind::kConcat, &n);
    s.inputs = ins;
    s.outputs = {y};
    s.axis_dim = axis;
    add_step(std::move(s));
    bind(n.output(0), y);
    return Status::ok();
  }
  if (t == "Gather") {
    KILN_ASSIGN_OR_RETURN(int idx, value_of(n.input(1)));
    KILN_ASSIGN_OR_RETURN(x, on_device(x));
    KILN_ASSIGN_OR_RETURN(x, as_row_major(x));
    Dims xd = val(x).dims;
    KILN_ASSIGN_OR_RETURN(int64_t axis, norm_axis(n.attr_int("axis", 0), static_cast<int64_t>(xd.size())));
    int64_t axis_dim = xd[static_cast<size_t>(axis)];
    if (val(idx).on_host) {
      KILN_ASSIGN_OR_RETURN(auto iv, tensor_ints(val(idx).host));
      for (int64_t i : iv) {
        if (i < -axis_dim || i >= axis_dim)
          return out_of_range("Gather index {} out of range for a dim of {}", i, axis_dim);
      }
      KILN_ASSIGN_OR_RETURN(idx, device_const(idx, DataType::kInt64));
    } else if (val(idx).dtype != DataType::kInt64) {
      int c = device_value(val(idx).name + ".i64", DataType::kInt64, val(idx).dims);
      Step s = make_step(StepKind::kCast, &n);
      s.inputs = {idx};
      s.outputs = {c};
      add_step(std::move(s));
      idx = c;
    }
    Dims yd(xd.begin(), xd.begin() + axis);
    yd.insert(yd.end(), val(idx).dims.begin(), val(idx).dims.end());
    yd.insert(yd.end(), xd.begin() + axis + 1, xd.end());
    int y = device_value(out_name, val(x).dtype, yd);
    Step s = make_step(StepKind::kGather, &n);
    s.inputs = {x, idx};
    s.outputs = {y};
    s.outer = numel_of(Dims(xd.begin(), xd.begin() + axis));
    s.axis_dim = axis_dim;
    s.inner = numel_of(Dims(xd.begin() + axis + 1, xd.end()));
    add_step(std::move(s));
    bind(n.output(0), y);
    return Status::ok();
  }
  // Transpose, Slice, Expand: one strided copy.
  KILN_ASSIGN_OR_RETURN(x, on_device(x));
  KILN_ASSIGN_OR_RETURN(x, as_row_major(x));
  Dims xd = val(x).dims;
  Dims xs = row_major_strides(xd);
  int64_t r = static_cast<int64_t>(xd.size());
  Step s = make_step(StepKind::kCopy, &n);
  Dims yd;
  std::vector<int64_t> strides;
  if (t == "Transpose") {
    std::vector<int64_t> perm = n.attr_ints("perm");
    if (perm.empty()) {
      for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
    }
    if (static_cast<int64_t>(perm.size()) != r)
      return invalid_argument("perm has {} entries for rank {}", perm.size(), r);
    std::vector<bool> seen(static_cast<size_t>(r), false);
    for (int64_t p : perm) {
      if (p < 0 || p >= r || seen[static_cast<size_t>(p)]) return invalid_argument("perm is not a permutation");
      seen[static_cast<size_t>(p)] = true;
      yd.push_back(xd[static_cast<size_t>(p)]);
      strides.push_back(xs[static_cast<size_t>(p)]);
    }
  } else if (t == "Slice") {
    std::vector<int64_t> starts, ends, axes, steps;
    if (n.opset() >= 10) {
      KILN_ASSIGN_OR_RETURN(Tensor st, host_tensor(n, 1));
      KILN_ASSIGN_OR_RETURN(starts, tensor_ints(st));
      KILN_ASSIGN_OR_RETURN(Tensor en, host_tensor(n, 2));
      KILN_ASSIGN_OR_RETURN(ends, tensor_ints(en));
      if (n.has_input(3)) {
        KILN_ASSIGN_OR_RETURN(Tensor ax, host_tensor(n, 3));
        KILN_ASSIGN_OR_RETURN(axes, tensor_ints(ax));
      }
      if (n.has_input(4)) {
        KILN_ASSIGN_OR_RETURN(Tensor sp, host_tensor(n, 4));
        KILN_ASSIGN_OR_RETURN(steps, tensor_ints(sp));
      }
    } else {
      starts = n.attr_ints("starts");
      ends = n.attr_ints("ends");
      axes = n.attr_ints("axes");
    }
    if (axes.empty()) {
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
      return invalid_argument("Slice starts/ends/axes/steps differ in length");
    }
    yd = xd;
    strides = xs;
    for (size_t i = 0; i < starts.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(int64_t ax, norm_axis(axes[i], r));
      int64_t dim = xd[static_cast<size_t>(ax)], step = steps[i];
      if (step == 0) return invalid_argument("Slice step 0");
      int64_t st = starts[i] < 0 ? starts[i] + dim : starts[i];
      int64_t en = ends[i] < 0 ? ends[i] + dim : ends[i];
      int64_t count;
      if (step > 0) {
        st = std::clamp<int64_t>(st, 0, dim);
        en = std::clamp<int64_t>(en, 0, dim);
        count = en > st ? (en - st + step - 1) / step : 0;
      } else {
        st = std::clamp<int64_t>(st, -1, dim - 1);
        en = std::clamp<int64_t>(en, -1, dim - 1);
        count = st > en ? (st - en + (-step) - 1) / (-step) : 0;
      }
      yd[static_cast<size_t>(ax)] = count;
      if (count > 0) s.copy.offset += st * xs[static_cast<size_t>(ax)];
      strides[static_cast<size_t>(ax)] = xs[static_cast<size_t>(ax)] * step;
    }
  } else if (t == "Expand") {
    KILN_ASSIGN_OR_RETURN(Tensor st, host_tensor(n, 1));
    KILN_ASSIGN_OR_RETURN(auto shape, tensor_ints(st));
    KILN_ASSIGN_OR_RETURN(yd, broadcast_dims(xd, Dims(shape.begin(), shape.end())));
    size_t off = yd.size() - xd.size();
    for (size_t i = 0; i < yd.size(); ++i) {
      strides.push_back(i < off || xd[i - off] == 1 ? 0 : xs[i - off]);
    }
  } else {
    return unimplemented("op {} has no GPU lowering", t);
  }
  if (yd.size() > static_cast<size_t>(kernels::kMaxRank))
    return unimplemented("{} of rank {} on the GPU", t, yd.size());
  s.copy.rank = static_cast<int>(yd.size());
  for (size_t i = 0; i < yd.size(); ++i) {
    s.copy.dims[i] = yd[i];
    s.copy.strides[i] = strides[i];
  }
  int y = device_value(out_name, val(x).dtype, yd);
  s.inputs = {x};
  s.outputs = {y};
  add_step(std::move(s));
  bind(n.output(0), y);
  return Status::ok();
}

Status PlanBuilder::lower_pool(const ir::Node& n) {
  KILN_ASSIGN_OR_RETURN(int x, value_of(n.input(0)));
  KILN_ASSIGN_OR_RETURN(x, on_device(x));
  Dims xd = val(x).dims;
  if (xd.size() != 4) return unimplemented("only 2-D pooling runs on the GPU (input {})", dims_to_string(xd));
  if (n.op_type() == "GlobalAveragePool") {
    bool cl = nhwc_memory(x);
    int y = device_value(n.output(0)->name(), val(x).dtype, {xd[0], xd[1], 1, 1});
    Step s = make_step(StepKind::kGlobalAvgPool, &n);
    s.inputs = {x};
    s.outputs = {y};
    s.pool.n = xd[0];
    s.pool.c = xd[1];
    s.pool.h = xd[2];
    s.pool.w = xd[3];
    s.pool.channels_last = cl;
    add_step(std::move(s));
    bind(n.output(0), y);
    return Status::ok();
  }
  if (n.num_outputs() > 1 && n.output(1) != nullptr) return unimplemented("MaxPool's Indices output on the GPU");
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape");
  if (kernel.size() != 2) return unimplemented("only 2-D pooling runs on the GPU");
  bool dil = n.op_type() == "MaxPool" ? n.opset() >= 10 : n.opset() >= 19;
  KILN_ASSIGN_OR_RETURN(ops::Window win, ops::read_window(n, kernel, dil));
  bool ceil_mode = n.attr_int("ceil_mode", 0) != 0;
  Dims yd = {xd[0], xd[1], 0, 0};
  for (size_t a = 0; a < 2; ++a) {
    KILN_ASSIGN_OR_RETURN(yd[a + 2], ops::window_output_dim(xd[a + 2], a, win, ceil_mode));
  }
  bool cl = val(x).layout == Layout::kNhwc;
  int y = device_value(n.output(0)->name(), val(x).dtype, yd, cl ? Layout::kNhwc : Layout::kRowMajor);
  Step s = make_step(StepKind::kPool, &n);
  kernels::PoolParams& p = s.pool;
  p.n = xd[0];
  p.c = xd[1];
  p.h = xd[2];
  p.w = xd[3];
  p.oh = yd[2];
  p.ow = yd[3];
  p.kh = win.kernel[0];
  p.kw = win.kernel[1];
  p.sh = win.strides[0];
  p.sw = win.strides[1];
  p.dh = win.dilations[0];
  p.dw = win.dilations[1];
  p.pad_top = win.pad_begin(0);
  p.pad_left = win.pad_begin(1);
  p.pad_bottom = win.pad_end(0);
  p.pad_right = win.pad_end(1);
  p.is_max = n.op_type() == "MaxPool";
  p.count_include_pad = n.attr_int("count_include_pad", 0) != 0;
  p.channels_last = cl;
  // The output value's layout must match the kernel's: a normalized NHWC output is the same memory.
  s.inputs = {x};
  s.outputs = {y};
  add_step(std::move(s));
  bind(n.output(0), y);
  return Status::ok();
}

// BatchNormalization (standalone), LayerNormalization, Softmax.
Status PlanBuilder::lower_norm(const ir::Node& n) {
  const std::string& t = n.op_type();
  KILN_ASSIGN_OR_RETURN(int x, value_of(n.input(0)));
  KILN_ASSIGN_OR_RETURN(x, on_device(x));
  if (val(x).dtype != plan_.act_dtype)
    return unimplemented("{} on {} data on the GPU", t, data_type_name(val(x).dtype));
  for (size_t i = 1; i < n.num_outputs(); ++i) {
    if (n.output(i) != nullptr) return unimplemented("{}'s optional output {} on the GPU", t, i);
  }
  Dims xd = val(x).dims;
  int64_t r = static_cast<int64_t>(xd.size());
  if (t == "BatchNormalization") {
    if (r < 2) return invalid_argument("BatchNormalization input has rank {}", r);
    if (n.attr_int("training_mode", 0) != 0) return unimplemented("BatchNormalization in training mode on the GPU");
    std::vector<std::vector<float>> p(4);
    for (size_t i = 0; i < 4; ++i) {
      KILN_ASSIGN_OR_RETURN(Tensor pt, host_tensor(n, i + 1));
      KILN_ASSIGN_OR_RETURN(p[i], tensor_floats(pt));
      if (static_cast<int64_t>(p[i].size()) != xd[1])
        return invalid_argument("parameter {} has {} values for {} channels", i + 1, p[i].size(), xd[1]);
    }
    float eps = n.attr_float("epsilon", 1e-5f);
    Tensor scale = Tensor::empty(DataType::kFloat32, {xd[1]}), shift = Tensor::empty(DataType::kFloat32, {xd[1]});
    for (int64_t c = 0; c < xd[1]; ++c) {
      size_t k = static_cast<size_t>(c);
      float sc = p[0][k] / std::sqrt(p[3][k] + eps);
      scale.data<float>()[c] = sc;
      shift.data<float>()[c] = p[1][k] - p[2][k] * sc;
    }
    KILN_ASSIGN_OR_RETURN(int sv, device_const(host_value(n.name() + ".scale", scale), DataType::kFloat32));
    KILN_ASSIGN_OR_RETURN(int bv, device_const(host_value(n.name() + ".shift", shift), DataType::kFloat32));
    bool cl = val(x).layout == Layout::kNhwc;
    int y = device_value(n.output(0)->name(), val(x).dtype, xd, val(x).layout);
    Step s = make_step(StepKind::kEpilogue, &n);
    s.inputs = {x, sv, bv, -1};
    s.outputs = {y};
    s.channels = xd[1];
    s.inner = cl ? 1 : numel_of(Dims(xd.begin() + 2, xd.end()));
    add_step(std::move(s));
    bind(n.output(0), y);
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(x, as_row_major(x));
  int64_t axis_attr = n.attr_int("axis", t == "Softmax" && n.opset() < 13 ? 1 : -1);
  KILN_ASSIGN_OR_RETURN(int64_t axis, norm_axis(axis_attr, r));
  int64_t rows = numel_of(Dims(xd.begin(), xd.begin() + axis));
  int64_t cols = numel_of(Dims(xd.begin() + axis, xd.end()));
  if (t == "Softmax" && n.opset() >= 13 && axis != r - 1) {
    return unimplemented("Softmax over axis {} of rank {} on the GPU (only the last axis)", axis, r);
  }
  int y = device_value(n.output(0)->name(), val(x).dtype, xd);
  Step s = make_step(t == "Softmax" ? StepKind::kSoftmax : StepKind::kLayerNorm, &n);
  s.rows = rows;
  s.cols = cols;
  s.inputs = {x};
  if (t == "LayerNormalization") {
    s.epsilon = n.attr_float("epsilon", 1e-5f);
    for (size_t i = 1; i < 3; ++i) {
      if (!n.has_input(i)) {
        if (i == 1) return invalid_argument("LayerNormalization needs a scale");
        s.inputs.push_back(-1);
        continue;
      }
      KILN_ASSIGN_OR_RETURN(Tensor pt, host_tensor(n, i));
      if (pt.numel() != cols) {
        // Scale/bias broadcast over the normalized dims: expand on the host.
        KILN_ASSIGN_OR_RETURN(auto f, tensor_floats(pt));
        if (f.size() != 1)
          return unimplemented("LayerNormalization parameter {} with {} values for {} columns", i, f.size(), cols);
        Tensor e = Tensor::empty(DataType::kFloat32, {cols});
        std::fill(e.data<float>(), e.data<float>() + cols, f[0]);
        pt = e;
      }
      KILN_ASSIGN_OR_RETURN(int pv, value_of(n.input(i)));
      if (pt.numel() != val(pv).host.numel()) pv = host_value(n.name() + ".param", pt);
      KILN_ASSIGN_OR_RETURN(int dv, device_const(pv, DataType::kFloat32));
      s.inputs.push_back(dv);
    }
  }
  s.outputs = {y};
  add_step(std::move(s));
  bind(n.output(0), y);
  return Status::ok();
}

}  // namespace kiln::backends::cuda
