// Scheduler: runs a model version's requests on its instances.
//
// One queue per priority level (level 1 first) feeds `instance_count` worker
// threads, each owning one BackendInstance (an execution context), so
// instances run concurrently. With dynamic batching a worker gathers
// shape-compatible requests from the head of the queues into one batch (up to
// max_batch_size, or a preferred batch size), waiting at most
// max_queue_delay_microseconds for more, runs it once and splits the outputs
// back to the requests. Queue size limits and timeouts come from the
// configured queue policies; a rejected request gets a clear error.
//
// A model that neither batches nor is rate limited and whose executions are
// short (under kInlineBelow) runs a request on the thread that enqueues it
// when the queue is empty and an instance is idle: the hand-off to a worker
// thread and back would cost more than the execution itself.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model_config.pb.h"
#include "server/backend.h"
#include "server/inference.h"
#include "server/rate_limiter.h"
#include "server/stats.h"

namespace kiln::server {

class Scheduler {
 public:
  // `config` must be complete (complete_config); `stats` receives every
  // execution. The scheduler shares ownership of the backend.
  Scheduler(const inference::ModelConfig& config, std::string version, std::shared_ptr<const ModelBackend> backend,
            std::shared_ptr<ModelStats> stats);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Instances with an instance_group rate_limiter then execute only while
  // they hold its resources. Call before start().
  void set_rate_limiter(std::shared_ptr<RateLimiter> limiter) { limiter_ = std::move(limiter); }
  // Creates the instances and starts their threads.
  Status start();
  // Queues a validated request whose inputs hold `batch` rows (1 for a model
  // without batching). `done` is called exactly once, possibly before
  // enqueue returns (rejections).
  void enqueue(InferRequest request, int64_t batch, InferCallback done);
  // Stops accepting, finishes every queued request and joins the threads.
  // Idempotent; must not be called from a scheduler thread.
  void stop();

 private:
  struct Queued {
    InferRequest request;
    InferCallback done;
    int64_t batch = 1;
    Clock::time_point enqueued;
    Clock::time_point deadline;  // time_point::max() when none
  };
  struct LevelPolicy {
    uint32_t max_queue_size = 0;  // 0: unbounded
    uint64_t default_timeout_us = 0;
    bool allow_timeout_override = false;
    bool delay_on_timeout = false;  // timeout_action DELAY: keep it queued
  };

  void worker(size_t index);
  // Runs `q` on an idle instance on this thread if the model qualifies (see
  // above); false leaves `q` untouched for the queue. mu_ must be held through `lock`,
  // which is released when it runs.
  bool try_run_inline(std::unique_lock<std::mutex>& lock, Queued& q);
  // Takes the next batch off the queues (mu_ held through `lock`). Empty when stopping and drained.
  std::vector<Queued> next_batch(std::unique_lock<std::mutex>& lock, std::vector<Queued>& expired);
  void execute(BackendInstance& instance, std::vector<Queued>& batch);
  // execute() of a decoupled model: responses stream out through RunInfo::emit.
  void execute_decoupled(BackendInstance& instance, std::vector<Queued>& batch, const NamedTensors& feeds,
                         RunInfo& info, int64_t rows, Clock::time_point start, Clock::time_point inputs_ready);
  void fail_all(std::vector<Queued>& batch, const Status& status);
  bool compatible(const Queued& a, const Queued& b) const;

  const std::string model_name_;
  const std::string version_;
  const inference::ModelConfig config_;
  std::shared_ptr<const ModelBackend> backend_;
  std::shared_ptr<ModelStats> stats_;
  const bool batching_;       // max_batch_size > 0 and dynamic_batching configured
  const int64_t max_batch_;   // max(1, max_batch_size)
  int64_t target_batch_ = 1;  // largest preferred size, else max_batch_
  std::vector<int64_t> preferred_;
  std::chrono::microseconds max_delay_{0};
  size_t default_level_ = 0;
  std::vector<LevelPolicy> policies_;  // one per level
  std::vector<std::string> output_names_;

  std::shared_ptr<RateLimiter> limiter_;
  std::vector<ResourceNeeds> needs_;      // per instance (empty: not rate limited)
  std::vector<uint32_t> limit_priority_;  // per instance
  std::vector<std::unique_ptr<BackendInstance>> instances_;
  // One per instance, held while it executes (by its worker or an inline run).
  std::vector<std::unique_ptr<std::mutex>> instance_mu_;
  bool may_inline_ = false;                  // no batching, no rate limiter, not decoupled
  std::atomic<int64_t> last_exec_ns_{-1};   // the latest execution's duration; -1 before the first
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::deque<Queued>> queues_;  // guarded by mu_; index = level - 1
  size_t queued_ = 0;                       // guarded by mu_
  bool stopping_ = false;                   // guarded by mu_
  std::mutex stop_mu_;                      // serializes stop()
};

}  // namespace kiln::server
