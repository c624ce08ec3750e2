// ServerCore: what the HTTP and gRPC frontends talk to. It owns the model
// manager, answers liveness and readiness, counts in-flight requests so that
// shutdown can drain them, and maps Kiln status codes to HTTP and gRPC ones.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "server/inference.h"
#include "server/model_manager.h"
#include "server/shared_memory.h"

namespace kiln::server {

struct ServerOptions {
  std::string repository;
  ControlMode control_mode = ControlMode::kNone;
  std::vector<std::string> load_models;  // explicit mode: loaded at startup
  int poll_secs = 15;
  size_t max_request_bytes = size_t{64} << 20;  // HTTP body and gRPC message limit
  std::string server_name = "kiln";
  std::string server_version = "0.1.0";
  bool allow_client_shm = false;  // the system shared-memory extension (off: every call is refused)
  size_t cache_bytes = 0;         // response cache size (0: no cache)
  bool rate_limit = false;        // --rate-limit execution_count
  std::map<std::string, uint64_t> rate_limit_resources;  // --rate-limit-resource name:count
  bool auto_complete_config = true;  // off: --disable-auto-complete-config
  bool gpu_metrics = true;           // nv_gpu_* metrics where NVML sees a GPU (off: --allow-gpu-metrics=false)
};

class ServerCore {
 public:
  explicit ServerCore(ServerOptions options);
  ~ServerCore();

  // Loads the startup models (errors are logged and kept per model) and
  // starts polling in poll mode. Fails only on a missing repository.
  Status start();

  const ServerOptions& options() const { return options_; }
  ModelManager& models() { return *models_; }
  SharedMemoryManager& shared_memory() { return shm_; }
  bool live() const { return !stopped_.load(); }
  // Not exiting, and every model that should be loaded is.
  bool ready() const;
  bool exiting() const { return exiting_.load(); }
  static const std::vector<std::string>& extensions();

  // Runs `request` on its model; `done` is called exactly once.
  void infer(InferRequest request, InferCallback done);
  // Repository API (explicit mode only).
  Status load_model(const std::string& name, const std::string& config_json);
  Status unload_model(const std::string& name);

  // Shutdown: readiness goes false; in-flight requests still finish.
  void begin_shutdown() { exiting_.store(true); }
  // Waits until no request is in flight or `timeout_ms` passes; true if idle.
  bool wait_idle(int64_t timeout_ms);
  int64_t in_flight() const { return in_flight_.load(); }
  // Stops every model (drains their queues).
  void stop();

 private:
  ServerOptions options_;
  std::unique_ptr<ModelManager> models_;
  SharedMemoryManager shm_;
  std::atomic<bool> exiting_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<int64_t> in_flight_{0};
  std::mutex idle_mu_;
  std::condition_variable idle_cv_;
};

// 400, 404, 501, 503, 500 as Triton maps its errors.
int http_status_of(const Status& status);

}  // namespace kiln::server
