// Per model-version statistics: the counters behind both the statistics
// endpoint (Triton's ModelStatistics: cumulative count and nanoseconds per
// phase) and the Prometheus metrics (Triton's nv_inference_* names), so the
// two always agree. Everything is lock-free except the per-batch-size table.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace kiln::server {

struct DurationStat {
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> ns{0};
  void add(uint64_t n, uint64_t elapsed_ns) {
    count.fetch_add(n, std::memory_order_relaxed);
    ns.fetch_add(elapsed_ns, std::memory_order_relaxed);
  }
};

// A Prometheus histogram with fixed upper bounds (cumulative on output).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // Non-cumulative count per bucket; the last entry is the +Inf bucket.
  std::vector<uint64_t> bucket_counts() const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micro_{0};  // sum * 1e3, kept integral for atomics
};

enum class FailureReason { kRejected, kCanceled, kBackend, kOther };
inline constexpr int kFailureReasons = 4;
const char* failure_reason_name(FailureReason reason);

struct BatchStat {
  uint64_t count = 0;
  uint64_t compute_input_ns = 0;
  uint64_t compute_infer_ns = 0;
  uint64_t compute_output_ns = 0;
};

class ModelStats {
 public:
  ModelStats();

  // A request finished successfully after `request_ns` end to end.
  void record_success(uint64_t request_ns, uint64_t queue_ns);
  void record_failure(FailureReason reason, uint64_t request_ns);
  // One model execution over `batch_size` inferences made of `requests` requests.
  void record_execution(uint64_t batch_size, uint64_t requests, uint64_t input_ns, uint64_t infer_ns,
                        uint64_t output_ns);

  DurationStat success, fail, queue, compute_input, compute_infer, compute_output;
  DurationStat cache_hit, cache_miss;  // response cache lookups
  std::atomic<uint64_t> inference_count{0};
  std::atomic<uint64_t> execution_count{0};
  std::atomic<uint64_t> last_inference_ms{0};  // milliseconds since the epoch
  std::atomic<int64_t> pending{0};             // queued, not yet executing
  std::array<std::atomic<uint64_t>, kFailureReasons> failures{};

  Histogram request_us;    // end-to-end request latency
  Histogram queue_us;      // time in the scheduler's queue
  Histogram infer_us;      // model execution time per batch
  Histogram batch_size;    // sizes of the batches the scheduler formed

  std::map<uint64_t, BatchStat> batch_table() const;

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, BatchStat> batches_;  // guarded by mu_
};

}  // namespace kiln::server
