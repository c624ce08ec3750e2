// TensorProto -> Tensor for every data type, in raw and typed encodings, and
// the errors of malformed tensors (each names the initializer).
#include <gtest/gtest.h>

#include "onnx/model_builder.h"
#include "onnx/proto_convert.h"

namespace kiln::test {
namespace {

using pb::TensorProto;

pb::TensorProto make(int dtype, const std::vector<int64_t>& dims) {
  pb::TensorProto t;
  t.set_name("t");
  t.set_data_type(dtype);
  for (int64_t d : dims) t.add_dims(d);
  return t;
}

Tensor convert(const pb::TensorProto& p) {
  auto r = onnx::tensor_from_proto(p, {}, "initializer 't'");
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? std::move(r).value() : Tensor();
}

template <class T>
std::vector<T> values(const Tensor& t) {
  if (!t.defined()) return {};
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

template <class T>
std::string raw_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

TEST(TensorProto, FloatRawAndTyped) {
  auto raw = make(TensorProto::FLOAT, {2});
  raw.set_raw_data(raw_of<float>({1.5f, -3.0f}));
  EXPECT_EQ(values<float>(convert(raw)), (std::vector<float>{1.5f, -3.0f}));
  auto typed = make(TensorProto::FLOAT, {2, 1});
  typed.add_float_data(2.0f);
  typed.add_float_data(4.0f);
  Tensor t = convert(typed);
  EXPECT_EQ(t.dims(), (Dims{2, 1}));
  EXPECT_EQ(values<float>(t), (std::vector<float>{2.0f, 4.0f}));
}

TEST(TensorProto, ScalarAndEmpty) {
  auto scalar = make(TensorProto::INT64, {});
  scalar.add_int64_data(42);
  Tensor s = convert(scalar);
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(values<int64_t>(s), (std::vector<int64_t>{42}));
  auto empty = make(TensorProto::FLOAT, {0, 3});
  Tensor e = convert(empty);
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.dims(), (Dims{0, 3}));
}

TEST(TensorProto, WideTypes) {
  auto d = make(TensorProto::DOUBLE, {2});
  d.add_double_data(0.25);
  d.add_double_data(-1e300);
  EXPECT_EQ(values<double>(convert(d)), (std::vector<double>{0.25, -1e300}));
  auto i64 = make(TensorProto::INT64, {2});
  i64.add_int64_data(INT64_MIN);
  i64.add_int64_data(7);
  EXPECT_EQ(values<int64_t>(convert(i64)), (std::vector<int64_t>{INT64_MIN, 7}));
  auto u32 = make(TensorProto::UINT32, {2});
  u32.add_uint64_data(4000000000u);
  u32.add_uint64_data(1);
  EXPECT_EQ(values<uint32_t>(convert(u32)), (std::vector<uint32_t>{4000000000u, 1}));
  auto u64 = make(TensorProto::UINT64, {1});
  u64.add_uint64_data(UINT64_MAX);
  EXPECT_EQ(values<uint64_t>(convert(u64)), (std::vector<uint64_t>{UINT64_MAX}));
  auto i32 = make(TensorProto::INT32, {2});
  i32.add_int32_data(-5);
  i32.add_int32_data(INT32_MAX);
  EXPECT_EQ(values<int32_t>(convert(i32)), (std::vector<int32_t>{-5, INT32_MAX}));
  auto u64raw = make(TensorProto::UINT64, {1});
  u64raw.set_raw_data(raw_of<uint64_t>({0x0102030405060708ull}));
  EXPECT_EQ(values<uint64_t>(convert(u64raw)), (std::vector<uint64_t>{0x0102030405060708ull}));
}

TEST(TensorProto, ComplexTakesPairs) {
  auto c = make(TensorProto::COMPLEX64, {2});
  for (float v : {1.0f, 2.0f, 3.0f, 4.0f}) c.add_float_data(v);
  Tensor t = convert(c);
  EXPECT_EQ(t.numel(), 2);  // numel counts complex elements
  EXPECT_EQ(std::vector<float>(t.data<float>(), t.data<float>() + 4), (std::vector<float>{1, 2, 3, 4}));
  auto z = make(TensorProto::COMPLEX128, {1});
  z.add_double_data(5.0);
  z.add_double_data(-6.0);
  Tensor tz = convert(z);
  EXPECT_EQ(tz.data<double>()[0], 5.0);
  EXPECT_EQ(tz.data<double>()[1], -6.0);
  auto wrong = make(TensorProto::COMPLEX64, {2});
  wrong.add_float_data(1.0f);
  wrong.add_float_data(2.0f);
  EXPECT_FALSE(onnx::tensor_from_proto(wrong, {}, "c").is_ok());
}

TEST(TensorProto, NarrowIntegersFromInt32Data) {
  auto i8 = make(TensorProto::INT8, {3});
  for (int v : {-128, 0, 127}) i8.add_int32_data(v);
  EXPECT_EQ(values<int8_t>(convert(i8)), (std::vector<int8_t>{-128, 0, 127}));
  auto u8 = make(TensorProto::UINT8, {2});
  for (int v : {0, 255}) u8.add_int32_data(v);
  EXPECT_EQ(values<uint8_t>(convert(u8)), (std::vector<uint8_t>{0, 255}));
  auto i16 = make(TensorProto::INT16, {2});
  for (int v : {-32768, 32767}) i16.add_int32_data(v);
  EXPECT_EQ(values<int16_t>(convert(i16)), (std::vector<int16_t>{-32768, 32767}));
  auto u16 = make(TensorProto::UINT16, {1});
  u16.add_int32_data(65535);
  EXPECT_EQ(values<uint16_t>(convert(u16)), (std::vector<uint16_t>{65535}));
  auto i16raw = make(TensorProto::INT16, {2});
  i16raw.set_raw_data(raw_of<int16_t>({-2, 300}));
  EXPECT_EQ(values<int16_t>(convert(i16raw)), (std::vector<int16_t>{-2, 300}));
}

TEST(TensorProto, BoolIsNormalized) {
  auto typed = make(TensorProto::BOOL, {3});
  for (int v : {0, 1, 5}) typed.add_int32_data(v);
  EXPECT_EQ(values<uint8_t>(convert(typed)), (std::vector<uint8_t>{0, 1, 1}));
  auto raw = make(TensorProto::BOOL, {3});
  raw.set_raw_data(std::string("\x00\x01\x07", 3));
  EXPECT_EQ(values<uint8_t>(convert(raw)), (std::vector<uint8_t>{0, 1, 1}));
}

TEST(TensorProto, FloatBitPatterns) {
  // 0x3C00 is 1.0 in float16; 0x3F80 is 1.0 in bfloat16; 0x38 is 1.0 in float8e4m3fn.
  auto h = make(TensorProto::FLOAT16, {2});
  h.add_int32_data(0x3C00);
  h.add_int32_data(0xC000);
  EXPECT_EQ(values<uint16_t>(convert(h)), (std::vector<uint16_t>{0x3C00, 0xC000}));
  auto b = make(TensorProto::BFLOAT16, {1});
  b.add_int32_data(0x3F80);
  EXPECT_EQ(values<uint16_t>(convert(b)), (std::vector<uint16_t>{0x3F80}));
  auto hraw = make(TensorProto::FLOAT16, {1});
  hraw.set_raw_data(std::string("\x00\x3c", 2));
  EXPECT_EQ(values<uint16_t>(convert(hraw)), (std::vector<uint16_t>{0x3C00}));
  for (int dt : {TensorProto::FLOAT8E4M3FN, TensorProto::FLOAT8E4M3FNUZ, TensorProto::FLOAT8E5M2,
                 TensorProto::FLOAT8E5M2FNUZ, TensorProto::FLOAT8E8M0}) {
    auto f8 = make(dt, {2});
    f8.add_int32_data(0x38);
    f8.add_int32_data(0xFF);
    EXPECT_EQ(values<uint8_t>(convert(f8)), (std::vector<uint8_t>{0x38, 0xFF})) << dt;
    auto f8raw = make(dt, {1});
    f8raw.set_raw_data("\x7f");
    EXPECT_EQ(values<uint8_t>(convert(f8raw)), (std::vector<uint8_t>{0x7F})) << dt;
  }
}

TEST(TensorProto, FourBitTypesUnpackLowNibbleFirst) {
  // Elements [1, -8, 7] as int4: bytes 0x81 (1 | -8 << 4), 0x07 (7, padding 0).
  auto i4 = make(TensorProto::INT4, {3});
  i4.set_raw_data(std::string("\x81\x07", 2));
  EXPECT_EQ(values<int8_t>(convert(i4)), (std::vector<int8_t>{1, -8, 7}));
  auto i4typed = make(TensorProto::INT4, {3});
  i4typed.add_int32_data(0x81);
  i4typed.add_int32_data(0x0F);
  EXPECT_EQ(values<int8_t>(convert(i4typed)), (std::vector<int8_t>{1, -8, -1}));
  auto u4 = make(TensorProto::UINT4, {4});
  u4.set_raw_data(std::string("\xf0\x21", 2));
  EXPECT_EQ(values<uint8_t>(convert(u4)), (std::vector<uint8_t>{0, 15, 1, 2}));
  // float4e2m1 keeps its 4-bit code (not sign-extended).
  auto f4 = make(TensorProto::FLOAT4E2M1, {2});
  f4.set_raw_data("\x9a");
  EXPECT_EQ(values<uint8_t>(convert(f4)), (std::vector<uint8_t>{0xA, 0x9}));
  auto wrong = make(TensorProto::INT4, {3});
  wrong.set_raw_data(std::string("\x81\x07\x00", 3));  // 3 bytes for 3 int4s: needs 2
  auto r = onnx::tensor_from_proto(wrong, {}, "initializer 'q'");
  expect_error(r, StatusCode::kInvalidArgument, {"initializer 'q'", "3 bytes", "needs 2"});
}

TEST(TensorProto, TwoBitTypesUnpackFourPerByte) {
  // int2 [1, -2, -1, 0, 1]: byte0 = 1 | 2<<2 | 3<<4 | 0<<6 = 0x39, byte1 = 0x01.
  auto i2 = make(TensorProto::INT2, {5});
  i2.set_raw_data(std::string("\x39\x01", 2));
  EXPECT_EQ(values<int8_t>(convert(i2)), (std::vector<int8_t>{1, -2, -1, 0, 1}));
  auto u2 = make(TensorProto::UINT2, {4});
  u2.add_int32_data(0xE4);  // 0, 1, 2, 3
  EXPECT_EQ(values<uint8_t>(convert(u2)), (std::vector<uint8_t>{0, 1, 2, 3}));
}

TEST(TensorProto, Strings) {
  auto s = make(TensorProto::STRING, {2});
  s.add_string_data("hello");
  s.add_string_data(std::string("a\0b", 3));
  Tensor t = convert(s);
  ASSERT_EQ(t.numel(), 2);
  EXPECT_EQ(t.data<std::string>()[0], "hello");
  EXPECT_EQ(t.data<std::string>()[1], std::string("a\0b", 3));
  auto raw = make(TensorProto::STRING, {1});
  raw.set_raw_data("x");
  expect_error(onnx::tensor_from_proto(raw, {}, "initializer 's'"), StatusCode::kInvalidArgument,
               {"initializer 's'", "string_data"});
}

TEST(TensorProto, Errors) {
  auto count = make(TensorProto::FLOAT, {2, 2});
  for (float v : {1.0f, 2.0f, 3.0f}) count.add_float_data(v);
  expect_error(onnx::tensor_from_proto(count, {}, "initializer 'w'"), StatusCode::kInvalidArgument,
               {"initializer 'w'", "float_data has 3 values", "float[2,2] needs 4"});

  auto none = make(TensorProto::INT64, {2});
  expect_error(onnx::tensor_from_proto(none, {}, "initializer 'w'"), StatusCode::kInvalidArgument,
               {"initializer 'w'", "has no data"});

  auto wrong_field = make(TensorProto::INT64, {1});
  wrong_field.add_int32_data(1);
  expect_error(onnx::tensor_from_proto(wrong_field, {}, "initializer 'w'"), StatusCode::kInvalidArgument,
               {"int64_data", "int32_data"});

  auto unknown = make(77, {1});
  expect_error(onnx::tensor_from_proto(unknown, {}, "initializer 'w'"), StatusCode::kInvalidArgument,
               {"initializer 'w'", "unknown data type 77"});
  auto undefined = make(0, {1});
  expect_error(onnx::tensor_from_proto(undefined, {}, "initializer 'w'"), StatusCode::kInvalidArgument,
               {"initializer 'w'", "not set"});
  auto fp6 = make(TensorProto::FLOAT6E2M3, {1});
  expect_error(onnx::tensor_from_proto(fp6, {}, "initializer 'w'"), StatusCode::kUnimplemented, {"float6e2m3"});

  auto segment = make(TensorProto::FLOAT, {1});
  segment.mutable_segment()->set_begin(0);
  segment.add_float_data(1.0f);
  expect_error(onnx::tensor_from_proto(segment, {}, "initializer 'w'"), StatusCode::kUnimplemented,
               {"initializer 'w'", "segment"});
}

TEST(TensorProto, SparseDensify) {
  pb::SparseTensorProto sp;
  sp.add_dims(2);
  sp.add_dims(3);
  *sp.mutable_values() = float_tensor("v", {2}, {5.0f, 6.0f});
  auto* idx = sp.mutable_indices();
  idx->set_data_type(TensorProto::INT64);
  idx->add_dims(2);
  idx->add_dims(2);
  for (int64_t v : {0, 1, 1, 2}) idx->add_int64_data(v);  // (0,1) and (1,2)
  auto r = onnx::sparse_tensor_from_proto(sp, {}, "sparse 's'");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(values<float>(*r), (std::vector<float>{0, 5, 0, 0, 0, 6}));

  idx->set_int64_data(3, 3);  // column 3 of 3
  expect_error(onnx::sparse_tensor_from_proto(sp, {}, "sparse 's'"), StatusCode::kInvalidArgument,
               {"sparse 's'", "out of range"});

  pb::SparseTensorProto huge;
  huge.add_dims(int64_t{1} << 20);
  huge.add_dims(int64_t{1} << 12);
  *huge.mutable_values() = float_tensor("v", {0}, {});
  expect_error(onnx::sparse_tensor_from_proto(huge, {}, "sparse 'h'"), StatusCode::kUnimplemented,
               {"sparse 'h'", "densifying"});
}

// The same failures through a whole model: messages name the file and initializer.
TEST(TensorProto, InitializerErrorsInAModel) {
  auto base = [] {
    auto m = make_model(17);
    auto* g = m.mutable_graph();
    add_node(g, "Identity", {"w"}, {"y"});
    add_untyped_output(g, "y");
    return m;
  };
  {
    auto m = base();
    auto t = make(TensorProto::FLOAT, {int64_t{1} << 20, int64_t{1} << 20});
    t.set_name("w");
    add_initializer(m.mutable_graph(), t);
    expect_error(import(m), StatusCode::kOutOfRange, {"test.onnx: initializer 'w'", "more than 2^36 elements"});
  }
  {
    auto m = base();
    auto t = make(TensorProto::FLOAT, {3, -1});
    t.set_name("w");
    add_initializer(m.mutable_graph(), t);
    expect_error(import(m), StatusCode::kInvalidArgument, {"test.onnx: initializer 'w'", "negative dimension -1"});
  }
  {
    auto m = base();
    add_initializer(m.mutable_graph(), float_tensor("w", {4}, {1, 2, 3}, false));
    expect_error(import(m), StatusCode::kInvalidArgument, {"test.onnx: initializer 'w'", "has 3 values"});
  }
  {
    auto m = base();
    add_initializer(m.mutable_graph(), float_tensor("w", {4}, {1, 2, 3}, true));
    expect_error(import(m), StatusCode::kInvalidArgument, {"test.onnx: initializer 'w'", "12 bytes", "needs 16"});
  }
  {
    auto m = base();
    auto* sp = m.mutable_graph()->add_sparse_initializer();
    *sp->mutable_values() = float_tensor("w", {1}, {2.0f});
    sp->add_dims(4);
    auto* idx = sp->mutable_indices();
    idx->set_data_type(TensorProto::INT64);
    idx->add_dims(1);
    idx->add_int64_data(3);
    auto r = import(m);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    const ir::Value* w = r->graph->find_value("w");
    ASSERT_TRUE(w->is_constant());
    EXPECT_EQ(values<float>(w->constant()), (std::vector<float>{0, 0, 0, 2}));
  }
}

}  // namespace
}  // namespace kiln::test
