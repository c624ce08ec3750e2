// Tests of the Reduce* ops and ArgMax/ArgMin. x below is
// numpy.arange(24).reshape(2,3,4) / 4 - 2 (float32); expected values from numpy.
#include <cmath>
#include <limits>

#include "ops/elementwise_test_util.h"

namespace kiln::test {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor x234() {
  std::vector<float> v;
  for (int i = 0; i < 24; ++i) v.push_back(static_cast<float>(i) / 4 - 2);
  return floats({2, 3, 4}, v);
}

ir::Attribute axes_attr(std::vector<int64_t> a) { return ir::Attribute::make_ints("axes", std::move(a)); }
ir::Attribute keepdims(int64_t k) { return ir::Attribute::make_int("keepdims", k); }

// A reduction with axes as an attribute (old opsets) or input (new ones).
Tensor reduce(const std::string& op, int64_t opset, const Tensor& x, std::vector<int64_t> axes, bool keep = true,
              bool axes_as_input = true) {
  OpTest t(op, opset);
  t.input("x", x);
  if (axes_as_input) {
    t.constant("axes", int64s({static_cast<int64_t>(axes.size())}, axes));
  } else {
    t.attr(axes_attr(axes));
  }
  t.attr(keepdims(keep ? 1 : 0));
  return run1(t);
}

TEST(ReduceSum, AxesAttributeBeforeOpset13AndInputAfter) {
  expect_near(reduce("ReduceSum", 11, x234(), {1}, true, false), {2, 1, 4}, {-3, -2.25, -1.5, -0.75, 6, 6.75, 7.5, 8.25});
  expect_near(reduce("ReduceSum", 13, x234(), {1}), {2, 1, 4}, {-3, -2.25, -1.5, -0.75, 6, 6.75, 7.5, 8.25});
  expect_near(reduce("ReduceSum", 13, x234(), {0, 2}, false), {3}, {-1, 7, 15});
  expect_near(reduce("ReduceSum", 13, x234(), {-1}, false), {2, 3}, {-6.5, -2.5, 1.5, 5.5, 9.5, 13.5});
  // Opset 11 has no axes input.
  OpTest t("ReduceSum", 11);
  t.input("x", x234()).constant("axes", int64s({1}, {1}));
  expect_error(t, "axes input");
}

TEST(ReduceSum, NoAxesReducesAllOrIsANoop) {
  OpTest all("ReduceSum", 13);
  all.input("x", x234()).attr(keepdims(0));
  expect_near(run1(all), {}, {21});
  OpTest noop("ReduceSum", 13);
  noop.input("x", x234()).attr(ir::Attribute::make_int("noop_with_empty_axes", 1));
  expect_near(run1(noop), {2, 3, 4}, values_of(x234()));
  OpTest empty_axes("ReduceSum", 13);  // an empty axes tensor counts as no axes
  empty_axes.input("x", x234()).constant("axes", int64s({0}, {})).attr(keepdims(1));
  expect_near(run1(empty_axes), {1, 1, 1}, {21});
}

TEST(ReduceMean, Opset13AttributeVersusOpset18Input) {
  expect_near(reduce("ReduceMean", 13, x234(), {2}, true, false), {2, 3, 1},
              {-1.625, -0.625, 0.375, 1.375, 2.375, 3.375});
  expect_near(reduce("ReduceMean", 18, x234(), {2}), {2, 3, 1}, {-1.625, -0.625, 0.375, 1.375, 2.375, 3.375});
  // Opset 18 with the old attribute has no axes input: reduces everything.
  OpTest t("ReduceMean", 18);
  t.input("x", x234()).attr(axes_attr({2}));
  expect_near(run1(t), {1, 1, 1}, {0.875});
}

TEST(Reduce, OtherReductions) {
  Tensor x = x234();
  expect_near(reduce("ReduceMax", 18, x, {1}), {2, 1, 4}, {0, 0.25, 0.5, 0.75, 3, 3.25, 3.5, 3.75});
  expect_near(reduce("ReduceMin", 18, x, {0, 2}, false), {3}, {-2, -1, 0});
  expect_near(reduce("ReduceProd", 18, x, {2}, false), {2, 3}, {6.5625, 0.09375, 0, 3.28125, 30.9375, 127.96875});
  expect_near(reduce("ReduceL1", 18, x, {0, 2}, false), {3}, {12, 12, 15});
  expect_near(reduce("ReduceL2", 18, x, {1}, false), {2, 4},
              {2.236068, 1.920286, 1.658312, 1.47902, 3.741657, 4.145781, 4.555217, 4.968652});
  expect_near(reduce("ReduceSumSquare", 18, x, {0, 2}, false), {3}, {18.75, 24.75, 46.75});
  expect_near(reduce("ReduceLogSum", 18, floats({2, 2}, {1, 2, 3, 4}), {1}, false), {2}, {1.0986123, 1.9459101});
  expect_near(reduce("ReduceLogSumExp", 18, x, {0, 2}, false), {3}, {2.848604, 3.848604, 4.848604});
  expect_near(reduce("ReduceLogSumExp", 18, x, {2}, false), {2, 3},
              {-0.1999836, 0.8000163, 1.800016, 2.800016, 3.800016, 4.800016});
  // Old opsets take axes as an attribute.
  expect_near(reduce("ReduceMax", 13, x, {1}, true, false), {2, 1, 4}, {0, 0.25, 0.5, 0.75, 3, 3.25, 3.5, 3.75});
}

TEST(Reduce, NonContiguousAxes) {
  // Axes {0, 2} of [2,3,2,2]: kept dims between reduced ones use the general path.
  std::vector<float> v(24);
  for (int i = 0; i < 24; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i);
  // numpy.arange(24).reshape(2,3,2,2).sum(axis=(0,2))
  expect_near(reduce("ReduceSum", 13, floats({2, 3, 2, 2}, v), {0, 2}, false), {3, 2},
              {28, 32, 44, 48, 60, 64});
}

TEST(Reduce, LogSumExpIsStable) {
  expect_near(reduce("ReduceLogSumExp", 18, floats({3}, {1000, 1000, -INFINITY}), {0}, false), {}, {1000.6931472});
  expect_values(reduce("ReduceLogSumExp", 18, floats({2}, {-INFINITY, -INFINITY}), {0}, false), DataType::kFloat32,
                {}, {-kInf});
  expect_values(reduce("ReduceMax", 18, floats({3}, {1, NAN, 2}), {0}, false), DataType::kFloat32, {}, {kNaN});
}

TEST(Reduce, EmptySetGivesIdentity) {
  Tensor empty = floats({2, 0}, {});
  expect_values(reduce("ReduceSum", 13, empty, {1}, false), DataType::kFloat32, {2}, {0, 0});
  expect_values(reduce("ReduceProd", 18, empty, {1}, false), DataType::kFloat32, {2}, {1, 1});
  expect_values(reduce("ReduceMax", 18, empty, {1}, false), DataType::kFloat32, {2}, {-kInf, -kInf});
  expect_values(reduce("ReduceMin", 18, empty, {1}, false), DataType::kFloat32, {2}, {kInf, kInf});
  expect_values(reduce("ReduceL2", 18, empty, {1}, false), DataType::kFloat32, {2}, {0, 0});
  expect_values(reduce("ReduceLogSum", 18, empty, {1}, false), DataType::kFloat32, {2}, {-kInf, -kInf});
  expect_values(reduce("ReduceLogSumExp", 18, empty, {1}, false), DataType::kFloat32, {2}, {-kInf, -kInf});
  expect_values(reduce("ReduceMean", 18, empty, {1}, false), DataType::kFloat32, {2}, {kNaN, kNaN});
  Tensor ints = int32s({0, 3}, {});
  expect_values(reduce("ReduceMax", 18, ints, {0}, false), DataType::kInt32, {3},
                {-2147483648.0, -2147483648.0, -2147483648.0});
  // Reducing the other axis leaves an empty output.
  expect_values(reduce("ReduceSum", 13, empty, {0}, true), DataType::kFloat32, {1, 0}, {});
}

TEST(Reduce, IntegerAndBoolTypes) {
  Tensor x = int64s({2, 3}, {1, -2, 3, 4, 5, -6});
  expect_values(reduce("ReduceSum", 13, x, {1}, false), DataType::kInt64, {2}, {2, 3});
  expect_values(reduce("ReduceMean", 18, x, {1}, false), DataType::kInt64, {2}, {0, 1});  // truncated
  expect_values(reduce("ReduceProd", 18, x, {0}, false), DataType::kInt64, {3}, {4, -10, -18});
  expect_values(reduce("ReduceL1", 18, x, {1}, false), DataType::kInt64, {2}, {6, 15});
  expect_values(reduce("ReduceSumSquare", 18, x, {1}, false), DataType::kInt64, {2}, {14, 77});
  expect_values(reduce("ReduceMin", 20, x, {1}, false), DataType::kInt64, {2}, {-2, -6});
  expect_values(reduce("ReduceMax", 20, bools({2, 2}, {0, 1, 0, 0}), {1}, false), DataType::kBool, {2}, {1, 0});
  expect_values(reduce("ReduceMin", 20, bools({2, 2}, {1, 1, 0, 1}), {1}, false), DataType::kBool, {2}, {1, 0});
  expect_values(reduce("ReduceMax", 20, make_tensor(DataType::kUInt8, {3}, std::vector<int>{3, 250, 7}), {0}, false),
                DataType::kUInt8, {}, {250});
  Tensor h = reduce("ReduceSum", 13, make_tensor(DataType::kFloat16, {3}, std::vector<double>{0.5, 0.25, 1024}), {0});
  expect_values(h, DataType::kFloat16, {1}, {1025});  // 1024.75 (summed in double) rounded to fp16
}

TEST(Reduce, ScalarInput) {
  OpTest t("ReduceSum", 13);
  t.input("x", floats({}, {5}));
  expect_values(run1(t), DataType::kFloat32, {}, {5});
}

TEST(Reduce, ErrorPaths) {
  OpTest bad_axis("ReduceSum", 13);
  bad_axis.input("x", x234()).constant("axes", int64s({1}, {3}));
  expect_error(bad_axis, "out of range");
  OpTest dup("ReduceMean", 13);
  dup.input("x", x234()).attr(axes_attr({1, -2}));
  expect_error(dup, "appears twice");
  OpTest float_axes("ReduceSum", 13);
  float_axes.input("x", x234()).constant("axes", floats({1}, {1}));
  expect_error(float_axes, "int32 or int64");
  OpTest str("ReduceSum", 13);
  str.input("x", strings({1}, {"a"}));
  expect_error(str, "not supported");
  OpTest lse_int("ReduceLogSumExp", 18);
  lse_int.input("x", int32s({1}, {1}));
  expect_error(lse_int, "not supported");
}

// ---- ArgMax / ArgMin ---------------------------------------------------------------

TEST(ArgMax, AxisKeepdimsAndSelectLastIndex) {
  Tensor x = floats({2, 3}, {1, 3, 3, 4, 0, 4});
  OpTest t("ArgMax", 13);
  t.input("x", x).attr(ir::Attribute::make_int("axis", 1));
  expect_values(run1(t), DataType::kInt64, {2, 1}, {1, 0});
  OpTest last("ArgMax", 13);
  last.input("x", x).attr(ir::Attribute::make_int("axis", -1)).attr(keepdims(0));
  last.attr(ir::Attribute::make_int("select_last_index", 1));
  expect_values(run1(last), DataType::kInt64, {2}, {2, 2});
  OpTest mn("ArgMin", 11);
  mn.input("x", x).attr(keepdims(0));  // axis defaults to 0
  expect_values(run1(mn), DataType::kInt64, {3}, {0, 1, 0});
  OpTest ints("ArgMin", 13);
  ints.input("x", int32s({4}, {5, -1, 7, -1})).attr(ir::Attribute::make_int("select_last_index", 1));
  expect_values(run1(ints), DataType::kInt64, {1}, {3});
}

TEST(ArgMax, NaNWinsLikeNumpy) {
  OpTest t("ArgMax", 13);
  t.input("x", floats({4}, {1, NAN, 5, NAN}));
  expect_values(run1(t), DataType::kInt64, {1}, {1});
  OpTest u("ArgMin", 13);
  u.input("x", floats({3}, {1, NAN, -5}));
  expect_values(run1(u), DataType::kInt64, {1}, {1});
}

TEST(ArgMax, ErrorPaths) {
  OpTest t("ArgMax", 13);
  t.input("x", floats({2, 0}, {})).attr(ir::Attribute::make_int("axis", 1));
  expect_error(t, "axis 1 of size 0");
  OpTest u("ArgMax", 13);
  u.input("x", floats({2}, {1, 2})).attr(ir::Attribute::make_int("axis", 2));
  expect_error(u, "out of range");
  // A 0-sized dim elsewhere is fine: the output is empty.
  OpTest v("ArgMax", 13);
  v.input("x", floats({0, 2}, {})).attr(ir::Attribute::make_int("axis", 1));
  expect_values(run1(v), DataType::kInt64, {0, 1}, {});
}

// ---- Shape inference ------------------------------------------------------------------

TEST(ReductionInfer, Shapes) {
  Shape s = sym_shape({Dim::sym("N"), 3, 4});
  EXPECT_EQ(InferTest("ReduceSum", 13).tensor(DataType::kFloat32, s).constant(int64s({1}, {-1})).str(), "float[N,3,1]");
  EXPECT_EQ(InferTest("ReduceSum", 11).tensor(DataType::kFloat32, s).attr(axes_attr({0, 2})).attr(keepdims(0)).str(),
            "float[3]");
  EXPECT_EQ(InferTest("ReduceMean", 18).tensor(DataType::kFloat32, s).tensor(DataType::kInt64, sym_shape({1})).str(),
            "float[?,?,?]");
  EXPECT_EQ(InferTest("ReduceMean", 18)
                .tensor(DataType::kFloat32, s)
                .tensor(DataType::kInt64, sym_shape({1}))
                .attr(keepdims(0))
                .str(),
            "float*");
  EXPECT_EQ(InferTest("ReduceMax", 18).tensor(DataType::kInt32, s).attr(keepdims(0)).str(), "int32[]");
  EXPECT_EQ(InferTest("ReduceMax", 18)
                .tensor(DataType::kInt32, s)
                .attr(ir::Attribute::make_int("noop_with_empty_axes", 1))
                .str(),
            "int32[N,3,4]");
  EXPECT_EQ(InferTest("ArgMax", 13).tensor(DataType::kFloat16, s).attr(ir::Attribute::make_int("axis", 0)).str(),
            "int64[1,3,4]");
  EXPECT_EQ(InferTest("ArgMin", 13).tensor(DataType::kFloat16, s).attr(keepdims(0)).str(), "int64[3,4]");
  std::string bad = InferTest("ReduceSum", 13).tensor(DataType::kFloat32, s).constant(int64s({1}, {5})).str();
  EXPECT_NE(bad.find("out of range"), std::string::npos) << bad;
  EXPECT_EQ(InferTest("ReduceSum", 13).tensor(DataType::kFloat32, Shape()).str(), "float*");
}

}  // namespace
}  // namespace kiln::test
