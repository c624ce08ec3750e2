#include "backends/cuda/plan.h"

#include <algorithm>
#include <cstring>

#include "backends/cuda/plan_builder.h"
#include "core/error.h"
#include "core/float_types.h"
#include "core/thread_pool.h"
#include "ops/op_def.h"
#include "ops/registry.h"

namespace kiln::backends::cuda {

Result<Precision> parse_precision(std::string_view name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "tf32") return Precision::kTf32;
  if (name == "fp16") return Precision::kFp16;
  if (name == "bf16") return Precision::kBf16;
  return invalid_argument("unknown GPU precision '{}' (expected fp32, tf32, fp16 or bf16)", name);
}

std::string_view precision_name(Precision p) {
  switch (p) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kTf32:
      return "tf32";
    case Precision::kFp16:
      return "fp16";
    case Precision::kBf16:
      return "bf16";
  }
  return "?";
}

std::string_view step_kind_name(StepKind k) {
  switch (k) {
    case StepKind::kUpload:
      return "upload";
    case StepKind::kDownload:
      return "download";
    case StepKind::kConv:
      return "conv";
    case StepKind::kGemm:
      return "gemm";
    case StepKind::kElementwise:
      return "elementwise";
    case StepKind::kEpilogue:
      return "epilogue";
    case StepKind::kCast:
      return "cast";
    case StepKind::kCopy:
      return "copy";
    case StepKind::kGather:
      return "gather";
    case StepKind::kSoftmax:
      return "softmax";
    case StepKind::kLayerNorm:
      return "layernorm";
    case StepKind::kPool:
      return "pool";
    case StepKind::kGlobalAvgPool:
      return "global_avg_pool";
    case StepKind::kConcat:
      return "concat";
    case StepKind::kPointwise:
      return "pointwise";
    case StepKind::kMaskedSoftmax:
      return "masked_softmax";
    case StepKind::kQuantize:
      return "quantize";
    case StepKind::kDequantize:
      return "dequantize";
  }
  return "?";
}

kernels::DType kernel_dtype(DataType t) {
  switch (t) {
    case DataType::kFloat16:
      return kernels::DType::kF16;
    case DataType::kBFloat16:
      return kernels::DType::kBF16;
    case DataType::kInt64:
      return kernels::DType::kI64;
    case DataType::kInt32:
      return kernels::DType::kI32;
    case DataType::kInt8:
      return kernels::DType::kI8;
    case DataType::kUInt8:
      return kernels::DType::kU8;
    case DataType::kBool:
      return kernels::DType::kBool;
    case DataType::kFloat64:
      return kernels::DType::kF64;
    default:
      return kernels::DType::kF32;
  }
}

int64_t PlanValue::nbytes() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n * static_cast<int64_t>(element_size(dtype));
}

std::vector<int64_t> plan_arena(const std::vector<BufferUse>& buffers, int64_t alignment, int64_t& total) {
  std::vector<int64_t> offsets(buffers.size(), 0);
  std::vector<size_t> order(buffers.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return buffers[a].first < buffers[b].first; });
  struct Live {
    int64_t offset, size;
    int last;
  };
  std::vector<Live> live;  // sorted by offset
  total = 0;
  for (size_t idx : order) {
    const BufferUse& b = buffers[idx];
    live.erase(std::remove_if(live.begin(), live.end(), [&](const Live& l) { return l.last < b.first; }), live.end());
    int64_t size = (std::max<int64_t>(b.bytes, 1) + alignment - 1) / alignment * alignment;
    int64_t offset = 0;
    for (const Live& l : live) {  // first gap that fits
      if (l.offset - offset >= size) break;
      offset = std::max(offset, l.offset + l.size);
    }
    offsets[idx] = offset;
    live.push_back({offset, size, b.last});
    std::sort(live.begin(), live.end(), [](const Live& x, const Live& y) { return x.offset < y.offset; });
    total = std::max(total, offset + size);
  }
  return offsets;
}

std::string Plan::to_string() const {
  std::string out;
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    out += fmt::format("{:3} {:<15} {}", i, step_kind_name(s.kind), s.label);
    for (int o : s.outputs) {
      const PlanValue& v = values[static_cast<size_t>(o)];
      out += fmt::format(" -> {} {}{}{}", v.name, data_type_name(v.dtype), dims_to_string(v.dims),
                         v.layout == Layout::kNhwc ? " nhwc" : "");
    }
    out += "\n";
  }
  out += fmt::format("arena {} bytes in {} buffers\n", arena_bytes, buffers.size());
  return out;
}

// ---------------------------------------------------------------------------
// Host-side tensor helpers

Result<Dims> broadcast_dims(const Dims& a, const Dims& b) {
  size_t r = std::max(a.size(), b.size());
  Dims out(r, 1);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1) {
      return invalid_argument("shapes {} and {} do not broadcast", dims_to_string(a), dims_to_string(b));
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Dims row_major_strides(const Dims& dims) {
  Dims s(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) s[i - 1] = s[i] * dims[i];
  return s;
}

namespace {
template <class T>
double read_as_double(const Tensor& t, int64_t i) {
  return static_cast<double>(t.data<T>()[i]);
}

Result<double> element(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DataType::kFloat32:
      return read_as_double<float>(t, i);
    case DataType::kFloat64:
      return read_as_double<double>(t, i);
    case DataType::kFloat16:
      return static_cast<double>(static_cast<float>(t.data<Float16>()[i]));
    case DataType::kBFloat16:
      return static_cast<double>(static_cast<float>(t.data<BFloat16>()[i]));
    case DataType::kInt64:
      return read_as_double<int64_t>(t, i);
    case DataType::kInt32:
      return read_as_double<int32_t>(t, i);
    case DataType::kInt16:
      return read_as_double<int16_t>(t, i);
    case DataType::kInt8:
      return read_as_double<int8_t>(t, i);
    case DataType::kUInt8:
      return read_as_double<uint8_t>(t, i);
    case DataType::kBool:
      return t.data<uint8_t>()[i] != 0 ? 1.0 : 0.0;
    default:
      return unimplemented("GPU engine: cannot convert {} data", data_type_name(t.dtype()));
  }
}
}  // namespace

Result<Tensor> convert_tensor(const Tensor& t, DataType dtype) {
  if (t.dtype() == dtype) return t;
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(dtype, t.dims()));
  if (t.dtype() == DataType::kFloat32 && (dtype == DataType::kFloat16 || dtype == DataType::kBFloat16)) {
    const float* in = t.data<float>();  // the weights' path: keep it fast
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (dtype == DataType::kFloat16) {
        out.data<Float16>()[i] = Float16(in[i]);
      } else {
        out.data<BFloat16>()[i] = BFloat16(in[i]);
      }
    }
    return out;
  }
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.dtype() == DataType::kInt64 && dtype == DataType::kInt32) {
      out.data<int32_t>()[i] = static_cast<int32_t>(t.data<int64_t>()[i]);
      continue;
    }
    KILN_ASSIGN_OR_RETURN(double v, element(t, i));
    switch (dtype) {
      case DataType::kFloat32:
        out.data<float>()[i] = static_cast<float>(v);
        break;
      case DataType::kFloat16:
        out.data<Float16>()[i] = Float16(static_cast<float>(v));
        break;
      case DataType::kBFloat16:
        out.data<BFloat16>()[i] = BFloat16(static_cast<float>(v));
        break;
      case DataType::kFloat64:
        out.data<double>()[i] = v;
        break;
      case DataType::kInt64:
        out.data<int64_t>()[i] = t.dtype() == DataType::kInt64 ? t.data<int64_t>()[i] : static_cast<int64_t>(v);
        break;
      case DataType::kInt32:
        out.data<int32_t>()[i] = static_cast<int32_t>(v);
        break;
      case DataType::kInt8:
        out.data<int8_t>()[i] = static_cast<int8_t>(v);
        break;
      case DataType::kUInt8:
        out.data<uint8_t>()[i] = static_cast<uint8_t>(v);
        break;
      case DataType::kBool:
        out.data<uint8_t>()[i] = v != 0.0 ? 1 : 0;
        break;
      default:
        return unimplemented("GPU engine: cannot convert to {}", data_type_name(dtype));
    }
  }
  return out;
}

Result<std::vector<int64_t>> tensor_ints(const Tensor& t) {
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DataType::kInt64) {
    std::memcpy(out.data(), t.raw_data(), t.nbytes());
  } else if (t.dtype() == DataType::kInt32) {
    for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = t.data<int32_t>()[i];
  } else {
    return invalid_argument("expected an int32/int64 tensor, got {}", t.debug_string());
  }
  return out;
}

Result<std::vector<float>> tensor_floats(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    KILN_ASSIGN_OR_RETURN(double v, element(t, i));
    out[static_cast<size_t>(i)] = static_cast<float>(v);
  }
  return out;
}

// ---------------------------------------------------------------------------
// PlanBuilder: values and layouts

PlanBuilder::PlanBuilder(const ir::Graph& graph, const PlanOptions& options) : graph_(graph), options_(options) {
  plan_.options = options;
  plan_.act_dtype = options.precision == Precision::kFp16   ? DataType::kFloat16
                    : options.precision == Precision::kBf16 ? DataType::kBFloat16
                                                            : DataType::kFloat32;
}

DataType PlanBuilder::storage(DataType t) const {
  if (t == DataType::kFloat32 || t == DataType::kFloat16 || t == DataType::kBFloat16) return plan_.act_dtype;
  return t;
}

int PlanBuilder::device_value(const std::string& name, DataType dtype, Dims dims, Layout layout) {
  PlanValue v;
  v.name = name;
  v.dtype = dtype;
  if (layout == Layout::kNhwc && (dims.size() != 4 || dims[1] == 1 || dims[2] * dims[3] == 1)) {
    layout = Layout::kRowMajor;  // the same bytes either way
  }
  v.dims = std::move(dims);
  v.layout = layout;
  v.buffer = next_buffer_++;
  plan_.values.push_back(std::move(v));
  return static_cast<int>(plan_.values.size()) - 1;
}

int PlanBuilder::alias_value(int of, const std::string& name, Dims dims) {
  PlanValue v;
  const PlanValue& src = val(of);
  v.name = name;
  v.dtype = src.dtype;
  v.dims = std::move(dims);
  v.on_host = src.on_host;
  v.persistent = src.persistent;
  v.buffer = src.buffer;
  if (src.on_host || src.persistent) {
    Result<Tensor> r = src.host.reshaped(v.dims);
    v.host = r.is_ok() ? *r : src.host;
  }
  plan_.values.push_back(std::move(v));
  return static_cast<int>(plan_.values.size()) - 1;
}

int PlanBuilder::host_value(const std::string& name, Tensor t) {
  PlanValue v;
  v.name = name;
  v.dtype = t.dtype();
  v.dims = t.dims();
  v.on_host = true;
  v.host = std::move(t);
  plan_.values.push_back(std::move(v));
  return static_cast<int>(plan_.values.size()) - 1;
}

Result<int> PlanBuilder::device_const(int vid, DataType dtype, bool ohwi) {
  auto key = std::make_tuple(vid, static_cast<int>(dtype), ohwi);
  auto it = const_cache_.find(key);
  if (it != const_cache_.end()) return it->second;
  const PlanValue& src = val(vid);
  if (!src.on_host && !src.persistent) return internal_error("device_const of a device value '{}'", src.name);
  KILN_ASSIGN_OR_RETURN(Tensor t, convert_tensor(src.host, dtype));
  if (ohwi) {
    const Dims& d = t.dims();
    Tensor p = Tensor::empty(dtype, {d[0], d[2], d[3], d[1]});
    size_t es = element_size(dtype);
    const auto* in = static_cast<const uint8_t*>(t.raw_data());
    auto* out = static_cast<uint8_t*>(p.raw_data());
    for (int64_t o = 0; o < d[0]; ++o)
      for (int64_t c = 0; c < d[1]; ++c)
        for (int64_t h = 0; h < d[2]; ++h)
          for (int64_t w = 0; w < d[3]; ++w) {
            int64_t si = ((o * d[1] + c) * d[2] + h) * d[3] + w;
            int64_t di = ((o * d[2] + h) * d[3] + w) * d[1] + c;
            std::memcpy(out + di * static_cast<int64_t>(es), in + si * static_cast<int64_t>(es), es);
          }
    t = std::move(p);
  } else if (t.dtype() == src.host.dtype()) {
    t = src.host;  // shares storage; uploaded as is
  }
  PlanValue v;
  v.name = src.name;
  v.dtype = dtype;
  v.dims = src.dims;
  v.persistent = true;
  v.host = std::move(t);
  plan_.values.push_back(std::move(v));
  int id = static_cast<int>(plan_.values.size()) - 1;
  const_cache_[key] = id;
  return id;
}

Result<int> PlanBuilder::on_device(int vid) {
  const PlanValue& v = val(vid);
  if (!v.on_host) return vid;
  return device_const(vid, storage(v.dtype));
}

Result<int> PlanBuilder::value_of(const ir::Value* v) {
  auto it = vmap_.find(v);
  if (it != vmap_.end()) return it->second;
  if (v->is_constant()) {
    int id = host_value(v->name(), v->constant());
    vmap_[v] = id;
    return id;
  }
  return internal_error("value '{}' is used before it is computed", v->name());
}

int PlanBuilder::input_id(const ir::Node& n, size_t i) {
  const ir::Value* v = n.input(i);
  if (v == nullptr) return -1;
  auto it = vmap_.find(v);
  return it == vmap_.end() ? -1 : it->second;
}

Result<Tensor> PlanBuilder::host_tensor(const ir::Node& n, size_t i) {
  if (!n.has_input(i)) return invalid_argument("input {} is missing", i);
  KILN_ASSIGN_OR_RETURN(int vid, value_of(n.input(i)));
  const PlanValue& v = val(vid);
  if (!v.on_host) {
    return unimplemented(
        "input {} ('{}') must be known when the plan is built (a constant or shape); it is computed on the GPU", i,
        v.name);
  }
  return v.host;
}

bool PlanBuilder::nhwc_memory(int vid) const {
  const PlanValue& v = plan_.values[static_cast<size_t>(vid)];
  return v.layout == Layout::kNhwc || (v.dims.size() == 4 && (v.dims[1] == 1 || v.dims[2] * v.dims[3] == 1));
}

Result<int> PlanBuilder::as_nhwc(int vid) {
  KILN_ASSIGN_OR_RETURN(vid, on_device(vid));
  if (nhwc_memory(vid)) return vid;
  auto it = nhwc_cache_.find(vid);
  if (it != nhwc_cache_.end()) return it->second;
  const PlanValue src = val(vid);
  if (src.dims.size() != 4) return internal_error("as_nhwc of a rank-{} value", src.dims.size());
  int out = device_value(src.name + ".nhwc", src.dtype, src.dims, Layout::kNhwc);
  Step s = make_step(StepKind::kCopy, nullptr);
  s.label = fmt::format("layout of '{}' to NHWC", src.name);
  const Dims& d = src.dims;  // N C H W; iterate destination (n, h, w, c)
  s.copy.rank = 4;
  int64_t dims[4] = {d[0], d[2], d[3], d[1]};
  int64_t strides[4] = {d[1] * d[2] * d[3], d[3], 1, d[2] * d[3]};
  std::copy(dims, dims + 4, s.copy.dims);
  std::copy(strides, strides + 4, s.copy.strides);
  s.inputs = {vid};
  s.outputs = {out};
  add_step(std::move(s));
  nhwc_cache_[vid] = out;
  return out;
}

Result<int> PlanBuilder::as_row_major(int vid) {
  KILN_ASSIGN_OR_RETURN(vid, on_device(vid));
  if (val(vid).layout == Layout::kRowMajor) return vid;
  auto it = row_major_cache_.find(vid);
  if (it != row_major_cache_.end()) return it->second;
  const PlanValue src = val(vid);
  int out = device_value(src.name + ".nchw", src.dtype, src.dims, Layout::kRowMajor);
  Step s = make_step(StepKind::kCopy, nullptr);
  s.label = fmt::format("layout of '{}' to NCHW", src.name);
  const Dims& d = src.dims;  // iterate destination (n, c, h, w) over NHWC memory
  s.copy.rank = 4;
  int64_t dims[4] = {d[0], d[1], d[2], d[3]};
  int64_t strides[4] = {d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]};
  std::copy(dims, dims + 4, s.copy.dims);
  std::copy(strides, strides + 4, s.copy.strides);
  s.inputs = {vid};
  s.outputs = {out};
  add_step(std::move(s));
  row_major_cache_[vid] = out;
  return out;
}

Step PlanBuilder::make_step(StepKind kind, const ir::Node* node) {
  Step s;
  s.kind = kind;
  s.node = node;
  if (node != nullptr) s.label = node->describe();
  return s;
}

int PlanBuilder::add_step(Step s) {
  plan_.steps.push_back(std::move(s));
  return static_cast<int>(plan_.steps.size()) - 1;
}

const ir::Node* PlanBuilder::sole_consumer(const ir::Value* v) const {
  if (v == nullptr || v->is_graph_output() || v->uses().size() != 1) return nullptr;
  const ir::Node* n = v->uses()[0].node;
  return consumed_.count(n) != 0 ? nullptr : n;
}

// ---------------------------------------------------------------------------
// Host evaluation, I/O and the build loop

Status PlanBuilder::eval_on_host(const ir::Node& n) {
  const ops::OpDef* def = ops::Registry::global().find(n.domain(), n.op_type(), n.opset());
  if (def == nullptr || def->kernel == nullptr) {
    return unimplemented("no reference kernel to evaluate it on the host");
  }
  std::vector<Datum> inputs(n.num_inputs());
  for (size_t i = 0; i < n.num_inputs(); ++i) {
    if (!n.has_input(i)) continue;
    KILN_ASSIGN_OR_RETURN(int vid, value_of(n.input(i)));
    inputs[i] = Datum(val(vid).host);
  }
  std::vector<Datum> outputs(n.num_outputs());
  static ThreadPool pool(1);
  ops::KernelContext ctx(n, inputs, outputs, &pool, nullptr);
  KILN_RETURN_IF_ERROR(def->kernel(ctx));
  for (size_t i = 0; i < n.num_outputs(); ++i) {
    if (n.output(i) == nullptr) continue;
    if (!outputs[i].is_tensor()) return unimplemented("host evaluation produced a non-tensor output");
    bind(n.output(i), host_value(n.output(i)->name(), outputs[i].tensor()));
  }
  return Status::ok();
}

Status PlanBuilder::place_node(const ir::Node& n) {
  bool all_host = true;
  for (size_t i = 0; i < n.num_inputs(); ++i) {
    if (!n.has_input(i)) continue;
    Result<int> vid = value_of(n.input(i));
    if (!vid.is_ok()) return vid.status().with_context(n.describe());
    if (!val(*vid).on_host) all_host = false;
  }
  // Shape/Size read only dims; a Pointwise body is evaluated node by node
  // (its reference kernel needs a subgraph runner).
  bool by_lowering = n.op_type() == "Shape" || n.op_type() == "Size" || n.op_type() == "Pointwise";
  return all_host && !by_lowering ? eval_on_host(n) : lower_node(n);
}

Result<Plan> PlanBuilder::build(const std::vector<Dims>& input_dims, const std::vector<DataType>& input_dtypes) {
  const auto& inputs = graph_.inputs();
  if (input_dims.size() != inputs.size() || input_dtypes.size() != inputs.size()) {
    return invalid_argument("the graph has {} inputs, {} shapes given", inputs.size(), input_dims.size());
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    DataType dt = input_dtypes[i];
    if (dt == DataType::kString || element_size(dt) == 0) {
      return unimplemented("input '{}': {} inputs cannot go to the GPU", inputs[i]->name(), data_type_name(dt));
    }
    int up = device_value(inputs[i]->name(), dt, input_dims[i]);
    Step s = make_step(StepKind::kUpload, nullptr);
    s.label = fmt::format("input '{}'", inputs[i]->name());
    s.io = static_cast<int>(i);
    s.outputs = {up};
    add_step(std::move(s));
    plan_.input_values.push_back(up);
  }
  // Every upload comes before the first compute step (the casts below are
  // compute): the engine captures the range between uploads and downloads.
  for (size_t i = 0; i < inputs.size(); ++i) {
    DataType dt = input_dtypes[i];
    int up = plan_.input_values[i];
    int cur = up;
    if (storage(dt) != dt) {
      cur = device_value(inputs[i]->name() + ".act", storage(dt), input_dims[i]);
      Step c = make_step(StepKind::kCast, nullptr);
      c.label = fmt::format("input '{}' to {}", inputs[i]->name(), data_type_name(storage(dt)));
      c.inputs = {up};
      c.outputs = {cur};
      add_step(std::move(c));
    }
    bind(inputs[i], cur);
  }
  for (const auto& node : graph_.nodes()) {
    if (consumed_.count(node.get()) != 0) continue;
    Status st = place_node(*node);
    if (!st.is_ok()) return std::move(st).with_context(fmt::format("GPU engine: {}", node->describe()));
  }
  std::vector<Step> downloads;
  for (size_t j = 0; j < graph_.outputs().size(); ++j) {
    const ir::Value* out = graph_.outputs()[j];
    KILN_ASSIGN_OR_RETURN(int vid, value_of(out));
    DataType have = val(vid).dtype;
    bool act = have == plan_.act_dtype;
    DataType want = out->type().dtype != DataType::kUndefined ? out->type().dtype : act ? DataType::kFloat32 : have;
    if (val(vid).on_host) {
      KILN_ASSIGN_OR_RETURN(Tensor t, convert_tensor(val(vid).host, want));
      vid = host_value(out->name(), t);
      plan_.output_values.push_back(vid);
      plan_.output_dtypes.push_back(want);
      continue;
    }
    KILN_ASSIGN_OR_RETURN(vid, as_row_major(vid));
    if (val(vid).dtype != want) {
      int c = device_value(out->name() + ".out", want, val(vid).dims);
      Step s = make_step(StepKind::kCast, nullptr);
      s.label = fmt::format("output '{}' to {}", out->name(), data_type_name(want));
      s.inputs = {vid};
      s.outputs = {c};
      add_step(std::move(s));
      vid = c;
    }
    Step s = make_step(StepKind::kDownload, nullptr);
    s.label = fmt::format("output '{}'", out->name());
    s.io = static_cast<int>(j);
    s.inputs = {vid};
    downloads.push_back(std::move(s));
    plan_.output_values.push_back(vid);
    plan_.output_dtypes.push_back(want);
  }
  // Transfers last, so that the steps between the uploads and the downloads
  // form one range (the CUDA graph).
  for (Step& s : downloads) add_step(std::move(s));
  KILN_RETURN_IF_ERROR(finish_arena());
  return std::move(plan_);
}

Status PlanBuilder::finish_arena() {
  plan_.buffers.assign(static_cast<size_t>(next_buffer_), BufferUse{0, -1, -1});
  for (int s = 0; s < static_cast<int>(plan_.steps.size()); ++s) {
    const Step& st = plan_.steps[static_cast<size_t>(s)];
    auto touch = [&](int vid) {
      if (vid < 0) return;
      const PlanValue& v = plan_.values[static_cast<size_t>(vid)];
      if (v.on_host || v.persistent || v.buffer < 0) return;
      BufferUse& b = plan_.buffers[static_cast<size_t>(v.buffer)];
      b.bytes = std::max(b.bytes, v.nbytes());
      if (b.first < 0) b.first = s;
      b.first = std::min(b.first, s);
      b.last = std::max(b.last, s);
    };
    for (int v : st.inputs) touch(v);
    for (int v : st.outputs) touch(v);
  }
  for (BufferUse& b : plan_.buffers) {
    if (b.first < 0) b = BufferUse{0, 0, 0};
  }
  plan_.buffer_offsets = plan_arena(plan_.buffers, 256, plan_.arena_bytes);
  return Status::ok();
}

Result<Plan> build_plan(const ir::Graph& graph, const std::vector<Dims>& input_dims,
                        const std::vector<DataType>& input_dtypes, const PlanOptions& options) {
  PlanBuilder b(graph, options);
  return b.build(input_dims, input_dtypes);
}

Status check_graph_supported(const ir::Graph& graph) {
  std::set<const ir::Value*> known;
  for (const auto& node : graph.nodes()) {
    const ir::Node& n = *node;
    bool all_known = true;
    for (const ir::Value* v : n.inputs()) {
      if (v != nullptr && !v->is_constant() && known.count(v) == 0) all_known = false;
    }
    bool shape_only = n.domain().empty() && (n.op_type() == "Shape" || n.op_type() == "Size");
    if (all_known || shape_only) {
      for (const ir::Value* v : n.outputs()) {
        if (v != nullptr) known.insert(v);
      }
      if (all_known && !shape_only && ops::Registry::global().find(n.domain(), n.op_type(), n.opset()) == nullptr) {
        return unimplemented("GPU engine: {} has no kernel to evaluate it on the host", n.describe());
      }
      continue;
    }
    if (!gpu_supports_op(n)) {
      return unimplemented("GPU engine: {} is not supported on the GPU (op {}{}{} has no GPU implementation)",
                           n.describe(), n.domain(), n.domain().empty() ? "" : ".", n.op_type());
    }
  }
  return Status::ok();
}

}  // namespace kiln::backends::cuda
