#include "quant/quantizer.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/thread_pool.h"
#include "exec/program.h"

namespace kiln::quant {
namespace {

const Tensor* float_constant(const ir::Value* v) {
  if (v == nullptr || !v->is_constant() || v->is_graph_input()) return nullptr;
  return v->constant().dtype() == DataType::kFloat32 ? &v->constant() : nullptr;
}

bool float_tensor(const ir::Value* v) {
  return v != nullptr && v->type().is_tensor() && v->type().dtype == DataType::kFloat32;
}

// The output-channel axis of a layer's weight, or -1 if the layer is not quantizable.
int64_t weight_out_axis(const ir::Node& n) {
  if (!n.domain().empty() || !float_tensor(n.input(0))) return -1;
  const Tensor* w = float_constant(n.input(1));
  if (w == nullptr) return -1;
  if (n.op_type() == "Conv") {
    if (w->rank() != 4 || n.attr_int("group", 1) != 1) return -1;
    if (n.has_input(2) && float_constant(n.input(2)) == nullptr) return -1;
    return 0;
  }
  if (n.op_type() == "Gemm") {
    if (w->rank() != 2 || n.attr_float("alpha", 1.0f) != 1.0f || n.attr_float("beta", 1.0f) != 1.0f ||
        n.attr_int("transA", 0) != 0) {
      return -1;
    }
    if (n.has_input(2) && float_constant(n.input(2)) == nullptr) return -1;
    return n.attr_int("transB", 0) != 0 ? 0 : 1;
  }
  if (n.op_type() == "MatMul") return w->rank() == 2 ? 1 : -1;
  return -1;
}

// The value a layer's output Q/DQ goes on: after a Relu that is the output's only reader.
const ir::Value* layer_output(const ir::Node& n) {
  const ir::Value* out = n.output(0);
  if (out != nullptr && !out->is_graph_output() && out->uses().size() == 1 && out->uses()[0].node->op_type() == "Relu" &&
      out->uses()[0].node->domain().empty()) {
    return out->uses()[0].node->output(0);
  }
  return out;
}

// Checks a batch against the graph inputs' declared types.
Status check_feed(const ir::Graph& graph, const Feed& feed, size_t index) {
  for (const auto& [name, t] : feed) {
    const ir::Value* v = graph.find_value(name);
    if (v == nullptr || !v->is_graph_input()) {
      return invalid_argument("calibration batch {} has '{}', which is not an input of the model", index, name);
    }
  }
  for (const ir::Value* in : graph.inputs()) {
    auto it = feed.find(in->name());
    if (it == feed.end()) {
      if (in->is_constant()) continue;
      return invalid_argument("calibration batch {} lacks input '{}'", index, in->name());
    }
    const Tensor& t = it->second;
    const ir::ValueType& type = in->type();
    if (!type.is_tensor()) continue;
    if (type.dtype != DataType::kUndefined && t.dtype() != type.dtype) {
      return invalid_argument("calibration batch {}: input '{}' is {}, the model expects {}", index, in->name(),
                              data_type_name(t.dtype()), data_type_name(type.dtype));
    }
    if (type.shape.rank_known()) {
      bool ok = type.shape.rank() == t.rank();
      for (int64_t d = 0; ok && d < t.rank(); ++d) ok = !type.shape[d].known() || type.shape[d].value == t.dim(d);
      if (!ok) {
        return invalid_argument("calibration batch {}: input '{}' has shape {}, the model expects {}", index,
                                in->name(), dims_to_string(t.dims()), type.shape.to_string());
      }
    }
  }
  return Status::ok();
}

std::string format_float(double v) {
  std::ostringstream os;
  os.precision(9);
  os << v;
  return os.str();
}

}  // namespace

Status save_calibration_cache(const CalibrationTable& table, const std::string& path) {
  std::ofstream out(path);
  if (!out) return invalid_argument("cannot write calibration cache '{}'", path);
  out << "kiln-calibration 1 " << table.calibrator << " " << table.batches << "\n";
  for (const auto& [name, r] : table.ranges) {
    out << name << " " << format_float(r.scale) << " " << r.zero_point << " " << format_float(r.min) << " "
        << format_float(r.max) << "\n";
  }
  if (!out) return invalid_argument("cannot write calibration cache '{}'", path);
  return Status::ok();
}

Result<CalibrationTable> load_calibration_cache(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found("calibration cache '{}' does not exist or cannot be read", path);
  std::string magic;
  int version = 0;
  CalibrationTable table;
  if (!(in >> magic >> version >> table.calibrator >> table.batches) || magic != "kiln-calibration" || version != 1) {
    return invalid_argument("'{}' is not a kiln calibration cache (version 1)", path);
  }
  std::string name;
  int line = 1;
  while (in >> name) {
    ++line;
    QuantRange r;
    if (!(in >> r.scale >> r.zero_point >> r.min >> r.max) || !(r.scale > 0) || !std::isfinite(r.scale) ||
        r.zero_point < 0 || r.zero_point > 255) {
      return invalid_argument("calibration cache '{}': bad entry on line {}", path, line);
    }
    table.ranges[name] = r;
  }
  return table;
}

Result<QuantTargets> find_targets(const ir::Graph& graph, const std::set<std::string>& keep_fp32) {
  QuantTargets t;
  std::set<std::string> seen_names, tensors;
  for (const auto& n : graph.nodes()) {
    seen_names.insert(n->name());
    if (keep_fp32.count(n->name()) > 0 || weight_out_axis(*n) < 0) continue;
    t.layers.push_back(n.get());
    for (const ir::Value* v : {static_cast<const ir::Value*>(n->input(0)), layer_output(*n)}) {
      if (v != nullptr && float_tensor(v) && tensors.insert(v->name()).second) t.tensors.push_back(v->name());
    }
  }
  for (const std::string& name : keep_fp32) {
    if (seen_names.count(name) == 0) return invalid_argument("no layer of the model is named '{}'", name);
  }
  return t;
}

Result<CalibrationTable> calibrate(ir::Graph& graph, const QuantTargets& targets, const std::vector<Feed>& batches,
                                   Calibrator calibrator, const CalibrationProgress& progress) {
  if (batches.empty()) return invalid_argument("calibration data is empty: no batches");
  for (size_t i = 0; i < batches.size(); ++i) KILN_RETURN_IF_ERROR(check_feed(graph, batches[i], i));
  // Expose every target tensor as a graph output for the run; restore after.
  const std::vector<ir::Value*> saved = graph.outputs();
  std::vector<ir::Value*> outputs = saved;
  std::vector<std::pair<std::string, size_t>> slots;
  for (const std::string& name : targets.tensors) {
    ir::Value* v = graph.find_value(name);
    if (v == nullptr) return internal_error("calibration target '{}' is not in the graph", name);
    slots.emplace_back(name, outputs.size());
    outputs.push_back(v);
  }
  graph.set_outputs(outputs);
  struct Restore {
    ir::Graph& g;
    const std::vector<ir::Value*>& outs;
    ~Restore() { g.set_outputs(outs); }
  } restore{graph, saved};
  KILN_ASSIGN_OR_RETURN(auto program, exec::Program::compile(graph));
  ThreadPool pool(std::max(1, std::min(4, ThreadPool::hardware_threads())));
  std::map<std::string, TensorStats> stats;
  const int passes = calibrator == Calibrator::kMinMax ? 1 : 2;
  for (int pass = 1; pass <= passes; ++pass) {
    for (size_t b = 0; b < batches.size(); ++b) {
      std::vector<Datum> inputs;
      for (const ir::Value* in : graph.inputs()) {
        auto it = batches[b].find(in->name());
        inputs.push_back(it == batches[b].end() ? Datum() : Datum(it->second));
      }
      auto run = exec::execute(*program, inputs, &pool);
      if (!run.is_ok()) return std::move(run).status().with_context(fmt::format("calibration batch {}", b));
      for (const auto& [name, slot] : slots) {
        const Datum& d = (*run)[slot];
        if (!d.is_tensor() || d.tensor().dtype() != DataType::kFloat32) continue;
        std::span<const float> values = d.tensor().span<float>();
        if (pass == 1) {
          KILN_RETURN_IF_ERROR(stats[name].observe_range(values, fmt::format("tensor '{}' (batch {})", name, b)));
        } else {
          stats[name].observe_histogram(values);
        }
      }
      if (progress) progress(pass, b + 1, batches.size());
    }
  }
  CalibrationTable table;
  table.calibrator = std::string(calibrator_name(calibrator));
  table.batches = static_cast<int64_t>(batches.size());
  for (const auto& [name, s] : stats) {
    // The model's own inputs and outputs keep their whole range: clipping an
    // output clips the result, and inputs are data, often discrete (pixels,
    // one-hot features), where a KL search over a sparse histogram finds
    // degenerate minima (one non-empty bin matches itself perfectly).
    const ir::Value* v = graph.find_value(name);
    const bool model_io = std::find(saved.begin(), saved.end(), v) != saved.end() || (v != nullptr && v->is_graph_input());
    if (s.count > 0) table.ranges[name] = choose_range(s, model_io ? Calibrator::kMinMax : calibrator);
  }
  return table;
}

Result<int64_t> insert_qdq(ir::Graph& graph, const QuantTargets& targets, const CalibrationTable& table) {
  // The layers whose input and output ranges the table has (read before the
  // activations' Q/DQ rewire the inputs).
  std::vector<ir::Node*> layers_to_quantize;
  for (const ir::Node* layer : targets.layers) {
    const ir::Value* out = layer_output(*layer);
    if (weight_out_axis(*layer) >= 0 && out != nullptr && table.ranges.count(layer->input(0)->name()) > 0 &&
        table.ranges.count(out->name()) > 0) {
      layers_to_quantize.push_back(const_cast<ir::Node*>(layer));
    }
  }
  // Activations: one Q/DQ pair per tensor, every reader moved to the DQ.
  for (const std::string& name : targets.tensors) {
    ir::Value* v = graph.find_value(name);
    auto it = table.ranges.find(name);
    if (v == nullptr || it == table.ranges.end()) continue;
    const QuantRange& r = it->second;
    // A model output moves to a new value written by its producer; the
    // DequantizeLinear then writes the output itself.
    ir::Value* src = v;
    if (v->is_graph_output()) {
      ir::Node* p = v->producer();
      if (p == nullptr) continue;
      KILN_ASSIGN_OR_RETURN(src, graph.add_value(graph.unique_name(name + "_float"), v->type()));
      p->set_output(static_cast<size_t>(v->producer_output()), src);
    }
    const std::vector<ir::Use> uses = v->uses();
    KILN_ASSIGN_OR_RETURN(ir::Value * scale,
                          graph.add_constant(graph.unique_name(name + "_scale"), Tensor::scalar(DataType::kFloat32, r.scale)));
    KILN_ASSIGN_OR_RETURN(ir::Value * zp, graph.add_constant(graph.unique_name(name + "_zero_point"),
                                                             Tensor::scalar(DataType::kUInt8, static_cast<uint8_t>(r.zero_point))));
    KILN_ASSIGN_OR_RETURN(ir::Value * q, graph.add_value(graph.unique_name(name + "_quantized"),
                                                         ir::ValueType::tensor(DataType::kUInt8, v->type().shape)));
    ir::Value* dq = v;
    if (src == v) {
      KILN_ASSIGN_OR_RETURN(dq, graph.add_value(graph.unique_name(name + "_dequantized"), v->type()));
    }
    ir::Node* qn = graph.add_node("QuantizeLinear", {src, scale, zp}, {q}, graph.unique_name(name + "_QuantizeLinear"));
    ir::Node* dn = graph.add_node("DequantizeLinear", {q, scale, zp}, {dq}, graph.unique_name(name + "_DequantizeLinear"));
    for (ir::Node* n : {qn, dn}) n->set_opset(std::max<int64_t>(13, graph.opset_imports().count("") ? graph.opset_imports().at("") : 13));
    if (src == v) {
      for (const ir::Use& u : uses) u.node->set_input(static_cast<size_t>(u.input_index), dq);
    }
  }
  // Weights: int8, symmetric, one scale per output channel.
  int64_t layers = 0;
  for (ir::Node* n : layers_to_quantize) {
    const int64_t axis = weight_out_axis(*n);
    const Tensor& w = *float_constant(n->input(1));
    const int64_t channels = w.dim(axis);
    int64_t inner = 1;
    for (int64_t d = axis + 1; d < w.rank(); ++d) inner *= w.dim(d);
    auto channel_of = [&](int64_t i) { return (i / inner) % channels; };
    Tensor scale = Tensor::empty(DataType::kFloat32, {channels});
    std::vector<float> amax(static_cast<size_t>(channels), 0.0f);
    for (int64_t i = 0; i < w.numel(); ++i) {
      float& a = amax[static_cast<size_t>(channel_of(i))];
      a = std::max(a, std::fabs(w.data<float>()[i]));
    }
    for (int64_t c = 0; c < channels; ++c) {
      const float a = amax[static_cast<size_t>(c)];
      scale.data<float>()[c] = a > 0 && std::isfinite(a) ? a / 127.0f : 1.0f;
    }
    Tensor wq = Tensor::empty(DataType::kInt8, w.dims());
    for (int64_t i = 0; i < w.numel(); ++i) {
      const float s = scale.data<float>()[channel_of(i)];
      wq.data<int8_t>()[i] = static_cast<int8_t>(std::clamp(std::nearbyint(w.data<float>()[i] / s), -127.0f, 127.0f));
    }
    Tensor wz = Tensor::empty(DataType::kInt8, {channels});
    for (int8_t& z : wz.span<int8_t>()) z = 0;
    const std::string base = n->input(1)->name();
    KILN_ASSIGN_OR_RETURN(ir::Value * wv, graph.add_constant(graph.unique_name(base + "_int8"), std::move(wq)));
    KILN_ASSIGN_OR_RETURN(ir::Value * sv, graph.add_constant(graph.unique_name(base + "_scale"), std::move(scale)));
    KILN_ASSIGN_OR_RETURN(ir::Value * zv, graph.add_constant(graph.unique_name(base + "_zero_point"), std::move(wz)));
    KILN_ASSIGN_OR_RETURN(ir::Value * dq, graph.add_value(graph.unique_name(base + "_dequantized"), n->input(1)->type()));
    ir::Node* dn = graph.add_node("DequantizeLinear", {wv, sv, zv}, {dq}, graph.unique_name(base + "_DequantizeLinear"));
    dn->set_opset(std::max<int64_t>(13, graph.opset_imports().count("") ? graph.opset_imports().at("") : 13));
    dn->set_attr(ir::Attribute::make_int("axis", axis));
    n->set_input(1, dq);
    ++layers;
  }
  KILN_RETURN_IF_ERROR(graph.topo_sort());
  return layers;
}

}  // namespace kiln::quant
