// ModelManager: the model repository (Triton's layout) and the lifecycle of
// its models: load, unload, reload, and the none / poll / explicit control
// modes.
//
//   <repository>/<model>/config.pbtxt        (optional, may be partial)
//   <repository>/<model>/<version>/model.onnx (version: digits, no leading 0)
//
// A (re)load builds every selected version before swapping it in, so a model
// keeps serving its old versions while new ones load and when a reload
// fails. Requests already holding a version finish on it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "kiln/status.h"
#include "server/model.h"

namespace kiln::server {

enum class ControlMode { kNone, kPoll, kExplicit };
Result<ControlMode> parse_control_mode(const std::string& text);

struct ModelIndexEntry {
  std::string name;
  std::string version;  // empty when no version is loaded
  std::string state;    // READY, UNAVAILABLE, LOADING, UNLOADING or empty (never loaded)
  std::string reason;
};

class ModelManager {
 public:
  ModelManager(std::string repository, ControlMode mode);
  ~ModelManager();
  ModelManager(const ModelManager&) = delete;
  ModelManager& operator=(const ModelManager&) = delete;

  ControlMode mode() const { return mode_; }
  // The response cache and rate limiter models load with; set before loading.
  void set_context(std::shared_ptr<ResponseCache> cache, std::shared_ptr<RateLimiter> limiter,
                   bool auto_complete = true) {
    context_.cache = std::move(cache);
    context_.limiter = std::move(limiter);
    context_.auto_complete = auto_complete;
  }
  const std::string& repository() const { return repository_; }

  // Startup: none and poll load every model in the repository; explicit
  // loads `names` ("*" alone: every model). Failures are logged and kept as
  // the model's reason; returns the first one.
  Status load_initial(const std::vector<std::string>& names);
  // Loads or reloads `name`; `config_json` (non-empty) replaces config.pbtxt.
  Status load(const std::string& name, const std::string& config_json = "");
  Status unload(const std::string& name);
  // Rescans the repository: loads new and changed models, unloads removed ones.
  void poll();
  // Starts a thread calling poll() every `interval_s` seconds (poll mode).
  void start_polling(int interval_s);

  // `version` 0: the highest loaded version. NotFound with Triton's
  // "Request for unknown model" message otherwise.
  Result<std::shared_ptr<ModelVersion>> get(const std::string& name, int64_t version = 0) const;
  // Loaded versions of `name`, ascending (empty if none).
  std::vector<std::shared_ptr<ModelVersion>> versions(const std::string& name) const;
  std::vector<std::shared_ptr<ModelVersion>> all_versions() const;
  std::vector<ModelIndexEntry> index(bool ready_only) const;
  // True when no model is loading and none failed to load.
  bool all_ready() const;
  // Stops every model (drains their queues) and the poll thread.
  void stop_all();

 private:
  struct Entry {
    std::map<int64_t, std::shared_ptr<ModelVersion>> versions;
    std::string state;
    std::string reason;
    std::string signature;  // what poll() compares to see a change on disk
    // The versions the last unload stopped: the index lists them as unloaded, as Triton does.
    std::vector<int64_t> unloaded;
  };
  Status load_locked(const std::string& name, const std::string& config_json);
  Status unload_locked(const std::string& name);
  std::vector<std::string> model_dirs() const;
  std::string signature(const std::string& name) const;

  const std::string repository_;
  const ControlMode mode_;
  ServingContext context_;  // resolver filled per load
  std::mutex load_mu_;  // serializes loads and unloads
  mutable std::shared_mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
  std::thread poll_thread_;
  std::mutex poll_mu_;
  std::condition_variable poll_cv_;
  bool poll_stop_ = false;  // guarded by poll_mu_
};

}  // namespace kiln::server
