// ModelBackend: one loaded model file (a version of a model), shared by the
// model's instances; each instance runs on its own BackendInstance (an
// execution context), one batch at a time.
//
// load_backend picks the loader from the version folder: a Kiln plan file
// (told by its magic, whatever its name) runs as built; an ONNX model is
// built into a plan at load (shapes from the model and max_batch_size,
// kernels timed unless the parameter kiln_time_tactics is "false"), or runs
// on the reference interpreter if that fails; for the config's KIND_GPU
// instance groups (normalize_instance_groups) by a GpuEngine per GPU with an
// execution context per instance (gpu_model.h); config.backend "python" runs
// the Python backend, "pytorch" the PyTorch backend (torch_backend.h).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/data_type.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "model_config.pb.h"
#include "server/inference.h"

namespace kiln::server {

// An input or output as the model file declares it. dims[i] is -1 when the
// dim is unknown or symbolic; rank_known is false when even the rank is.
struct TensorSpec {
  std::string name;
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> dims;
  bool rank_known = true;
  bool optional = false;  // an input with a default value
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Facts about the request(s) behind one run.
struct RunInfo {
  // The requests of the run, in batch order: each one's id and rows of the
  // batch (none when unknown). Of a dynamic batch, the Python backend hands
  // execute() one request each, as Triton does.
  std::vector<std::string> request_ids;
  std::vector<int64_t> request_rows;
  std::string correlation_id;  // the sequence id as text ("" outside a sequence)
  bool correlation_is_string = false;
  // Decoupled models (set by the scheduler when the config says so): the
  // backend hands over each response of request `request` (index into
  // request_rows) as the model sends it; nullopt is the final flag alone.
  // `final` completes the request; nothing follows it. Called on the thread
  // of run_with_info, before it returns.
  std::function<void(size_t request, std::optional<Result<NamedTensors>> response, bool final)> emit;
};

class BackendInstance {
 public:
  virtual ~BackendInstance() = default;
  // Runs the model; not thread-safe (one run at a time per instance).
  virtual Result<NamedTensors> run(const NamedTensors& feeds, const std::vector<std::string>& outputs) = 0;
  // run() for backends that use the request's facts (the Python backend hands them to model.py).
  // `request_errors`, when given, has one entry per request of info.request_rows (all ok): a
  // backend that fails single requests of a batch (the Python backend's error responses) sets
  // that request's entry and leaves its rows out of the outputs, which then hold the other
  // requests' rows in order. An error result still fails every request of the run.
  virtual Result<NamedTensors> run_with_info(const NamedTensors& feeds, const std::vector<std::string>& outputs,
                                             const RunInfo&, std::vector<Status>* request_errors) {
    (void)request_errors;
    return run(feeds, outputs);
  }
  // Whether the instance started (e.g. a Python backend process ran initialize()); checked at load.
  virtual Status ready() const { return Status::ok(); }
};

// Where one instance runs: its instance_group, and the GPU for a KIND_GPU
// group (the CUDA device index), else the CPU.
struct InstancePlacement {
  std::string group;
  int index = 0;  // the instance's index within its group (over all its devices): "<group>_<index>" names it
  bool gpu = false;
  int device = 0;
};

class ModelBackend {
 public:
  virtual ~ModelBackend() = default;
  virtual const std::vector<TensorSpec>& inputs() const = 0;
  virtual const std::vector<TensorSpec>& outputs() const = 0;
  // The model file it was loaded from (for messages and the index).
  virtual const std::string& path() const = 0;
  // A new instance at `placement`; a failure to start shows in its ready().
  virtual std::unique_ptr<BackendInstance> create_instance(const InstancePlacement& placement) const = 0;
};

// Runs a request on another model of the server (validated and scheduled as
// a client's request would be); `done` is called exactly once. The Python
// backend's business logic scripting (InferenceRequest.exec) calls it.
using InferFn = std::function<void(InferRequest, InferCallback)>;

// Loads the model file of `version_dir` named by the config's
// default_model_filename (model.onnx when empty). Intra-op threads come from
// the config parameter "intra_op_thread_count" (0 or absent: every core).
// `infer` (may be empty) lets the model call other models.
Result<std::shared_ptr<const ModelBackend>> load_backend(const std::string& version_dir,
                                                         const inference::ModelConfig& config, InferFn infer = {});

}  // namespace kiln::server
