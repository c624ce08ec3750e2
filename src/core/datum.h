// Datum: one runtime value flowing along a graph edge.
//
// Most edges carry a Tensor. ONNX also has sequences of tensors and optionals
// (an optional is either empty or holds a tensor or a sequence). An absent
// optional input of a node is a Datum of kind kNone.
#pragma once

#include <memory>
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

class Datum {
 public:
  enum class Kind { kNone, kTensor, kSequence, kOptional };

  Datum() = default;  // kNone
  Datum(Tensor t) : kind_(Kind::kTensor), tensor_(std::move(t)) {}  // NOLINT(google-explicit-constructor)
  static Datum sequence(std::vector<Tensor> items, DataType elem_type) {
    Datum d;
    d.kind_ = Kind::kSequence;
    d.sequence_ = std::make_shared<std::vector<Tensor>>(std::move(items));
    d.elem_type_ = elem_type;
    return d;
  }
  // An optional: empty when `inner` is nullptr.
  static Datum optional(std::shared_ptr<const Datum> inner) {
    Datum d;
    d.kind_ = Kind::kOptional;
    d.inner_ = std::move(inner);
    return d;
  }

  Kind kind() const { return kind_; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_tensor() const { return kind_ == Kind::kTensor; }
  bool is_sequence() const { return kind_ == Kind::kSequence; }
  bool is_optional() const { return kind_ == Kind::kOptional; }

  const Tensor& tensor() const { return tensor_; }
  Tensor& tensor() { return tensor_; }
  const std::vector<Tensor>& items() const { return *sequence_; }
  DataType elem_type() const { return elem_type_; }  // of a sequence
  const Datum* optional_value() const { return inner_.get(); }  // nullptr when empty

 private:
  Kind kind_ = Kind::kNone;
  Tensor tensor_;
  std::shared_ptr<const std::vector<Tensor>> sequence_;
  DataType elem_type_ = DataType::kUndefined;
  std::shared_ptr<const Datum> inner_;
};

}  // namespace kiln
