#include "server/model_config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "core/error.h"
#include "server/sequence_state.h"
#include "server/types.h"

namespace kiln::server {
namespace {

// Collects the text-format parser's first error with its line and column.
class ParseErrors final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column, const std::string& message) override {
    if (first_.empty()) first_ = fmt::format("line {}, column {}: {}", line + 1, column + 1, message);
  }
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

template <class T>
void fill_dims(T* io, const TensorSpec& spec, bool batching) {
  std::vector<int64_t> dims = spec.dims;
  if (batching && !dims.empty()) dims.erase(dims.begin());
  if (!spec.rank_known) dims = {-1};
  if (dims.empty()) {
    io->add_dims(1);
    io->mutable_reshape();  // Triton's idiom for a scalar per batch item
  } else {
    for (int64_t d : dims) io->add_dims(d);
  }
}

const TensorSpec* find_spec(const std::vector<TensorSpec>& specs, const std::string& name) {
  for (const TensorSpec& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// The model-side shape a config tensor feeds: reshape.shape if present, else dims.
template <class T>
std::vector<int64_t> model_side_dims(const T& io) {
  if (io.has_reshape()) return {io.reshape().shape().begin(), io.reshape().shape().end()};
  return {io.dims().begin(), io.dims().end()};
}

template <class T>
Status check_tensor(const T& io, const TensorSpec* spec, int max_batch_size, const char* kind) {
  if (spec == nullptr) return invalid_argument("{} '{}' in the config is not a {} of the model", kind, io.name(), kind);
  std::optional<DataType> dtype = dtype_from_config(io.data_type());
  if (!dtype) {
    return invalid_argument("{} '{}': unsupported data_type {}", kind, io.name(),
                            inference::DataType_Name(io.data_type()));
  }
  if (*dtype != spec->dtype) {
    return invalid_argument("{} '{}': config data_type {} but the model has {}", kind, io.name(),
                            inference::DataType_Name(io.data_type()), data_type_name(spec->dtype));
  }
  if (io.dims_size() == 0) return invalid_argument("{} '{}': dims must not be empty", kind, io.name());
  for (int64_t d : io.dims()) {
    if (d < -1) return invalid_argument("{} '{}': dim {} is invalid (use -1 for a variable dim)", kind, io.name(), d);
  }
  if (!spec->rank_known) return Status::ok();
  std::vector<int64_t> dims = model_side_dims(io);
  if (max_batch_size > 0) {
    if (spec->dims.empty() || spec->dims[0] >= 0) {
      return invalid_argument(
          "{} '{}': max_batch_size is {} but the model's first dimension {} is not a variable-size batch dimension",
          kind, io.name(), max_batch_size,
          spec->dims.empty() ? std::string("(scalar)") : std::to_string(spec->dims[0]));
    }
    dims.insert(dims.begin(), -1);
  }
  if (dims.size() != spec->dims.size()) {
    return invalid_argument("{} '{}': config shape {} (batch included) has rank {} but the model's is {}", kind,
                            io.name(), shape_string(dims), dims.size(), shape_string(spec->dims));
  }
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] >= 0 && spec->dims[i] >= 0 && dims[i] != spec->dims[i]) {
      return invalid_argument("{} '{}': config shape {} does not match the model's {}", kind, io.name(),
                              shape_string(dims), shape_string(spec->dims));
    }
  }
  return Status::ok();
}

Status check_scheduling(const inference::ModelConfig& config) {
  if (config.has_sequence_batching()) {
    KILN_RETURN_IF_ERROR(check_sequence_config(config).with_context("model '" + config.name() + "'"));
  }
  if (config.max_batch_size() < 0) {
    return invalid_argument("model '{}': max_batch_size must be >= 0, got {}", config.name(), config.max_batch_size());
  }
  if (config.has_dynamic_batching()) {
    const auto& db = config.dynamic_batching();
    for (int32_t p : db.preferred_batch_size()) {
      if (p < 1 || p > std::max(1, config.max_batch_size())) {
        return invalid_argument("model '{}': preferred_batch_size {} must be in [1, max_batch_size {}]", config.name(),
                                p, config.max_batch_size());
      }
    }
    if (db.priority_levels() > 1024) {
      return invalid_argument("model '{}': priority_levels {} is more than 1024", config.name(), db.priority_levels());
    }
    if (db.default_priority_level() > db.priority_levels()) {
      return invalid_argument("model '{}': default_priority_level {} is above priority_levels {}", config.name(),
                              db.default_priority_level(), db.priority_levels());
    }
  }
  for (const auto& group : config.instance_group()) {
    if (group.count() < 0 || group.count() > 64) {
      return invalid_argument("model '{}': instance_group count {} must be in [1, 64]", config.name(), group.count());
    }
  }
  return Status::ok();
}

}  // namespace

Status check_model_name(const std::string& name) {
  if (name.empty()) return invalid_argument("model name must not be empty");
  if (name.size() > 255) return invalid_argument("model name is longer than 255 bytes");
  if (name == "." || name == "..") return invalid_argument("model name '{}' is not allowed", name);
  for (char c : name) {
    if (c == '/' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return invalid_argument("model name '{}' must not contain path separators or control characters",
                              name.find('\n') == std::string::npos ? name : std::string("<control characters>"));
    }
  }
  return Status::ok();
}

Result<inference::ModelConfig> read_model_config(const std::string& model_dir, const std::string& name) {
  inference::ModelConfig config;
  std::filesystem::path path = std::filesystem::path(model_dir) / "config.pbtxt";
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return io_error("cannot read '{}'", path.string());
    std::stringstream text;
    text << in.rdbuf();
    if (text.str().size() > (16u << 20)) return invalid_argument("'{}' is larger than 16 MiB", path.string());
    google::protobuf::TextFormat::Parser parser;
    ParseErrors errors;
    parser.RecordErrorsTo(&errors);
    if (!parser.ParseFromString(text.str(), &config)) {
      return invalid_argument("'{}': {}", path.string(), errors.first().empty() ? "parse error" : errors.first());
    }
  }
  if (config.name().empty()) {
    config.set_name(name);
  } else if (config.name() != name) {
    return invalid_argument("config name '{}' does not match the model folder '{}'", config.name(), name);
  }
  return config;
}

Status resolve_platform(inference::ModelConfig& config) {
  const std::string& platform = config.platform();
  const std::string& backend = config.backend();
  if (platform == "ensemble" || config.has_ensemble_scheduling()) {
    if (platform != "ensemble" || !backend.empty()) {
      return invalid_argument(
          "model '{}': ensemble_scheduling needs platform \"ensemble\" and no backend (and the "
          "reverse)",
          config.name());
    }
    if (!config.has_ensemble_scheduling()) {
      return invalid_argument("model '{}': platform \"ensemble\" needs an ensemble_scheduling section", config.name());
    }
    return Status::ok();
  }
  if (platform == "pytorch_libtorch" || backend == "pytorch") {
    if ((!platform.empty() && platform != "pytorch_libtorch") || (!backend.empty() && backend != "pytorch")) {
      return invalid_argument("model '{}': platform '{}' and backend '{}' name different frameworks", config.name(),
                              platform, backend);
    }
    config.set_platform("pytorch_libtorch");
    config.set_backend("pytorch");
    return Status::ok();
  }
  auto served_platform = [](const std::string& p) { return p.empty() || p == "onnxruntime_onnx" || p == "kiln"; };
  auto served_backend = [](const std::string& b) {
    return b.empty() || b == "onnxruntime" || b == "kiln" || b == "python";
  };
  if (!served_platform(platform) || !served_backend(backend)) {
    return unimplemented(
        "model '{}': unsupported {} '{}': Kiln serves ONNX models (platform \"onnxruntime_onnx\" or backend "
        "\"onnxruntime\"), TorchScript models (platform \"pytorch_libtorch\" or backend \"pytorch\"), Python "
        "models (backend \"python\") and ensembles (platform \"ensemble\")",
        config.name(), served_platform(platform) ? "backend" : "platform",
        served_platform(platform) ? backend : platform);
  }
  if (platform.empty() && backend.empty()) {
    config.set_platform("onnxruntime_onnx");
    config.set_backend("onnxruntime");
  }
  return Status::ok();
}

bool batching_possible(const std::vector<TensorSpec>& inputs, const std::vector<TensorSpec>& outputs) {
  auto batchable = [](const TensorSpec& t) { return t.rank_known && !t.dims.empty() && t.dims[0] < 0; };
  if (inputs.empty() && outputs.empty()) return false;
  return std::all_of(inputs.begin(), inputs.end(), batchable) && std::all_of(outputs.begin(), outputs.end(), batchable);
}

namespace {

// Backends that run instances on a GPU: Kiln's engine (ONNX models) and the
// Python backend (the model gets the device id and uses it as it likes).
bool backend_uses_gpus(const inference::ModelConfig& config) { return config.backend() != "pytorch"; }

std::string gpu_count_text(int count) { return fmt::format("{} GPU{} visible", count, count == 1 ? "" : "s"); }

}  // namespace

Status normalize_instance_groups(inference::ModelConfig& config, const GpuInventory& gpus) {
  if (config.platform() == "ensemble") return Status::ok();
  const bool gpu_backend = backend_uses_gpus(config);
  if (config.instance_group_size() == 0) {
    inference::ModelInstanceGroup* group = config.add_instance_group();
    group->set_kind(gpus.count > 0 && gpu_backend ? inference::ModelInstanceGroup::KIND_GPU
                                                  : inference::ModelInstanceGroup::KIND_CPU);
    group->set_count(1);
    group->set_name(config.name());  // Triton names the group it adds after the model
  }
  for (int i = 0; i < config.instance_group_size(); ++i) {
    inference::ModelInstanceGroup& group = *config.mutable_instance_group(i);
    if (group.count() == 0) group.set_count(1);
    if (group.name().empty()) group.set_name(fmt::format("{}_{}", config.name(), i));
    const std::string where = fmt::format("model '{}': instance_group '{}'", config.name(), group.name());
    if (group.kind() == inference::ModelInstanceGroup::KIND_AUTO) {
      const bool on_gpu = group.gpus_size() > 0 || (gpus.count > 0 && gpu_backend);
      group.set_kind(on_gpu ? inference::ModelInstanceGroup::KIND_GPU : inference::ModelInstanceGroup::KIND_CPU);
    }
    if (group.kind() != inference::ModelInstanceGroup::KIND_GPU) {
      if (group.gpus_size() > 0) {
        return invalid_argument("{} has kind {} but lists gpus", where,
                                inference::ModelInstanceGroup::Kind_Name(group.kind()));
      }
      continue;
    }
    if (!gpu_backend) return unimplemented("{}: KIND_GPU is not supported by the PyTorch backend in this build", where);
    if (gpus.count == 0) return failed_precondition("{} is KIND_GPU but {}", where, gpus.absent_reason);
    for (int32_t id : group.gpus()) {
      if (id < 0 || id >= gpus.count) {
        return invalid_argument("{}: gpu {} does not exist: {}", where, id, gpu_count_text(gpus.count));
      }
    }
    if (group.gpus_size() == 0) {
      for (int id = 0; id < gpus.count; ++id) group.add_gpus(id);
    }
  }
  return Status::ok();
}

bool gpu_chosen_by_default(const inference::ModelConfig& written, const inference::ModelConfig& normalized) {
  bool any_gpu = false;
  for (int i = 0; i < normalized.instance_group_size(); ++i) {
    if (normalized.instance_group(i).kind() != inference::ModelInstanceGroup::KIND_GPU) continue;
    any_gpu = true;
    if (written.instance_group_size() == 0) continue;
    if (i >= written.instance_group_size()) return false;
    const inference::ModelInstanceGroup& w = written.instance_group(i);
    if (w.kind() != inference::ModelInstanceGroup::KIND_AUTO || w.gpus_size() > 0) return false;
  }
  return any_gpu;
}

std::optional<int> single_gpu(const inference::ModelConfig& config) {
  std::optional<int> only;
  for (const auto& group : config.instance_group()) {
    if (group.kind() != inference::ModelInstanceGroup::KIND_GPU) return std::nullopt;
    for (int32_t id : group.gpus()) {
      if (only && *only != id) return std::nullopt;
      only = id;
    }
  }
  return only;
}

Result<std::string> gpu_precision(const inference::ModelConfig& config) {
  auto it = config.parameters().find("precision");
  if (it == config.parameters().end()) return std::string("fp32");
  std::string s = it->second.string_value();
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s != "fp32" && s != "tf32" && s != "fp16" && s != "bf16") {
    return invalid_argument("model '{}': parameter precision must be fp32, tf32, fp16 or bf16, got '{}'", config.name(),
                            it->second.string_value());
  }
  return s;
}

Status complete_config(inference::ModelConfig& config, const ModelBackend& backend, bool auto_complete) {
  const bool can_batch = batching_possible(backend.inputs(), backend.outputs());
  const bool auto_io = config.input_size() == 0 && config.output_size() == 0;
  if (!auto_complete && auto_io && !(backend.inputs().empty() && backend.outputs().empty())) {
    return invalid_argument(
        "model '{}': the config lists no inputs or outputs and auto-complete is off (--disable-auto-complete-config): "
        "write them in config.pbtxt",
        config.name());
  }
  if (can_batch && config.max_batch_size() == 0 && auto_io) config.set_max_batch_size(kDefaultMaxBatchSize);
  if (!can_batch && config.max_batch_size() > 0) {
    return invalid_argument(
        "model '{}': max_batch_size is {} but the model does not support batching (every input and output needs a "
        "variable first dimension)",
        config.name(), config.max_batch_size());
  }
  const bool batching = config.max_batch_size() > 0;
  // Control and state tensors of a sequence model are fed by the sequence batcher, not the client.
  const std::set<std::string> internal_in = sequence_internal_inputs(config);
  const std::set<std::string> internal_out = sequence_internal_outputs(config);
  if (auto_complete && config.input_size() == 0) {
    for (const TensorSpec& spec : backend.inputs()) {
      if (internal_in.count(spec.name)) continue;
      inference::ModelInput* in = config.add_input();
      in->set_name(spec.name);
      in->set_data_type(config_dtype(spec.dtype));
      fill_dims(in, spec, batching);
    }
  }
  if (auto_complete && config.output_size() == 0) {
    for (const TensorSpec& spec : backend.outputs()) {
      if (internal_out.count(spec.name)) continue;
      inference::ModelOutput* out = config.add_output();
      out->set_name(spec.name);
      out->set_data_type(config_dtype(spec.dtype));
      fill_dims(out, spec, batching);
    }
  }
  if (auto_complete && config.max_batch_size() > 1 && !config.has_dynamic_batching() &&
      !config.has_sequence_batching() && !config.has_ensemble_scheduling()) {
    config.mutable_dynamic_batching();
  }
  // As Triton: no preferred sizes means max_batch_size is the preferred one (the scheduler's
  // target either way), and groups without a name are "<model>_<index>".
  if (config.has_dynamic_batching() && config.max_batch_size() > 0 &&
      config.dynamic_batching().preferred_batch_size_size() == 0) {
    config.mutable_dynamic_batching()->add_preferred_batch_size(config.max_batch_size());
  }
  if (config.instance_group_size() == 0) {
    inference::ModelInstanceGroup* group = config.add_instance_group();
    group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
    group->set_count(1);
    group->set_name(config.name());
  }
  for (int i = 0; i < config.instance_group_size(); ++i) {
    inference::ModelInstanceGroup& group = *config.mutable_instance_group(i);
    if (group.count() == 0) group.set_count(1);
    if (group.name().empty()) group.set_name(fmt::format("{}_{}", config.name(), i));
  }
  if (!config.has_version_policy()) config.mutable_version_policy()->mutable_latest()->set_num_versions(1);

  KILN_RETURN_IF_ERROR(check_scheduling(config));
  std::set<std::string> seen;
  for (const auto& in : config.input()) {
    if (!seen.insert(in.name()).second) return invalid_argument("input '{}' appears twice in the config", in.name());
    KILN_RETURN_IF_ERROR(check_tensor(in, find_spec(backend.inputs(), in.name()), config.max_batch_size(), "input")
                             .with_context("model '" + config.name() + "'"));
  }
  for (const TensorSpec& spec : backend.inputs()) {
    if (!spec.optional && !seen.count(spec.name) && !internal_in.count(spec.name)) {
      return invalid_argument("model '{}': model input '{}' is missing from the config", config.name(), spec.name);
    }
  }
  seen.clear();
  for (const auto& out : config.output()) {
    if (!seen.insert(out.name()).second) return invalid_argument("output '{}' appears twice in the config", out.name());
    KILN_RETURN_IF_ERROR(check_tensor(out, find_spec(backend.outputs(), out.name()), config.max_batch_size(), "output")
                             .with_context("model '" + config.name() + "'"));
  }
  return Status::ok();
}

std::vector<int64_t> select_versions(const inference::ModelConfig& config, std::vector<int64_t> available) {
  std::sort(available.begin(), available.end());
  const auto& policy = config.version_policy();
  if (policy.has_all()) return available;
  if (policy.has_specific()) {
    std::vector<int64_t> out;
    for (int64_t v : available) {
      if (std::find(policy.specific().versions().begin(), policy.specific().versions().end(), v) !=
          policy.specific().versions().end()) {
        out.push_back(v);
      }
    }
    return out;
  }
  size_t n = policy.has_latest() ? std::max<uint32_t>(1, policy.latest().num_versions()) : 1;
  if (available.size() > n) available.erase(available.begin(), available.end() - static_cast<std::ptrdiff_t>(n));
  return available;
}

int instance_count(const inference::ModelConfig& config) {
  int total = 0;
  for (const auto& group : config.instance_group()) {
    const bool gpu = group.kind() == inference::ModelInstanceGroup::KIND_GPU;
    total += std::max(1, group.count()) * (gpu ? std::max(1, group.gpus_size()) : 1);
  }
  return std::max(1, total);
}

namespace {

template <class Io>
Result<TensorSpec> spec_of_config(const Io& io, bool batched) {
  TensorSpec spec;
  spec.name = io.name();
  std::optional<DataType> dtype = dtype_from_config(io.data_type());
  if (!dtype) return invalid_argument("'{}' has an unsupported data_type", io.name());
  spec.dtype = *dtype;
  if (batched) spec.dims.push_back(-1);
  if (io.has_reshape()) {
    spec.dims.insert(spec.dims.end(), io.reshape().shape().begin(), io.reshape().shape().end());
  } else {
    spec.dims.insert(spec.dims.end(), io.dims().begin(), io.dims().end());
  }
  if constexpr (std::is_same_v<Io, inference::ModelInput>) spec.optional = io.optional();
  return spec;
}

}  // namespace

Result<ConfigIo> io_from_config(const inference::ModelConfig& config) {
  const bool batched = config.max_batch_size() > 0;
  ConfigIo io;
  for (const auto& in : config.input()) {
    KILN_ASSIGN_OR_RETURN(TensorSpec s, spec_of_config(in, batched));
    io.inputs.push_back(std::move(s));
  }
  for (const auto& out : config.output()) {
    KILN_ASSIGN_OR_RETURN(TensorSpec s, spec_of_config(out, batched));
    io.outputs.push_back(std::move(s));
  }
  return io;
}

Status check_output_dtype(const inference::ModelConfig& config, const std::string& output, DataType got) {
  for (const auto& cfg : config.output()) {
    if (cfg.name() != output) continue;
    std::optional<DataType> want = dtype_from_config(cfg.data_type());
    if (want && *want != got) {
      return invalid_argument("model '{}' returned output '{}' as {} but its config says {}", config.name(), output,
                              protocol_dtype_name(got), protocol_dtype_name(*want));
    }
  }
  return Status::ok();
}

Result<int> int_parameter(const inference::ModelConfig& config, const std::string& key, int min, int max,
                          int fallback) {
  auto it = config.parameters().find(key);
  if (it == config.parameters().end()) return fallback;
  const std::string& s = it->second.string_value();
  int value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size() || value < min || value > max) {
    return invalid_argument("parameter {} must be an integer in [{}, {}], got '{}'", key, min, max, s);
  }
  return value;
}

bool bool_parameter(const inference::ModelConfig& config, const std::string& key, bool fallback) {
  auto it = config.parameters().find(key);
  if (it == config.parameters().end()) return fallback;
  std::string s = it->second.string_value();
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s != "false" && s != "0" && s != "no" && s != "off";
}

}  // namespace kiln::server
