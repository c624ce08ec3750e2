// Tests of Cast and CastLike.
#include <cmath>
#include <limits>

#include "ops/elementwise_test_util.h"

namespace kiln::test {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor cast(Tensor x, DataType to, int64_t opset = 21, std::vector<ir::Attribute> attrs = {}) {
  OpTest t("Cast", opset);
  t.input("x", std::move(x)).attr(ir::Attribute::make_int("to", static_cast<int64_t>(to)));
  for (auto& a : attrs) t.attr(std::move(a));
  return run1(t);
}

TEST(Cast, FloatToIntegerTruncatesTowardZero) {
  expect_values(cast(floats({4}, {1.9f, -1.9f, 0.5f, -0.0f}), DataType::kInt32), DataType::kInt32, {4},
                {1, -1, 0, 0});
  expect_values(cast(doubles({2}, {300.7, -3.2}), DataType::kInt16), DataType::kInt16, {2}, {300, -3});
}

TEST(Cast, IntegerNarrowingWraps) {
  expect_values(cast(make_tensor(DataType::kInt16, {2}, std::vector<int>{200, -129}), DataType::kInt8),
                DataType::kInt8, {2}, {-56, 127});
  expect_values(cast(int64s({1}, {-1}), DataType::kUInt32), DataType::kUInt32, {1}, {4294967295.0});
}

TEST(Cast, BoolAndHalfTypes) {
  expect_values(cast(floats({4}, {0, -0.0f, 2, NAN}), DataType::kBool), DataType::kBool, {4}, {0, 0, 1, 1});
  expect_values(cast(bools({2}, {1, 0}), DataType::kFloat32), DataType::kFloat32, {2}, {1, 0});
  expect_values(cast(floats({3}, {1.0009765625f, 65520, -1e-8f}), DataType::kFloat16), DataType::kFloat16, {3},
                {1.0009765625, kInf, -0.0});
  expect_values(cast(floats({2}, {1.00390625f, 3.0e38f}), DataType::kBFloat16), DataType::kBFloat16, {2},
                {1.0, 3.00405527047391e38});  // as ml_dtypes.bfloat16 rounds
  expect_values(cast(make_tensor(DataType::kFloat16, {2}, std::vector<double>{0.5, -2}), DataType::kBFloat16),
                DataType::kBFloat16, {2}, {0.5, -2});
}

TEST(Cast, StringsBothWays) {
  Tensor s = cast(floats({3}, {1.5f, -2, NAN}), DataType::kString);
  ASSERT_EQ(s.dtype(), DataType::kString);
  EXPECT_EQ(s.data<std::string>()[0], "1.5");
  EXPECT_EQ(s.data<std::string>()[1], "-2");
  EXPECT_EQ(s.data<std::string>()[2], "NaN");
  expect_values(cast(strings({4}, {"3.25", "-1e2", "INF", "nan"}), DataType::kFloat32), DataType::kFloat32, {4},
                {3.25, -100, kInf, kNaN});
  expect_values(cast(strings({1}, {"42"}), DataType::kInt64), DataType::kInt64, {1}, {42});
  OpTest bad("Cast", 21);
  bad.input("x", strings({1}, {"hello"})).attr(ir::Attribute::make_int("to", 1));
  expect_error(bad, "cannot parse 'hello'");
}

TEST(Cast, SameTypeAndEmpty) {
  expect_values(cast(floats({2}, {1, 2}), DataType::kFloat32), DataType::kFloat32, {2}, {1, 2});
  expect_values(cast(floats({0, 2}, {}), DataType::kInt8), DataType::kInt8, {0, 2}, {});
}

TEST(Cast, Opset1TakesATypeName) {
  OpTest t("Cast", 1);
  t.input("x", floats({2}, {1.5, -2.5})).attr(ir::Attribute::make_string("to", "INT32"));
  expect_values(run1(t), DataType::kInt32, {2}, {1, -2});
  OpTest bad("Cast", 1);
  bad.input("x", floats({1}, {1})).attr(ir::Attribute::make_string("to", "QUUX"));
  expect_error(bad, "unknown type 'QUUX'");
}

TEST(Cast, ErrorPaths) {
  OpTest no_to("Cast", 21);
  no_to.input("x", floats({1}, {1}));
  expect_error(no_to, "'to' is required");
  OpTest bad_to("Cast", 21);
  bad_to.input("x", floats({1}, {1})).attr(ir::Attribute::make_int("to", 99));
  expect_error(bad_to, "not a tensor element type");
  OpTest complex("Cast", 21);
  complex.input("x", floats({1}, {1})).attr(ir::Attribute::make_int("to", 14));
  expect_error(complex, "complex64");
}

TEST(CastLike, TakesTheSecondInputsType) {
  OpTest t("CastLike", 15);
  t.input("x", floats({2}, {1.7f, -3})).input("like", int64s({0}, {}));
  expect_values(run1(t), DataType::kInt64, {2}, {1, -3});
  OpTest old("CastLike", 14);
  old.input("x", floats({1}, {1})).input("like", int64s({1}, {1}));
  expect_error(old, "no kernel for opset 14");
}

TEST(CastInfer, Types) {
  EXPECT_EQ(InferTest("Cast", 21)
                .tensor(DataType::kFloat32, sym_shape({Dim::sym("N"), 2}))
                .attr(ir::Attribute::make_int("to", 7))
                .str(),
            "int64[N,2]");
  EXPECT_EQ(InferTest("CastLike", 21)
                .tensor(DataType::kFloat32, sym_shape({3}))
                .tensor(DataType::kFloat16, sym_shape({}))
                .str(),
            "float16[3]");
}

}  // namespace
}  // namespace kiln::test
