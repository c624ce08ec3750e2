#include "runtime/engine.h"

#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/thread_pool.h"
#include "exec/program.h"

namespace kiln::runtime {

namespace {

IoBinding binding_of(const ir::Value& v) {
  IoBinding b;
  b.name = v.name();
  b.is_tensor = v.type().is_tensor();
  b.dtype = v.type().dtype;
  b.shape = v.type().shape;
  b.optional = v.is_constant();
  return b;
}

}  // namespace

Engine::~Engine() = default;

Result<std::shared_ptr<Engine>> Engine::create(ir::Model model, const EngineOptions& options) {
  if (!model.graph) return invalid_argument("model has no graph");
  std::shared_ptr<Engine> e(new Engine());
  e->model_ = std::move(model);
  KILN_ASSIGN_OR_RETURN(e->program_, exec::Program::compile(*e->model_.graph));
  int threads = options.threads > 0 ? options.threads : ThreadPool::hardware_threads();
  e->pool_ = std::make_unique<ThreadPool>(threads);
  for (const ir::Value* v : e->model_.graph->inputs()) e->inputs_.push_back(binding_of(*v));
  for (const ir::Value* v : e->model_.graph->outputs()) e->outputs_.push_back(binding_of(*v));
  return e;
}

int Engine::threads() const { return pool_->threads(); }

std::unique_ptr<ExecutionContext> Engine::create_context() const {
  return std::make_unique<ExecutionContext>(shared_from_this());
}

Result<NamedTensors> Engine::run(const NamedTensors& feeds, const std::vector<std::string>& output_names) const {
  ExecutionContext ctx(shared_from_this());
  return ctx.run(feeds, output_names);
}

Result<std::vector<Tensor>> Engine::bind_inputs(const NamedTensors& feeds) const {
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < inputs_.size(); ++i) index[inputs_[i].name] = i;
  std::vector<Tensor> bound(inputs_.size());
  std::unordered_set<std::string> seen;
  for (const auto& [name, tensor] : feeds) {
    auto it = index.find(name);
    if (it == index.end()) {
      std::string expected;
      for (const auto& b : inputs_) expected += (expected.empty() ? "'" : ", '") + b.name + "'";
      return invalid_argument("unknown input '{}'; the model's inputs are {}", name, expected);
    }
    if (!seen.insert(name).second) return invalid_argument("input '{}' is given twice", name);
    const IoBinding& b = inputs_[it->second];
    if (!tensor.defined()) return invalid_argument("input '{}' is an empty tensor object", name);
    if (b.is_tensor && b.dtype != DataType::kUndefined && tensor.dtype() != b.dtype) {
      return invalid_argument("input '{}' has type {}, the model expects {}", name, data_type_name(tensor.dtype()),
                              data_type_name(b.dtype));
    }
    if (b.is_tensor && b.shape.rank_known()) {
      if (tensor.rank() != b.shape.rank()) {
        return invalid_argument("input '{}' has rank {} (shape {}), the model expects rank {} ({})", name,
                                tensor.rank(), dims_to_string(tensor.dims()), b.shape.rank(), b.shape.to_string());
      }
      if (!b.shape.matches(tensor.dims())) {
        return invalid_argument("input '{}' has shape {}, the model expects {}", name, dims_to_string(tensor.dims()),
                                b.shape.to_string());
      }
    }
    bound[it->second] = tensor;
  }
  for (size_t i = 0; i < inputs_.size(); ++i) {
    if (!bound[i].defined() && !inputs_[i].optional) {
      return invalid_argument("missing input '{}' ({}{})", inputs_[i].name, data_type_name(inputs_[i].dtype),
                              inputs_[i].shape.to_string());
    }
  }
  return bound;
}

Result<NamedTensors> ExecutionContext::run(const NamedTensors& feeds, const std::vector<std::string>& output_names) {
  const Engine& e = *engine_;
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> bound, e.bind_inputs(feeds));
  std::vector<size_t> wanted;
  if (output_names.empty()) {
    for (size_t i = 0; i < e.outputs_.size(); ++i) wanted.push_back(i);
  } else {
    for (const auto& name : output_names) {
      size_t i = 0;
      while (i < e.outputs_.size() && e.outputs_[i].name != name) ++i;
      if (i == e.outputs_.size()) return invalid_argument("unknown output '{}'", name);
      wanted.push_back(i);
    }
  }
  std::vector<Datum> in;
  in.reserve(bound.size());
  for (auto& t : bound) in.push_back(t.defined() ? Datum(std::move(t)) : Datum());
  KILN_ASSIGN_OR_RETURN(std::vector<Datum> out, exec::execute(*e.program_, in, e.pool_.get()));
  NamedTensors result;
  for (size_t i : wanted) {
    if (!out[i].is_tensor()) {
      return unimplemented("output '{}' is not a tensor (sequence/optional outputs need the Datum API)",
                           e.outputs_[i].name);
    }
    result.emplace_back(e.outputs_[i].name, out[i].tensor());
  }
  return result;
}

}  // namespace kiln::runtime
