#include "ir/value_type.h"

#include <fmt/format.h>

namespace kiln::ir {

bool ValueType::operator==(const ValueType& o) const {
  if (kind != o.kind || dtype != o.dtype || !(shape == o.shape)) return false;
  if ((elem == nullptr) != (o.elem == nullptr)) return false;
  return elem == nullptr || *elem == *o.elem;
}

std::string ValueType::to_string() const {
  auto inner = [&] { return elem ? elem->to_string() : std::string("?"); };
  switch (kind) {
    case Kind::kUnknown: return "?";
    case Kind::kTensor: return fmt::format("{}{}", data_type_name(dtype), shape.to_string());
    case Kind::kSparseTensor: return fmt::format("sparse({}{})", data_type_name(dtype), shape.to_string());
    case Kind::kSequence: return fmt::format("seq({})", inner());
    case Kind::kOptional: return fmt::format("optional({})", inner());
    case Kind::kMap: return fmt::format("map({},{})", data_type_name(dtype), inner());
  }
  return "?";
}

std::string ValueType::ort_type_name() const {
  auto inner = [&] { return elem ? elem->ort_type_name() : std::string("unknown"); };
  switch (kind) {
    case Kind::kTensor: return fmt::format("tensor({})", data_type_name(dtype));
    case Kind::kSparseTensor: return fmt::format("sparse_tensor({})", data_type_name(dtype));
    case Kind::kSequence: return fmt::format("seq({})", inner());
    case Kind::kOptional: return fmt::format("optional({})", inner());
    case Kind::kMap: return fmt::format("map({},{})", data_type_name(dtype), inner());
    case Kind::kUnknown: break;
  }
  return "unknown";
}

}  // namespace kiln::ir
