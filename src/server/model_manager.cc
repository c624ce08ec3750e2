#include "server/model_manager.h"

#include <google/protobuf/util/json_util.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "core/logging.h"
#include "server/model_config.h"

namespace kiln::server {
namespace fs = std::filesystem;
namespace {

// Version folders: positive integers without a leading zero.
std::vector<int64_t> version_dirs(const fs::path& model_dir) {
  std::vector<int64_t> out;
  std::error_code ec;
  for (fs::directory_iterator it(model_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    std::string n = it->path().filename().string();
    if (n.empty() || n.size() > 18 || n[0] == '0') continue;
    if (!std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    out.push_back(std::stoll(n));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string file_stamp(const fs::path& p) {
  std::error_code ec;
  auto size = fs::file_size(p, ec);
  if (ec) return "-";
  auto time = fs::last_write_time(p, ec);
  return std::to_string(size) + "@" + std::to_string(time.time_since_epoch().count());
}

}  // namespace

Result<ControlMode> parse_control_mode(const std::string& text) {
  if (text == "none") return ControlMode::kNone;
  if (text == "poll") return ControlMode::kPoll;
  if (text == "explicit") return ControlMode::kExplicit;
  return invalid_argument("unknown model control mode '{}' (none, poll or explicit)", text);
}

ModelManager::ModelManager(std::string repository, ControlMode mode) : repository_(std::move(repository)), mode_(mode) {}

ModelManager::~ModelManager() { stop_all(); }

std::vector<std::string> ModelManager::model_dirs() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(repository_, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_directory(ec)) continue;
    std::string n = it->path().filename().string();
    if (!n.empty() && n[0] != '.' && check_model_name(n).is_ok()) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ModelManager::signature(const std::string& name) const {
  fs::path dir = fs::path(repository_) / name;
  std::string sig = file_stamp(dir / "config.pbtxt");
  for (int64_t v : version_dirs(dir)) {
    sig += "|" + std::to_string(v) + ":";
    std::error_code ec;
    std::vector<std::string> files;
    for (fs::directory_iterator it(dir / std::to_string(v), ec), end; !ec && it != end; it.increment(ec)) {
      files.push_back(it->path().filename().string() + "=" + file_stamp(it->path()));
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) sig += f + ",";
  }
  return sig;
}

Status ModelManager::load_initial(const std::vector<std::string>& names) {
  std::vector<std::string> todo;
  if (mode_ != ControlMode::kExplicit || (names.size() == 1 && names[0] == "*")) {
    todo = model_dirs();
  } else {
    for (const auto& n : names) {
      if (n == "*") return invalid_argument("--load-model=* must be the only --load-model");
      todo.push_back(n);
    }
  }
  Status first;
  for (const auto& name : todo) {
    Status st = load(name);
    if (!st.is_ok()) {
      KILN_LOG_ERROR("failed to load model '{}': {}", name, st.message());
      if (first.is_ok()) first = st;
    }
  }
  return first;
}

Status ModelManager::load(const std::string& name, const std::string& config_json) {
  std::lock_guard<std::mutex> lock(load_mu_);
  return load_locked(name, config_json);
}

Status ModelManager::load_locked(const std::string& name, const std::string& config_json) {
  KILN_RETURN_IF_ERROR(check_model_name(name));
  fs::path dir = fs::path(repository_) / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return not_found("failed to load '{}': no model folder of that name in the repository", name);
  }
  std::string sig = signature(name);
  bool had_versions = false;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Entry& e = entries_[name];
    had_versions = !e.versions.empty();
    if (!had_versions) e.state = "LOADING";
    e.reason.clear();
  }
  auto fail = [&](Status st) {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Entry& e = entries_[name];
    e.state = e.versions.empty() ? "UNAVAILABLE" : "READY";
    e.reason = st.message();
    e.signature = sig;  // do not retry an unchanged broken model on every poll
    return st;
  };
  inference::ModelConfig config;
  if (!config_json.empty()) {
    auto parsed = google::protobuf::util::JsonStringToMessage(config_json, &config);
    if (!parsed.ok()) {
      return fail(invalid_argument("failed to load '{}': the config parameter is not a valid ModelConfig JSON: {}", name,
                                   std::string(parsed.message())));
    }
    if (config.name().empty()) config.set_name(name);
    if (config.name() != name) {
      return fail(invalid_argument("failed to load '{}': config name '{}' does not match", name, config.name()));
    }
  } else {
    auto read = read_model_config(dir.string(), name);
    if (!read.is_ok()) return fail(read.status().with_context("failed to load '" + name + "'"));
    config = std::move(read).value();
  }
  Status st = resolve_platform(config);
  if (!st.is_ok()) return fail(st);
  std::vector<int64_t> available = version_dirs(dir);
  std::vector<int64_t> selected = select_versions(config, available);
  if (selected.empty()) {
    return fail(invalid_argument(
        "failed to load '{}': no version folder is available under its version policy (found {} version folders)", name,
        available.size()));
  }
  std::map<int64_t, std::shared_ptr<ModelVersion>> loaded;
  for (int64_t v : selected) {
    ServingContext context = context_;
    context.resolver = [this](const std::string& model, int64_t version) { return get(model, version); };
    auto mv = ModelVersion::load(dir.string(), v, config, context);
    if (!mv.is_ok()) {
      for (auto& [_, m] : loaded) m->stop();
      return fail(mv.status().with_context(fmt::format("failed to load '{}' version {}", name, v)));
    }
    loaded.emplace(v, std::move(mv).value());
  }
  std::map<int64_t, std::shared_ptr<ModelVersion>> old;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    Entry& e = entries_[name];
    old.swap(e.versions);
    e.versions = std::move(loaded);
    e.state = "READY";
    e.reason.clear();
    e.signature = sig;
  }
  for (auto& [_, m] : old) m->stop();
  old.clear();
  malloc_trim(0);
  KILN_LOG_INFO("loaded model '{}' ({} versions)", name, selected.size());
  return Status::ok();
}

Status ModelManager::unload(const std::string& name) {
  std::lock_guard<std::mutex> lock(load_mu_);
  return unload_locked(name);
}

Status ModelManager::unload_locked(const std::string& name) {
  KILN_RETURN_IF_ERROR(check_model_name(name));
  std::map<int64_t, std::shared_ptr<ModelVersion>> old;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      // Triton answers an unload of an unknown model with success.
      return Status::ok();
    }
    if (!it->second.versions.empty()) {
      it->second.unloaded.clear();
      for (const auto& [v, _] : it->second.versions) it->second.unloaded.push_back(v);
    }
    old.swap(it->second.versions);
    it->second.state = "UNAVAILABLE";
    it->second.reason = "unloaded";
    it->second.signature.clear();
  }
  for (auto& [_, m] : old) m->stop();
  old.clear();
  malloc_trim(0);
  return Status::ok();
}

void ModelManager::poll() {
  std::lock_guard<std::mutex> lock(load_mu_);
  std::vector<std::string> on_disk = model_dirs();
  std::vector<std::string> known;
  {
    std::shared_lock<std::shared_mutex> rl(mu_);
    for (const auto& [name, e] : entries_) {
      if (!e.versions.empty() || !e.reason.empty()) known.push_back(name);
    }
  }
  for (const auto& name : known) {
    if (!std::binary_search(on_disk.begin(), on_disk.end(), name)) {
      Status st = unload_locked(name);
      if (st.is_ok()) {
        std::unique_lock<std::shared_mutex> wl(mu_);
        entries_.erase(name);
      }
    }
  }
  for (const auto& name : on_disk) {
    std::string old_sig;
    {
      std::shared_lock<std::shared_mutex> rl(mu_);
      auto it = entries_.find(name);
      if (it != entries_.end()) old_sig = it->second.signature;
    }
    if (old_sig == signature(name)) continue;
    Status st = load_locked(name, "");
    if (!st.is_ok()) KILN_LOG_ERROR("poll: failed to (re)load model '{}': {}", name, st.message());
  }
}

void ModelManager::start_polling(int interval_s) {
  interval_s = std::max(1, interval_s);
  poll_thread_ = std::thread([this, interval_s] {
    std::unique_lock<std::mutex> lock(poll_mu_);
    while (!poll_stop_) {
      poll_cv_.wait_for(lock, std::chrono::seconds(interval_s));
      if (poll_stop_) break;
      lock.unlock();
      poll();
      lock.lock();
    }
  });
}

Result<std::shared_ptr<ModelVersion>> ModelManager::get(const std::string& name, int64_t version) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.versions.empty()) {
    return not_found("Request for unknown model: '{}' is not found", name);
  }
  const auto& versions = it->second.versions;
  if (version == 0) return versions.rbegin()->second;
  auto v = versions.find(version);
  if (v == versions.end()) {
    return not_found("Request for unknown model: '{}' version {} is not found", name, version);
  }
  return v->second;
}

std::vector<std::shared_ptr<ModelVersion>> ModelManager::versions(const std::string& name) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<std::shared_ptr<ModelVersion>> out;
  auto it = entries_.find(name);
  if (it == entries_.end()) return out;
  for (const auto& [_, m] : it->second.versions) out.push_back(m);
  return out;
}

std::vector<std::shared_ptr<ModelVersion>> ModelManager::all_versions() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<std::shared_ptr<ModelVersion>> out;
  for (const auto& [_, e] : entries_) {
    for (const auto& [__, m] : e.versions) out.push_back(m);
  }
  return out;
}

std::vector<ModelIndexEntry> ModelManager::index(bool ready_only) const {
  std::vector<ModelIndexEntry> out;
  std::vector<std::string> names = model_dirs();
  std::shared_lock<std::shared_mutex> lock(mu_);
  for (const auto& [name, _] : entries_) {
    if (!std::binary_search(names.begin(), names.end(), name)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    auto it = entries_.find(name);
    if (it != entries_.end() && !it->second.versions.empty()) {
      for (const auto& [v, _] : it->second.versions) out.push_back({name, std::to_string(v), "READY", ""});
    } else if (!ready_only) {
      if (it == entries_.end()) {
        out.push_back({name, "", "", ""});
      } else if (it->second.reason == "unloaded" && !it->second.unloaded.empty()) {
        for (int64_t v : it->second.unloaded) out.push_back({name, std::to_string(v), it->second.state, "unloaded"});
      } else {
        out.push_back({name, "", it->second.state, it->second.reason});
      }
    }
  }
  return out;
}

bool ModelManager::all_ready() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  for (const auto& [_, e] : entries_) {
    if (e.state == "LOADING") return false;
    if (e.versions.empty() && !e.reason.empty() && e.reason != "unloaded") return false;
  }
  return true;
}

void ModelManager::stop_all() {
  {
    std::lock_guard<std::mutex> lock(poll_mu_);
    poll_stop_ = true;
  }
  poll_cv_.notify_all();
  if (poll_thread_.joinable()) poll_thread_.join();
  std::vector<std::shared_ptr<ModelVersion>> all = all_versions();
  for (auto& m : all) m->stop();
}

}  // namespace kiln::server
