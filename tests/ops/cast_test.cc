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

// ---- float8 / float4 / int4 / int2 ------------------------------------------------------
// Expected bytes: onnx.reference Cast (opset 25, ml_dtypes) on these float32 values.

const std::vector<float> kSmallInputs = {0,    -0.0f, 0.3f, 1.0625f,   -3.3f, 17,   250,  464,
                                         465,  1000,  INFINITY, -INFINITY, NAN, 1e-3f, -2e-9f, 61440};

std::vector<int> bytes_of(const Tensor& t) {
  std::vector<int> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(t.data<uint8_t>()[i]);
  return out;
}

std::vector<int> cast_bytes(DataType to, int64_t saturate, const std::vector<float>& x = kSmallInputs) {
  Tensor out = cast(floats({static_cast<int64_t>(x.size())}, x), to, 25,
                    {ir::Attribute::make_int("saturate", saturate)});
  EXPECT_EQ(out.dtype(), to);
  return bytes_of(out);
}

TEST(Cast, Float8RoundsToNearestEvenAndSaturates) {
  EXPECT_EQ(cast_bytes(DataType::kFloat8E4M3FN, 1),
            (std::vector<int>{0, 128, 42, 56, 197, 88, 120, 126, 126, 126, 126, 254, 127, 1, 128, 126}));
  EXPECT_EQ(cast_bytes(DataType::kFloat8E4M3FN, 0),
            (std::vector<int>{0, 128, 42, 56, 197, 88, 120, 126, 127, 127, 127, 255, 127, 1, 128, 127}));
  EXPECT_EQ(cast_bytes(DataType::kFloat8E4M3FNUZ, 1),
            (std::vector<int>{0, 0, 50, 64, 205, 96, 127, 127, 127, 127, 127, 255, 128, 1, 0, 127}));
  EXPECT_EQ(cast_bytes(DataType::kFloat8E4M3FNUZ, 0),
            (std::vector<int>{0, 0, 50, 64, 205, 96, 128, 128, 128, 128, 128, 128, 128, 1, 0, 128}));
  EXPECT_EQ(cast_bytes(DataType::kFloat8E5M2, 1),
            (std::vector<int>{0, 128, 53, 60, 195, 76, 92, 95, 95, 100, 123, 251, 126, 20, 128, 123}));
  EXPECT_EQ(cast_bytes(DataType::kFloat8E5M2, 0),
            (std::vector<int>{0, 128, 53, 60, 195, 76, 92, 95, 95, 100, 124, 252, 126, 20, 128, 124}));
  EXPECT_EQ(cast_bytes(DataType::kFloat8E5M2FNUZ, 1),
            (std::vector<int>{0, 0, 57, 64, 199, 80, 96, 99, 99, 104, 127, 255, 128, 24, 0, 127}));
  EXPECT_EQ(cast_bytes(DataType::kFloat8E5M2FNUZ, 0),
            (std::vector<int>{0, 0, 57, 64, 199, 80, 96, 99, 99, 104, 128, 128, 128, 24, 0, 128}));
  EXPECT_EQ(cast_bytes(DataType::kFloat4E2M1, 1),
            (std::vector<int>{0, 8, 1, 2, 13, 7, 7, 7, 7, 7, 7, 15, 8, 0, 8, 7}));
}

TEST(Cast, Float8BackToFloat) {
  // Decoding is exact: 0.3 -> 0.3125, -3.3 -> -3.25 (e4m3fn) / -3.5 (e5m2); NaN, inf and -0 survive.
  Tensor f8 = cast(floats({5}, {0.3f, -3.3f, NAN, -0.0f, 448}), DataType::kFloat8E4M3FN);
  expect_values(cast(f8, DataType::kFloat32), DataType::kFloat32, {5},
                {0.3125, -3.25, std::numeric_limits<double>::quiet_NaN(), -0.0, 448});
  Tensor e5 = cast(floats({3}, {-3.3f, 1e6f, 1.5e-5f}), DataType::kFloat8E5M2, 25,
                   {ir::Attribute::make_int("saturate", 0)});
  expect_values(cast(e5, DataType::kFloat64), DataType::kFloat64, {3}, {-3.5, kInf, 1.52587890625e-05});
  Tensor fn = cast(floats({2}, {NAN, 240}), DataType::kFloat8E4M3FNUZ);
  expect_values(cast(fn, DataType::kFloat16), DataType::kFloat16, {2}, {kNaN, 240});
  Tensor s = cast(cast(floats({1}, {-1.5}), DataType::kFloat4E2M1), DataType::kString);
  EXPECT_EQ(s.data<std::string>()[0], "-1.5");
}

TEST(Cast, Float8E8M0RoundModes) {
  const std::vector<float> x = {1.0f, 1.5f, 3.0f, 0.75f, std::ldexp(1.5f, 127), 0.0f, INFINITY, -4.0f};
  auto run = [&](const char* mode, int64_t saturate) {
    Tensor out = cast(floats({8}, x), DataType::kFloat8E8M0, 25,
                      {ir::Attribute::make_int("saturate", saturate), ir::Attribute::make_string("round_mode", mode)});
    return bytes_of(out);
  };
  EXPECT_EQ(run("up", 1), (std::vector<int>{127, 128, 129, 127, 254, 0, 255, 129}));
  EXPECT_EQ(run("up", 0), (std::vector<int>{127, 128, 129, 127, 255, 0, 255, 129}));
  EXPECT_EQ(run("nearest", 1), (std::vector<int>{127, 128, 129, 127, 254, 0, 255, 129}));
  EXPECT_EQ(run("down", 0), (std::vector<int>{127, 127, 128, 126, 254, 0, 255, 129}));
  Tensor back = cast(cast(floats({2}, {0.25f, 8}), DataType::kFloat8E8M0), DataType::kFloat32);
  expect_values(back, DataType::kFloat32, {2}, {0.25, 8});
  OpTest bad("Cast", 25);
  bad.input("x", floats({1}, {1})).attr(ir::Attribute::make_int("to", static_cast<int64_t>(DataType::kFloat8E8M0)));
  bad.attr(ir::Attribute::make_string("round_mode", "sideways"));
  expect_error(bad, "round_mode must be");
}

// int4/int2 elements are stored one per byte as their (sign-extended) value.
std::vector<int> small_ints(const Tensor& t) {
  std::vector<int> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(t.data<int8_t>()[i]);
  return out;
}

TEST(Cast, SmallIntegersWrap) {
  Tensor x = floats({static_cast<int64_t>(kSmallInputs.size())}, kSmallInputs);
  EXPECT_EQ(small_ints(cast(x, DataType::kInt4)), (std::vector<int>{0, 0, 0, 1, -3, 1, -6, 0, 1, -8, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(small_ints(cast(x, DataType::kUInt2)), (std::vector<int>{0, 0, 0, 1, 1, 1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0}));
  Tensor from_int = cast(int64s({4}, {7, 8, -9, 20}), DataType::kInt4);
  EXPECT_EQ(small_ints(from_int), (std::vector<int>{7, -8, 7, 4}));
  expect_values(cast(from_int, DataType::kInt32), DataType::kInt32, {4}, {7, -8, 7, 4});
  Tensor f8 = cast(cast(int64s({2}, {-1, 1}), DataType::kInt2), DataType::kFloat8E4M3FN);
  EXPECT_EQ(bytes_of(f8), (std::vector<int>{0xB8, 0x38}));  // -1.0 and 1.0 in e4m3fn
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
