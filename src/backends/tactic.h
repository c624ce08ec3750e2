// Tactics: the candidate implementations of one node.
//
// The builder lowers each node of the optimized graph to a kernel by asking
// the registry for every tactic that supports the node, timing each prepared
// candidate on the node's real shapes, and keeping the fastest (the result is
// recorded in the timing cache and in the plan by tactic name). The reference
// tactic, which wraps the op's reference kernel, supports every node that has
// one; it is the fallback and the oracle that fast tactics are tested against.
//
// Backends (src/backends/cpu, src/backends/cuda) register their tactics in
// their register_tactics() function; nothing else reaches a backend.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "ops/op_def.h"

namespace kiln::backends {

// One node's prepared implementation. Immutable after prepare/load and shared
// by every execution context of an engine, so run() must be thread-safe.
class Kernel {
 public:
  virtual ~Kernel() = default;
  // Runs the node with the same contract as a reference kernel: reads the
  // inputs of `ctx`, allocates its outputs through ctx.allocate_output (the
  // memory planner may place them in the context's arena), uses ctx.pool().
  virtual Status run(ops::KernelContext& ctx) const = 0;
  // State worth storing in a plan (e.g. weights packed for the microkernel);
  // empty when there is none. Tactic::load() restores a kernel from it.
  virtual std::vector<uint8_t> serialize() const { return {}; }
  // True when run() writes every element of every output it allocates, so
  // the executor need not zero-fill their arena blocks first (for a memory-
  // bound network that fill is several percent of the run). A kernel that
  // says so and falls back to a reference kernel must do it through
  // cpu::run_reference, which gives the reference zero-filled outputs.
  virtual bool fills_outputs() const { return false; }
};

class Tactic {
 public:
  virtual ~Tactic() = default;
  // A unique, stable name recorded in plans and timing caches:
  // "<source>.<kernel>[.<isa>]", e.g. "own.conv_im2col.avx512", "onednn.conv".
  virtual std::string_view name() const = 0;
  // The source that --tactic-sources selects: "reference", "own", "onednn", "cuda".
  virtual std::string_view source() const = 0;
  // True if this tactic can run `node` on this machine: op, attributes,
  // dtypes and the static facts known at build time (constant weights,
  // ranks), and the ISA it needs. Must not fail on unknown facts: say false.
  virtual bool supports(const ir::Node& node) const = 0;
  // Makes a kernel for `node`; packs constant inputs (weights) once.
  virtual Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const = 0;
  // The blocked channel layout ("nChw8c", "nChw16c") this tactic can read
  // its input 0 and residual input 3 in and write its output 0 in, for
  // `node`; "" when none. The builder keeps a value in such a layout between
  // a producer and consumers that all name the same one (src/plan/layouts.h)
  // and tells their kernels through the node's "kiln_blocked" attribute:
  // ints [input 0 blocked, input 3 blocked, output 0 blocked].
  virtual std::string blocked_layout(const ir::Node& node) const {
    (void)node;
    return "";
  }
  // True if this tactic's kernel for `node` maps input 0 to output 0
  // element by element, in place order, with no constant that depends on
  // the position: it runs unchanged on a value in any blocked layout, so a
  // blocked value may pass through it (src/plan/layouts.h), e.g. the 16-bit
  // round trip that --bf16/--fp16 put between two convolutions.
  virtual bool layout_transparent(const ir::Node& node) const {
    (void)node;
    return false;
  }
  // A kernel for `node` inside a chain of blocked_layout(node): input 0,
  // input 3 (when present) and output 0 blocked. The tuner times this one,
  // as most layers of a chain pay no reorders; the default is prepare().
  virtual Result<std::unique_ptr<Kernel>> prepare_blocked(const ir::Node& node) const { return prepare(node); }
  // Milliseconds to convert a float32 value of `dims` from NCHW to
  // blocked_layout() or back, as this tactic's kernels do it when a
  // neighbour keeps the value in NCHW, on `pool`'s threads; nullopt when the
  // tactic has no blocked layout for such a value. The tuner weighs these
  // reorders against what a choice saves (plan/tactic_selector.h).
  virtual std::optional<double> time_layout_change(const Dims& dims, ThreadPool& pool) const {
    (void)dims;
    (void)pool;
    return std::nullopt;
  }
  // The input whose storage this tactic's kernel can take as the storage of
  // its output 0 (reading it as it writes, e.g. a residual that a sum
  // post-op adds in the destination); -1 for none. The memory planner puts
  // both in one block when that input dies at this node with the output's
  // dtype and dims.
  virtual int output_over_input(const ir::Node& node) const {
    (void)node;
    return -1;
  }
  // True if this tactic's kernel for `node` also takes input 0 as float16
  // (widening it exactly) when the node's input 0 is float32 at build time:
  // the builder then stores a 16-bit round trip's value feeding it as
  // float16 (src/plan/half_values.h).
  virtual bool takes_float16_input(const ir::Node& node) const {
    (void)node;
    return false;
  }
  // Rebuilds a kernel from Kernel::serialize()'s bytes when a plan loads.
  // The default ignores the state and prepares again.
  virtual Result<std::unique_ptr<Kernel>> load(const ir::Node& node, std::span<const uint8_t> state) const {
    (void)state;
    return prepare(node);
  }
};

class TacticRegistry {
 public:
  // The process-wide registry: the reference tactic plus every compiled-in backend's.
  static const TacticRegistry& global();

  // Registers `tactic` for nodes of (domain, op_type); domain "" is ai.onnx.
  void add(std::string_view domain, std::string_view op_type, std::unique_ptr<Tactic> tactic);
  // Every tactic registered for the node's op that supports it, the
  // reference tactic last (when the op has a reference kernel).
  std::vector<const Tactic*> candidates(const ir::Node& node) const;
  // The tactic with this name, or nullptr.
  const Tactic* find(std::string_view name) const;
  // The tactic wrapping the reference kernels.
  const Tactic& reference() const { return *reference_; }

  TacticRegistry();
  ~TacticRegistry();

 private:
  struct Entry {
    std::string domain;
    std::string op_type;
    std::unique_ptr<Tactic> tactic;
  };
  std::vector<Entry> entries_;
  std::unique_ptr<Tactic> reference_;
};

}  // namespace kiln::backends
