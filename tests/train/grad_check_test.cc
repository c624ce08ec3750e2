// Every gradient rule's backward against central finite differences in fp64.
//
// Each case builds a one-node graph whose float inputs are graph inputs,
// runs the tape in float64, seeds the output with fixed random weights r
// (loss = sum(r * y)) and compares each input's gradient with
// (loss(x + h) - loss(x - h)) / 2h element by element.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "train/loss.h"
#include "train/tape.h"

namespace kiln::train {
namespace {

struct Case {
  std::string op;
  std::vector<Dims> inputs;             // float inputs (graph inputs, differentiated)
  std::vector<ir::Attribute> attrs;
  std::vector<Tensor> constants = {};   // trailing non-float inputs (shapes)
  bool training = true;
  double lo = -1.0, hi = 1.0;           // input value range
  std::vector<int> positive = {};       // inputs drawn in [0.5, 1.5] (variances, divisors)
  int opset = 17;
};

Tensor random_tensor(const Dims& dims, std::mt19937& rng, double lo, double hi) {
  Tensor t = Tensor::empty(DataType::kFloat64, dims);
  std::uniform_real_distribution<double> u(lo, hi);
  for (double& v : t.span<double>()) v = u(rng);
  return t;
}

double weighted_sum(const Tensor& y, const Tensor& r) {
  double s = 0;
  for (int64_t i = 0; i < y.numel(); ++i) s += y.data<double>()[i] * r.data<double>()[i];
  return s;
}

void check(const Case& c, uint32_t seed = 7) {
  SCOPED_TRACE(c.op);
  ir::Graph g("check");
  g.set_opset_imports({{"", c.opset}});
  std::vector<ir::Value*> ins;
  std::vector<const ir::Value*> trainable;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    ir::Value* v = g.add_value("x" + std::to_string(i)).value();
    g.add_input(v);
    ins.push_back(v);
    trainable.push_back(v);
  }
  for (size_t i = 0; i < c.constants.size(); ++i) ins.push_back(g.add_constant("k" + std::to_string(i), c.constants[i]).value());
  ir::Value* y = g.add_value("y").value();
  ir::Node* n = g.add_node(c.op, ins, {y}, "n");
  n->set_opset(c.opset);
  for (const auto& a : c.attrs) n->set_attr(a);
  g.add_output(y);

  std::mt19937 rng(seed);
  std::vector<Tensor> xs;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    bool pos = std::find(c.positive.begin(), c.positive.end(), static_cast<int>(i)) != c.positive.end();
    xs.push_back(random_tensor(c.inputs[i], rng, pos ? 0.5 : c.lo, pos ? 1.5 : c.hi));
  }
  Tape tape(g);
  tape.set_trainable(trainable);
  TapeOptions opt;
  opt.compute = DataType::kFloat64;
  opt.training = c.training;
  opt.seed = 3;
  opt.update_running_stats = false;
  auto out = tape.forward(xs, opt);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  Tensor r = random_tensor(out.value()[0].dims(), rng, -1.0, 1.0);
  Tensor seeds[] = {r};
  ASSERT_TRUE(tape.backward(seeds).is_ok());
  std::vector<Tensor> analytic;
  for (const ir::Value* v : trainable) analytic.push_back(tape.grad(v));

  const double h = 1e-6;
  const GradRule* rule = find_grad_rule(c.op);
  ASSERT_NE(rule, nullptr);
  for (size_t i = 0; i < xs.size(); ++i) {
    if (rule->no_grad_inputs & (1u << i)) {  // running statistics: state, not differentiated
      EXPECT_FALSE(analytic[i].defined()) << "input " << i;
      continue;
    }
    ASSERT_TRUE(analytic[i].defined()) << "no gradient for input " << i;
    for (int64_t e = 0; e < xs[i].numel(); ++e) {
      double& xe = xs[i].data<double>()[e];
      double saved = xe;
      xe = saved + h;
      double up = weighted_sum(tape.forward(xs, opt).value()[0], r);
      xe = saved - h;
      double down = weighted_sum(tape.forward(xs, opt).value()[0], r);
      xe = saved;
      double numeric = (up - down) / (2 * h);
      double got = analytic[i].data<double>()[e];
      EXPECT_NEAR(got, numeric, 1e-6 * std::max(1.0, std::abs(numeric)))
          << c.op << " input " << i << " element " << e;
    }
  }
}

Tensor int64s(std::vector<int64_t> v) {
  Tensor t = Tensor::empty(DataType::kInt64, {static_cast<int64_t>(v.size())});
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

using ir::Attribute;

TEST(GradCheck, Gemm) {
  check({"Gemm", {{3, 4}, {4, 5}, {5}}, {}});
  check({"Gemm", {{4, 3}, {5, 4}, {3, 5}},
         {Attribute::make_int("transA", 1), Attribute::make_int("transB", 1), Attribute::make_float("alpha", 0.5f),
          Attribute::make_float("beta", 2.0f)}});
}

TEST(GradCheck, MatMul) {
  check({"MatMul", {{3, 4}, {4, 2}}, {}});
  check({"MatMul", {{2, 2, 3, 4}, {2, 1, 4, 3}}, {}});  // batch broadcast
  check({"MatMul", {{2, 3, 4}, {4}}, {}});              // 1-D operand
}

TEST(GradCheck, Binary) {
  for (const char* op : {"Add", "Sub", "Mul"}) {
    check({op, {{2, 3, 4}, {3, 1}}, {}});
    check({op, {{4}, {2, 3, 4}}, {}});
  }
  check({"Div", {{2, 3}, {2, 3}}, {}, {}, true, -1.0, 1.0, {1}});
}

TEST(GradCheck, Activations) {
  for (const char* op : {"Relu", "Sigmoid", "Tanh", "Neg", "Exp", "Identity"}) check({op, {{3, 5}}, {}});
  check({"LeakyRelu", {{3, 5}}, {Attribute::make_float("alpha", 0.2f)}});
  check({"Gelu", {{3, 5}}, {}, {}, true, -3.0, 3.0, {}, 20});
  check({"Gelu", {{3, 5}}, {Attribute::make_string("approximate", "tanh")}, {}, true, -3.0, 3.0, {}, 20});
}

TEST(GradCheck, Dropout) {
  check({"Dropout", {{4, 6}}, {}, {Tensor::scalar(DataType::kFloat64, 0.3)}});
  check({"Dropout", {{4, 6}}, {}, {Tensor::scalar(DataType::kFloat64, 0.3)}, false});
}

TEST(GradCheck, Conv) {
  check({"Conv", {{2, 3, 5, 5}, {4, 3, 3, 3}, {4}}, {Attribute::make_ints("pads", {1, 1, 1, 1})}});
  check({"Conv", {{1, 4, 6, 5}, {4, 2, 2, 3}},
         {Attribute::make_int("group", 2), Attribute::make_ints("strides", {2, 1}),
          Attribute::make_ints("dilations", {1, 2}), Attribute::make_ints("pads", {0, 1, 1, 0})}});
  check({"Conv", {{1, 2, 5, 5}, {3, 2, 3, 3}},
         {Attribute::make_string("auto_pad", "SAME_UPPER"), Attribute::make_ints("strides", {2, 2})}});
}

TEST(GradCheck, Pooling) {
  check({"MaxPool", {{2, 2, 5, 5}},
         {Attribute::make_ints("kernel_shape", {2, 2}), Attribute::make_ints("strides", {2, 2}),
          Attribute::make_ints("pads", {0, 0, 1, 1})}});
  check({"AveragePool", {{2, 2, 5, 5}},
         {Attribute::make_ints("kernel_shape", {3, 3}), Attribute::make_ints("pads", {1, 1, 1, 1})}});
  check({"AveragePool", {{1, 2, 4, 4}},
         {Attribute::make_ints("kernel_shape", {2, 2}), Attribute::make_ints("pads", {1, 1, 1, 1}),
          Attribute::make_int("count_include_pad", 1)}});
  check({"GlobalAveragePool", {{2, 3, 4, 3}}, {}});
}

TEST(GradCheck, BatchNormalization) {
  // Training mode: batch statistics (mean, var inputs are only the running state).
  check({"BatchNormalization", {{3, 2, 2, 3}, {2}, {2}, {2}, {2}}, {}, {}, true, -1.0, 1.0, {4}});
  Case inference{"BatchNormalization", {{3, 2, 2, 3}, {2}, {2}, {2}, {2}}, {}, {}, false, -1.0, 1.0, {4}};
  check(inference);
}

TEST(GradCheck, LayerNormalization) {
  check({"LayerNormalization", {{2, 3, 4}, {4}, {4}}, {}});
  check({"LayerNormalization", {{2, 3, 4}, {3, 4}, {3, 4}}, {Attribute::make_int("axis", 1)}});
}

TEST(GradCheck, Softmax) {
  check({"Softmax", {{3, 5}}, {}});
  check({"Softmax", {{2, 4, 3}}, {Attribute::make_int("axis", 1)}});
  check({"LogSoftmax", {{3, 5}}, {}});
  check({"LogSoftmax", {{2, 3, 2}}, {Attribute::make_int("axis", 1)}, {}, true, -1.0, 1.0, {}, 11});
}

TEST(GradCheck, ShapeOps) {
  check({"Flatten", {{2, 3, 2}}, {Attribute::make_int("axis", 2)}});
  check({"Reshape", {{2, 3, 4}}, {}, {int64s({0, -1, 2})}});
  check({"Transpose", {{2, 3, 4}}, {Attribute::make_ints("perm", {2, 0, 1})}});
}

// The losses' gradients (computed in closed form) against finite differences.
TEST(GradCheck, Losses) {
  std::mt19937 rng(5);
  Tensor logits = random_tensor({4, 5}, rng, -2.0, 2.0);
  Tensor labels = Tensor::empty(DataType::kInt64, {4});
  for (int64_t i = 0; i < 4; ++i) labels.data<int64_t>()[i] = (i * 3) % 5;
  Tensor target = random_tensor({4, 5}, rng, -1.0, 1.0);
  const double h = 1e-6;
  for (int which = 0; which < 2; ++which) {
    auto loss = [&] {
      return which == 0 ? softmax_cross_entropy(logits, labels).value().value : mse_loss(logits, target).value().value;
    };
    Tensor grad = which == 0 ? softmax_cross_entropy(logits, labels).value().grad : mse_loss(logits, target).value().grad;
    for (int64_t e = 0; e < logits.numel(); ++e) {
      double& v = logits.data<double>()[e];
      double saved = v;
      v = saved + h;
      double up = loss();
      v = saved - h;
      double down = loss();
      v = saved;
      EXPECT_NEAR(grad.data<double>()[e], (up - down) / (2 * h), 1e-7) << (which == 0 ? "cross-entropy" : "mse") << " " << e;
    }
  }
}

TEST(Tape, MalformedNodesAreErrors) {
  // A Gemm without its B input, and a Conv fed integer weights: errors, not crashes.
  ir::Graph g("bad");
  g.set_opset_imports({{"", 17}});
  ir::Value* x = g.add_value("x").value();
  g.add_input(x);
  ir::Value* y = g.add_value("y").value();
  g.add_node("Gemm", {x}, {y}, "gemm")->set_opset(17);
  g.add_output(y);
  Tape tape(g);
  Tensor in[] = {Tensor::empty(DataType::kFloat32, {2, 2})};
  auto r = tape.forward(in, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("gemm"), std::string::npos) << r.status().to_string();

  ir::Graph c("bad_conv");
  c.set_opset_imports({{"", 17}});
  ir::Value* cx = c.add_value("x").value();
  c.add_input(cx);
  ir::Value* w = c.add_constant("w", Tensor::empty(DataType::kUInt8, {1, 1, 1, 1})).value();
  ir::Value* cy = c.add_value("y").value();
  c.add_node("Conv", {cx, w}, {cy}, "conv")->set_opset(17);
  c.add_output(cy);
  Tape conv_tape(c);
  Tensor img[] = {Tensor::empty(DataType::kFloat32, {1, 1, 2, 2})};
  EXPECT_FALSE(conv_tape.forward(img, {}).is_ok());
}

TEST(GradCheck, Reductions) {
  check({"ReduceMean", {{2, 3, 4}}, {}, {int64s({1})}, true, -1.0, 1.0, {}, 18});
  check({"ReduceMean", {{2, 3, 4}}, {Attribute::make_ints("axes", {0, -1}), Attribute::make_int("keepdims", 0)}, {},
         true, -1.0, 1.0, {}, 17});
  check({"ReduceSum", {{2, 3, 4}}, {Attribute::make_int("keepdims", 0)}, {int64s({-1, 0})}});
  check({"ReduceSum", {{2, 3}}, {}, {}});  // no axes: everything
}

TEST(GradCheck, EveryRuleIsCovered) {
  // The cases above name every op with a rule; a new rule needs a case here.
  std::vector<std::string_view> expected = {
      "Add", "AveragePool", "BatchNormalization", "Conv", "Div", "Dropout", "Exp", "Flatten", "Gelu", "Gemm",
      "GlobalAveragePool", "Identity", "LayerNormalization", "LeakyRelu", "LogSoftmax", "MatMul", "MaxPool", "Mul",
      "Neg", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Sigmoid", "Softmax", "Sub", "Tanh", "Transpose"};
  EXPECT_EQ(grad_rule_ops(), expected);
}

}  // namespace
}  // namespace kiln::train
