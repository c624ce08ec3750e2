#include "exec/program.h"

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/kernel_guard.h"
#include "ops/registry.h"

namespace kiln::exec {

int Program::slot_of(const std::string& name) const {
  auto it = slot_by_name_.find(name);
  return it == slot_by_name_.end() ? -1 : it->second;
}

const Program* Program::subprogram(const ir::Graph* g) const {
  auto it = subprograms_.find(g);
  return it == subprograms_.end() ? nullptr : it->second.get();
}

const Datum* Scope::lookup(const std::string& name) const {
  for (const Scope* s = this; s != nullptr; s = s->parent) {
    int slot = s->program->slot_of(name);
    if (slot >= 0) {
      const Datum& d = (*s->slots)[static_cast<size_t>(slot)];
      // A capture in an intermediate scope that was itself bound is fine; an
      // unbound slot means the name is defined there but not yet computed.
      if (!d.is_none()) return &d;
    }
  }
  return nullptr;
}

namespace {

// Names captured by `g` or by any graph nested in it, at any depth. A value of
// an enclosing scope may be read by a grandchild graph without the graphs in
// between declaring it as a capture (the scope lookup walks every parent), so
// the scope holding that value must keep it alive for all of them.
void collect_captures(const ir::Graph& g, std::vector<std::string>& names) {
  for (const ir::Value* v : g.captures()) names.push_back(v->name());
  for (const auto& node : g.nodes()) {
    for (const ir::Graph* sub : node->subgraphs()) collect_captures(*sub, names);
  }
}

}  // namespace

Result<std::shared_ptr<const Program>> Program::compile(const ir::Graph& graph) {
  auto p = std::make_shared<Program>();
  p->graph_ = &graph;
  std::unordered_map<const ir::Value*, int> slot;
  auto slot_for = [&](const ir::Value* v) {
    auto [it, inserted] = slot.emplace(v, p->num_slots_);
    if (inserted) {
      ++p->num_slots_;
      p->slot_by_name_[v->name()] = it->second;
    }
    return it->second;
  };
  for (const ir::Value* v : graph.inputs()) p->input_slots_.push_back(slot_for(v));
  for (const ir::Value* v : graph.captures()) p->captures_.emplace_back(slot_for(v), v->name());
  for (const ir::Value* v : graph.constants()) p->constants_.emplace_back(slot_for(v), v->constant());
  // Graph inputs that also have an initializer keep it as their default.
  for (const ir::Value* v : graph.inputs()) {
    if (v->is_constant()) p->constants_.emplace_back(slot_for(v), v->constant());
  }

  const auto& registry = ops::Registry::global();
  std::unordered_map<int, size_t> last_use;  // slot -> step index
  for (const auto& node : graph.nodes()) {
    const ops::OpDef* def = registry.find(node->domain(), node->op_type(), node->opset());
    if (def == nullptr) {
      if (registry.knows(node->domain(), node->op_type())) {
        return unimplemented("{}: no kernel for opset {}", node->describe(), node->opset());
      }
      return unimplemented("{}: unknown operator", node->describe());
    }
    KILN_RETURN_IF_ERROR(ops::check_arity(*def, *node));
    Step step{node.get(), def->kernel, {}, {}, {}};
    for (const ir::Value* v : node->inputs()) {
      if (v == nullptr) {
        step.inputs.push_back(-1);
        continue;
      }
      int s = slot_for(v);
      step.inputs.push_back(s);
      last_use[s] = p->steps_.size();
    }
    for (const ir::Value* v : node->outputs()) step.outputs.push_back(v ? slot_for(v) : -1);
    for (const ir::Graph* sub : node->subgraphs()) {
      KILN_ASSIGN_OR_RETURN(auto sp, compile(*sub));
      p->subprograms_[sub] = std::move(sp);
      // A subgraph (or one nested in it) may read any value of this scope by
      // name: keep those alive until this node has run.
      std::vector<std::string> captured;
      collect_captures(*sub, captured);
      for (const std::string& name : captured) {
        if (const ir::Value* v = graph.find_value(name)) last_use[slot_for(v)] = p->steps_.size();
      }
    }
    p->steps_.push_back(std::move(step));
  }
  for (const ir::Value* v : graph.outputs()) p->output_slots_.push_back(slot_for(v));

  // Release each slot after its last use, unless it is a graph output or a
  // captured name that nested subgraphs below may still need (kept by the
  // extension of last_use above).
  std::vector<bool> is_output(static_cast<size_t>(p->num_slots_), false);
  for (int s : p->output_slots_) is_output[static_cast<size_t>(s)] = true;
  for (auto [s, step] : last_use) {
    if (!is_output[static_cast<size_t>(s)]) p->steps_[step].release.push_back(s);
  }
  return std::shared_ptr<const Program>(std::move(p));
}

namespace {

class ScopedRunner : public ops::SubgraphRunner {
 public:
  ScopedRunner(const Program& program, const Scope& scope, ThreadPool* pool)
      : program_(program), scope_(scope), pool_(pool) {}

  Result<std::vector<Datum>> run(const ir::Graph& graph, std::span<const Datum> inputs) override {
    const Program* sub = program_.subprogram(&graph);
    if (sub == nullptr) return internal_error("subgraph '{}' was not compiled", graph.name());
    return execute(*sub, inputs, pool_, &scope_);
  }

 private:
  const Program& program_;
  const Scope& scope_;
  ThreadPool* pool_;
};

}  // namespace

Result<std::vector<Datum>> execute(const Program& program, std::span<const Datum> inputs, ThreadPool* pool,
                                   const Scope* outer) {
  const ir::Graph& graph = *program.graph_;
  if (inputs.size() != program.input_slots_.size()) {
    return invalid_argument("graph '{}' takes {} inputs, got {}", graph.name(), program.input_slots_.size(),
                            inputs.size());
  }
  std::vector<Datum> slots(static_cast<size_t>(program.num_slots_));
  for (const auto& [s, t] : program.constants_) slots[static_cast<size_t>(s)] = Datum(t);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].is_none()) slots[static_cast<size_t>(program.input_slots_[i])] = inputs[i];
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    Datum& slot = slots[static_cast<size_t>(program.input_slots_[i])];
    const bool optional = graph.inputs()[i]->type().kind == ir::ValueType::Kind::kOptional;
    if (optional && (slot.is_tensor() || slot.is_sequence())) {
      // A plain value fed to an optional-typed input (e.g. a loop body's
      // optional carried value after the first iteration) is that value wrapped.
      slot = Datum::optional(std::make_shared<const Datum>(std::move(slot)));
      continue;
    }
    if (!slot.is_none()) continue;
    if (!optional) {
      return invalid_argument("graph '{}': input '{}' was not given", graph.name(), graph.inputs()[i]->name());
    }
    // An optional input left out is an empty optional: a defined value, which
    // subgraphs capturing it must find (an empty slot reads as "not computed").
    slot = Datum::optional(nullptr);
  }
  for (const auto& [s, name] : program.captures_) {
    const Datum* d = outer ? outer->lookup(name) : nullptr;
    if (d == nullptr) return invalid_argument("graph '{}': outer value '{}' is not defined", graph.name(), name);
    slots[static_cast<size_t>(s)] = *d;
  }

  Scope scope{&program, &slots, outer};
  ScopedRunner runner(program, scope, pool);
  std::vector<Datum> in;
  std::vector<Datum> out;
  for (const auto& step : program.steps_) {
    in.clear();
    for (int s : step.inputs) in.push_back(s < 0 ? Datum() : slots[static_cast<size_t>(s)]);
    out.assign(step.outputs.size(), Datum());
    ops::KernelContext ctx(*step.node, in, out, pool, &runner);
    Status st = ops::run_kernel_guarded(*step.node, [&] { return step.kernel(ctx); });
    if (!st.is_ok()) {
      // Kernels usually name their node already; add it where they did not.
      if (st.message().find(step.node->describe()) == std::string::npos) return std::move(st).with_context(step.node->describe());
      return st;
    }
    for (size_t i = 0; i < step.outputs.size(); ++i) {
      int s = step.outputs[i];
      if (s < 0) continue;
      if (out[i].is_none() && step.node->output(i)->type().kind != ir::ValueType::Kind::kOptional) {
        return internal_error("{}: kernel did not produce output {}", step.node->describe(), i);
      }
      slots[static_cast<size_t>(s)] = std::move(out[i]);
    }
    for (int s : step.release) slots[static_cast<size_t>(s)] = Datum();
  }
  std::vector<Datum> results;
  results.reserve(program.output_slots_.size());
  for (int s : program.output_slots_) results.push_back(slots[static_cast<size_t>(s)]);
  return results;
}

}  // namespace kiln::exec
