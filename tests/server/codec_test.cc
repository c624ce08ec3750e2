#include <gtest/gtest.h>

#include <cstring>

#include "server/batching.h"
#include "server/http/compression.h"
#include "server/http/infer_json.h"
#include "server/tensor_codec.h"

namespace kiln::server {
namespace {

std::string bytes_element(const std::string& s) {
  uint32_t n = static_cast<uint32_t>(s.size());
  std::string out(4, '\0');
  std::memcpy(out.data(), &n, 4);
  return out + s;
}

TEST(TensorCodecTest, BytesRoundTripAndTruncation) {
  std::string wire = bytes_element("ab") + bytes_element("") + bytes_element(std::string("\0z", 2));
  auto t = tensor_from_raw("s", DataType::kString, {3}, wire);
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  EXPECT_EQ(t->data<std::string>()[2], std::string("\0z", 2));
  std::string back;
  append_raw(t.value(), back);
  EXPECT_EQ(back, wire);
  EXPECT_FALSE(tensor_from_raw("s", DataType::kString, {2}, wire).is_ok());
  EXPECT_FALSE(tensor_from_raw("s", DataType::kString, {3}, wire.substr(0, wire.size() - 1)).is_ok());
  std::string huge_len("\xff\xff\xff\x7f", 4);
  EXPECT_FALSE(tensor_from_raw("s", DataType::kString, {1}, huge_len).is_ok());
}

TEST(TensorCodecTest, FixedSizeMustMatchExactly) {
  std::string four(16, '\0');
  EXPECT_TRUE(tensor_from_raw("x", DataType::kFloat32, {2, 2}, four).is_ok());
  EXPECT_FALSE(tensor_from_raw("x", DataType::kFloat32, {2, 3}, four).is_ok());
  EXPECT_FALSE(tensor_from_raw("x", DataType::kFloat32, {int64_t{1} << 40, int64_t{1} << 40}, four).is_ok());
  EXPECT_FALSE(tensor_from_raw("x", DataType::kFloat32, {-1, 4}, four).is_ok());
}

TEST(BatchingTest, ConcatAndSliceRows) {
  Tensor a = Tensor::empty(DataType::kInt32, {1, 2});
  Tensor b = Tensor::empty(DataType::kInt32, {2, 2});
  for (int i = 0; i < 2; ++i) a.data<int32_t>()[i] = i;
  for (int i = 0; i < 4; ++i) b.data<int32_t>()[i] = 10 + i;
  auto joined = concat_rows({&a, &b});
  ASSERT_TRUE(joined.is_ok());
  EXPECT_EQ(joined->dim(0), 3);
  auto tail = slice_rows(joined.value(), 1, 2);
  ASSERT_TRUE(tail.is_ok());
  EXPECT_EQ(tail->data<int32_t>()[0], 10);
  EXPECT_EQ(tail->data<int32_t>()[3], 13);
  Tensor c = Tensor::empty(DataType::kInt32, {1, 3});
  EXPECT_FALSE(concat_rows({&a, &c}).is_ok());
  EXPECT_FALSE(slice_rows(joined.value(), 2, 5).is_ok());
  auto r = reshape_to(joined.value(), {-1});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->dim(0), 6);
}

TEST(CompressionTest, RoundTripAndLimits) {
  std::string text(10000, 'k');
  for (Encoding e : {Encoding::kGzip, Encoding::kDeflate}) {
    auto packed = compress(text, e);
    ASSERT_TRUE(packed.is_ok());
    auto plain = decompress(packed.value(), e, 1 << 20);
    ASSERT_TRUE(plain.is_ok());
    EXPECT_EQ(plain.value(), text);
    EXPECT_FALSE(decompress(packed.value(), e, 100).is_ok());
    EXPECT_FALSE(decompress(packed.value().substr(0, packed->size() / 2), e, 1 << 20).is_ok());
  }
  EXPECT_EQ(choose_response_encoding("gzip;q=0.5, deflate"), Encoding::kDeflate);
  EXPECT_EQ(choose_response_encoding("br"), Encoding::kIdentity);
  EXPECT_EQ(parse_content_encoding("zstd").status().code(), StatusCode::kUnimplemented);
}

TEST(InferJsonTest, DecodesJsonAndBinaryTensors) {
  std::string header =
      R"({"id":"7","inputs":[{"name":"a","shape":[2],"datatype":"INT64","data":[[1],[2]]},)"
      R"({"name":"b","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}],)"
      R"("outputs":[{"name":"y","parameters":{"binary_data":true}}],"parameters":{"priority":2}})";
  float f = 2.5f;
  std::string body = header + std::string(reinterpret_cast<const char*>(&f), 4);
  auto r = decode_infer_request(body, header.size());
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->request.id, "7");
  EXPECT_EQ(r->request.priority, 2u);
  EXPECT_EQ(r->request.inputs[0].tensor.data<int64_t>()[1], 2);
  EXPECT_EQ(r->request.inputs[1].tensor.data<float>()[0], 2.5f);
  EXPECT_TRUE(r->binary_output.at("y"));

  InferResponse resp;
  resp.model_name = "m";
  resp.model_version = "1";
  resp.outputs.push_back({"y", r->request.inputs[1].tensor});
  HttpInferBody enc = encode_infer_response(resp, r.value());
  EXPECT_TRUE(enc.has_binary);
  EXPECT_EQ(enc.body.size(), enc.json_length + 4);
  EXPECT_NE(enc.body.find("\"binary_data_size\":4"), std::string::npos);
}

TEST(InferJsonTest, RejectsHostileBodies) {
  EXPECT_FALSE(decode_infer_request("{", std::nullopt).is_ok());
  EXPECT_FALSE(decode_infer_request(R"({"inputs":[{"name":"a","shape":[3],"datatype":"INT8","data":[1,2,300]}]})",
                                    std::nullopt).is_ok());
  EXPECT_FALSE(decode_infer_request(R"({"inputs":[{"name":"a","shape":[1],"datatype":"BOOL","data":[1]}]})",
                                    std::nullopt).is_ok());
  std::string deep = R"({"inputs":[{"name":"a","shape":[1],"datatype":"FP32","data":)" + std::string(100, '[') + "1" +
                     std::string(100, ']') + "}]}";
  EXPECT_FALSE(decode_infer_request(deep, std::nullopt).is_ok());
  EXPECT_FALSE(decode_infer_request("{}", size_t{5}).is_ok());
  EXPECT_EQ(error_json("a \"b\""), R"({"error":"a \"b\""})");
}

}  // namespace
}  // namespace kiln::server
