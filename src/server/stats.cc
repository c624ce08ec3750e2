#include "server/stats.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace kiln::server {
namespace {

std::vector<double> latency_bounds_us() {
  return {50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000};
}

std::vector<double> batch_bounds() { return {1, 2, 4, 8, 16, 32, 64, 128, 256}; }

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double value) {
  size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  double scaled = std::max(0.0, value) * 1e3;
  sum_micro_.fetch_add(static_cast<uint64_t>(std::llround(scaled)), std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::bucket_counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

double Histogram::sum() const { return static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e3; }

const char* failure_reason_name(FailureReason reason) {
  switch (reason) {
    case FailureReason::kRejected:
      return "REJECTED";
    case FailureReason::kCanceled:
      return "CANCELED";
    case FailureReason::kBackend:
      return "BACKEND";
    case FailureReason::kOther:
      return "OTHER";
  }
  return "OTHER";
}

ModelStats::ModelStats()
    : request_us(latency_bounds_us()),
      queue_us(latency_bounds_us()),
      infer_us(latency_bounds_us()),
      batch_size(batch_bounds()) {}

void ModelStats::record_success(uint64_t request_ns, uint64_t queue_ns) {
  success.add(1, request_ns);
  queue.add(1, queue_ns);
  request_us.observe(static_cast<double>(request_ns) / 1e3);
  queue_us.observe(static_cast<double>(queue_ns) / 1e3);
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  last_inference_ms.store(static_cast<uint64_t>(now.count()), std::memory_order_relaxed);
}

void ModelStats::record_failure(FailureReason reason, uint64_t request_ns) {
  fail.add(1, request_ns);
  failures[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
}

void ModelStats::record_execution(uint64_t batch, uint64_t requests, uint64_t input_ns, uint64_t infer_ns,
                                  uint64_t output_ns) {
  inference_count.fetch_add(batch, std::memory_order_relaxed);
  execution_count.fetch_add(1, std::memory_order_relaxed);
  // Triton charges every request of a batch with the batch's compute time.
  compute_input.add(requests, input_ns * requests);
  compute_infer.add(requests, infer_ns * requests);
  compute_output.add(requests, output_ns * requests);
  infer_us.observe(static_cast<double>(infer_ns) / 1e3);
  batch_size.observe(static_cast<double>(batch));
  std::lock_guard<std::mutex> lock(mu_);
  BatchStat& b = batches_[batch];
  b.count += 1;
  b.compute_input_ns += input_ns;
  b.compute_infer_ns += infer_ns;
  b.compute_output_ns += output_ns;
}

std::map<uint64_t, BatchStat> ModelStats::batch_table() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batches_;
}

}  // namespace kiln::server
