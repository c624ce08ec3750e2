// Lowering: picks one tactic (kernel) per top-level node of an optimized graph.
//
// Nodes with one candidate take it. Nodes with several are timed on their
// real (profile "opt") shapes with random inputs: each prepared candidate
// runs `warmup` times, then `repeats` times, and its median counts; the
// fastest is kept. A tactic that can keep its activations in a blocked
// layout (Tactic::blocked_layout) is timed as inside a chain of such layers,
// without reorders (plan/layouts.h removes them where the chain holds).
// Times come from and go to the timing cache. A candidate
// that fails to prepare or run is dropped. Nodes whose shapes are unknown at
// build time, or every node when timing is off, take the first candidate
// (the registry lists fast tactics before the reference tactic).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/tactic.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "plan/plan.h"
#include "plan/shapes.h"
#include "plan/timing_cache.h"

namespace kiln {
class ThreadPool;
}

namespace kiln::plan {

struct SelectOptions {
  std::vector<std::string> sources;  // tactic sources allowed ("own", "onednn", "reference"); empty: all
  std::map<std::string, std::string> forced;  // layer name -> tactic, chosen without timing
  // The builder keeps values in blocked layouts between kernels (plan/layouts.h):
  // the reorders a choice adds are weighed with it either way.
  bool blocked_layouts = true;
  bool time = true;
  int warmup = 2;
  int repeats = 5;
  // The tactics to choose from; nullptr: TacticRegistry::global().
  const backends::TacticRegistry* registry = nullptr;
  // Called after each node (done, total) while tactics are chosen.
  std::function<void(size_t, size_t)> progress;
};

struct Selection {
  std::vector<Layer> layers;                                  // one per top-level node
  std::vector<std::shared_ptr<const backends::Kernel>> kernels;  // prepared, one per node
  int64_t timed_nodes = 0;
  int64_t cache_hits = 0;
  int64_t cache_misses = 0;
};

// `dims`: the opt-shape dims of the graph's values; `cache` may be null.
Result<Selection> select_tactics(const ir::Graph& graph, const ValueDims& dims, ThreadPool& pool,
                                 const SelectOptions& options, TimingCache* cache);

// Checks a --tactic-sources list: every entry must be a known source.
Status check_tactic_sources(const std::vector<std::string>& sources);

}  // namespace kiln::plan
