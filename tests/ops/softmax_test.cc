// Tests of Softmax, LogSoftmax and Hardmax. x = [[1,2,3],[4,5,6]] as [1,2,3];
// expected values from numpy (exp(x - max) / sum), float32.
#include <cmath>
#include <limits>

#include "ops/elementwise_test_util.h"

namespace kiln::test {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Tensor x123() { return floats({1, 2, 3}, {1, 2, 3, 4, 5, 6}); }

Tensor run_axis(const std::string& op, int64_t opset, Tensor x, std::optional<int64_t> axis = std::nullopt) {
  OpTest t(op, opset);
  t.input("x", std::move(x));
  if (axis) t.attr(ir::Attribute::make_int("axis", *axis));
  return run1(t);
}

const std::vector<double> kRows = {0.090030573, 0.24472846, 0.66524094, 0.090030573, 0.24472846, 0.66524094};
const std::vector<double> kCols = {0.047425874, 0.047425874, 0.047425874, 0.95257413, 0.95257413, 0.95257413};
const std::vector<double> kAll = {0.0042697783, 0.011606461, 0.031549633, 0.085760795, 0.23312199, 0.63369131};

TEST(Softmax, Opset11CoercesTo2DAtAxis) {
  expect_near(run_axis("Softmax", 11, x123()), {1, 2, 3}, kAll);  // axis 1: [1, 6]
  expect_near(run_axis("Softmax", 11, x123(), 2), {1, 2, 3}, kRows);
  expect_near(run_axis("Softmax", 1, x123(), 0), {1, 2, 3}, kAll);  // [1, 6] again
  expect_near(run_axis("Softmax", 11, x123(), -1), {1, 2, 3}, kRows);
}

TEST(Softmax, Opset13NormalizesAlongAxis) {
  expect_near(run_axis("Softmax", 13, x123()), {1, 2, 3}, kRows);  // axis -1
  expect_near(run_axis("Softmax", 13, x123(), 1), {1, 2, 3}, kCols);
  expect_near(run_axis("Softmax", 13, x123(), 0), {1, 2, 3}, {1, 1, 1, 1, 1, 1});
}

TEST(Softmax, StableForLargeInputsAndPropagatesNaN) {
  expect_near(run_axis("Softmax", 13, floats({3}, {1000, 1000, -INFINITY})), {3}, {0.5, 0.5, 0});
  expect_near(run_axis("Softmax", 13, floats({2, 2}, {1, NAN, 1, 1})), {2, 2}, {kNaN, kNaN, 0.5, 0.5});
  expect_near(run_axis("LogSoftmax", 13, floats({2}, {1000, 0})), {2}, {0, -1000});
}

TEST(Softmax, Float16Float64AndEmpty) {
  Tensor h = run_axis("Softmax", 13, make_tensor(DataType::kFloat16, {2}, std::vector<double>{0, 0}));
  expect_values(h, DataType::kFloat16, {2}, {0.5, 0.5});
  expect_near(run_axis("Softmax", 13, doubles({2}, {0, std::log(3.0)})), {2}, {0.25, 0.75}, 1e-15, 1e-15);
  expect_values(run_axis("Softmax", 13, floats({0, 3}, {})), DataType::kFloat32, {0, 3}, {});
}

TEST(Softmax, Float16RoundsLikeItsFunctionBody) {
  // Exp(x - max) and their sum are float16 tensors in the spec's definition;
  // expected: onnx.reference (numpy float16). Rounding only the quotient gives
  // 0.95751953125, 9.721517562866211e-05, 0.03729248046875, 0.00518798828125.
  Tensor x = make_tensor(DataType::kFloat16, {4},
                         std::vector<double>{4.08203125, -5.11328125, 0.83642578125, -1.1357421875});
  expect_values(run_axis("Softmax", 13, x), DataType::kFloat16, {4},
                {0.95703125, 9.715557098388672e-05, 0.037261962890625, 0.00518035888671875});
}

TEST(LogSoftmax, BothForms) {
  expect_near(run_axis("LogSoftmax", 13, x123()), {1, 2, 3},
              {-2.4076059, -1.407606, -0.40760598, -2.4076059, -1.407606, -0.40760598});
  expect_near(run_axis("LogSoftmax", 11, x123()), {1, 2, 3},
              {-5.4561934, -4.4561934, -3.4561934, -2.4561934, -1.4561934, -0.45619333});
}

TEST(Hardmax, FirstMaxWins) {
  expect_values(run_axis("Hardmax", 13, floats({2, 3}, {1, 3, 3, 5, 0, -1})), DataType::kFloat32, {2, 3},
                {0, 1, 0, 1, 0, 0});
  expect_values(run_axis("Hardmax", 13, floats({2, 2}, {1, 3, 3, 0}), 0), DataType::kFloat32, {2, 2}, {0, 1, 1, 0});
  expect_values(run_axis("Hardmax", 11, floats({2, 2}, {1, 3, 3, 0}), 0), DataType::kFloat32, {2, 2}, {0, 1, 0, 0});
}

TEST(Softmax, ErrorPaths) {
  OpTest t("Softmax", 13);
  t.input("x", x123()).attr(ir::Attribute::make_int("axis", 3));
  expect_error(t, "axis 3 is out of range");
  OpTest u("Softmax", 13);
  u.input("x", int32s({2}, {1, 2}));
  expect_error(u, "not supported");
  OpTest v("Softmax", 13);
  v.input("x", floats({}, {1}));
  expect_error(v, "out of range");
}

TEST(SoftmaxInfer, SameAsInput) {
  EXPECT_EQ(InferTest("Softmax", 13).tensor(DataType::kFloat32, sym_shape({Dim::sym("N"), 10})).str(), "float[N,10]");
}

}  // namespace
}  // namespace kiln::test
