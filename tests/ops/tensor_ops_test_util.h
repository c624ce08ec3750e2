// Helpers for the shape/tensor op tests: string and bool tensors, error
// expectations, and a one-node harness for static shape inference.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "ops/op_test_util.h"
#include "ops/registry.h"

namespace kiln::test {

inline Tensor strings(Dims dims, const std::vector<std::string>& v) {
  Tensor t = Tensor::empty(DataType::kString, std::move(dims));
  EXPECT_EQ(static_cast<int64_t>(v.size()), t.numel());
  for (size_t i = 0; i < v.size() && static_cast<int64_t>(i) < t.numel(); ++i) t.data<std::string>()[i] = v[i];
  return t;
}

inline std::vector<std::string> string_values(const Tensor& t) {
  if (t.dtype() != DataType::kString) return {};
  return std::vector<std::string>(t.data<std::string>(), t.data<std::string>() + t.numel());
}

inline Tensor bools(Dims dims, const std::vector<int>& v) { return make_tensor(DataType::kBool, std::move(dims), v); }
inline Tensor int32s(Dims dims, const std::vector<int>& v) { return make_tensor(DataType::kInt32, std::move(dims), v); }

// EXPECT that `r` failed and its message contains `needle`.
template <class T>
void expect_error(const Result<T>& r, const std::string& needle) {
  ASSERT_FALSE(r.is_ok()) << "expected an error containing '" << needle << "'";
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().to_string();
}

// Builds one node whose inputs have the given static types (or constant
// values) and runs the op's shape inference on it.
class InferTest {
 public:
  InferTest(std::string op_type, int64_t opset) : op_type_(std::move(op_type)), opset_(opset) {
    graph_.set_opset_imports({{"", opset_}});
  }
  InferTest& input(ir::ValueType type) {
    inputs_.push_back(graph_.add_value("in" + std::to_string(inputs_.size()), std::move(type)).value());
    return *this;
  }
  InferTest& constant(Tensor t) {
    inputs_.push_back(graph_.add_constant("in" + std::to_string(inputs_.size()), std::move(t)).value());
    return *this;
  }
  InferTest& none() {
    inputs_.push_back(nullptr);
    return *this;
  }
  InferTest& attr(ir::Attribute a) {
    attrs_.push_back(std::move(a));
    return *this;
  }
  InferTest& outputs(int n) {
    num_outputs_ = n;
    return *this;
  }
  // The inferred output types, or the inference error.
  Result<std::vector<ir::ValueType>> run() {
    std::vector<ir::Value*> outs;
    for (int i = 0; i < num_outputs_; ++i) outs.push_back(graph_.add_value("out" + std::to_string(i)).value());
    ir::Node* node = graph_.add_node(op_type_, inputs_, outs, op_type_ + "_0");
    node->set_opset(opset_);
    for (auto& a : attrs_) node->set_attr(a);
    const ops::OpDef* def = ops::Registry::global().find("", op_type_, opset_);
    if (def == nullptr || def->infer == nullptr) return not_found("no shape inference for {}", op_type_);
    ops::InferContext ctx(*node);
    KILN_RETURN_IF_ERROR(def->infer(ctx));
    std::vector<ir::ValueType> types;
    for (ir::Value* v : outs) types.push_back(v->type());
    return types;
  }

 private:
  ir::Graph graph_{"infer"};
  std::string op_type_;
  int64_t opset_;
  std::vector<ir::Value*> inputs_;
  std::vector<ir::Attribute> attrs_;
  int num_outputs_ = 1;
};

inline ir::ValueType tensor_type(DataType dt, std::vector<Dim> dims) { return ir::ValueType::tensor(dt, Shape(std::move(dims))); }

}  // namespace kiln::test
