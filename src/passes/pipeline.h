// The optimizer's entry point: runs the default pass pipeline on a graph.
//
// The builder (src/plan) calls optimize() between import and lowering; each
// pass lives in its own file in this folder behind the Pass interface of
// pass.h, and the pipeline (pipeline.cc) is the one place that orders them.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::passes {

struct PipelineOptions {
  // Names of passes to skip.
  std::vector<std::string> disabled = {};
  // Print the graph to `dump` after the pass of this name (kiln build --dump-after).
  std::string dump_after = {};
  std::ostream* dump = nullptr;
  // Stop after the pass of this name ("" runs the whole pipeline); for tests
  // that compare outputs after each pass in turn.
  std::string stop_after = {};
  // Treat graph inputs that have an initializer as constants (set for ONNX IR
  // versions before 4, which list every initializer as an input).
  bool initializer_inputs_are_constant = false;
  // Store the 16-bit round trips before matrix layers as float16 values
  // that the layers widen (passes/half_inputs.cc): for fp16 builds whose
  // layers run on the CPU tactics (F16C).
  bool half_inputs = false;
  // Run the IR verifier after every pass (on by default in debug builds).
#ifdef NDEBUG
  bool verify = false;
#else
  bool verify = true;
#endif
};

// What one pass did, for `kiln build --verbose` and the layer table.
struct PassReport {
  std::string name;
  bool changed = false;
  int64_t nodes_before = 0;
  int64_t nodes_after = 0;
  double milliseconds = 0.0;
};

// Runs the default pipeline on `graph` (and its subgraphs); outputs stay equal.
// Fails if options.stop_after or a name in options.disabled names no pass.
Result<std::vector<PassReport>> optimize(ir::Graph& graph, const PipelineOptions& options = {});

// The names of the default pipeline's passes, in order.
std::vector<std::string> pipeline_pass_names();

}  // namespace kiln::passes
