// Tests of ImageDecoder: pixel formats, orientation, alpha and grayscale
// sources, and clear errors (never a crash) on bytes that do not decode.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "ops/op_test_util.h"

namespace kiln::test {
namespace {

#include "ops/image_bytes.inc"

using ir::Attribute;

Tensor bytes(const std::vector<uint8_t>& v) {
  Tensor t = Tensor::empty(DataType::kUInt8, {static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) t.data<uint8_t>()[i] = v[i];
  return t;
}

Result<std::vector<Tensor>> decode(const std::vector<uint8_t>& data, const std::string& format = "RGB") {
  OpTest t("ImageDecoder", 20);
  t.input("encoded", bytes(data)).attr(Attribute::make_string("pixel_format", format));
  return t.run();
}

std::vector<int> pixels(const Tensor& t) {
  std::vector<int> v;
  for (int64_t i = 0; i < t.numel(); ++i) v.push_back(t.data<uint8_t>()[i]);
  return v;
}

// zlib's CRC-32, to keep an edited PNG chunk valid.
uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// The pixels of image_bytes.inc's 3x2 images, top row first.
const std::vector<int> kRgb3x2 = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 200, 100, 50, 255, 255, 255};

TEST(ImageDecoder, PngRgbBgrAndGrayscale) {
  auto rgb = decode(kPngRgb3x2);
  ASSERT_TRUE(rgb.is_ok()) << rgb.status().to_string();
  EXPECT_EQ((*rgb)[0].dtype(), DataType::kUInt8);
  EXPECT_EQ(dims_to_string((*rgb)[0].dims()), "[2,3,3]");
  EXPECT_EQ(pixels((*rgb)[0]), kRgb3x2);

  auto bgr = decode(kPngRgb3x2, "BGR");
  ASSERT_TRUE(bgr.is_ok()) << bgr.status().to_string();
  EXPECT_EQ(pixels((*bgr)[0]),
            (std::vector<int>{0, 0, 255, 0, 255, 0, 255, 0, 0, 30, 20, 10, 50, 100, 200, 255, 255, 255}));

  // Pillow's convert("L"): (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
  auto gray = decode(kPngRgb3x2, "Grayscale");
  ASSERT_TRUE(gray.is_ok()) << gray.status().to_string();
  EXPECT_EQ(dims_to_string((*gray)[0].dims()), "[2,3,1]");
  EXPECT_EQ(pixels((*gray)[0]), (std::vector<int>{76, 150, 29, 18, 124, 255}));
}

TEST(ImageDecoder, AlphaIsDroppedAndGraySourcesExpand) {
  auto rgba = decode(kPngRgba3x2);
  ASSERT_TRUE(rgba.is_ok()) << rgba.status().to_string();
  EXPECT_EQ(pixels((*rgba)[0]), kRgb3x2);

  auto gray_rgb = decode(kPngGray2x2);
  ASSERT_TRUE(gray_rgb.is_ok()) << gray_rgb.status().to_string();
  EXPECT_EQ(pixels((*gray_rgb)[0]), (std::vector<int>{0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255}));
  auto gray = decode(kPngGray2x2, "Grayscale");
  ASSERT_TRUE(gray.is_ok()) << gray.status().to_string();
  EXPECT_EQ(pixels((*gray)[0]), (std::vector<int>{0, 100, 200, 255}));
}

TEST(ImageDecoder, PnmBmpTiffAndJpeg) {
  for (const auto* data : {&kPnmRgb3x2, &kBmpRgb3x2, &kTiffRgb3x2}) {
    auto r = decode(*data);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(dims_to_string((*r)[0].dims()), "[2,3,3]");
    EXPECT_EQ(pixels((*r)[0]), kRgb3x2);  // BMP rows are stored bottom-up and BGR: both undone
  }

  auto jpeg = decode(kJpegRgb32x32);
  ASSERT_TRUE(jpeg.is_ok()) << jpeg.status().to_string();
  const Tensor& y = (*jpeg)[0];
  ASSERT_EQ(dims_to_string(y.dims()), "[32,32,3]");
  // Corners (top-left, top-right, bottom-left, bottom-right) as Pillow decodes them.
  std::vector<int> corners;
  for (int64_t at : {int64_t{0}, int64_t{31}, int64_t{31 * 32}, int64_t{31 * 32 + 31}}) {
    for (int64_t ch = 0; ch < 3; ++ch) corners.push_back(y.data<uint8_t>()[at * 3 + ch]);
  }
  EXPECT_EQ(corners, std::vector<int>(kJpegCornersRgb.begin(), kJpegCornersRgb.end()));
}

TEST(ImageDecoder, TruncatedAndGarbageBytesGiveErrors) {
  for (size_t keep : {size_t{0}, size_t{4}, size_t{8}, size_t{30}, kPngRgb3x2.size() - 14, kPngRgb3x2.size() - 1}) {
    std::vector<uint8_t> cut(kPngRgb3x2.begin(), kPngRgb3x2.begin() + static_cast<std::ptrdiff_t>(keep));
    auto r = decode(cut);
    // Only the IEND chunk may be missing: libpng has every pixel by then.
    if (keep >= kPngRgb3x2.size() - 12) continue;
    ASSERT_FALSE(r.is_ok()) << "PNG cut to " << keep << " bytes decoded";
    EXPECT_NE(r.status().message().find("ImageDecoder"), std::string::npos) << r.status().to_string();
  }
  for (size_t keep : {size_t{2}, size_t{100}, size_t{400}, size_t{620}, size_t{800}, kJpegRgb32x32.size() - 2}) {
    std::vector<uint8_t> cut(kJpegRgb32x32.begin(), kJpegRgb32x32.begin() + static_cast<std::ptrdiff_t>(keep));
    auto r = decode(cut);
    ASSERT_FALSE(r.is_ok()) << "JPEG cut to " << keep << " bytes decoded";
  }
  // BMP, binary PNM and TIFF loaders do not notice missing pixels by themselves.
  for (const auto* data : {&kPnmRgb3x2, &kBmpRgb3x2, &kTiffRgb3x2}) {
    for (size_t drop : {size_t{1}, size_t{7}, data->size() / 2}) {
      std::vector<uint8_t> cut(data->begin(), data->end() - static_cast<std::ptrdiff_t>(drop));
      auto r = decode(cut);
      ASSERT_FALSE(r.is_ok()) << "cut by " << drop << " of " << data->size() << " bytes decoded";
      EXPECT_NE(r.status().message().find("ImageDecoder"), std::string::npos) << r.status().to_string();
    }
  }
  expect_error(decode({}), "empty");
  expect_error(decode({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}), "no format");
  // A PNG header claiming a 2^31 x 2^31 image must not be decoded.
  // (IHDR: width and height at bytes 16..23, its CRC over bytes 12..28 at 29..32.)
  std::vector<uint8_t> huge = kPngRgb3x2;
  for (size_t i = 16; i < 24; ++i) huge[i] = i % 4 == 0 ? 0x7f : 0xff;
  const uint32_t crc = crc32(huge.data() + 12, 17);
  for (size_t i = 0; i < 4; ++i) huge[29 + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
  EXPECT_FALSE(decode(huge).is_ok());
}

TEST(ImageDecoder, BadInputsAndAttributes) {
  expect_error(decode(kPngRgb3x2, "CMYK"), "pixel_format");
  OpTest t("ImageDecoder", 20);
  t.input("encoded", floats({2}, {1, 2}));
  expect_error(t.run(), "1-D uint8");
  auto types = InferTest("ImageDecoder", 20).tensor(DataType::kUInt8, sym_shape({Dim()})).run();
  ASSERT_TRUE(types.is_ok());
  EXPECT_EQ((*types)[0].to_string(), "uint8[?,?,3]");
}

}  // namespace
}  // namespace kiln::test
