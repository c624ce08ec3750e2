#include "server/gpu_model.h"

#include <map>
#include <mutex>

#include "core/error.h"

#ifdef KILN_HAVE_CUDA
#include "backends/cuda/engine.h"
#include "core/logging.h"
#include "onnx/importer.h"
#include "passes/pipeline.h"
#include "server/model_config.h"
#endif

namespace kiln::server {

#ifdef KILN_HAVE_CUDA
namespace {

using backends::cuda::GpuEngine;
using backends::cuda::GpuExecutionContext;
using backends::cuda::GpuOptions;

// One instance: the default context of its device's engine (the first
// instance there) or a context of its own; either way its own stream,
// workspace and activations over the engine's shared plans and weights.
class GpuInstance final : public BackendInstance {
 public:
  GpuInstance(std::shared_ptr<const ir::Model> model, std::shared_ptr<GpuEngine> engine,
              std::unique_ptr<GpuExecutionContext> context)
      : model_(std::move(model)), engine_(std::move(engine)), context_(std::move(context)) {}
  explicit GpuInstance(Status failed) : failed_(std::move(failed)) {}

  Status ready() const override { return failed_; }

  Result<NamedTensors> run(const NamedTensors& feeds, const std::vector<std::string>& outputs) override {
    if (engine_ == nullptr) return failed_;
    const ir::Graph& graph = *model_->graph;
    std::vector<Tensor> inputs;
    inputs.reserve(graph.inputs().size());
    for (const ir::Value* in : graph.inputs()) {
      const Tensor* fed = nullptr;
      for (const auto& [name, tensor] : feeds) {
        if (name == in->name()) fed = &tensor;
      }
      if (fed != nullptr) {
        inputs.push_back(*fed);
      } else if (in->is_constant()) {  // an input with a default (initializer) value
        inputs.push_back(in->constant());
      } else {
        return invalid_argument("input '{}' is missing", in->name());
      }
    }
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> results, context_ ? context_->run(inputs) : engine_->run(inputs));
    const auto& gout = graph.outputs();
    if (results.size() != gout.size()) {
      return internal_error("GPU engine returned {} outputs, the model has {}", results.size(), gout.size());
    }
    NamedTensors out;
    if (outputs.empty()) {
      for (size_t i = 0; i < gout.size(); ++i) out.emplace_back(gout[i]->name(), std::move(results[i]));
      return out;
    }
    for (const std::string& name : outputs) {
      size_t i = 0;
      while (i < gout.size() && gout[i]->name() != name) ++i;
      if (i == gout.size()) return invalid_argument("the model has no output '{}'", name);
      out.emplace_back(name, results[i]);
    }
    return out;
  }

 private:
  std::shared_ptr<const ir::Model> model_;  // outlives the engine and context, which point into its graph
  std::shared_ptr<GpuEngine> engine_;
  std::unique_ptr<GpuExecutionContext> context_;  // null: the engine's default context
  Status failed_;
};

// One engine per device (plans and weights once per GPU), created with the
// device's first instance, which runs on the engine's default context.
class CudaModel final : public GpuModel {
 public:
  CudaModel(std::shared_ptr<const ir::Model> model, GpuOptions options)
      : model_(std::move(model)), options_(std::move(options)) {}

  std::unique_ptr<BackendInstance> create_instance(int device) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = engines_.find(device);
    if (it == engines_.end()) {
      GpuOptions o = options_;
      o.device = device;
      auto engine = GpuEngine::create(*model_->graph, o);
      if (!engine.is_ok()) return std::make_unique<GpuInstance>(engine.status());
      std::shared_ptr<GpuEngine> shared = std::move(engine).value();
      engines_.emplace(device, shared);
      return std::make_unique<GpuInstance>(model_, std::move(shared), nullptr);
    }
    auto context = it->second->create_context();
    if (!context.is_ok()) return std::make_unique<GpuInstance>(context.status());
    return std::make_unique<GpuInstance>(model_, it->second, std::move(context).value());
  }

 private:
  std::shared_ptr<const ir::Model> model_;
  GpuOptions options_;
  mutable std::mutex mu_;
  mutable std::map<int, std::shared_ptr<GpuEngine>> engines_;  // by device, guarded by mu_
};

// The graph the engines run: the optimizer's output when the GPU engine
// supports every node of it, else the graph as imported.
Result<std::shared_ptr<const ir::Model>> gpu_graph(ir::Model model, const std::string& path) {
  passes::PipelineOptions po;
  // IR versions before 4 list every initializer as a graph input; those are weights.
  po.initializer_inputs_are_constant = model.ir_version > 0 && model.ir_version < 4;
  auto optimized = passes::optimize(*model.graph, po);
  Status supported = optimized.is_ok() ? backends::cuda::check_graph_supported(*model.graph) : optimized.status();
  if (supported.is_ok()) return std::make_shared<const ir::Model>(std::move(model));
  KILN_LOG_WARN("{}: the GPU engine cannot run the optimized graph ({}); using the graph as imported", path,
                supported.message());
  KILN_ASSIGN_OR_RETURN(ir::Model plain, onnx::import_model_file(path));
  KILN_RETURN_IF_ERROR(backends::cuda::check_graph_supported(*plain.graph).with_context("GPU engine"));
  return std::make_shared<const ir::Model>(std::move(plain));
}

}  // namespace

Result<std::shared_ptr<const GpuModel>> GpuModel::load(ir::Model model, const std::string& path,
                                                       const inference::ModelConfig& config,
                                                       std::map<std::string, Dims> input_shapes) {
  KILN_ASSIGN_OR_RETURN(std::string precision, gpu_precision(config));
  GpuOptions options;
  KILN_ASSIGN_OR_RETURN(options.precision, backends::cuda::parse_precision(precision));
  options.input_shapes = std::move(input_shapes);
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const ir::Model> graph, gpu_graph(std::move(model), path));
  return std::shared_ptr<const GpuModel>(std::make_shared<CudaModel>(std::move(graph), std::move(options)));
}

#else

Result<std::shared_ptr<const GpuModel>> GpuModel::load(ir::Model, const std::string& path,
                                                       const inference::ModelConfig& config,
                                                       std::map<std::string, Dims>) {
  return unimplemented("model '{}' ({}): KIND_GPU instances need the CUDA backend, and this build of Kiln has none",
                       config.name(), path);
}

#endif

}  // namespace kiln::server
