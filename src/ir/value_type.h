// ValueType: the static type of a graph edge: a tensor (element type and a
// possibly symbolic Shape), a sequence or optional of another type, or a map.
#pragma once

#include <memory>
#include <string>

#include "core/shape.h"
#include "kiln/data_type.h"

namespace kiln::ir {

struct ValueType {
  enum class Kind { kUnknown, kTensor, kSequence, kOptional, kMap, kSparseTensor };

  Kind kind = Kind::kUnknown;
  DataType dtype = DataType::kUndefined;  // tensor element type; key type of a map
  Shape shape;                            // tensors only
  std::shared_ptr<const ValueType> elem;  // element of a sequence/optional, value of a map

  static ValueType tensor(DataType dtype, Shape shape = Shape()) {
    ValueType t;
    t.kind = Kind::kTensor;
    t.dtype = dtype;
    t.shape = std::move(shape);
    return t;
  }
  static ValueType wrapping(Kind kind, ValueType inner) {
    ValueType t;
    t.kind = kind;
    t.elem = std::make_shared<const ValueType>(std::move(inner));
    return t;
  }

  bool is_tensor() const { return kind == Kind::kTensor; }
  bool operator==(const ValueType& o) const;
  std::string to_string() const;  // "float[N,3,224,224]", "seq(float[*])", "optional(int64[])"
  // ONNX Runtime's spelling, which its users and tools expect: "tensor(float)",
  // "seq(tensor(int64))", "optional(tensor(float))", "map(string,tensor(float))".
  std::string ort_type_name() const;
};

}  // namespace kiln::ir
