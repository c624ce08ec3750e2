// Ensemble: a model (platform "ensemble") that runs other models as steps
// of a pipeline (config ensemble_scheduling). Each step maps ensemble
// tensors onto a composing model's inputs (input_map: model input ->
// ensemble tensor) and its outputs back onto ensemble tensors (output_map:
// model output -> ensemble tensor). A step runs as soon as every tensor it
// needs exists, so independent steps run concurrently (a DAG). The first
// step that fails answers the request with its error, naming the step.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "model_config.pb.h"
#include "server/inference.h"
#include "server/stats.h"

namespace kiln::server {

class ModelVersion;

// Finds a loaded model version (0: the highest).
using ModelResolver = std::function<Result<std::shared_ptr<ModelVersion>>(const std::string&, int64_t)>;

// Checks an ensemble config: inputs and outputs listed, steps whose tensors
// all come from the ensemble inputs or an earlier step, one producer per
// tensor, every output produced, no step naming the ensemble itself.
Status check_ensemble_config(const inference::ModelConfig& config);

class Ensemble {
 public:
  struct Plan;
  static Result<std::unique_ptr<Ensemble>> create(const inference::ModelConfig& config, std::string version,
                                                  ModelResolver resolver, std::shared_ptr<ModelStats> stats);
  ~Ensemble();

  // Runs a validated request through the steps; `done` is called exactly once.
  void infer(InferRequest request, InferCallback done);
  // Refuses new requests; requests in flight finish on the composing models.
  void stop() { stopping_.store(true); }

 private:
  explicit Ensemble(std::shared_ptr<const Plan> plan) : plan_(std::move(plan)) {}
  std::shared_ptr<const Plan> plan_;
  std::atomic<bool> stopping_{false};
};

}  // namespace kiln::server
