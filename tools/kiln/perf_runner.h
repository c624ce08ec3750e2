// The load generator behind `kiln perf`: one load level (a concurrency or a
// request rate) measured in windows until the last three agree within the
// stability percentage, or until max_trials windows; client latencies from
// the requests themselves, the server's queue/compute split from the
// statistics endpoint (differences of its cumulative counters).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/client.h"

namespace kiln::cli {

enum class LoadMode { kConcurrency, kRequestRate };

struct PerfSpec {
  client::Protocol protocol = client::Protocol::kHttp;
  std::string url;
  std::string model;
  std::string version;
  int64_t batch_size = 1;
  std::vector<std::vector<client::InferInput>> data;  // sent in turn
  int64_t measurement_interval_ms = 5000;
  double stability_percentage = 10.0;
  int max_trials = 10;
  int percentile = -1;   // -1: stabilize on the average latency
  int max_threads = 16;  // request-rate mode: workers that send on schedule
  bool poisson = false;  // request-rate mode: exponential gaps instead of constant ones
};

// Per-request averages of the server's phases over the measured windows, in ns.
struct ServerSplit {
  uint64_t success_count = 0;
  uint64_t inference_count = 0;
  uint64_t execution_count = 0;
  double request_ns = 0, queue_ns = 0, compute_input_ns = 0, compute_infer_ns = 0, compute_output_ns = 0;
};

struct LevelResult {
  double level = 0;  // the concurrency or the request rate
  int64_t request_count = 0;
  int64_t delayed_count = 0;  // request-rate mode: sent more than 1 ms late
  double duration_s = 0;
  double throughput = 0;  // inferences per second (requests x batch size)
  double avg_ns = 0, stddev_ns = 0;
  double p50_ns = 0, p90_ns = 0, p95_ns = 0, p99_ns = 0, chosen_percentile_ns = 0;
  double send_ns = 0, recv_ns = 0;  // client-side averages
  bool stable = false;
  int windows = 0;
  ServerSplit server;
};

// Runs one level. An error from any request, the statistics endpoint or the
// connection ends the run with that error.
Result<LevelResult> run_perf_level(const PerfSpec& spec, LoadMode mode, double level);

}  // namespace kiln::cli
