#include "server/server_core.h"

#include <chrono>
#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace kiln::server {

ServerCore::ServerCore(ServerOptions options)
    : options_(std::move(options)),
      models_(std::make_unique<ModelManager>(options_.repository, options_.control_mode)),
      shm_(options_.allow_client_shm) {
  models_->set_context(options_.cache_bytes > 0 ? std::make_shared<ResponseCache>(options_.cache_bytes) : nullptr,
                       options_.rate_limit ? std::make_shared<RateLimiter>(options_.rate_limit_resources) : nullptr,
                       options_.auto_complete_config);
}

ServerCore::~ServerCore() { stop(); }

Status ServerCore::start() {
  std::error_code ec;
  if (!std::filesystem::is_directory(options_.repository, ec)) {
    return not_found("model repository '{}' is not a folder", options_.repository);
  }
  (void)models_->load_initial(options_.load_models);  // per-model errors are logged and kept in the index
  if (options_.control_mode == ControlMode::kPoll) models_->start_polling(options_.poll_secs);
  return Status::ok();
}

bool ServerCore::ready() const { return !exiting_.load() && !stopped_.load() && models_->all_ready(); }

const std::vector<std::string>& ServerCore::extensions() {
  static const std::vector<std::string> kExtensions = {
      "classification", "sequence", "model_repository", "model_repository(unload_dependents)", "schedule_policy",
      "model_configuration", "system_shared_memory", "binary_tensor_data", "parameters", "statistics"};
  return kExtensions;
}

void ServerCore::infer(InferRequest request, InferCallback done) {
  in_flight_.fetch_add(1);
  auto finish = [this, done = std::move(done)](Result<InferResponse> result) {
    done(std::move(result));
    if (in_flight_.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(idle_mu_);
      idle_cv_.notify_all();
    }
  };
  auto model = models_->get(request.model_name, request.model_version);
  if (!model.is_ok()) {
    finish(model.status());
    return;
  }
  bool uses_shm = !request.output_shm.empty();
  for (const InferInput& in : request.inputs) uses_shm = uses_shm || in.shm.has_value();
  if (!uses_shm) {
    model.value()->infer(std::move(request), std::move(finish));
    return;
  }
  auto regions = shm_.resolve(request);
  if (!regions.is_ok()) {
    finish(regions.status());
    return;
  }
  auto refs = std::move(request.output_shm);
  request.output_shm.clear();
  model.value()->infer(std::move(request), [finish = std::move(finish), refs = std::move(refs),
                                            regions = std::move(regions).value()](Result<InferResponse> result) {
    if (result.is_ok()) {
      Status written = SharedMemoryManager::write_outputs(refs, regions, result.value());
      if (!written.is_ok()) return finish(written);
    }
    finish(std::move(result));
  });
}

Status ServerCore::load_model(const std::string& name, const std::string& config_json) {
  if (options_.control_mode != ControlMode::kExplicit) {
    return unavailable("explicit model load / unload is not allowed if polling is enabled or in mode 'none' "
                       "(start with --model-control-mode explicit)");
  }
  return models_->load(name, config_json);
}

Status ServerCore::unload_model(const std::string& name) {
  if (options_.control_mode != ControlMode::kExplicit) {
    return unavailable("explicit model load / unload is not allowed if polling is enabled or in mode 'none' "
                       "(start with --model-control-mode explicit)");
  }
  return models_->unload(name);
}

bool ServerCore::wait_idle(int64_t timeout_ms) {
  std::unique_lock<std::mutex> lock(idle_mu_);
  return idle_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return in_flight_.load() == 0; });
}

void ServerCore::stop() {
  if (stopped_.exchange(true)) return;
  models_->stop_all();
}

int http_status_of(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kInternal:
    case StatusCode::kIoError:
      return 500;
    default:
      return 400;
  }
}

}  // namespace kiln::server
