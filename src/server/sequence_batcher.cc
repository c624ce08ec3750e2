#include "server/sequence_batcher.h"

#include <algorithm>
#include <utility>

#include "core/error.h"
#include "core/logging.h"
#include "server/batching.h"
#include "server/instances.h"

namespace kiln::server {
namespace {

// Sequences that may wait for a slot at once; more are refused (each holds its queued requests).
constexpr size_t kMaxBacklog = 4096;

}  // namespace

Result<std::unique_ptr<SequenceBatcher>> SequenceBatcher::create(const inference::ModelConfig& config,
                                                                 std::string version, const std::string& model_dir,
                                                                 std::shared_ptr<const ModelBackend> backend,
                                                                 std::shared_ptr<ModelStats> stats) {
  KILN_ASSIGN_OR_RETURN(SequenceSpecs specs, SequenceSpecs::parse(config, *backend, model_dir));
  return std::unique_ptr<SequenceBatcher>(
      new SequenceBatcher(config, std::move(version), std::move(backend), std::move(stats), std::move(specs)));
}

SequenceBatcher::SequenceBatcher(const inference::ModelConfig& config, std::string version,
                                 std::shared_ptr<const ModelBackend> backend, std::shared_ptr<ModelStats> stats,
                                 SequenceSpecs specs)
    : model_name_(config.name()),
      version_(std::move(version)),
      config_(config),
      backend_(std::move(backend)),
      stats_(std::move(stats)),
      specs_(std::move(specs)),
      batched_(config.max_batch_size() > 0),
      max_rows_(std::max(1, config.max_batch_size())) {
  const auto& sb = config.sequence_batching();
  target_rows_ = max_rows_;
  uint64_t delay_us = 0;
  if (sb.has_oldest()) {
    oldest_ = true;
    const auto& o = sb.oldest();
    if (o.preferred_batch_size_size() > 0) {
      target_rows_ = *std::max_element(o.preferred_batch_size().begin(), o.preferred_batch_size().end());
    }
    max_candidates_ = static_cast<size_t>(o.max_candidate_sequences());
    delay_us = o.max_queue_delay_microseconds();
  } else if (sb.has_direct()) {
    delay_us = sb.direct().max_queue_delay_microseconds();
  }
  max_delay_ = std::chrono::microseconds(static_cast<int64_t>(std::min<uint64_t>(delay_us, 60'000'000)));
  uint64_t idle_us = sb.max_sequence_idle_microseconds() == 0 ? 1'000'000 : sb.max_sequence_idle_microseconds();
  idle_ = std::chrono::microseconds(static_cast<int64_t>(std::min<uint64_t>(idle_us, 86'400'000'000ULL)));
  for (const auto& out : config.output()) output_names_.push_back(out.name());
  for (const StateSpec& s : specs_.states()) {
    if (std::find(output_names_.begin(), output_names_.end(), s.output) == output_names_.end()) {
      output_names_.push_back(s.output);
    }
  }
}

SequenceBatcher::~SequenceBatcher() { stop(); }

Status SequenceBatcher::start() {
  KILN_ASSIGN_OR_RETURN(InstanceSet set, create_instances(config_, *backend_, limiter_.get()));
  instances_ = std::move(set.instances);
  needs_ = std::move(set.needs);
  limit_priority_ = std::move(set.priority);
  const int count = static_cast<int>(instances_.size());
  slots_used_.assign(static_cast<size_t>(count), 0);
  for (int i = 0; i < count; ++i) {
    threads_.emplace_back([this, i, p = instances_[static_cast<size_t>(i)].get()] { worker(i, p); });
  }
  reaper_thread_ = std::thread([this] { reaper(); });
  return Status::ok();
}

bool SequenceBatcher::try_slot_locked(Sequence& seq) {
  if (oldest_) {
    if (max_candidates_ > 0 && slotted_count_ >= max_candidates_) return false;
  } else {
    auto best = std::min_element(slots_used_.begin(), slots_used_.end());
    if (*best >= max_rows_) return false;
    ++*best;
    seq.instance = static_cast<int>(best - slots_used_.begin());
  }
  seq.slotted = true;
  ++slotted_count_;
  return true;
}

void SequenceBatcher::release_locked(const CorrelationId& id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return;
  Sequence& seq = *it->second;
  if (seq.slotted) {
    --slotted_count_;
    if (seq.instance >= 0) --slots_used_[static_cast<size_t>(seq.instance)];
  }
  sequences_.erase(it);
  while (!backlog_.empty()) {
    auto next = sequences_.find(backlog_.front());
    if (next == sequences_.end()) {
      backlog_.pop_front();
      continue;
    }
    if (!try_slot_locked(*next->second)) break;
    backlog_.pop_front();
  }
}

void SequenceBatcher::enqueue(InferRequest request, int64_t batch, InferCallback done) {
  Status rejected;
  if (request.sequence_id.empty()) {
    rejected = invalid_argument(
        "inference request to model '{}' must specify a non-zero or non-empty correlation ID (parameter sequence_id)",
        model_name_);
  } else if (batch != 1) {
    rejected = invalid_argument("sequence requests to model '{}' must have batch size 1, got {}", model_name_, batch);
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    const CorrelationId& id = request.sequence_id;
    auto it = sequences_.find(id);
    Sequence* seq = it == sequences_.end() ? nullptr : it->second.get();
    if (stopping_) {
      rejected = unavailable("model '{}' version {} is unloading", model_name_, version_);
    } else if ((seq == nullptr || !seq->open) && !request.sequence_start) {
      if (seq == nullptr && timed_out_.count(id)) {
        rejected = invalid_argument(
            "sequence {} of model '{}' was released after being idle for more than {} us "
            "(max_sequence_idle_microseconds); start it again with sequence_start",
            id.str(), model_name_, idle_.count());
      } else {
        rejected = invalid_argument(
            "inference request for sequence {} to model '{}' must specify the START flag on the first request of the "
            "sequence",
            id.str(), model_name_);
      }
    } else {
      if (seq == nullptr && backlog_.size() >= kMaxBacklog) {
        rejected = unavailable("model '{}' has {} sequences waiting for a slot; try again later", model_name_,
                               backlog_.size());
      } else if (seq == nullptr) {
        auto fresh = std::make_unique<Sequence>();
        fresh->id = id;
        seq = fresh.get();
        sequences_.emplace(id, std::move(fresh));
        timed_out_.erase(id);
        if (!try_slot_locked(*seq)) backlog_.push_back(id);
      }
      if (rejected.is_ok()) {
        seq->open = !request.sequence_end;
        seq->last_activity = Clock::now();
        Pending p;
        p.enqueued = seq->last_activity;
        p.request = std::move(request);
        p.done = std::move(done);
        seq->queue.push_back(std::move(p));
        stats_->pending.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  if (rejected.is_ok()) {
    cv_.notify_all();
    return;
  }
  stats_->record_failure(FailureReason::kRejected, elapsed_ns(request.arrival, Clock::now()));
  done(std::move(rejected));
}

bool SequenceBatcher::compatible(const Sequence& a, const Sequence& b) const {
  const auto& ia = a.queue.front().request.inputs;
  const auto& ib = b.queue.front().request.inputs;
  if (ia.size() != ib.size()) return false;
  for (size_t i = 0; i < ia.size(); ++i) {
    const Tensor& ta = ia[i].tensor;
    const Tensor& tb = ib[i].tensor;
    if (ia[i].name != ib[i].name || ta.dtype() != tb.dtype() || ta.dims() != tb.dims()) return false;
  }
  // States shapes must agree too (a sequence that has not started yet has the initial state).
  for (size_t j = 0; j < a.state.size() && j < b.state.size(); ++j) {
    if (a.state[j].dims() != b.state[j].dims()) return false;
  }
  return true;
}

std::vector<SequenceBatcher::Sequence*> SequenceBatcher::pick(int index, Clock::time_point now,
                                                              Clock::time_point* wait_until) {
  std::vector<Sequence*> ready;
  int64_t joinable = 0;
  for (auto& [id, s] : sequences_) {
    if (!s->slotted || (!oldest_ && s->instance != index)) continue;
    ++joinable;
    if (!s->busy && !s->queue.empty()) ready.push_back(s.get());
  }
  if (ready.empty()) return {};
  std::stable_sort(ready.begin(), ready.end(), [](const Sequence* a, const Sequence* b) {
    return a->queue.front().enqueued < b->queue.front().enqueued;
  });
  std::vector<Sequence*> out{ready[0]};
  for (size_t i = 1; i < ready.size() && static_cast<int64_t>(out.size()) < max_rows_; ++i) {
    if (compatible(*ready[0], *ready[i])) out.push_back(ready[i]);
  }
  int64_t target = std::min<int64_t>(oldest_ ? target_rows_ : max_rows_, joinable);
  if (!stopping_ && max_delay_.count() > 0 && static_cast<int64_t>(out.size()) < target) {
    Clock::time_point deadline = ready[0]->queue.front().enqueued + max_delay_;
    if (now < deadline) {
      *wait_until = deadline;
      return {};
    }
  }
  return out;
}

void SequenceBatcher::worker(int index, BackendInstance* instance) {
  for (;;) {
    std::vector<Sequence*> seqs;
    std::vector<Pending> batch;
    std::vector<bool> ends;
    {
      std::unique_lock<std::mutex> lock(mu_);
      for (;;) {
        Clock::time_point wake = Clock::time_point::max();
        seqs = pick(index, Clock::now(), &wake);
        if (!seqs.empty()) break;
        if (stopping_ && wake == Clock::time_point::max()) return;
        if (wake == Clock::time_point::max()) {
          cv_.wait(lock);
        } else {
          cv_.wait_until(lock, wake);
        }
      }
      for (Sequence* s : seqs) {
        s->busy = true;
        ends.push_back(s->queue.front().request.sequence_end);
        batch.push_back(std::move(s->queue.front()));
        s->queue.pop_front();
      }
    }
    stats_->pending.fetch_sub(static_cast<int64_t>(batch.size()), std::memory_order_relaxed);
    const ResourceNeeds& needs = needs_[static_cast<size_t>(index)];
    const bool limited = limiter_ && !needs.empty();
    if (limited) limiter_->acquire(needs, limit_priority_[static_cast<size_t>(index)]);
    execute(*instance, seqs, batch);
    if (limited) limiter_->release(needs);
    {
      std::lock_guard<std::mutex> lock(mu_);
      Clock::time_point now = Clock::now();
      for (size_t i = 0; i < seqs.size(); ++i) {
        Sequence* s = seqs[i];
        s->busy = false;
        s->last_activity = now;
        if (ends[i] && s->queue.empty()) release_locked(s->id);
      }
    }
    cv_.notify_all();
  }
}

void SequenceBatcher::reaper() {
  auto interval = std::clamp<std::chrono::microseconds>(idle_ / 4, std::chrono::microseconds(1000),
                                                        std::chrono::microseconds(250'000));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, interval);
    Clock::time_point now = Clock::now();
    std::vector<CorrelationId> idle;
    for (auto& [id, s] : sequences_) {
      if (s->slotted && !s->busy && s->queue.empty() && now - s->last_activity >= idle_) idle.push_back(id);
    }
    if (idle.empty()) continue;
    if (timed_out_.size() > 4096) timed_out_.clear();
    for (const CorrelationId& id : idle) {
      KILN_LOG_INFO("model '{}': sequence {} was idle for more than {} us; releasing it", model_name_, id.str(),
                    idle_.count());
      release_locked(id);
      timed_out_.insert(id);
    }
    cv_.notify_all();
  }
}

void SequenceBatcher::stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  std::vector<Pending> orphans;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (const CorrelationId& id : backlog_) {
      auto it = sequences_.find(id);
      if (it == sequences_.end()) continue;
      for (Pending& p : it->second->queue) orphans.push_back(std::move(p));
      sequences_.erase(it);
    }
    backlog_.clear();
  }
  cv_.notify_all();
  stats_->pending.fetch_sub(static_cast<int64_t>(orphans.size()), std::memory_order_relaxed);
  for (Pending& p : orphans) {
    stats_->record_failure(FailureReason::kRejected, elapsed_ns(p.request.arrival, Clock::now()));
    p.done(unavailable("model '{}' version {} is unloading; sequence {} never got a slot", model_name_, version_,
                       p.request.sequence_id.str()));
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  if (reaper_thread_.joinable()) reaper_thread_.join();
  instances_.clear();
}

void SequenceBatcher::fail_all(std::vector<Pending>& batch, const Status& status) {
  for (Pending& p : batch) {
    stats_->record_failure(FailureReason::kBackend, elapsed_ns(p.request.arrival, Clock::now()));
    p.done(status);
  }
}

void SequenceBatcher::execute(BackendInstance& instance, std::vector<Sequence*>& seqs, std::vector<Pending>& batch) {
  const Clock::time_point start = Clock::now();
  const int64_t rows = static_cast<int64_t>(batch.size());
  std::vector<ControlRow> control_rows;
  for (size_t i = 0; i < batch.size(); ++i) {
    const InferRequest& req = batch[i].request;
    if (req.sequence_start || seqs[i]->state.empty()) seqs[i]->state = specs_.initial_states(batched_);
    control_rows.push_back({req.sequence_start, req.sequence_end, req.sequence_id});
  }
  auto join = [&](const std::vector<const Tensor*>& parts) -> Result<Tensor> {
    if (parts.size() == 1) return *parts[0];
    return concat_rows(parts);
  };
  NamedTensors feeds;
  const auto& first_inputs = batch[0].request.inputs;
  for (size_t i = 0; i < first_inputs.size(); ++i) {
    std::vector<const Tensor*> parts;
    for (const Pending& p : batch) parts.push_back(&p.request.inputs[i].tensor);
    auto joined = join(parts);
    if (!joined.is_ok()) return fail_all(batch, joined.status());
    Tensor t = std::move(joined).value();
    auto shaped = shape_input(config_, first_inputs[i].name, batched_, rows, std::move(t));
    if (!shaped.is_ok()) return fail_all(batch, shaped.status());
    feeds.emplace_back(first_inputs[i].name, std::move(shaped).value());
  }
  auto controls = specs_.control_tensors(control_rows, batched_);
  if (!controls.is_ok()) return fail_all(batch, controls.status());
  for (auto& c : controls.value()) feeds.push_back(std::move(c));
  for (size_t j = 0; j < specs_.states().size(); ++j) {
    std::vector<const Tensor*> parts;
    for (Sequence* s : seqs) parts.push_back(&s->state[j]);
    auto joined = join(parts);
    if (!joined.is_ok())
      return fail_all(batch, joined.status().with_context("state '" + specs_.states()[j].input + "'"));
    feeds.emplace_back(specs_.states()[j].input, std::move(joined).value());
  }
  const Clock::time_point inputs_ready = Clock::now();
  RunInfo info;
  if (batch.size() == 1) {
    const InferRequest& req = batch[0].request;
    info.request_ids = {req.id};
    info.correlation_is_string = req.sequence_id.is_string;
    info.correlation_id = req.sequence_id.is_string ? req.sequence_id.text : std::to_string(req.sequence_id.number);
  }
  auto ran = instance.run_with_info(feeds, output_names_, info, nullptr);
  const Clock::time_point ran_at = Clock::now();
  if (!ran.is_ok()) {
    return fail_all(batch, model_failed(model_name_, ran.status()));
  }
  NamedTensors outputs = std::move(ran).value();
  auto find_output = [&](const std::string& name) -> Tensor* {
    for (auto& [n, t] : outputs) {
      if (n == name) return &t;
    }
    return nullptr;
  };
  if (Status shaped = shape_outputs(config_, model_name_, batched_, rows, outputs); !shaped.is_ok()) {
    return fail_all(batch, shaped);
  }
  // The new states: row i of each state output goes to sequence i.
  std::vector<std::vector<Tensor>> next(seqs.size());
  for (const StateSpec& spec : specs_.states()) {
    Tensor* t = find_output(spec.output);
    if (t == nullptr)
      return fail_all(batch, internal_error("model '{}' did not produce state output '{}'", model_name_, spec.output));
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (!batched_) {
        next[i].push_back(t->clone());
        continue;
      }
      auto row = slice_rows(*t, static_cast<int64_t>(i), 1);
      if (!row.is_ok()) return fail_all(batch, row.status());
      next[i].push_back(std::move(row).value());
    }
  }
  std::vector<InferResponse> responses(batch.size());
  for (size_t r = 0; r < batch.size(); ++r) {
    const InferRequest& req = batch[r].request;
    InferResponse& resp = responses[r];
    resp.model_name = model_name_;
    resp.model_version = version_;
    resp.id = req.id;
    std::vector<std::string> names = req.requested_outputs;
    if (names.empty()) {
      for (const auto& cfg : config_.output()) names.push_back(cfg.name());
    }
    for (const std::string& name : names) {
      Tensor* t = find_output(name);
      if (t == nullptr)
        return fail_all(batch, internal_error("model '{}' did not produce output '{}'", model_name_, name));
      if (rows == 1) {
        resp.outputs.push_back({name, *t});
        continue;
      }
      auto part = slice_rows(*t, static_cast<int64_t>(r), 1);
      if (!part.is_ok()) return fail_all(batch, part.status());
      resp.outputs.push_back({name, std::move(part).value()});
    }
  }
  for (size_t i = 0; i < seqs.size(); ++i) seqs[i]->state = std::move(next[i]);
  answer_batch(*stats_, rows, batch, responses, start, inputs_ready, ran_at);
}

}  // namespace kiln::server
