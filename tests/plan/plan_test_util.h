// Small models for the plan tests, built directly in the IR.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/tensor.h"
#include "ops/shape_inference.h"
#include "runtime/engine.h"

namespace kiln::plan::test {

inline Tensor random_tensor(Dims dims, uint32_t seed) {
  Tensor t = Tensor::empty(DataType::kFloat32, std::move(dims));
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : t.span<float>()) v = dist(rng);
  return t;
}

inline ir::Value* value(ir::Graph& g, const std::string& name) { return g.add_value(name).value(); }

// y = Relu(Conv(x, w, b)) + x; z = Reshape(Sigmoid(y) * y, [N, -1]); x is [N, 8, 16, 16].
inline ir::Model conv_model() {
  auto g = std::make_shared<ir::Graph>("conv_block");
  g->set_opset_imports({{"", 17}});
  ir::Value* x = g->add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("N"), 8, 16, 16})))
                     .value();
  g->add_input(x);
  ir::Value* w = g->add_constant("w", random_tensor({8, 8, 3, 3}, 1)).value();
  ir::Value* b = g->add_constant("b", random_tensor({8}, 2)).value();
  Tensor shape = Tensor::empty(DataType::kInt64, {2});
  shape.data<int64_t>()[0] = 0;
  shape.data<int64_t>()[1] = -1;
  ir::Value* s = g->add_constant("shape", shape).value();
  ir::Value *c = value(*g, "c"), *r = value(*g, "r"), *y = value(*g, "y"), *sg = value(*g, "sg"),
            *m = value(*g, "m"), *z = value(*g, "z");
  ir::Node* conv = g->add_node("Conv", {x, w, b}, {c}, "conv");
  conv->set_attr(ir::Attribute::make_ints("pads", {1, 1, 1, 1}));
  g->add_node("Relu", {c}, {r}, "relu");
  g->add_node("Add", {r, x}, {y}, "add");
  g->add_node("Sigmoid", {y}, {sg}, "sigmoid");
  g->add_node("Mul", {sg, y}, {m}, "mul");
  g->add_node("Reshape", {m, s}, {z}, "reshape");
  for (const auto& n : g->nodes()) n->set_opset(17);
  g->add_output(y);
  g->add_output(z);
  ir::Model model;
  model.graph = g;
  return model;
}

// A chain of `n` Relus on x: float[4, 256].
inline ir::Model relu_chain(int n) {
  auto g = std::make_shared<ir::Graph>("chain");
  g->set_opset_imports({{"", 17}});
  ir::Value* cur = g->add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape::of({4, 256}))).value();
  g->add_input(cur);
  for (int i = 0; i < n; ++i) {
    ir::Value* next = value(*g, "t" + std::to_string(i));
    g->add_node("Relu", {cur}, {next}, "relu" + std::to_string(i))->set_opset(17);
    cur = next;
  }
  ir::Value* y = value(*g, "y");
  g->add_node("Neg", {cur}, {y}, "neg")->set_opset(17);
  g->add_output(y);
  EXPECT_TRUE(ops::infer_shapes(*g).is_ok());
  ir::Model model;
  model.graph = g;
  return model;
}

// `tol` is absolute up to magnitude 1 and relative above: the tuner may pick
// kernels that sum in another order than the reference (about 20 ulps here).
inline void expect_near(const Tensor& a, const Tensor& b, float tol = 1e-5f) {
  ASSERT_EQ(a.dims(), b.dims());
  ASSERT_EQ(a.dtype(), b.dtype());
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float want = b.data<float>()[i];
    ASSERT_NEAR(a.data<float>()[i], want, tol * std::max(1.0f, std::fabs(want))) << "element " << i;
  }
}

// Runs `model` on the reference interpreter.
inline runtime::NamedTensors reference_run(ir::Model model, const runtime::NamedTensors& feeds) {
  auto engine = runtime::Engine::create(std::move(model), {.threads = 1});
  EXPECT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto out = (*engine)->run(feeds);
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  return out.is_ok() ? *out : runtime::NamedTensors{};
}

}  // namespace kiln::plan::test
