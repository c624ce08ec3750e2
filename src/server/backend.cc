#include "server/backend.h"

#include <charconv>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "core/logging.h"
#include "onnx/importer.h"
#include "plan/builder.h"
#include "plan/plan_file.h"
#include "runtime/engine.h"
#include "server/gpu_model.h"
#include "server/model_config.h"
#include "server/python_backend.h"
#include "server/torch_backend.h"

namespace kiln::server {
namespace {

TensorSpec make_spec(const std::string& name, DataType dtype, const Shape& shape, bool optional) {
  TensorSpec spec;
  spec.name = name;
  spec.dtype = dtype;
  spec.optional = optional;
  spec.rank_known = shape.rank_known();
  if (spec.rank_known) {
    for (const Dim& d : shape.dims()) spec.dims.push_back(d.known() ? d.value : -1);
  }
  return spec;
}

TensorSpec spec_of(const runtime::IoBinding& io) { return make_spec(io.name, io.dtype, io.shape, io.optional); }

// The tensor inputs and outputs as the model file declares them (the engine
// lists the same values; a plan may fix dims the model leaves open).
struct DeclaredIo {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

DeclaredIo declared_io(const ir::Graph& graph) {
  DeclaredIo io;
  auto add = [](const ir::Value* v, std::vector<TensorSpec>& specs) {
    if (v->type().is_tensor())
      specs.push_back(make_spec(v->name(), v->type().dtype, v->type().shape, v->is_constant()));
  };
  for (const ir::Value* v : graph.inputs()) add(v, io.inputs);
  for (const ir::Value* v : graph.outputs()) add(v, io.outputs);
  return io;
}

class EngineInstance final : public BackendInstance {
 public:
  explicit EngineInstance(std::unique_ptr<runtime::ExecutionContext> context) : context_(std::move(context)) {}
  Result<NamedTensors> run(const NamedTensors& feeds, const std::vector<std::string>& outputs) override {
    return context_->run(feeds, outputs);
  }

 private:
  std::unique_ptr<runtime::ExecutionContext> context_;
};

// An instance that could not be created: ready() says why.
class FailedInstance final : public BackendInstance {
 public:
  explicit FailedInstance(Status why) : why_(std::move(why)) {}
  Result<NamedTensors> run(const NamedTensors&, const std::vector<std::string>&) override { return why_; }
  Status ready() const override { return why_; }

 private:
  Status why_;
};

// A model run by the runtime's Engine (shared, immutable) with one
// ExecutionContext per CPU instance, and by a GpuEngine per GPU instance
// (`gpu`). Either may be null when no instance needs it.
class EngineBackend final : public ModelBackend {
 public:
  // `declared`: the model's own dims, shown instead of the plan's (a plan
  // built for one batch size still serves a variable batch dimension).
  EngineBackend(std::shared_ptr<runtime::Engine> engine, std::string path, const DeclaredIo* declared = nullptr,
                std::shared_ptr<const GpuModel> gpu = nullptr)
      : engine_(std::move(engine)), gpu_(std::move(gpu)), path_(std::move(path)) {
    if (engine_ == nullptr) {  // GPU instances only: the model's own inputs and outputs
      if (declared != nullptr) {
        inputs_ = declared->inputs;
        outputs_ = declared->outputs;
      }
      return;
    }
    auto add = [](const runtime::IoBinding& io, const std::vector<TensorSpec>* model, std::vector<TensorSpec>& specs) {
      TensorSpec spec = spec_of(io);
      if (model != nullptr) {
        for (const TensorSpec& m : *model) {
          if (m.name == io.name && m.rank_known) spec.dims = m.dims;
        }
      }
      specs.push_back(std::move(spec));
    };
    for (const auto& io : engine_->inputs()) {
      if (io.is_tensor) add(io, declared != nullptr ? &declared->inputs : nullptr, inputs_);
    }
    for (const auto& io : engine_->outputs()) {
      if (io.is_tensor) add(io, declared != nullptr ? &declared->outputs : nullptr, outputs_);
    }
  }
  const std::vector<TensorSpec>& inputs() const override { return inputs_; }
  const std::vector<TensorSpec>& outputs() const override { return outputs_; }
  const std::string& path() const override { return path_; }
  std::unique_ptr<BackendInstance> create_instance(const InstancePlacement& where) const override {
    if (where.gpu) {
      if (gpu_ == nullptr) return std::make_unique<FailedInstance>(internal_error("the model was not loaded for GPUs"));
      return gpu_->create_instance(where.device);
    }
    if (engine_ == nullptr)
      return std::make_unique<FailedInstance>(internal_error("the model was not loaded for CPUs"));
    return std::make_unique<EngineInstance>(engine_->create_context());
  }

 private:
  std::shared_ptr<runtime::Engine> engine_;
  std::shared_ptr<const GpuModel> gpu_;
  std::string path_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
};

Result<int> thread_count(const inference::ModelConfig& config) {
  return int_parameter(config, "intra_op_thread_count", 0, 1024, 0);
}

// Whether the model's plan times its candidate kernels: on unless the config
// parameter kiln_time_tactics or the environment variable KILN_SKIP_TIMING says otherwise.
bool time_tactics(const inference::ModelConfig& config) {
  if (plan::skip_timing_requested()) return false;
  return bool_parameter(config, "kiln_time_tactics", true);
}

// The shape profile of the model's plan: a batch dimension (max_batch_size
// > 0) from 1 to max_batch_size, timed at max_batch_size; every other dim
// from the model, or from the config where the model leaves it open. False
// when a dim stays unknown: the plan is then built for any shape, untimed.
bool batch_profile(const ir::Graph& graph, const DeclaredIo& declared, const inference::ModelConfig& config,
                   plan::BuildOptions& bo) {
  int64_t max_batch = config.max_batch_size();
  // A config without inputs and outputs is completed later, by
  // complete_config's rule: kDefaultMaxBatchSize when batching is possible.
  if (max_batch == 0 && config.input_size() == 0 && config.output_size() == 0 &&
      batching_possible(declared.inputs, declared.outputs)) {
    max_batch = kDefaultMaxBatchSize;
  }
  for (const ir::Value* v : graph.inputs()) {
    if (v->is_constant()) continue;
    const ir::ValueType& t = v->type();
    if (!t.is_tensor() || !t.shape.rank_known()) return false;
    std::vector<int64_t> config_dims;
    for (const auto& in : config.input()) {
      if (in.name() == v->name() && !in.has_reshape()) config_dims.assign(in.dims().begin(), in.dims().end());
    }
    const size_t rank = t.shape.rank();
    const size_t skip = max_batch > 0 ? 1 : 0;  // config dims leave the batch dim out
    if (config_dims.size() + skip != rank) config_dims.clear();
    Dims min, max;
    for (size_t i = 0; i < rank; ++i) {
      const Dim& d = t.shape[i];
      if (i == 0 && max_batch > 0 && !d.known()) {
        min.push_back(1);
        max.push_back(max_batch);
        continue;
      }
      int64_t value = d.known() ? d.value : -1;
      if (value < 0 && !config_dims.empty()) value = config_dims[i - skip];
      if (value < 0) return false;
      min.push_back(value);
      max.push_back(value);
    }
    bo.min_shapes[v->name()] = min;
    bo.opt_shapes[v->name()] = max;
    bo.max_shapes[v->name()] = max;
  }
  return true;
}

// An ONNX model's engine: the optimizer's passes and one chosen kernel per
// layer (a plan), or the reference interpreter when the plan cannot be
// built (logged; the model still loads and answers).
Result<std::shared_ptr<runtime::Engine>> onnx_engine(ir::Model model, const DeclaredIo& declared,
                                                     const inference::ModelConfig& config,
                                                     const runtime::EngineOptions& options, const std::string& path) {
  plan::BuildOptions bo;
  bo.threads = options.threads;
  bo.warmup = 1;
  bo.repeats = 3;
  const bool profiled = batch_profile(*model.graph, declared, config, bo);
  if (!profiled) bo.min_shapes = bo.opt_shapes = bo.max_shapes = {};
  bo.time_tactics = profiled && time_tactics(config);
  plan::BuildReport report;
  auto built = plan::build(std::move(model), bo, &report);
  if (built.is_ok()) {
    KILN_LOG_INFO("{}: built a plan of {} layers ({} timed in {:.1f} s)", path, report.layers, report.timed_nodes,
                  report.tactic_seconds);
    return runtime::Engine::create_from_plan(std::move(built).value(), options);
  }
  KILN_LOG_WARN("{}: no plan ({}); running it on the reference interpreter", path, built.status().message());
  KILN_ASSIGN_OR_RETURN(ir::Model again, onnx::import_model_file(path));  // the build consumed the first
  return runtime::Engine::create(std::move(again), options);
}

}  // namespace

Result<std::shared_ptr<const ModelBackend>> load_backend(const std::string& version_dir,
                                                         const inference::ModelConfig& config, InferFn infer) {
  if (config.backend() == "python") {
    std::filesystem::path dir(version_dir);
    int64_t version = 0;
    std::string leaf = dir.filename().string();
    std::from_chars(leaf.data(), leaf.data() + leaf.size(), version);
    return load_python_backend(dir.parent_path().string(), version, config, std::move(infer));
  }
  if (config.backend() == "pytorch") return load_torch_backend(version_dir, config);
  std::string filename = config.default_model_filename().empty() ? "model.onnx" : config.default_model_filename();
  if (filename.find('/') != std::string::npos || filename == ".." || filename == ".") {
    return invalid_argument("default_model_filename '{}' must be a file name, not a path", filename);
  }
  std::filesystem::path path = std::filesystem::path(version_dir) / filename;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) path /= "model.onnx";  // Triton's model.onnx/ folder layout
  if (!std::filesystem::is_regular_file(path, ec)) {
    return not_found("model file '{}' not found", path.string());
  }
  KILN_ASSIGN_OR_RETURN(int threads, thread_count(config));
  runtime::EngineOptions options;
  options.threads = threads;
  bool want_cpu = config.instance_group_size() == 0;
  bool want_gpu = false;
  for (const auto& group : config.instance_group()) {
    (group.kind() == inference::ModelInstanceGroup::KIND_GPU ? want_gpu : want_cpu) = true;
  }
  if (plan::is_plan_file(path.string())) {  // built ahead of time with `kiln build`
    if (want_gpu) {
      return unimplemented(
          "model '{}': '{}' is a Kiln plan file, which runs on the CPU; serve the ONNX model for KIND_GPU instances",
          config.name(), path.string());
    }
    KILN_ASSIGN_OR_RETURN(plan::Plan plan, plan::load_plan(path.string()));
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<runtime::Engine> engine,
                          runtime::Engine::create_from_plan(std::move(plan), options));
    return std::shared_ptr<const ModelBackend>(std::make_shared<EngineBackend>(std::move(engine), path.string()));
  }
  KILN_ASSIGN_OR_RETURN(ir::Model model, onnx::import_model_file(path.string()));
  const DeclaredIo declared = declared_io(*model.graph);
  std::shared_ptr<const GpuModel> gpu;
  if (want_gpu) {
    // The engines plan at load for the batch profile's largest shapes where every dim is known.
    plan::BuildOptions bo;
    std::map<std::string, Dims> shapes;
    if (batch_profile(*model.graph, declared, config, bo)) shapes = bo.max_shapes;
    ir::Model for_gpu;
    if (want_cpu) {  // the CPU plan's build consumes `model`
      KILN_ASSIGN_OR_RETURN(for_gpu, onnx::import_model_file(path.string()));
    } else {
      for_gpu = std::move(model);
    }
    KILN_ASSIGN_OR_RETURN(gpu, GpuModel::load(std::move(for_gpu), path.string(), config, std::move(shapes)));
  }
  std::shared_ptr<runtime::Engine> engine;
  if (want_cpu) {
    KILN_ASSIGN_OR_RETURN(engine, onnx_engine(std::move(model), declared, config, options, path.string()));
  }
  return std::shared_ptr<const ModelBackend>(
      std::make_shared<EngineBackend>(std::move(engine), path.string(), &declared, std::move(gpu)));
}

}  // namespace kiln::server
