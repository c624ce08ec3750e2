// Tests of the random family (RandomUniform(Like), RandomNormal(Like),
// Bernoulli, Multinomial) and training-mode Dropout. Kiln's numbers do not
// match numpy's, so the generators are checked by distribution: moments of
// 100k samples with a fixed seed, which are deterministic, so these cannot flake.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/op_test_util.h"

namespace kiln::test {
namespace {

using ir::Attribute;

constexpr int64_t kSamples = 100000;

struct Moments {
  double mean = 0;
  double var = 0;
};

Moments moments(const Tensor& t) {
  std::vector<double> v = values_of(t);
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (double x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= static_cast<double>(v.size());
  return m;
}

Result<Tensor> run_one(OpTest& t) {
  KILN_ASSIGN_OR_RETURN(std::vector<Tensor> out, t.run());
  return out[0];
}

TEST(RandomUniform, DistributionAndRange) {
  OpTest t("RandomUniform", 22);
  t.attr(Attribute::make_ints("shape", {kSamples / 100, 100}))
      .attr(Attribute::make_float("low", -2.0f))
      .attr(Attribute::make_float("high", 4.0f))
      .attr(Attribute::make_float("seed", 7.0f));
  auto out = run_one(t);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->dtype(), DataType::kFloat32);
  EXPECT_EQ(out->dims(), (Dims{kSamples / 100, 100}));
  Moments m = moments(*out);
  EXPECT_NEAR(m.mean, 1.0, 0.03);        // (low + high) / 2
  EXPECT_NEAR(m.var, 3.0, 0.05);         // (high - low)^2 / 12
  for (double v : values_of(*out)) {
    ASSERT_GE(v, -2.0);
    ASSERT_LE(v, 4.0);
  }
}

TEST(RandomNormal, DistributionAndDtypes) {
  for (DataType dt : {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16, DataType::kBFloat16}) {
    OpTest t("RandomNormal", 22);
    t.attr(Attribute::make_ints("shape", {kSamples}))
        .attr(Attribute::make_float("mean", 3.0f))
        .attr(Attribute::make_float("scale", 0.5f))
        .attr(Attribute::make_float("seed", 1.0f))
        .attr(Attribute::make_int("dtype", static_cast<int64_t>(dt)));
    auto out = run_one(t);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ(out->dtype(), dt);
    Moments m = moments(*out);
    EXPECT_NEAR(m.mean, 3.0, 0.01) << data_type_name(dt);
    EXPECT_NEAR(m.var, 0.25, 0.01) << data_type_name(dt);
  }
}

TEST(RandomNormal, SameSeedSameOutputOtherSeedOtherOutput) {
  auto draw = [](float seed) {
    OpTest t("RandomNormal", 1);
    t.attr(Attribute::make_ints("shape", {16})).attr(Attribute::make_float("seed", seed));
    auto out = run_one(t);
    EXPECT_TRUE(out.is_ok()) << out.status().to_string();
    return out.is_ok() ? values_of(*out) : std::vector<double>{};
  };
  EXPECT_EQ(draw(3.0f), draw(3.0f));
  EXPECT_NE(draw(3.0f), draw(4.0f));
}

TEST(RandomUniform, WithoutSeedDiffersBetweenRuns) {
  OpTest t("RandomUniform", 1);
  t.attr(Attribute::make_ints("shape", {32}));
  auto a = run_one(t);
  auto b = run_one(t);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_NE(values_of(*a), values_of(*b));
}

TEST(RandomUniformLike, ShapeAndTypeFromInput) {
  OpTest t("RandomUniformLike", 22);
  t.input("x", doubles({kSamples / 10, 10}, std::vector<double>(kSamples, 0.0)))
      .attr(Attribute::make_float("seed", 2.0f));
  auto out = run_one(t);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->dtype(), DataType::kFloat64);
  EXPECT_EQ(out->dims(), (Dims{kSamples / 10, 10}));
  Moments m = moments(*out);
  EXPECT_NEAR(m.mean, 0.5, 0.01);
  EXPECT_NEAR(m.var, 1.0 / 12, 0.005);

  OpTest ints("RandomNormalLike", 22);  // an integer input needs an explicit float dtype
  ints.input("x", int64s({2}, {1, 2}));
  expect_error(ints.run(), "output type must be");
  OpTest typed("RandomNormalLike", 22);
  typed.input("x", int64s({2, 0}, {})).attr(Attribute::make_int("dtype", static_cast<int64_t>(DataType::kFloat16)));
  auto e = run_one(typed);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(e->dtype(), DataType::kFloat16);
  EXPECT_EQ(e->dims(), (Dims{2, 0}));
}

TEST(RandomGenerators, Errors) {
  OpTest no_shape("RandomUniform", 1);
  expect_error(no_shape.run(), "'shape' is required");
  OpTest neg("RandomNormal", 1);
  neg.attr(Attribute::make_ints("shape", {2, -1}));
  EXPECT_FALSE(neg.run().is_ok());
  OpTest int_type("RandomUniform", 1);
  int_type.attr(Attribute::make_ints("shape", {2})).attr(Attribute::make_int("dtype", 7));
  expect_error(int_type.run(), "output type must be");
  OpTest bad_type("RandomUniform", 1);
  bad_type.attr(Attribute::make_ints("shape", {2})).attr(Attribute::make_int("dtype", 1234));
  expect_error(bad_type.run(), "not a data type");
  OpTest inverted("RandomUniform", 1);
  inverted.attr(Attribute::make_ints("shape", {2})).attr(Attribute::make_float("low", 2)).attr(
      Attribute::make_float("high", 1));
  expect_error(inverted.run(), "must not exceed high");
  EXPECT_EQ(InferTest("RandomNormal", 22)
                .attr(Attribute::make_ints("shape", {3, 4}))
                .attr(Attribute::make_int("dtype", static_cast<int64_t>(DataType::kFloat64)))
                .str(),
            "double[3,4]");
}

// ---- Bernoulli ---------------------------------------------------------------

TEST(Bernoulli, ZeroAndOneAreExact) {
  OpTest t("Bernoulli", 15);
  t.input("p", floats({6}, {0, 1, 0, 1, 1, 0}));
  auto out = run_one(t);  // no seed: exact all the same
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->dtype(), DataType::kFloat32);
  expect_near(*out, {6}, {0, 1, 0, 1, 1, 0});

  OpTest b("Bernoulli", 15);
  b.input("p", doubles({2, 2}, {1, 0, 0, 1})).attr(Attribute::make_int("dtype", static_cast<int64_t>(DataType::kBool)));
  out = run_one(b);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->dtype(), DataType::kBool);
  expect_near(*out, {2, 2}, {1, 0, 0, 1});
}

TEST(Bernoulli, Distribution) {
  OpTest t("Bernoulli", 22);
  t.input("p", floats({kSamples}, std::vector<float>(kSamples, 0.3f)))
      .attr(Attribute::make_float("seed", 5.0f))
      .attr(Attribute::make_int("dtype", static_cast<int64_t>(DataType::kInt32)));
  auto out = run_one(t);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->dtype(), DataType::kInt32);
  Moments m = moments(*out);
  EXPECT_NEAR(m.mean, 0.3, 0.01);
  EXPECT_NEAR(m.var, 0.21, 0.01);
  for (double v : values_of(*out)) ASSERT_TRUE(v == 0 || v == 1);
}

TEST(Bernoulli, Errors) {
  OpTest range("Bernoulli", 15);
  range.input("p", floats({2}, {0.5f, 1.5f}));
  expect_error(range.run(), "outside [0, 1]");
  OpTest nan("Bernoulli", 15);
  nan.input("p", floats({1}, {std::nanf("")}));
  expect_error(nan.run(), "outside [0, 1]");
  OpTest ints("Bernoulli", 15);
  ints.input("p", int64s({1}, {1}));
  expect_error(ints.run(), "float probabilities");
}

// ---- Multinomial -------------------------------------------------------------

TEST(Multinomial, FrequenciesFollowSoftmax) {
  // Row 0: log([0.2, 0.3, 0.5]); row 1: class 1 only (the others -inf).
  float inf = std::numeric_limits<float>::infinity();
  OpTest t("Multinomial", 22);
  t.input("x", floats({2, 3}, {std::log(0.2f), std::log(0.3f), std::log(0.5f), -inf, 4.0f, -inf}))
      .attr(Attribute::make_int("sample_size", kSamples))
      .attr(Attribute::make_float("seed", 11.0f))
      .attr(Attribute::make_int("dtype", static_cast<int64_t>(DataType::kInt64)));
  auto out = run_one(t);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->dtype(), DataType::kInt64);
  EXPECT_EQ(out->dims(), (Dims{2, kSamples}));
  std::vector<double> counts(3, 0);
  const int64_t* v = out->data<int64_t>();
  for (int64_t i = 0; i < kSamples; ++i) counts[static_cast<size_t>(v[i])] += 1;
  EXPECT_NEAR(counts[0] / kSamples, 0.2, 0.01);
  EXPECT_NEAR(counts[1] / kSamples, 0.3, 0.01);
  EXPECT_NEAR(counts[2] / kSamples, 0.5, 0.01);
  for (int64_t i = kSamples; i < 2 * kSamples; ++i) ASSERT_EQ(v[i], 1);
}

TEST(Multinomial, DefaultsAndErrors) {
  OpTest t("Multinomial", 7);
  t.input("x", floats({3, 2}, {0, 0, 0, 0, 0, 0}));
  auto out = run_one(t);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->dtype(), DataType::kInt32);  // dtype defaults to int32, sample_size to 1
  EXPECT_EQ(out->dims(), (Dims{3, 1}));

  OpTest rank("Multinomial", 7);
  rank.input("x", floats({3}, {0, 0, 0}));
  expect_error(rank.run(), "(batch, classes)");
  OpTest dtype("Multinomial", 7);
  dtype.input("x", floats({1, 2}, {0, 0})).attr(Attribute::make_int("dtype", 1));
  expect_error(dtype.run(), "int32 or int64");
  OpTest none("Multinomial", 7);
  float inf = std::numeric_limits<float>::infinity();
  none.input("x", floats({1, 2}, {-inf, -inf}));
  expect_error(none.run(), "no class");
  OpTest nan("Multinomial", 7);
  nan.input("x", floats({1, 2}, {std::nanf(""), 0}));
  expect_error(nan.run(), "NaN");
  OpTest neg("Multinomial", 7);
  neg.input("x", floats({1, 2}, {0, 0})).attr(Attribute::make_int("sample_size", -1));
  expect_error(neg.run(), "sample_size");
  EXPECT_EQ(InferTest("Multinomial", 7)
                .tensor(DataType::kFloat32, sym_shape({Dim::sym("B"), 5}))
                .attr(Attribute::make_int("sample_size", 4))
                .str(),
            "int32[B,4]");
}

// ---- Dropout in training mode ------------------------------------------------

TEST(Dropout, TrainingModeDropsAndScales) {
  OpTest t("Dropout", 13);
  t.input("x", floats({kSamples}, std::vector<float>(kSamples, 2.0f)))
      .input("r", floats({}, {0.25f}))
      .input("t", bools({}, {1}))
      .attr(Attribute::make_int("seed", 3))
      .outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  std::vector<double> y = values_of((*out)[0]);
  std::vector<double> mask = values_of((*out)[1]);
  double kept = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_EQ(y[i], mask[i] != 0 ? static_cast<double>(static_cast<float>(2.0 / 0.75)) : 0.0) << i;
    kept += mask[i];
  }
  EXPECT_NEAR(kept / kSamples, 0.75, 0.01);
  auto again = t.run();  // same seed, same mask
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(values_of((*again)[1]), mask);
}

TEST(Dropout, TrainingModeRatioChecks) {
  OpTest zero("Dropout", 13);
  zero.input("x", floats({3}, {1, 2, 3})).input("r", floats({}, {0.0f})).input("t", bools({}, {1})).outputs(2);
  auto out = zero.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {1, 2, 3});
  expect_near((*out)[1], {3}, {1, 1, 1});

  OpTest one("Dropout", 13);
  one.input("x", floats({3}, {1, 2, 3})).input("r", floats({}, {1.0f})).input("t", bools({}, {1}));
  expect_error(one.run(), "ratio must be in [0, 1)");

  OpTest inference("Dropout", 13);  // training_mode false: identity whatever the ratio
  inference.input("x", floats({2}, {1, 2})).input("r", floats({}, {0.9f})).input("t", bools({}, {0}));
  out = inference.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2}, {1, 2});
}

}  // namespace
}  // namespace kiln::test
