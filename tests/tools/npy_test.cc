// Tests of the kiln tool's .npy reader and writer against files written by numpy.
#include "npy.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <string_view>

namespace kiln::cli {
namespace {

// Bytes of np.save(...) (numpy 2.4) as hex; the comment above each names the array.
// np.arange(6, dtype=float32).reshape(2, 3); np.array(7, int64); np.array([True, False, True]);
// np.array(["a", "bé", ""]); np.array([b"x\xff", b"y"]); np.array([1.5, -2], float16);
// np.zeros((0, 4), uint8); np.lib.format.write_array(f, np.array([1, -2, 3], int32), version=(2, 0));
// np.asfortranarray(np.arange(6, dtype=float32).reshape(2, 3)); np.arange(2, dtype='>i4').
constexpr std::string_view kFloat32x2x3 =
    "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73"
    "652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020"
    "202020202020202020202020202020202020202020202020202020202020200a000000000000803f0000004000004040"
    "000080400000a040";
constexpr std::string_view kInt64Scalar =
    "934e554d5059010076007b276465736372273a20273c6938272c2027666f727472616e5f6f72646572273a2046616c73"
    "652c20277368617065273a2028292c207d20202020202020202020202020202020202020202020202020202020202020"
    "202020202020202020202020202020202020202020202020202020202020200a0700000000000000";
constexpr std::string_view kBool3 =
    "934e554d5059010076007b276465736372273a20277c6231272c2027666f727472616e5f6f72646572273a2046616c73"
    "652c20277368617065273a2028332c292c207d2020202020202020202020202020202020202020202020202020202020"
    "202020202020202020202020202020202020202020202020202020202020200a010001";
constexpr std::string_view kUnicode3 =
    "934e554d5059010076007b276465736372273a20273c5532272c2027666f727472616e5f6f72646572273a2046616c73"
    "652c20277368617065273a2028332c292c207d2020202020202020202020202020202020202020202020202020202020"
    "202020202020202020202020202020202020202020202020202020202020200a610000000000000062000000e9000000"
    "0000000000000000";
constexpr std::string_view kBytes2 =
    "934e554d5059010076007b276465736372273a20277c5332272c2027666f727472616e5f6f72646572273a2046616c73"
    "652c20277368617065273a2028322c292c207d2020202020202020202020202020202020202020202020202020202020"
    "202020202020202020202020202020202020202020202020202020202020200a78ff7900";
constexpr std::string_view kFloat16x2 =
    "934e554d5059010076007b276465736372273a20273c6632272c2027666f727472616e5f6f72646572273a2046616c73"
    "652c20277368617065273a2028322c292c207d2020202020202020202020202020202020202020202020202020202020"
    "202020202020202020202020202020202020202020202020202020202020200a003e00c0";
constexpr std::string_view kUInt8Empty =
    "934e554d5059010076007b276465736372273a20277c7531272c2027666f727472616e5f6f72646572273a2046616c73"
    "652c20277368617065273a2028302c2034292c207d202020202020202020202020202020202020202020202020202020"
    "202020202020202020202020202020202020202020202020202020202020200a";
constexpr std::string_view kV2Int32 =
    "934e554d50590200740000007b276465736372273a20273c6934272c2027666f727472616e5f6f72646572273a204661"
    "6c73652c20277368617065273a2028332c292c207d202020202020202020202020202020202020202020202020202020"
    "202020202020202020202020202020202020202020202020202020202020200a01000000feffffff03000000";
constexpr std::string_view kFortran =
    "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2054727565"
    "2c20277368617065273a2028322c2033292c207d20202020202020202020202020202020202020202020202020202020"
    "202020202020202020202020202020202020202020202020202020202020200a00000000000040400000803f00008040"
    "000000400000a040";
constexpr std::string_view kBigEndian =
    "934e554d5059010076007b276465736372273a20273e6934272c2027666f727472616e5f6f72646572273a2046616c73"
    "652c20277368617065273a2028322c292c207d2020202020202020202020202020202020202020202020202020202020"
    "202020202020202020202020202020202020202020202020202020202020200a0000000000000001";

std::string unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

Tensor parse_ok(std::string_view hex) {
  auto r = parse_npy(unhex(hex), "test.npy");
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? std::move(r).value() : Tensor();
}

std::string parse_error(const std::string& bytes) {
  auto r = parse_npy(bytes, "bad.npy");
  EXPECT_FALSE(r.is_ok());
  return r.is_ok() ? "" : r.status().message();
}

// Parsing numpy's bytes and formatting the result again gives numpy's bytes back.
void expect_roundtrip(std::string_view hex) {
  Tensor t = parse_ok(hex);
  auto again = format_npy(t);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(again.value(), unhex(hex));
}

TEST(Npy, Float32Matrix) {
  Tensor t = parse_ok(kFloat32x2x3);
  EXPECT_EQ(t.dtype(), DataType::kFloat32);
  EXPECT_EQ(dims_to_string(t.dims()), "[2,3]");
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<float>()[i], static_cast<float>(i));
  expect_roundtrip(kFloat32x2x3);
}

TEST(Npy, ScalarBoolHalfEmpty) {
  Tensor s = parse_ok(kInt64Scalar);
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(s.data<int64_t>()[0], 7);
  Tensor b = parse_ok(kBool3);
  EXPECT_EQ(b.dtype(), DataType::kBool);
  EXPECT_EQ(b.data<uint8_t>()[1], 0);
  EXPECT_EQ(b.data<uint8_t>()[2], 1);
  Tensor h = parse_ok(kFloat16x2);
  EXPECT_EQ(h.dtype(), DataType::kFloat16);
  EXPECT_EQ(h.data<uint16_t>()[0], 0x3e00);  // 1.5
  Tensor e = parse_ok(kUInt8Empty);
  EXPECT_EQ(dims_to_string(e.dims()), "[0,4]");
  for (auto hex : {kInt64Scalar, kBool3, kFloat16x2, kUInt8Empty}) expect_roundtrip(hex);
}

TEST(Npy, Strings) {
  Tensor u = parse_ok(kUnicode3);
  ASSERT_EQ(u.dtype(), DataType::kString);
  EXPECT_EQ(u.data<std::string>()[0], "a");
  EXPECT_EQ(u.data<std::string>()[1], "b\xc3\xa9");
  EXPECT_EQ(u.data<std::string>()[2], "");
  Tensor s = parse_ok(kBytes2);
  EXPECT_EQ(s.data<std::string>()[0], "x\xff");
  EXPECT_EQ(s.data<std::string>()[1], "y");
  expect_roundtrip(kUnicode3);
  expect_roundtrip(kBytes2);  // not UTF-8, so written as bytes
}

TEST(Npy, Version2Header) {
  Tensor t = parse_ok(kV2Int32);
  EXPECT_EQ(t.dtype(), DataType::kInt32);
  EXPECT_EQ(t.data<int32_t>()[1], -2);
}

TEST(Npy, Rejects) {
  EXPECT_NE(parse_error(unhex(kFortran)).find("Fortran"), std::string::npos);
  EXPECT_NE(parse_error(unhex(kBigEndian)).find("big-endian"), std::string::npos);
  EXPECT_NE(parse_error("hello").find("not a .npy file"), std::string::npos);
  EXPECT_NE(parse_error("").find("not a .npy file"), std::string::npos);
  std::string full = unhex(kFloat32x2x3);
  // Cut inside the data, inside the header and inside the header length.
  EXPECT_NE(parse_error(full.substr(0, full.size() - 1)).find("truncated"), std::string::npos);
  EXPECT_NE(parse_error(full.substr(0, 40)).find("truncated"), std::string::npos);
  EXPECT_NE(parse_error(full.substr(0, 9)).find("truncated"), std::string::npos);
  EXPECT_NE(parse_error(full + "x").find("unexpected bytes"), std::string::npos);
  std::string object = full;
  object.replace(object.find("'<f4'"), 5, "'|O' ");
  EXPECT_NE(parse_error(object).find("pickled"), std::string::npos);
  std::string version = full;
  version[6] = 9;
  EXPECT_NE(parse_error(version).find("version 9"), std::string::npos);
  std::string bad_shape = full;
  bad_shape.replace(bad_shape.find("(2, 3)"), 6, "(2, -)");
  EXPECT_NE(parse_error(bad_shape).find("malformed"), std::string::npos);
  std::string bad_bool = unhex(kBool3);
  bad_bool.back() = 7;
  EXPECT_NE(parse_error(bad_bool).find("not 0 or 1"), std::string::npos);
  std::string huge = full;
  huge.replace(huge.find("(2, 3)"), 6, "(9999999999, 9999999999)");
  EXPECT_FALSE(parse_npy(huge, "huge.npy").is_ok());
}

// Every single-byte corruption and every truncation either parses or fails cleanly
// (run under ASan/UBSan by make test-asan).
TEST(Npy, CorruptionsFailCleanly) {
  for (auto hex : {kFloat32x2x3, kUnicode3, kV2Int32}) {
    const std::string good = unhex(hex);
    for (size_t i = 0; i < good.size(); ++i) {
      for (char c : {'\0', '\xff', '9', ')', '\'', ',', 'U'}) {
        std::string bad = good;
        bad[i] = c;
        auto r = parse_npy(bad, "mutated.npy");
        if (!r.is_ok()) {
          EXPECT_NE(r.status().message().find("mutated.npy"), std::string::npos);
        }
      }
      EXPECT_FALSE(parse_npy(good.substr(0, i), "cut.npy").is_ok()) << "cut at " << i;
    }
  }
}

TEST(Npy, ReadMissingFile) {
  auto r = read_npy("/nonexistent/x.npy");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("/nonexistent/x.npy"), std::string::npos);
}

TEST(Npy, WriteUnsupportedType) {
  Tensor t = Tensor::empty(DataType::kBFloat16, {2});
  EXPECT_FALSE(format_npy(t).is_ok());
}

}  // namespace
}  // namespace kiln::cli
