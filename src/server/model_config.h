// Model configuration: reading config.pbtxt (protobuf text format against the
// Triton-compatible inference.ModelConfig), auto-completing it from the model
// file, validating it, and the version policy.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "model_config.pb.h"
#include "server/backend.h"
#include "server/gpu_devices.h"

namespace kiln::server {

// Batch size given to an auto-completed model whose dims allow batching
// (Triton's onnxruntime backend default-max-batch-size).
inline constexpr int kDefaultMaxBatchSize = 4;

// A model name must be a plain folder name: no path separators, no "." or
// "..", no control characters, at most 255 bytes.
Status check_model_name(const std::string& name);

// Reads <model_dir>/config.pbtxt (an empty config when the file is absent).
// A `name` in the file must equal `name`; an empty one is set to it.
Result<inference::ModelConfig> read_model_config(const std::string& model_dir, const std::string& name);

// Checks platform/backend: "onnxruntime_onnx" / "onnxruntime" (and "kiln")
// are served by Kiln's engine, "pytorch_libtorch" / "pytorch" by the PyTorch
// backend (either one completes the pair), backend "python" by the Python
// backend; an empty pair becomes the onnxruntime pair. Anything else is an
// error naming what Kiln serves.
Status resolve_platform(inference::ModelConfig& config);

// True if every input and output has a variable first (batch) dimension, so
// that an auto-completed config may batch the model.
bool batching_possible(const std::vector<TensorSpec>& inputs, const std::vector<TensorSpec>& outputs);

// Resolves where the config's instances run, before the model loads, as
// Triton's core does: no instance_group gives one group of one instance,
// KIND_GPU when a GPU is visible and the backend can use one, else KIND_CPU;
// KIND_AUTO becomes KIND_GPU when the group lists gpus or a GPU is visible
// (backends with GPU support), else KIND_CPU; a KIND_GPU group without gpus
// lists every visible GPU (its count instances go on EACH listed GPU); count
// 0 becomes 1 and unnamed groups get "<model>_<index>". Errors name the model
// and the group: KIND_GPU where no GPU is visible (with `gpus.absent_reason`),
// a gpu id that does not exist, gpus on a KIND_CPU group, KIND_GPU for the
// PyTorch backend. Ensembles are left alone.
Status normalize_instance_groups(inference::ModelConfig& config, const GpuInventory& gpus);

// True when `normalized` (normalize_instance_groups of `written`) has KIND_GPU
// groups and the server chose each of them (`written` has no instance_group,
// or the group is KIND_AUTO without gpus), not the config: such a model may
// run on the CPU instead when the GPU engine cannot run it.
bool gpu_chosen_by_default(const inference::ModelConfig& written, const inference::ModelConfig& normalized);

// The one GPU every instance of the config runs on (all groups KIND_GPU,
// listing the same single gpu); nullopt otherwise. Per-model metrics carry
// that GPU's gpu_uuid label, as Triton's do for GPU instances.
std::optional<int> single_gpu(const inference::ModelConfig& config);

// The model's GPU instances use this precision (config parameter "precision":
// fp32, tf32, fp16 or bf16; fp32 when absent). Checked at load.
Result<std::string> gpu_precision(const inference::ModelConfig& config);

// Fills what the config leaves out from the model (inputs, outputs,
// max_batch_size, dynamic_batching, instance_group, version_policy) the way
// Triton's onnxruntime backend does, then checks the config against the
// model: names, datatypes, dims, batch dimension, scheduling fields.
// `auto_complete` false (--disable-auto-complete-config) fills only
// instance_group, version_policy and preferred_batch_size, as Triton's core
// does with auto-completion off: inputs and outputs must be in the config, and
// a model without dynamic_batching runs each request alone.
Status complete_config(inference::ModelConfig& config, const ModelBackend& backend, bool auto_complete = true);

// The versions to serve among `available` (ascending or not), per the policy.
std::vector<int64_t> select_versions(const inference::ModelConfig& config, std::vector<int64_t> available);

// Total instances over the config's instance groups (at least 1).
int instance_count(const inference::ModelConfig& config);

// The inputs and outputs as the config declares them, for backends whose
// model file does not describe its tensors (Python, PyTorch): each the
// reshape shape if any, else dims, after a -1 batch dim when the config batches.
struct ConfigIo {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};
Result<ConfigIo> io_from_config(const inference::ModelConfig& config);

// An error naming both types when the model returned `output` as `got` and
// the config declares another data_type (ok for an output the config does
// not list). For backends whose outputs the config describes (Python, PyTorch).
Status check_output_dtype(const inference::ModelConfig& config, const std::string& output, DataType got);

// The config parameter `key` (string_value) read as an integer in [min, max];
// `fallback` when absent.
Result<int> int_parameter(const inference::ModelConfig& config, const std::string& key, int min, int max, int fallback);
// The config parameter `key` read as a flag: false for "false"/"0"/"no"/"off"
// (any case), true for anything else; `fallback` when absent.
bool bool_parameter(const inference::ModelConfig& config, const std::string& key, bool fallback);

}  // namespace kiln::server
