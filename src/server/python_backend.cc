#include "server/python_backend.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include "core/error.h"
#include "core/logging.h"
#include "server/batching.h"
#include "server/config_json.h"
#include "server/model_config.h"
#include "server/python_ipc.h"
#include "server/types.h"

extern char** environ;

namespace kiln::server {
namespace {

// What every instance of one model needs to start its process.
struct PythonLaunch {
  std::string model_name;
  std::string python;
  std::string stub;
  std::vector<std::string> env;  // the server's environment plus PYTHONPATH
  std::string model_file;        // absolute paths and texts of the "init" message
  std::string config_json;
  std::string repository;
  std::string version;
  inference::ModelConfig config;
  InferFn infer;  // business logic scripting (empty: exec() fails)
};

// A frame from the process with its header parsed once; `type` is "" when
// the header is not a JSON object with a string "type".
struct ParsedFrame {
  IpcFrame frame;
  rapidjson::Document doc;
  std::string type;
};

// One Python process and its end of the socket pair.
class PythonProcess {
 public:
  PythonProcess(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  ~PythonProcess() {
    if (alive_) {
      // finalize(), bounded: a model that hangs in finalize is killed.
      if (write_frame(fd_, R"({"type":"finalize"})", "").is_ok()) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 5000) > 0) (void)read_frame(fd_);
      }
    }
    close(fd_);
    reap(std::chrono::milliseconds(2000));
  }

  static Result<std::unique_ptr<PythonProcess>> start(const PythonLaunch& launch, const std::string& init_header,
                                                      int index) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return unavailable("cannot create a socket pair for a Python instance: {}", std::strerror(errno));
    }
    // Everything the child needs is built before fork: it only calls async-signal-safe functions.
    const std::string fd_arg = "3";
    std::vector<char*> argv = {const_cast<char*>(launch.python.c_str()), const_cast<char*>(launch.stub.c_str()),
                               const_cast<char*>(fd_arg.c_str()), nullptr};
    std::vector<char*> envp;
    for (const std::string& e : launch.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    pid_t pid = fork();
    if (pid < 0) {
      int err = errno;
      close(sv[0]);
      close(sv[1]);
      return unavailable("cannot start a Python process: {}", std::strerror(err));
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the server
      sigset_t none;                     // the server blocks SIGTERM/SIGINT for its sigwait; the model must not
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      if (sv[1] == 3) {
        fcntl(3, F_SETFD, 0);
      } else {
        dup2(sv[1], 3);  // dup2 clears close-on-exec on the copy
      }
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(sv[1]);
    auto process = std::make_unique<PythonProcess>(pid, sv[0]);
    Status sent = write_frame(process->fd_, init_header, "");
    Result<IpcFrame> reply = sent.is_ok() ? read_frame(process->fd_) : Result<IpcFrame>(sent);
    if (!reply.is_ok()) {
      process->alive_ = false;
      return unavailable("Python instance {} of model '{}' did not start ({}): {}", index, launch.model_name,
                         process->exit_description(), reply.status().message());
    }
    rapidjson::Document doc;
    doc.Parse(reply.value().header.data(), reply.value().header.size());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("type") || !doc["type"].IsString()) {
      return internal_error("Python instance of model '{}' answered init with a malformed frame", launch.model_name);
    }
    if (std::string(doc["type"].GetString()) != "ok") {
      std::string msg = doc.HasMember("message") && doc["message"].IsString() ? doc["message"].GetString() : "?";
      return invalid_argument("model '{}': initialize() failed: {}", launch.model_name, msg);
    }
    return process;
  }

  // One request/reply exchange (an empty `header` sends nothing and waits for
  // the next frame). Frames the model sends while it runs come first:
  // "bls" (a request to another model; `on_frame` returns the reply to
  // send) and "stream" (a decoupled model's response; no reply).
  // `done()` true ends the wait with an empty frame (before reading on).
  template <class OnFrame, class Done>
  Result<ParsedFrame> call(const std::string& header, const std::string& payload, OnFrame&& on_frame, Done&& done) {
    if (!header.empty()) KILN_RETURN_IF_ERROR(write_frame(fd_, header, payload));
    for (;;) {
      ParsedFrame parsed;
      if (done()) return parsed;
      KILN_ASSIGN_OR_RETURN(parsed.frame, read_frame(fd_));
      parsed.doc.Parse(parsed.frame.header.data(), parsed.frame.header.size());
      if (!parsed.doc.HasParseError() && parsed.doc.IsObject() && parsed.doc.HasMember("type") &&
          parsed.doc["type"].IsString()) {
        parsed.type = parsed.doc["type"].GetString();
      }
      if (parsed.type != "bls" && parsed.type != "stream") return parsed;
      std::optional<std::pair<std::string, std::string>> reply = on_frame(parsed);
      if (reply) KILN_RETURN_IF_ERROR(write_frame(fd_, reply->first, reply->second));
    }
  }

  // Waits for the process (a crashed one exits at once) and says how it ended.
  std::string exit_description() {
    alive_ = false;
    close_write();
    reap(std::chrono::milliseconds(2000));
    if (!reaped_) return "it did not exit";
    if (WIFSIGNALED(status_))
      return fmt::format("killed by signal {} ({})", WTERMSIG(status_), strsignal(WTERMSIG(status_)));
    if (WIFEXITED(status_)) {
      if (WEXITSTATUS(status_) == 127) return "exit code 127: the Python interpreter could not be run";
      return fmt::format("exit code {}", WEXITSTATUS(status_));
    }
    return "ended";
  }

  void mark_dead() { alive_ = false; }

 private:
  void close_write() { shutdown(fd_, SHUT_WR); }
  void reap(std::chrono::milliseconds wait) {
    if (reaped_) return;
    auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
      pid_t r = waitpid(pid_, &status_, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) {
        reaped_ = true;
        return;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status_, 0);
        reaped_ = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  pid_t pid_;
  int fd_;
  int status_ = 0;
  bool reaped_ = false;
  bool alive_ = true;
};

class PythonInstance final : public BackendInstance {
 public:
  PythonInstance(std::shared_ptr<const PythonLaunch> launch, std::string init_header, int index)
      : launch_(std::move(launch)), init_header_(std::move(init_header)), index_(index) {
    auto p = PythonProcess::start(*launch_, init_header_, index_);
    if (p.is_ok()) {
      process_ = std::move(p).value();
    } else {
      init_ = p.status();
    }
  }

  Status ready() const override { return init_; }

  Result<NamedTensors> run(const NamedTensors& feeds, const std::vector<std::string>& outputs) override {
    return run_with_info(feeds, outputs, RunInfo{}, nullptr);
  }

  Result<NamedTensors> run_with_info(const NamedTensors& feeds, const std::vector<std::string>& outputs,
                                     const RunInfo& info, std::vector<Status>* request_errors) override {
    if (!process_) {
      KILN_LOG_INFO("model '{}': restarting Python instance {}", launch_->model_name, index_);
      auto p = PythonProcess::start(*launch_, init_header_, index_);
      if (!p.is_ok())
        return unavailable("model '{}': Python instance {} could not restart: {}", launch_->model_name, index_,
                           p.status().message());
      process_ = std::move(p).value();
    }
    rapidjson::StringBuffer sb;
    IpcWriter w(sb);
    std::string payload;
    w.StartObject();
    w.Key("type");
    w.String("execute");
    w.Key("model_name");
    w.String(launch_->model_name.c_str());
    if (info.emit) {
      w.Key("decoupled");
      w.Bool(true);
    }
    auto write_request = [&](const std::string& id, const NamedTensors& inputs) {
      w.StartObject();
      w.Key("id");
      w.String(id.data(), static_cast<rapidjson::SizeType>(id.size()));
      if (!info.correlation_id.empty()) {
        w.Key("correlation_id");
        if (info.correlation_is_string) {
          w.String(info.correlation_id.data(), static_cast<rapidjson::SizeType>(info.correlation_id.size()));
        } else {
          w.Uint64(std::stoull(info.correlation_id));
        }
      }
      w.Key("inputs");
      w.StartArray();
      for (const auto& [name, t] : inputs) add_ipc_tensor(w, payload, name, t);
      w.EndArray();
      w.Key("requested_outputs");
      w.StartArray();
      for (const std::string& o : outputs) w.String(o.c_str());
      w.EndArray();
      w.EndObject();
    };
    w.Key("requests");
    w.StartArray();
    auto id = [&](size_t r) { return r < info.request_ids.size() ? info.request_ids[r] : std::string(); };
    const size_t requests = std::max<size_t>(1, info.request_rows.size());
    if (requests == 1) {
      write_request(id(0), feeds);
    } else {
      // A dynamic batch: each request gets its own rows, as Triton hands execute() a list.
      int64_t offset = 0;
      for (size_t r = 0; r < requests; ++r) {
        NamedTensors part;
        for (const auto& [name, t] : feeds) {
          KILN_ASSIGN_OR_RETURN(Tensor rows, slice_rows(t, offset, info.request_rows[r]));
          part.emplace_back(name, std::move(rows));
        }
        write_request(id(r), part);
        offset += info.request_rows[r];
      }
    }
    w.EndArray();
    w.EndObject();
    // Decoupled: which requests still wait for their final flag.
    std::vector<bool> open(info.emit ? requests : 0, true);
    size_t open_count = open.size();
    auto on_frame = [&](const ParsedFrame& in) -> std::optional<std::pair<std::string, std::string>> {
      if (in.type == "bls") return run_bls(in);
      const rapidjson::Document& doc = in.doc;
      if (!info.emit || !doc.HasMember("request") || !doc["request"].IsUint64()) {
        KILN_LOG_WARN("model '{}': ignoring a response frame outside a decoupled request", launch_->model_name);
        return std::nullopt;
      }
      const auto r = static_cast<size_t>(doc["request"].GetUint64());
      if (r >= open.size() || !open[r]) return std::nullopt;
      const bool final = doc.HasMember("final") && doc["final"].IsBool() && doc["final"].GetBool();
      const bool has_error = doc.HasMember("error") && doc["error"].IsString();
      const bool has_outputs = doc.HasMember("outputs") && doc["outputs"].IsArray() && !doc["outputs"].Empty();
      std::optional<Result<NamedTensors>> response;
      if (has_error || has_outputs) response = decode_response(doc, in.frame);
      if (final) {
        open[r] = false;
        --open_count;
      }
      info.emit(r, std::move(response), final);
      return std::nullopt;
    };
    auto reply = process_->call(std::string(sb.GetString(), sb.GetSize()), payload, on_frame, [] { return false; });
    if (reply.is_ok() && open_count > 0 && reply.value().doc.IsObject() && reply.value().doc.HasMember("decoupled")) {
      // execute() returned; its threads may still be sending. The stub completes (with an
      // error) any request whose sender the model dropped, so this wait ends.
      auto rest = process_->call(std::string(), std::string(), on_frame, [&] { return open_count == 0; });
      if (!rest.is_ok()) reply = rest.status();
      if (rest.is_ok() && !rest.value().frame.header.empty()) {
        return internal_error(
            "model '{}': unexpected frame from the Python instance while it sent decoupled "
            "responses",
            launch_->model_name);
      }
    }
    if (!reply.is_ok()) {
      std::string why = process_->exit_description();
      process_.reset();
      KILN_LOG_ERROR("model '{}': Python instance {} stopped while executing ({}); it restarts on the next request",
                     launch_->model_name, index_, why);
      return unavailable(
          "model '{}': the Python instance stopped while executing this request ({}); it is being "
          "restarted",
          launch_->model_name, why);
    }
    if (request_errors != nullptr && request_errors->size() != requests) request_errors = nullptr;
    if (info.emit) return decode_decoupled(reply.value());
    return decode(reply.value(), requests, request_errors);
  }

 private:
  static std::string message(const rapidjson::Value& v) {
    return v.HasMember("error") && v["error"].IsString()       ? std::string(v["error"].GetString())
           : v.HasMember("message") && v["message"].IsString() ? std::string(v["message"].GetString())
                                                               : std::string("unknown error");
  }

  // Runs one InferenceRequest.exec() of the model on the named model and
  // returns the "bls_response" frame: the outputs, or the error.
  std::pair<std::string, std::string> run_bls(const ParsedFrame& in) {
    std::string payload;
    Result<InferResponse> result = bls_infer(in.doc, in.frame.payload);
    rapidjson::StringBuffer sb;
    IpcWriter w(sb);
    w.StartObject();
    w.Key("type");
    w.String("bls_response");
    w.Key("error");
    if (result.is_ok()) {
      w.Null();
    } else {
      const std::string& m = result.status().message();
      w.String(m.data(), static_cast<rapidjson::SizeType>(m.size()));
    }
    w.Key("outputs");
    w.StartArray();
    if (result.is_ok()) {
      for (const InferOutput& out : result.value().outputs) add_ipc_tensor(w, payload, out.name, out.tensor);
    }
    w.EndArray();
    w.EndObject();
    return {std::string(sb.GetString(), sb.GetSize()), std::move(payload)};
  }

  Result<InferResponse> bls_infer(const rapidjson::Document& doc, std::string_view payload) {
    if (!launch_->infer) return unavailable("business logic scripting is not available in this server");
    if (!doc.HasMember("model_name") || !doc["model_name"].IsString() || !doc.HasMember("inputs") ||
        !doc["inputs"].IsArray()) {
      return invalid_argument("malformed InferenceRequest from model '{}'", launch_->model_name);
    }
    InferRequest req;
    req.model_name = doc["model_name"].GetString();
    if (doc.HasMember("model_version") && doc["model_version"].IsInt64()) {
      req.model_version = std::max<int64_t>(0, doc["model_version"].GetInt64());  // -1: the highest
    }
    if (doc.HasMember("request_id") && doc["request_id"].IsString()) req.id = doc["request_id"].GetString();
    if (doc.HasMember("correlation_id")) {
      const auto& c = doc["correlation_id"];
      if (c.IsString()) {
        req.sequence_id.is_string = true;
        req.sequence_id.text = c.GetString();
      } else if (c.IsUint64()) {
        req.sequence_id.number = c.GetUint64();
      }
    }
    if (doc.HasMember("flags") && doc["flags"].IsUint()) {
      req.sequence_start = (doc["flags"].GetUint() & 1) != 0;  // TRITONSERVER_REQUEST_FLAG_SEQUENCE_START
      req.sequence_end = (doc["flags"].GetUint() & 2) != 0;    // ..._SEQUENCE_END
    }
    if (doc.HasMember("requested_outputs") && doc["requested_outputs"].IsArray()) {
      for (const auto& o : doc["requested_outputs"].GetArray()) {
        if (o.IsString()) req.requested_outputs.emplace_back(o.GetString());
      }
    }
    for (const auto& desc : doc["inputs"].GetArray()) {
      KILN_ASSIGN_OR_RETURN(auto named, read_ipc_tensor(desc, payload));
      req.inputs.push_back({std::move(named.first), std::move(named.second)});
    }
    uint64_t timeout_us = 0;
    if (doc.HasMember("timeout") && doc["timeout"].IsUint64()) timeout_us = doc["timeout"].GetUint64();
    // The answer may come on another thread, after a timeout gave up on it: shared state.
    struct Pending {
      std::mutex mu;
      std::condition_variable cv;
      std::optional<Result<InferResponse>> result;
    };
    auto pending = std::make_shared<Pending>();
    launch_->infer(std::move(req), [pending](Result<InferResponse> r) {
      std::lock_guard lock(pending->mu);
      pending->result = std::move(r);
      pending->cv.notify_all();
    });
    std::unique_lock lock(pending->mu);
    auto has_result = [&] { return pending->result.has_value(); };
    if (timeout_us == 0) {
      pending->cv.wait(lock, has_result);
    } else if (!pending->cv.wait_for(lock, std::chrono::microseconds(timeout_us), has_result)) {
      return unavailable("InferenceRequest.exec() on model '{}' timed out after {} us", doc["model_name"].GetString(),
                         timeout_us);
    }
    return std::move(*pending->result);
  }

  // The end of a decoupled model's execute(): no outputs (they went out
  // through RunInfo::emit), or the error of an exception in execute().
  Result<NamedTensors> decode_decoupled(const ParsedFrame& reply) {
    if (reply.type.empty())
      return internal_error("model '{}': malformed reply from the Python instance", launch_->model_name);
    if (reply.type == "error") {
      return internal_error("model '{}' execute() failed: {}", launch_->model_name, message(reply.doc));
    }
    return NamedTensors{};
  }

  // The outputs of `requests` responses; several are joined row-wise in order.
  // With `request_errors`, an error response fails its request alone (as in
  // Triton) and the others' outputs are joined; without, it fails them all.
  Result<NamedTensors> decode(const ParsedFrame& reply, size_t requests, std::vector<Status>* request_errors) {
    const rapidjson::Document& doc = reply.doc;
    const IpcFrame& frame = reply.frame;
    const std::string& type = reply.type;
    if (type.empty())
      return internal_error("model '{}': malformed reply from the Python instance", launch_->model_name);
    if (type == "error") return internal_error("model '{}' execute() failed: {}", launch_->model_name, message(doc));
    if (type != "responses" || !doc.HasMember("responses") || !doc["responses"].IsArray() ||
        doc["responses"].Size() != requests) {
      return internal_error("model '{}': malformed reply from the Python instance", launch_->model_name);
    }
    std::vector<NamedTensors> parts;
    size_t r = 0;
    for (const auto& resp : doc["responses"].GetArray()) {
      Result<NamedTensors> one = decode_response(resp, frame);
      if (one.is_ok()) {
        parts.push_back(std::move(one).value());
      } else if (request_errors != nullptr) {
        (*request_errors)[r] = one.status();
      } else {
        return one.status();
      }
      ++r;
    }
    if (parts.empty()) return NamedTensors{};
    if (parts.size() == 1) return std::move(parts[0]);
    NamedTensors joined;
    for (size_t o = 0; o < parts[0].size(); ++o) {
      std::vector<const Tensor*> rows;
      for (const NamedTensors& p : parts) {
        if (p.size() != parts[0].size() || p[o].first != parts[0][o].first) {
          return internal_error("model '{}': the responses of one batch return different outputs", launch_->model_name);
        }
        rows.push_back(&p[o].second);
      }
      KILN_ASSIGN_OR_RETURN(Tensor t, concat_rows(rows));
      joined.emplace_back(parts[0][o].first, std::move(t));
    }
    return joined;
  }

  Result<NamedTensors> decode_response(const rapidjson::Value& resp, const IpcFrame& frame) {
    if (!resp.IsObject())
      return internal_error("model '{}': malformed reply from the Python instance", launch_->model_name);
    if (resp.HasMember("error") && resp["error"].IsString()) {
      return internal_error("model '{}': {}", launch_->model_name, message(resp));
    }
    NamedTensors out;
    if (!resp.HasMember("outputs") || !resp["outputs"].IsArray()) {
      return internal_error("model '{}': malformed reply from the Python instance", launch_->model_name);
    }
    for (const auto& desc : resp["outputs"].GetArray()) {
      KILN_ASSIGN_OR_RETURN(auto named, read_ipc_tensor(desc, frame.payload));
      KILN_RETURN_IF_ERROR(check_output_dtype(launch_->config, named.first, named.second.dtype()));
      out.push_back(std::move(named));
    }
    return out;
  }

  std::shared_ptr<const PythonLaunch> launch_;
  std::string init_header_;  // the "init" message
  int index_;
  Status init_;
  std::unique_ptr<PythonProcess> process_;
};

// The "init" message of an instance at `where`: model.py's initialize() args,
// with model_instance_kind "GPU" and the device id on a GPU, as Triton gives
// them; model_instance_name is "<group>_<index within the group>", as Triton
// names instances (the group Triton adds to a config without one is named
// after the model).
std::string init_header(const PythonLaunch& launch, const InstancePlacement& where) {
  rapidjson::StringBuffer sb;
  IpcWriter w(sb);
  auto kv = [&](const char* key, const std::string& value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  std::string instance = fmt::format("{}_{}", where.group.empty() ? launch.model_name : where.group, where.index);
  w.StartObject();
  kv("type", "init");
  kv("model_file", launch.model_file);
  kv("model_config", launch.config_json);
  kv("model_instance_kind", where.gpu ? "GPU" : "CPU");
  kv("model_instance_name", instance);
  kv("model_instance_device_id", std::to_string(where.gpu ? where.device : 0));
  kv("model_repository", launch.repository);
  kv("model_version", launch.version);
  kv("model_name", launch.model_name);
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

class PythonBackend final : public ModelBackend {
 public:
  PythonBackend(std::shared_ptr<const PythonLaunch> launch, std::string path, std::vector<TensorSpec> inputs,
                std::vector<TensorSpec> outputs)
      : launch_(std::move(launch)), path_(std::move(path)), inputs_(std::move(inputs)), outputs_(std::move(outputs)) {}
  const std::vector<TensorSpec>& inputs() const override { return inputs_; }
  const std::vector<TensorSpec>& outputs() const override { return outputs_; }
  const std::string& path() const override { return path_; }
  std::unique_ptr<BackendInstance> create_instance(const InstancePlacement& where) const override {
    const int index = next_index_.fetch_add(1);
    return std::make_unique<PythonInstance>(launch_, init_header(*launch_, where), index);
  }

 private:
  std::shared_ptr<const PythonLaunch> launch_;
  std::string path_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  mutable std::atomic<int> next_index_{0};
};

}  // namespace

std::string python_backend_dir() {
  if (const char* env = std::getenv("KILN_PYTHON_BACKEND_DIR"); env && *env) return env;
  return KILN_PYTHON_BACKEND_DIR;
}

std::string python_executable() {
  if (const char* env = std::getenv("KILN_PYTHON_EXE"); env && *env) return env;
  return KILN_PYTHON_EXE;
}

Result<std::shared_ptr<const ModelBackend>> load_python_backend(const std::string& model_dir, int64_t version,
                                                                const inference::ModelConfig& config, InferFn infer) {
  namespace fs = std::filesystem;
  std::string filename = config.default_model_filename().empty() ? "model.py" : config.default_model_filename();
  if (filename.find('/') != std::string::npos || filename == ".." || filename == ".") {
    return invalid_argument("default_model_filename '{}' must be a file name, not a path", filename);
  }
  fs::path file = fs::path(model_dir) / std::to_string(version) / filename;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return not_found("Python model file '{}' not found", file.string());
  if (config.input_size() == 0 || config.output_size() == 0) {
    return invalid_argument("Python model '{}' must list its inputs and outputs in config.pbtxt", config.name());
  }
  auto launch = std::make_shared<PythonLaunch>();
  launch->model_name = config.name();
  launch->config = config;
  launch->python = python_executable();
  std::string dir = python_backend_dir();
  launch->stub = (fs::path(dir) / "kiln_python_stub.py").string();
  if (!fs::is_regular_file(launch->stub, ec)) {
    return not_found("the Python backend stub '{}' is missing (set KILN_PYTHON_BACKEND_DIR)", launch->stub);
  }
  if (launch->python.find('/') == std::string::npos || access(launch->python.c_str(), X_OK) != 0) {
    return not_found("the Python interpreter '{}' is not an executable path (set KILN_PYTHON_EXE)", launch->python);
  }
  std::string pythonpath = dir;
  for (char** e = environ; e && *e; ++e) {
    std::string entry = *e;
    if (entry.rfind("PYTHONPATH=", 0) == 0) {
      pythonpath += ":" + entry.substr(11);
    } else {
      launch->env.push_back(std::move(entry));
    }
  }
  launch->env.push_back("PYTHONPATH=" + pythonpath);
  launch->env.push_back("PYTHONUNBUFFERED=1");
  launch->model_file = fs::absolute(file, ec).string();
  launch->config_json = message_to_json(launch->config);
  launch->repository = fs::absolute(model_dir, ec).string();
  launch->version = std::to_string(version);
  launch->infer = std::move(infer);
  KILN_ASSIGN_OR_RETURN(ConfigIo io, io_from_config(config));
  return std::shared_ptr<const ModelBackend>(
      std::make_shared<PythonBackend>(std::move(launch), file.string(), std::move(io.inputs), std::move(io.outputs)));
}

}  // namespace kiln::server
