// kiln serve: the inference server. HTTP/REST and gRPC speak the KServe v2
// protocol with Triton's extensions; Prometheus metrics are served on a port
// of their own. SIGTERM or SIGINT shuts down gracefully: readiness turns
// false, the listeners close after --shutdown-grace-secs, in-flight requests
// drain for at most --exit-timeout-secs, and the process exits 0.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "commands.h"
#include "core/logging.h"
#include "output.h"
#include "server/grpc/grpc_server.h"
#include "server/http/http_api.h"
#include "server/http/http_server.h"
#include "server/server_core.h"

namespace kiln::cli {
namespace {

struct ServeArgs {
  std::string repository;
  std::string address = "0.0.0.0";
  int http_port = 8000;
  int grpc_port = 8001;
  int metrics_port = 8002;
  bool allow_http = true;
  bool allow_grpc = true;
  bool allow_metrics = true;
  bool allow_gpu_metrics = true;
  bool allow_client_shm = false;
  std::string cache_config;
  std::string rate_limit = "off";
  std::vector<std::string> rate_limit_resources;
  std::string control_mode = "none";
  std::vector<std::string> load_models;
  int log_verbose = 0;
  int exit_timeout_secs = 30;
  int shutdown_grace_secs = 0;
  int poll_secs = 15;
  int http_threads = 2;
  size_t max_request_bytes = size_t{64} << 20;
  bool disable_auto_complete = false;
};

int run_serve(const ServeArgs& args) {
  if (args.log_verbose >= 2) {
    set_log_level("debug");
  } else if (args.log_verbose == 1) {
    set_log_level("info");
  }
  auto mode = server::parse_control_mode(args.control_mode);
  if (!mode.is_ok()) {
    print_error("serve", mode.status().message());
    return 2;
  }
  // Signals are taken by sigwait below, never by a handler on a random thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  server::ServerOptions options;
  options.repository = args.repository;
  options.control_mode = mode.value();
  options.load_models = args.load_models;
  options.poll_secs = args.poll_secs;
  options.max_request_bytes = args.max_request_bytes;
  options.allow_client_shm = args.allow_client_shm;
  options.auto_complete_config = !args.disable_auto_complete;
  options.gpu_metrics = args.allow_gpu_metrics;
  if (!args.cache_config.empty()) {
    // Triton's form: local,size=<bytes>
    const std::string prefix = "local,size=";
    size_t bytes = 0;
    const std::string& c = args.cache_config;
    auto [ptr, ec] = c.rfind(prefix, 0) == 0 ? std::from_chars(c.data() + prefix.size(), c.data() + c.size(), bytes)
                                             : std::from_chars_result{c.data(), std::errc::invalid_argument};
    if (ec != std::errc() || ptr != c.data() + c.size()) {
      std::fprintf(stderr, "kiln serve: --cache-config must be local,size=<bytes>, got '%s'\n", c.c_str());
      return 2;
    }
    options.cache_bytes = bytes;
  }
  if (args.rate_limit != "off" && args.rate_limit != "execution_count") {
    std::fprintf(stderr, "kiln serve: --rate-limit must be off or execution_count\n");
    return 2;
  }
  options.rate_limit = args.rate_limit == "execution_count";
  for (const std::string& r : args.rate_limit_resources) {
    // name:count[:device]; the device is accepted and ignored (one CPU device).
    size_t colon = r.find(':');
    uint64_t count = 0;
    const char* end = r.data() + r.size();
    size_t second = colon == std::string::npos ? std::string::npos : r.find(':', colon + 1);
    if (second != std::string::npos) end = r.data() + second;
    auto [ptr, ec] = colon == std::string::npos || colon == 0
                         ? std::from_chars_result{r.data(), std::errc::invalid_argument}
                         : std::from_chars(r.data() + colon + 1, end, count);
    if (ec != std::errc() || ptr != end) {
      std::fprintf(stderr, "kiln serve: --rate-limit-resource must be <name>:<count>[:<device>], got '%s'\n",
                   r.c_str());
      return 2;
    }
    options.rate_limit_resources[r.substr(0, colon)] = count;
  }
  server::ServerCore core(options);
  Status started = core.start();
  if (!started.is_ok()) {
    print_error("serve", started.message());
    return 1;
  }

  std::unique_ptr<server::HttpServer> http;
  std::unique_ptr<server::HttpServer> metrics;
  std::unique_ptr<server::GrpcServer> grpc;
  auto fail = [&](const char* what, const Status& st) {
    print_error("serve", fmt::format("{}: {}", what, st.message()));
    core.stop();
    return 1;
  };
  // HTTP starts last, so that a client seeing HTTP ready finds gRPC and metrics up too.
  if (args.allow_grpc) {
    grpc = std::make_unique<server::GrpcServer>(core, args.address, args.grpc_port);
    if (Status st = grpc->start(); !st.is_ok()) return fail("gRPC", st);
  }
  if (args.allow_metrics) {
    server::HttpServerOptions mo;
    mo.address = args.address;
    mo.port = args.metrics_port;
    mo.threads = 1;
    mo.max_body_bytes = 1 << 16;
    metrics = std::make_unique<server::HttpServer>(mo, server::make_metrics_api(core));
    if (Status st = metrics->start(); !st.is_ok()) return fail("metrics", st);
  }
  if (args.allow_http) {
    server::HttpServerOptions ho;
    ho.address = args.address;
    ho.port = args.http_port;
    ho.threads = args.http_threads;
    ho.max_body_bytes = args.max_request_bytes;
    http = std::make_unique<server::HttpServer>(ho, server::make_http_api(core));
    if (Status st = http->start(); !st.is_ok()) return fail("HTTP", st);
  }
  print_status("serve", fmt::format("repository {}; HTTP {}, gRPC {}, metrics {}; ready={}", args.repository,
                                    http ? http->port() : -1, grpc ? grpc->port() : -1, metrics ? metrics->port() : -1,
                                    core.ready()));

  int sig = 0;
  sigwait(&signals, &sig);
  print_status("serve",
               fmt::format("signal {}: readiness off, draining (exit timeout {} s)", sig, args.exit_timeout_secs));
  core.begin_shutdown();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(args.exit_timeout_secs);
  if (args.shutdown_grace_secs > 0) std::this_thread::sleep_for(std::chrono::seconds(args.shutdown_grace_secs));
  if (http) http->stop_accepting();
  std::thread grpc_stop;
  if (grpc) {
    auto grpc_deadline = std::chrono::system_clock::now() + std::chrono::seconds(args.exit_timeout_secs);
    grpc_stop = std::thread([&grpc, grpc_deadline] { grpc->shutdown(grpc_deadline); });
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  bool idle = core.wait_idle(std::max<int64_t>(0, left.count()));
  if (!idle) {
    print_error("serve", fmt::format("{} requests still in flight at the exit timeout", core.in_flight()));
  }
  core.stop();
  if (grpc_stop.joinable()) grpc_stop.join();
  if (http) http->stop();
  if (metrics) metrics->stop();
  print_status("serve", "stopped");
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model repository over HTTP/REST and gRPC (KServe v2 / Triton)");
  cmd->add_option("--model-repository", args->repository, "Model repository folder (Triton layout)")->required();
  cmd->add_option("--http-address,--address", args->address, "Address to listen on");
  cmd->add_option("--http-port", args->http_port, "HTTP/REST port (0: any free port)");
  cmd->add_option("--grpc-port", args->grpc_port, "gRPC port (0: any free port)");
  cmd->add_option("--metrics-port", args->metrics_port, "Prometheus metrics port (0: any free port)");
  cmd->add_option("--allow-http", args->allow_http, "Serve HTTP/REST");
  cmd->add_option("--allow-grpc", args->allow_grpc, "Serve gRPC");
  cmd->add_option("--allow-metrics", args->allow_metrics, "Serve metrics");
  cmd->add_option("--allow-gpu-metrics", args->allow_gpu_metrics,
                  "Serve the nv_gpu_* metrics (read from NVML where a GPU is visible)");
  cmd->add_option("--cache-config", args->cache_config, "Response cache: local,size=<bytes> (models opt in with "
                  "response_cache { enable: true })");
  cmd->add_option("--rate-limit", args->rate_limit, "Rate limiter: off or execution_count (instance_group rate_limiter)");
  cmd->add_option("--rate-limit-resource", args->rate_limit_resources,
                  "Rate limiter resource pool size: <name>:<count>[:<device>] (default: the largest need)");
  cmd->add_option("--allow-client-shm", args->allow_client_shm,
                  "Let clients register system shared memory regions for tensors (off by default, as Triton)");
  cmd->add_option("--model-control-mode", args->control_mode, "none, poll or explicit")
      ->check(CLI::IsMember({"none", "poll", "explicit"}));
  cmd->add_flag("--disable-auto-complete-config", args->disable_auto_complete,
               "Take config.pbtxt as written: inputs and outputs must be listed, and no dynamic_batching is added");
  cmd->add_option("--load-model", args->load_models, "Models to load at startup in explicit mode ('*': all)");
  cmd->add_option("--repository-poll-secs", args->poll_secs, "Poll interval in poll mode")->check(CLI::Range(1, 86400));
  cmd->add_option("--log-verbose", args->log_verbose, "Verbose logging level (0, 1, 2)");
  cmd->add_option("--exit-timeout-secs", args->exit_timeout_secs, "Longest wait for in-flight requests on shutdown")
      ->check(CLI::Range(0, 86400));
  cmd->add_option("--shutdown-grace-secs", args->shutdown_grace_secs,
                  "Seconds to keep accepting (with readiness off) after SIGTERM before closing the listeners")
      ->check(CLI::Range(0, 3600));
  cmd->add_option("--http-thread-count", args->http_threads, "HTTP I/O threads")->check(CLI::Range(1, 256));
  cmd->add_option("--max-request-size", args->max_request_bytes, "Largest request body / gRPC message in bytes")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 31));
  cmd->callback([args, exit_code] { *exit_code = run_serve(*args); });
}

}  // namespace kiln::cli
