// Builds one-node graphs and runs them through the reference interpreter.
//
//   OpTest t("Gemm", 13);
//   t.input("A", tensor_a).input("B", tensor_b).attr(ir::Attribute::make_int("transB", 1));
//   auto out = t.run();            // Result<std::vector<Tensor>>
//   EXPECT_TRUE(out.is_ok()) << out.status().to_string();
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/datum.h"
#include "exec/program.h"
#include "ir/graph.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::test {

// A tensor of `dtype` holding `values` converted element by element.
template <class T>
Tensor make_tensor(DataType dtype, Dims dims, const std::vector<T>& values) {
  Tensor f = Tensor::empty(DataType::kFloat64, dims);
  EXPECT_EQ(static_cast<int64_t>(values.size()), f.numel()) << "make_tensor: wrong number of values";
  for (size_t i = 0; i < values.size() && static_cast<int64_t>(i) < f.numel(); ++i) {
    f.data<double>()[i] = static_cast<double>(values[i]);
  }
  auto r = ops::cast_tensor(f, dtype);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? std::move(r).value() : Tensor();
}

inline Tensor floats(Dims dims, const std::vector<float>& v) { return make_tensor(DataType::kFloat32, std::move(dims), v); }
inline Tensor int64s(Dims dims, const std::vector<int64_t>& v) { return make_tensor(DataType::kInt64, std::move(dims), v); }

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
inline Tensor doubles(Dims dims, const std::vector<double>& v) {
  return make_tensor(DataType::kFloat64, std::move(dims), v);
}
inline Tensor int32s(Dims dims, const std::vector<int32_t>& v) {
  return make_tensor(DataType::kInt32, std::move(dims), v);
}
inline ir::ValueType tensor_type(DataType dtype, std::vector<Dim> dims) {
  return ir::ValueType::tensor(dtype, Shape(std::move(dims)));
}
inline ir::ValueType tensor_type(DataType dtype) { return ir::ValueType::tensor(dtype); }
inline Shape sym_shape(std::vector<Dim> dims) { return Shape(std::move(dims)); }

// EXPECT that `r` failed and its message contains `needle`.
template <class T>
void expect_error(const Result<T>& r, const std::string& needle) {
  ASSERT_FALSE(r.is_ok()) << "expected an error containing '" << needle << "'";
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().to_string();
}

// Element values as doubles (for comparisons across dtypes).
inline std::vector<double> values_of(const Tensor& t) {
  auto r = ops::to_float64(t);
  if (!r.is_ok()) return {};
  const Tensor& d = r.value();
  return std::vector<double>(d.data<double>(), d.data<double>() + d.numel());
}

// EXPECT that `actual` has `dims` and values within atol + rtol * |expected|.
inline void expect_near(const Tensor& actual, const Dims& dims, const std::vector<double>& expected,
                        double atol = 1e-5, double rtol = 1e-5) {
  EXPECT_EQ(dims_to_string(actual.dims()), dims_to_string(dims));
  std::vector<double> got = values_of(actual);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << "element " << i;
    } else {
      EXPECT_NEAR(got[i], expected[i], atol + rtol * std::abs(expected[i])) << "element " << i;
    }
  }
}

class OpTest {
 public:
  OpTest(std::string op_type, int64_t opset, std::string domain = "")
      : graph_(std::make_shared<ir::Graph>("test")), op_type_(std::move(op_type)), domain_(std::move(domain)),
        opset_(opset) {
    graph_->set_opset_imports({{domain_, opset_}});
  }

  // A runtime input (a graph input fed at run time).
  OpTest& input(const std::string& name, Tensor t) {
    ir::Value* v = graph_->add_value(name, ir::ValueType::tensor(t.dtype(), Shape::of(t.dims()))).value();
    graph_->add_input(v);
    inputs_.push_back(v);
    feeds_.emplace_back(std::move(t));
    return *this;
  }
  // An input known at build time (an initializer).
  OpTest& constant(const std::string& name, Tensor t) {
    inputs_.push_back(graph_->add_constant(name, std::move(t)).value());
    return *this;
  }
  // An omitted optional input.
  OpTest& none() {
    inputs_.push_back(nullptr);
    return *this;
  }
  OpTest& attr(ir::Attribute a) {
    attrs_.push_back(std::move(a));
    return *this;
  }
  OpTest& outputs(int n) {
    num_outputs_ = n;
    return *this;
  }

  ir::Graph& graph() { return *graph_; }

  // Builds the node (once) and runs it; returns every output.
  Result<std::vector<Tensor>> run() {
    if (node_ == nullptr) {
      std::vector<ir::Value*> outs;
      for (int i = 0; i < num_outputs_; ++i) {
        outs.push_back(graph_->add_value("out" + std::to_string(i)).value());
        graph_->add_output(outs.back());
      }
      node_ = graph_->add_node(op_type_, inputs_, outs, op_type_ + "_0", domain_);
      node_->set_opset(opset_);
      for (auto& a : attrs_) node_->set_attr(a);
    }
    KILN_ASSIGN_OR_RETURN(auto program, exec::Program::compile(*graph_));
    std::vector<Datum> in(feeds_.begin(), feeds_.end());
    KILN_ASSIGN_OR_RETURN(std::vector<Datum> out, exec::execute(*program, in, nullptr));
    std::vector<Tensor> tensors;
    for (auto& d : out) tensors.push_back(d.is_tensor() ? d.tensor() : Tensor());
    return tensors;
  }

 private:
  std::shared_ptr<ir::Graph> graph_;
  std::string op_type_;
  std::string domain_;
  int64_t opset_;
  std::vector<ir::Value*> inputs_;
  std::vector<Tensor> feeds_;
  std::vector<ir::Attribute> attrs_;
  int num_outputs_ = 1;
  ir::Node* node_ = nullptr;
};

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
  InferTest& tensor(DataType dtype, Shape shape) { return input(ir::ValueType::tensor(dtype, std::move(shape))); }
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
  // Output 0's inferred type as "float[N,3]", or "error: <message>".
  std::string str() {
    auto r = run();
    return r.is_ok() ? (*r)[0].to_string() : "error: " + r.status().message();
  }

 private:
  ir::Graph graph_{"infer"};
  std::string op_type_;
  int64_t opset_;
  std::vector<ir::Value*> inputs_;
  std::vector<ir::Attribute> attrs_;
  int num_outputs_ = 1;
};

}  // namespace kiln::test
