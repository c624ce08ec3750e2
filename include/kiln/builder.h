// kiln::build_plan: ONNX model in, plan file out (what `kiln build` and
// kiln.build() do). Session::open runs the plan file it writes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/status.h"

namespace kiln {

struct BuildConfig {
  std::string precision = "fp32";  // only fp32 so far
  // Input shapes in trtexec's syntax ("input_ids:8x128,attention_mask:8x128"):
  // `shapes` fixes them; min/opt/max make a dynamic profile.
  std::string shapes, min_shapes, opt_shapes, max_shapes;
  std::string timing_cache;                 // a file read and updated; empty: none
  std::vector<std::string> tactic_sources;  // "own", "onednn", "reference"; empty: all
  int threads = 0;                          // threads tactics are timed with; 0: all
  bool time_tactics = true;                 // false: each node's first candidate
};

struct BuildSummary {
  int64_t onnx_nodes = 0;
  int64_t layers = 0;
  int64_t peak_activation_bytes = 0;
  int64_t naive_activation_bytes = 0;
  int64_t timed_layers = 0;
  int64_t cache_hits = 0;
  int64_t cache_misses = 0;
  double seconds = 0;
};

Result<BuildSummary> build_plan(const std::string& onnx_path, const std::string& plan_path,
                                const BuildConfig& config = {});

}  // namespace kiln
