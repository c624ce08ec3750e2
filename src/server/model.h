// ModelVersion: one served version of a model: its completed configuration,
// its backend (the loaded model file), its statistics and its scheduler.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "model_config.pb.h"
#include "server/backend.h"
#include "server/classification.h"
#include "server/ensemble.h"
#include "server/rate_limiter.h"
#include "server/response_cache.h"
#include "server/inference.h"
#include "server/scheduler.h"
#include "server/sequence_batcher.h"
#include "server/stats.h"

namespace kiln::server {

// What a model version may use from the server around it.
struct ServingContext {
  ModelResolver resolver;                 // ensembles and Python BLS: finds the other models
  std::shared_ptr<ResponseCache> cache;   // null: no response cache (--cache-config)
  std::shared_ptr<RateLimiter> limiter;   // null: rate limiting off (--rate-limit)
  bool auto_complete = true;              // false: --disable-auto-complete-config (complete_config)
};

class ModelVersion {
 public:
  // Loads <model_dir>/<version>/ with `config` (read and platform-checked,
  // not yet completed): places its instances (normalize_instance_groups; on
  // the CPU after all when the server chose the GPU and the model fails to
  // load there), completes the config from the model and starts the
  // scheduler, then runs the config's warm-up samples.
  static Result<std::shared_ptr<ModelVersion>> load(const std::string& model_dir, int64_t version,
                                                    inference::ModelConfig config, const ServingContext& context = {});
  ~ModelVersion();

  const std::string& name() const { return config_.name(); }
  int64_t version() const { return version_; }
  const std::string& version_string() const { return version_string_; }
  const inference::ModelConfig& config() const { return config_; }
  ModelStats& stats() const { return *stats_; }

  // Checks `request` against the config (names, datatypes, shapes, batch
  // size), orders its inputs as the config does and queues it. `done` is
  // called exactly once.
  void infer(InferRequest request, InferCallback done);
  // Finishes queued work and stops the instances; later requests are refused.
  void stop();

 private:
  ModelVersion() = default;
  // load() of a model file with the config's instance groups placed
  // (normalize_instance_groups): backend, completed config, scheduler, warm-up.
  static Result<std::shared_ptr<ModelVersion>> load_placed(const std::string& dir, const std::string& model_dir,
                                                           int64_t version, inference::ModelConfig config,
                                                           const ServingContext& context,
                                                           std::shared_ptr<const OutputLabels> labels, InferFn infer);
  Result<int64_t> validate(InferRequest& request) const;

  inference::ModelConfig config_;
  int64_t version_ = 0;
  std::string version_string_;
  std::shared_ptr<const ModelBackend> backend_;  // null for an ensemble
  std::shared_ptr<ModelStats> stats_;
  std::unique_ptr<Scheduler> scheduler_;         // dynamic batching or one request at a time
  std::unique_ptr<SequenceBatcher> sequencer_;   // sequence_batching
  std::unique_ptr<Ensemble> ensemble_;           // platform "ensemble" (no backend)
  std::shared_ptr<ResponseCache> cache_;         // set when the config enables the cache
  std::shared_ptr<const OutputLabels> labels_;   // outputs' label_filename contents (classification)
};

}  // namespace kiln::server
