// InferRequest / InferResponse: the frontend-neutral form of one inference
// call. HTTP and gRPC decode into an InferRequest, the core validates it
// against the model's configuration and hands it to the model's scheduler,
// and the scheduler answers through the request's callback exactly once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::server {

using Clock = std::chrono::steady_clock;

struct InferInput {
  std::string name;
  Tensor tensor;  // full shape, batch dim included for batching models
};

struct InferOutput {
  std::string name;
  Tensor tensor;
};

struct InferResponse {
  std::string model_name;
  std::string model_version;
  std::string id;
  std::vector<InferOutput> outputs;  // in the order requested (model order if none requested)
};

// Called once with the response or the error. May run on a scheduler thread:
// it must not block for long and must not unload models.
using InferCallback = std::function<void(Result<InferResponse>)>;

struct InferRequest {
  std::string model_name;
  int64_t model_version = 0;  // 0: the highest ready version
  std::string id;
  std::vector<InferInput> inputs;
  std::vector<std::string> requested_outputs;  // empty: every output, in model order
  uint64_t priority = 0;                       // 0: the model's default level; 1 is highest
  uint64_t timeout_us = 0;                     // 0: the model's default queue timeout
  Clock::time_point arrival = Clock::now();
};

}  // namespace kiln::server
