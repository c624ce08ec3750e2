// Tests of the ai.onnx.preview.training optimizers: Adagrad, Momentum, Adam.
// Expected values ("ref") were computed with the _apply_* functions of
// onnx.reference.ops.aionnx_preview_training on float64 inputs, with the
// attributes rounded to float32 as the node stores them:
//   r = 0.1, x = [1, -2, 0.5], g = [-1, 0.5, 2], h = [0.5, 1, 0], v = [0.2, -0.1, 0].
#include <gtest/gtest.h>

#include "ops/op_test_util.h"

namespace kiln::test {
namespace {

using ir::Attribute;

constexpr char kDomain[] = "ai.onnx.preview.training";

Tensor x0() { return doubles({3}, {1, -2, 0.5}); }
Tensor g0() { return doubles({3}, {-1, 0.5, 2}); }
Tensor h0() { return doubles({3}, {0.5, 1, 0}); }
Tensor v0() { return doubles({3}, {0.2, -0.1, 0}); }

OpTest optimizer(const std::string& op, int64_t t) {
  OpTest test(op, 1, kDomain);
  test.input("R", doubles({}, {0.1})).input("T", int64s({}, {t}));
  return test;
}

TEST(Adagrad, OneTensor) {
  OpTest t = optimizer("Adagrad", 3);
  t.input("X", x0()).input("G", g0()).input("H", h0()).outputs(2);
  t.attr(Attribute::make_float("norm_coefficient", 0.01f)).attr(Attribute::make_float("epsilon", 1e-6f)).attr(
      Attribute::make_float("decay_factor", 0.1f));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {1.0625959096, -2.0332869751, 0.4230769617}, 1e-8, 1e-8);  // ref
  expect_near((*out)[1], {3}, {1.4801000004, 1.2304000004, 4.0200249996}, 1e-8, 1e-8);  // ref
}

TEST(Momentum, StandardNesterovAndFirstStep) {
  auto run = [](const std::string& mode, int64_t step) {
    OpTest t = optimizer("Momentum", step);
    t.input("X", x0()).input("G", g0()).input("V", v0()).outputs(2);
    t.attr(Attribute::make_float("norm_coefficient", 0.01f)).attr(Attribute::make_float("alpha", 0.9f));
    t.attr(Attribute::make_float("beta", 0.5f)).attr(Attribute::make_string("mode", mode));
    return t.run();
  };
  auto out = run("standard", 3);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {1.0315, -2.015, 0.39975}, 1e-8, 1e-8);  // ref
  expect_near((*out)[1], {3}, {-0.315, 0.15, 1.0025}, 1e-8, 1e-8);     // ref
  out = run("standard", 0);  // T = 0: the gradient's coefficient is 1, not beta
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {1.081, -2.039, 0.2995}, 1e-8, 1e-8);  // ref
  out = run("nesterov", 3);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {1.12735, -2.0615, 0.209275}, 1e-8, 1e-8);  // ref
  expect_error(run("adaptive", 3), "mode must be");
}

TEST(Adam, BiasCorrectionAndPostNorm) {
  OpTest t = optimizer("Adam", 3);
  t.input("X", x0()).input("G", g0()).input("V", v0()).input("H", h0()).outputs(3);
  t.attr(Attribute::make_float("norm_coefficient", 0.01f)).attr(Attribute::make_float("norm_coefficient_post", 0.1f));
  auto out = t.run();  // alpha 0.9, beta 0.999, epsilon 1e-6 by default
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {0.8979183633, -1.7992361091, 0.3925076804}, 1e-8, 1e-8);  // ref
  expect_near((*out)[1], {3}, {0.0809999716, -0.0419999861, 0.2005000478}, 1e-8, 1e-8);  // ref
  expect_near((*out)[2], {3}, {0.5004800938, 0.9992304099, 0.0040199732}, 1e-8, 1e-8);  // ref

  OpTest first = optimizer("Adam", 0);  // T = 0: no bias correction
  first.input("X", x0()).input("G", g0()).input("V", v0()).input("H", h0()).outputs(3);
  out = first.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {0.9886919641, -1.9959985046, 0.1837751229}, 1e-8, 1e-8);  // ref
}

TEST(Adagrad, TwoTensorsKeepTheirOrderAndTypes) {
  // Tensors a (float, 1 element) and b (float, 2 elements): inputs X_a X_b G_a G_b H_a H_b.
  OpTest t("Adagrad", 1, kDomain);
  t.input("R", floats({}, {1.0f})).input("T", int64s({}, {0}));
  t.input("Xa", floats({1}, {1})).input("Xb", floats({2}, {2, 3}));
  t.input("Ga", floats({1}, {1})).input("Gb", floats({2}, {0, 2}));
  t.input("Ha", floats({1}, {0})).input("Hb", floats({2}, {1, 0}));
  t.attr(Attribute::make_float("epsilon", 0.0f)).outputs(4);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  // x - g / sqrt(h + g^2); h + g^2.
  expect_near((*out)[0], {1}, {0});
  expect_near((*out)[1], {2}, {2, 2});
  expect_near((*out)[2], {1}, {1});
  expect_near((*out)[3], {2}, {1, 4});
  EXPECT_EQ((*out)[1].dtype(), DataType::kFloat32);
}

TEST(Optimizers, Errors) {
  OpTest count = optimizer("Adagrad", 0);  // 4 tensors after R, T: not a multiple of 3
  count.input("X", x0()).input("G", g0()).input("H", h0()).input("Y", x0()).outputs(2);
  expect_error(count.run(), "groups of n tensors");

  OpTest shape = optimizer("Adagrad", 0);
  shape.input("X", x0()).input("G", doubles({2}, {1, 2})).input("H", h0()).outputs(2);
  expect_error(shape.run(), "shape and type of X");

  OpTest ints = optimizer("Adagrad", 0);
  ints.input("X", int64s({1}, {1})).input("G", int64s({1}, {1})).input("H", int64s({1}, {1})).outputs(2);
  expect_error(ints.run(), "float or double");

  OpTest r("Momentum", 1, kDomain);
  r.input("R", doubles({2}, {0.1, 0.1})).input("T", int64s({}, {0}));
  r.input("X", x0()).input("G", g0()).input("V", v0()).outputs(2);
  r.attr(Attribute::make_float("norm_coefficient", 0)).attr(Attribute::make_float("alpha", 0.9f));
  r.attr(Attribute::make_float("beta", 0.5f)).attr(Attribute::make_string("mode", "standard"));
  expect_error(r.run(), "R must be a float or double scalar");

  OpTest t("Momentum", 1, kDomain);
  t.input("R", doubles({}, {0.1})).input("T", doubles({}, {1}));
  t.input("X", x0()).input("G", g0()).input("V", v0()).outputs(2);
  t.attr(Attribute::make_float("norm_coefficient", 0)).attr(Attribute::make_float("alpha", 0.9f));
  t.attr(Attribute::make_float("beta", 0.5f)).attr(Attribute::make_string("mode", "standard"));
  expect_error(t.run(), "T must be a int64 scalar");

  OpTest missing = optimizer("Momentum", 0);
  missing.input("X", x0()).input("G", g0()).input("V", v0()).outputs(2);
  missing.attr(Attribute::make_float("alpha", 0.9f)).attr(Attribute::make_string("mode", "standard"));
  expect_error(missing.run(), "'norm_coefficient' is required");
}

}  // namespace
}  // namespace kiln::test
