// PlanExecutor: runs a plan's top-level graph with the plan's kernels and its
// memory plan. Internal to the runtime (Engine owns one).
//
// The steps are those of exec::Program (same order, slots and liveness);
// each step's kernel is the tactic chosen at build time. Outputs of planned
// values are placed in the caller's arena through ops::OutputAllocator;
// everything else, and any value whose runtime size exceeds its block, lives
// on the heap. After every step, any output that still refers to arena bytes
// other than its own block (a view the plan did not foresee, a sequence
// holding an arena tensor) is copied to the heap, so that a block reused
// later can never change a live value. Subgraphs (If/Loop/Scan bodies) run on
// the reference interpreter.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/datum.h"
#include "exec/program.h"
#include "kiln/status.h"
#include "plan/plan.h"

namespace kiln {
class ThreadPool;
}
namespace kiln::backends {
class Kernel;
}

namespace kiln::runtime {

class PlanExecutor {
 public:
  // `program` must be compiled from plan.model.graph; both must outlive the executor.
  static Result<std::unique_ptr<PlanExecutor>> create(const plan::Plan& plan, const exec::Program& program);

  int64_t arena_bytes() const { return arena_bytes_; }

  // Runs one request. `arena` holds arena_bytes() bytes (64-byte aligned);
  // tensors placed there keep `arena` alive. `layer_ms`, when given, gets
  // each step's time added (one entry per top-level node).
  Result<std::vector<Datum>> run(std::span<const Datum> inputs, ThreadPool* pool, const std::shared_ptr<void>& arena,
                                 std::vector<double>* layer_ms = nullptr) const;

  struct Block {
    int64_t offset = -1;  // -1: not planned
    int64_t size = 0;
    plan::BlockKind kind = plan::BlockKind::kOwn;
  };

 private:
  const exec::Program* program_ = nullptr;
  std::vector<std::shared_ptr<const backends::Kernel>> kernels_;  // one per step
  std::vector<Block> blocks_;                                    // one per slot
  int64_t arena_bytes_ = 0;
};

// A 64-byte aligned arena of `bytes` bytes (at least 64).
std::shared_ptr<void> make_arena(int64_t bytes);

}  // namespace kiln::runtime
