// Tests of the signal family: DFT, STFT, window generators, MelWeightMatrix.
// Expected values are hand-computed DFTs or, where noted, ONNX's reference
// evaluator (onnx 1.23.2, onnx.reference.ReferenceEvaluator).
#include <gtest/gtest.h>

#include <cmath>

#include "op_test_util.h"

namespace kiln::test {
namespace {

using ir::Attribute;

std::vector<Tensor> run_ok(OpTest& t) {
  auto r = t.run();
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : std::vector<Tensor>{Tensor()};
}

Tensor scalar64(int64_t v) { return int64s({}, {v}); }

// ---- DFT ---------------------------------------------------------------------

TEST(Dft, RealPowerOfTwoOpset20DefaultAxis) {
  // [1, 2, 3, 4] -> [10, -2+2i, -2, -2-2i]; the default axis -2 is the signal axis.
  OpTest t("DFT", 20);
  t.input("x", floats({1, 4, 1}, {1, 2, 3, 4}));
  auto out = run_ok(t);
  expect_near(out[0], {1, 4, 2}, {10, 0, -2, 2, -2, 0, -2, -2});
}

TEST(Dft, RealOddLengthUsesPlainSum) {
  // [1, 2, 3]: X1 = -1.5 + i*sqrt(3)/2, X2 = conj(X1).
  OpTest t("DFT", 20);
  t.input("x", doubles({3, 1}, {1, 2, 3})).none().constant("axis", scalar64(0));
  auto out = run_ok(t);
  double s = std::sqrt(3.0) / 2;
  expect_near(out[0], {3, 2}, {6, 0, -1.5, s, -1.5, -s}, 1e-12);
  EXPECT_EQ(out[0].dtype(), DataType::kFloat64);
}

TEST(Dft, Opset17AxisAttributeDefaultsToOne) {
  // Two signals along axis 1 of [1, 2, 2, 1]: columns [1, 3] and [2, 4].
  OpTest t("DFT", 17);
  t.input("x", floats({1, 2, 2, 1}, {1, 2, 3, 4}));
  auto out = run_ok(t);
  expect_near(out[0], {1, 2, 2, 2}, {4, 0, 6, 0, -2, 0, -2, 0});
  OpTest t2("DFT", 17);
  t2.input("x", floats({1, 2, 2, 1}, {1, 2, 3, 4})).attr(Attribute::make_int("axis", -2));
  expect_near(run_ok(t2)[0], {1, 2, 2, 2}, {3, 0, -1, 0, 7, 0, -1, 0});
}

TEST(Dft, ComplexInputAndInverseRoundTrip) {
  Tensor x = floats({1, 3, 2}, {1, 2, -1, 0.5f, 3, -2});
  OpTest fwd("DFT", 20);
  fwd.input("x", x);
  Tensor spectrum = run_ok(fwd)[0];
  OpTest inv("DFT", 20);
  inv.input("x", spectrum).attr(Attribute::make_int("inverse", 1));
  expect_near(run_ok(inv)[0], {1, 3, 2}, {1, 2, -1, 0.5, 3, -2}, 1e-5);
}

TEST(Dft, LengthPadsAndTruncates) {
  // Padded to 4: [1, 2, 0, 0] -> [3, 1-2i, -1, 1+2i].
  OpTest pad("DFT", 20);
  pad.input("x", floats({2, 1}, {1, 2})).constant("len", scalar64(4)).constant("axis", scalar64(0));
  expect_near(run_ok(pad)[0], {4, 2}, {3, 0, 1, -2, -1, 0, 1, 2});
  // Truncated to 2: [1, 2] of [1, 2, 3, 4] -> [3, -1].
  OpTest cut("DFT", 20);
  cut.input("x", floats({4, 1}, {1, 2, 3, 4})).input("len", int32s({}, {2})).constant("axis", scalar64(-2));
  expect_near(run_ok(cut)[0], {2, 2}, {3, 0, -1, 0});
}

TEST(Dft, OnesidedForwardAndIrfft) {
  // rfft of [1, 2, 3, 4, 5]: 3 bins; irfft with dft_length 5 gives it back.
  OpTest fwd("DFT", 20);
  fwd.input("x", doubles({5, 1}, {1, 2, 3, 4, 5})).none().constant("axis", scalar64(0));
  fwd.attr(Attribute::make_int("onesided", 1));
  Tensor half = run_ok(fwd)[0];
  EXPECT_EQ(dims_to_string(half.dims()), "[3,2]");
  OpTest inv("DFT", 20);
  inv.input("x", half).constant("len", scalar64(5)).constant("axis", scalar64(0));
  inv.attr(Attribute::make_int("onesided", 1)).attr(Attribute::make_int("inverse", 1));
  expect_near(run_ok(inv)[0], {5, 1}, {1, 2, 3, 4, 5}, 1e-12);
  // Default length 2 * (3 - 1) = 4; the imaginary parts of DC and Nyquist are ignored.
  OpTest even("DFT", 20);
  even.input("x", doubles({3, 2}, {10, 7, -2, 2, -2, 5})).none().constant("axis", scalar64(0));
  even.attr(Attribute::make_int("onesided", 1)).attr(Attribute::make_int("inverse", 1));
  expect_near(run_ok(even)[0], {4, 1}, {1, 2, 3, 4}, 1e-12);
}

TEST(Dft, HalfPrecisionComputesInFloat) {
  OpTest t("DFT", 20);
  t.input("x", make_tensor(DataType::kFloat16, {1, 4, 1}, std::vector<float>{1, 2, 3, 4}));
  auto out = run_ok(t);
  EXPECT_EQ(out[0].dtype(), DataType::kFloat16);
  expect_near(out[0], {1, 4, 2}, {10, 0, -2, 2, -2, 0, -2, -2});
}

TEST(Dft, ZeroSizedBatch) {
  OpTest t("DFT", 20);
  t.input("x", floats({0, 4, 1}, {}));
  EXPECT_EQ(dims_to_string(run_ok(t)[0].dims()), "[0,4,2]");
}

TEST(Dft, Errors) {
  OpTest comps("DFT", 20);
  comps.input("x", floats({1, 2, 3}, {1, 2, 3, 4, 5, 6}));
  expect_error(comps.run(), "last dim is 3");
  OpTest last_axis("DFT", 20);
  last_axis.input("x", floats({2, 1}, {1, 2})).none().constant("axis", scalar64(1));
  expect_error(last_axis.run(), "axis 1 is out of range");
  OpTest attr_axis("DFT", 17);
  attr_axis.input("x", floats({2, 1}, {1, 2})).attr(Attribute::make_int("axis", -1));
  expect_error(attr_axis.run(), "out of range");
  OpTest zero("DFT", 20);
  zero.input("x", floats({2, 1}, {1, 2})).input("len", scalar64(0)).constant("axis", scalar64(0));
  expect_error(zero.run(), "dft_length 0");
  OpTest rank1("DFT", 20);
  rank1.input("x", floats({2}, {1, 2}));
  expect_error(rank1.run(), "rank 1");
  OpTest onesided_complex("DFT", 20);
  onesided_complex.input("x", floats({2, 2}, {1, 2, 3, 4})).none().constant("axis", scalar64(0));
  onesided_complex.attr(Attribute::make_int("onesided", 1));
  expect_error(onesided_complex.run(), "real input");
  OpTest ints("DFT", 20);
  ints.input("x", int64s({2, 1}, {1, 2}));
  expect_error(ints.run(), "not supported");
}

TEST(Dft, Infer) {
  EXPECT_EQ(InferTest("DFT", 20).tensor(DataType::kFloat32, Shape::of({2, 8, 1})).str(), "float[2,8,2]");
  EXPECT_EQ(InferTest("DFT", 20)
                .tensor(DataType::kFloat32, Shape::of({2, 8, 1}))
                .none()
                .constant(scalar64(-2))
                .attr(Attribute::make_int("onesided", 1))
                .str(),
            "float[2,5,2]");
  EXPECT_EQ(InferTest("DFT", 20)
                .tensor(DataType::kFloat32, Shape::of({2, 5, 2}))
                .constant(scalar64(8))
                .attr(Attribute::make_int("onesided", 1))
                .attr(Attribute::make_int("inverse", 1))
                .str(),
            "float[2,8,1]");
  EXPECT_EQ(InferTest("DFT", 17).tensor(DataType::kFloat32, Shape::of({3, 4, 2})).str(), "float[3,4,2]");
  // A run-time axis leaves the signal dims unknown; a run-time length the axis dim.
  EXPECT_EQ(InferTest("DFT", 20)
                .tensor(DataType::kFloat32, Shape::of({3, 4, 1}))
                .none()
                .tensor(DataType::kInt64, Shape::of({}))
                .str(),
            "float[?,?,2]");
  EXPECT_EQ(InferTest("DFT", 20)
                .tensor(DataType::kFloat32, Shape::of({3, 4, 1}))
                .tensor(DataType::kInt64, Shape::of({}))
                .str(),
            "float[3,?,2]");
  EXPECT_EQ(InferTest("DFT", 20).tensor(DataType::kFloat32, Shape()).str(), "float*");
  EXPECT_EQ(InferTest("DFT", 17)
                .tensor(DataType::kFloat32, Shape::of({3, 4, 1}))
                .attr(Attribute::make_int("axis", 2))
                .str()
                .rfind("error", 0),
            0u);
}

// ---- STFT --------------------------------------------------------------------

TEST(Stft, WindowedOnesided) {
  // Expected values from ONNX's reference evaluator.
  OpTest t("STFT", 17);
  t.input("s", floats({1, 7, 1}, {1, 2, 3, 4, 5, 6, 7}))
      .input("step", scalar64(2))
      .input("w", floats({4}, {1, 0.5f, 0.25f, 1}));
  expect_near(run_ok(t)[0], {1, 2, 3, 2}, {6.75, 0, 0.25, 3, -3.25, 0, 12.25, 0, 1.75, 4, -3.75, 0});
}

TEST(Stft, FrameLengthWithoutWindowTwoSided) {
  // Frames [1, 2] and [3, 4] of [1, 2, 3, 4, 5] (step 2): [3, -1] and [7, -1].
  OpTest t("STFT", 17);
  t.input("s", floats({1, 5, 1}, {1, 2, 3, 4, 5})).input("step", scalar64(2)).none().input("len", scalar64(2));
  t.attr(Attribute::make_int("onesided", 0));
  expect_near(run_ok(t)[0], {1, 2, 2, 2}, {3, 0, -1, 0, 7, 0, -1, 0});
}

TEST(Stft, DefaultFrameIsTheWholeSignal) {
  OpTest t("STFT", 17);
  t.input("s", floats({2, 4, 1}, {1, 2, 3, 4, 0, 0, 0, 1})).input("step", scalar64(1));
  expect_near(run_ok(t)[0], {2, 1, 3, 2}, {10, 0, -2, 2, -2, 0, 1, 0, 0, 1, -1, 0});
}

TEST(Stft, Errors) {
  OpTest step("STFT", 17);
  step.input("s", floats({1, 4, 1}, {1, 2, 3, 4})).input("step", scalar64(0));
  expect_error(step.run(), "frame_step 0");
  OpTest mismatch("STFT", 17);
  mismatch.input("s", floats({1, 4, 1}, {1, 2, 3, 4})).input("step", scalar64(1));
  mismatch.input("w", floats({2}, {1, 1})).input("len", scalar64(3));
  expect_error(mismatch.run(), "differs from the window");
  OpTest too_long("STFT", 17);
  too_long.input("s", floats({1, 4, 1}, {1, 2, 3, 4})).input("step", scalar64(1)).none().input("len", scalar64(5));
  expect_error(too_long.run(), "frame_length 5");
  OpTest rank("STFT", 17);
  rank.input("s", floats({4, 1}, {1, 2, 3, 4})).input("step", scalar64(1));
  expect_error(rank.run(), "[batch, length, 1 or 2]");
  OpTest window_rank("STFT", 17);
  window_rank.input("s", floats({1, 4, 1}, {1, 2, 3, 4})).input("step", scalar64(1));
  window_rank.input("w", floats({1, 2}, {1, 1}));
  expect_error(window_rank.run(), "must be 1-D");
}

TEST(Stft, Infer) {
  EXPECT_EQ(InferTest("STFT", 17)
                .tensor(DataType::kFloat32, Shape::of({1, 128, 1}))
                .constant(scalar64(8))
                .none()
                .constant(scalar64(16))
                .str(),
            "float[1,15,9,2]");
  EXPECT_EQ(InferTest("STFT", 17)
                .tensor(DataType::kFloat32, Shape::of({1, 128, 1}))
                .tensor(DataType::kInt64, Shape::of({}))
                .tensor(DataType::kFloat32, Shape::of({16}))
                .attr(Attribute::make_int("onesided", 0))
                .str(),
            "float[1,?,16,2]");
}

// ---- Windows -----------------------------------------------------------------

TEST(Window, ValuesMatchReference) {
  // Size 5, from ONNX's reference evaluator.
  struct Case {
    const char* op;
    int periodic;
    std::vector<double> expected;
  } cases[] = {
      {"HannWindow", 0, {0, 0.5, 1, 0.5, 0}},
      {"HannWindow", 1, {0, 0.3454915, 0.9045085, 0.9045085, 0.3454915}},
      {"HammingWindow", 0, {0.0869565, 0.5434783, 1, 0.5434783, 0.0869565}},
      {"HammingWindow", 1, {0.0869565, 0.4024053, 0.9128121, 0.9128121, 0.4024053}},
      {"BlackmanWindow", 0, {0, 0.34, 1, 0.34, 0}},
      {"BlackmanWindow", 1, {0, 0.2007701, 0.8492299, 0.8492299, 0.2007701}},
  };
  for (const Case& c : cases) {
    OpTest t(c.op, 17);
    t.input("size", scalar64(5)).attr(Attribute::make_int("periodic", c.periodic));
    auto out = run_ok(t);
    SCOPED_TRACE(std::string(c.op) + " periodic=" + std::to_string(c.periodic));
    EXPECT_EQ(out[0].dtype(), DataType::kFloat32);
    expect_near(out[0], {5}, c.expected, 1e-6);
  }
}

TEST(Window, OutputDatatypeAndOddSizes) {
  OpTest dbl("HannWindow", 17);
  dbl.input("size", int32s({}, {4})).attr(Attribute::make_int("output_datatype", 11));
  auto out = run_ok(dbl);
  EXPECT_EQ(out[0].dtype(), DataType::kFloat64);
  expect_near(out[0], {4}, {0, 0.5, 1, 0.5}, 1e-15);
  OpTest empty("HammingWindow", 17);
  empty.input("size", scalar64(0));
  EXPECT_EQ(run_ok(empty)[0].numel(), 0);
  // A symmetric window of one sample is [1] (no interval to divide by).
  OpTest one("BlackmanWindow", 17);
  one.input("size", scalar64(1)).attr(Attribute::make_int("periodic", 0));
  expect_near(run_ok(one)[0], {1}, {1});
}

TEST(Window, Errors) {
  OpTest neg("HannWindow", 17);
  neg.input("size", scalar64(-1));
  expect_error(neg.run(), "size -1");
  OpTest type("HannWindow", 17);
  type.input("size", scalar64(3)).attr(Attribute::make_int("output_datatype", 8));
  expect_error(type.run(), "output_datatype 8");
  OpTest vec("HannWindow", 17);
  vec.input("size", int64s({2}, {3, 3}));
  EXPECT_FALSE(vec.run().is_ok());
}

TEST(Window, Infer) {
  EXPECT_EQ(InferTest("HannWindow", 17).constant(scalar64(7)).str(), "float[7]");
  EXPECT_EQ(InferTest("BlackmanWindow", 17)
                .tensor(DataType::kInt64, Shape::of({}))
                .attr(Attribute::make_int("output_datatype", 10))
                .str(),
            "float16[?]");
}

// ---- MelWeightMatrix ---------------------------------------------------------

TEST(MelWeightMatrix, MatchesReference) {
  // num_mel_bins 3, dft_length 32, sample_rate 16000, edges [100, 7000] Hz:
  // from ONNX's reference evaluator (rows 8..16 are zero).
  OpTest t("MelWeightMatrix", 17);
  t.input("bins", scalar64(3)).input("len", scalar64(32)).input("rate", scalar64(16000));
  t.input("lo", floats({}, {100})).input("hi", floats({}, {7000}));
  std::vector<double> expected(17 * 3, 0.0);
  std::vector<std::pair<int, double>> nonzero = {{1 * 3 + 0, 1},   {2 * 3 + 1, 1},    {3 * 3 + 1, 0.5},
                                                 {3 * 3 + 2, 0.5}, {4 * 3 + 2, 1},    {5 * 3 + 2, 0.75},
                                                 {6 * 3 + 2, 0.5}, {7 * 3 + 2, 0.25}};
  for (auto [i, v] : nonzero) expected[static_cast<size_t>(i)] = v;
  expect_near(run_ok(t)[0], {17, 3}, expected);
}

TEST(MelWeightMatrix, ErrorsAndInfer) {
  OpTest bins("MelWeightMatrix", 17);
  bins.input("bins", scalar64(0)).input("len", scalar64(32)).input("rate", scalar64(16000));
  bins.input("lo", floats({}, {100})).input("hi", floats({}, {7000}));
  expect_error(bins.run(), "num_mel_bins is 0");
  OpTest range("MelWeightMatrix", 17);
  range.input("bins", scalar64(3)).input("len", scalar64(32)).input("rate", scalar64(16000));
  range.input("lo", floats({}, {100})).input("hi", floats({}, {40000}));
  expect_error(range.run(), "map outside");
  EXPECT_EQ(InferTest("MelWeightMatrix", 17)
                .constant(scalar64(8))
                .constant(scalar64(64))
                .tensor(DataType::kInt64, Shape::of({}))
                .tensor(DataType::kFloat32, Shape::of({}))
                .tensor(DataType::kFloat32, Shape::of({}))
                .str(),
            "float[33,8]");
}

}  // namespace
}  // namespace kiln::test
