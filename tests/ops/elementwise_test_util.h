// Helpers for the elementwise, reduction, softmax and cast op tests: string
// tensors, single-output runs and shape inference of one-node graphs.
#pragma once

#include <memory>
#include <optional>
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
inline Tensor bools(Dims dims, const std::vector<int>& v) { return make_tensor(DataType::kBool, std::move(dims), v); }
inline Tensor doubles(Dims dims, const std::vector<double>& v) { return make_tensor(DataType::kFloat64, std::move(dims), v); }
inline Tensor int32s(Dims dims, const std::vector<int32_t>& v) { return make_tensor(DataType::kInt32, std::move(dims), v); }

// Runs the op and returns output 0; fails the test (and returns an empty
// tensor) if it errs.
inline Tensor run1(OpTest& t) {
  auto out = t.run();
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  if (!out.is_ok() || out->empty()) return Tensor();
  return (*out)[0];
}

// Runs the op expecting an error whose message contains `needle`.
inline void expect_error(OpTest& t, const std::string& needle) {
  auto out = t.run();
  ASSERT_FALSE(out.is_ok()) << "expected an error containing '" << needle << "'";
  EXPECT_NE(out.status().message().find(needle), std::string::npos) << out.status().to_string();
}

// Exact comparison of an output's dtype, dims and values.
inline void expect_values(const Tensor& t, DataType dtype, const Dims& dims, const std::vector<double>& v) {
  EXPECT_EQ(data_type_name(t.dtype()), data_type_name(dtype));
  EXPECT_EQ(dims_to_string(t.dims()), dims_to_string(dims));
  std::vector<double> got = values_of(t);
  ASSERT_EQ(got.size(), v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << "element " << i;
    } else {
      EXPECT_EQ(got[i], v[i]) << "element " << i;
    }
  }
}

// Shape inference of one node whose inputs have the given types (a constant
// where `constants[i]` is set). Returns output 0's type, or the error.
class InferTest {
 public:
  InferTest(std::string op, int64_t opset) : op_(std::move(op)), opset_(opset) {
    graph_.set_opset_imports({{"", opset}});
  }
  InferTest& input(ir::ValueType type) {
    ir::Value* v = graph_.add_value("in" + std::to_string(inputs_.size()), std::move(type)).value();
    graph_.add_input(v);
    inputs_.push_back(v);
    return *this;
  }
  InferTest& tensor(DataType dtype, Shape shape) { return input(ir::ValueType::tensor(dtype, std::move(shape))); }
  InferTest& constant(Tensor t) {
    ir::Value* v = graph_.add_constant("c" + std::to_string(inputs_.size()), t).value();
    v->set_type(ir::ValueType::tensor(t.dtype(), Shape::of(t.dims())));
    inputs_.push_back(v);
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
  Result<ir::ValueType> run() {
    ir::Value* out = graph_.add_value("out").value();
    graph_.add_output(out);
    ir::Node* node = graph_.add_node(op_, inputs_, {out}, op_ + "_0");
    node->set_opset(opset_);
    for (auto& a : attrs_) node->set_attr(a);
    const ops::OpDef* def = ops::Registry::global().find("", op_, opset_);
    if (def == nullptr || def->infer == nullptr) return internal_error("no inference for {}", op_);
    ops::InferContext ctx(*node);
    KILN_RETURN_IF_ERROR(def->infer(ctx));
    return out->type();
  }
  // The inferred type as "float[N,3]" (or the error's message).
  std::string str() {
    auto r = run();
    return r.is_ok() ? r->to_string() : "error: " + r.status().message();
  }

 private:
  ir::Graph graph_{"infer"};
  std::string op_;
  int64_t opset_;
  std::vector<ir::Value*> inputs_;
  std::vector<ir::Attribute> attrs_;
};

inline Shape sym_shape(std::vector<Dim> dims) { return Shape(std::move(dims)); }

}  // namespace kiln::test
