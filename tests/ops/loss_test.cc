// Tests of the loss family: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss,
// Det, Shrink, CumProd, BitCast, MaxUnpool, TensorScatter. ONNX's node cases
// cover the common paths; these add error paths, dtypes and odd shapes.
// Expected values marked "ref" were computed with onnx.reference.ReferenceEvaluator.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ops/op_test_util.h"

namespace kiln::test {
namespace {

using ir::Attribute;

// x: N=2, C=3, d1=2 log-probabilities; target (2, 2).
Tensor nll_x() {
  return floats({2, 3, 2}, {-1.0f, -2.0f, -0.5f, -3.0f, -2.0f, -0.1f, -0.3f, -1.2f, -2.2f, -0.7f, -1.5f, -0.2f});
}
Tensor nll_t() { return int64s({2, 2}, {0, 2, 1, 1}); }

TEST(NegativeLogLikelihoodLoss, ReductionsAndWeights) {
  {
    OpTest t("NegativeLogLikelihoodLoss", 13);
    t.input("x", nll_x()).input("t", nll_t()).attr(Attribute::make_string("reduction", "none"));
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_near((*out)[0], {2, 2}, {1.0, 0.1, 2.2, 0.7});  // ref
  }
  {
    Tensor w = floats({3}, {0.5f, 2.0f, 1.0f});
    OpTest t("NegativeLogLikelihoodLoss", 13);
    t.input("x", nll_x()).input("t", nll_t()).input("w", w).attr(Attribute::make_string("reduction", "sum"));
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_near((*out)[0], {}, {6.4});  // ref
  }
  {
    Tensor w = floats({3}, {0.5f, 2.0f, 1.0f});
    OpTest t("NegativeLogLikelihoodLoss", 13);
    t.input("x", nll_x()).input("t", nll_t()).input("w", w);
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_near((*out)[0], {}, {1.1636363});  // ref: mean divides by the total weight
  }
}

TEST(NegativeLogLikelihoodLoss, IgnoreIndexMeanCountsOnlyKept) {
  OpTest t("NegativeLogLikelihoodLoss", 13);
  t.input("x", nll_x()).input("t", nll_t()).attr(Attribute::make_int("ignore_index", 1));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {}, {0.55});  // ref
}

TEST(NegativeLogLikelihoodLoss, AllIgnoredMeanIsNan) {
  OpTest t("NegativeLogLikelihoodLoss", 13);
  t.input("x", floats({1, 2}, {-1, -2})).input("t", int64s({1}, {-1})).attr(Attribute::make_int("ignore_index", -1));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_TRUE(std::isnan(values_of((*out)[0])[0]));
}

TEST(NegativeLogLikelihoodLoss, Float16AndInt32Target) {
  OpTest t("NegativeLogLikelihoodLoss", 22);
  t.input("x", make_tensor(DataType::kFloat16, {2, 2}, std::vector<float>{-0.5f, -1.5f, -2.0f, -0.25f}))
      .input("t", int32s({2}, {1, 0}))
      .attr(Attribute::make_string("reduction", "sum"));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kFloat16);
  expect_near((*out)[0], {}, {3.5});
}

TEST(NegativeLogLikelihoodLoss, ZeroBatch) {
  OpTest t("NegativeLogLikelihoodLoss", 13);
  t.input("x", floats({0, 3}, {})).input("t", int64s({0}, {})).attr(Attribute::make_string("reduction", "none"));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].numel(), 0);
}

TEST(NegativeLogLikelihoodLoss, Errors) {
  auto run = [](Tensor x, Tensor target, std::vector<Attribute> attrs = {}, Tensor w = Tensor()) {
    OpTest t("NegativeLogLikelihoodLoss", 13);
    t.input("x", std::move(x)).input("t", std::move(target));
    if (w.defined()) t.input("w", std::move(w));
    for (auto& a : attrs) t.attr(a);
    return t.run();
  };
  expect_error(run(nll_x(), int64s({2, 2}, {0, 3, 1, 1})), "outside [0, 3)");
  expect_error(run(nll_x(), int64s({2, 2}, {0, -1, 1, 1})), "outside [0, 3)");
  expect_error(run(nll_x(), int64s({2, 3}, {0, 0, 0, 0, 0, 0})), "target has shape");
  expect_error(run(floats({3}, {1, 2, 3}), int64s({3}, {0, 0, 0})), "(N, C, d1..dk)");
  expect_error(run(nll_x(), nll_t(), {Attribute::make_string("reduction", "max")}), "reduction");
  expect_error(run(nll_x(), nll_t(), {}, floats({2}, {1, 1})), "weight must have shape [3]");
  expect_error(run(nll_x(), floats({2, 2}, {0, 0, 0, 0})), "int32 or int64");
}

TEST(SoftmaxCrossEntropyLoss, TwoDimensionalWithLogProb) {
  OpTest t("SoftmaxCrossEntropyLoss", 13);
  t.input("x", floats({2, 3}, {1, 2, 3, 1, -1, 0.5f})).input("t", int64s({2}, {2, 0})).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {}, {0.48128146});  // ref
  expect_near((*out)[1], {2, 3}, {-2.407606, -1.407606, -0.40760598, -0.554957, -2.554957, -1.0549569});  // ref
}

TEST(SoftmaxCrossEntropyLoss, WeightedNoneAndErrors) {
  OpTest t("SoftmaxCrossEntropyLoss", 13);
  t.input("x", floats({2, 3}, {1, 2, 3, 1, -1, 0.5f}))
      .input("t", int64s({2}, {2, 0}))
      .input("w", floats({3}, {0.5f, 2.0f, 1.0f}))
      .attr(Attribute::make_string("reduction", "none"));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2}, {0.40760598, 0.2774785});  // ref

  OpTest bad("SoftmaxCrossEntropyLoss", 13);
  bad.input("x", floats({2, 3}, {1, 2, 3, 1, -1, 0.5f})).input("t", int64s({2}, {2, 5}));
  expect_error(bad.run(), "outside [0, 3)");
}

TEST(LossInfer, Shapes) {
  EXPECT_EQ(InferTest("NegativeLogLikelihoodLoss", 13)
                .tensor(DataType::kFloat32, sym_shape({Dim::sym("N"), 3, 4}))
                .tensor(DataType::kInt64, sym_shape({Dim::sym("N"), 4}))
                .attr(Attribute::make_string("reduction", "none"))
                .str(),
            "float[N,4]");
  EXPECT_EQ(InferTest("NegativeLogLikelihoodLoss", 13)
                .tensor(DataType::kFloat16, sym_shape({2, 3}))
                .tensor(DataType::kInt64, sym_shape({2}))
                .str(),
            "float16[]");
  auto sce = InferTest("SoftmaxCrossEntropyLoss", 13)
                 .tensor(DataType::kFloat32, sym_shape({2, 3, 5}))
                 .tensor(DataType::kInt64, sym_shape({2, 5}))
                 .outputs(2)
                 .run();
  ASSERT_TRUE(sce.is_ok()) << sce.status().to_string();
  EXPECT_EQ((*sce)[0].to_string(), "float[]");
  EXPECT_EQ((*sce)[1].to_string(), "float[2,3,5]");
  EXPECT_NE(InferTest("NegativeLogLikelihoodLoss", 13)
                .tensor(DataType::kFloat32, sym_shape({2, 3}))
                .tensor(DataType::kInt64, sym_shape({2}))
                .attr(Attribute::make_string("reduction", "avg"))
                .str()
                .find("error"),
            std::string::npos);
}

// ---- Det ---------------------------------------------------------------------

TEST(Det, BatchedAndOddSizes) {
  OpTest t("Det", 22);
  t.input("x", floats({3, 2, 2}, {1, 2, 3, 4, 2, 0, 0, 3, 0, 1, 1, 0}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {-2, 6, -1});  // ref

  OpTest t3("Det", 11);
  t3.input("x", doubles({3, 3}, {2, -1, 0, -1, 2, -1, 0, -1, 2}));
  out = t3.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {}, {4.0}, 1e-12, 1e-12);

  OpTest singular("Det", 11);
  singular.input("x", floats({2, 2}, {1, 2, 2, 4}));
  out = singular.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {}, {0.0});

  OpTest empty("Det", 11);  // 0x0 matrices have determinant 1; a 0-sized batch gives no output
  empty.input("x", floats({2, 0, 0}, {}));
  out = empty.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2}, {1, 1});

  OpTest half("Det", 22);
  half.input("x", make_tensor(DataType::kFloat16, {1, 1}, std::vector<float>{-3.5f}));
  out = half.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kFloat16);
  expect_near((*out)[0], {}, {-3.5});
}

TEST(Det, Errors) {
  OpTest nonsquare("Det", 11);
  nonsquare.input("x", floats({2, 3}, {1, 2, 3, 4, 5, 6}));
  expect_error(nonsquare.run(), "[*, M, M]");
  OpTest vec("Det", 11);
  vec.input("x", floats({2}, {1, 2}));
  expect_error(vec.run(), "[*, M, M]");
  OpTest ints("Det", 11);
  ints.input("x", int64s({1, 1}, {1}));
  expect_error(ints.run(), "not supported");
  EXPECT_EQ(InferTest("Det", 11).tensor(DataType::kFloat32, sym_shape({Dim::sym("B"), 4, 4})).str(), "float[B]");
}

// ---- Shrink ------------------------------------------------------------------

TEST(Shrink, FloatIntAndHalf) {
  OpTest t("Shrink", 9);
  t.input("x", floats({5}, {-2, -1, 0, 1, 2})).attr(Attribute::make_float("lambd", 1.5f)).attr(
      Attribute::make_float("bias", 1.5f));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {5}, {-0.5, 0, 0, 0, 0.5});

  OpTest i("Shrink", 9);  // integers compute in double and truncate back
  i.input("x", make_tensor(DataType::kInt8, {4}, std::vector<int>{-5, -1, 1, 7}))
      .attr(Attribute::make_float("bias", 0.5f));
  out = i.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kInt8);
  expect_near((*out)[0], {4}, {-4, 0, 0, 6});

  OpTest u("Shrink", 9);  // 1 - 2 wraps to 255 (ref)
  u.input("x", make_tensor(DataType::kUInt8, {3}, std::vector<int>{0, 1, 200})).attr(
      Attribute::make_float("bias", 2.0f));
  out = u.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {0, 255, 198});

  OpTest h("Shrink", 9);
  h.input("x", make_tensor(DataType::kFloat16, {2, 0}, std::vector<float>{}));
  out = h.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dims(), (Dims{2, 0}));

  OpTest b("Shrink", 9);
  b.input("x", bools({1}, {1}));
  expect_error(b.run(), "not supported");
}

// ---- CumProd -----------------------------------------------------------------

TEST(CumProd, AxesAndFlags) {
  auto run = [](Tensor x, int64_t axis, int exclusive, int reverse) {
    OpTest t("CumProd", 26);
    t.input("x", std::move(x)).input("axis", int64s({}, {axis}));
    t.attr(Attribute::make_int("exclusive", exclusive)).attr(Attribute::make_int("reverse", reverse));
    return t.run();
  };
  Tensor x = floats({2, 3}, {1, 2, 3, 4, 5, 6});
  auto out = run(x, 1, 0, 0);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 3}, {1, 2, 6, 4, 20, 120});
  out = run(x, -2, 0, 0);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 3}, {1, 2, 3, 4, 10, 18});
  out = run(x, 1, 1, 1);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 3}, {6, 3, 1, 30, 6, 1});
  out = run(floats({0, 3}, {}), 0, 1, 0);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].numel(), 0);
}

TEST(CumProd, IntegerOverflowWraps) {
  OpTest t("CumProd", 26);
  t.input("x", int32s({3}, {65536, 65536, 3})).input("axis", int32s({1}, {0}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {65536, 0, 0});  // 2^32 wraps to 0 in int32
  OpTest u("CumProd", 26);
  u.input("x", make_tensor(DataType::kUInt64, {2}, std::vector<double>{4294967296.0, 4294967297.0}))
      .input("axis", int64s({}, {0}));
  out = u.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].data<uint64_t>()[1], uint64_t{4294967296});  // 2^32 * (2^32 + 1) mod 2^64
}

TEST(CumProd, Errors) {
  OpTest t("CumProd", 26);
  t.input("x", floats({2}, {1, 2})).input("axis", int64s({}, {1}));
  expect_error(t.run(), "axis");
  OpTest v("CumProd", 26);
  v.input("x", floats({2}, {1, 2})).input("axis", int64s({2}, {0, 0}));
  expect_error(v.run(), "axis must be a scalar");
  OpTest f("CumProd", 26);
  f.input("x", floats({2}, {1, 2})).input("axis", floats({}, {0}));
  EXPECT_FALSE(f.run().is_ok());
}

// ---- BitCast -----------------------------------------------------------------

TEST(BitCast, SameWidthTypes) {
  OpTest t("BitCast", 26);
  t.input("x", make_tensor(DataType::kFloat16, {2}, std::vector<float>{1.0f, -2.0f}))
      .attr(Attribute::make_int("to", static_cast<int64_t>(DataType::kUInt16)));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kUInt16);
  EXPECT_EQ((*out)[0].data<uint16_t>()[0], 0x3c00);
  EXPECT_EQ((*out)[0].data<uint16_t>()[1], 0xc000);

  OpTest b("BitCast", 26);  // bytes other than 0/1 become true
  b.input("x", make_tensor(DataType::kUInt8, {3}, std::vector<int>{0, 1, 7}))
      .attr(Attribute::make_int("to", static_cast<int64_t>(DataType::kBool)));
  out = b.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {0, 1, 1});
}

// A sub-byte tensor from its stored bytes (one element per byte; int4/int2 sign-extended).
Tensor sub_byte(DataType dtype, const std::vector<int>& bytes) {
  Tensor t = Tensor::empty(dtype, {static_cast<int64_t>(bytes.size())});
  for (size_t i = 0; i < bytes.size(); ++i) static_cast<int8_t*>(t.raw_data())[i] = static_cast<int8_t>(bytes[i]);
  return t;
}
std::vector<int> stored_bytes(const Tensor& t, bool is_signed) {
  std::vector<int> v;
  for (int64_t i = 0; i < t.numel(); ++i) {
    v.push_back(is_signed ? static_cast<const int8_t*>(t.raw_data())[i] : static_cast<const uint8_t*>(t.raw_data())[i]);
  }
  return v;
}

TEST(BitCast, SubByteTypes) {
  OpTest t("BitCast", 26);  // uint4 15 is the pattern 1111, int4 -1
  t.input("x", sub_byte(DataType::kUInt4, {15, 8, 7}))
      .attr(Attribute::make_int("to", static_cast<int64_t>(DataType::kInt4)));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kInt4);
  EXPECT_EQ(stored_bytes((*out)[0], true), (std::vector<int>{-1, -8, 7}));

  OpTest back("BitCast", 26);
  back.input("x", sub_byte(DataType::kInt2, {-1, -2}))
      .attr(Attribute::make_int("to", static_cast<int64_t>(DataType::kUInt2)));
  out = back.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(stored_bytes((*out)[0], false), (std::vector<int>{3, 2}));

  OpTest fp4("BitCast", 26);  // float4e2m1 codes are stored as their 4-bit pattern
  fp4.input("x", sub_byte(DataType::kInt4, {-8, 1}))
      .attr(Attribute::make_int("to", static_cast<int64_t>(DataType::kFloat4E2M1)));
  out = fp4.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(stored_bytes((*out)[0], false), (std::vector<int>{8, 1}));
}

TEST(BitCast, Errors) {
  OpTest w("BitCast", 26);
  w.input("x", floats({1}, {1})).attr(Attribute::make_int("to", static_cast<int64_t>(DataType::kInt64)));
  expect_error(w.run(), "widths differ");
  OpTest s("BitCast", 26);
  s.input("x", strings({1}, {"a"})).attr(Attribute::make_int("to", static_cast<int64_t>(DataType::kInt64)));
  expect_error(s.run(), "string");
  OpTest missing("BitCast", 26);
  missing.input("x", floats({1}, {1}));
  expect_error(missing.run(), "'to'");
  OpTest bad("BitCast", 26);
  bad.input("x", floats({1}, {1})).attr(Attribute::make_int("to", 99));
  expect_error(bad.run(), "not a data type");
  EXPECT_EQ(InferTest("BitCast", 26)
                .tensor(DataType::kFloat32, sym_shape({Dim::sym("N"), 2}))
                .attr(Attribute::make_int("to", static_cast<int64_t>(DataType::kInt32)))
                .str(),
            "int32[N,2]");
}

// ---- MaxUnpool ---------------------------------------------------------------

TEST(MaxUnpool, OneSpatialAxisWithPads) {
  // Implied length: (3 - 1) * 2 - (1 + 0) + 2 = 5.
  OpTest t("MaxUnpool", 11);
  t.input("x", floats({1, 2, 3}, {1, 2, 3, 4, 5, 6}))
      .input("i", int64s({1, 2, 3}, {0, 2, 4, 5, 8, 9}))
      .attr(Attribute::make_ints("kernel_shape", {2}))
      .attr(Attribute::make_ints("strides", {2}))
      .attr(Attribute::make_ints("pads", {1, 0}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 2, 5}, {1, 0, 2, 0, 3, 4, 0, 0, 5, 6});
}

TEST(MaxUnpool, OutputShapePlacesAtOrigin) {
  OpTest t("MaxUnpool", 11);
  t.input("x", floats({1, 1, 2}, {7, 8}))
      .input("i", int64s({1, 1, 2}, {1, 3}))
      .input("s", int64s({3}, {1, 2, 5}))
      .attr(Attribute::make_ints("kernel_shape", {2}))
      .attr(Attribute::make_ints("strides", {2}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 2, 5}, {0, 7, 0, 8, 0, 0, 0, 0, 0, 0});
}

TEST(MaxUnpool, Errors) {
  auto base = [](Tensor ind) {
    OpTest t("MaxUnpool", 11);
    t.input("x", floats({1, 1, 2}, {7, 8})).input("i", std::move(ind));
    t.attr(Attribute::make_ints("kernel_shape", {2})).attr(Attribute::make_ints("strides", {2}));
    return t;
  };
  OpTest oob = base(int64s({1, 1, 2}, {1, 4}));
  expect_error(oob.run(), "outside the unpooled tensor");
  OpTest neg = base(int64s({1, 1, 2}, {-1, 0}));
  expect_error(neg.run(), "outside the unpooled tensor");
  OpTest shape = base(int64s({1, 2}, {1, 3}));
  expect_error(shape.run(), "I must be int64 with X's shape");
  OpTest small = base(int64s({1, 1, 2}, {1, 3}));
  small.input("s", int64s({3}, {1, 1, 3}));
  expect_error(small.run(), "smaller than the unpooled shape");
  OpTest zero_stride("MaxUnpool", 11);
  zero_stride.input("x", floats({1, 1, 2}, {7, 8})).input("i", int64s({1, 1, 2}, {0, 1}));
  zero_stride.attr(Attribute::make_ints("kernel_shape", {2})).attr(Attribute::make_ints("strides", {0}));
  expect_error(zero_stride.run(), "strides must be positive");
  OpTest no_kernel("MaxUnpool", 11);
  no_kernel.input("x", floats({1, 1, 2}, {7, 8})).input("i", int64s({1, 1, 2}, {0, 1}));
  expect_error(no_kernel.run(), "kernel_shape");
  EXPECT_EQ(InferTest("MaxUnpool", 11)
                .tensor(DataType::kFloat32, sym_shape({Dim::sym("N"), 3, 2, 2}))
                .tensor(DataType::kInt64, sym_shape({Dim::sym("N"), 3, 2, 2}))
                .attr(Attribute::make_ints("kernel_shape", {2, 2}))
                .attr(Attribute::make_ints("strides", {2, 2}))
                .str(),
            "float[N,3,4,4]");
}

// ---- TensorScatter -----------------------------------------------------------

// past (2, 4, 1) zeros; update (2, 2, 1) = [[1, 2], [3, 4]].
OpTest scatter_case(const std::string& mode, std::vector<int64_t> write) {
  OpTest t("TensorScatter", 24);
  t.input("past", floats({2, 4, 1}, std::vector<float>(8, 0.0f))).input("update", floats({2, 2, 1}, {1, 2, 3, 4}));
  if (!write.empty()) t.input("w", int64s({2}, write));
  t.attr(Attribute::make_string("mode", mode)).attr(Attribute::make_int("axis", 1));
  return t;
}

TEST(TensorScatter, LinearAndCircular) {
  OpTest plain = scatter_case("linear", {});
  auto out = plain.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 4, 1}, {1, 2, 0, 0, 3, 4, 0, 0});
  OpTest linear = scatter_case("linear", {1, 2});
  out = linear.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 4, 1}, {0, 1, 2, 0, 0, 0, 3, 4});
  OpTest circular = scatter_case("circular", {3, 7});
  out = circular.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 4, 1}, {2, 0, 0, 1, 4, 0, 0, 3});
}

TEST(TensorScatter, StringsAndDefaultAxis) {
  OpTest t("TensorScatter", 24);  // default axis -2: the sequence axis of (batch, seq, dim)
  t.input("past", strings({1, 3, 1}, {"a", "b", "c"})).input("update", strings({1, 1, 1}, {"z"}));
  t.input("w", int64s({1}, {2}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(string_values((*out)[0]), (std::vector<std::string>{"a", "b", "z"}));
}

TEST(TensorScatter, Errors) {
  OpTest overflow = scatter_case("linear", {3, 0});
  expect_error(overflow.run(), "does not fit axis");
  OpTest negative = scatter_case("linear", {-1, 0});
  expect_error(negative.run(), "does not fit axis");
  OpTest mode = scatter_case("ring", {});
  expect_error(mode.run(), "mode must be");
  OpTest axis0("TensorScatter", 24);
  axis0.input("past", floats({2, 2}, {0, 0, 0, 0})).input("update", floats({1, 2}, {1, 1}));
  axis0.attr(Attribute::make_int("axis", 0));
  expect_error(axis0.run(), "batch axis");
  OpTest shape("TensorScatter", 24);
  shape.input("past", floats({2, 4, 1}, std::vector<float>(8, 0))).input("update", floats({2, 5, 1}, std::vector<float>(10, 0)));
  expect_error(shape.run(), "does not fit past_cache");
  OpTest widx("TensorScatter", 24);
  widx.input("past", floats({2, 4, 1}, std::vector<float>(8, 0))).input("update", floats({2, 1, 1}, {1, 2}));
  widx.input("w", int64s({3}, {0, 0, 0}));
  expect_error(widx.run(), "write_indices must be int64 of shape [2]");
}

}  // namespace
}  // namespace kiln::test
