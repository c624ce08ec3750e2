#include "ops/control_flow_util.h"

#include <cstring>

#include "core/error.h"

namespace kiln::ops {

const char* datum_kind_name(const Datum& d) {
  switch (d.kind()) {
    case Datum::Kind::kNone: return "nothing";
    case Datum::Kind::kTensor: return "tensor";
    case Datum::Kind::kSequence: return "sequence";
    case Datum::Kind::kOptional: return "optional";
  }
  return "?";
}

Result<bool> read_condition(const Datum& d, const ir::Node& node, const std::string& what) {
  if (!d.is_tensor()) {
    return invalid_argument("{}: {} must be a bool tensor, got {}", node.describe(), what, datum_kind_name(d));
  }
  const Tensor& t = d.tensor();
  if (t.dtype() != DataType::kBool) {
    return invalid_argument("{}: {} must be a bool tensor, got {}", node.describe(), what, t.debug_string());
  }
  if (t.numel() != 1) {
    return invalid_argument("{}: {} must hold exactly one element, got {}", node.describe(), what, t.debug_string());
  }
  return t.data<bool>()[0];
}

Result<const ir::Graph*> graph_attr(const ir::Node& node, const std::string& name) {
  const ir::Graph* g = node.attr_graph(name);
  if (g == nullptr) return invalid_argument("{}: graph attribute '{}' is missing", node.describe(), name);
  return g;
}

Result<Tensor> slice_along_axis(const Tensor& t, int64_t axis, int64_t index) {
  Dims out_dims;
  int64_t outer = 1;
  int64_t inner = 1;
  for (int64_t i = 0; i < t.rank(); ++i) {
    if (i < axis) outer *= t.dim(i);
    if (i > axis) inner *= t.dim(i);
    if (i != axis) out_dims.push_back(t.dim(i));
  }
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(t.dtype(), out_dims));
  int64_t len = t.dim(axis);
  for (int64_t o = 0; o < outer; ++o) copy_elements(t, (o * len + index) * inner, out, o * inner, inner);
  return out;
}

Result<Tensor> stack_along_axis(const std::vector<Tensor>& items, int64_t axis, const std::vector<int64_t>& positions) {
  const Tensor& first = items.front();
  Dims out_dims = first.dims();
  auto n = static_cast<int64_t>(items.size());
  out_dims.insert(out_dims.begin() + axis, n);
  int64_t outer = 1;
  int64_t inner = 1;
  for (int64_t i = 0; i < first.rank(); ++i) (i < axis ? outer : inner) *= first.dim(i);
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(first.dtype(), out_dims));
  for (size_t k = 0; k < items.size(); ++k) {
    int64_t pos = positions[k];
    for (int64_t o = 0; o < outer; ++o) copy_elements(items[k], o * inner, out, (o * n + pos) * inner, inner);
  }
  return out;
}

bool static_dims(const ir::ValueType& type, Dims& dims) {
  if (!type.is_tensor()) return false;
  auto known = type.shape.concrete();
  if (!known) return false;
  dims = *known;
  return true;
}

DataType static_dtype(const ir::ValueType& type) {
  return type.is_tensor() && type.dtype != DataType::kUndefined ? type.dtype : DataType::kFloat32;
}

Status check_scan_item(const Datum& d, const Tensor* first, const ir::Node& node, const std::string& what) {
  if (!d.is_tensor()) {
    return invalid_argument("{}: {} must be a tensor, got {}", node.describe(), what, datum_kind_name(d));
  }
  if (first != nullptr && (first->dtype() != d.tensor().dtype() || first->dims() != d.tensor().dims())) {
    return invalid_argument("{}: {} is {} in this iteration but {} in the first; scan outputs must keep one shape",
                            node.describe(), what, d.tensor().debug_string(), first->debug_string());
  }
  return Status::ok();
}

ir::ValueType merge_value_types(const ir::ValueType& a, const ir::ValueType& b) {
  if (a == b) return a;
  if (!a.is_tensor() || !b.is_tensor() || a.dtype != b.dtype) return {};
  if (!a.shape.rank_known() || !b.shape.rank_known() || a.shape.rank() != b.shape.rank()) {
    return ir::ValueType::tensor(a.dtype);
  }
  std::vector<Dim> dims;
  for (int64_t i = 0; i < a.shape.rank(); ++i) dims.push_back(a.shape[i] == b.shape[i] ? a.shape[i] : Dim());
  return ir::ValueType::tensor(a.dtype, Shape(std::move(dims)));
}

ir::ValueType scan_output_type(const ir::ValueType& item, int64_t axis, int64_t length) {
  if (!item.is_tensor()) return {};
  if (!item.shape.rank_known()) return ir::ValueType::tensor(item.dtype);
  int64_t rank = item.shape.rank() + 1;
  if (axis < -rank || axis >= rank) return ir::ValueType::tensor(item.dtype);
  if (axis < 0) axis += rank;
  std::vector<Dim> dims = item.shape.dims();
  dims.insert(dims.begin() + axis, length >= 0 ? Dim(length) : Dim());
  return ir::ValueType::tensor(item.dtype, Shape(std::move(dims)));
}

}  // namespace kiln::ops
