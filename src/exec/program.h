// The reference interpreter: runs an ir::Graph node by node with the
// reference kernels. It is the oracle for every optimized path and the
// evaluator behind constant folding and calibration.
//
// compile() resolves each node's kernel and plans slot liveness once; the
// resulting Program is immutable and may be executed by many threads at once
// (each execution has its own slots).
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/datum.h"
#include "ir/graph.h"
#include "ops/op_def.h"

namespace kiln {
class ThreadPool;
}

namespace kiln::exec {

struct Scope;

class Program {
 public:
  // Compiles `graph` (and its subgraphs). The graph must outlive the Program
  // and stay unchanged. Fails on an op with no kernel for its opset.
  static Result<std::shared_ptr<const Program>> compile(const ir::Graph& graph);

  const ir::Graph& graph() const { return *graph_; }
  // The slot holding the value named `name` in this graph, or -1.
  int slot_of(const std::string& name) const;
  const Program* subprogram(const ir::Graph* g) const;

  struct Step {
    const ir::Node* node;
    ops::KernelFn kernel;
    std::vector<int> inputs;   // slot per input; -1 for an omitted optional input
    std::vector<int> outputs;  // slot per output; -1 for an omitted output
    std::vector<int> release;  // slots whose last use is this step
  };

  // The compiled form, for executors that run the same steps with other
  // kernels (runtime::Engine running a plan).
  const std::vector<Step>& steps() const { return steps_; }
  int num_slots() const { return num_slots_; }
  const std::vector<std::pair<int, Tensor>>& constants() const { return constants_; }
  const std::vector<int>& input_slots() const { return input_slots_; }
  const std::vector<int>& output_slots() const { return output_slots_; }

 private:
  friend Result<std::vector<Datum>> execute(const Program&, std::span<const Datum>, ThreadPool*, const Scope*);
  const ir::Graph* graph_ = nullptr;
  int num_slots_ = 0;
  std::vector<Step> steps_;
  std::vector<std::pair<int, Tensor>> constants_;       // preloaded slots
  std::vector<int> input_slots_;                        // graph inputs, in order
  std::vector<int> output_slots_;                       // graph outputs, in order
  std::vector<std::pair<int, std::string>> captures_;   // slots bound from enclosing scopes
  std::unordered_map<std::string, int> slot_by_name_;
  std::map<const ir::Graph*, std::shared_ptr<const Program>> subprograms_;
};

// Values visible to a subgraph: the slots of each enclosing execution.
struct Scope {
  const Program* program;
  const std::vector<Datum>* slots;
  const Scope* parent;
  const Datum* lookup(const std::string& name) const;
};

// Runs `program` on `inputs` (one per graph input, in order; an input that has
// an initializer may be kNone to use its default). `outer` binds captures.
Result<std::vector<Datum>> execute(const Program& program, std::span<const Datum> inputs,
                                   ThreadPool* pool, const Scope* outer = nullptr);

}  // namespace kiln::exec
