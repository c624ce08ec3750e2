#include "server/torch_backend.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>

#include "core/error.h"
#include "core/logging.h"
#include "server/model_config.h"
#include "server/sequence_state.h"
#include "server/torch_plugin/kiln_torch_abi.h"
#include "server/types.h"

#ifndef KILN_TORCH_PLUGIN
#define KILN_TORCH_PLUGIN ""
#endif

namespace kiln::server {
namespace {

// The plugin's entry points, resolved once per process. The library stays
// loaded for the life of the process (libtorch does not support unloading).
struct TorchPlugin {
  decltype(&kiln_torch_abi_version) abi_version = nullptr;
  decltype(&kiln_torch_free_error) free_error = nullptr;
  decltype(&kiln_torch_set_threads) set_threads = nullptr;
  decltype(&kiln_torch_load) load = nullptr;
  decltype(&kiln_torch_unload) unload = nullptr;
  decltype(&kiln_torch_arg_count) arg_count = nullptr;
  decltype(&kiln_torch_arg_name) arg_name = nullptr;
  decltype(&kiln_torch_arg_kind) arg_kind = nullptr;
  decltype(&kiln_torch_forward) forward = nullptr;
  decltype(&kiln_torch_result_count) result_count = nullptr;
  decltype(&kiln_torch_result_output) result_output = nullptr;
  decltype(&kiln_torch_result_free) result_free = nullptr;

  // The plugin's error as a Status (and the message freed).
  Status check(char* error, std::string_view context) const {
    if (error == nullptr) return Status::ok();
    std::string message(error);
    free_error(error);
    return internal_error("{}: {}", context, message);
  }
};

Result<const TorchPlugin*> torch_plugin() {
  static std::mutex mutex;
  static std::optional<TorchPlugin> plugin;
  static std::string failure;
  std::lock_guard lock(mutex);
  if (plugin) return &*plugin;
  if (!failure.empty()) return unavailable("{}", failure);
  const std::string path = torch_plugin_path();
  if (path.empty()) {
    failure =
        "the PyTorch backend is not built: kiln was compiled without libtorch (install Debian's libtorch-dev and "
        "rebuild, or set KILN_TORCH_BACKEND_LIB to a libkiln_torch_backend.so)";
    return unavailable("{}", failure);
  }
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    failure = fmt::format("the PyTorch backend plugin '{}' does not load: {}", path, why ? why : "unknown error");
    return unavailable("{}", failure);
  }
  TorchPlugin p;
  bool complete = true;
  auto resolve = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(handle, name));
    complete = complete && fn != nullptr;
  };
  resolve(p.abi_version, "kiln_torch_abi_version");
  resolve(p.free_error, "kiln_torch_free_error");
  resolve(p.set_threads, "kiln_torch_set_threads");
  resolve(p.load, "kiln_torch_load");
  resolve(p.unload, "kiln_torch_unload");
  resolve(p.arg_count, "kiln_torch_arg_count");
  resolve(p.arg_name, "kiln_torch_arg_name");
  resolve(p.arg_kind, "kiln_torch_arg_kind");
  resolve(p.forward, "kiln_torch_forward");
  resolve(p.result_count, "kiln_torch_result_count");
  resolve(p.result_output, "kiln_torch_result_output");
  resolve(p.result_free, "kiln_torch_result_free");
  if (!complete) {
    failure = fmt::format("'{}' is not a Kiln PyTorch backend plugin (missing entry points)", path);
    return unavailable("{}", failure);
  }
  if (p.abi_version() != KILN_TORCH_ABI_VERSION) {
    failure = fmt::format("the PyTorch backend plugin '{}' speaks interface version {}, this kiln {}", path,
                          p.abi_version(), KILN_TORCH_ABI_VERSION);
    return unavailable("{}", failure);
  }
  plugin = p;
  return &*plugin;
}

struct ModuleDeleter {
  const TorchPlugin* plugin;
  void operator()(KilnTorchModule* m) const { plugin->unload(m); }
};
using ModulePtr = std::unique_ptr<KilnTorchModule, ModuleDeleter>;

struct ResultDeleter {
  const TorchPlugin* plugin;
  void operator()(KilnTorchResult* r) const { plugin->result_free(r); }
};

// How the model is called, fixed at load.
struct TorchLayout {
  std::string path;
  bool optimized = true;
  bool inference_mode = true;
  bool dict_input = false;
  std::map<std::string, int> input_index;  // config input name -> forward() argument
  int argument_count = 0;
  std::vector<std::pair<std::string, int>> outputs;  // config output name -> returned element
  inference::ModelConfig config;                     // the model's name; the output data types are checked against it
};

// The <index> of "<name>__<index>", if the name has that form.
std::optional<int> named_index(const std::string& name) {
  size_t at = name.find("__");
  if (at == std::string::npos || at + 2 >= name.size()) return std::nullopt;
  std::string digits = name.substr(at + 2);
  if (!std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) {
    return std::nullopt;
  }
  if (digits.size() > 6) return std::nullopt;
  return std::stoi(digits);
}

Result<ModulePtr> load_module(const TorchPlugin& plugin, const TorchLayout& layout) {
  KilnTorchModule* raw = nullptr;
  KILN_RETURN_IF_ERROR(plugin.check(plugin.load(layout.path.c_str(), layout.optimized, layout.inference_mode, &raw),
                                    fmt::format("model '{}' ({})", layout.config.name(), layout.path)));
  return ModulePtr(raw, ModuleDeleter{&plugin});
}

// Maps the config's inputs onto forward()'s arguments by Triton's rules.
Status plan_inputs(const TorchPlugin& plugin, KilnTorchModule* module, const inference::ModelConfig& config,
                   TorchLayout& layout) {
  const int count = plugin.arg_count(module);
  std::vector<std::string> args;
  for (int i = 0; i < count; ++i) {
    args.emplace_back(plugin.arg_name(module, i));
    const int kind = plugin.arg_kind(module, i);
    if (kind == KILN_TORCH_ARG_OTHER || (kind == KILN_TORCH_ARG_DICT && count > 1)) {
      return invalid_argument(
          "model '{}': forward() argument '{}' is neither a Tensor nor a List; the server feeds Tensor (or "
          "List[str]) arguments, or a single Dict[str, Tensor]",
          config.name(), args.back());
    }
  }
  layout.dict_input = count == 1 && plugin.arg_kind(module, 0) == KILN_TORCH_ARG_DICT;
  layout.argument_count = count;

  std::vector<std::string> names;  // the config's inputs, then the sequence batcher's
  for (const auto& in : config.input()) names.push_back(in.name());
  for (const std::string& name : sequence_internal_inputs(config)) names.push_back(name);
  if (layout.dict_input) {
    for (size_t i = 0; i < names.size(); ++i) layout.input_index[names[i]] = static_cast<int>(i);
    return Status::ok();
  }
  if (static_cast<int>(names.size()) != count) {
    return invalid_argument("model '{}': the configuration expects {} inputs, forward() takes {}", config.name(),
                            names.size(), count);
  }
  const bool by_argument = std::all_of(config.input().begin(), config.input().end(), [&](const auto& in) {
    return std::find(args.begin(), args.end(), in.name()) != args.end();
  });
  const bool by_index = std::all_of(config.input().begin(), config.input().end(),
                                    [](const auto& in) { return named_index(in.name()).has_value(); });
  std::vector<bool> taken(static_cast<size_t>(count), false);
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    int index = static_cast<int>(i);
    if (auto it = std::find(args.begin(), args.end(), name); by_argument && it != args.end()) {
      index = static_cast<int>(it - args.begin());
    } else if (std::optional<int> n = named_index(name);
               (by_index || i >= static_cast<size_t>(config.input_size())) && n) {
      index = *n;
    }
    if (index < 0 || index >= count || taken[static_cast<size_t>(index)]) {
      return invalid_argument("model '{}': input '{}' maps to forward() argument {}, which {}", config.name(), name,
                              index,
                              index >= count ? fmt::format("does not exist ({} arguments)", count)
                                             : std::string("another input already takes"));
    }
    taken[static_cast<size_t>(index)] = true;
    layout.input_index[name] = index;
  }
  for (const auto& in : config.input()) {
    const int kind = plugin.arg_kind(module, layout.input_index[in.name()]);
    const bool is_string = in.data_type() == inference::TYPE_STRING;
    if (is_string != (kind == KILN_TORCH_ARG_LIST)) {
      return invalid_argument("model '{}': input '{}' is {} but forward() takes that argument as a {}", config.name(),
                              in.name(), inference::DataType_Name(in.data_type()),
                              kind == KILN_TORCH_ARG_LIST ? "List" : "Tensor");
    }
    if (is_string) {
      const size_t rank = static_cast<size_t>(in.has_reshape() ? in.reshape().shape_size() : in.dims_size()) +
                          (config.max_batch_size() > 0 ? 1 : 0);
      if (rank > 1) {
        return invalid_argument(
            "model '{}': TYPE_STRING input '{}' must have one dimension (batch included): "
            "forward() takes it as a List[str]",
            config.name(), in.name());
      }
    }
  }
  return Status::ok();
}

void plan_outputs(const inference::ModelConfig& config, TorchLayout& layout) {
  const bool by_index = std::all_of(config.output().begin(), config.output().end(),
                                    [](const auto& out) { return named_index(out.name()).has_value(); });
  for (int i = 0; i < config.output_size(); ++i) {
    const auto& out = config.output(i);
    layout.outputs.emplace_back(out.name(), by_index ? *named_index(out.name()) : i);
  }
  for (const std::string& name : sequence_internal_outputs(config)) {
    layout.outputs.emplace_back(name, named_index(name).value_or(static_cast<int>(layout.outputs.size())));
  }
}

std::optional<int32_t> abi_dtype(DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32:
      return KILN_TORCH_FLOAT;
    case DataType::kUInt8:
      return KILN_TORCH_UINT8;
    case DataType::kInt8:
      return KILN_TORCH_INT8;
    case DataType::kInt16:
      return KILN_TORCH_INT16;
    case DataType::kInt32:
      return KILN_TORCH_INT32;
    case DataType::kInt64:
      return KILN_TORCH_INT64;
    case DataType::kString:
      return KILN_TORCH_STRING;
    case DataType::kBool:
      return KILN_TORCH_BOOL;
    case DataType::kFloat16:
      return KILN_TORCH_FLOAT16;
    case DataType::kFloat64:
      return KILN_TORCH_DOUBLE;
    case DataType::kBFloat16:
      return KILN_TORCH_BFLOAT16;
    default:
      return std::nullopt;
  }
}

class TorchInstance final : public BackendInstance {
 public:
  TorchInstance(const TorchPlugin* plugin, std::shared_ptr<const TorchLayout> layout, ModulePtr module)
      : plugin_(plugin), layout_(std::move(layout)), module_(std::move(module)) {}
  TorchInstance(const TorchPlugin* plugin, std::shared_ptr<const TorchLayout> layout, Status failed)
      : plugin_(plugin),
        layout_(std::move(layout)),
        module_(nullptr, ModuleDeleter{plugin}),
        init_(std::move(failed)) {}

  Status ready() const override { return init_; }

  Result<NamedTensors> run(const NamedTensors& feeds, const std::vector<std::string>& outputs) override {
    KILN_RETURN_IF_ERROR(init_);
    const TorchLayout& layout = *layout_;
    const size_t count = layout.dict_input ? feeds.size() : static_cast<size_t>(layout.argument_count);
    std::vector<KilnTorchTensor> args(count);
    std::vector<bool> given(count, false);
    std::vector<std::vector<KilnTorchString>> strings(count);
    std::vector<std::vector<int64_t>> dims(count);
    for (const auto& [name, tensor] : feeds) {
      auto it = layout.input_index.find(name);
      if (it == layout.input_index.end())
        return invalid_argument("model '{}' has no input '{}'", layout.config.name(), name);
      const auto slot = static_cast<size_t>(it->second);
      if (slot >= count) return invalid_argument("model '{}': input '{}' has no argument", layout.config.name(), name);
      std::optional<int32_t> dtype = abi_dtype(tensor.dtype());
      if (!dtype) {
        return invalid_argument("model '{}': input '{}' is {}, which PyTorch does not take", layout.config.name(), name,
                                protocol_dtype_name(tensor.dtype()));
      }
      KilnTorchTensor& arg = args[slot];
      arg.name = name.c_str();
      arg.dtype = *dtype;
      dims[slot] = tensor.dims();
      arg.rank = static_cast<int32_t>(dims[slot].size());
      arg.dims = dims[slot].data();
      if (tensor.dtype() == DataType::kString) {
        for (const std::string& s : tensor.span<std::string>()) strings[slot].push_back({s.data(), s.size()});
        arg.data = strings[slot].data();
      } else {
        arg.data = tensor.raw_data();
      }
      given[slot] = true;
    }
    for (size_t i = 0; i < count; ++i) {
      if (!given[i]) return invalid_argument("model '{}': forward() argument {} has no input", layout.config.name(), i);
    }
    KilnTorchResult* raw = nullptr;
    KILN_RETURN_IF_ERROR(plugin_->check(plugin_->forward(module_.get(), args.data(), static_cast<int32_t>(count), &raw),
                                        fmt::format("model '{}'", layout.config.name())));
    std::unique_ptr<KilnTorchResult, ResultDeleter> result(raw, ResultDeleter{plugin_});
    const int returned = plugin_->result_count(result.get());
    NamedTensors out;
    for (const auto& [name, index] : layout.outputs) {
      if (!outputs.empty() && std::find(outputs.begin(), outputs.end(), name) == outputs.end()) continue;
      if (index >= returned) {
        return invalid_argument(
            "model '{}': output '{}' refers to element {} of forward()'s result, which has {} element{}",
            layout.config.name(), name, index, returned, returned == 1 ? "" : "s");
      }
      KilnTorchTensor view{};
      KILN_RETURN_IF_ERROR(plugin_->check(plugin_->result_output(result.get(), index, &view),
                                          fmt::format("model '{}'", layout.config.name())));
      KILN_ASSIGN_OR_RETURN(Tensor t, to_tensor(view, name));
      out.emplace_back(name, std::move(t));
    }
    return out;
  }

 private:
  Result<Tensor> to_tensor(const KilnTorchTensor& view, const std::string& name) const {
    const auto dtype = static_cast<DataType>(view.dtype);
    KILN_RETURN_IF_ERROR(check_output_dtype(layout_->config, name, dtype));
    Dims dims(view.dims, view.dims + view.rank);
    KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(dtype, dims));
    if (dtype == DataType::kString) {
      const auto* s = static_cast<const KilnTorchString*>(view.data);
      std::span<std::string> dst = t.span<std::string>();
      for (size_t i = 0; i < dst.size(); ++i) dst[i].assign(s[i].data, s[i].size);
    } else if (t.nbytes() > 0) {
      std::memcpy(t.raw_data(), view.data, t.nbytes());
    }
    return t;
  }

  const TorchPlugin* plugin_;
  std::shared_ptr<const TorchLayout> layout_;
  ModulePtr module_;
  Status init_;
};

class TorchBackend final : public ModelBackend {
 public:
  TorchBackend(const TorchPlugin* plugin, std::shared_ptr<const TorchLayout> layout, ModulePtr first,
               std::vector<TensorSpec> inputs, std::vector<TensorSpec> outputs)
      : plugin_(plugin),
        layout_(std::move(layout)),
        first_(std::move(first)),
        inputs_(std::move(inputs)),
        outputs_(std::move(outputs)) {}
  const std::vector<TensorSpec>& inputs() const override { return inputs_; }
  const std::vector<TensorSpec>& outputs() const override { return outputs_; }
  const std::string& path() const override { return layout_->path; }
  // The first instance takes the module loaded to read forward()'s
  // signature; each further one loads its own. Always on the CPU
  // (normalize_instance_groups refuses KIND_GPU for this backend).
  std::unique_ptr<BackendInstance> create_instance(const InstancePlacement&) const override {
    {
      std::lock_guard lock(mutex_);
      if (first_) return std::make_unique<TorchInstance>(plugin_, layout_, std::move(first_));
    }
    Result<ModulePtr> module = load_module(*plugin_, *layout_);
    if (!module.is_ok()) return std::make_unique<TorchInstance>(plugin_, layout_, module.status());
    return std::make_unique<TorchInstance>(plugin_, layout_, std::move(module).value());
  }

 private:
  const TorchPlugin* plugin_;
  std::shared_ptr<const TorchLayout> layout_;
  mutable std::mutex mutex_;
  mutable ModulePtr first_;  // guarded by mutex_
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
};

}  // namespace

std::string torch_plugin_path() {
  if (const char* env = std::getenv("KILN_TORCH_BACKEND_LIB"); env && *env) return env;
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    std::filesystem::path installed = exe.parent_path().parent_path() / "lib" / "kiln" / "libkiln_torch_backend.so";
    if (std::filesystem::is_regular_file(installed, ec)) return installed.string();
  }
  return KILN_TORCH_PLUGIN;
}

Result<std::shared_ptr<const ModelBackend>> load_torch_backend(const std::string& version_dir,
                                                               const inference::ModelConfig& config) {
  namespace fs = std::filesystem;
  std::string filename = config.default_model_filename().empty() ? "model.pt" : config.default_model_filename();
  if (filename.find('/') != std::string::npos || filename == ".." || filename == ".") {
    return invalid_argument("default_model_filename '{}' must be a file name, not a path", filename);
  }
  fs::path file = fs::path(version_dir) / filename;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return not_found("PyTorch model file '{}' not found", file.string());
  if (config.input_size() == 0 || config.output_size() == 0) {
    return invalid_argument("PyTorch model '{}' must list its inputs and outputs in config.pbtxt", config.name());
  }
  KILN_ASSIGN_OR_RETURN(const TorchPlugin* plugin, torch_plugin());
  KILN_ASSIGN_OR_RETURN(int intra, int_parameter(config, "INTRA_OP_THREAD_COUNT", 0, 1024, 0));
  KILN_ASSIGN_OR_RETURN(int inter, int_parameter(config, "INTER_OP_THREAD_COUNT", 0, 1024, 0));
  if (intra > 0 || inter > 0) {
    KILN_LOG_INFO("model '{}': PyTorch threads intra-op {} inter-op {} (process-wide in libtorch)", config.name(),
                  intra, inter);
    KILN_RETURN_IF_ERROR(plugin->check(plugin->set_threads(intra, inter), fmt::format("model '{}'", config.name())));
  }
  auto layout = std::make_shared<TorchLayout>();
  layout->config = config;
  layout->path = file.string();
  layout->optimized = !bool_parameter(config, "DISABLE_OPTIMIZED_EXECUTION", false);
  layout->inference_mode = bool_parameter(config, "INFERENCE_MODE", true);
  KILN_ASSIGN_OR_RETURN(ModulePtr module, load_module(*plugin, *layout));
  KILN_RETURN_IF_ERROR(plan_inputs(*plugin, module.get(), config, *layout));
  plan_outputs(config, *layout);

  KILN_ASSIGN_OR_RETURN(ConfigIo io, io_from_config(config));
  for (const auto* specs : {&io.inputs, &io.outputs}) {
    for (const TensorSpec& s : *specs) {
      if (!abi_dtype(s.dtype)) {
        return invalid_argument("model '{}': {} '{}' is {}, which PyTorch has no type for", config.name(),
                                specs == &io.inputs ? "input" : "output", s.name, protocol_dtype_name(s.dtype));
      }
    }
  }
  return std::shared_ptr<const ModelBackend>(std::make_shared<TorchBackend>(
      plugin, std::move(layout), std::move(module), std::move(io.inputs), std::move(io.outputs)));
}

}  // namespace kiln::server
