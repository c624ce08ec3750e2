// What both schedulers (the dynamic batcher in scheduler.cc and the sequence
// batcher) do the same way: create one model's instances from its
// instance_group entries with their rate-limiter needs, bring a run's outputs
// back to the config's shapes, and account for and answer an executed batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/status.h"
#include "model_config.pb.h"
#include "server/backend.h"
#include "server/inference.h"
#include "server/rate_limiter.h"
#include "server/stats.h"

namespace kiln::server {

struct InstanceSet {
  std::vector<std::unique_ptr<BackendInstance>> instances;
  std::vector<ResourceNeeds> needs;  // per instance (empty: not rate limited)
  std::vector<uint32_t> priority;    // per instance: rate_limiter priority
};

// One instance per count of every instance_group (at least one in all),
// each ready; every group's rate_limiter resources are declared to `limiter`
// (nullptr: not rate limited).
Result<InstanceSet> create_instances(const inference::ModelConfig& config, const ModelBackend& backend,
                                     RateLimiter* limiter);

// `t` (the batch's rows of input `name`) in the shape the model takes: the
// config's input `reshape`, with the batch dimension in front when `batched`.
Result<Tensor> shape_input(const inference::ModelConfig& config, const std::string& name, bool batched, int64_t rows,
                           Tensor t);

// Applies the config's output `reshape`s (with the batch dimension in front
// when `batched`) and checks every output of a batched model has `rows` rows.
Status shape_outputs(const inference::ModelConfig& config, std::string_view model, bool batched, int64_t rows,
                     NamedTensors& outputs);

// A backend's error as the requests of `model` see it: same code, the message
// prefixed "model '<model>' failed: ".
inline Status model_failed(std::string_view model, const Status& st) {
  return Status(st.code(), "model '" + std::string(model) + "' failed: " + st.message());
}

// Records one executed batch of `rows` rows (input, compute and output
// times from `start`, `inputs_ready`, `ran_at` and now) and answers each
// request of it (an entry with request.arrival, enqueued and done) with its
// response.
template <typename Entry>
void answer_batch(ModelStats& stats, int64_t rows, std::vector<Entry>& batch, std::vector<InferResponse>& responses,
                  Clock::time_point start, Clock::time_point inputs_ready, Clock::time_point ran_at) {
  const Clock::time_point done = Clock::now();
  stats.record_execution(static_cast<uint64_t>(rows), batch.size(), elapsed_ns(start, inputs_ready),
                         elapsed_ns(inputs_ready, ran_at), elapsed_ns(ran_at, done));
  for (size_t r = 0; r < batch.size(); ++r) {
    stats.record_success(elapsed_ns(batch[r].request.arrival, done), elapsed_ns(batch[r].enqueued, start));
    batch[r].done(std::move(responses[r]));
  }
}

}  // namespace kiln::server
