// Tests of QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
// QLinearMatMul and QLinearConv: semantics the ONNX node cases leave out
// (opset variants, remainder blocks, saturation, NaN/inf, precision), error
// paths and shape inference.
//
// Unless a test says otherwise, expected values come from onnx.reference
// (onnx 1.23.2, the op's reference implementation run on the same inputs).
#include <cmath>
#include <limits>
#include <optional>

#include "ops/cast_small.h"
#include "ops/elementwise_test_util.h"

namespace kiln::test {
namespace {

constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr float kInff = std::numeric_limits<float>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// A tensor of a small type (int4, float8, ...) holding `values`, converted like Cast.
Tensor small(DataType dtype, Dims dims, const std::vector<double>& values) {
  auto r = ops::cast_small(doubles(std::move(dims), values), dtype, true, "up");
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? std::move(r).value() : Tensor();
}

// expect_values for outputs of a small type (values_of reads only the standard types).
void expect_small_values(const Tensor& t, DataType dtype, const Dims& dims, const std::vector<double>& v) {
  EXPECT_EQ(data_type_name(t.dtype()), data_type_name(dtype));
  auto f = ops::cast_small(t, DataType::kFloat64, true, "up");
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  expect_values(*f, DataType::kFloat64, dims, v);
}

std::vector<int> bytes_of(const Tensor& t) {
  std::vector<int> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(t.data<uint8_t>()[i]);
  return out;
}

ir::Attribute attr(const char* name, int64_t v) { return ir::Attribute::make_int(name, v); }
int64_t type_attr(DataType t) { return static_cast<int64_t>(t); }

// Runs QuantizeLinear/DequantizeLinear on (x, scale[, zero point]) with attributes.
OpTest linear(const char* op, int64_t opset, Tensor x, Tensor scale, std::optional<Tensor> zp,
              std::vector<ir::Attribute> attrs = {}) {
  OpTest t(op, opset);
  t.input("x", std::move(x)).input("scale", std::move(scale));
  if (zp) t.input("zp", std::move(*zp));
  for (auto& a : attrs) t.attr(std::move(a));
  return t;
}

// ---- QuantizeLinear ---------------------------------------------------------------

TEST(QuantizeLinear, RoundsHalfToEvenAndSaturates) {
  // By the spec: round(x / 2) + 128, saturated to [0, 255]. inf saturates; NaN
  // (undefined in ONNX) becomes the zero point.
  OpTest t = linear("QuantizeLinear", 10, floats({11}, {0, 1, 3, 5, -3, -5, 1000, -1000, kInff, -kInff, kNaNf}),
                    floats({}, {2}), make_tensor(DataType::kUInt8, {}, std::vector<int>{128}));
  expect_values(run1(t), DataType::kUInt8, {11}, {128, 128, 130, 130, 126, 126, 255, 0, 255, 0, 128});
}

TEST(QuantizeLinear, DefaultsToUint8WithoutZeroPoint) {
  OpTest t = linear("QuantizeLinear", 13, floats({3}, {-1, 1.5f, 300}), floats({1}, {1}), std::nullopt);
  expect_values(run1(t), DataType::kUInt8, {3}, {0, 2, 255});
}

TEST(QuantizeLinear, PerAxisWithNegativeAxis) {
  OpTest t = linear("QuantizeLinear", 13, floats({2, 3}, {10, 10, 10, -10, -10, -10}), floats({3}, {1, 2, 4}),
                    make_tensor(DataType::kInt8, {3}, std::vector<int>{0, 1, -1}), {attr("axis", -1)});
  expect_values(run1(t), DataType::kInt8, {2, 3}, {10, 6, 1, -10, -4, -3});
}

TEST(QuantizeLinear, BlockedWithRemainderBlock) {
  // x [2, 5] in blocks of 2 along axis 1: three blocks, the last holding one element.
  OpTest t = linear("QuantizeLinear", 21, floats({2, 5}, {1, 2, 3, 4, 5, -6, -7, 8, 9, 10}),
                    floats({2, 3}, {0.5f, 1, 2, 1, 2, 4}), small(DataType::kInt4, {2, 3}, {1, 0, -1, 0, 1, 2}),
                    {attr("axis", 1), attr("block_size", 2)});
  expect_small_values(run1(t), DataType::kInt4, {2, 5}, {3, 5, 3, 4, 1, -6, -7, 5, 5, 4});
}

TEST(QuantizeLinear, Float8SaturateAndNot) {
  const std::vector<float> x = {1000, -1000, kInff, kNaNf, 0.3f, -0.0f};
  struct Case {
    DataType type;
    int64_t saturate;
    std::vector<int> bytes;
  };
  const std::vector<Case> cases = {
      {DataType::kFloat8E4M3FN, 1, {126, 254, 126, 127, 42, 128}},
      {DataType::kFloat8E4M3FN, 0, {127, 255, 127, 127, 42, 128}},
      {DataType::kFloat8E5M2, 1, {100, 228, 123, 126, 53, 128}},
      {DataType::kFloat8E5M2, 0, {100, 228, 124, 126, 53, 128}},
      {DataType::kFloat8E4M3FNUZ, 1, {127, 255, 127, 128, 50, 0}},
      {DataType::kFloat8E4M3FNUZ, 0, {128, 128, 128, 128, 50, 0}},
      {DataType::kFloat8E5M2FNUZ, 1, {104, 232, 127, 128, 57, 0}},
      {DataType::kFloat8E5M2FNUZ, 0, {104, 232, 128, 128, 57, 0}},
  };
  for (const Case& c : cases) {
    OpTest t = linear("QuantizeLinear", 21, floats({6}, x), floats({}, {1}), small(c.type, {}, {0}),
                      {attr("saturate", c.saturate)});
    Tensor y = run1(t);
    EXPECT_EQ(y.dtype(), c.type);
    EXPECT_EQ(bytes_of(y), c.bytes) << data_type_name(c.type) << " saturate=" << c.saturate;
  }
}

TEST(QuantizeLinear, Float4AddsZeroPointAndSaturates) {
  OpTest t = linear("QuantizeLinear", 23, floats({5}, {0.2f, 1.3f, -2.6f, 100, -100}), floats({}, {0.5f}),
                    small(DataType::kFloat4E2M1, {}, {0.5}));
  Tensor y = run1(t);
  EXPECT_EQ(y.dtype(), DataType::kFloat4E2M1);
  EXPECT_EQ(bytes_of(y), (std::vector<int>{2, 5, 14, 7, 15}));  // 1, 3, -4, 6, -6
}

TEST(QuantizeLinear, Int2AndUint2FromOutputDtype) {
  const Tensor x = floats({6}, {-3, -1.5f, -0.5f, 0.5f, 1.5f, 3});
  OpTest i2 = linear("QuantizeLinear", 25, x, floats({}, {1}), std::nullopt,
                     {attr("output_dtype", type_attr(DataType::kInt2))});
  expect_small_values(run1(i2), DataType::kInt2, {6}, {-2, -2, 0, 0, 1, 1});
  OpTest u2 = linear("QuantizeLinear", 25, x, floats({}, {1}), std::nullopt,
                     {attr("output_dtype", type_attr(DataType::kUInt2))});
  expect_small_values(run1(u2), DataType::kUInt2, {6}, {0, 0, 0, 0, 2, 3});
}

TEST(QuantizeLinear, DivisionPrecision) {
  // precision=float16 rounds 2049 to 2048 and 2051 to 2052 before dividing.
  const Tensor x = floats({2}, {2049, 2051});
  OpTest p16 =
      linear("QuantizeLinear", 23, x, floats({}, {1}), std::nullopt,
             {attr("output_dtype", type_attr(DataType::kInt16)), attr("precision", type_attr(DataType::kFloat16))});
  expect_values(run1(p16), DataType::kInt16, {2}, {2048, 2052});
  OpTest p32 = linear("QuantizeLinear", 23, x, floats({}, {1}), std::nullopt,
                      {attr("output_dtype", type_attr(DataType::kInt16))});
  expect_values(run1(p32), DataType::kInt16, {2}, {2049, 2051});
  // float16 x and scale divide in float16: 2048 / 0.0999755859375 rounds to 20480 (20485 in float32).
  OpTest h = linear("QuantizeLinear", 21, make_tensor(DataType::kFloat16, {3}, std::vector<double>{2049, 3.3, 1000.7}),
                    make_tensor(DataType::kFloat16, {}, std::vector<double>{0.1}),
                    make_tensor(DataType::kInt16, {}, std::vector<int>{0}));
  expect_values(run1(h), DataType::kInt16, {3}, {20480, 33, 10008});
}

TEST(QuantizeLinear, BFloat16DividesInBFloat16UnlessMixed) {
  // By numpy's promotion: bfloat16 / bfloat16 rounds 333.33 to 334 (bfloat16
  // steps by 2 there); bfloat16 / float32 divides in float32.
  const Tensor x = make_tensor(DataType::kBFloat16, {1}, std::vector<double>{1000});
  const Tensor zp = make_tensor(DataType::kInt16, {}, std::vector<int>{0});
  OpTest same = linear("QuantizeLinear", 21, x, make_tensor(DataType::kBFloat16, {}, std::vector<double>{3}), zp);
  expect_values(run1(same), DataType::kInt16, {1}, {334});
  OpTest mixed = linear("QuantizeLinear", 23, x, floats({}, {3}), zp);
  expect_values(run1(mixed), DataType::kInt16, {1}, {333});
  OpTest deq = linear("DequantizeLinear", 21, make_tensor(DataType::kInt16, {1}, std::vector<int>{333}),
                      make_tensor(DataType::kBFloat16, {}, std::vector<double>{3}), std::nullopt);
  expect_values(run1(deq), DataType::kBFloat16, {1}, {1000});  // 999 rounds to bfloat16 1000
}

TEST(QuantizeLinear, Int32InputAndE8M0Scale) {
  OpTest i = linear("QuantizeLinear", 19, make_tensor(DataType::kInt32, {4}, std::vector<int>{5, -5, 7, 1000}),
                    make_tensor(DataType::kInt32, {}, std::vector<int>{2}),
                    make_tensor(DataType::kInt8, {}, std::vector<int>{1}));
  expect_values(run1(i), DataType::kInt8, {4}, {3, -1, 5, 127});
  OpTest e = linear("QuantizeLinear", 24, floats({4}, {1, 2, 3, -7}), small(DataType::kFloat8E8M0, {}, {0.25}),
                    make_tensor(DataType::kInt8, {}, std::vector<int>{0}));
  expect_values(run1(e), DataType::kInt8, {4}, {4, 8, 12, -28});
}

TEST(QuantizeLinear, EmptyInput) {
  OpTest t = linear("QuantizeLinear", 21, floats({0, 3}, {}), floats({3}, {1, 2, 3}),
                    make_tensor(DataType::kUInt8, {3}, std::vector<int>{0, 0, 0}));
  expect_values(run1(t), DataType::kUInt8, {0, 3}, {});
}

TEST(QuantizeLinear, ScaleShapeErrors) {
  const Tensor x = floats({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  OpTest per_axis = linear("QuantizeLinear", 13, x, floats({3}, {1, 2, 3}), std::nullopt);
  expect_error(per_axis, "y_scale of shape [3] must be a scalar or 1-D with x's 4 elements along axis 1");
  OpTest bad_axis = linear("QuantizeLinear", 13, x, floats({2}, {1, 2}), std::nullopt, {attr("axis", 2)});
  expect_error(bad_axis, "axis 2 is out of range for x of shape [2,4]");
  OpTest matrix = linear("QuantizeLinear", 21, x, floats({2, 2}, {1, 2, 3, 4}), std::nullopt);
  expect_error(matrix, "blocked quantization needs block_size");
  OpTest blocks = linear("QuantizeLinear", 21, x, floats({2, 3}, {1, 2, 3, 4, 5, 6}), std::nullopt,
                         {attr("axis", 1), attr("block_size", 2)});
  expect_error(blocks,
               "y_scale of shape [2,3] does not fit x of shape [2,4] in blocks of 2 along axis 1: expected [2,2]");
  OpTest other_dim =
      linear("QuantizeLinear", 21, x, floats({1, 2}, {1, 2}), std::nullopt, {attr("axis", 1), attr("block_size", 2)});
  expect_error(other_dim, "expected [2,2]");
  OpTest negative = linear("QuantizeLinear", 21, x, floats({2, 2}, {1, 2, 3, 4}), std::nullopt,
                           {attr("axis", 1), attr("block_size", -2)});
  expect_error(negative, "block_size must be positive, got -2");
  OpTest zp = linear("QuantizeLinear", 13, x, floats({4}, {1, 2, 3, 4}),
                     make_tensor(DataType::kUInt8, {2}, std::vector<int>{0, 0}));
  expect_error(zp, "y_zero_point has shape [2] but y_scale has shape [4]");
}

TEST(QuantizeLinear, TypeErrors) {
  const Tensor x = floats({2}, {1, 2});
  OpTest mismatch =
      linear("QuantizeLinear", 21, x, floats({}, {1}), make_tensor(DataType::kInt8, {}, std::vector<int>{0}),
             {attr("output_dtype", type_attr(DataType::kUInt8))});
  expect_error(mismatch, "output_dtype uint8 differs from y_zero_point's type int8");
  OpTest int4_old = linear("QuantizeLinear", 19, x, floats({}, {1}), small(DataType::kInt4, {}, {0}));
  expect_error(int4_old, "output type int4 is not supported at opset 19");
  OpTest float_out = linear("QuantizeLinear", 21, x, floats({}, {1}), floats({}, {0}));
  expect_error(float_out, "output type float is not supported");
  OpTest int8_in = linear("QuantizeLinear", 21, make_tensor(DataType::kInt8, {1}, std::vector<int>{1}), floats({}, {1}),
                          std::nullopt);
  expect_error(int8_in, "x type int8 is not supported");
  OpTest half_scale_old =
      linear("QuantizeLinear", 13, x, make_tensor(DataType::kFloat16, {}, std::vector<double>{1}), std::nullopt);
  expect_error(half_scale_old, "y_scale type float16 is not supported at opset 13");
  OpTest bad_dtype = linear("QuantizeLinear", 21, x, floats({}, {1}), std::nullopt, {attr("output_dtype", 99)});
  expect_error(bad_dtype, "output_dtype 99 is not a tensor element type");
  OpTest bad_precision =
      linear("QuantizeLinear", 23, x, floats({}, {1}), std::nullopt, {attr("precision", type_attr(DataType::kInt32))});
  expect_error(bad_precision, "precision must be a floating type");
}

// ---- DequantizeLinear ---------------------------------------------------------------

TEST(DequantizeLinear, PerTensorAndPerAxis) {
  OpTest t = linear("DequantizeLinear", 10, make_tensor(DataType::kUInt8, {4}, std::vector<int>{0, 3, 128, 255}),
                    floats({}, {2}), make_tensor(DataType::kUInt8, {}, std::vector<int>{128}));
  expect_values(run1(t), DataType::kFloat32, {4}, {-256, -250, 0, 254});
  OpTest axis = linear("DequantizeLinear", 13, make_tensor(DataType::kInt8, {3, 2}, std::vector<int>{1, 2, 3, 4, 5, 6}),
                       floats({3}, {1, 10, 100}), make_tensor(DataType::kInt8, {3}, std::vector<int>{0, 1, 2}),
                       {attr("axis", 0)});
  expect_values(run1(axis), DataType::kFloat32, {3, 2}, {1, 2, 20, 30, 300, 400});
}

TEST(DequantizeLinear, BlockedInt4WithRemainder) {
  OpTest t = linear("DequantizeLinear", 21, small(DataType::kInt4, {2, 5}, {1, -2, 3, 4, -5, 6, 7, -8, 0, 1}),
                    floats({2, 3}, {0.5f, 1, 2, 1, 2, 4}), small(DataType::kInt4, {2, 3}, {1, 0, -1, 0, 1, 2}),
                    {attr("axis", -1), attr("block_size", 2)});
  expect_values(run1(t), DataType::kFloat32, {2, 5}, {0, -1.5, 3, 4, -8, 6, 7, -18, -2, -4});
}

TEST(DequantizeLinear, OutputDtypeAndInt32) {
  OpTest h = linear("DequantizeLinear", 23, make_tensor(DataType::kInt8, {4}, std::vector<int>{0, 1, 127, -128}),
                    floats({}, {0.1f}), make_tensor(DataType::kInt8, {}, std::vector<int>{3}),
                    {attr("output_dtype", type_attr(DataType::kFloat16))});
  Tensor y = run1(h);
  EXPECT_EQ(y.dtype(), DataType::kFloat16);
  expect_near(y, {4}, {-0.3, -0.2, 12.4, -13.1}, 0, 1e-3);
  // int32 is read as float32 first (100000001 -> 1e8), as the reference does.
  OpTest i =
      linear("DequantizeLinear", 21, make_tensor(DataType::kInt32, {3}, std::vector<int>{100000001, -7, 16777217}),
             floats({}, {0.5f}), std::nullopt);
  expect_values(run1(i), DataType::kFloat32, {3}, {5e7, -3.5, 8388608});
}

TEST(DequantizeLinear, Float8AndE8M0) {
  // e5m2 bytes 0x7C, 0xFC, 0x7F, 0x3C: inf, -inf, NaN, 1.
  Tensor x = Tensor::empty(DataType::kFloat8E5M2, {4});
  const uint8_t bytes[] = {0x7C, 0xFC, 0x7F, 0x3C};
  for (int i = 0; i < 4; ++i) x.data<uint8_t>()[i] = bytes[i];
  OpTest f8 = linear("DequantizeLinear", 21, x, floats({}, {2}), small(DataType::kFloat8E5M2, {}, {0}));
  expect_values(run1(f8), DataType::kFloat32, {4}, {kInf, -kInf, kNaN, 2});
  OpTest e8 = linear("DequantizeLinear", 24, make_tensor(DataType::kUInt8, {3}, std::vector<int>{1, 2, 3}),
                     small(DataType::kFloat8E8M0, {}, {0.25}), make_tensor(DataType::kUInt8, {}, std::vector<int>{1}),
                     {attr("output_dtype", type_attr(DataType::kFloat32))});
  expect_values(run1(e8), DataType::kFloat32, {3}, {0, 0.25, 0.5});
  OpTest no_dtype = linear("DequantizeLinear", 24, make_tensor(DataType::kUInt8, {1}, std::vector<int>{1}),
                           small(DataType::kFloat8E8M0, {}, {0.25}), std::nullopt);
  expect_error(no_dtype, "output_dtype is required when x_scale is float8e8m0");
}

TEST(DequantizeLinear, Errors) {
  const Tensor x = make_tensor(DataType::kInt8, {2, 4}, std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8});
  OpTest zp_type =
      linear("DequantizeLinear", 21, x, floats({}, {1}), make_tensor(DataType::kUInt8, {}, std::vector<int>{0}));
  expect_error(zp_type, "x_zero_point is uint8 but x is int8");
  OpTest per_axis = linear("DequantizeLinear", 21, x, floats({2}, {1, 2}), std::nullopt);
  expect_error(per_axis, "x_scale of shape [2] must be a scalar or 1-D with x's 4 elements along axis 1");
  OpTest zp_shape = linear("DequantizeLinear", 21, x, floats({2, 2}, {1, 2, 3, 4}),
                           make_tensor(DataType::kInt8, {2}, std::vector<int>{0, 0}), {attr("block_size", 2)});
  expect_error(zp_shape, "x_zero_point has shape [2] but x_scale has shape [2,2]");
  OpTest f8_old =
      linear("DequantizeLinear", 13, small(DataType::kFloat8E4M3FN, {1}, {1}), floats({}, {1}), std::nullopt);
  expect_error(f8_old, "x type float8e4m3fn is not supported at opset 13");
  OpTest out_int = linear("DequantizeLinear", 23, x, floats({}, {1}), std::nullopt,
                          {attr("output_dtype", type_attr(DataType::kInt32))});
  expect_error(out_int, "output_dtype must be float, float16 or bfloat16, got int32");
  OpTest float_x = linear("DequantizeLinear", 21, floats({1}, {1}), floats({}, {1}), std::nullopt);
  expect_error(float_x, "x type float is not supported");
  OpTest scalar_x = linear("DequantizeLinear", 21, make_tensor(DataType::kInt8, {}, std::vector<int>{1}),
                           floats({2}, {1, 2}), std::nullopt);
  expect_error(scalar_x, "axis 1 is out of range for x of shape []");
}

// ---- DynamicQuantizeLinear -------------------------------------------------------------

TEST(DynamicQuantizeLinear, RangesIncludeZero) {
  struct Case {
    std::vector<float> x;
    std::vector<double> y;
    float scale;
    int zp;
  };
  const std::vector<Case> cases = {
      {{1, 2, 3, 4}, {64, 127, 191, 255}, 0.015686275f, 0},
      {{-1, -2, -3}, {170, 85, 0}, 0.011764706f, 255},
      {{-1.5f, 0.2f, 7.7f, 3.1f}, {0, 48, 255, 128}, 0.03607843f, 42},
  };
  for (const Case& c : cases) {
    OpTest t("DynamicQuantizeLinear", 11);
    t.input("x", floats({static_cast<int64_t>(c.x.size())}, c.x)).outputs(3);
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_values((*out)[0], DataType::kUInt8, {static_cast<int64_t>(c.x.size())}, c.y);
    EXPECT_FLOAT_EQ((*out)[1].data<float>()[0], c.scale);
    expect_values((*out)[2], DataType::kUInt8, {}, {static_cast<double>(c.zp)});
  }
}

TEST(DynamicQuantizeLinear, EmptyNaNAndErrors) {
  OpTest empty("DynamicQuantizeLinear", 11);
  empty.input("x", floats({0}, {})).outputs(3);
  auto out = empty.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].numel(), 0);
  EXPECT_FLOAT_EQ((*out)[1].data<float>()[0], 1.0f / 255);
  // NaN is left out of the range and lands on the zero point.
  OpTest nan("DynamicQuantizeLinear", 11);
  nan.input("x", floats({3}, {-1, kNaNf, 1})).outputs(3);
  out = nan.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_values((*out)[0], DataType::kUInt8, {3}, {0, 127, 254});  // zero point 127 (float32 127.49999)
  OpTest half("DynamicQuantizeLinear", 11);
  half.input("x", make_tensor(DataType::kFloat16, {1}, std::vector<double>{1})).outputs(3);
  expect_error(half, "x type float16 is not supported");
}

// ---- QLinearMatMul --------------------------------------------------------------------

OpTest qmatmul(int64_t opset, Tensor a, Tensor as, Tensor az, Tensor b, Tensor bs, Tensor bz, Tensor ys, Tensor yz) {
  OpTest t("QLinearMatMul", opset);
  t.input("a", std::move(a)).input("a_scale", std::move(as)).input("a_zero_point", std::move(az));
  t.input("b", std::move(b)).input("b_scale", std::move(bs)).input("b_zero_point", std::move(bz));
  t.input("y_scale", std::move(ys)).input("y_zero_point", std::move(yz));
  return t;
}

Tensor u8(Dims d, const std::vector<int>& v) { return make_tensor(DataType::kUInt8, std::move(d), v); }
Tensor i8(Dims d, const std::vector<int>& v) { return make_tensor(DataType::kInt8, std::move(d), v); }
Tensor f16(Dims d, const std::vector<double>& v) { return make_tensor(DataType::kFloat16, std::move(d), v); }

TEST(QLinearMatMul, PerRowAndPerColumnScales) {
  // Expected: numpy, ((a - az[:, None]) @ (b - bz)) * (as[:, None] * bs / 0.05) + 10, rounded and clipped.
  OpTest t = qmatmul(10, u8({2, 3}, {1, 2, 3, 4, 5, 6}), floats({2}, {0.5f, 0.25f}), u8({2}, {1, 2}),
                     u8({3, 2}, {1, 2, 3, 4, 5, 6}), floats({2}, {0.1f, 0.2f}), u8({2}, {0, 1}), floats({}, {0.05f}),
                     u8({}, {10}));
  expect_values(run1(t), DataType::kUInt8, {2, 2}, {23, 36, 26, 41});
  // The same with the N-D forms [M, 1] and [1, N].
  OpTest nd = qmatmul(10, u8({2, 3}, {1, 2, 3, 4, 5, 6}), floats({2, 1}, {0.5f, 0.25f}), u8({2, 1}, {1, 2}),
                      u8({3, 2}, {1, 2, 3, 4, 5, 6}), floats({1, 2}, {0.1f, 0.2f}), u8({1, 2}, {0, 1}),
                      floats({}, {0.05f}), u8({}, {10}));
  expect_values(run1(nd), DataType::kUInt8, {2, 2}, {23, 36, 26, 41});
}

TEST(QLinearMatMul, Float16ScalesRoundInFloat16) {
  OpTest t = qmatmul(21, i8({2, 2}, {-10, 20, 30, -40}), f16({}, {0.0066}), i8({}, {1}), i8({2, 2}, {5, -6, 7, 8}),
                     f16({}, {0.00705}), i8({}, {-2}), f16({}, {0.0107}), i8({}, {5}));
  expect_values(run1(t), DataType::kInt8, {2, 2}, {5, 6, 4, 3});
  OpTest old = qmatmul(10, i8({1, 1}, {1}), f16({}, {1}), i8({}, {0}), i8({1, 1}, {1}), f16({}, {1}), i8({}, {0}),
                       f16({}, {1}), i8({}, {0}));
  expect_error(old, "scale type float16 is not supported at opset 10");
}

TEST(QLinearMatMul, BatchedSaturatesAndVector) {
  // By hand: a [2, 1, 2] x b [2, 1] = [[3*1 + 4*1], [100*1 + 100*1]] * 1 -> 7, 200 -> 127 (int8).
  OpTest t = qmatmul(10, i8({2, 1, 2}, {3, 4, 100, 100}), floats({}, {1}), i8({}, {0}), i8({2, 1}, {1, 1}),
                     floats({}, {1}), i8({}, {0}), floats({}, {1}), i8({}, {0}));
  expect_values(run1(t), DataType::kInt8, {2, 1, 1}, {7, 127});
  OpTest vec = qmatmul(10, u8({2}, {3, 5}), floats({}, {1}), u8({}, {1}), u8({2, 1}, {2, 2}), floats({}, {2}),
                       u8({}, {0}), floats({}, {1}), u8({}, {0}));
  expect_values(run1(vec), DataType::kUInt8, {1}, {24});  // ((3-1)*2 + (5-1)*2) * 2
  // Per-row scales of A with a 1-D B: [6, 15] * [1, 2].
  OpTest rows = qmatmul(10, u8({2, 3}, {1, 2, 3, 4, 5, 6}), floats({2}, {1, 2}), u8({2}, {0, 0}), u8({3}, {1, 1, 1}),
                        floats({}, {1}), u8({}, {0}), floats({}, {1}), u8({}, {0}));
  expect_values(run1(rows), DataType::kUInt8, {2}, {6, 30});
}

TEST(QLinearMatMul, Float8Operands) {
  // By the spec formula: (a - 0) @ (b - 0) * 1 * 1 / 2 = [1.5*2 + 2*4] / 2 = 5.5 -> e4m3fn 5.5.
  OpTest t =
      qmatmul(21, small(DataType::kFloat8E4M3FN, {1, 2}, {1.5, 2}), floats({}, {1}),
              small(DataType::kFloat8E4M3FN, {}, {0}), small(DataType::kFloat8E4M3FN, {2, 1}, {2, 4}), floats({}, {1}),
              small(DataType::kFloat8E4M3FN, {}, {0}), floats({}, {2}), small(DataType::kFloat8E4M3FN, {}, {0}));
  Tensor y = run1(t);
  expect_small_values(y, DataType::kFloat8E4M3FN, {1, 1}, {5.5});
}

TEST(QLinearMatMul, Errors) {
  auto make = [](Tensor as, Tensor az, Tensor ys, Tensor bz) {
    return qmatmul(10, u8({2, 3}, {1, 2, 3, 4, 5, 6}), std::move(as), std::move(az), u8({3, 2}, {1, 2, 3, 4, 5, 6}),
                   floats({}, {1}), std::move(bz), std::move(ys), u8({}, {0}));
  };
  OpTest rows = make(floats({3}, {1, 1, 1}), u8({3}, {0, 0, 0}), floats({}, {1}), u8({}, {0}));
  expect_error(rows,
               "a_scale of shape [3] does not fit an operand of shape [2,3]: expected a scalar, [M] or [..., M, 1]");
  OpTest cols = make(floats({}, {1}), u8({}, {0}), floats({}, {1}), u8({3, 1}, {0, 0, 0}));
  expect_error(cols, "b_zero_point of shape [3,1] does not fit an operand of shape [3,2]");
  OpTest y = make(floats({}, {1}), u8({}, {0}), floats({2}, {1, 1}), u8({}, {0}));
  expect_error(y, "y_scale must be a scalar (per-tensor), got shape [2]");
  OpTest zp_type = make(floats({}, {1}), i8({}, {0}), floats({}, {1}), u8({}, {0}));
  expect_error(zp_type, "a_zero_point is int8 but a is uint8");
  OpTest inner = qmatmul(10, u8({2, 3}, {1, 2, 3, 4, 5, 6}), floats({}, {1}), u8({}, {0}), u8({2, 2}, {1, 2, 3, 4}),
                         floats({}, {1}), u8({}, {0}), floats({}, {1}), u8({}, {0}));
  expect_error(inner, "inner dimensions differ");
}

// ---- QLinearConv -----------------------------------------------------------------------

OpTest qconv(Tensor x, Tensor xs, Tensor xz, Tensor w, Tensor ws, Tensor wz, Tensor ys, Tensor yz,
             std::optional<Tensor> bias = std::nullopt) {
  OpTest t("QLinearConv", 10);
  t.input("x", std::move(x)).input("x_scale", std::move(xs)).input("x_zero_point", std::move(xz));
  t.input("w", std::move(w)).input("w_scale", std::move(ws)).input("w_zero_point", std::move(wz));
  t.input("y_scale", std::move(ys)).input("y_zero_point", std::move(yz));
  if (bias) t.input("B", std::move(*bias));
  return t;
}

std::vector<int> qconv_x() {
  std::vector<int> x;
  for (int i = 0; i < 18; ++i) x.push_back(i * 7);
  return x;
}
const std::vector<int> kQconvW = {1, -2, 3, -4, 5, -6, 7, -8, -1, 2, -3, 4, 5, 6, -7, 8, 0, 1, 0, 1, 0, 1, 0, 1};

TEST(QLinearConv, PerChannelWeightsAndBias) {
  OpTest t = qconv(u8({1, 2, 3, 3}, qconv_x()), floats({}, {0.05f}), u8({}, {3}), i8({3, 2, 2, 2}, kQconvW),
                   floats({3}, {0.01f, 0.02f, 0.03f}), i8({3}, {0, 1, -1}), floats({}, {0.01f}), u8({}, {128}),
                   int32s({3}, {100, -200, 300}));
  expect_values(run1(t), DataType::kUInt8, {1, 3, 2, 2}, {118, 117, 114, 113, 164, 168, 176, 180, 252, 255, 255, 255});
}

TEST(QLinearConv, Errors) {
  auto make = [](Tensor ws, Tensor xs, std::optional<Tensor> bias) {
    return qconv(u8({1, 2, 3, 3}, qconv_x()), std::move(xs), u8({}, {3}), i8({3, 2, 2, 2}, kQconvW), std::move(ws),
                 i8({}, {0}), floats({}, {0.01f}), u8({}, {128}), std::move(bias));
  };
  OpTest ws = make(floats({2}, {1, 1}), floats({}, {1}), std::nullopt);
  expect_error(ws, "w_scale of shape [2] must be a scalar or have one value per output channel ([3])");
  OpTest xs = make(floats({}, {1}), floats({2}, {1, 1}), std::nullopt);
  expect_error(xs, "x_scale must be a scalar (per-tensor), got shape [2]");
  OpTest bias_type = make(floats({}, {1}), floats({}, {1}), floats({3}, {1, 2, 3}));
  expect_error(bias_type, "B must be int32, got float");
  OpTest bias_shape = make(floats({}, {1}), floats({}, {1}), int32s({2}, {1, 2}));
  expect_error(bias_shape, "B must have shape [3]");
  OpTest channels = qconv(u8({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9}), floats({}, {1}), u8({}, {0}),
                          i8({3, 2, 2, 2}, kQconvW), floats({}, {1}), i8({}, {0}), floats({}, {1}), u8({}, {0}));
  expect_error(channels, "X has 1 channels");
}

// ---- Shape inference -------------------------------------------------------------------

TEST(QuantizationInfer, OutputTypes) {
  EXPECT_EQ(InferTest("QuantizeLinear", 21)
                .tensor(DataType::kFloat32, sym_shape({Dim::sym("N"), 4}))
                .tensor(DataType::kFloat32, Shape::of({}))
                .attr(attr("output_dtype", type_attr(DataType::kInt4)))
                .str(),
            "int4[N,4]");
  EXPECT_EQ(InferTest("QuantizeLinear", 13)
                .tensor(DataType::kFloat32, Shape())
                .tensor(DataType::kFloat32, Shape::of({}))
                .tensor(DataType::kInt8, Shape::of({}))
                .str(),
            "int8*");
  EXPECT_EQ(InferTest("QuantizeLinear", 13)
                .tensor(DataType::kFloat32, Shape::of({2}))
                .tensor(DataType::kFloat32, Shape())
                .str(),
            "uint8[2]");
  EXPECT_EQ(InferTest("DequantizeLinear", 23)
                .tensor(DataType::kInt8, Shape::of({3}))
                .tensor(DataType::kFloat32, Shape::of({}))
                .attr(attr("output_dtype", type_attr(DataType::kBFloat16)))
                .str(),
            "bfloat16[3]");
  EXPECT_EQ(InferTest("DequantizeLinear", 21)
                .tensor(DataType::kInt8, Shape::of({3}))
                .tensor(DataType::kFloat16, Shape())
                .str(),
            "float16[3]");
}

TEST(QuantizationInfer, QLinearShapes) {
  auto dq = InferTest("DynamicQuantizeLinear", 11).tensor(DataType::kFloat32, Shape::of({2, 3})).outputs(3).run();
  ASSERT_TRUE(dq.is_ok());
  EXPECT_EQ((*dq)[0].to_string(), "uint8[2,3]");
  EXPECT_EQ((*dq)[1].to_string(), "float[]");
  EXPECT_EQ((*dq)[2].to_string(), "uint8[]");
  InferTest mm("QLinearMatMul", 10);
  mm.tensor(DataType::kUInt8, sym_shape({Dim::sym("B"), 1, 5, 3}));
  for (int i = 0; i < 2; ++i) mm.tensor(DataType::kFloat32, Shape::of({}));
  mm.tensor(DataType::kInt8, Shape::of({4, 3, 7}));
  for (int i = 0; i < 3; ++i) mm.tensor(DataType::kFloat32, Shape::of({}));
  mm.tensor(DataType::kInt8, Shape::of({}));
  EXPECT_EQ(mm.str(), "int8[B,4,5,7]");
  InferTest conv("QLinearConv", 10);
  conv.tensor(DataType::kUInt8, sym_shape({Dim::sym("N"), 2, 5, 5}))
      .tensor(DataType::kFloat32, Shape::of({}))
      .tensor(DataType::kUInt8, Shape::of({}))
      .tensor(DataType::kInt8, Shape::of({6, 2, 3, 3}))
      .tensor(DataType::kFloat32, Shape::of({6}))
      .tensor(DataType::kInt8, Shape::of({6}))
      .tensor(DataType::kFloat32, Shape::of({}))
      .tensor(DataType::kUInt8, Shape::of({}))
      .attr(ir::Attribute::make_ints("strides", {2, 2}));
  EXPECT_EQ(conv.str(), "uint8[N,6,2,2]");
}

}  // namespace
}  // namespace kiln::test
