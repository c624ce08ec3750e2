// OpDef: one operator's schema, static shape inference and reference kernel.
//
// The reference kernel is the specification of the op in Kiln: plain loops,
// obviously correct, used by the interpreter, constant folding, calibration
// and as the oracle for every fast kernel. Kernels must validate everything
// that depends on user data (ranks, dims, attribute values, index ranges) and
// return an error Status naming the problem; they never abort.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/datum.h"
#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln {
class ThreadPool;
}

namespace kiln::ops {

// Runs a subgraph (If/Loop/Scan bodies) with the given inputs; values the
// subgraph captures from enclosing scopes are looked up by name in the scope
// of the node being executed. Implemented by the interpreter.
class SubgraphRunner {
 public:
  virtual ~SubgraphRunner() = default;
  virtual Result<std::vector<Datum>> run(const ir::Graph& graph, std::span<const Datum> inputs) = 0;
};

// A node's blocked-layout marks (its "kiln_blocked" attribute [src,
// residual, dst, block], written by plan/layouts.cc after tactic
// selection): whether input 0, input 3 and output 0 are stored in blocks of
// `block` (8 or 16) channels.
struct BlockedMarks {
  bool src = false;
  bool residual = false;
  bool dst = false;
  int64_t block = 0;  // 0 without the attribute
  bool any() const { return src || residual || dst; }
};
// The node's marks (none without the attribute), or an error naming the
// node for a malformed attribute.
Result<BlockedMarks> read_blocked_marks(const ir::Node& node);

// The bytes output `index` of `node` occupies when it holds `numel` elements
// of `dtype` with dims `dims`: numel * element size, except for an output the
// plan keeps in a blocked channel layout (the node's "kiln_blocked"
// attribute, plan/layouts.h) whose channels are not whole blocks, which
// fills its last block with padding (a float [1, 24, 56, 56] value in
// nChw16c takes 32 channels' bytes). Unrepresentable sizes give -1.
int64_t output_storage_bytes(const ir::Node& node, size_t index, DataType dtype, const Dims& dims);

// Gives kernel outputs their storage: the runtime's memory plan places
// planned outputs in its arena. allocate() returns a zero-filled tensor for
// output `index` of `node` with `dims`, or an undefined Tensor to let the
// context allocate on the heap (unplanned values, shapes the plan did not
// foresee). Owned by the caller of KernelContext::set_allocator.
class OutputAllocator {
 public:
  virtual ~OutputAllocator() = default;
  virtual Tensor allocate(const ir::Node& node, size_t index, DataType dtype, const Dims& dims) = 0;
};

// What a reference kernel sees: its node (attributes, opset), its inputs and
// the outputs it must set. Inputs are borrowed for the duration of the call.
class KernelContext {
 public:
  KernelContext(const ir::Node& node, std::span<const Datum> inputs, std::vector<Datum>& outputs,
                ThreadPool* pool, SubgraphRunner* runner)
      : node_(node), inputs_(inputs), outputs_(outputs), pool_(pool), runner_(runner) {}

  const ir::Node& node() const { return node_; }
  int64_t opset() const { return node_.opset(); }

  size_t num_inputs() const { return inputs_.size(); }
  // True if input i was given and is not an absent optional.
  bool has_input(size_t i) const { return i < inputs_.size() && !inputs_[i].is_none(); }
  const Datum& datum(size_t i) const { return inputs_[i]; }
  // Input i as a tensor; precondition: has_input(i) and it holds a tensor
  // (use tensor_input() where that is not already guaranteed).
  const Tensor& input(size_t i) const { return inputs_[i].tensor(); }
  // Input i as a tensor, or an error naming the node if absent or not a tensor.
  Result<const Tensor*> tensor_input(size_t i) const;

  size_t num_outputs() const { return outputs_.size(); }
  // Output i is wanted by the graph (ONNX lets trailing optional outputs be omitted).
  bool wants_output(size_t i) const { return i < outputs_.size() && node_.output(i) != nullptr; }
  // Allocates output i (zero-filled) and returns it: from the allocator set
  // with set_allocator() when it has storage for it, else on the heap. The
  // storage holds output_storage_bytes() (a padded blocked layout's extra
  // bytes follow the tensor's own).
  Result<Tensor*> allocate_output(size_t i, DataType dtype, Dims dims);
  // Borrowed; must outlive the kernel call. nullptr: always the heap.
  void set_allocator(OutputAllocator* allocator) { allocator_ = allocator; }
  void set_output(size_t i, Datum d) { outputs_[i] = std::move(d); }

  ThreadPool* pool() const { return pool_; }
  SubgraphRunner* runner() const { return runner_; }

  // Prefixes an error with the node's description.
  Status error(Status s) const { return std::move(s).with_context(node_.describe()); }

 private:
  const ir::Node& node_;
  std::span<const Datum> inputs_;
  std::vector<Datum>& outputs_;
  ThreadPool* pool_;
  SubgraphRunner* runner_;
  OutputAllocator* allocator_ = nullptr;
};

// What static shape inference sees: input types (and constant values when
// known at build time); it sets output types. Unknown stays unknown: an
// inference function fills in what it can and never fails on missing facts,
// only on contradictions (a rank that cannot work, a bad attribute).
class InferContext {
 public:
  explicit InferContext(ir::Node& node) : node_(node) {}

  const ir::Node& node() const { return node_; }
  int64_t opset() const { return node_.opset(); }
  size_t num_inputs() const { return node_.num_inputs(); }
  bool has_input(size_t i) const { return node_.input(i) != nullptr; }
  const ir::ValueType& input_type(size_t i) const;  // kUnknown when absent
  const Tensor* input_constant(size_t i) const;     // nullptr unless known
  size_t num_outputs() const { return node_.num_outputs(); }
  void set_output_type(size_t i, ir::ValueType t);

 private:
  ir::Node& node_;
};

using KernelFn = Status (*)(KernelContext&);
using InferFn = Status (*)(InferContext&);

struct OpDef {
  std::string_view name;
  std::string_view domain;   // "" for ai.onnx
  int since_version = 1;     // the earliest opset this definition serves
  int until_version = 0;     // the last opset it serves (0: still current)
  int min_inputs = 0;
  int max_inputs = 0;        // -1: variadic
  int min_outputs = 1;
  int max_outputs = 1;       // -1: variadic
  KernelFn kernel = nullptr;
  InferFn infer = nullptr;   // nullptr: outputs keep unknown types
  // The output is random (RandomNormal, Bernoulli, ...): constant folding must
  // never evaluate it at build time. Dropout, random only in training mode,
  // is left to the passes (they fold or remove it only when provably inference).
  bool nondeterministic = false;
};

}  // namespace kiln::ops
