#include "server/scheduler.h"

#include <algorithm>
#include <utility>

#include "core/error.h"
#include "core/logging.h"
#include "server/batching.h"
#include "server/instances.h"

namespace kiln::server {

namespace {
// Executions shorter than this may run on the enqueuing thread (an HTTP or
// gRPC thread): long enough to cover a tiny model, too short to hold up the
// other connections that thread serves.
constexpr int64_t kInlineBelowNs = 500'000;
}  // namespace

Scheduler::Scheduler(const inference::ModelConfig& config, std::string version,
                     std::shared_ptr<const ModelBackend> backend, std::shared_ptr<ModelStats> stats)
    : model_name_(config.name()),
      version_(std::move(version)),
      config_(config),
      backend_(std::move(backend)),
      stats_(std::move(stats)),
      batching_(config.max_batch_size() > 0 && config.has_dynamic_batching()),
      max_batch_(std::max(1, config.max_batch_size())) {
  target_batch_ = max_batch_;
  size_t levels = 1;
  LevelPolicy base;
  if (config.has_dynamic_batching()) {
    const auto& db = config.dynamic_batching();
    for (int32_t p : db.preferred_batch_size()) preferred_.push_back(p);
    if (!preferred_.empty()) target_batch_ = *std::max_element(preferred_.begin(), preferred_.end());
    max_delay_ = std::chrono::microseconds(
        static_cast<int64_t>(std::min<uint64_t>(db.max_queue_delay_microseconds(), 60'000'000)));
    levels = std::max<uint64_t>(1, db.priority_levels());
    default_level_ =
        db.default_priority_level() > 0 ? static_cast<size_t>(db.default_priority_level() - 1) : levels / 2;
    if (db.priority_levels() == 0) default_level_ = 0;
    const auto& qp = db.default_queue_policy();
    base.max_queue_size = qp.max_queue_size();
    base.default_timeout_us = qp.default_timeout_microseconds();
    base.allow_timeout_override = qp.allow_timeout_override();
    base.delay_on_timeout = qp.timeout_action() == inference::ModelQueuePolicy::DELAY;
  }
  policies_.assign(levels, base);
  if (config.has_dynamic_batching()) {
    for (const auto& [level, qp] : config.dynamic_batching().priority_queue_policy()) {
      if (level < 1 || level > levels) continue;
      LevelPolicy& p = policies_[static_cast<size_t>(level - 1)];
      p.max_queue_size = qp.max_queue_size();
      p.default_timeout_us = qp.default_timeout_microseconds();
      p.allow_timeout_override = qp.allow_timeout_override();
      p.delay_on_timeout = qp.timeout_action() == inference::ModelQueuePolicy::DELAY;
    }
  }
  queues_.resize(levels);
  for (const auto& out : config.output()) output_names_.push_back(out.name());
}

Scheduler::~Scheduler() { stop(); }

Status Scheduler::start() {
  KILN_ASSIGN_OR_RETURN(InstanceSet set, create_instances(config_, *backend_, limiter_.get()));
  instances_ = std::move(set.instances);
  needs_ = std::move(set.needs);
  limit_priority_ = std::move(set.priority);
  for (size_t i = 0; i < instances_.size(); ++i) instance_mu_.push_back(std::make_unique<std::mutex>());
  may_inline_ = !batching_ && !config_.model_transaction_policy().decoupled() &&
                std::all_of(needs_.begin(), needs_.end(), [&](const ResourceNeeds& n) { return !limiter_ || n.empty(); });
  for (size_t i = 0; i < instances_.size(); ++i) threads_.emplace_back([this, i] { worker(i); });
  return Status::ok();
}

void Scheduler::enqueue(InferRequest request, int64_t batch, InferCallback done) {
  size_t level = default_level_;
  if (request.priority > 0) level = std::min<size_t>(queues_.size(), request.priority) - 1;
  const LevelPolicy& policy = policies_[level];
  Queued q;
  q.batch = batch;
  q.enqueued = Clock::now();
  uint64_t timeout_us = policy.default_timeout_us;
  if (request.timeout_us > 0 && (timeout_us == 0 || policy.allow_timeout_override || request.timeout_us < timeout_us)) {
    timeout_us = request.timeout_us;
  }
  q.deadline = timeout_us > 0 && !policy.delay_on_timeout
                   ? q.enqueued + std::chrono::microseconds(
                                      static_cast<int64_t>(std::min<uint64_t>(timeout_us, 3'600'000'000ULL)))
                   : Clock::time_point::max();
  q.request = std::move(request);
  q.done = std::move(done);
  Status rejected;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (try_run_inline(lock, q)) return;
    if (stopping_) {
      rejected = unavailable("model '{}' version {} is unloading", model_name_, version_);
    } else if (policy.max_queue_size > 0 && queues_[level].size() >= policy.max_queue_size) {
      rejected = unavailable("Exceeds maximum queue size: model '{}' already has {} queued requests", model_name_,
                             policy.max_queue_size);
    } else {
      queues_[level].push_back(std::move(q));
      ++queued_;
      stats_->pending.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (rejected.is_ok()) {
    cv_.notify_one();
    return;
  }
  stats_->record_failure(FailureReason::kRejected, elapsed_ns(q.request.arrival, Clock::now()));
  q.done(std::move(rejected));
}

bool Scheduler::try_run_inline(std::unique_lock<std::mutex>& lock, Queued& q) {
  if (!may_inline_ || stopping_ || queued_ > 0) return false;
  const int64_t last = last_exec_ns_.load(std::memory_order_relaxed);
  if (last < 0 || last >= kInlineBelowNs) return false;
  for (size_t i = 0; i < instance_mu_.size(); ++i) {
    std::unique_lock<std::mutex> busy(*instance_mu_[i], std::try_to_lock);
    if (!busy.owns_lock()) continue;
    lock.unlock();
    std::vector<Queued> batch;
    batch.push_back(std::move(q));
    execute(*instances_[i], batch);
    return true;
  }
  return false;
}

void Scheduler::stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  // Inline runs started before stopping_ was set finish first.
  for (auto& m : instance_mu_) std::lock_guard<std::mutex> wait(*m);
  instances_.clear();
}

bool Scheduler::compatible(const Queued& a, const Queued& b) const {
  const auto& ia = a.request.inputs;
  const auto& ib = b.request.inputs;
  if (ia.size() != ib.size()) return false;
  for (size_t i = 0; i < ia.size(); ++i) {
    const Tensor& ta = ia[i].tensor;
    const Tensor& tb = ib[i].tensor;
    if (ia[i].name != ib[i].name || ta.dtype() != tb.dtype() || ta.rank() != tb.rank() || ta.rank() < 1) return false;
    if (!std::equal(ta.dims().begin() + 1, ta.dims().end(), tb.dims().begin() + 1)) return false;
  }
  return true;
}

std::vector<Scheduler::Queued> Scheduler::next_batch(std::unique_lock<std::mutex>& lock, std::vector<Queued>& expired) {
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || queued_ > 0; });
    if (queued_ == 0) return {};
    // Drop requests whose queue timeout has passed.
    Clock::time_point now = Clock::now();
    for (auto& queue : queues_) {
      for (auto it = queue.begin(); it != queue.end();) {
        if (it->deadline <= now) {
          expired.push_back(std::move(*it));
          it = queue.erase(it);
          --queued_;
        } else {
          ++it;
        }
      }
    }
    if (queued_ == 0) {
      if (!expired.empty()) return {};
      continue;
    }
    // Gather from the head, highest priority first, stopping at the first
    // request that does not fit or has other shapes.
    const Queued* head = nullptr;
    int64_t rows = 0;
    size_t count = 0;
    bool blocked = false;
    for (auto& queue : queues_) {
      for (const Queued& q : queue) {
        if (!head) head = &q;
        if (count > 0 && (!batching_ || !compatible(*head, q) || rows + q.batch > max_batch_)) {
          blocked = true;
          break;
        }
        rows += q.batch;
        ++count;
      }
      if (blocked) break;
    }
    bool take = !batching_ || stopping_ || blocked || rows >= target_batch_ || max_delay_.count() == 0;
    if (!take && !preferred_.empty() && count == queued_ &&
        std::find(preferred_.begin(), preferred_.end(), rows) != preferred_.end()) {
      take = true;  // a preferred size and nothing else waiting to join it
    }
    Clock::time_point oldest = head->enqueued;
    if (!take && now >= oldest + max_delay_) take = true;
    if (!take) {
      cv_.wait_until(lock, oldest + max_delay_);
      continue;
    }
    std::vector<Queued> batch;
    batch.reserve(count);
    for (auto& queue : queues_) {
      while (batch.size() < count && !queue.empty()) {
        batch.push_back(std::move(queue.front()));
        queue.pop_front();
      }
    }
    queued_ -= batch.size();
    return batch;
  }
}

void Scheduler::worker(size_t index) {
  BackendInstance* instance = instances_[index].get();
  const ResourceNeeds& needs = needs_[index];
  const bool limited = limiter_ && !needs.empty();
  for (;;) {
    std::vector<Queued> expired;
    std::vector<Queued> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      batch = next_batch(lock, expired);
      if (batch.empty() && expired.empty() && stopping_ && queued_ == 0) return;
    }
    stats_->pending.fetch_sub(static_cast<int64_t>(batch.size() + expired.size()), std::memory_order_relaxed);
    for (Queued& q : expired) {
      stats_->record_failure(FailureReason::kRejected, elapsed_ns(q.request.arrival, Clock::now()));
      q.done(unavailable("Request timeout expired: model '{}' queued it longer than its timeout", model_name_));
    }
    if (batch.empty()) continue;
    if (limited) limiter_->acquire(needs, limit_priority_[index]);
    {
      std::lock_guard<std::mutex> busy(*instance_mu_[index]);
      execute(*instance, batch);
    }
    if (limited) limiter_->release(needs);
  }
}

void Scheduler::fail_all(std::vector<Queued>& batch, const Status& status) {
  for (Queued& q : batch) {
    stats_->record_failure(FailureReason::kBackend, elapsed_ns(q.request.arrival, Clock::now()));
    q.done(status);
  }
}

void Scheduler::execute(BackendInstance& instance, std::vector<Queued>& batch) {
  const Clock::time_point start = Clock::now();
  const bool model_batches = config_.max_batch_size() > 0;
  int64_t rows = 0;
  for (const Queued& q : batch) rows += q.batch;

  NamedTensors feeds;
  const auto& first_inputs = batch[0].request.inputs;
  for (size_t i = 0; i < first_inputs.size(); ++i) {
    Tensor t;
    if (batch.size() == 1) {
      t = first_inputs[i].tensor;
    } else {
      std::vector<const Tensor*> parts;
      for (const Queued& q : batch) parts.push_back(&q.request.inputs[i].tensor);
      auto joined = concat_rows(parts);
      if (!joined.is_ok()) return fail_all(batch, joined.status());
      t = std::move(joined).value();
    }
    auto shaped = shape_input(config_, first_inputs[i].name, model_batches, rows, std::move(t));
    if (!shaped.is_ok()) return fail_all(batch, shaped.status());
    feeds.emplace_back(first_inputs[i].name, std::move(shaped).value());
  }
  const Clock::time_point inputs_ready = Clock::now();
  RunInfo info;
  if (batch.size() == 1 || model_batches) {
    for (const Queued& q : batch) {
      info.request_ids.push_back(q.request.id);
      info.request_rows.push_back(q.batch);
    }
  }
  if (config_.model_transaction_policy().decoupled()) {
    return execute_decoupled(instance, batch, feeds, info, rows, start, inputs_ready);
  }
  std::vector<Status> request_errors(info.request_rows.size());
  auto ran = instance.run_with_info(feeds, output_names_, info, &request_errors);
  const Clock::time_point ran_at = Clock::now();
  last_exec_ns_.store(static_cast<int64_t>(elapsed_ns(start, ran_at)), std::memory_order_relaxed);
  if (!ran.is_ok()) {
    return fail_all(batch, model_failed(model_name_, ran.status()));
  }
  NamedTensors outputs = std::move(ran).value();
  // Requests the backend failed alone leave the batch; the outputs hold the others' rows.
  if (std::any_of(request_errors.begin(), request_errors.end(), [](const Status& s) { return !s.is_ok(); })) {
    std::vector<Queued> kept;
    for (size_t r = 0; r < batch.size(); ++r) {
      if (request_errors[r].is_ok()) {
        kept.push_back(std::move(batch[r]));
        continue;
      }
      rows -= batch[r].batch;
      stats_->record_failure(FailureReason::kBackend, elapsed_ns(batch[r].request.arrival, Clock::now()));
      batch[r].done(model_failed(model_name_, request_errors[r]));
    }
    batch = std::move(kept);
    if (batch.empty()) return;
  }
  // Back to the config's shapes (reshape) and check the batch dimension.
  if (Status shaped = shape_outputs(config_, model_name_, model_batches, rows, outputs); !shaped.is_ok()) {
    return fail_all(batch, shaped);
  }
  std::vector<InferResponse> responses(batch.size());
  int64_t offset = 0;
  for (size_t r = 0; r < batch.size(); ++r) {
    const InferRequest& req = batch[r].request;
    InferResponse& resp = responses[r];
    resp.model_name = model_name_;
    resp.model_version = version_;
    resp.id = req.id;
    auto add_output = [&](const std::string& name, const Tensor& tensor) -> Status {
      if (batch.size() == 1) {
        resp.outputs.push_back({name, tensor});
        return Status::ok();
      }
      KILN_ASSIGN_OR_RETURN(Tensor part, slice_rows(tensor, offset, batch[r].batch));
      resp.outputs.push_back({name, std::move(part)});
      return Status::ok();
    };
    Status st;
    if (req.requested_outputs.empty()) {
      for (const auto& [name, tensor] : outputs) {
        st = add_output(name, tensor);
        if (!st.is_ok()) break;
      }
    } else {
      for (const std::string& name : req.requested_outputs) {
        auto it = std::find_if(outputs.begin(), outputs.end(), [&](const auto& o) { return o.first == name; });
        if (it == outputs.end()) {
          st = internal_error("model '{}' did not produce output '{}'", model_name_, name);
        } else {
          st = add_output(name, it->second);
        }
        if (!st.is_ok()) break;
      }
    }
    if (!st.is_ok()) return fail_all(batch, st);
    offset += batch[r].batch;
  }
  answer_batch(*stats_, rows, batch, responses, start, inputs_ready, ran_at);
}

void Scheduler::execute_decoupled(BackendInstance& instance, std::vector<Queued>& batch, const NamedTensors& feeds,
                                  RunInfo& info, int64_t rows, Clock::time_point start,
                                  Clock::time_point inputs_ready) {
  std::vector<bool> open(batch.size(), true);
  info.emit = [&](size_t r, std::optional<Result<NamedTensors>> response, bool final) {
    if (r >= batch.size() || !open[r]) return;
    Queued& q = batch[r];
    Result<InferResponse> answer = InferResponse{};
    if (response && !response->is_ok()) {
      answer = model_failed(model_name_, response->status());
    } else {
      InferResponse& out = answer.value();
      out.model_name = model_name_;
      out.model_version = version_;
      out.id = q.request.id;
      out.final_only = !response.has_value();
      if (response) {
        // What the response carries of the requested outputs (all when none were named).
        for (auto& [name, tensor] : response->value()) {
          const auto& wanted = q.request.requested_outputs;
          if (wanted.empty() || std::find(wanted.begin(), wanted.end(), name) != wanted.end()) {
            out.outputs.push_back({name, std::move(tensor)});
          }
        }
      }
    }
    if (!final) {
      if (q.request.partial) q.request.partial(std::move(answer));
      return;
    }
    open[r] = false;
    if (answer.is_ok()) {
      stats_->record_success(elapsed_ns(q.request.arrival, Clock::now()), elapsed_ns(q.enqueued, start));
    } else {
      stats_->record_failure(FailureReason::kBackend, elapsed_ns(q.request.arrival, Clock::now()));
    }
    q.done(std::move(answer));
  };
  auto ran = instance.run_with_info(feeds, output_names_, info, nullptr);
  const Clock::time_point ran_at = Clock::now();
  stats_->record_execution(static_cast<uint64_t>(rows), batch.size(), elapsed_ns(start, inputs_ready),
                           elapsed_ns(inputs_ready, ran_at), 0);
  for (size_t r = 0; r < batch.size(); ++r) {
    if (!open[r]) continue;
    stats_->record_failure(FailureReason::kBackend, elapsed_ns(batch[r].request.arrival, Clock::now()));
    batch[r].done(ran.is_ok() ? internal_error("model '{}' returned without completing request '{}' (the "
                                               "TRITONSERVER_RESPONSE_COMPLETE_FINAL flag)",
                                               model_name_, batch[r].request.id)
                              : model_failed(model_name_, ran.status()));
  }
}

}  // namespace kiln::server
