#include "kiln/session.h"

#include <fmt/format.h>

#include <map>
#include <mutex>
#include <set>

#include "core/datum.h"
#include "core/error.h"
#include "onnx/exporter.h"
#include "onnx/importer.h"
#include "ops/epilogue.h"
#include "passes/pipeline.h"
#include "plan/builder.h"
#include "plan/plan_file.h"
#include "runtime/engine.h"

namespace kiln {

// An ONNX model whose inputs have dynamic dims cannot have its tactics timed
// or its memory planned until the shapes are known. Such a session runs each
// new combination of input shapes on a plan built for exactly those shapes
// (the first run at a shape pays for the build, like a TensorRT engine per
// shape or OpenVINO's per-shape compilation). Only the first
// kMaxSpecialized shapes get a plan: a workload whose shapes keep changing
// (every sequence length of a text model) must not pay for a build on every
// run. `engine`, built without timing for any shape, runs the others,
// whatever cannot be specialized, and reports bad feeds.
struct Session::Impl {
  static constexpr size_t kMaxSpecialized = 8;

  std::shared_ptr<runtime::Engine> engine;
  std::vector<IoInfo> inputs;
  std::vector<IoInfo> outputs;

  // Set for an ONNX model with dynamic input dims: the model to build again per shape.
  std::string model_bytes;
  std::string model_name;
  plan::BuildOptions build_options;
  runtime::EngineOptions engine_options;
  std::mutex mu;  // guards the two below; held while a shape's plan builds
  std::map<std::string, std::shared_ptr<runtime::Engine>> specialized;  // by the feeds' names and dims
  std::set<std::string> unbuildable;  // shapes whose build failed: the generic engine answers

  // The engine to run `feeds` on.
  std::shared_ptr<runtime::Engine> engine_for(const NamedData& feeds);
};

std::shared_ptr<runtime::Engine> Session::Impl::engine_for(const NamedData& feeds) {
  if (model_bytes.empty()) return engine;
  plan::ShapeSpec shapes;
  std::string key;
  for (const auto& [name, datum] : feeds) {
    if (!datum.is_tensor()) return engine;
    const Dims& dims = datum.tensor().dims();
    shapes[name] = dims;
    key += name + ":" + dims_to_string(dims) + ";";
  }
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = specialized.find(key); it != specialized.end()) return it->second;
  if (unbuildable.count(key) != 0 || specialized.size() >= kMaxSpecialized) return engine;
  auto built = [&]() -> Result<std::shared_ptr<runtime::Engine>> {
    KILN_ASSIGN_OR_RETURN(ir::Model model, onnx::import_model_bytes(model_bytes, "", model_name));
    plan::BuildOptions bo = build_options;
    bo.shapes = shapes;
    KILN_ASSIGN_OR_RETURN(plan::Plan p, plan::build(std::move(model), bo));
    return runtime::Engine::create_from_plan(std::move(p), engine_options);
  }();
  if (!built.is_ok()) {
    if (unbuildable.size() < 64) unbuildable.insert(key);
    return engine;
  }
  specialized.emplace(key, *built);
  return *built;
}

namespace {

IoKind kind_of(ir::ValueType::Kind k) {
  switch (k) {
    case ir::ValueType::Kind::kTensor:
      return IoKind::kTensor;
    case ir::ValueType::Kind::kSequence:
      return IoKind::kSequence;
    case ir::ValueType::Kind::kOptional:
      return IoKind::kOptional;
    case ir::ValueType::Kind::kMap:
      return IoKind::kMap;
    default:
      return IoKind::kUnknown;
  }
}

IoInfo to_info(const runtime::IoBinding& b) {
  IoInfo info;
  info.name = b.name;
  info.kind = kind_of(b.type.kind);
  info.type = b.type.ort_type_name();
  info.optional = b.optional;
  // The tensor described by dtype/dims: the value itself, or the tensor inside a sequence/optional.
  const ir::ValueType* t = &b.type;
  while ((t->kind == ir::ValueType::Kind::kSequence || t->kind == ir::ValueType::Kind::kOptional) && t->elem) {
    t = t->elem.get();
  }
  info.dtype = t->kind == ir::ValueType::Kind::kTensor ? t->dtype : b.dtype;
  const Shape& shape = t->kind == ir::ValueType::Kind::kTensor ? t->shape : b.shape;
  info.rank_known = shape.rank_known();
  for (const Dim& d : shape.dims()) {
    info.dims.push_back(d.known() ? d.value : -1);
    info.dim_names.push_back(d.symbol);
  }
  return info;
}

Result<std::unique_ptr<Session::Impl>> finish_impl(Result<std::shared_ptr<runtime::Engine>> engine,
                                                   const std::string& source) {
  if (!engine.is_ok()) return source.empty() ? engine.status() : engine.status().with_context(source);
  auto impl = std::make_unique<Session::Impl>();
  impl->engine = std::move(engine).value();
  for (const auto& b : impl->engine->inputs()) impl->inputs.push_back(to_info(b));
  for (const auto& b : impl->engine->outputs()) impl->outputs.push_back(to_info(b));
  return impl;
}

// True if a tensor input of `graph` has an unknown rank or dim.
bool has_dynamic_tensor_inputs(const ir::Graph& graph) {
  for (const ir::Value* v : graph.inputs()) {
    if (v->is_constant()) continue;
    const ir::ValueType& t = v->type();
    if (!t.is_tensor()) return false;  // sequences and optionals run on the generic engine
    if (!t.shape.rank_known()) return true;
    for (const Dim& d : t.shape.dims()) {
      if (!d.known()) return true;
    }
  }
  return false;
}

// An imported model: built into a plan with default options, or run as is.
Result<std::unique_ptr<Session::Impl>> make_impl(ir::Model model, const SessionOptions& options) {
  runtime::EngineOptions eo;
  eo.threads = options.threads;
  std::string source = model.source_path;
  if (!options.build || !options.passes.empty()) {
    eo.passes = options.passes;
    return finish_impl(runtime::Engine::create(std::move(model), eo), source);
  }
  plan::BuildOptions bo;
  bo.threads = options.threads;
  bo.time_tactics = options.time_tactics && !plan::skip_timing_requested();
  // Tactics are timed as `kiln build` times them (BuildOptions' warm-up and
  // repeats): with one warm-up and three repeats the choices followed a
  // noisy machine's swings (three sessions of mobilenetv2 at batch 1 ran
  // 4.64-4.87 ms in one interleaved run).
  // Dynamic tensor inputs: keep the model to build it again per run-time shape.
  std::string bytes;
  if (model.graph != nullptr && has_dynamic_tensor_inputs(*model.graph)) {
    auto exported = onnx::export_model_bytes(model);
    if (exported.is_ok()) bytes = std::move(exported).value();
  }
  const std::string name = source.empty() ? "<model>" : source;
  plan::BuildOptions generic = bo;
  if (!bytes.empty()) generic.time_tactics = false;  // nothing to time it on
  auto built = plan::build(std::move(model), generic);
  if (!built.is_ok()) return source.empty() ? built.status() : built.status().with_context(source);
  auto impl = finish_impl(runtime::Engine::create_from_plan(std::move(built).value(), eo), source);
  if (impl.is_ok() && !bytes.empty()) {
    (*impl)->model_bytes = std::move(bytes);
    (*impl)->model_name = name;
    (*impl)->build_options = bo;
    (*impl)->engine_options = eo;
  }
  return impl;
}

Result<std::unique_ptr<Session::Impl>> make_impl_from_plan(plan::Plan plan, const SessionOptions& options) {
  runtime::EngineOptions eo;
  eo.threads = options.threads;
  std::string source = plan.model.source_path;
  return finish_impl(runtime::Engine::create_from_plan(std::move(plan), eo), source);
}

}  // namespace

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

Result<std::unique_ptr<Session>> Session::open(const std::string& path, const SessionOptions& options) {
  if (plan::is_plan_file(path)) {
    KILN_ASSIGN_OR_RETURN(plan::Plan p, plan::load_plan(path));
    KILN_ASSIGN_OR_RETURN(auto impl, make_impl_from_plan(std::move(p), options));
    return std::unique_ptr<Session>(new Session(std::move(impl)));
  }
  KILN_ASSIGN_OR_RETURN(ir::Model model, onnx::import_model_file(path));
  KILN_ASSIGN_OR_RETURN(auto impl, make_impl(std::move(model), options));
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

Result<std::unique_ptr<Session>> Session::from_bytes(std::string_view bytes, const SessionOptions& options,
                                                     const std::string& name) {
  KILN_ASSIGN_OR_RETURN(ir::Model model, onnx::import_model_bytes(bytes, "", name));
  KILN_ASSIGN_OR_RETURN(auto impl, make_impl(std::move(model), options));
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

Result<std::unique_ptr<Session>> Session::from_model(ir::Model model, const SessionOptions& options) {
  KILN_ASSIGN_OR_RETURN(auto impl, make_impl(std::move(model), options));
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

const std::vector<IoInfo>& Session::inputs() const { return impl_->inputs; }
const std::vector<IoInfo>& Session::outputs() const { return impl_->outputs; }
int64_t Session::opset() const { return impl_->engine->model().opset(""); }

std::vector<std::string> optimizer_pass_names() { return passes::pipeline_pass_names(); }

std::vector<LayerInfo> Session::layers() const {
  std::vector<LayerInfo> out;
  for (const auto& n : impl_->engine->model().graph->nodes()) {
    LayerInfo l;
    l.name = n->name();
    l.op = n->domain().empty() ? n->op_type() : n->domain() + "." + n->op_type();
    l.fused_from = n->attr_strings(ops::kFusedFromAttr);
    out.push_back(std::move(l));
  }
  return out;
}

Result<NamedTensors> Session::run(const NamedTensors& feeds, const std::vector<std::string>& output_names) const {
  if (impl_->model_bytes.empty()) return impl_->engine->run(feeds, output_names);
  NamedData data;
  for (const auto& [name, t] : feeds) data.emplace_back(name, Datum(t));
  return impl_->engine_for(data)->run(feeds, output_names);
}

Result<NamedData> Session::run_data(const NamedData& feeds, const std::vector<std::string>& output_names) const {
  return impl_->engine_for(feeds)->run_data(feeds, output_names);
}

}  // namespace kiln
