// Tests of the activation ops, Clip and the variadic Sum/Mean/Max/Min.
// Expected activation values: onnx.reference.ReferenceEvaluator on float32
// x = [-3, -1, -0.5, 0, 0.5, 1, 3] (printed with 8 significant digits).
#include <cmath>
#include <limits>

#include "ops/elementwise_test_util.h"

namespace kiln::test {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Tensor xs() { return floats({7}, {-3, -1, -0.5, 0, 0.5, 1, 3}); }

Tensor act(const std::string& op, int64_t opset, std::vector<ir::Attribute> attrs = {}, Tensor x = xs()) {
  OpTest t(op, opset);
  t.input("x", std::move(x));
  for (auto& a : attrs) t.attr(std::move(a));
  return run1(t);
}

ir::Attribute f(const char* name, float v) { return ir::Attribute::make_float(name, v); }

TEST(Activation, ReluAndLeakyRelu) {
  expect_values(act("Relu", 14), DataType::kFloat32, {7}, {0, 0, 0, 0, 0.5, 1, 3});
  expect_values(act("Relu", 14, {}, make_tensor(DataType::kInt8, {3}, std::vector<int>{-5, 0, 7})), DataType::kInt8,
                {3}, {0, 0, 7});
  expect_values(act("Relu", 14, {}, floats({1}, {NAN})), DataType::kFloat32, {1}, {kNaN});
  expect_near(act("LeakyRelu", 16, {f("alpha", 0.1f)}), {7}, {-0.3, -0.1, -0.05, 0, 0.5, 1, 3});
  expect_near(act("LeakyRelu", 16), {7}, {-0.03, -0.01, -0.005, 0, 0.5, 1, 3});
}

TEST(Activation, ExponentialFamily) {
  expect_near(act("Elu", 22), {7}, {-0.95021296, -0.63212055, -0.39346933, 0, 0.5, 1, 3});
  expect_near(act("Elu", 22, {f("alpha", 0.5f)}), {7}, {-0.47510648, -0.31606027, -0.19673467, 0, 0.5, 1, 3});
  expect_near(act("Selu", 22), {7}, {-1.6705688, -1.1113307, -0.69175822, 0, 0.52535051, 1.050701, 3.1521029});
  expect_near(act("Celu", 12, {f("alpha", 2.0f)}), {7}, {-1.5537397, -0.78693867, -0.44239843, 0, 0.5, 1, 3});
  expect_near(act("Softplus", 22), {7},
              {0.048587352, 0.31326169, 0.47407699, 0.69314718, 0.97407699, 1.3132617, 3.0485873});
  expect_near(act("Mish", 22), {7}, {-0.14564747, -0.30340147, -0.22074378, 0, 0.37524518, 0.86509842, 2.9865351});
}

TEST(Activation, SigmoidFamily) {
  expect_near(act("Sigmoid", 13), {7}, {0.047425874, 0.2689414, 0.37754068, 0.5, 0.62245935, 0.7310586, 0.95257413});
  expect_near(act("HardSigmoid", 22), {7}, {0, 0.3, 0.4, 0.5, 0.6, 0.7, 1});
  expect_near(act("HardSigmoid", 22, {f("alpha", 0.5f), f("beta", 0.25f)}), {7}, {0, 0, 0, 0.25, 0.5, 0.75, 1});
  expect_near(act("HardSwish", 22), {7}, {0, -0.33333331, -0.20833333, 0, 0.29166666, 0.66666669, 3});
  expect_near(act("Softsign", 22), {7}, {-0.75, -0.5, -0.33333334, 0, 0.33333334, 0.5, 0.75});
  expect_near(act("Tanh", 13), {7}, {-0.99505478, -0.76159418, -0.4621172, 0, 0.4621172, 0.76159418, 0.99505478});
  expect_near(act("Swish", 24, {f("alpha", 2.0f)}), {7},
              {-0.0074178698, -0.11920293, -0.1344707, 0, 0.3655293, 0.88079703, 2.9925823});
  expect_near(act("ThresholdedRelu", 22, {f("alpha", 0.7f)}), {7}, {0, 0, 0, 0, 0, 1, 3});
}

TEST(Activation, ExtremeInputsStayFinite) {
  Tensor x = floats({4}, {-1000, 1000, -INFINITY, INFINITY});
  expect_values(act("Sigmoid", 13, {}, x), DataType::kFloat32, {4}, {0, 1, 0, 1});
  expect_values(act("Softplus", 1, {}, floats({2}, {-1000, 1000})), DataType::kFloat32, {2}, {0, 1000});
  expect_values(act("Tanh", 13, {}, x), DataType::kFloat32, {4}, {-1, 1, -1, 1});
}

TEST(Activation, Gelu) {
  expect_near(act("Gelu", 20), {7}, {-0.0040496886, -0.15865526, -0.15426877, 0, 0.34573123, 0.84134471, 2.9959502});
  expect_near(act("Gelu", 20, {ir::Attribute::make_string("approximate", "tanh")}), {7},
              {-0.0036373436, -0.15880799, -0.154286, 0, 0.345714, 0.84119201, 2.9963627});
  OpTest t("Gelu", 20);
  t.input("x", xs()).attr(ir::Attribute::make_string("approximate", "fast"));
  expect_error(t, "approximate must be");
  OpTest old("Gelu", 19);  // not in the default domain before opset 20
  old.input("x", xs());
  expect_error(old, "no kernel for opset 19");
}

TEST(Activation, Float16AndDouble) {
  Tensor h = act("Sigmoid", 13, {}, make_tensor(DataType::kFloat16, {2}, std::vector<double>{0, 2}));
  expect_values(h, DataType::kFloat16, {2}, {0.5, 0.880859375});  // 0.8807971 rounded to fp16
  expect_near(act("Elu", 22, {}, doubles({1}, {-1})), {1}, {-0.6321205588285577}, 1e-15, 1e-15);
  OpTest t("Elu", 22);
  t.input("x", int32s({1}, {1}));
  expect_error(t, "not supported");
}

TEST(Activation, CeluRejectsZeroAlpha) {
  OpTest t("Celu", 12);
  t.input("x", xs()).attr(f("alpha", 0));
  expect_error(t, "alpha must be nonzero");
}

TEST(PRelu, SlopeBroadcastsUnidirectionally) {
  Tensor x = floats({1, 2, 2}, {-1, 2, -3, 4});
  OpTest t("PRelu", 16);
  t.input("x", x).input("slope", floats({2, 1}, {0.5, 0.25}));
  expect_values(run1(t), DataType::kFloat32, {1, 2, 2}, {-0.5, 2, -0.75, 4});
  OpTest s("PRelu", 16);
  s.input("x", x).input("slope", floats({}, {0.1f}));
  expect_near(run1(s), {1, 2, 2}, {-0.1, 2, -0.3, 4});
  OpTest i("PRelu", 16);
  i.input("x", int64s({3}, {-4, 0, 5})).input("slope", int64s({1}, {3}));
  expect_values(run1(i), DataType::kInt64, {3}, {-12, 0, 5});
  // The slope may not grow X.
  OpTest bad("PRelu", 16);
  bad.input("x", floats({2}, {1, 2})).input("slope", floats({3, 1}, {1, 2, 3}));
  expect_error(bad, "does not broadcast to X");
}

// ---- Clip -----------------------------------------------------------------------

TEST(Clip, Opset6Attributes) {
  OpTest t("Clip", 6);
  t.input("x", floats({4}, {-2, 0.5, 3, NAN})).attr(f("min", -1)).attr(f("max", 1));
  expect_values(run1(t), DataType::kFloat32, {4}, {-1, 0.5, 1, kNaN});
  OpTest only_min("Clip", 6);
  only_min.input("x", floats({2}, {-2, 1e30f})).attr(f("min", 0));
  expect_values(run1(only_min), DataType::kFloat32, {2}, {0, 1e30f});
  OpTest inputs("Clip", 6);
  inputs.input("x", floats({1}, {1})).input("min", floats({}, {0}));
  expect_error(inputs, "as attributes before opset 11");
}

TEST(Clip, Opset13Inputs) {
  OpTest t("Clip", 13);
  t.input("x", floats({4}, {-2, 0.5, 3, -INFINITY})).input("min", floats({}, {-1})).input("max", floats({}, {1}));
  expect_values(run1(t), DataType::kFloat32, {4}, {-1, 0.5, 1, -1});
  OpTest no_min("Clip", 13);  // omitted min: only the max applies
  no_min.input("x", floats({3}, {-5, 0, 5})).none().input("max", floats({}, {2}));
  expect_values(run1(no_min), DataType::kFloat32, {3}, {-5, 0, 2});
  OpTest none("Clip", 13);  // neither: identity
  none.input("x", floats({2}, {-5, 5}));
  expect_values(run1(none), DataType::kFloat32, {2}, {-5, 5});
  OpTest inverted("Clip", 13);  // min > max gives max everywhere
  inverted.input("x", floats({3}, {-5, 0, 5})).input("min", floats({}, {3})).input("max", floats({}, {1}));
  expect_values(run1(inverted), DataType::kFloat32, {3}, {1, 1, 1});
}

TEST(Clip, IntegerTypes) {
  OpTest t("Clip", 13);
  t.input("x", int64s({4}, {-100, -1, 5, 100})).input("min", int64s({}, {-2})).input("max", int64s({}, {50}));
  expect_values(run1(t), DataType::kInt64, {4}, {-2, -1, 5, 50});
  OpTest u("Clip", 12);
  u.input("x", make_tensor(DataType::kUInt8, {3}, std::vector<int>{0, 100, 255}))
      .input("min", make_tensor(DataType::kUInt8, {}, std::vector<int>{10}));
  expect_values(run1(u), DataType::kUInt8, {3}, {10, 100, 255});
}

TEST(Clip, BadBounds) {
  OpTest t("Clip", 13);
  t.input("x", floats({2}, {1, 2})).input("min", floats({2}, {0, 0}));
  expect_error(t, "must be a scalar");
  OpTest t2("Clip", 13);
  t2.input("x", floats({2}, {1, 2})).input("min", doubles({}, {0}));
  expect_error(t2, "has type double");
}

// ---- Sum / Mean / Max / Min ----------------------------------------------------------

TEST(Variadic, SumMeanWithBroadcast) {
  OpTest t("Sum", 13);
  t.input("a", floats({2, 2}, {1, 2, 3, 4})).input("b", floats({2}, {10, 20})).input("c", floats({}, {100}));
  expect_values(run1(t), DataType::kFloat32, {2, 2}, {111, 122, 113, 124});
  OpTest m("Mean", 13);
  m.input("a", floats({2, 1}, {1, 2})).input("b", floats({1, 2}, {3, 5}));
  expect_values(run1(m), DataType::kFloat32, {2, 2}, {2, 3, 2.5, 3.5});
}

TEST(Variadic, SingleInputIsCopy) {
  for (const char* op : {"Sum", "Mean", "Max", "Min"}) {
    OpTest t(op, 13);
    t.input("a", floats({3}, {1, -2, 3}));
    expect_values(run1(t), DataType::kFloat32, {3}, {1, -2, 3});
  }
}

TEST(Variadic, MaxMinIntegersAndNaN) {
  OpTest t("Max", 13);
  t.input("a", int32s({3}, {1, 5, -3})).input("b", int32s({3}, {4, 2, -7}));
  expect_values(run1(t), DataType::kInt32, {3}, {4, 5, -3});
  OpTest u("Min", 13);
  u.input("a", make_tensor(DataType::kUInt64, {2}, std::vector<int>{3, 9})).input(
      "b", make_tensor(DataType::kUInt64, {1}, std::vector<int>{4}));
  expect_values(run1(u), DataType::kUInt64, {2}, {3, 4});
  OpTest n("Max", 13);  // NaN propagates from either side
  n.input("a", floats({3}, {NAN, 1, 2})).input("b", floats({3}, {0, NAN, 1}));
  expect_values(run1(n), DataType::kFloat32, {3}, {kNaN, kNaN, 2});
  OpTest m("Min", 13);
  m.input("a", floats({2}, {NAN, 1})).input("b", floats({2}, {0, NAN}));
  expect_values(run1(m), DataType::kFloat32, {2}, {kNaN, kNaN});
}

TEST(Variadic, ErrorPaths) {
  OpTest t("Sum", 13);
  t.input("a", floats({2}, {1, 2})).input("b", floats({3}, {1, 2, 3}));
  expect_error(t, "cannot be broadcast");
  OpTest u("Sum", 13);
  u.input("a", floats({2}, {1, 2})).input("b", doubles({2}, {1, 2}));
  expect_error(u, "different element types");
  OpTest v("Sum", 13);
  v.input("a", int32s({2}, {1, 2}));
  expect_error(v, "not supported");
}

TEST(ActivationInfer, SameTypeAsInput) {
  EXPECT_EQ(InferTest("Relu", 14).tensor(DataType::kFloat32, sym_shape({Dim::sym("N"), 3})).str(), "float[N,3]");
  EXPECT_EQ(InferTest("Clip", 13).tensor(DataType::kInt8, sym_shape({2})).none().none().str(), "int8[2]");
  EXPECT_EQ(InferTest("Max", 13)
                .tensor(DataType::kInt32, sym_shape({2, 1}))
                .tensor(DataType::kInt32, sym_shape({3}))
                .tensor(DataType::kInt32, sym_shape({1, 1, 1}))
                .str(),
            "int32[1,2,3]");
}

}  // namespace
}  // namespace kiln::test
