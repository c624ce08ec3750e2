#include "runtime/engine.h"

#include <functional>
#include <unordered_map>

#include "core/error.h"
#include "core/thread_pool.h"
#include "exec/program.h"
#include "passes/pipeline.h"
#include "plan/plan.h"
#include "plan/profile.h"
#include "runtime/plan_executor.h"

namespace kiln::runtime {

namespace {

IoBinding binding_of(const ir::Value& v) {
  IoBinding b;
  b.name = v.name();
  b.is_tensor = v.type().is_tensor();
  b.dtype = v.type().dtype;
  b.shape = v.type().shape;
  b.optional = v.is_constant();
  b.type = v.type();
  return b;
}

void add_range(const Tensor& t, std::vector<std::pair<const char*, size_t>>& ranges) {
  if (t.defined() && t.numel() > 0) ranges.emplace_back(static_cast<const char*>(t.raw_data()), t.nbytes());
}

// The storage of every constant a run could hand out as an output: values with
// constant data and tensor attributes (Constant's `value`), in `g` and its subgraphs.
void collect_constant_ranges(const ir::Graph& g, std::vector<std::pair<const char*, size_t>>& ranges) {
  for (const ir::Value* v : g.constants()) add_range(v->constant(), ranges);
  for (const ir::Value* v : g.inputs()) {
    if (v->is_constant()) add_range(v->constant(), ranges);
  }
  for (const auto& node : g.nodes()) {
    for (const auto& [name, a] : node->attributes()) {
      add_range(a.t, ranges);
      for (const Tensor& t : a.tensors) add_range(t, ranges);
    }
    for (const ir::Graph* sub : node->subgraphs()) collect_constant_ranges(*sub, ranges);
  }
}

bool overlaps(const Tensor& t, const char* data, size_t nbytes) {
  if (!t.defined() || t.numel() == 0 || nbytes == 0) return false;
  const char* p = static_cast<const char*>(t.raw_data());
  return p < data + nbytes && data < p + t.nbytes();
}

// Gives `d` storage of its own where it overlaps a protected range.
Datum unshare(const Datum& d, const std::function<bool(const Tensor&)>& shared) {
  switch (d.kind()) {
    case Datum::Kind::kTensor:
      return shared(d.tensor()) ? Datum(d.tensor().clone()) : d;
    case Datum::Kind::kSequence: {
      std::vector<Tensor> items;
      for (const Tensor& t : d.items()) items.push_back(shared(t) ? t.clone() : t);
      return Datum::sequence(std::move(items), d.elem_type());
    }
    case Datum::Kind::kOptional:
      if (d.optional_value() == nullptr) return d;
      return Datum::optional(std::make_shared<const Datum>(unshare(*d.optional_value(), shared)));
    case Datum::Kind::kNone:
      return d;
  }
  return d;
}

const char* kind_name(const Datum& d) {
  switch (d.kind()) {
    case Datum::Kind::kNone: return "nothing";
    case Datum::Kind::kTensor: return "a tensor";
    case Datum::Kind::kSequence: return "a sequence";
    case Datum::Kind::kOptional: return "an optional";
  }
  return "?";
}

// Checks a tensor fed to input `b`: dtype, rank and known dims.
Status check_tensor(const IoBinding& b, const Tensor& tensor, const std::string& name) {
  if (!tensor.defined()) return invalid_argument("input '{}' is an empty tensor object", name);
  if (b.dtype != DataType::kUndefined && tensor.dtype() != b.dtype) {
    return invalid_argument("input '{}' has type {}, the model expects {}", name, data_type_name(tensor.dtype()),
                            data_type_name(b.dtype));
  }
  if (b.shape.rank_known()) {
    if (tensor.rank() != b.shape.rank()) {
      return invalid_argument("input '{}' has rank {} (shape {}), the model expects rank {} ({})", name,
                              tensor.rank(), dims_to_string(tensor.dims()), b.shape.rank(), b.shape.to_string());
    }
    if (!b.shape.matches(tensor.dims())) {
      return invalid_argument("input '{}' has shape {}, the model expects {}", name, dims_to_string(tensor.dims()),
                              b.shape.to_string());
    }
  }
  return Status::ok();
}

// The element dtype a sequence/optional type declares, or kUndefined.
DataType declared_tensor_dtype(const ir::ValueType& t) {
  return t.is_tensor() ? t.dtype : DataType::kUndefined;
}

// Checks the items of a sequence fed to an input of sequence type `type`.
Status check_sequence(const ir::ValueType& type, const Datum& seq, const std::string& name) {
  const DataType want = type.elem ? declared_tensor_dtype(*type.elem) : DataType::kUndefined;
  if (want == DataType::kUndefined) return Status::ok();
  for (size_t i = 0; i < seq.items().size(); ++i) {
    const Tensor& t = seq.items()[i];
    if (!t.defined()) return invalid_argument("input '{}': item {} is an empty tensor object", name, i);
    if (t.dtype() != want) {
      return invalid_argument("input '{}': item {} has type {}, the model expects a sequence of {}", name, i,
                              data_type_name(t.dtype()), data_type_name(want));
    }
  }
  if (seq.items().empty() && seq.elem_type() != DataType::kUndefined && seq.elem_type() != want) {
    return invalid_argument("input '{}' is an empty sequence of {}, the model expects a sequence of {}", name,
                            data_type_name(seq.elem_type()), data_type_name(want));
  }
  return Status::ok();
}

// Checks the content of an optional fed to an input of optional type `type`.
Status check_optional_content(const ir::ValueType& type, const Datum& d, const std::string& name) {
  if (!type.elem || type.elem->kind == ir::ValueType::Kind::kUnknown) return Status::ok();
  const ir::ValueType& inner = *type.elem;
  if (inner.kind == ir::ValueType::Kind::kSequence) {
    if (!d.is_sequence()) {
      return invalid_argument("input '{}' expects an optional sequence, got {}", name, kind_name(d));
    }
    return check_sequence(inner, d, name);
  }
  if (inner.kind == ir::ValueType::Kind::kTensor) {
    if (!d.is_tensor()) return invalid_argument("input '{}' expects an optional tensor, got {}", name, kind_name(d));
    IoBinding b;
    b.dtype = inner.dtype;
    b.shape = inner.shape;
    return check_tensor(b, d.tensor(), name);
  }
  return Status::ok();
}

// Runs the optimizer passes `names` asks for (see EngineOptions::passes).
Status optimize(ir::Model& model, const std::vector<std::string>& names) {
  if (names.empty()) return Status::ok();
  passes::PipelineOptions po;
  po.verify = true;
  // IR versions before 4 list every initializer as a graph input; those are weights, not inputs.
  po.initializer_inputs_are_constant = model.ir_version > 0 && model.ir_version < 4;
  if (names.size() != 1) {
    return invalid_argument("passes: give \"all\" or the one pass to stop after, got {} names", names.size());
  }
  if (names[0] != "all") po.stop_after = names[0];
  auto reports = passes::optimize(*model.graph, po);
  if (!reports.is_ok()) return reports.status().with_context("optimizer");
  return Status::ok();
}

}  // namespace

Engine::~Engine() = default;

Result<std::shared_ptr<Engine>> Engine::create(ir::Model model, const EngineOptions& options) {
  if (!model.graph) return invalid_argument("model has no graph");
  std::shared_ptr<Engine> e(new Engine());
  e->model_ = std::move(model);
  KILN_RETURN_IF_ERROR(optimize(e->model_, options.passes));
  KILN_ASSIGN_OR_RETURN(e->program_, exec::Program::compile(*e->model_.graph));
  int threads = options.threads > 0 ? options.threads : ThreadPool::hardware_threads();
  e->pool_ = std::make_unique<ThreadPool>(threads);
  for (const ir::Value* v : e->model_.graph->inputs()) e->inputs_.push_back(binding_of(*v));
  for (const ir::Value* v : e->model_.graph->outputs()) e->outputs_.push_back(binding_of(*v));
  collect_constant_ranges(*e->model_.graph, e->constant_ranges_);
  return e;
}

Result<std::shared_ptr<Engine>> Engine::create_from_plan(plan::Plan plan, const EngineOptions& options) {
  if (!plan.model.graph) return invalid_argument("plan has no graph");
  std::shared_ptr<Engine> e(new Engine());
  auto p = std::make_shared<plan::Plan>(std::move(plan));
  e->model_ = p->model;  // shares the graph
  KILN_ASSIGN_OR_RETURN(e->program_, exec::Program::compile(*e->model_.graph));
  KILN_ASSIGN_OR_RETURN(e->executor_, PlanExecutor::create(*p, *e->program_));
  p->kernels.clear();  // the executor holds them
  e->plan_ = std::move(p);
  int threads = options.threads > 0 ? options.threads : ThreadPool::hardware_threads();
  e->pool_ = std::make_unique<ThreadPool>(threads);
  for (const ir::Value* v : e->model_.graph->inputs()) e->inputs_.push_back(binding_of(*v));
  for (const ir::Value* v : e->model_.graph->outputs()) e->outputs_.push_back(binding_of(*v));
  collect_constant_ranges(*e->model_.graph, e->constant_ranges_);
  return e;
}

std::shared_ptr<void> Engine::take_arena() const {
  std::lock_guard<std::mutex> lock(arenas_mu_);
  if (idle_arenas_.empty()) return nullptr;
  auto a = std::move(idle_arenas_.back());
  idle_arenas_.pop_back();
  return a;
}

void Engine::return_arena(std::shared_ptr<void> arena) const {
  if (!arena) return;
  std::lock_guard<std::mutex> lock(arenas_mu_);
  if (idle_arenas_.size() < 4) idle_arenas_.push_back(std::move(arena));
}

int Engine::threads() const { return pool_->threads(); }

std::unique_ptr<ExecutionContext> Engine::create_context() const {
  return std::make_unique<ExecutionContext>(shared_from_this());
}

Result<NamedTensors> Engine::run(const NamedTensors& feeds, const std::vector<std::string>& output_names) const {
  ExecutionContext ctx(shared_from_this());
  ctx.arena_ = take_arena();
  auto out = ctx.run(feeds, output_names);
  return_arena(std::move(ctx.arena_));
  return out;
}

Result<NamedData> Engine::run_data(const NamedData& feeds, const std::vector<std::string>& output_names) const {
  ExecutionContext ctx(shared_from_this());
  ctx.arena_ = take_arena();
  auto out = ctx.run_data(feeds, output_names);
  return_arena(std::move(ctx.arena_));
  return out;
}

bool Engine::aliases_constant(const Tensor& t) const {
  for (const auto& [data, nbytes] : constant_ranges_) {
    if (overlaps(t, data, nbytes)) return true;
  }
  return false;
}

Result<std::vector<Datum>> Engine::bind_inputs(const NamedData& feeds) const {
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < inputs_.size(); ++i) index[inputs_[i].name] = i;
  std::vector<Datum> bound(inputs_.size());
  std::vector<bool> given(inputs_.size(), false);
  for (const auto& [name, datum] : feeds) {
    auto it = index.find(name);
    if (it == index.end()) {
      std::string expected;
      for (const auto& b : inputs_) expected += (expected.empty() ? "'" : ", '") + b.name + "'";
      return invalid_argument("unknown input '{}'; the model's inputs are {}", name, expected);
    }
    if (given[it->second]) return invalid_argument("input '{}' is given twice", name);
    given[it->second] = true;
    const IoBinding& b = inputs_[it->second];
    switch (b.type.kind) {
      case ir::ValueType::Kind::kTensor:
        if (!datum.is_tensor()) return invalid_argument("input '{}' expects a tensor, got {}", name, kind_name(datum));
        KILN_RETURN_IF_ERROR(check_tensor(b, datum.tensor(), name));
        break;
      case ir::ValueType::Kind::kSequence:
        if (!datum.is_sequence()) {
          return invalid_argument("input '{}' expects a sequence of tensors, got {}", name, kind_name(datum));
        }
        KILN_RETURN_IF_ERROR(check_sequence(b.type, datum, name));
        break;
      case ir::ValueType::Kind::kOptional:
        if (datum.is_tensor() || datum.is_sequence()) {
          KILN_RETURN_IF_ERROR(check_optional_content(b.type, datum, name));
          bound[it->second] = Datum::optional(std::make_shared<const Datum>(datum));
          continue;
        }
        if (datum.is_optional() && datum.optional_value() != nullptr) {
          KILN_RETURN_IF_ERROR(check_optional_content(b.type, *datum.optional_value(), name));
        }
        if (datum.is_none()) {
          bound[it->second] = Datum::optional(nullptr);
          continue;
        }
        break;
      default:  // unknown or map types: passed through unchecked
        if (datum.is_none()) return invalid_argument("input '{}' is given no value", name);
        if (datum.is_tensor() && !datum.tensor().defined()) {
          return invalid_argument("input '{}' is an empty tensor object", name);
        }
        break;
    }
    if (plan_ && datum.is_tensor()) {
      for (const plan::InputProfile& p : plan_->profiles) {
        if (p.name == name) KILN_RETURN_IF_ERROR(plan::check_profile(p, datum.tensor().dims()));
      }
    }
    bound[it->second] = datum;
  }
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (given[i] || inputs_[i].optional) continue;
    if (inputs_[i].type.kind == ir::ValueType::Kind::kOptional) {
      bound[i] = Datum::optional(nullptr);  // an optional input left out is empty
      continue;
    }
    return invalid_argument("missing input '{}' ({})", inputs_[i].name,
                            inputs_[i].is_tensor ? std::string(data_type_name(inputs_[i].dtype)) +
                                                       inputs_[i].shape.to_string()
                                                 : inputs_[i].type.to_string());
  }
  return bound;
}

Result<NamedTensors> ExecutionContext::run(const NamedTensors& feeds, const std::vector<std::string>& output_names) {
  NamedData data;
  data.reserve(feeds.size());
  for (const auto& [name, tensor] : feeds) data.emplace_back(name, Datum(tensor));
  KILN_ASSIGN_OR_RETURN(NamedData out, run_data(data, output_names));
  NamedTensors result;
  for (auto& [name, d] : out) {
    if (!d.is_tensor()) {
      return unimplemented("output '{}' is not a tensor (sequence/optional outputs need run_data)", name);
    }
    result.emplace_back(name, std::move(d.tensor()));
  }
  return result;
}

Result<NamedData> ExecutionContext::run_data(const NamedData& feeds, const std::vector<std::string>& output_names) {
  const Engine& e = *engine_;
  KILN_ASSIGN_OR_RETURN(std::vector<Datum> bound, e.bind_inputs(feeds));
  std::vector<size_t> wanted;
  if (output_names.empty()) {
    for (size_t i = 0; i < e.outputs_.size(); ++i) wanted.push_back(i);
  } else {
    for (const auto& name : output_names) {
      size_t i = 0;
      while (i < e.outputs_.size() && e.outputs_[i].name != name) ++i;
      if (i == e.outputs_.size()) {
        std::string known;
        for (const auto& b : e.outputs_) known += (known.empty() ? "'" : ", '") + b.name + "'";
        return invalid_argument("unknown output '{}'; the model's outputs are {}", name, known);
      }
      wanted.push_back(i);
    }
  }
  std::vector<Datum> out;
  if (e.executor_) {
    if (!arena_ && e.executor_->arena_bytes() > 0) {
      arena_ = make_arena(e.executor_->arena_bytes());
      if (!arena_) return resource_exhausted("cannot allocate the {}-byte activation arena", e.executor_->arena_bytes());
    }
    KILN_ASSIGN_OR_RETURN(out, e.executor_->run(bound, e.pool_.get(), arena_, profiling_ ? &layer_ms_ : nullptr));
  } else {
    KILN_ASSIGN_OR_RETURN(out, exec::execute(*e.program_, bound, e.pool_.get()));
  }
  // Outputs get storage of their own where they would share it with a feed,
  // a constant or an output handed out before.
  std::vector<std::pair<const char*, size_t>> handed_out;
  auto shared = [&](const Tensor& t) {
    if (e.aliases_constant(t)) return true;
    for (const auto& [data, nbytes] : handed_out) {
      if (overlaps(t, data, nbytes)) return true;
    }
    for (const auto& [name, d] : feeds) {
      if (d.is_tensor() && overlaps(t, static_cast<const char*>(d.tensor().raw_data()), d.tensor().nbytes())) {
        return true;
      }
      if (d.is_sequence()) {
        for (const Tensor& item : d.items()) {
          if (overlaps(t, static_cast<const char*>(item.raw_data()), item.nbytes())) return true;
        }
      }
    }
    return false;
  };
  NamedData result;
  result.reserve(wanted.size());
  for (size_t i : wanted) {
    Datum d = unshare(out[i], shared);
    const Datum* inner = d.is_optional() ? d.optional_value() : &d;
    if (inner != nullptr && inner->is_tensor()) add_range(inner->tensor(), handed_out);
    if (inner != nullptr && inner->is_sequence()) {
      for (const Tensor& t : inner->items()) add_range(t, handed_out);
    }
    result.emplace_back(e.outputs_[i].name, std::move(d));
  }
  return result;
}

}  // namespace kiln::runtime
