#include "ops/registry.h"

#include <array>

#include "core/error.h"
#include "ops/families.h"

namespace kiln::ops {
namespace {

using RegisterFn = void (*)(Registry&);

// Builds the family table; the static_assert catches a family added to the
// Family enum but forgotten in the list below.
template <class... Fns>
constexpr std::array<RegisterFn, sizeof...(Fns)> family_table(Fns... fns) {
  static_assert(sizeof...(Fns) == static_cast<size_t>(Family::kCount),
                "every op family must be listed in kFamilies, in Family order");
  return {fns...};
}

constexpr auto kFamilies =
    family_table(register_elementwise, register_reduction, register_softmax, register_cast, register_matmul,
                 register_conv, register_pool, register_normalization, register_shape_ops, register_tensor_ops,
                 register_pad_resize, register_control_flow, register_rnn, register_attention, register_loss,
                 register_random, register_training, register_quantization, register_signal, register_geometry,
                 register_sequence, register_string, register_ml, register_image,
                 register_fused);

}  // namespace

const Registry& Registry::global() {
  static const Registry instance = [] {
    Registry r;
    for (auto fn : kFamilies) fn(r);
    return r;
  }();
  return instance;
}

void Registry::add(const OpDef& def) { defs_.push_back(def); }

std::string_view canonical_domain(std::string_view domain) { return domain == "ai.onnx" ? "" : domain; }

const OpDef* Registry::find(std::string_view domain, std::string_view name, int64_t opset) const {
  domain = canonical_domain(domain);
  const OpDef* best = nullptr;
  for (const auto& d : defs_) {
    if (d.name != name || d.domain != domain) continue;
    if (opset < d.since_version) continue;
    if (d.until_version != 0 && opset > d.until_version) continue;
    if (best == nullptr || d.since_version > best->since_version) best = &d;
  }
  return best;
}

bool Registry::knows(std::string_view domain, std::string_view name) const {
  domain = canonical_domain(domain);
  for (const auto& d : defs_) {
    if (d.name == name && d.domain == domain) return true;
  }
  return false;
}

Status check_arity(const OpDef& def, const ir::Node& node) {
  // Trailing omitted optional inputs do not count.
  int n_in = static_cast<int>(node.num_inputs());
  while (n_in > 0 && node.input(static_cast<size_t>(n_in - 1)) == nullptr) --n_in;
  if (n_in < def.min_inputs || (def.max_inputs >= 0 && n_in > def.max_inputs)) {
    return invalid_argument("{} has {} inputs; {} takes {}{}", node.describe(), n_in, def.name,
                            def.min_inputs == def.max_inputs ? "" : fmt::format("{} to ", def.min_inputs),
                            def.max_inputs < 0 ? std::string("any number") : std::to_string(def.max_inputs));
  }
  for (int i = 0; i < def.min_inputs; ++i) {
    if (node.input(static_cast<size_t>(i)) == nullptr) {
      return invalid_argument("{} is missing required input {}", node.describe(), i);
    }
  }
  int n_out = static_cast<int>(node.num_outputs());
  if (n_out < def.min_outputs || (def.max_outputs >= 0 && n_out > def.max_outputs)) {
    return invalid_argument("{} has {} outputs; {} gives {}{}", node.describe(), n_out, def.name,
                            def.min_outputs == def.max_outputs ? "" : fmt::format("{} to ", def.min_outputs),
                            def.max_outputs < 0 ? std::string("any number") : std::to_string(def.max_outputs));
  }
  return Status::ok();
}

Result<const Tensor*> KernelContext::tensor_input(size_t i) const {
  if (!has_input(i)) return invalid_argument("{}: input {} is missing", node_.describe(), i);
  if (!inputs_[i].is_tensor()) return invalid_argument("{}: input {} is not a tensor", node_.describe(), i);
  return &inputs_[i].tensor();
}

Result<BlockedMarks> read_blocked_marks(const ir::Node& node) {
  BlockedMarks m;
  if (!node.has_attr("kiln_blocked")) return m;
  const std::vector<int64_t> v = node.attr_ints("kiln_blocked");
  if (v.size() != 4 || (v[3] != 8 && v[3] != 16)) {
    return invalid_argument("{}: attribute kiln_blocked must be [src, residual, dst, 8 or 16]", node.describe());
  }
  for (size_t i = 0; i < 3; ++i) {
    if (v[i] != 0 && v[i] != 1) return invalid_argument("{}: kiln_blocked flags must be 0 or 1", node.describe());
  }
  m.src = v[0] != 0;
  m.residual = v[1] != 0;
  m.dst = v[2] != 0;
  m.block = v[3];
  return m;
}

int64_t output_storage_bytes(const ir::Node& node, size_t index, DataType dtype, const Dims& dims) {
  auto numel = checked_numel(dims);
  if (!numel.is_ok()) return -1;
  const int64_t bytes = *numel * static_cast<int64_t>(element_size(dtype));
  if (index != 0 || dims.size() != 4) return bytes;
  auto marks = read_blocked_marks(node);  // malformed marks: the kernels refuse them when prepared
  if (!marks.is_ok() || !marks->dst || dims[1] % marks->block == 0) return bytes;
  Dims padded = dims;
  padded[1] = (dims[1] / marks->block + 1) * marks->block;
  auto padded_numel = checked_numel(padded);
  return padded_numel.is_ok() ? *padded_numel * static_cast<int64_t>(element_size(dtype)) : -1;
}

Result<Tensor*> KernelContext::allocate_output(size_t i, DataType dtype, Dims dims) {
  if (i >= outputs_.size()) return internal_error("{}: output {} out of range", node_.describe(), i);
  if (allocator_ != nullptr && checked_numel(dims).is_ok()) {
    Tensor planned = allocator_->allocate(node_, i, dtype, dims);
    if (planned.defined()) {
      outputs_[i] = Datum(std::move(planned));
      return &outputs_[i].tensor();
    }
  }
  const int64_t storage = output_storage_bytes(node_, i, dtype, dims);
  auto numel = checked_numel(dims);
  if (storage >= 0 && numel.is_ok() && dtype != DataType::kString &&
      storage > *numel * static_cast<int64_t>(element_size(dtype))) {
    // Padded blocks: zero-filled storage of the padded size, viewed with the output's dims.
    auto bytes = Tensor::allocate(DataType::kUInt8, Dims{storage});
    if (!bytes.is_ok()) return error(bytes.status());
    auto owner = std::make_shared<Tensor>(std::move(bytes).value());
    void* data = owner->raw_data();
    outputs_[i] = Datum(Tensor::wrap(dtype, std::move(dims), data, std::move(owner)));
    return &outputs_[i].tensor();
  }
  auto t = Tensor::allocate(dtype, std::move(dims));
  if (!t.is_ok()) return error(t.status());
  outputs_[i] = Datum(std::move(t).value());
  return &outputs_[i].tensor();
}

const ir::ValueType& InferContext::input_type(size_t i) const {
  static const ir::ValueType kUnknown;
  const ir::Value* v = node_.input(i);
  return v ? v->type() : kUnknown;
}

const Tensor* InferContext::input_constant(size_t i) const {
  const ir::Value* v = node_.input(i);
  return v && v->is_constant() ? &v->constant() : nullptr;
}

void InferContext::set_output_type(size_t i, ir::ValueType t) {
  if (ir::Value* v = node_.output(i)) v->set_type(std::move(t));
}

}  // namespace kiln::ops
