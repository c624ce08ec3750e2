// kiln_gpu_bench: runs an ONNX model through the GPU engine and times it.
//
//   kiln_gpu_bench --model m.onnx --precision fp16 --input input=x.npy
//                  [--outputs DIR] [--warmup 10] [--iters 50] [--no-graph] [--nchw]
//                  [--verbose] [--plan-only (print the plan; no GPU needed)] [--no-optimize]
//                  [--no-fused-conv] [--pad-channels] [--profile N (time each step over N eager runs; top 25)]
//                  [--rounds-from-stdin]
//
// Prints the plan summary on --verbose, then one line
//   KILN_GPU_BENCH model=<path> precision=<p> device_ms=<ms per run, inputs resident>
//                  e2e_ms=<ms per run() with host transfers> create_s=<s> cuda_graph=<0|1>
// and writes each output as DIR/<index>.npy. With --rounds-from-stdin it then
// times one more round for each line read from stdin (the median of three
// windows of at least 0.1 s) and prints "KILN_ROUND device_ms=<ms>", until
// end of input: tools/gpu_torch_bench.py --interleave drives it so that Kiln
// and PyTorch are timed in alternation on a GPU whose speed drifts.
// Used by tools/gpu_check.sh.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "backends/cuda/engine.h"
#include "npy.h"
#include "onnx/importer.h"
#include "passes/pipeline.h"

using namespace kiln;
using backends::cuda::GpuEngine;
using backends::cuda::GpuOptions;

namespace {

int fail(const std::string& msg) {
  std::fprintf(stderr, "kiln_gpu_bench: %s\n", msg.c_str());
  return 1;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, precision = "fp32", outputs_dir;
  std::vector<std::pair<std::string, std::string>> input_files;
  int warmup = 10, iters = 50;
  bool verbose = false, plan_only = false, optimize = true, rounds_from_stdin = false;
  int profile = 0;
  GpuOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : std::string(); };
    if (a == "--model") {
      model_path = next();
    } else if (a == "--precision") {
      precision = next();
    } else if (a == "--input") {
      std::string kv = next();
      size_t eq = kv.find('=');
      if (eq == std::string::npos) return fail("--input takes name=file.npy");
      input_files.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else if (a == "--outputs") {
      outputs_dir = next();
    } else if (a == "--warmup") {
      warmup = std::atoi(next().c_str());
    } else if (a == "--iters") {
      iters = std::atoi(next().c_str());
    } else if (a == "--no-graph") {
      options.cuda_graph = false;
    } else if (a == "--nchw") {
      options.channels_last = false;
    } else if (a == "--pad-channels") {
      options.pad_small_channels = true;
    } else if (a == "--no-fused-conv") {
      options.fuse_conv_epilogue = false;
    } else if (a == "--verbose") {
      verbose = true;
    } else if (a == "--profile") {
      profile = std::atoi(next().c_str());
    } else if (a == "--no-optimize") {
      optimize = false;
    } else if (a == "--plan-only") {
      plan_only = true;
    } else if (a == "--rounds-from-stdin") {
      rounds_from_stdin = true;
    } else {
      return fail("unknown argument '" + a + "'");
    }
  }
  if (model_path.empty()) return fail("--model is required");
  auto p = backends::cuda::parse_precision(precision);
  if (!p.is_ok()) return fail(p.status().message());
  options.precision = *p;

  auto model = onnx::import_model_file(model_path);
  if (!model.is_ok()) return fail(model.status().to_string());
  ir::Graph* graph_ptr = model->graph.get();
  if (optimize) {
    auto report = passes::optimize(*graph_ptr);
    if (!report.is_ok()) return fail("optimize: " + report.status().to_string());
  }
  ir::Graph& graph = *graph_ptr;

  std::vector<Tensor> inputs;
  for (const ir::Value* in : graph.inputs()) {
    const std::string* file = nullptr;
    for (const auto& [name, path] : input_files) {
      if (name == in->name()) file = &path;
    }
    if (file == nullptr) return fail("no --input for model input '" + in->name() + "'");
    auto t = cli::read_npy(*file);
    if (!t.is_ok()) return fail(t.status().to_string());
    options.input_shapes[in->name()] = t->dims();
    inputs.push_back(*t);
  }

  if (plan_only) {  // lowering only: works without a GPU
    std::vector<Dims> dims;
    std::vector<DataType> types;
    for (const Tensor& t : inputs) {
      dims.push_back(t.dims());
      types.push_back(t.dtype());
    }
    backends::cuda::PlanOptions po;
    po.precision = options.precision;
    po.channels_last = options.channels_last;
    po.pad_small_channels = options.pad_small_channels;
    auto plan = backends::cuda::build_plan(graph, dims, types, po);
    if (!plan.is_ok()) return fail(plan.status().to_string());
    std::printf("%s", plan->to_string().c_str());
    return 0;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto engine = GpuEngine::create(graph, options);
  Result<ir::Model> plain = Status(StatusCode::kInternal, "unused");
  if (!engine.is_ok() && optimize) {
    // The optimized graph may hold a node the GPU engine lacks: say so and
    // run the graph as imported.
    std::fprintf(stderr, "kiln_gpu_bench: optimized graph: %s; retrying without the optimizer\n",
                 engine.status().to_string().c_str());
    plain = onnx::import_model_file(model_path);
    if (!plain.is_ok()) return fail(plain.status().to_string());
    engine = GpuEngine::create(*plain->graph, options);
  }
  if (!engine.is_ok()) return fail(engine.status().to_string());
  double create_s = seconds_since(t0);
  if (verbose) std::printf("%s", (*engine)->plan_summary().c_str());

  auto out = (*engine)->run(inputs);
  if (!out.is_ok()) return fail(out.status().to_string());
  if (!outputs_dir.empty()) {
    for (size_t j = 0; j < out->size(); ++j) {
      Status st = cli::write_npy(outputs_dir + "/" + std::to_string(j) + ".npy", (*out)[j]);
      if (!st.is_ok()) return fail(st.to_string());
    }
  }
  // Timing: warm up for at least a second of device time (GPU clocks ramp
  // up), then the median of five windows of at least 0.2 s each.
  auto estimate = (*engine)->time_steps(std::max(1, warmup), 5);
  if (!estimate.is_ok()) return fail(estimate.status().to_string());
  double est = std::max(*estimate, 1e-3);
  int warm_iters = static_cast<int>(std::ceil(1000.0 / est));
  auto warm = (*engine)->time_steps(0, warm_iters);
  if (!warm.is_ok()) return fail(warm.status().to_string());
  int per_window = std::max(iters / 5, static_cast<int>(std::ceil(200.0 / std::max(*warm, 1e-3))));
  std::vector<double> windows;
  for (int w = 0; w < 5; ++w) {
    auto ms = (*engine)->time_steps(0, per_window);
    if (!ms.is_ok()) return fail(ms.status().to_string());
    windows.push_back(*ms);
  }
  std::sort(windows.begin(), windows.end());
  Result<double> device_ms = windows[windows.size() / 2];
  if (profile > 0) {
    auto steps = (*engine)->profile_steps(profile);
    if (!steps.is_ok()) return fail(steps.status().to_string());
    double sum = 0.0;
    for (const auto& st : *steps) sum += st.ms;
    std::vector<GpuEngine::StepTime> sorted = *steps;
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.ms > b.ms; });
    std::printf("profile: %zu steps launched one by one, %.4f ms per run in all (graph replay: %.4f ms)\n",
                sorted.size(), sum, *device_ms);
    for (size_t i = 0; i < sorted.size() && i < 25; ++i) {
      std::printf("  %8.4f ms %5.1f%%  %s\n", sorted[i].ms, 100.0 * sorted[i].ms / std::max(sum, 1e-9),
                  sorted[i].label.c_str());
    }
  }
  int e2e_iters = std::max(1, iters / 5);
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < e2e_iters; ++i) {
    auto r = (*engine)->run(inputs);
    if (!r.is_ok()) return fail(r.status().to_string());
  }
  double e2e_ms = seconds_since(t0) * 1000.0 / e2e_iters;
  std::printf("KILN_GPU_BENCH model=%s precision=%s device_ms=%.4f e2e_ms=%.4f create_s=%.2f cuda_graph=%d\n",
              model_path.c_str(), precision.c_str(), *device_ms, e2e_ms, create_s,
              (*engine)->uses_cuda_graph() ? 1 : 0);
  std::fflush(stdout);
  if (rounds_from_stdin) {
    int round_iters = std::max(1, static_cast<int>(std::ceil(100.0 / std::max(*device_ms, 1e-3))));
    char line[256];
    while (std::fgets(line, sizeof line, stdin) != nullptr) {
      std::vector<double> round;
      for (int w = 0; w < 3; ++w) {
        auto ms = (*engine)->time_steps(1, round_iters);
        if (!ms.is_ok()) return fail(ms.status().to_string());
        round.push_back(*ms);
      }
      std::sort(round.begin(), round.end());
      std::printf("KILN_ROUND device_ms=%.4f\n", round[1]);
      std::fflush(stdout);
    }
  }
  return 0;
}
