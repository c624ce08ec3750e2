#include "train/tape.h"

#include <algorithm>

#include "core/error.h"
#include "ops/registry.h"

namespace kiln::train {

Result<Tensor> convert_float(const Tensor& t, DataType dtype) {
  if (t.dtype() == dtype) return t;
  if (t.dtype() == DataType::kFloat32 && dtype == DataType::kFloat64) {
    KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(dtype, t.dims()));
    std::copy_n(t.data<float>(), t.numel(), out.data<double>());
    return out;
  }
  if (t.dtype() == DataType::kFloat64 && dtype == DataType::kFloat32) {
    KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(dtype, t.dims()));
    const double* src = t.data<double>();
    float* dst = out.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) dst[i] = static_cast<float>(src[i]);
    return out;
  }
  return t;  // non-float tensors (indices, shapes) pass unchanged
}

namespace {

bool is_float(const Tensor& t) {
  return t.dtype() == DataType::kFloat32 || t.dtype() == DataType::kFloat64;
}

template <class T>
void add_into(Tensor& dst, const Tensor& a, const Tensor& b) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* pd = dst.data<T>();
  for (int64_t i = 0; i < dst.numel(); ++i) pd[i] = pa[i] + pb[i];
}

}  // namespace

void Tape::set_trainable(std::vector<const ir::Value*> values) { trainable_ = std::move(values); }

void Tape::clear() {
  env_.clear();
  produced_.clear();
  records_.clear();
  rules_.clear();
  grads_.clear();
}

Precision Tape::storage_precision(const ir::Value* v) const {
  if (auto it = produced_.find(v); it != produced_.end()) return it->second;
  if (plan_ != nullptr) {
    if (auto it = plan_->values.find(v); it != plan_->values.end()) return it->second;
  }
  return Precision::kFp32;
}

Result<Tensor> Tape::lookup(const ir::Value* v) {
  if (auto it = env_.find(v); it != env_.end()) return it->second;
  if (!v->is_constant()) return invalid_argument("value '{}' is used before it is computed", v->name());
  Tensor t = v->constant();
  if (is_float(t)) {
    KILN_ASSIGN_OR_RETURN(t, convert_float(t, options_.compute));
    t = rounded(t, storage_precision(v));
  }
  env_[v] = t;
  return t;
}

Result<std::vector<Tensor>> Tape::forward(std::span<const Tensor> inputs, const TapeOptions& options) {
  clear();
  options_ = options;
  if (options.compute != DataType::kFloat32 && options.compute != DataType::kFloat64) {
    return invalid_argument("tape compute type must be float32 or float64");
  }
  const auto& graph_inputs = graph_.inputs();
  if (inputs.size() != graph_inputs.size()) {
    return invalid_argument("graph '{}' takes {} inputs, got {}", graph_.name(), graph_inputs.size(), inputs.size());
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor t = inputs[i];
    if (!t.defined()) return invalid_argument("input '{}' is missing", graph_inputs[i]->name());
    if (is_float(t)) {
      KILN_ASSIGN_OR_RETURN(t, convert_float(t, options.compute));
      t = rounded(t, storage_precision(graph_inputs[i]));
    }
    env_[graph_inputs[i]] = t;
  }
  needs_grad_ = std::unordered_set<const ir::Value*>(trainable_.begin(), trainable_.end());

  uint64_t position = 0;
  for (const auto& node_ptr : graph_.nodes()) {
    const ir::Node& node = *node_ptr;
    ++position;
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      return unimplemented("{}: training supports default-domain ops only", node.describe());
    }
    const GradRule* rule = find_grad_rule(node.op_type());
    if (rule == nullptr) return unimplemented("{}: no gradient rule for op {}", node.describe(), node.op_type());
    NodeRecord rec;
    rec.node = &node;
    rec.training = options.training;
    rec.seed = options.seed * 0x9E3779B97F4A7C15ull + position;
    if (plan_ != nullptr) {
      if (auto it = plan_->nodes.find(&node); it != plan_->nodes.end()) rec.precision = it->second;
    }
    // The schema's arity: rules read their required inputs unconditionally.
    const ops::OpDef* def = ops::Registry::global().find(node.domain(), node.op_type(), node.opset());
    if (def == nullptr) return unimplemented("{}: op {} is not in the op registry", node.describe(), node.op_type());
    KILN_RETURN_IF_ERROR(ops::check_arity(*def, node));
    for (int i = 0; i < def->min_inputs; ++i) {
      if (node.input(static_cast<size_t>(i)) == nullptr) return invalid_argument("{}: required input {} is missing", node.describe(), i);
    }
    rec.inputs.resize(node.num_inputs());
    rec.state.resize(node.num_inputs());
    bool any_grad = false;
    for (size_t i = 0; i < node.num_inputs(); ++i) {
      const ir::Value* v = node.input(i);
      if (v == nullptr) continue;
      KILN_ASSIGN_OR_RETURN(Tensor t, lookup(v));
      if ((rule->no_grad_inputs & (1u << i)) == 0 && !is_float(t)) {
        return invalid_argument("{}: input {} ('{}') must be float32 or float64 to train, got {}", node.describe(), i,
                                v->name(), data_type_name(t.dtype()));
      }
      rec.inputs[i] = rounded(t, rec.precision);
      if (v->is_constant() && v->constant().dtype() == DataType::kFloat32 && options.update_running_stats &&
          options.training) {
        rec.state[i] = v->constant();
      }
      if (needs_grad_.count(v) && (rule->no_grad_inputs & (1u << i)) == 0) any_grad = true;
    }
    if (Status s = rule->forward(rec); !s.is_ok()) return rec.error(std::move(s));
    if (rec.outputs.size() < node.num_outputs()) rec.outputs.resize(node.num_outputs());
    for (size_t o = 0; o < node.num_outputs(); ++o) {
      const ir::Value* v = node.output(o);
      if (v == nullptr) continue;
      Tensor& t = rec.outputs[o];
      if (!t.defined()) return internal_error("{}: output {} was not computed", node.describe(), o);
      round_in_place(t, rec.precision);
      env_[v] = t;
      produced_[v] = rec.precision;
      if (any_grad) needs_grad_.insert(v);
    }
    records_.push_back(std::move(rec));
    rules_.push_back(rule);
  }
  std::vector<Tensor> outs;
  for (const ir::Value* v : graph_.outputs()) {
    KILN_ASSIGN_OR_RETURN(Tensor t, lookup(v));
    outs.push_back(t);
  }
  return outs;
}

Status Tape::backward(std::span<const Tensor> output_grads) {
  grads_.clear();
  const auto& outs = graph_.outputs();
  if (output_grads.size() != outs.size()) {
    return invalid_argument("backward takes one gradient per graph output ({}), got {}", outs.size(),
                            output_grads.size());
  }
  if (records_.empty() && !graph_.nodes().empty()) return failed_precondition("backward() before forward()");
  auto accumulate = [&](const ir::Value* v, Tensor g) -> Status {
    g = rounded(g, storage_precision(v));
    auto it = grads_.find(v);
    if (it == grads_.end()) {
      grads_[v] = g;
      return Status::ok();
    }
    KILN_ASSIGN_OR_RETURN(Tensor sum, Tensor::allocate(g.dtype(), g.dims()));
    if (g.dtype() == DataType::kFloat64) {
      add_into<double>(sum, it->second, g);
    } else {
      add_into<float>(sum, it->second, g);
    }
    round_in_place(sum, storage_precision(v));
    it->second = sum;
    return Status::ok();
  };
  for (size_t i = 0; i < outs.size(); ++i) {
    if (!output_grads[i].defined() || !needs_grad_.count(outs[i])) continue;
    KILN_ASSIGN_OR_RETURN(Tensor g, convert_float(output_grads[i], options_.compute));
    auto it = env_.find(outs[i]);
    if (it != env_.end() && it->second.dims() != g.dims()) {
      return invalid_argument("gradient for output '{}' has dims [{}], expected [{}]", outs[i]->name(),
                              fmt::join(g.dims(), ","), fmt::join(it->second.dims(), ","));
    }
    KILN_RETURN_IF_ERROR(accumulate(outs[i], g));
  }
  for (size_t r = records_.size(); r-- > 0;) {
    const NodeRecord& rec = records_[r];
    const ir::Node& node = *rec.node;
    std::vector<Tensor> dy(node.num_outputs());
    bool any_dy = false;
    for (size_t o = 0; o < node.num_outputs(); ++o) {
      if (node.output(o) == nullptr) continue;
      if (auto it = grads_.find(node.output(o)); it != grads_.end()) {
        dy[o] = rounded(it->second, rec.precision);
        any_dy = true;
      }
    }
    if (!any_dy) continue;
    std::vector<bool> need(node.num_inputs(), false);
    bool any_need = false;
    for (size_t i = 0; i < node.num_inputs(); ++i) {
      const ir::Value* v = node.input(i);
      need[i] = v != nullptr && needs_grad_.count(v) && (rules_[r]->no_grad_inputs & (1u << i)) == 0;
      any_need = any_need || need[i];
    }
    if (!any_need) continue;
    std::vector<Tensor> dx(node.num_inputs());
    if (Status s = rules_[r]->backward(rec, dy, need, dx); !s.is_ok()) return rec.error(std::move(s));
    for (size_t i = 0; i < node.num_inputs(); ++i) {
      if (!need[i] || !dx[i].defined()) continue;
      if (dx[i].dims() != rec.inputs[i].dims()) {
        return internal_error("{}: gradient of input {} has dims [{}], expected [{}]", node.describe(), i,
                              fmt::join(dx[i].dims(), ","), fmt::join(rec.inputs[i].dims(), ","));
      }
      KILN_RETURN_IF_ERROR(accumulate(node.input(i), rounded(dx[i], rec.precision)));
    }
  }
  return Status::ok();
}

Tensor Tape::grad(const ir::Value* v) const {
  auto it = grads_.find(v);
  return it == grads_.end() ? Tensor() : it->second;
}

}  // namespace kiln::train
