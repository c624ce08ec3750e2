// InferRequest / InferResponse: the frontend-neutral form of one inference
// call. HTTP and gRPC decode into an InferRequest, the core validates it
// against the model's configuration and hands it to the model's scheduler,
// and the scheduler answers through the request's callback exactly once.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::server {

using Clock = std::chrono::steady_clock;

// Nanoseconds from `from` to `to` (0 if the clock says `to` came first).
inline uint64_t elapsed_ns(Clock::time_point from, Clock::time_point to) {
  return static_cast<uint64_t>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count()));
}

// Where a tensor lives in a registered system shared-memory region.
struct ShmRef {
  std::string region;
  uint64_t byte_size = 0;
  uint64_t offset = 0;
};

struct InferInput {
  std::string name;
  Tensor tensor;  // full shape, batch dim included for batching models
  // Set when the input's bytes are in shared memory: the core reads them
  // into `tensor` (of shm_dtype and shm_shape) before validation.
  std::optional<ShmRef> shm{};
  DataType shm_dtype = DataType::kUndefined;
  std::vector<int64_t> shm_shape{};
};

struct InferOutput {
  std::string name;
  Tensor tensor;
  // Set when the core wrote the output into a shared-memory region: the
  // frontends then send no data for it, only the region parameters.
  std::optional<ShmRef> shm{};
};

// A sequence's correlation id: a non-zero integer or a non-empty string
// (neither: the request is not part of a sequence).
struct CorrelationId {
  uint64_t number = 0;
  std::string text;
  bool is_string = false;
  bool empty() const { return is_string ? text.empty() : number == 0; }
  std::string str() const { return is_string ? "'" + text + "'" : std::to_string(number); }
  bool operator<(const CorrelationId& o) const {
    if (is_string != o.is_string) return is_string < o.is_string;
    return is_string ? text < o.text : number < o.number;
  }
  bool operator==(const CorrelationId& o) const {
    return is_string == o.is_string && (is_string ? text == o.text : number == o.number);
  }
};

struct InferResponse {
  std::string model_name;
  std::string model_version;
  std::string id;
  std::vector<InferOutput> outputs;  // in the order requested (model order if none requested)
  // A decoupled model completed the request with the final flag alone: there
  // is no response to send (the gRPC stream sends an empty one only when the
  // client asked for triton_enable_empty_final_response).
  bool final_only = false;
};

// A response of a decoupled model before its request completes.
using PartialCallback = std::function<void(Result<InferResponse>)>;

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
  CorrelationId sequence_id;                   // sequence models: which sequence
  bool sequence_start = false;
  bool sequence_end = false;
  std::map<std::string, ShmRef> output_shm;       // requested outputs to write into shared memory
  std::map<std::string, int64_t> output_classes;  // requested outputs answered as top-k classes (classification.h)
  // Decoupled models (model_transaction_policy.decoupled) answer with any
  // number of responses: each before the completion goes here, and the
  // infer() callback completes the request. Only a stream (gRPC
  // ModelStreamInfer) sets it; a decoupled model refuses requests without it.
  PartialCallback partial;
  bool empty_final_response = false;  // the client asked triton_enable_empty_final_response
  Clock::time_point arrival = Clock::now();
};

}  // namespace kiln::server
