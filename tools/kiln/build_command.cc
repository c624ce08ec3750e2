// kiln build: ONNX model in, plan file out. Prints the layer table before and
// after optimization, the chosen tactics with --verbose, and the activation
// memory the memory planner saves. Tactic timing shows progress (output.h:
// a redrawn line on a terminal, plain lines in logs); --quiet prints only the
// plan written, --log-format json one JSON object.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <exception>
#include <functional>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "onnx/importer.h"
#include "output.h"
#include "plan/builder.h"
#include "plan/plan_file.h"
#include "calib_data.h"
#include "plan_report.h"
#include "quant/quantizer.h"

namespace kiln::cli {
namespace {

struct BuildArgs {
  std::string model;
  std::string output;
  bool fp32 = false;
  bool int8 = false;
  bool bf16 = false;
  bool fp16 = false;
  std::string calib_dir, calib_cache, calibrator = "entropy";
  std::vector<std::string> layer_precisions;
  double max_accuracy_drop = -1;
  std::string shapes, min_shapes, opt_shapes, max_shapes;
  std::string timing_cache;
  std::string tactic_sources;
  std::vector<std::string> layer_tactics;
  int threads = 0;
  bool verbose = false;
  bool skip_timing = false;
  std::string dump_after;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// Each Conv/Gemm/MatMul-like layer of the built graph with the precision it got.
// Printed when any layer is int8 (--int8, or a Q/DQ model).
void print_layer_precisions(const ir::Graph& graph) {
  int64_t int8 = 0, fp32 = 0;
  std::vector<std::pair<std::string, const char*>> rows;
  for (const auto& n : graph.nodes()) {
    const std::string& op = n->op_type();
    const bool q = n->domain() == "kiln" && (op == "QConv" || op == "QGemm");
    const bool f = op == "Conv" || op == "Gemm" || op == "MatMul" || op == "FusedConv" || op == "FusedGemm" ||
                   op == "FusedMatMul";
    if (!q && !f) continue;
    (q ? int8 : fp32)++;
    rows.emplace_back(n->name(), q ? "int8" : "fp32");
  }
  if (int8 == 0) return;
  std::printf("precision: %lld int8 layers, %lld fp32 layers\n", static_cast<long long>(int8),
              static_cast<long long>(fp32));
  for (const auto& [name, p] : rows) std::printf("  %-40s %s\n", name.c_str(), p);
}

Status run_build(const BuildArgs& args) {
  plan::BuildOptions o;
  if (static_cast<int>(args.fp32) + args.int8 + args.bf16 + args.fp16 > 1) {
    return invalid_argument("give at most one of --fp32, --bf16, --fp16, --int8");
  }
  o.precision = args.int8 ? "int8" : args.bf16 ? "bf16" : args.fp16 ? "fp16" : "fp32";
  if (!args.int8 && (!args.calib_dir.empty() || !args.calib_cache.empty() || args.max_accuracy_drop >= 0)) {
    return invalid_argument("--calib, --calib-cache and --max-accuracy-drop need --int8");
  }
  if (o.precision == "fp32" && !args.layer_precisions.empty()) {
    return invalid_argument("--layer-precision needs --bf16, --fp16 or --int8");
  }
  KILN_ASSIGN_OR_RETURN(o.shapes, plan::parse_shape_spec(args.shapes));
  KILN_ASSIGN_OR_RETURN(o.min_shapes, plan::parse_shape_spec(args.min_shapes));
  KILN_ASSIGN_OR_RETURN(o.opt_shapes, plan::parse_shape_spec(args.opt_shapes));
  KILN_ASSIGN_OR_RETURN(o.max_shapes, plan::parse_shape_spec(args.max_shapes));
  o.timing_cache = args.timing_cache;
  o.tactic_sources = split_list(args.tactic_sources);
  for (const std::string& lt : args.layer_tactics) {
    const size_t eq = lt.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == lt.size()) {
      return invalid_argument("--layer-tactic '{}': expected LAYER=TACTIC", lt);
    }
    o.layer_tactics[lt.substr(0, eq)] = lt.substr(eq + 1);
  }
  o.threads = args.threads;
  o.time_tactics = !args.skip_timing;
  if (!args.dump_after.empty()) {
    o.passes.dump_after = args.dump_after;
    o.passes.dump = &std::cout;
  }
  Progress progress("build");
  o.progress = [&progress](const std::string& stage, size_t done, size_t total) {
    progress.update(stage, done, total);
  };
  KILN_ASSIGN_OR_RETURN(ir::Model model, onnx::import_model_file(args.model));
  std::error_code abs_ec;
  model.metadata["kiln.source_model"] = std::filesystem::absolute(args.model, abs_ec).string();
  const auto before = op_histogram(*model.graph);
  if (args.int8) {
    KILN_ASSIGN_OR_RETURN(quant::QuantizeOptions qo, quantize_options(args.calib_dir, args.calib_cache, args.calibrator,
                                                                      args.layer_precisions, *model.graph, "build"));
    qo.max_accuracy_drop = args.max_accuracy_drop;
    KILN_ASSIGN_OR_RETURN(quant::QuantizeReport q, quant::quantize_model(*model.graph, qo));
    std::printf("int8: %zu layers quantized (%s, %s), %zu kept in fp32 by --layer-precision\n",
                q.int8_layers.size(), q.table.calibrator.c_str(),
                q.from_cache ? ("cache " + args.calib_cache).c_str()
                             : (std::to_string(q.table.batches) + " batches").c_str(),
                q.fp32_layers.size());
    for (const std::string& line : q.sensitivity) std::printf("accuracy budget: %s\n", line.c_str());
  }
  if (args.bf16 || args.fp16) {
    KILN_ASSIGN_OR_RETURN(auto layers, quant::convert_to_half(*model.graph, o.precision, args.layer_precisions));
    int64_t half = 0;
    for (const auto& l : layers) half += l.precision != "fp32" ? 1 : 0;
    std::printf("precision: %lld %s layers, %lld fp32 layers (16-bit numerics, fp32 kernels)\n",
                static_cast<long long>(half), o.precision.c_str(), static_cast<long long>(layers.size()) - half);
    for (const auto& l : layers) std::printf("  %-40s %s\n", l.layer.c_str(), l.precision.c_str());
  }
  plan::BuildReport report;
  KILN_ASSIGN_OR_RETURN(plan::Plan plan, plan::build(std::move(model), o, &report));
  KILN_RETURN_IF_ERROR(plan::save_plan(plan, args.output));
  progress.finish();
  std::error_code ec;
  auto size = std::filesystem::file_size(args.output, ec);

  if (output_options().format == LogFormat::kJson) {
    std::printf("%s\n", json_object({{"command", "\"build\""},
                                     {"event", "\"built\""},
                                     {"model", json_quote(args.model)},
                                     {"plan", json_quote(args.output)},
                                     {"plan_bytes", std::to_string(ec ? 0 : size)},
                                     {"onnx_nodes", std::to_string(report.onnx_nodes)},
                                     {"layers", std::to_string(report.layers)},
                                     {"timed_layers", std::to_string(report.timed_nodes)},
                                     {"cache_hits", std::to_string(report.cache_hits)},
                                     {"cache_misses", std::to_string(report.cache_misses)},
                                     {"seconds", fmt::format("{:.3f}", report.total_seconds)}})
                            .c_str());
    return Status::ok();
  }
  if (output_options().quiet) {
    std::printf("wrote %s (%s)\n", args.output.c_str(), ec ? "?" : human_bytes(static_cast<int64_t>(size)).c_str());
    return Status::ok();
  }
  std::printf("kiln build: %s -> %s\n", args.model.c_str(), args.output.c_str());
  print_layer_table(before, op_histogram(*plan.model.graph), report.onnx_nodes, report.layers);
  if (args.verbose) {
    for (const auto& p : report.passes) {
      std::printf("pass %-28s %s %lld -> %lld nodes, %.1f ms\n", p.name.c_str(), p.changed ? "changed" : "       ",
                  static_cast<long long>(p.nodes_before), static_cast<long long>(p.nodes_after), p.milliseconds);
    }
    print_layers(layer_rows(plan));
  }
  print_layer_precisions(*plan.model.graph);
  print_memory(plan);
  for (const auto& p : plan.profiles) {
    std::printf("profile %s: min %s opt %s max %s\n", p.name.c_str(), plan::format_dims(p.min).c_str(),
                plan::format_dims(p.opt).c_str(), plan::format_dims(p.max).c_str());
  }
  if (plan.precision == "fp16") {
    int64_t half_weights = 0;
    for (const auto& l : plan.layers) half_weights += l.tactic.find("_fp16.") != std::string::npos ? 1 : 0;
    std::printf("fp16 storage: %lld layers keep their weights as halves, %lld values between layers are float16\n",
                static_cast<long long>(half_weights), static_cast<long long>(report.half_values));
  }
  std::printf("tactics: %lld layers timed (%lld timings from the cache, %lld measured) in %.2f s; build %.2f s\n",
              static_cast<long long>(report.timed_nodes), static_cast<long long>(report.cache_hits),
              static_cast<long long>(report.cache_misses), report.tactic_seconds, report.total_seconds);
  std::printf("wrote %s (%s)\n", args.output.c_str(), ec ? "?" : human_bytes(static_cast<int64_t>(size)).c_str());
  return Status::ok();
}

}  // namespace

void add_build_command(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<BuildArgs>();
  CLI::App* sub = app.add_subcommand("build", "Optimize an ONNX model and save it as a plan file");
  sub->add_option("model", args->model, "the .onnx model file")->required();
  sub->add_option("-o,--output", args->output, "the plan file to write")->required();
  sub->add_flag("--fp32", args->fp32, "build in fp32 (the default)");
  sub->add_flag("--bf16", args->bf16, "Conv/Gemm/MatMul weights and inputs in bf16, fp32 accumulation");
  sub->add_flag("--fp16", args->fp16, "Conv/Gemm/MatMul weights and inputs in fp16, fp32 accumulation");
  sub->add_flag("--int8", args->int8, "quantize Conv/Gemm/MatMul to int8 from calibration (--calib or --calib-cache)");
  sub->add_option("--calib", args->calib_dir,
                  "calibration data: a directory of .npy batches (one-input models) or of batch "
                  "subdirectories holding <input>.npy");
  sub->add_option("--calib-cache", args->calib_cache, "calibration cache: written after calibrating, read without --calib");
  sub->add_option("--calibrator", args->calibrator, "entropy (default), minmax or percentile");
  sub->add_option("--max-accuracy-drop", args->max_accuracy_drop,
                  "int8: keep the most sensitive layers in fp32 until top-1 agreement with fp32 on the "
                  "calibration data is within this many points");
  sub->add_option("--layer-precision", args->layer_precisions,
                  "per-layer override NAME:fp32 with --bf16/--fp16/--int8 (repeatable)");
  sub->add_option("--shapes", args->shapes, "fixed input shapes, e.g. input_ids:8x128,attention_mask:8x128");
  sub->add_option("--min-shapes", args->min_shapes, "the smallest input shapes of a dynamic profile");
  sub->add_option("--opt-shapes", args->opt_shapes, "the shapes tactics are timed on");
  sub->add_option("--max-shapes", args->max_shapes, "the largest input shapes (the memory plan's)");
  sub->add_option("--timing-cache", args->timing_cache, "read and update tactic timings in this file");
  sub->add_option("--layer-tactic", args->layer_tactics,
                  "LAYER=TACTIC: give a layer (as --verbose names it) this tactic without timing (repeatable)");
  sub->add_option("--tactic-sources", args->tactic_sources, "allowed kernel sources: own,onednn,reference,cuda (default: all; cuda only where a GPU is present)");
  sub->add_option("--threads", args->threads, "threads to time tactics with (default: all)");
  sub->add_flag("--verbose", args->verbose, "print each pass and each layer's tactic and time");
  sub->add_flag("--skip-timing", args->skip_timing, "take each node's first candidate instead of timing");
  sub->add_option("--dump-after", args->dump_after, "print the graph after this pass");
  sub->callback([args, exit_code] {
    try {
      Status s = run_build(*args);
      if (!s.is_ok()) {
        print_error("build", s.message());
        *exit_code = 1;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "kiln build: internal error: %s\n", e.what());
      *exit_code = 1;
    }
  });
}

}  // namespace kiln::cli
