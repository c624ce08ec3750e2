#include "server/gpu_model.h"

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
using backends::cuda::GpuOptions;

// One instance: its own engine (plans, buffers, stream) on its device.
class GpuInstance final : public BackendInstance {
 public:
  GpuInstance(std::shared_ptr<const ir::Model> model, std::unique_ptr<GpuEngine> engine)
      : model_(std::move(model)), engine_(std::move(engine)) {}
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
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> results, engine_->run(inputs));
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
  std::shared_ptr<const ir::Model> model_;  // outlives engine_, which points into its graph
  std::unique_ptr<GpuEngine> engine_;
  Status failed_;
};

class CudaModel final : public GpuModel {
 public:
  CudaModel(std::shared_ptr<const ir::Model> model, GpuOptions options)
      : model_(std::move(model)), options_(std::move(options)) {}

  std::unique_ptr<BackendInstance> create_instance(int device) const override {
    GpuOptions o = options_;
    o.device = device;
    auto engine = GpuEngine::create(*model_->graph, o);
    if (!engine.is_ok()) return std::make_unique<GpuInstance>(engine.status());
    return std::make_unique<GpuInstance>(model_, std::move(engine).value());
  }

 private:
  std::shared_ptr<const ir::Model> model_;
  GpuOptions options_;
};

// The graph the engines run: the optimizer's output when the GPU engine
// supports every node of it, else the graph as imported.
Result<std::shared_ptr<const ir::Model>> gpu_graph(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(ir::Model model, onnx::import_model_file(path));
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

Result<std::shared_ptr<const GpuModel>> GpuModel::load(const std::string& path, const inference::ModelConfig& config,
                                                       std::map<std::string, Dims> input_shapes) {
  KILN_ASSIGN_OR_RETURN(std::string precision, gpu_precision(config));
  GpuOptions options;
  KILN_ASSIGN_OR_RETURN(options.precision, backends::cuda::parse_precision(precision));
  options.input_shapes = std::move(input_shapes);
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const ir::Model> model, gpu_graph(path));
  return std::shared_ptr<const GpuModel>(std::make_shared<CudaModel>(std::move(model), std::move(options)));
}

#else

Result<std::shared_ptr<const GpuModel>> GpuModel::load(const std::string& path, const inference::ModelConfig& config,
                                                       std::map<std::string, Dims>) {
  return unimplemented("model '{}' ({}): KIND_GPU instances need the CUDA backend, and this build of Kiln has none",
                       config.name(), path);
}

#endif

}  // namespace kiln::server
