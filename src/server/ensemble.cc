#include "server/ensemble.h"

#include <map>
#include <mutex>
#include <set>

#include "core/error.h"
#include "server/model.h"

namespace kiln::server {

struct Ensemble::Plan {
  std::string name;
  std::string version;
  std::vector<inference::ModelEnsembling::Step> steps;
  std::vector<std::string> outputs;  // the config's outputs, in order
  ModelResolver resolver;
  std::shared_ptr<ModelStats> stats;
};

namespace {

// One request travelling through the steps. Shared by the step callbacks.
struct Run : std::enable_shared_from_this<Run> {
  std::shared_ptr<const Ensemble::Plan> plan;
  InferRequest request;  // inputs moved into `tensors`
  InferCallback done;
  std::mutex mu;
  std::map<std::string, Tensor> tensors;  // guarded by mu
  std::vector<bool> started;              // guarded by mu
  size_t completed = 0;                   // guarded by mu
  size_t running = 0;                     // guarded by mu
  bool finished = false;                  // guarded by mu

  void launch();
  void finish(Result<InferResponse> result);
  void step_done(size_t index, Result<InferResponse> result);
};

void Run::finish(Result<InferResponse> result) {
  const uint64_t ns = elapsed_ns(request.arrival, Clock::now());
  if (result.is_ok()) {
    plan->stats->record_execution(1, 1, 0, ns, 0);
    plan->stats->record_success(ns, 0);
  } else {
    plan->stats->record_failure(FailureReason::kBackend, ns);
  }
  done(std::move(result));
}

void Run::launch() {
  std::vector<std::pair<size_t, InferRequest>> ready;
  bool all_done = false;
  bool stuck = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (finished) return;
    for (size_t i = 0; i < plan->steps.size(); ++i) {
      if (started[i]) continue;
      const auto& step = plan->steps[i];
      bool have_all = true;
      for (const auto& [_, tensor] : step.input_map()) have_all = have_all && tensors.count(tensor) > 0;
      if (!have_all) continue;
      started[i] = true;
      ++running;
      InferRequest req;
      req.model_name = step.model_name();
      req.model_version = step.model_version() > 0 ? step.model_version() : 0;
      req.id = request.id;
      req.priority = request.priority;
      req.timeout_us = request.timeout_us;
      req.sequence_id = request.sequence_id;
      req.sequence_start = request.sequence_start;
      req.sequence_end = request.sequence_end;
      for (const auto& [model_input, tensor] : step.input_map()) req.inputs.push_back({model_input, tensors[tensor]});
      for (const auto& [model_output, _] : step.output_map()) req.requested_outputs.push_back(model_output);
      ready.emplace_back(i, std::move(req));
    }
    all_done = completed == plan->steps.size();
    stuck = !all_done && ready.empty() && running == 0;
    if (all_done || stuck) finished = true;
  }
  if (all_done || stuck) {
    if (stuck) {
      return finish(internal_error("ensemble '{}': no step can run, some tensors were never produced", plan->name));
    }
    InferResponse resp;
    resp.model_name = plan->name;
    resp.model_version = plan->version;
    resp.id = request.id;
    const std::vector<std::string>& names = request.requested_outputs.empty() ? plan->outputs : request.requested_outputs;
    for (const std::string& n : names) {
      auto it = tensors.find(n);
      if (it == tensors.end()) return finish(internal_error("ensemble '{}' did not produce output '{}'", plan->name, n));
      resp.outputs.push_back({n, it->second});
    }
    return finish(std::move(resp));
  }
  for (auto& [index, req] : ready) {
    const auto& step = plan->steps[index];
    auto model = plan->resolver(step.model_name(), req.model_version);
    if (!model.is_ok()) {
      step_done(index, model.status());
      continue;
    }
    model.value()->infer(std::move(req), [self = shared_from_this(), index](Result<InferResponse> result) {
      self->step_done(index, std::move(result));
    });
  }
}

void Run::step_done(size_t index, Result<InferResponse> result) {
  const auto& step = plan->steps[index];
  {
    std::lock_guard<std::mutex> lock(mu);
    --running;
    if (finished) return;
    if (!result.is_ok()) {
      finished = true;
    } else {
      for (InferOutput& out : result.value().outputs) {
        auto it = step.output_map().find(out.name);
        if (it != step.output_map().end()) tensors[it->second] = std::move(out.tensor);
      }
      ++completed;
    }
  }
  if (!result.is_ok()) {
    const Status& st = result.status();
    return finish(Status(st.code(), fmt::format("ensemble '{}' step {} (model '{}') failed: {}", plan->name, index,
                                                step.model_name(), st.message())));
  }
  launch();
}

}  // namespace

Status check_ensemble_config(const inference::ModelConfig& config) {
  const std::string& name = config.name();
  const auto& steps = config.ensemble_scheduling().step();
  if (config.input_size() == 0 || config.output_size() == 0) {
    return invalid_argument("ensemble '{}' must list its inputs and outputs in the config", name);
  }
  if (steps.empty()) return invalid_argument("ensemble '{}' has no steps in ensemble_scheduling", name);
  if (config.instance_group_size() > 0) {
    return invalid_argument("ensemble '{}' must not have an instance_group (its steps have their own)", name);
  }
  std::set<std::string> available;
  for (const auto& in : config.input()) available.insert(in.name());
  std::set<std::string> produced;
  for (int i = 0; i < steps.size(); ++i) {
    const auto& step = steps[i];
    if (step.model_name().empty()) return invalid_argument("ensemble '{}' step {} has no model_name", name, i);
    if (step.model_name() == name) return invalid_argument("ensemble '{}' step {} runs the ensemble itself", name, i);
    if (step.input_map().empty()) return invalid_argument("ensemble '{}' step {} has an empty input_map", name, i);
    if (step.output_map().empty()) return invalid_argument("ensemble '{}' step {} has an empty output_map", name, i);
    for (const auto& [_, tensor] : step.output_map()) {
      if (available.count(tensor) || !produced.insert(tensor).second) {
        return invalid_argument("ensemble '{}': tensor '{}' is produced more than once (step {})", name, tensor, i);
      }
    }
  }
  // Every step must become runnable from the inputs (no cycles, no missing tensors).
  std::vector<bool> done(static_cast<size_t>(steps.size()), false);
  for (bool progress = true; progress;) {
    progress = false;
    for (int i = 0; i < steps.size(); ++i) {
      if (done[static_cast<size_t>(i)]) continue;
      bool ok = true;
      for (const auto& [_, tensor] : steps[i].input_map()) ok = ok && available.count(tensor) > 0;
      if (!ok) continue;
      done[static_cast<size_t>(i)] = true;
      progress = true;
      for (const auto& [_, tensor] : steps[i].output_map()) available.insert(tensor);
    }
  }
  for (int i = 0; i < steps.size(); ++i) {
    if (done[static_cast<size_t>(i)]) continue;
    for (const auto& [input, tensor] : steps[i].input_map()) {
      if (!available.count(tensor)) {
        return invalid_argument(
            "ensemble '{}' step {} (model '{}'): input '{}' maps tensor '{}', which is neither an ensemble input nor "
            "produced by a step it can follow",
            name, i, steps[i].model_name(), input, tensor);
      }
    }
  }
  for (const auto& out : config.output()) {
    if (!available.count(out.name())) {
      return invalid_argument("ensemble '{}': output '{}' is not produced by any step", name, out.name());
    }
  }
  return Status::ok();
}

Result<std::unique_ptr<Ensemble>> Ensemble::create(const inference::ModelConfig& config, std::string version,
                                                   ModelResolver resolver, std::shared_ptr<ModelStats> stats) {
  KILN_RETURN_IF_ERROR(check_ensemble_config(config));
  if (!resolver) return internal_error("ensemble '{}' has no model resolver", config.name());
  auto plan = std::make_shared<Plan>();
  plan->name = config.name();
  plan->version = std::move(version);
  plan->steps.assign(config.ensemble_scheduling().step().begin(), config.ensemble_scheduling().step().end());
  for (const auto& out : config.output()) plan->outputs.push_back(out.name());
  plan->resolver = std::move(resolver);
  plan->stats = std::move(stats);
  return std::unique_ptr<Ensemble>(new Ensemble(std::move(plan)));
}

Ensemble::~Ensemble() = default;

void Ensemble::infer(InferRequest request, InferCallback done) {
  if (stopping_.load()) {
    plan_->stats->record_failure(FailureReason::kRejected, 0);
    return done(unavailable("ensemble '{}' version {} is unloading", plan_->name, plan_->version));
  }
  auto run = std::make_shared<Run>();
  run->plan = plan_;
  run->done = std::move(done);
  run->started.assign(plan_->steps.size(), false);
  for (InferInput& in : request.inputs) run->tensors[in.name] = std::move(in.tensor);
  request.inputs.clear();
  run->request = std::move(request);
  run->launch();
}

}  // namespace kiln::server
