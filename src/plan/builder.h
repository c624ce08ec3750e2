// The builder: ONNX-imported model in, Plan out (kiln build, kiln.build).
//
//   import -> profiles (input shapes) -> passes::optimize -> tactic selection
//   (timed on the opt shapes, timing cache) -> memory plan (max shapes) -> Plan
#pragma once

#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "passes/pipeline.h"
#include "plan/plan.h"
#include "plan/profile.h"

namespace kiln::backends {
class TacticRegistry;
}

namespace kiln::plan {

struct BuildOptions {
  std::string precision = "fp32";  // recorded in the plan; "int8"/"bf16"/"fp16" graphs are prepared by src/quant
  // Input shapes: `shapes` fixes them (min = opt = max); or a profile from
  // min/opt/max. Inputs with fully known declared shapes need neither.
  ShapeSpec shapes, min_shapes, opt_shapes, max_shapes;
  std::string timing_cache;                 // file read and written; empty: none
  std::vector<std::string> tactic_sources;  // "own", "onednn", "reference"; empty: all
  // Layer name -> tactic: that layer gets the tactic without timing (it must be one of the
  // layer's candidates); for experiments and for pinning a choice. Names are the built graph's.
  std::map<std::string, std::string> layer_tactics;
  int threads = 0;                          // 0: every hardware thread
  bool time_tactics = true;                 // false: first candidate per node, no timing
  int warmup = 2;
  int repeats = 5;
  // Keep values between kernels that share a blocked layout in it (plan/layouts.h).
  bool blocked_layouts = true;
  passes::PipelineOptions passes;
  const backends::TacticRegistry* registry = nullptr;  // nullptr: the global registry (tests pass their own)
  // Progress while tactics are timed: (stage, done, total).
  std::function<void(const std::string&, size_t, size_t)> progress;
};

struct BuildReport {
  int64_t onnx_nodes = 0;
  int64_t layers = 0;
  std::vector<passes::PassReport> passes;
  int64_t timed_nodes = 0;
  int64_t cache_hits = 0;
  int64_t cache_misses = 0;
  int64_t blocked_values = 0;  // values kept in a blocked layout between kernels
  int64_t half_values = 0;     // fp16 builds: round trips stored as float16 (plan/half_values.h)
  double optimize_seconds = 0;
  double tactic_seconds = 0;
  double total_seconds = 0;
};

// True when the environment variable KILN_SKIP_TIMING (set, neither "" nor
// "0") asks the builds that time tactics by default (Session, server) not to.
bool skip_timing_requested();

// Builds a plan from `model` (consumed: its graph becomes the plan's).
Result<Plan> build(ir::Model model, const BuildOptions& options = {}, BuildReport* report = nullptr);

}  // namespace kiln::plan
