// Engine and ExecutionContext: the runtime's face.
//
// An Engine is built once from a model and is immutable: it may be shared by
// any number of ExecutionContexts on any threads. A context runs one request
// at a time and owns its per-run state, including its activation arena.
//
// An engine made from a plan (create_from_plan) runs each node with the
// plan's kernel and places activations in the context's arena as the plan's
// memory plan says; inputs must fit the plan's shape profiles. An engine made
// from a model (create) runs it on the reference interpreter (exec::Program).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/datum.h"
#include "core/shape.h"
#include "ir/graph.h"
#include "kiln/tensor.h"

namespace kiln {
class ThreadPool;
}
namespace kiln::exec {
class Program;
}
namespace kiln::plan {
struct Plan;
struct InputProfile;
}

namespace kiln::runtime {

struct IoBinding {
  std::string name;
  DataType dtype = DataType::kUndefined;
  Shape shape;                  // dims may be symbolic or unknown
  bool optional = false;        // an input with a default (an initializer)
  bool is_tensor = true;        // false for sequence/optional-typed I/O
  ir::ValueType type;           // the full static type (sequence/optional element types)
};

struct EngineOptions {
  int threads = 0;  // intra-op threads; 0: all hardware threads
  // Optimizer passes to run on the graph before it is compiled: empty runs
  // none; {"all"} the default pipeline (passes::pipeline_pass_names()); a
  // pass name, the default pipeline up to and including that pass.
  std::vector<std::string> passes = {};
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
// Named runtime values of any kind (tensors, sequences, optionals).
using NamedData = std::vector<std::pair<std::string, Datum>>;

class ExecutionContext;
class PlanExecutor;

class Engine : public std::enable_shared_from_this<Engine> {
 public:
  // Takes shared ownership of the model's graph (which the optimizer passes
  // named in options.passes rewrite in place).
  static Result<std::shared_ptr<Engine>> create(ir::Model model, const EngineOptions& options = {});
  // Runs a plan (from plan::build or plan::load_plan); takes it over.
  static Result<std::shared_ptr<Engine>> create_from_plan(plan::Plan plan, const EngineOptions& options = {});
  ~Engine();

  // The plan this engine runs, or nullptr for a reference-interpreter engine.
  const plan::Plan* plan() const { return plan_.get(); }

  const std::vector<IoBinding>& inputs() const { return inputs_; }
  const std::vector<IoBinding>& outputs() const { return outputs_; }
  const ir::Model& model() const { return model_; }
  int threads() const;

  std::unique_ptr<ExecutionContext> create_context() const;

  // Convenience: runs on a temporary context. Thread-safe.
  Result<NamedTensors> run(const NamedTensors& feeds, const std::vector<std::string>& output_names = {}) const;
  // Like run() for inputs and outputs of any kind (sequence and optional I/O).
  Result<NamedData> run_data(const NamedData& feeds, const std::vector<std::string>& output_names = {}) const;

 private:
  friend class ExecutionContext;
  Engine() = default;
  // Arenas of finished temporary contexts, re-used by run()/run_data().
  std::shared_ptr<void> take_arena() const;
  void return_arena(std::shared_ptr<void> arena) const;
  // Checks names, kinds, dtypes, ranks and known dims of the feeds; returns
  // them in graph-input order (kNone for an input left to its default).
  Result<std::vector<Datum>> bind_inputs(const NamedData& feeds) const;
  // True if `t`'s storage overlaps a constant of the model (outputs that do are copied).
  bool aliases_constant(const Tensor& t) const;

  ir::Model model_;
  std::shared_ptr<const plan::Plan> plan_;
  std::shared_ptr<const exec::Program> program_;
  std::unique_ptr<PlanExecutor> executor_;  // plans only
  mutable std::mutex arenas_mu_;
  mutable std::vector<std::shared_ptr<void>> idle_arenas_;  // guarded by arenas_mu_
  std::unique_ptr<ThreadPool> pool_;
  std::vector<IoBinding> inputs_;
  std::vector<IoBinding> outputs_;
  std::vector<std::pair<const char*, size_t>> constant_ranges_;  // (data, nbytes) of top-level constants
};

class ExecutionContext {
 public:
  explicit ExecutionContext(std::shared_ptr<const Engine> engine) : engine_(std::move(engine)) {}

  // Runs the model. `output_names` empty means every output, in graph order.
  // Not thread-safe: one run at a time per context. Outputs never share
  // storage with the feeds or the model's constants (a value passed straight
  // through, e.g. by Identity, is copied), so callers may modify them.
  Result<NamedTensors> run(const NamedTensors& feeds, const std::vector<std::string>& output_names = {});
  // Like run() for inputs and outputs of any kind: a sequence input is fed as
  // a kSequence Datum; an optional input may be fed its content, an empty
  // optional, or left out (an empty optional).
  Result<NamedData> run_data(const NamedData& feeds, const std::vector<std::string>& output_names = {});

  const Engine& engine() const { return *engine_; }

  // Per-layer times (ms, summed over runs, one per plan layer) when enabled; plans only.
  void enable_profiling(bool on) { profiling_ = on; layer_ms_.clear(); }
  const std::vector<double>& layer_ms() const { return layer_ms_; }

 private:
  friend class Engine;
  std::shared_ptr<const Engine> engine_;
  std::shared_ptr<void> arena_;  // the plan's activation arena, allocated on the first run
  bool profiling_ = false;
  std::vector<double> layer_ms_;
};

}  // namespace kiln::runtime
