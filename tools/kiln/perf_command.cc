// kiln perf: a perf_analyzer-like load generator for KServe v2 / Triton
// servers. For each load level (a concurrency, or a request rate) it runs
// measurement windows until three in a row agree within
// --stability-percentage (or --max-trials windows), then reports client
// throughput and latency percentiles and the server's queue / compute split
// (from the statistics endpoint). -f writes perf_analyzer's CSV columns.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "perf_data.h"
#include "perf_runner.h"

namespace kiln::cli {
namespace {

struct PerfArgs {
  std::string model;
  std::string version;
  int64_t batch_size = 1;
  std::vector<std::string> shapes;
  std::string input_data = "random";
  int64_t string_length = 16;
  std::string concurrency_range;
  std::string request_rate_range;
  std::string request_distribution = "constant";
  std::string protocol = "http";
  std::string url;
  int64_t measurement_interval_ms = 5000;
  int percentile = -1;
  double stability_percentage = 10.0;
  int max_trials = 10;
  int max_threads = 16;
  std::string csv;
  bool verbose_csv = false;
};

struct Range {
  double start = 1, end = 1, step = 1;
};

// "start[:end[:step]]"; integers only for concurrency.
Result<Range> parse_range(const std::string& flag, const std::string& text, bool integer) {
  std::vector<double> parts;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t colon = text.find(':', pos);
    std::string part = text.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos);
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (part.empty() || used != part.size() || !std::isfinite(v)) {
      return invalid_argument("{} {}: '{}' is not a number (expected start[:end[:step]])", flag, text, part);
    }
    if (integer && v != std::floor(v)) return invalid_argument("{} {}: '{}' is not an integer", flag, text, part);
    parts.push_back(v);
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  if (parts.size() > 3) return invalid_argument("{} {}: expected start[:end[:step]]", flag, text);
  Range r{parts[0], parts.size() > 1 ? parts[1] : parts[0], parts.size() > 2 ? parts[2] : 1};
  double least = integer ? 1 : 0;
  if (r.start < least || (!integer && r.start <= 0)) {
    return invalid_argument("{} {}: start must be {}", flag, text, integer ? ">= 1" : "> 0");
  }
  if (r.end < r.start) return invalid_argument("{} {}: end {} is below start {}", flag, text, r.end, r.start);
  if (r.step <= 0) return invalid_argument("{} {}: step must be > 0", flag, text);
  if ((r.end - r.start) / r.step > 1000) return invalid_argument("{} {}: more than 1000 levels", flag, text);
  if (integer && r.end > 4096) return invalid_argument("{} {}: concurrency above 4096", flag, text);
  return r;
}

double us(double ns) { return ns / 1000.0; }

void print_level(const LevelResult& r, LoadMode mode, const PerfSpec& spec, bool http) {
  if (mode == LoadMode::kConcurrency) {
    std::printf("Request concurrency: %g\n", r.level);
  } else {
    std::printf("Request Rate: %g inference requests per second\n", r.level);
  }
  std::printf("  Client:\n");
  std::printf("    Request count: %lld\n", static_cast<long long>(r.request_count));
  if (mode == LoadMode::kRequestRate) {
    std::printf("    Delayed Request Count: %lld\n", static_cast<long long>(r.delayed_count));
  }
  std::printf("    Throughput: %.2f infer/sec\n", r.throughput);
  std::printf("    Avg latency: %.0f usec (standard deviation %.0f usec)\n", us(r.avg_ns), us(r.stddev_ns));
  std::printf(
      "    p50 latency: %.0f usec\n    p90 latency: %.0f usec\n    p95 latency: %.0f usec\n"
      "    p99 latency: %.0f usec\n",
      us(r.p50_ns), us(r.p90_ns), us(r.p95_ns), us(r.p99_ns));
  if (spec.percentile > 0) std::printf("    p%d latency: %.0f usec\n", spec.percentile, us(r.chosen_percentile_ns));
  double wait = std::max(0.0, r.avg_ns - r.send_ns - r.recv_ns);
  std::printf("    Avg %s time: %.0f usec (send %.0f usec + response wait %.0f usec + receive %.0f usec)\n",
              http ? "HTTP" : "gRPC", us(r.avg_ns), us(r.send_ns), us(wait), us(r.recv_ns));
  const ServerSplit& s = r.server;
  double phases = s.queue_ns + s.compute_input_ns + s.compute_infer_ns + s.compute_output_ns;
  std::printf("  Server:\n");
  std::printf("    Inference count: %llu\n    Execution count: %llu\n    Successful request count: %llu\n",
              static_cast<unsigned long long>(s.inference_count), static_cast<unsigned long long>(s.execution_count),
              static_cast<unsigned long long>(s.success_count));
  std::printf(
      "    Avg request latency: %.0f usec (overhead %.0f usec + queue %.0f usec + compute input %.0f usec + "
      "compute infer %.0f usec + compute output %.0f usec)\n",
      us(s.request_ns), us(std::max(0.0, s.request_ns - phases)), us(s.queue_ns), us(s.compute_input_ns),
      us(s.compute_infer_ns), us(s.compute_output_ns));
  if (!r.stable) {
    std::printf("  Warning: not stable within %g%% after %d windows; these figures are from the last %d\n",
                spec.stability_percentage, r.windows, std::min(r.windows, 3));
  }
  std::printf("\n");
}

// perf_analyzer's CSV: one row per level, times in microseconds.
Status write_csv(const std::string& path, const std::vector<LevelResult>& rows, LoadMode mode, bool verbose) {
  std::ofstream out(path);
  if (!out) return io_error("-f {}: cannot write the file", path);
  out << (mode == LoadMode::kConcurrency ? "Concurrency" : "Request Rate")
      << ",Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
         "Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency";
  if (verbose) out << ",Avg latency,request/response,response wait";
  out << "\n";
  auto u = [](double ns) { return static_cast<int64_t>(std::llround(ns / 1000.0)); };
  for (const LevelResult& r : rows) {
    const ServerSplit& s = r.server;
    double server = s.queue_ns + s.compute_input_ns + s.compute_infer_ns + s.compute_output_ns;
    double wait = std::max(0.0, r.avg_ns - r.send_ns - r.recv_ns);
    double network = std::max(0.0, wait - server);
    out << fmt::format("{}", r.level) << "," << fmt::format("{:.2f}", r.throughput) << "," << u(r.send_ns) << ","
        << u(network) << "," << u(s.queue_ns) << "," << u(s.compute_input_ns) << "," << u(s.compute_infer_ns) << ","
        << u(s.compute_output_ns) << "," << u(r.recv_ns) << "," << u(r.p50_ns) << "," << u(r.p90_ns) << ","
        << u(r.p95_ns) << "," << u(r.p99_ns);
    if (verbose) out << "," << u(r.avg_ns) << "," << u(r.send_ns + r.recv_ns) << "," << u(wait);
    out << "\n";
  }
  out.close();
  if (!out) return io_error("-f {}: writing failed", path);
  return Status::ok();
}

int usage_error(const Status& s) {
  std::fprintf(stderr, "kiln perf: %s\n", s.message().c_str());
  return 2;
}

int run_perf(const PerfArgs& args) {
  auto protocol = client::protocol_from_name(args.protocol);
  if (!protocol.is_ok()) return usage_error(protocol.status().with_context("-i"));
  if (!args.concurrency_range.empty() && !args.request_rate_range.empty()) {
    return usage_error(invalid_argument("--concurrency-range and --request-rate-range exclude each other"));
  }
  LoadMode mode = args.request_rate_range.empty() ? LoadMode::kConcurrency : LoadMode::kRequestRate;
  auto range =
      mode == LoadMode::kConcurrency
          ? parse_range("--concurrency-range", args.concurrency_range.empty() ? "1" : args.concurrency_range, true)
          : parse_range("--request-rate-range", args.request_rate_range, false);
  if (!range.is_ok()) return usage_error(range.status());
  PerfDataOptions data_options;
  data_options.batch_size = args.batch_size;
  data_options.input_data = args.input_data;
  data_options.string_length = args.string_length;
  for (const std::string& s : args.shapes) {
    auto shape = parse_shape_arg(s);
    if (!shape.is_ok()) return usage_error(shape.status());
    data_options.shapes[shape->first] = shape->second;
  }

  PerfSpec spec;
  spec.protocol = *protocol;
  spec.url =
      !args.url.empty() ? args.url : (*protocol == client::Protocol::kHttp ? "localhost:8000" : "localhost:8001");
  spec.model = args.model;
  spec.version = args.version;
  spec.batch_size = args.batch_size;
  spec.measurement_interval_ms = args.measurement_interval_ms;
  spec.stability_percentage = args.stability_percentage;
  spec.max_trials = args.max_trials;
  spec.percentile = args.percentile;
  spec.max_threads = args.max_threads;
  spec.poisson = args.request_distribution == "poisson";

  auto fail = [](const Status& s) {
    std::fprintf(stderr, "kiln perf: %s\n", s.message().c_str());
    return 1;
  };
  auto made = client::Client::create(spec.protocol, spec.url);
  if (!made.is_ok()) return usage_error(made.status().with_context("-u"));
  client::Client& c = *made.value();
  auto live = c.server_live();
  if (!live.is_ok()) return fail(live.status());
  auto ready = c.model_ready(spec.model, spec.version);
  if (!ready.is_ok()) return fail(ready.status());
  if (!*ready) {
    return fail(not_found("model '{}'{} is not ready on {}", spec.model,
                          spec.version.empty() ? "" : " version " + spec.version, spec.url));
  }
  auto metadata = c.model_metadata(spec.model, spec.version);
  if (!metadata.is_ok()) return fail(metadata.status());
  auto config = c.model_config(spec.model, spec.version);
  if (!config.is_ok()) return fail(config.status());
  auto data = make_perf_inputs(*metadata, config->max_batch_size, data_options);
  if (!data.is_ok()) return usage_error(data.status());
  spec.data = std::move(data).value();

  std::printf(
      "*** Measurement Settings ***\n  Batch size: %lld\n  Service: %s %s\n  Measurement window: %lld msec\n"
      "  Stabilizing on %s latency within %g%% over 3 windows (at most %d)\n\n",
      static_cast<long long>(spec.batch_size), args.protocol.c_str(), spec.url.c_str(),
      static_cast<long long>(spec.measurement_interval_ms),
      spec.percentile > 0 ? fmt::format("p{}", spec.percentile).c_str() : "average", spec.stability_percentage,
      spec.max_trials);
  std::fflush(stdout);
  std::vector<LevelResult> rows;
  const Range& r = *range;
  for (double level = r.start; level <= r.end + 1e-9; level += r.step) {
    auto result = run_perf_level(spec, mode, level);
    if (!result.is_ok()) return fail(result.status());
    print_level(*result, mode, spec, spec.protocol == client::Protocol::kHttp);
    std::fflush(stdout);
    rows.push_back(*result);
  }
  std::printf("Inferences/Second vs. Client %s Batch Latency\n",
              spec.percentile > 0 ? fmt::format("p{}", spec.percentile).c_str() : "Average");
  for (const LevelResult& row : rows) {
    std::printf("%s: %g, throughput: %.2f infer/sec, latency %.0f usec\n",
                mode == LoadMode::kConcurrency ? "Concurrency" : "Request Rate", row.level, row.throughput,
                us(row.chosen_percentile_ns));
  }
  if (!args.csv.empty()) {
    Status s = write_csv(args.csv, rows, mode, args.verbose_csv);
    if (!s.is_ok()) return fail(s);
  }
  return 0;
}

}  // namespace

void add_perf_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<PerfArgs>();
  CLI::App* cmd = app.add_subcommand(
      "perf", "Measure a served model's throughput and latency under load (like Triton's perf_analyzer)");
  cmd->add_option("-m,--model-name", args->model, "Model to load")->required();
  cmd->add_option("-x,--model-version", args->version, "Model version (default: the server's choice)");
  cmd->add_option("-b,--batch-size", args->batch_size, "Batch size of each request")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--shape", args->shapes, "Shape of an input without the batch dim, name:d1,d2,... (repeatable)");
  cmd->add_option("--input-data", args->input_data, "random, zero, or a JSON file in perf_analyzer's format");
  cmd->add_option("--string-length", args->string_length, "Length of random BYTES elements")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--concurrency-range", args->concurrency_range,
                  "start[:end[:step]] outstanding requests (default 1)");
  cmd->add_option("--request-rate-range", args->request_rate_range, "start[:end[:step]] requests per second");
  cmd->add_option("--request-distribution", args->request_distribution, "Request-rate gaps: constant or poisson")
      ->check(CLI::IsMember({"constant", "poisson"}));
  cmd->add_option("-i,--protocol", args->protocol, "http or grpc");
  cmd->add_option("-u,--url", args->url, "Server host:port (default localhost:8000 for http, :8001 for grpc)");
  cmd->add_option("-p,--measurement-interval", args->measurement_interval_ms, "Measurement window in ms")
      ->check(CLI::Range(int64_t{10}, int64_t{3600000}));
  cmd->add_option("--percentile", args->percentile, "Stabilize and report on this latency percentile (1..99)")
      ->check(CLI::Range(1, 99) | CLI::IsMember({-1}));
  cmd->add_option("-s,--stability-percentage", args->stability_percentage,
                  "Largest spread (%) of throughput and latency over 3 windows counted as stable")
      ->check(CLI::Range(0.1, 1000.0));
  cmd->add_option("-r,--max-trials", args->max_trials, "Most measurement windows per level")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--max-threads", args->max_threads, "Sending threads in request-rate mode")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("-f,--latency-report-file", args->csv, "Write the results as CSV (perf_analyzer's columns)");
  cmd->add_flag("--verbose-csv", args->verbose_csv, "Add Avg latency, request/response and response wait columns");
  cmd->callback([args, exit_code] { *exit_code = run_perf(*args); });
}

}  // namespace kiln::cli
