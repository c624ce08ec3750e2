// SequenceBatcher: the scheduler of a stateful model (config
// sequence_batching). Requests carry a correlation id (sequence_id) and
// START / END flags; a sequence's requests run one at a time, in order, and
// the batcher feeds the model's control inputs (START, READY, END, CORRID)
// and implicit state (the state output of step t is the state input of step
// t + 1, kept per sequence here).
//
// Strategies:
// - direct: each sequence is pinned to one instance for its life and holds
//   one of its max(1, max_batch_size) slots; a batch takes one request from
//   each of that instance's sequences that has one ready. Sequences beyond
//   the slots wait in a backlog, in arrival order, for a slot to free.
// - oldest: sequences are not pinned; a free instance batches the heads of
//   the oldest ready sequences (one request per sequence), up to
//   max_batch_size or the largest preferred_batch_size, waiting at most
//   max_queue_delay_microseconds for more. max_candidate_sequences (0: no
//   limit) caps the active sequences; the rest wait in the backlog.
// A sequence that has no request for max_sequence_idle_microseconds (default
// 1 s) is released with its state; its next request must start it again.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "model_config.pb.h"
#include "server/backend.h"
#include "server/inference.h"
#include "server/rate_limiter.h"
#include "server/sequence_state.h"
#include "server/stats.h"

namespace kiln::server {

class SequenceBatcher {
 public:
  // `config` must be complete; `model_dir` holds initial_state/ files.
  static Result<std::unique_ptr<SequenceBatcher>> create(const inference::ModelConfig& config, std::string version,
                                                         const std::string& model_dir,
                                                         std::shared_ptr<const ModelBackend> backend,
                                                         std::shared_ptr<ModelStats> stats);
  ~SequenceBatcher();
  SequenceBatcher(const SequenceBatcher&) = delete;
  SequenceBatcher& operator=(const SequenceBatcher&) = delete;

  // Instances with an instance_group rate_limiter then execute only while
  // they hold its resources. Call before start().
  void set_rate_limiter(std::shared_ptr<RateLimiter> limiter) { limiter_ = std::move(limiter); }
  // Creates the instances and starts their threads and the idle reaper.
  Status start();
  // Queues a validated request (`batch` rows; must be 1). `done` is called exactly once.
  void enqueue(InferRequest request, int64_t batch, InferCallback done);
  // Stops accepting, runs the queued requests of active sequences, fails
  // those of sequences still waiting for a slot, joins the threads.
  void stop();

 private:
  struct Pending {
    InferRequest request;
    InferCallback done;
    Clock::time_point enqueued;
  };
  struct Sequence {
    CorrelationId id;
    std::deque<Pending> queue;
    std::vector<Tensor> state;  // one per state spec
    int instance = -1;          // direct: the instance it is pinned to
    bool slotted = false;       // holds a slot (else waits in the backlog)
    bool busy = false;          // a request of it is executing
    bool open = true;           // the last queued request did not end it
    Clock::time_point last_activity;
  };

  SequenceBatcher(const inference::ModelConfig& config, std::string version, std::shared_ptr<const ModelBackend> backend,
                  std::shared_ptr<ModelStats> stats, SequenceSpecs specs);
  void worker(int index, BackendInstance* instance);
  void reaper();
  // The sequences whose head requests form the next batch of `index` (mu_ held).
  std::vector<Sequence*> pick(int index, Clock::time_point now, Clock::time_point* wait_until);
  void execute(BackendInstance& instance, std::vector<Sequence*>& seqs, std::vector<Pending>& batch);
  void fail_all(std::vector<Pending>& batch, const Status& status);
  bool try_slot_locked(Sequence& seq);
  void release_locked(const CorrelationId& id);
  bool compatible(const Sequence& a, const Sequence& b) const;

  const std::string model_name_;
  const std::string version_;
  const inference::ModelConfig config_;
  std::shared_ptr<const ModelBackend> backend_;
  std::shared_ptr<ModelStats> stats_;
  const SequenceSpecs specs_;
  const bool batched_;       // max_batch_size > 0
  const int64_t max_rows_;   // max(1, max_batch_size)
  bool oldest_ = false;
  int64_t target_rows_ = 1;  // oldest: largest preferred size, else max_rows_
  size_t max_candidates_ = 0;  // oldest: 0 = unlimited
  std::chrono::microseconds max_delay_{0};
  std::chrono::microseconds idle_{1'000'000};
  std::vector<std::string> output_names_;  // config outputs, then state outputs

  std::shared_ptr<RateLimiter> limiter_;
  std::vector<ResourceNeeds> needs_;      // per instance (empty: not rate limited)
  std::vector<uint32_t> limit_priority_;  // per instance
  std::vector<std::unique_ptr<BackendInstance>> instances_;
  std::vector<std::thread> threads_;
  std::thread reaper_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<CorrelationId, std::unique_ptr<Sequence>> sequences_;  // guarded by mu_
  std::deque<CorrelationId> backlog_;                             // guarded by mu_
  std::vector<int> slots_used_;                                   // per instance (direct), guarded by mu_
  size_t slotted_count_ = 0;                                      // guarded by mu_
  std::set<CorrelationId> timed_out_;                             // recently released idle ids, guarded by mu_
  bool stopping_ = false;                                         // guarded by mu_
  std::mutex stop_mu_;
};

}  // namespace kiln::server
