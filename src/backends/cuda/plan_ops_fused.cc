// Lowering of the optimizer's kiln.Attention and kiln.Pointwise (see plan.h),
// and of Split (which the horizontal fusion puts after merged projections).
#include <algorithm>
#include <memory>
#include <optional>

#include "backends/cuda/plan_builder.h"
#include "backends/cuda/softmax_codegen.h"
#include "core/error.h"

namespace kiln::backends::cuda {
namespace {

int64_t numel_of(const Dims& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

bool is_float_storage(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

// Element strides of a row-major reshape of a strided view (dims `yd`,
// strides `ys`) to `zd`, when the reshape only splits dims (no merge of dims
// the view does not lay out contiguously); nullopt otherwise. Size-1 dims
// get stride 0.
std::optional<Dims> reshaped_view_strides(const Dims& yd, const Dims& ys, const Dims& zd) {
  Dims zs(zd.size(), 0);
  size_t zi = zd.size();
  for (size_t yi = yd.size(); yi-- > 0;) {
    if (yd[yi] == 1) continue;
    int64_t prod = 1;
    while (prod < yd[yi]) {
      while (zi > 0 && zd[zi - 1] == 1) --zi;
      if (zi == 0) return std::nullopt;
      --zi;
      zs[zi] = ys[yi] * prod;
      prod *= zd[zi];
    }
    if (prod != yd[yi]) return std::nullopt;
  }
  while (zi > 0) {
    if (zd[--zi] != 1) return std::nullopt;
  }
  return zs;
}

}  // namespace

Result<int> PlanBuilder::batched_matmul(const ir::Node& n, int a, int b, float alpha, DataType dtype,
                                        const std::string& name) {
  KILN_ASSIGN_OR_RETURN(a, on_device(a));
  KILN_ASSIGN_OR_RETURN(a, as_row_major(a));
  KILN_ASSIGN_OR_RETURN(b, on_device(b));
  KILN_ASSIGN_OR_RETURN(b, as_row_major(b));
  const Dims ad = val(a).dims, bd = val(b).dims;
  if (ad.size() < 2 || bd.size() < 2) {
    return invalid_argument("batched product of {} and {} (rank 2 or more expected)", dims_to_string(ad),
                            dims_to_string(bd));
  }
  GemmParams g;
  g.alpha = alpha;
  g.m = ad[ad.size() - 2];
  g.k = ad.back();
  g.n = bd.back();
  if (bd[bd.size() - 2] != g.k) {
    return invalid_argument("product inner dims differ: {} and {}", dims_to_string(ad), dims_to_string(bd));
  }
  Dims ab(ad.begin(), ad.end() - 2), bb(bd.begin(), bd.end() - 2);
  KILN_ASSIGN_OR_RETURN(Dims ob, broadcast_dims(ab, bb));
  const int64_t batch = numel_of(ob);
  Dims yd = ob;
  yd.push_back(g.m);
  yd.push_back(g.n);
  if (numel_of(bb) == 1 && numel_of(ab) == batch) {
    g.m *= batch;  // one right-hand matrix: the left's batch folds into M
  } else {
    // Operands whose batch does not cover the output's are expanded.
    auto expand = [&](int& v, const Dims& vb, const Dims& mat) -> Status {
      if (vb.size() == ob.size() && numel_of(vb) == batch) return Status::ok();
      Dims full = ob;
      full.insert(full.end(), mat.begin(), mat.end());
      if (full.size() > static_cast<size_t>(kernels::kMaxRank))
        return unimplemented("product rank {} too high", full.size());
      KILN_ASSIGN_OR_RETURN(v, broadcast_copy(n, v, val(v).dims, full));
      return Status::ok();
    };
    KILN_RETURN_IF_ERROR(expand(a, ab, {g.m, g.k}));
    KILN_RETURN_IF_ERROR(expand(b, bb, {g.k, g.n}));
    g.batch = batch;
    g.stride_a = g.m * g.k;
    g.stride_b = g.k * g.n;
    g.stride_c = g.m * g.n;
  }
  int y = device_value(name, dtype, yd);
  Step s = make_step(StepKind::kGemm, &n);
  s.inputs = {a, b, -1, -1, -1};
  s.outputs = {y};
  s.gemm = g;
  add_step(std::move(s));
  return y;
}

Result<int> PlanBuilder::broadcast_binary(const ir::Node& n, kernels::EwOp op, int a, int b, const std::string& name) {
  KILN_ASSIGN_OR_RETURN(a, on_device(a));
  KILN_ASSIGN_OR_RETURN(a, as_row_major(a));
  KILN_ASSIGN_OR_RETURN(b, on_device(b));
  KILN_ASSIGN_OR_RETURN(b, as_row_major(b));
  if (val(a).dtype != val(b).dtype)
    return internal_error("broadcast_binary of {} and {}", data_type_name(val(a).dtype), data_type_name(val(b).dtype));
  const Dims ad = val(a).dims, bd = val(b).dims;
  KILN_ASSIGN_OR_RETURN(Dims yd, broadcast_dims(ad, bd));
  Step s = make_step(StepKind::kElementwise, &n);
  s.op = op;
  s.a_scalar = numel_of(ad) == 1 && ad != yd;
  s.b_scalar = numel_of(bd) == 1 && bd != yd;
  s.flat = (ad == yd || s.a_scalar) && (bd == yd || s.b_scalar);
  if (!s.flat) {
    if (yd.size() > static_cast<size_t>(kernels::kMaxRank))
      return unimplemented("broadcast of rank {} on the GPU", yd.size());
    KILN_ASSIGN_OR_RETURN(Dims as, broadcast_strides(ad, yd));
    KILN_ASSIGN_OR_RETURN(Dims bs, broadcast_strides(bd, yd));
    s.ew.rank = static_cast<int>(yd.size());
    for (size_t i = 0; i < yd.size(); ++i) {
      s.ew.dims[i] = yd[i];
      s.ew.a_strides[i] = as[i];
      s.ew.b_strides[i] = bs[i];
    }
  }
  int y = device_value(name, val(a).dtype, yd);
  s.inputs = {a, b};
  s.outputs = {y};
  add_step(std::move(s));
  return y;
}

// softmax(scale * Q Kt + mask) V. The scores are float at every precision
// (cuBLASLt accumulates in float and writes float), as are the mask Add and
// the Softmax: one generated kernel that writes the probabilities in the
// activation type for the second product, or (without generated kernels)
// an Add, a Softmax and a cast.
Status PlanBuilder::lower_attention(const ir::Node& n) {
  if (n.num_inputs() < 3) return invalid_argument("Attention needs Q, Kt and V");
  int ids[3];
  for (size_t i = 0; i < 3; ++i) {
    KILN_ASSIGN_OR_RETURN(ids[i], value_of(n.input(i)));
    if (!is_float_storage(val(ids[i]).dtype)) {
      return unimplemented("Attention input {} of type {} on the GPU", i, data_type_name(val(ids[i]).dtype));
    }
  }
  const std::string out_name = n.output(0)->name();
  const float scale = n.attr_float("scale", 1.0f);
  KILN_ASSIGN_OR_RETURN(int scores, batched_matmul(n, ids[0], ids[1], scale, DataType::kFloat32, out_name + ".scores"));
  const Dims sd = val(scores).dims;
  int mask = -1;
  if (n.has_input(3)) {
    KILN_ASSIGN_OR_RETURN(int m, value_of(n.input(3)));
    if (val(m).on_host) {
      KILN_ASSIGN_OR_RETURN(m, device_const(m, DataType::kFloat32));
    } else {
      KILN_ASSIGN_OR_RETURN(m, as_row_major(m));
      if (!is_float_storage(val(m).dtype)) {
        return unimplemented("Attention mask of type {} on the GPU", data_type_name(val(m).dtype));
      }
      if (val(m).dtype != DataType::kFloat32) {
        auto it = mask_f32_cache_.find(m);
        if (it != mask_f32_cache_.end()) {
          m = it->second;
        } else {
          int c = device_value(val(m).name + ".f32", DataType::kFloat32, val(m).dims);
          Step s = make_step(StepKind::kCast, &n);
          s.label = fmt::format("mask of {} to float", n.describe());
          s.inputs = {m};
          s.outputs = {c};
          add_step(std::move(s));
          mask_f32_cache_[m] = c;
          m = c;
        }
      }
    }
    KILN_ASSIGN_OR_RETURN(Dims bc, broadcast_dims(sd, val(m).dims));
    if (bc != sd) {
      return invalid_argument("mask {} does not broadcast to the scores {}", dims_to_string(val(m).dims),
                              dims_to_string(sd));
    }
    mask = m;
  }
  int probs = -1;
  if (options_.generated_kernels) {  // one kernel: mask Add, Softmax, store in the activation type
    Dims mask_strides;
    if (mask >= 0) {
      KILN_ASSIGN_OR_RETURN(mask_strides, broadcast_strides(val(mask).dims, sd));
    }
    probs = device_value(out_name + ".probs", plan_.act_dtype, sd);
    Step sm = make_step(StepKind::kMaskedSoftmax, &n);
    sm.cols = sd.back();
    sm.rows = sm.cols == 0 ? 0 : numel_of(sd) / sm.cols;
    sm.pw_args = masked_softmax_args(sd, mask_strides);
    sm.inputs = {scores, mask};
    sm.outputs = {probs};
    add_step(std::move(sm));
    KILN_ASSIGN_OR_RETURN(int y, batched_matmul(n, probs, ids[2], 1.0f, plan_.act_dtype, out_name));
    bind(n.output(0), y);
    return Status::ok();
  }
  if (mask >= 0) {
    KILN_ASSIGN_OR_RETURN(scores, broadcast_binary(n, kernels::EwOp::kAdd, scores, mask, out_name + ".masked"));
  }
  probs = device_value(out_name + ".probs", DataType::kFloat32, sd);
  Step sm = make_step(StepKind::kSoftmax, &n);
  sm.cols = sd.back();
  sm.rows = sm.cols == 0 ? 0 : numel_of(sd) / sm.cols;
  sm.inputs = {scores};
  sm.outputs = {probs};
  add_step(std::move(sm));
  if (plan_.act_dtype != DataType::kFloat32) {
    int c = device_value(out_name + ".probs_act", plan_.act_dtype, sd);
    Step s = make_step(StepKind::kCast, &n);
    s.inputs = {probs};
    s.outputs = {c};
    add_step(std::move(s));
    probs = c;
  }
  KILN_ASSIGN_OR_RETURN(int y, batched_matmul(n, probs, ids[2], 1.0f, plan_.act_dtype, out_name));
  bind(n.output(0), y);
  return Status::ok();
}

Status PlanBuilder::lower_body(const ir::Graph& body, const std::vector<int>& inputs) {
  if (body.inputs().size() != inputs.size()) {
    return invalid_argument("the body takes {} inputs, {} given", body.inputs().size(), inputs.size());
  }
  for (size_t i = 0; i < inputs.size(); ++i) bind(body.inputs()[i], inputs[i]);
  for (const auto& node : body.nodes()) {
    if (consumed_.count(node.get()) != 0) continue;
    Status st = place_node(*node);
    if (!st.is_ok()) return std::move(st).with_context(fmt::format("body node {}", node->describe()));
  }
  for (const ir::Value* v : body.outputs()) KILN_RETURN_IF_ERROR(value_of(v).status());
  return Status::ok();
}

// One generated kernel for the body when the generator knows it (one input,
// one float output), else the body's nodes one by one.
Status PlanBuilder::lower_pointwise(const ir::Node& n) {
  const ir::Graph* body = n.attr_graph("body");
  if (body == nullptr) return invalid_argument("attribute 'body' (a graph) is missing");
  if (body->outputs().size() != n.num_outputs()) {
    return invalid_argument("the body gives {} outputs, the node has {}", body->outputs().size(), n.num_outputs());
  }
  std::vector<int> ins;
  for (size_t i = 0; i < n.num_inputs(); ++i) {
    KILN_ASSIGN_OR_RETURN(int v, value_of(n.input(i)));
    ins.push_back(v);
  }
  if (options_.generated_kernels && ins.size() == 1 && !val(ins[0]).on_host) {
    Result<PointwiseProgram> prog = translate_pointwise_body(*body, val(ins[0]).dtype);
    if (prog.is_ok()) {
      const int x = ins[0];
      const PlanValue xv = val(x);
      const Dims& dims = xv.dims;
      const bool nhwc = xv.layout == Layout::kNhwc;
      Dims mem = nhwc ? Dims{dims[0], dims[2], dims[3], dims[1]} : dims;
      std::vector<Dims> strides;
      bool fits = true;  // every constant broadcasts into x (the fusion pass's rule)
      for (const Tensor& t : prog->tensors) {
        Result<Dims> st = broadcast_strides(t.dims(), dims);
        if (!st.is_ok()) {
          fits = false;
          break;
        }
        Dims s = *st;
        if (nhwc) s = {s[0], s[2], s[3], s[1]};
        strides.push_back(s);
      }
      if (fits) {
        std::vector<int> consts;
        for (size_t k = 0; k < prog->tensors.size(); ++k) {
          int hv = host_value(fmt::format("{}.c{}", n.name(), k), prog->tensors[k]);
          KILN_ASSIGN_OR_RETURN(int dv, device_const(hv, DataType::kFloat32));
          consts.push_back(dv);
        }
        int y = device_value(n.output(0)->name(), plan_.act_dtype, dims, xv.layout);
        Step s = make_step(StepKind::kPointwise, &n);
        auto kernel = std::make_shared<PointwiseKernel>();
        kernel->source = pointwise_cuda_source(*prog, xv.dtype, plan_.act_dtype, static_cast<int>(mem.size()));
        kernel->program = std::move(*prog);
        s.pointwise = std::move(kernel);
        s.pw_args = pointwise_args(mem, strides);
        s.inputs = {x};
        s.inputs.insert(s.inputs.end(), consts.begin(), consts.end());
        s.outputs = {y};
        add_step(std::move(s));
        bind(n.output(0), y);
        return Status::ok();
      }
    }
  }
  KILN_RETURN_IF_ERROR(lower_body(*body, ins));
  for (size_t j = 0; j < n.num_outputs(); ++j) {
    if (n.output(j) == nullptr) continue;
    KILN_ASSIGN_OR_RETURN(int v, value_of(body->outputs()[j]));
    bind(n.output(j), v);
  }
  return Status::ok();
}

// One strided copy per output.
Status PlanBuilder::lower_split(const ir::Node& n) {
  KILN_ASSIGN_OR_RETURN(int x, value_of(n.input(0)));
  KILN_ASSIGN_OR_RETURN(x, on_device(x));
  KILN_ASSIGN_OR_RETURN(x, as_row_major(x));
  const Dims xd = val(x).dims;
  const int64_t r = static_cast<int64_t>(xd.size());
  int64_t axis = n.attr_int("axis", 0);
  if (axis < -r || axis >= r) return invalid_argument("axis {} out of range for rank {}", axis, r);
  if (axis < 0) axis += r;
  if (r > kernels::kMaxRank) return unimplemented("Split of rank {} on the GPU", r);
  const int64_t dim = xd[static_cast<size_t>(axis)];
  const int64_t outputs = static_cast<int64_t>(n.num_outputs());
  std::vector<int64_t> sizes;
  if (n.opset() >= 13 && n.has_input(1)) {
    KILN_ASSIGN_OR_RETURN(Tensor st, host_tensor(n, 1));
    KILN_ASSIGN_OR_RETURN(sizes, tensor_ints(st));
  } else if (n.opset() < 13) {
    sizes = n.attr_ints("split");
  }
  if (sizes.empty()) {  // equal parts; opset 18's num_outputs makes the last one smaller
    const int64_t chunk = outputs == 0 ? 0 : (dim + outputs - 1) / outputs;
    for (int64_t i = 0; i < outputs; ++i) sizes.push_back(std::clamp<int64_t>(dim - i * chunk, 0, chunk));
  }
  int64_t total = 0;
  for (int64_t v : sizes) {
    if (v < 0) return invalid_argument("Split size {} is negative", v);
    total += v;
  }
  if (static_cast<int64_t>(sizes.size()) != outputs || total != dim) {
    return invalid_argument("Split sizes {} do not cover dim {} of {} in {} outputs", fmt::join(sizes, ","), dim,
                            dims_to_string(xd), outputs);
  }
  const Dims xs = row_major_strides(xd);
  int64_t start = 0;
  for (size_t i = 0; i < n.num_outputs(); ++i) {
    Dims yd = xd, ys = xs;
    yd[static_cast<size_t>(axis)] = sizes[i];
    const ir::Value* out = n.output(i);
    if (out != nullptr) {
      // Split -> Reshape -> Transpose (attention heads out of a merged Q/K/V
      // projection) is one strided copy from the merged value.
      const ir::Node* rs = sole_consumer(out);
      const ir::Node* tr = rs != nullptr ? sole_consumer(rs->output(0)) : nullptr;
      if (rs != nullptr && tr != nullptr && rs->op_type() == "Reshape" && rs->domain().empty() && rs->input(0) == out &&
          tr->op_type() == "Transpose" && tr->domain().empty()) {
        Result<Dims> zd = reshape_target(*rs, yd);
        std::optional<Dims> zs =
            zd.is_ok() && numel_of(*zd) == numel_of(yd) ? reshaped_view_strides(yd, ys, *zd) : std::nullopt;
        std::vector<int64_t> perm = tr->attr_ints("perm");
        if (zs && perm.empty()) {
          for (size_t d = zd->size(); d-- > 0;) perm.push_back(static_cast<int64_t>(d));
        }
        bool ok = zs.has_value() && perm.size() == zd->size() && zd->size() <= static_cast<size_t>(kernels::kMaxRank);
        std::vector<bool> seen(perm.size(), false);
        for (int64_t p : perm) {
          ok = ok && p >= 0 && p < static_cast<int64_t>(perm.size()) && !seen[static_cast<size_t>(p)];
          if (ok) seen[static_cast<size_t>(p)] = true;
        }
        if (ok) {
          Dims td, ts;
          for (int64_t p : perm) {
            td.push_back((*zd)[static_cast<size_t>(p)]);
            ts.push_back((*zs)[static_cast<size_t>(p)]);
          }
          consume(rs);
          consume(tr);
          out = tr->output(0);
          yd = td;
          ys = ts;
        }
      }
      int y = device_value(out->name(), val(x).dtype, yd);
      Step s = make_step(StepKind::kCopy, &n);
      s.copy.rank = static_cast<int>(yd.size());
      for (size_t d = 0; d < yd.size(); ++d) {
        s.copy.dims[d] = yd[d];
        s.copy.strides[d] = ys[d];
      }
      s.copy.offset = start * xs[static_cast<size_t>(axis)];
      s.inputs = {x};
      s.outputs = {y};
      add_step(std::move(s));
      bind(out, y);
    }
    start += sizes[i];
  }
  return Status::ok();
}

}  // namespace kiln::backends::cuda
