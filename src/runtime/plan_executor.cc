#include "runtime/plan_executor.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "backends/tactic.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/thread_pool.h"
#include "ops/kernel_guard.h"
#include "ops/op_def.h"
#include "plan/layouts.h"

namespace kiln::runtime {
namespace {

using Block = PlanExecutor::Block;

// Places the outputs of the step being run in their blocks.
class ArenaAllocator final : public ops::OutputAllocator {
 public:
  ArenaAllocator(const std::vector<Block>& blocks, const std::shared_ptr<void>& arena)
      : blocks_(blocks), arena_(arena), base_(static_cast<uint8_t*>(arena.get())) {}

  // zero_fill: the step's kernel may count on zero-filled outputs.
  void begin_step(const exec::Program::Step* step, const std::vector<Datum>* inputs, bool zero_fill) {
    step_ = step;
    inputs_ = inputs;
    zero_fill_ = zero_fill;
  }

  Tensor allocate(const ir::Node& node, size_t index, DataType dtype, const Dims& dims) override {
    if (step_ == nullptr || &node != step_->node || index >= step_->outputs.size()) return {};
    const int slot = step_->outputs[index];
    if (slot < 0 || dtype == DataType::kString || dtype == DataType::kUndefined) return {};
    const Block& b = blocks_[static_cast<size_t>(slot)];
    if (b.offset < 0 || b.kind == plan::BlockKind::kView || b.kind == plan::BlockKind::kConcat) return {};
    const int64_t nbytes = ops::output_storage_bytes(node, index, dtype, dims);  // padded blocks included
    if (nbytes < 0 || nbytes > b.size) return {};  // a shape larger than the plan foresaw
    uint8_t* p = base_ + b.offset;
    if (b.kind == plan::BlockKind::kInPlace) {
      // Only over the input that lives in this block with the output's dtype and dims.
      bool found = false;
      for (const Datum& d : *inputs_) {
        found = found || (d.is_tensor() && d.tensor().raw_data() == p && d.tensor().dtype() == dtype &&
                          d.tensor().dims() == dims);
      }
      if (!found) return {};
    } else if (zero_fill_) {
      std::memset(p, 0, static_cast<size_t>(nbytes));
    }
    return Tensor::wrap(dtype, dims, p, arena_);
  }

 private:
  const std::vector<Block>& blocks_;
  const std::shared_ptr<void>& arena_;
  uint8_t* base_;
  const exec::Program::Step* step_ = nullptr;
  const std::vector<Datum>* inputs_ = nullptr;
  bool zero_fill_ = true;
};

// Runs subgraphs on the reference interpreter in the scope of this execution.
class Runner final : public ops::SubgraphRunner {
 public:
  Runner(const exec::Program& program, const exec::Scope& scope, ThreadPool* pool)
      : program_(program), scope_(scope), pool_(pool) {}
  Result<std::vector<Datum>> run(const ir::Graph& graph, std::span<const Datum> inputs) override {
    const exec::Program* sub = program_.subprogram(&graph);
    if (sub == nullptr) return internal_error("subgraph '{}' was not compiled", graph.name());
    return exec::execute(*sub, inputs, pool_, &scope_);
  }

 private:
  const exec::Program& program_;
  const exec::Scope& scope_;
  ThreadPool* pool_;
};

// Copies to the heap every tensor of `d` in [lo, hi) but outside [own_lo, own_hi).
Datum detach(const Datum& d, const uint8_t* lo, const uint8_t* hi, const uint8_t* own_lo, const uint8_t* own_hi) {
  auto stray = [&](const Tensor& t) {
    if (!t.defined() || t.nbytes() == 0) return false;
    const auto* p = static_cast<const uint8_t*>(t.raw_data());
    const uint8_t* e = p + t.nbytes();
    if (e <= lo || p >= hi) return false;
    return !(p >= own_lo && e <= own_hi);
  };
  switch (d.kind()) {
    case Datum::Kind::kTensor:
      return stray(d.tensor()) ? Datum(d.tensor().clone()) : d;
    case Datum::Kind::kSequence: {
      bool any = false;
      for (const Tensor& t : d.items()) any = any || stray(t);
      if (!any) return d;
      std::vector<Tensor> items;
      for (const Tensor& t : d.items()) items.push_back(stray(t) ? t.clone() : t);
      return Datum::sequence(std::move(items), d.elem_type());
    }
    case Datum::Kind::kOptional:
      if (d.optional_value() == nullptr) return d;
      return Datum::optional(std::make_shared<const Datum>(detach(*d.optional_value(), lo, hi, own_lo, own_hi)));
    case Datum::Kind::kNone:
      return d;
  }
  return d;
}

// An eliminated Concat: if its inputs were written into consecutive slices of
// its block, the output is that block (returns true); else the kernel must run.
bool concat_in_place(const exec::Program::Step& step, const std::vector<Datum>& in, const Block& out,
                     const std::shared_ptr<void>& arena, Datum& result) {
  auto* base = static_cast<uint8_t*>(arena.get()) + out.offset;
  const uint8_t* next = base;
  Dims dims;
  int64_t axis = step.node->attr_int("axis", 0);
  DataType dtype = DataType::kUndefined;
  for (const Datum& d : in) {
    if (!d.is_tensor() || d.tensor().raw_data() != next || d.tensor().rank() == 0) return false;
    const Tensor& t = d.tensor();
    if (dims.empty()) {
      dims = t.dims();
      dtype = t.dtype();
      if (axis < 0) axis += t.rank();
      if (axis < 0 || axis >= t.rank()) return false;
      dims[static_cast<size_t>(axis)] = 0;
    }
    if (t.dtype() != dtype || t.rank() != static_cast<int64_t>(dims.size())) return false;
    for (size_t k = 0; k < dims.size(); ++k) {
      if (k != static_cast<size_t>(axis) && t.dims()[k] != dims[k]) return false;
      if (k < static_cast<size_t>(axis) && t.dims()[k] != 1) return false;
    }
    dims[static_cast<size_t>(axis)] += t.dim(axis);
    next += t.nbytes();
  }
  if (dims.empty() || next - base > out.size) return false;
  result = Datum(Tensor::wrap(dtype, dims, base, arena));
  return true;
}

}  // namespace

std::shared_ptr<void> make_arena(int64_t bytes) {
  void* p = allocate_aligned(static_cast<size_t>(std::max<int64_t>(bytes, 64)));
  if (p == nullptr) return nullptr;
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

Result<std::unique_ptr<PlanExecutor>> PlanExecutor::create(const plan::Plan& plan, const exec::Program& program) {
  auto ex = std::make_unique<PlanExecutor>();
  ex->program_ = &program;
  const auto& steps = program.steps();
  if (plan.layers.size() != steps.size()) {
    return invalid_argument("plan has {} layers for {} nodes", plan.layers.size(), steps.size());
  }
  if (plan.model.graph != nullptr) KILN_RETURN_IF_ERROR(plan::check_blocked_marks(*plan.model.graph));
  const auto& registry = backends::TacticRegistry::global();
  for (size_t k = 0; k < steps.size(); ++k) {
    const ir::Node& node = *steps[k].node;
    const plan::Layer& layer = plan.layers[k];
    if (k < plan.kernels.size() && plan.kernels[k]) {
      ex->kernels_.push_back(plan.kernels[k]);
      continue;
    }
    const backends::Tactic* tactic = registry.find(layer.tactic);
    if (tactic == nullptr) {
      return failed_precondition("{}: the plan uses tactic '{}', which this Kiln build does not have; rebuild the plan",
                                 node.describe(), layer.tactic);
    }
    if (!tactic->supports(node)) {
      return failed_precondition("{}: tactic '{}' cannot run this node on this machine; rebuild the plan",
                                 node.describe(), layer.tactic);
    }
    auto kernel = tactic->load(node, layer.state);
    if (!kernel.is_ok()) return std::move(kernel).status().with_context(node.describe());
    ex->kernels_.push_back(std::move(kernel).value());
  }
  ex->blocks_.assign(static_cast<size_t>(program.num_slots()), Block{});
  ex->arena_bytes_ = plan.memory.arena_bytes;
  if (Status fits = ops::check_scratch(ex->arena_bytes_, 1, "plan's activation arena"); !fits.is_ok()) {
    return std::move(fits).with_context("plan");
  }
  for (const plan::MemoryBlock& b : plan.memory.blocks) {
    int slot = program.slot_of(b.value);
    if (slot < 0) return invalid_argument("memory plan names '{}', which is not a value of the graph", b.value);
    if (b.offset < 0 || b.size < 0 || b.offset > ex->arena_bytes_ || b.size > ex->arena_bytes_ - b.offset) {
      return invalid_argument("memory plan: block of '{}' lies outside the arena", b.value);
    }
    ex->blocks_[static_cast<size_t>(slot)] = Block{b.offset, b.size, b.kind};
  }
  // Only values some step produces are placed (an input or constant keeps its own storage).
  std::vector<bool> produced(ex->blocks_.size(), false);
  for (const auto& s : steps) {
    for (int o : s.outputs) {
      if (o >= 0) produced[static_cast<size_t>(o)] = true;
    }
  }
  for (size_t s = 0; s < produced.size(); ++s) {
    if (!produced[s]) ex->blocks_[s] = Block{};
  }
  return ex;
}

Result<std::vector<Datum>> PlanExecutor::run(std::span<const Datum> inputs, ThreadPool* pool,
                                             const std::shared_ptr<void>& arena, std::vector<double>* layer_ms) const {
  const exec::Program& program = *program_;
  const ir::Graph& graph = program.graph();
  if (inputs.size() != program.input_slots().size()) {
    return invalid_argument("graph '{}' takes {} inputs, got {}", graph.name(), program.input_slots().size(),
                            inputs.size());
  }
  if (arena_bytes_ > 0 && arena == nullptr) return resource_exhausted("no arena of {} bytes", arena_bytes_);
  std::vector<Datum> slots(static_cast<size_t>(program.num_slots()));
  for (const auto& [s, t] : program.constants()) slots[static_cast<size_t>(s)] = Datum(t);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].is_none()) slots[static_cast<size_t>(program.input_slots()[i])] = inputs[i];
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    Datum& slot = slots[static_cast<size_t>(program.input_slots()[i])];
    const bool optional = graph.inputs()[i]->type().kind == ir::ValueType::Kind::kOptional;
    if (optional && (slot.is_tensor() || slot.is_sequence())) {
      slot = Datum::optional(std::make_shared<const Datum>(std::move(slot)));
    } else if (slot.is_none()) {
      if (!optional) return invalid_argument("input '{}' was not given", graph.inputs()[i]->name());
      slot = Datum::optional(nullptr);
    }
  }
  const auto* lo = static_cast<const uint8_t*>(arena.get());
  const uint8_t* hi = lo + (arena ? arena_bytes_ : 0);
  exec::Scope scope{&program, &slots, nullptr};
  Runner runner(program, scope, pool);
  ArenaAllocator allocator(blocks_, arena);
  const auto& steps = program.steps();
  if (layer_ms != nullptr && layer_ms->size() != steps.size()) layer_ms->assign(steps.size(), 0.0);
  std::vector<Datum> in;
  std::vector<Datum> out;
  for (size_t k = 0; k < steps.size(); ++k) {
    const auto& step = steps[k];
    in.clear();
    for (int s : step.inputs) in.push_back(s < 0 ? Datum() : slots[static_cast<size_t>(s)]);
    out.assign(step.outputs.size(), Datum());
    ops::KernelContext ctx(*step.node, in, out, pool, &runner);
    if (arena) {
      allocator.begin_step(&step, &in, !kernels_[k]->fills_outputs());
      ctx.set_allocator(&allocator);
    }
    auto t0 = layer_ms ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    const Block* concat = arena && step.outputs.size() == 1 && step.outputs[0] >= 0 &&
                                  blocks_[static_cast<size_t>(step.outputs[0])].kind == plan::BlockKind::kConcat
                              ? &blocks_[static_cast<size_t>(step.outputs[0])]
                              : nullptr;
    Status st = concat && concat_in_place(step, in, *concat, arena, out[0])
                    ? Status::ok()
                    : ops::run_kernel_guarded(*step.node, [&] { return kernels_[k]->run(ctx); });
    if (layer_ms) (*layer_ms)[k] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!st.is_ok()) {
      if (st.message().find(step.node->describe()) == std::string::npos) return std::move(st).with_context(step.node->describe());
      return st;
    }
    for (size_t i = 0; i < step.outputs.size(); ++i) {
      int s = step.outputs[i];
      if (s < 0) continue;
      if (out[i].is_none() && step.node->output(i)->type().kind != ir::ValueType::Kind::kOptional) {
        return internal_error("{}: kernel did not produce output {}", step.node->describe(), i);
      }
      const Block& b = blocks_[static_cast<size_t>(s)];
      const uint8_t* own_lo = b.offset >= 0 ? lo + b.offset : nullptr;
      const uint8_t* own_hi = b.offset >= 0 ? own_lo + b.size : nullptr;
      slots[static_cast<size_t>(s)] = arena ? detach(out[i], lo, hi, own_lo, own_hi) : std::move(out[i]);
    }
    in.clear();
    for (int s : step.release) slots[static_cast<size_t>(s)] = Datum();
  }
  std::vector<Datum> results;
  results.reserve(program.output_slots().size());
  for (int s : program.output_slots()) {
    results.push_back(arena ? detach(slots[static_cast<size_t>(s)], lo, hi, nullptr, nullptr)
                            : slots[static_cast<size_t>(s)]);
  }
  return results;
}

}  // namespace kiln::runtime
