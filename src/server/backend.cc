#include "server/backend.h"

#include <charconv>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "onnx/importer.h"
#include "runtime/engine.h"
#include "server/python_backend.h"

namespace kiln::server {
namespace {

TensorSpec spec_of(const runtime::IoBinding& io) {
  TensorSpec spec;
  spec.name = io.name;
  spec.dtype = io.dtype;
  spec.optional = io.optional;
  spec.rank_known = io.shape.rank_known();
  if (spec.rank_known) {
    for (const Dim& d : io.shape.dims()) spec.dims.push_back(d.known() ? d.value : -1);
  }
  return spec;
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

// A model run by the runtime's Engine (shared, immutable) with one
// ExecutionContext per instance.
class EngineBackend final : public ModelBackend {
 public:
  EngineBackend(std::shared_ptr<runtime::Engine> engine, std::string path)
      : engine_(std::move(engine)), path_(std::move(path)) {
    for (const auto& io : engine_->inputs()) {
      if (io.is_tensor) inputs_.push_back(spec_of(io));
    }
    for (const auto& io : engine_->outputs()) {
      if (io.is_tensor) outputs_.push_back(spec_of(io));
    }
  }
  const std::vector<TensorSpec>& inputs() const override { return inputs_; }
  const std::vector<TensorSpec>& outputs() const override { return outputs_; }
  const std::string& path() const override { return path_; }
  std::unique_ptr<BackendInstance> create_instance() const override {
    return std::make_unique<EngineInstance>(engine_->create_context());
  }

 private:
  std::shared_ptr<runtime::Engine> engine_;
  std::string path_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
};

Result<int> thread_count(const inference::ModelConfig& config) {
  auto it = config.parameters().find("intra_op_thread_count");
  if (it == config.parameters().end()) return 0;
  const std::string& s = it->second.string_value();
  int value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size() || value < 0 || value > 1024) {
    return invalid_argument("parameter intra_op_thread_count must be an integer in [0, 1024], got '{}'", s);
  }
  return value;
}

}  // namespace

Result<std::shared_ptr<const ModelBackend>> load_backend(const std::string& version_dir,
                                                         const inference::ModelConfig& config) {
  if (config.backend() == "python") {
    std::filesystem::path dir(version_dir);
    int64_t version = 0;
    std::string leaf = dir.filename().string();
    std::from_chars(leaf.data(), leaf.data() + leaf.size(), version);
    return load_python_backend(dir.parent_path().string(), version, config);
  }
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
  KILN_ASSIGN_OR_RETURN(ir::Model model, onnx::import_model_file(path.string()));
  runtime::EngineOptions options;
  options.threads = threads;
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<runtime::Engine> engine, runtime::Engine::create(std::move(model), options));
  return std::shared_ptr<const ModelBackend>(std::make_shared<EngineBackend>(std::move(engine), path.string()));
}

}  // namespace kiln::server
