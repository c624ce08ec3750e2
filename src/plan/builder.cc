#include "plan/builder.h"

#include <flatbuffers/base.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/logging.h"
#include "core/thread_pool.h"
#include "ops/shape_inference.h"
#include "plan/half_values.h"
#include "plan/layouts.h"
#include "plan/memory_planner.h"
#include "plan/shapes.h"
#include "plan/tactic_selector.h"
#include "plan/target.h"
#include "plan/timing_cache.h"

namespace kiln::plan {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Input shapes of one profile point (min, opt or max).
std::map<std::string, Dims> profile_point(const std::vector<InputProfile>& profiles, Dims InputProfile::*which) {
  std::map<std::string, Dims> out;
  for (const auto& p : profiles) out[p.name] = p.*which;
  return out;
}

}  // namespace

bool skip_timing_requested() {
  const char* v = std::getenv("KILN_SKIP_TIMING");
  return v != nullptr && std::strcmp(v, "") != 0 && std::strcmp(v, "0") != 0;
}

Result<Plan> build(ir::Model model, const BuildOptions& options, BuildReport* report) {
  const auto t0 = Clock::now();
  if (!model.graph) return invalid_argument("model has no graph");
  // "int8": the caller (src/quant through kiln::build_plan) has written the
  // calibration into the graph as Q/DQ, which the qdq_lowering pass lowers;
  // "bf16"/"fp16": the caller has rounded weights and layer inputs
  // (quant/half_precision.h). Either way the graph says it all.
  if (options.precision != "fp32" && options.precision != "int8" && options.precision != "bf16" &&
      options.precision != "fp16") {
    return invalid_argument("unknown precision '{}' (fp32, bf16, fp16, int8)", options.precision);
  }
  KILN_RETURN_IF_ERROR(check_tactic_sources(options.tactic_sources));
  Plan plan;
  ir::Graph& graph = *model.graph;
  plan.onnx_nodes = static_cast<int64_t>(graph.num_nodes());
  KILN_ASSIGN_OR_RETURN(
      plan.profiles, make_profiles(graph, options.shapes, options.min_shapes, options.opt_shapes, options.max_shapes));
  // Inputs whose profile is one shape become static: the passes and the
  // memory plan then see every shape that follows from them.
  for (const auto& p : plan.profiles) {
    ir::Value* v = graph.find_value(p.name);
    if (p.min == p.max && v->type().is_tensor() && !v->type().shape.fully_known()) {
      v->set_type(ir::ValueType::tensor(v->type().dtype, Shape::of(p.max)));
    }
  }
  // Types of every value from the (now possibly static) inputs; the passes
  // and the memory plan read them.
  KILN_RETURN_IF_ERROR(ops::infer_shapes(graph));

  auto t_opt = Clock::now();
  passes::PipelineOptions pass_options = options.passes;
  // IR versions before 4 list every initializer as a graph input; those are weights, not inputs.
  if (model.ir_version > 0 && model.ir_version < 4) pass_options.initializer_inputs_are_constant = true;
  pass_options.half_inputs = options.precision == "fp16";
  KILN_ASSIGN_OR_RETURN(auto pass_reports, passes::optimize(graph, pass_options));
  const double optimize_seconds = seconds_since(t_opt);
  // Types of values the passes created; only a hint to the memory plan
  // (values of unknown size stay on the heap), so a failure is not fatal.
  if (Status st = ops::infer_shapes(graph); !st.is_ok()) {
    KILN_LOG_DEBUG("shape inference after the passes: {}", st.message());
  }

  bool dynamic = false;
  for (const auto& p : plan.profiles) dynamic = dynamic || p.min != p.max;
  ValueDims opt_dims, max_dims;
  if (dynamic) {
    KILN_ASSIGN_OR_RETURN(opt_dims, concrete_shapes(graph, profile_point(plan.profiles, &InputProfile::opt)));
    KILN_ASSIGN_OR_RETURN(max_dims, concrete_shapes(graph, profile_point(plan.profiles, &InputProfile::max)));
  } else {
    opt_dims = max_dims = static_shapes(graph);
  }

  TimingCache cache;
  if (!options.timing_cache.empty()) {
    KILN_ASSIGN_OR_RETURN(cache, TimingCache::load(options.timing_cache));
  }
  ThreadPool pool(options.threads > 0 ? options.threads : ThreadPool::hardware_threads());
  SelectOptions so;
  so.sources = options.tactic_sources;
  so.forced = options.layer_tactics;
  so.blocked_layouts = options.blocked_layouts;
  so.time = options.time_tactics;
  so.warmup = options.warmup;
  so.repeats = options.repeats;
  so.registry = options.registry;
  if (options.progress) so.progress = [&](size_t done, size_t total) { options.progress("tactics", done, total); };
  auto t_tac = Clock::now();
  // Without a file the cache still serves this build: identical layers are timed once.
  KILN_ASSIGN_OR_RETURN(Selection sel, select_tactics(graph, opt_dims, pool, so, &cache));
  const double tactic_seconds = seconds_since(t_tac);
  if (!options.timing_cache.empty() && sel.cache_misses > 0) KILN_RETURN_IF_ERROR(cache.save(options.timing_cache));

  int64_t blocked_values = 0;
  if (options.blocked_layouts) {
    const backends::TacticRegistry& registry =
        options.registry != nullptr ? *options.registry : backends::TacticRegistry::global();
    KILN_ASSIGN_OR_RETURN(blocked_values, assign_blocked_layouts(graph, sel.layers, sel.kernels, registry));
  }

  int64_t half_values = 0;
  if (options.precision == "fp16") {
    const backends::TacticRegistry& registry =
        options.registry != nullptr ? *options.registry : backends::TacticRegistry::global();
    KILN_ASSIGN_OR_RETURN(half_values, store_half_values(graph, sel.layers, sel.kernels, registry));
  }

  std::vector<std::string> tactics;
  for (const Layer& l : sel.layers) tactics.push_back(l.tactic);
  MemoryPlanOptions mo;
  mo.registry = options.registry;
  plan.memory = plan_memory(graph, max_dims, tactics, mo);

  plan.target.arch = host_target().arch;
  plan.target.isa = host_target().isa;
  for (const std::string& t : tactics) {
    std::string isa = tactic_isa(t);
    if (!isa.empty() &&
        std::find(plan.target.required.begin(), plan.target.required.end(), isa) == plan.target.required.end()) {
      plan.target.required.push_back(isa);
    }
  }
  plan.kiln_version = kiln_version();
  plan.precision = options.precision;
  plan.threads = pool.threads();
  plan.libraries["flatbuffers"] =
      fmt::format("{}.{}.{}", FLATBUFFERS_VERSION_MAJOR, FLATBUFFERS_VERSION_MINOR, FLATBUFFERS_VERSION_REVISION);
#if defined(__clang__)
  plan.libraries["compiler"] = fmt::format("clang {}.{}", __clang_major__, __clang_minor__);
#elif defined(__GNUC__)
  plan.libraries["compiler"] = fmt::format("gcc {}.{}", __GNUC__, __GNUC_MINOR__);
#endif
  plan.layers = std::move(sel.layers);
  plan.kernels = std::move(sel.kernels);
  plan.model = std::move(model);
  if (report != nullptr) {
    report->onnx_nodes = plan.onnx_nodes;
    report->layers = static_cast<int64_t>(plan.layers.size());
    report->passes = std::move(pass_reports);
    report->timed_nodes = sel.timed_nodes;
    report->cache_hits = sel.cache_hits;
    report->cache_misses = sel.cache_misses;
    report->optimize_seconds = optimize_seconds;
    report->tactic_seconds = tactic_seconds;
    report->blocked_values = blocked_values;
    report->half_values = half_values;
    report->total_seconds = seconds_since(t0);
  }
  return plan;
}

}  // namespace kiln::plan
