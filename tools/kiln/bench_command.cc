// kiln bench: times a model or plan like trtexec: throughput, and latency
// min/mean/median/p90/p95/p99 over a timed run after a warm-up; per-layer
// times with --profile (--export-profile writes them as JSON); with
// --compare onnxruntime, the same inputs through onnxruntime (run by the
// project's Python, which has it) in the same run, and the ratio.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "npy.h"
#include "onnx/importer.h"
#include "output.h"
#include "plan/builder.h"
#include "plan/plan_file.h"
#include "plan_report.h"
#include "runtime/engine.h"

#ifndef KILN_PYTHON_EXECUTABLE
#define KILN_PYTHON_EXECUTABLE "python3"
#endif

namespace kiln::cli {
namespace {

struct BenchArgs {
  std::string model;
  int batch = 0;
  std::string shapes;
  double warmup = 0.5;
  double duration = 3.0;
  int iterations = 0;
  int threads = 0;
  bool profile = false;
  std::string export_profile;
  std::string compare;
  std::string onnx;  // the ONNX model for --compare when benchmarking a plan
};

struct Stats {
  double min = 0, max = 0, mean = 0, median = 0, p90 = 0, p95 = 0, p99 = 0, total_s = 0;
  size_t count = 0;
};

Stats stats_of(std::vector<double> ms, double total_s) {
  Stats s;
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) {
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(ms.size() - 1) + 0.5);
    return ms[std::min(i, ms.size() - 1)];
  };
  s.min = ms.front();
  s.max = ms.back();
  s.mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
  s.median = pct(50);
  s.p90 = pct(90);
  s.p95 = pct(95);
  s.p99 = pct(99);
  s.total_s = total_s;
  s.count = ms.size();
  return s;
}

void print_stats(const char* who, const Stats& s, int batch) {
  const double qps = s.total_s > 0 ? static_cast<double>(s.count) / s.total_s : 0;
  if (output_options().format == LogFormat::kJson) {
    auto ms = [](double v) { return fmt::format("{:.6f}", v); };
    std::printf("%s\n", json_object({{"command", "\"bench\""},
                                     {"event", "\"result\""},
                                     {"runtime", json_quote(who)},
                                     {"batch", std::to_string(batch)},
                                     {"qps", fmt::format("{:.3f}", qps)},
                                     {"iterations", std::to_string(s.count)},
                                     {"seconds", fmt::format("{:.3f}", s.total_s)},
                                     {"latency_ms", json_object({{"min", ms(s.min)},
                                                                 {"max", ms(s.max)},
                                                                 {"mean", ms(s.mean)},
                                                                 {"median", ms(s.median)},
                                                                 {"p90", ms(s.p90)},
                                                                 {"p95", ms(s.p95)},
                                                                 {"p99", ms(s.p99)}})}})
                            .c_str());
    return;
  }
  std::printf("=== %s ===\n", who);
  std::printf("Throughput: %.3f qps", qps);
  if (batch > 1) std::printf(" (%.1f inferences/s at batch %d)", qps * batch, batch);
  std::printf("\nLatency: min = %.4f ms, max = %.4f ms, mean = %.4f ms, median = %.4f ms, percentile(90%%) = %.4f ms, "
              "percentile(95%%) = %.4f ms, percentile(99%%) = %.4f ms\n",
              s.min, s.max, s.mean, s.median, s.p90, s.p95, s.p99);
  std::printf("Total Host Walltime: %.3f s\nTotal Iterations: %zu\n", s.total_s, s.count);
}

// Random inputs of the engine's input shapes: profile opt shapes, then
// --shapes, then declared dims (unknown dims: --batch for the first, 1 after).
Result<runtime::NamedTensors> make_inputs(const runtime::Engine& engine, const plan::ShapeSpec& shapes, int batch) {
  runtime::NamedTensors feeds;
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const auto& b : engine.inputs()) {
    if (b.optional) continue;
    if (!b.is_tensor) return unimplemented("input '{}' is not a tensor; kiln bench feeds tensors only", b.name);
    Dims dims;
    auto it = shapes.find(b.name);
    const plan::InputProfile* prof = nullptr;
    if (engine.plan()) {
      for (const auto& p : engine.plan()->profiles) {
        if (p.name == b.name) prof = &p;
      }
    }
    if (it != shapes.end()) {
      dims = it->second;
    } else if (prof != nullptr) {
      dims = prof->opt;
      if (batch > 0 && !dims.empty()) dims[0] = batch;
    } else {
      if (!b.shape.rank_known()) return invalid_argument("input '{}' has unknown rank; give --shapes", b.name);
      for (int64_t i = 0; i < b.shape.rank(); ++i) {
        dims.push_back(b.shape[i].known() ? b.shape[i].value : (i == 0 && batch > 0 ? batch : 1));
      }
      if (batch > 0 && !dims.empty()) dims[0] = batch;
    }
    KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(b.dtype, dims));
    if (b.dtype == DataType::kFloat32) {
      for (float& x : t.span<float>()) x = u(rng);
    } else if (b.dtype == DataType::kInt64) {
      for (int64_t& x : t.span<int64_t>()) x = 1;
    } else if (b.dtype == DataType::kInt32) {
      for (int32_t& x : t.span<int32_t>()) x = 1;
    } else if (b.dtype == DataType::kBool) {
      for (bool& x : t.span<bool>()) x = true;
    }
    feeds.emplace_back(b.name, std::move(t));
  }
  return feeds;
}

// Runs `ctx` for the warm-up, then for the duration or iteration count; per-run latencies in ms.
Result<Stats> time_runs(runtime::ExecutionContext& ctx, const runtime::NamedTensors& feeds, const BenchArgs& a) {
  using Clock = std::chrono::steady_clock;
  auto w0 = Clock::now();
  do {
    KILN_RETURN_IF_ERROR(ctx.run(feeds).status());
  } while (std::chrono::duration<double>(Clock::now() - w0).count() < a.warmup);
  ctx.enable_profiling(a.profile || !a.export_profile.empty());
  std::vector<double> ms;
  auto t0 = Clock::now();
  while (true) {
    auto s = Clock::now();
    KILN_RETURN_IF_ERROR(ctx.run(feeds).status());
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
    double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    if (a.iterations > 0 ? static_cast<int>(ms.size()) >= a.iterations : elapsed >= a.duration) break;
  }
  return stats_of(std::move(ms), std::chrono::duration<double>(Clock::now() - t0).count());
}

void report_profile(const runtime::ExecutionContext& ctx, const plan::Plan& plan, size_t runs, const BenchArgs& a) {
  const auto& total = ctx.layer_ms();
  auto rows = layer_rows(plan);
  const double sum = std::accumulate(total.begin(), total.end(), 0.0);
  if (a.profile) {
    std::printf("=== Profile (%zu iterations) ===\n%4s  %-32s %-22s %-26s %12s %8s\n", runs, "#", "layer", "op",
                "tactic", "average ms", "%");
    for (size_t i = 0; i < total.size() && i < rows.size(); ++i) {
      std::printf("%4zu  %-32.32s %-22.22s %-26.26s %12.4f %8.1f\n", i, rows[i].name.c_str(), rows[i].op.c_str(),
                  rows[i].tactic.c_str(), total[i] / static_cast<double>(runs), sum > 0 ? 100 * total[i] / sum : 0);
    }
    std::printf("%-94s %12.4f\n", "total", sum / static_cast<double>(runs));
  }
  if (!a.export_profile.empty()) {
    std::ofstream f(a.export_profile);
    f << "[\n  {\"count\": " << runs << "}";
    for (size_t i = 0; i < total.size() && i < rows.size(); ++i) {
      f << fmt::format(",\n  {{\"name\": \"{}\", \"op\": \"{}\", \"tactic\": \"{}\", \"timeMs\": {:.6f}, "
                       "\"averageMs\": {:.6f}, \"percentage\": {:.3f}}}",
                       rows[i].name, rows[i].op, rows[i].tactic, total[i], total[i] / static_cast<double>(runs),
                       sum > 0 ? 100 * total[i] / sum : 0);
    }
    f << "\n]\n";
    std::printf("wrote profile %s\n", a.export_profile.c_str());
  }
}

// The onnxruntime side of --compare: a Python script timing the same inputs.
constexpr const char* kOrtScript = R"PY(
import json, sys, time, glob, os
import numpy as np
import onnxruntime as ort
model, folder, threads, warmup, duration, iterations = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
so = ort.SessionOptions()
if threads > 0:
    so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
feeds = {os.path.basename(p)[3:-4]: np.load(p) for p in glob.glob(os.path.join(folder, "in_*.npy"))}
t0 = time.perf_counter()
while True:
    sess.run(None, feeds)
    if time.perf_counter() - t0 >= warmup:
        break
ms = []
t0 = time.perf_counter()
while True:
    s = time.perf_counter()
    out = sess.run(None, feeds)
    ms.append((time.perf_counter() - s) * 1e3)
    if (len(ms) >= iterations) if iterations > 0 else (time.perf_counter() - t0 >= duration):
        break
total = time.perf_counter() - t0
for i, o in enumerate(out):
    np.save(os.path.join(folder, f"ort_{i}.npy"), o)
print(json.dumps({"ms": ms, "total_s": total}))
)PY";

Status compare_onnxruntime(const BenchArgs& a, const std::string& onnx_path, const runtime::NamedTensors& feeds,
                           const runtime::NamedTensors& kiln_out, const Stats& kiln, int batch) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / fmt::format("kiln_bench_{}", static_cast<long>(::getpid()));
  fs::create_directories(dir);
  for (const auto& [name, t] : feeds) KILN_RETURN_IF_ERROR(write_npy((dir / ("in_" + name + ".npy")).string(), t));
  {
    std::ofstream f(dir / "ort_bench.py");
    f << kOrtScript;
  }
  const char* env = std::getenv("KILN_PYTHON");
  std::string python = env ? env : KILN_PYTHON_EXECUTABLE;
  std::string cmd = fmt::format("'{}' '{}' '{}' '{}' {} {} {} {} > '{}'", python, (dir / "ort_bench.py").string(),
                                onnx_path, dir.string(), a.threads, a.warmup, a.duration, a.iterations,
                                (dir / "ort.json").string());
  int rc = std::system(cmd.c_str());
  if (rc != 0) {
    fs::remove_all(dir);
    return unavailable("the onnxruntime comparison failed (exit status {}): is onnxruntime installed for '{}'? "
                       "(set KILN_PYTHON to a Python that has it)",
                       rc, python);
  }
  std::ifstream in(dir / "ort.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // {"ms": [..], "total_s": x}: parse the list of numbers by hand (no JSON DOM needed).
  std::vector<double> ms;
  size_t lb = text.find('['), rb = text.find(']');
  double total_s = 0;
  if (lb != std::string::npos && rb != std::string::npos) {
    std::string list = text.substr(lb + 1, rb - lb - 1);
    size_t pos = 0;
    while (pos < list.size()) {
      size_t comma = list.find(',', pos);
      ms.push_back(std::atof(list.substr(pos, comma - pos).c_str()));
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    size_t t = text.find("\"total_s\":");
    if (t != std::string::npos) total_s = std::atof(text.c_str() + t + 10);
  }
  Stats ort = stats_of(ms, total_s);
  print_stats("onnxruntime (same inputs)", ort, batch);
  double max_diff = 0;
  for (size_t i = 0; i < kiln_out.size(); ++i) {
    auto o = read_npy((dir / fmt::format("ort_{}.npy", i)).string());
    if (!o.is_ok() || o->dtype() != DataType::kFloat32 || kiln_out[i].second.dtype() != DataType::kFloat32 ||
        o->numel() != kiln_out[i].second.numel()) {
      continue;
    }
    for (int64_t k = 0; k < o->numel(); ++k) {
      max_diff = std::max<double>(max_diff, std::abs(o->data<float>()[k] - kiln_out[i].second.data<float>()[k]));
    }
  }
  fs::remove_all(dir);
  const double latency_ratio = kiln.median > 0 ? ort.median / kiln.median : 0.0;
  const double throughput_ratio =
      ort.total_s > 0 && kiln.total_s > 0
          ? (static_cast<double>(kiln.count) / kiln.total_s) / (static_cast<double>(ort.count) / ort.total_s)
          : 0.0;
  if (output_options().format == LogFormat::kJson) {
    std::printf("%s\n", json_object({{"command", "\"bench\""},
                                     {"event", "\"compare\""},
                                     {"median_latency_ratio", fmt::format("{:.4f}", latency_ratio)},
                                     {"throughput_ratio", fmt::format("{:.4f}", throughput_ratio)},
                                     {"max_abs_diff", fmt::format("{:.6g}", max_diff)}})
                            .c_str());
    return Status::ok();
  }
  std::printf("=== Kiln vs onnxruntime ===\nmedian latency ratio (onnxruntime / kiln): %.3f  (>1: kiln is faster)\n"
              "throughput ratio (kiln / onnxruntime): %.3f\nmax |kiln - onnxruntime| over float outputs: %.3g\n",
              latency_ratio, throughput_ratio, max_diff);
  return Status::ok();
}

Status run_bench(const BenchArgs& a) {
  KILN_ASSIGN_OR_RETURN(plan::ShapeSpec shapes, plan::parse_shape_spec(a.shapes));
  if (!a.compare.empty() && a.compare != "onnxruntime") {
    return invalid_argument("--compare knows only 'onnxruntime', got '{}'", a.compare);
  }
  plan::Plan plan;
  std::string onnx_path = a.onnx;
  if (plan::is_plan_file(a.model)) {
    KILN_ASSIGN_OR_RETURN(plan, plan::load_plan(a.model));
    if (onnx_path.empty()) {
      auto it = plan.model.metadata.find("kiln.source_model");
      if (it != plan.model.metadata.end()) onnx_path = it->second;
    }
  } else {
    KILN_ASSIGN_OR_RETURN(ir::Model model, onnx::import_model_file(a.model));
    if (onnx_path.empty()) onnx_path = a.model;
    plan::BuildOptions o;
    o.threads = a.threads;
    o.shapes = shapes;
    if (shapes.empty() && a.batch > 0) {
      for (const ir::Value* v : model.graph->inputs()) {
        if (v->is_constant() || !v->type().is_tensor() || !v->type().shape.rank_known()) continue;
        Dims d;
        for (int64_t i = 0; i < v->type().shape.rank(); ++i) {
          const Dim& x = v->type().shape[i];
          d.push_back(i == 0 ? a.batch : x.known() ? x.value : 1);
        }
        o.shapes[v->name()] = d;
      }
    }
    KILN_ASSIGN_OR_RETURN(plan, plan::build(std::move(model), o));
  }
  KILN_ASSIGN_OR_RETURN(auto engine, runtime::Engine::create_from_plan(std::move(plan), {.threads = a.threads}));
  KILN_ASSIGN_OR_RETURN(runtime::NamedTensors feeds, make_inputs(*engine, shapes, a.batch));
  const bool text = output_options().format == LogFormat::kText;
  for (const auto& [name, t] : feeds) {
    if (text) std::printf("input %s: %s\n", name.c_str(), t.debug_string().c_str());
  }
  auto ctx = engine->create_context();
  KILN_ASSIGN_OR_RETURN(Stats s, time_runs(*ctx, feeds, a));
  const int batch = feeds.empty() || feeds.front().second.rank() == 0 ? 1 : static_cast<int>(feeds.front().second.dim(0));
  if (text) std::printf("threads: %d\n", engine->threads());
  print_stats("Kiln", s, batch);
  if (a.profile || !a.export_profile.empty()) report_profile(*ctx, *engine->plan(), s.count, a);
  if (!a.compare.empty()) {
    if (onnx_path.empty() || !std::filesystem::exists(onnx_path)) {
      return invalid_argument("--compare needs the ONNX model; pass it with --onnx");
    }
    KILN_ASSIGN_OR_RETURN(runtime::NamedTensors out, ctx->run(feeds));
    KILN_RETURN_IF_ERROR(compare_onnxruntime(a, onnx_path, feeds, out, s, batch));
  }
  return Status::ok();
}

}  // namespace

void add_bench_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* sub = app.add_subcommand("bench", "Time a model or plan: throughput and latency percentiles");
  sub->add_option("model", args->model, "the .onnx model (built with default options) or .plan file")->required();
  sub->add_option("--batch", args->batch, "batch size: the first dim of every input");
  sub->add_option("--shapes", args->shapes, "input shapes, e.g. input_ids:8x128,attention_mask:8x128");
  sub->add_option("--warmup", args->warmup, "seconds of warm-up runs (default 0.5)");
  auto* dur = sub->add_option("--duration", args->duration, "seconds of timed runs (default 3)");
  sub->add_option("--iterations", args->iterations, "timed runs (instead of --duration)")->excludes(dur);
  sub->add_option("--threads", args->threads, "intra-op threads (default: all)");
  sub->add_flag("--profile", args->profile, "print per-layer times");
  sub->add_option("--export-profile", args->export_profile, "write per-layer times as JSON to this file");
  sub->add_option("--compare", args->compare, "also run the same inputs through onnxruntime and print the ratio");
  sub->add_option("--onnx", args->onnx, "the ONNX model for --compare when benchmarking a plan");
  sub->callback([args, exit_code] {
    try {
      Status s = run_bench(*args);
      if (!s.is_ok()) {
        print_error("bench", s.message());
        *exit_code = 1;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kiln bench: internal error: %s\n", e.what());
      *exit_code = 1;
    }
  });
}

}  // namespace kiln::cli
