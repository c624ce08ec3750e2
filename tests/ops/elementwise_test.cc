// Tests of the elementwise arithmetic and unary math ops. Expected values
// with more than a few digits come from onnx.reference / numpy (float32).
#include <chrono>
#include <cmath>
#include <limits>

#include "core/thread_pool.h"
#include "ops/elementwise_test_util.h"

namespace kiln::test {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor binary(const std::string& op, int64_t opset, Tensor a, Tensor b) {
  OpTest t(op, opset);
  t.input("a", std::move(a)).input("b", std::move(b));
  return run1(t);
}

Tensor unary(const std::string& op, int64_t opset, Tensor x) {
  OpTest t(op, opset);
  t.input("x", std::move(x));
  return run1(t);
}

// ---- Add / Sub / Mul / Div -------------------------------------------------------

TEST(Add, SameShape) {
  expect_values(binary("Add", 14, floats({2, 2}, {1, 2, 3, 4}), floats({2, 2}, {10, 20, 30, 40})),
                DataType::kFloat32, {2, 2}, {11, 22, 33, 44});
}

TEST(Add, ScalarBroadcastBothSides) {
  expect_values(binary("Add", 14, floats({3}, {1, 2, 3}), floats({}, {10})), DataType::kFloat32, {3}, {11, 12, 13});
  expect_values(binary("Sub", 14, floats({}, {10}), floats({3}, {1, 2, 3})), DataType::kFloat32, {3}, {9, 8, 7});
}

TEST(Add, MultidirectionalBroadcast) {
  // [2,1,3] + [4,1] -> [2,4,3]
  Tensor a = floats({2, 1, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = floats({4, 1}, {10, 20, 30, 40});
  std::vector<double> want;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k) want.push_back((i * 3 + k + 1) + (j + 1) * 10);
  expect_values(binary("Add", 14, a, b), DataType::kFloat32, {2, 4, 3}, want);
}

TEST(Add, ChannelBiasBroadcast) {
  // [1,2,2,2] + [2,1,1]: the ResNet pattern (merged to [2, 4] with a scalar per row).
  Tensor a = floats({1, 2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  Tensor b = floats({2, 1, 1}, {100, 200});
  expect_values(binary("Add", 14, a, b), DataType::kFloat32, {1, 2, 2, 2},
                {100, 101, 102, 103, 204, 205, 206, 207});
}

TEST(Add, MiddleBroadcastAndZeroSized) {
  // [2,3,2] * [2,1,2]
  Tensor a = floats({2, 3, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  Tensor b = floats({2, 1, 2}, {1, 10, 100, 1000});
  expect_values(binary("Mul", 14, a, b), DataType::kFloat32, {2, 3, 2},
                {1, 20, 3, 40, 5, 60, 700, 8000, 900, 10000, 1100, 12000});
  expect_values(binary("Add", 14, floats({0, 3}, {}), floats({1, 3}, {1, 2, 3})), DataType::kFloat32, {0, 3}, {});
}

TEST(Add, IncompatibleShapesAreAnError) {
  OpTest t("Add", 14);
  t.input("a", floats({2, 3}, {1, 2, 3, 4, 5, 6})).input("b", floats({2}, {1, 2}));
  expect_error(t, "cannot be broadcast");
}

TEST(Add, MixedTypesAreAnError) {
  OpTest t("Add", 14);
  t.input("a", floats({1}, {1})).input("b", int64s({1}, {1}));
  expect_error(t, "different element types");
}

TEST(Add, StringIsUnsupported) {
  OpTest t("Add", 14);
  t.input("a", strings({1}, {"a"})).input("b", strings({1}, {"b"}));
  expect_error(t, "not supported");
}

TEST(Add, IntegerTypesWrap) {
  expect_values(binary("Add", 14, make_tensor(DataType::kInt8, {2}, std::vector<int>{127, -128}),
                       make_tensor(DataType::kInt8, {2}, std::vector<int>{1, -1})),
                DataType::kInt8, {2}, {-128, 127});
  expect_values(binary("Mul", 14, make_tensor(DataType::kUInt16, {1}, std::vector<int>{65535}),
                       make_tensor(DataType::kUInt16, {1}, std::vector<int>{65535})),
                DataType::kUInt16, {1}, {1});
  Tensor big = int64s({1}, {std::numeric_limits<int64_t>::max()});
  Tensor r = binary("Add", 14, big, int64s({1}, {1}));
  EXPECT_EQ(r.data<int64_t>()[0], std::numeric_limits<int64_t>::min());
}

TEST(Add, Float16AndBFloat16) {
  expect_values(binary("Add", 14, make_tensor(DataType::kFloat16, {2}, std::vector<double>{1.5, 2048}),
                       make_tensor(DataType::kFloat16, {2}, std::vector<double>{0.25, 1})),
                DataType::kFloat16, {2}, {1.75, 2048});  // 2049 rounds to even in fp16
  expect_values(binary("Mul", 14, make_tensor(DataType::kBFloat16, {2}, std::vector<double>{3, -0.5}),
                       make_tensor(DataType::kBFloat16, {}, std::vector<double>{2})),
                DataType::kBFloat16, {2}, {6, -1});
}

TEST(Add, LegacyOpsetBroadcastAttribute) {
  {
    OpTest t("Add", 6);  // broadcast=1 at the suffix: numpy rules
    t.input("a", floats({2, 2}, {1, 2, 3, 4})).input("b", floats({2}, {10, 20}));
    t.attr(ir::Attribute::make_int("broadcast", 1));
    expect_values(run1(t), DataType::kFloat32, {2, 2}, {11, 22, 13, 24});
  }
  {
    OpTest t("Add", 6);  // no broadcast attribute: shapes must match
    t.input("a", floats({2, 2}, {1, 2, 3, 4})).input("b", floats({2}, {10, 20}));
    expect_error(t, "broadcast=0");
  }
  {
    OpTest t("Add", 6);  // axis=0 is not numpy broadcasting
    t.input("a", floats({2, 2}, {1, 2, 3, 4})).input("b", floats({2}, {10, 20}));
    t.attr(ir::Attribute::make_int("broadcast", 1)).attr(ir::Attribute::make_int("axis", 0));
    expect_error(t, "legacy broadcast");
  }
}

TEST(Div, FloatEdgeValues) {
  expect_values(binary("Div", 14, floats({4}, {1, -1, 0, 6}), floats({4}, {0, 0, 0, 4})), DataType::kFloat32, {4},
                {kInf, -kInf, kNaN, 1.5});
}

TEST(Div, IntegerTruncatesTowardZero) {
  expect_values(binary("Div", 14, int64s({4}, {7, -7, 7, -7}), int64s({4}, {2, 2, -2, -2})), DataType::kInt64, {4},
                {3, -3, -3, 3});
  // INT32_MIN / -1 wraps instead of trapping.
  Tensor r = binary("Div", 14, int32s({1}, {std::numeric_limits<int32_t>::min()}), int32s({1}, {-1}));
  EXPECT_EQ(r.data<int32_t>()[0], std::numeric_limits<int32_t>::min());
}

TEST(Div, IntegerDivisionByZeroIsAnError) {
  OpTest t("Div", 14);
  t.input("a", int32s({2}, {1, 2})).input("b", int32s({2}, {1, 0}));
  expect_error(t, "division by zero");
}

// ---- Mod ---------------------------------------------------------------------------

TEST(Mod, IntegerFollowsDivisorSign) {
  // numpy.mod / numpy.fmod on int8.
  auto a = make_tensor(DataType::kInt8, {6}, std::vector<int>{7, -7, 7, -7, 0, -128});
  auto b = make_tensor(DataType::kInt8, {6}, std::vector<int>{2, 2, -2, -2, 3, -1});
  expect_values(binary("Mod", 13, a, b), DataType::kInt8, {6}, {1, 1, -1, -1, 0, 0});
  OpTest t("Mod", 13);
  t.input("a", a).input("b", b).attr(ir::Attribute::make_int("fmod", 1));
  expect_values(run1(t), DataType::kInt8, {6}, {1, -1, 1, -1, 0, 0});
}

TEST(Mod, FloatFmodAndFloorMod) {
  Tensor a = floats({11}, {5.5f, -5.5f, 5.5f, -5.5f, 0.0f, -0.0f, INFINITY, 3, -3, 3, NAN});
  Tensor b = floats({11}, {2, 2, -2, -2, -3, 3, 2, INFINITY, INFINITY, 0, 1});
  OpTest t1("Mod", 13);
  t1.input("a", a).input("b", b).attr(ir::Attribute::make_int("fmod", 1));
  expect_values(run1(t1), DataType::kFloat32, {11}, {1.5, -1.5, 1.5, -1.5, 0, 0, kNaN, 3, -3, kNaN, kNaN});
  // fmod=0 on floats (defined from opset 28): numpy.mod.
  Tensor r = binary("Mod", 28, a, b);
  expect_values(r, DataType::kFloat32, {11}, {1.5, 0.5, -0.5, -1.5, 0, 0, kNaN, 3, kInf, kNaN, kNaN});
  EXPECT_TRUE(std::signbit(r.data<float>()[4]));   // +0 mod -3 is -0
  EXPECT_FALSE(std::signbit(r.data<float>()[5]));  // -0 mod 3 is +0
}

TEST(Mod, ErrorPaths) {
  OpTest t("Mod", 13);
  t.input("a", int32s({1}, {1})).input("b", int32s({1}, {0}));
  expect_error(t, "modulo by zero");
  OpTest t2("Mod", 13);
  t2.input("a", int32s({1}, {1})).input("b", int32s({1}, {2})).attr(ir::Attribute::make_int("fmod", 2));
  expect_error(t2, "fmod must be 0 or 1");
}

// ---- Pow ---------------------------------------------------------------------------

TEST(Pow, FloatBaseMixedExponentTypes) {
  expect_values(binary("Pow", 15, floats({4}, {2, 4, -2, 0}), floats({4}, {3, 0.5, 2, -1})), DataType::kFloat32,
                {4}, {8, 2, 4, kInf});
  expect_values(binary("Pow", 15, floats({3}, {2, 3, -1}), int64s({}, {2})), DataType::kFloat32, {3}, {4, 9, 1});
  expect_values(binary("Pow", 15, floats({1}, {-8}), floats({1}, {1.0f / 3})), DataType::kFloat32, {1}, {kNaN});
}

TEST(Pow, IntegerBase) {
  // numpy.power(int64, float64).astype(int64) for the fractional case.
  expect_values(binary("Pow", 15, int64s({3}, {2, 3, -2}), doubles({3}, {10, 0.5, 3})), DataType::kInt64, {3},
                {1024, 1, -8});
  expect_values(binary("Pow", 15, int32s({4}, {2, -1, 1, 2}), int64s({4}, {31, 1001, 1000000, -1})),
                DataType::kInt32, {4}, {-2147483648.0, -1, 1, 0});
}

// ---- Unary math ----------------------------------------------------------------------

TEST(Unary, BasicMath) {
  Tensor x = floats({5}, {4, 1, 0, -1, 2.25});
  expect_near(unary("Sqrt", 13, x), {5}, {2, 1, 0, kNaN, 1.5});
  expect_near(unary("Exp", 13, floats({3}, {0, 1, -INFINITY})), {3}, {1, 2.718281828, 0});
  expect_near(unary("Log", 13, floats({4}, {4, 1, -1, 2.25})), {4}, {1.386294361, 0, kNaN, 0.810930216});
  expect_values(unary("Log", 13, floats({1}, {0})), DataType::kFloat32, {1}, {-kInf});
  expect_values(unary("Reciprocal", 13, floats({3}, {2, -4, 0})), DataType::kFloat32, {3}, {0.5, -0.25, kInf});
  expect_values(unary("Neg", 13, floats({2}, {1, -2})), DataType::kFloat32, {2}, {-1, 2});
  expect_values(unary("Abs", 13, floats({2}, {-1.5, 2})), DataType::kFloat32, {2}, {1.5, 2});
}

TEST(Unary, FloorCeilRoundHalfToEven) {
  Tensor x = floats({7}, {0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6});
  expect_values(unary("Round", 11, x), DataType::kFloat32, {7}, {0, 2, 2, -0.0, -2, 2, -3});
  expect_values(unary("Floor", 13, x), DataType::kFloat32, {7}, {0, 1, 2, -1, -2, 2, -3});
  expect_values(unary("Ceil", 13, x), DataType::kFloat32, {7}, {1, 2, 3, -0.0, -1, 3, -2});
  expect_values(unary("Round", 22, floats({2}, {NAN, -INFINITY})), DataType::kFloat32, {2}, {kNaN, -kInf});
}

TEST(Unary, Trigonometry) {
  Tensor x = floats({3}, {-0.5, 0, 0.5});
  expect_near(unary("Sin", 7, x), {3}, {-0.479425539, 0, 0.479425539});
  expect_near(unary("Cos", 7, x), {3}, {0.877582562, 1, 0.877582562});
  expect_near(unary("Tan", 7, x), {3}, {-0.54630249, 0, 0.54630249});
  expect_near(unary("Asin", 7, x), {3}, {-0.523598776, 0, 0.523598776});
  expect_near(unary("Acos", 7, x), {3}, {2.094395102, 1.570796327, 1.047197551});
  expect_near(unary("Atan", 7, x), {3}, {-0.463647609, 0, 0.463647609});
  expect_near(unary("Sinh", 9, x), {3}, {-0.52109528, 0, 0.52109528});
  expect_near(unary("Cosh", 9, x), {3}, {1.127625965, 1, 1.127625965});
  expect_near(unary("Asinh", 9, x), {3}, {-0.48121184, 0, 0.48121184});
  expect_near(unary("Atanh", 9, x), {3}, {-0.549306144, 0, 0.549306144});
  expect_near(unary("Acosh", 9, floats({2}, {1, 2})), {2}, {0, 1.316957897});
  expect_near(unary("Erf", 13, floats({3}, {-1, 0, 3})), {3}, {-0.84270078, 0, 0.99997789});
  expect_near(unary("Asin", 7, floats({1}, {2})), {1}, {kNaN});
}

TEST(Unary, Float64AndFloat16) {
  expect_near(unary("Exp", 13, doubles({1}, {1})), {1}, {2.718281828459045}, 1e-14, 1e-14);
  Tensor h = unary("Sqrt", 13, make_tensor(DataType::kFloat16, {2}, std::vector<double>{4, 2}));
  expect_values(h, DataType::kFloat16, {2}, {2, 1.4140625});  // sqrt(2) rounded to fp16
}

TEST(Unary, IntegerNegAbsSign) {
  Tensor x = make_tensor(DataType::kInt8, {4}, std::vector<int>{-128, -3, 0, 5});
  expect_values(unary("Neg", 13, x), DataType::kInt8, {4}, {-128, 3, 0, -5});
  expect_values(unary("Abs", 13, x), DataType::kInt8, {4}, {-128, 3, 0, 5});
  expect_values(unary("Sign", 13, x), DataType::kInt8, {4}, {-1, -1, 0, 1});
  expect_values(unary("Sign", 13, make_tensor(DataType::kUInt32, {2}, std::vector<int>{0, 7})), DataType::kUInt32,
                {2}, {0, 1});
  expect_values(unary("Sign", 13, floats({4}, {-2, 0, 3, NAN})), DataType::kFloat32, {4}, {-1, 0, 1, kNaN});
  expect_values(unary("Abs", 13, make_tensor(DataType::kUInt8, {1}, std::vector<int>{200})), DataType::kUInt8, {1},
                {200});
}

TEST(Unary, UnsupportedTypes) {
  OpTest t("Sqrt", 13);
  t.input("x", int64s({1}, {4}));
  expect_error(t, "element type int64 is not supported");
  OpTest t2("Neg", 13);
  t2.input("x", make_tensor(DataType::kUInt8, {1}, std::vector<int>{1}));
  expect_error(t2, "not supported");
}

TEST(Unary, IsNaNAndIsInf) {
  Tensor x = floats({5}, {1, NAN, INFINITY, -INFINITY, 0});
  expect_values(unary("IsNaN", 13, x), DataType::kBool, {5}, {0, 1, 0, 0, 0});
  expect_values(unary("IsInf", 10, x), DataType::kBool, {5}, {0, 0, 1, 1, 0});
  OpTest t("IsInf", 20);
  t.input("x", x).attr(ir::Attribute::make_int("detect_positive", 0));
  expect_values(run1(t), DataType::kBool, {5}, {0, 0, 0, 1, 0});
  OpTest t2("IsInf", 20);
  t2.input("x", x).attr(ir::Attribute::make_int("detect_negative", 0));
  expect_values(run1(t2), DataType::kBool, {5}, {0, 0, 1, 0, 0});
}

TEST(Unary, ZeroSizedAndScalar) {
  expect_values(unary("Exp", 13, floats({0, 4}, {})), DataType::kFloat32, {0, 4}, {});
  expect_values(unary("Neg", 13, floats({}, {3})), DataType::kFloat32, {}, {-3});
}

// ---- Large tensors on a thread pool ----------------------------------------------------

TEST(Add, LargeBroadcastOnThreadPoolMatchesSerial) {
  // [3, 50000] + [50000] with a pool of 4, checked element by element.
  const int64_t n = 50000;
  Tensor a = Tensor::empty(DataType::kFloat32, {3, n});
  Tensor b = Tensor::empty(DataType::kFloat32, {n});
  for (int64_t i = 0; i < 3 * n; ++i) a.data<float>()[i] = static_cast<float>(i % 977);
  for (int64_t i = 0; i < n; ++i) b.data<float>()[i] = static_cast<float>(i % 13) * 0.5f;
  OpTest t("Add", 14);
  t.input("a", a).input("b", b);
  ThreadPool pool(4);
  // run() builds the node; then the same graph runs again with the pool.
  Tensor serial = run1(t);
  auto compiled = exec::Program::compile(t.graph());
  ASSERT_TRUE(compiled.is_ok()) << compiled.status().to_string();
  std::vector<Datum> in = {Datum(a), Datum(b)};
  auto out = exec::execute(**compiled, in, &pool);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  const Tensor& par = (*out)[0].tensor();
  ASSERT_EQ(par.numel(), 3 * n);
  int mismatches = 0;
  for (int64_t i = 0; i < 3 * n; ++i) {
    float want = static_cast<float>(i % 977) + static_cast<float>((i % n) % 13) * 0.5f;
    mismatches += par.data<float>()[i] != want || serial.data<float>()[i] != want;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Add, SameShapeFloatIsFast) {
  // 8M elements: a plain loop takes a few ms; the per-element iterator took far longer.
  const int64_t n = int64_t{1} << 23;
  Tensor a = Tensor::empty(DataType::kFloat32, {n});
  Tensor b = Tensor::empty(DataType::kFloat32, {1, n});
  std::fill_n(a.data<float>(), n, 1.0f);
  std::fill_n(b.data<float>(), n, 2.0f);
  OpTest t("Add", 14);
  t.input("a", a).input("b", b);
  auto start = std::chrono::steady_clock::now();
  Tensor r = run1(t);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.numel(), n);
  EXPECT_EQ(r.data<float>()[n - 1], 3.0f);
  EXPECT_LT(ms, 2000.0);
}

// ---- Shape inference ---------------------------------------------------------------

TEST(ElementwiseInfer, BroadcastOfSymbolicShapes) {
  EXPECT_EQ(InferTest("Add", 14)
                .tensor(DataType::kFloat32, sym_shape({Dim::sym("N"), 3, 1}))
                .tensor(DataType::kFloat32, sym_shape({4}))
                .str(),
            "float[N,3,4]");
  EXPECT_EQ(InferTest("Mul", 14)
                .tensor(DataType::kFloat32, sym_shape({Dim::sym("N"), Dim()}))
                .tensor(DataType::kFloat32, sym_shape({Dim::sym("N"), 5}))
                .str(),
            "float[N,5]");
  EXPECT_EQ(InferTest("Sub", 14)
                .tensor(DataType::kFloat32, sym_shape({Dim::sym("A")}))
                .tensor(DataType::kFloat32, sym_shape({Dim::sym("B")}))
                .str(),
            "float[?]");
  EXPECT_EQ(InferTest("Add", 14).tensor(DataType::kFloat32, Shape()).tensor(DataType::kFloat32, sym_shape({2})).str(),
            "float*");
  EXPECT_EQ(InferTest("Pow", 15).tensor(DataType::kInt32, sym_shape({2})).tensor(DataType::kFloat32, sym_shape({}))
                .str(),
            "int32[2]");
  EXPECT_EQ(InferTest("Sqrt", 13).tensor(DataType::kFloat16, sym_shape({Dim::sym("N")})).str(), "float16[N]");
  EXPECT_EQ(InferTest("IsNaN", 13).tensor(DataType::kFloat32, sym_shape({2, 3})).str(), "bool[2,3]");
}

TEST(ElementwiseInfer, ContradictionIsAnError) {
  std::string s = InferTest("Add", 14)
                      .tensor(DataType::kFloat32, sym_shape({2, 3}))
                      .tensor(DataType::kFloat32, sym_shape({4}))
                      .str();
  EXPECT_NE(s.find("cannot be broadcast"), std::string::npos) << s;
}

}  // namespace
}  // namespace kiln::test
