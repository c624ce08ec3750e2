// Op family: ImageDecoder (opset 20). Decodes one encoded image (BMP, JPEG,
// JPEG 2000, TIFF, PNG, WebP, PNM, ...) into uint8 [H, W, C] with FreeImage.
//
// Matching ONNX's reference (Pillow): JPEG decodes with libjpeg's accurate
// integer DCT and fancy upsampling; Grayscale converts RGB with Pillow's
// ITU-R 601-2 weights (L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16);
// alpha is dropped; no EXIF rotation is applied. Bytes that do not decode
// give an error naming the reason (the spec allows an empty output instead;
// Kiln reports the failure rather than hide it).
#include <FreeImage.h>
#include <tiffio.h>

#include <algorithm>
#include <cctype>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/error.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"

namespace kiln::ops {
namespace {

// The last message FreeImage reported on this thread (it reports errors and
// warnings through one global callback).
thread_local std::string t_freeimage_message;

void record_message(FREE_IMAGE_FORMAT, const char* msg) {
  if (msg == nullptr) return;
  std::string_view m(msg);
  while (!m.empty() && std::isspace(static_cast<unsigned char>(m.back()))) m.remove_suffix(1);
  t_freeimage_message = std::string(m);
}

// libtiff's errors, which FreeImage does not route anywhere. FreeImage looks
// up EXIF tags libtiff does not know while reading every TIFF; those
// "unknown tag" reports are noise and dropped.
void record_tiff_error(const char* module, const char* format, va_list args) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, format, args);
  std::string_view msg(buf);
  if (msg.starts_with("Internal error, unknown tag")) return;
  const std::string full = module != nullptr ? fmt::format("{}: {}", module, msg) : std::string(msg);
  record_message(FIF_TIFF, full.c_str());
}

void init_freeimage() {
  static std::once_flag once;
  std::call_once(once, [] {
    FreeImage_Initialise(FALSE);
    FreeImage_SetOutputMessage(record_message);
    TIFFSetErrorHandler(record_tiff_error);
    TIFFSetWarningHandler(nullptr);
  });
}

struct BitmapUnloader {
  void operator()(FIBITMAP* b) const { FreeImage_Unload(b); }
};
using BitmapPtr = std::unique_ptr<FIBITMAP, BitmapUnloader>;

// The encoded bytes as a FreeImage stream that notes reads past the end:
// FreeImage's BMP, PNM and TIFF loaders do not check for short reads and
// would return a partly garbage image from truncated data.
struct Reader {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  bool short_read = false;

  static unsigned read(void* buffer, unsigned size, unsigned count, fi_handle handle) {
    auto* r = static_cast<Reader*>(handle);
    const size_t left = r->pos < r->size ? r->size - r->pos : 0;
    const size_t items = size == 0 ? count : std::min<size_t>(count, left / size);
    std::memcpy(buffer, r->data + r->pos, items * size);
    r->pos += items * size;
    if (items < count) r->short_read = true;
    return static_cast<unsigned>(items);
  }
  static unsigned write(void*, unsigned, unsigned, fi_handle) { return 0; }
  static int seek(fi_handle handle, long offset, int origin) {
    auto* r = static_cast<Reader*>(handle);
    const long base = origin == SEEK_SET ? 0 : origin == SEEK_CUR ? static_cast<long>(r->pos) : static_cast<long>(r->size);
    if (offset < -base) return -1;
    r->pos = static_cast<size_t>(base + offset);
    return 0;
  }
  static long tell(fi_handle handle) { return static_cast<long>(static_cast<Reader*>(handle)->pos); }
};

// Formats whose loaders read exactly the bytes they need, so that a short
// read means truncated data (others, like libjpeg and libpng, read ahead in
// blocks and check for themselves).
bool is_pnm(FREE_IMAGE_FORMAT fif) {
  return fif == FIF_PBM || fif == FIF_PBMRAW || fif == FIF_PGM || fif == FIF_PGMRAW || fif == FIF_PPM ||
         fif == FIF_PPMRAW;
}
bool reads_exactly(FREE_IMAGE_FORMAT fif, const uint8_t* data, size_t size) {
  if (fif == FIF_BMP || fif == FIF_TIFF) return true;
  // FreeImage reports every PNM variant as one format; only the binary ones
  // (P4, P5, P6) read exact sizes, the ASCII ones read numbers up to the end.
  return is_pnm(fif) && size >= 2 && data[1] >= '4' && data[1] <= '6';
}

enum class PixelFormat { kRgb, kBgr, kGray };

Result<PixelFormat> pixel_format_of(const ir::Node& node) {
  std::string f = node.attr_string("pixel_format", "RGB");
  if (f == "RGB") return PixelFormat::kRgb;
  if (f == "BGR") return PixelFormat::kBgr;
  if (f == "Grayscale") return PixelFormat::kGray;
  return invalid_argument("{}: pixel_format must be RGB, BGR or Grayscale, got '{}'", node.describe(), f);
}

std::string reason(const std::string& what) {
  return t_freeimage_message.empty() ? what : what + ": " + t_freeimage_message;
}

// Decodes `size` bytes into a 24-bit BGR bitmap (FreeImage's pixel order on
// little-endian machines), bottom-up like every FreeImage bitmap.
Result<BitmapPtr> decode(const uint8_t* data, int64_t size) {
  init_freeimage();
  t_freeimage_message.clear();
  if (size <= 0) return invalid_argument("the encoded image is empty");
  Reader reader{data, static_cast<size_t>(size)};
  FreeImageIO io{Reader::read, Reader::write, Reader::seek, Reader::tell};
  const FREE_IMAGE_FORMAT fif = FreeImage_GetFileTypeFromHandle(&io, &reader, 0);
  if (fif == FIF_UNKNOWN || !FreeImage_FIFSupportsReading(fif)) {
    return invalid_argument("the encoded image is in no format this build can decode");
  }
  const char* format = is_pnm(fif) ? "PNM" : FreeImage_GetFormatFromFIF(fif);
  // Check the size from the header first where the format allows it, so that
  // a few bytes claiming a huge image are not decoded.
  if (FreeImage_FIFSupportsNoPixels(fif)) {
    reader.pos = 0;
    BitmapPtr header(FreeImage_LoadFromHandle(fif, &io, &reader, FIF_LOAD_NOPIXELS));
    if (header == nullptr) return invalid_argument("{}", reason(fmt::format("cannot read the {} header", format)));
    auto n = checked_numel({FreeImage_GetHeight(header.get()), FreeImage_GetWidth(header.get()), 4});
    if (!n.is_ok()) return invalid_argument("the {} image is too large: {}", format, n.status().message());
  }
  reader.pos = 0;
  reader.short_read = false;
  t_freeimage_message.clear();
  const int flags = fif == FIF_JPEG ? JPEG_ACCURATE : 0;
  BitmapPtr bitmap(FreeImage_LoadFromHandle(fif, &io, &reader, flags));
  if (bitmap == nullptr || !FreeImage_HasPixels(bitmap.get())) {
    return invalid_argument("{}", reason(fmt::format("cannot decode the {} image", format)));
  }
  // Truncated data: libjpeg only warns and pads the image with gray; the
  // exact-read loaders do not notice. Pillow raises in both cases.
  if ((fif == FIF_JPEG && t_freeimage_message.find("Premature end") != std::string::npos) ||
      (reader.short_read && reads_exactly(fif, data, reader.size))) {
    return invalid_argument("{}", reason(fmt::format("the {} image is truncated", format)));
  }
  // libtiff reports read errors (e.g. a strip past the end) without failing the load.
  if (fif == FIF_TIFF && !t_freeimage_message.empty()) {
    return invalid_argument("{}", reason(fmt::format("cannot decode the {} image", format)));
  }
  BitmapPtr rgb(FreeImage_ConvertTo24Bits(bitmap.get()));
  if (rgb == nullptr) return invalid_argument("{}", reason(fmt::format("cannot convert the {} image to RGB", format)));
  return rgb;
}

Status image_decoder_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(PixelFormat pf, pixel_format_of(ctx.node()));
  KILN_ASSIGN_OR_RETURN(const Tensor* encoded, ctx.tensor_input(0));
  if (encoded->dtype() != DataType::kUInt8 || encoded->rank() != 1) {
    return ctx.error(invalid_argument("encoded_stream must be a 1-D uint8 tensor, got {}", encoded->debug_string()));
  }
  auto bitmap = decode(encoded->data<uint8_t>(), encoded->numel());
  if (!bitmap.is_ok()) return ctx.error(bitmap.status());
  FIBITMAP* bgr = bitmap->get();
  const int64_t h = FreeImage_GetHeight(bgr);
  const int64_t w = FreeImage_GetWidth(bgr);
  const int64_t c = pf == PixelFormat::kGray ? 1 : 3;
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, DataType::kUInt8, {h, w, c}));
  uint8_t* po = out->data<uint8_t>();
  for (int64_t y = 0; y < h; ++y) {
    // Scan line 0 is the bottom row.
    const BYTE* line = FreeImage_GetScanLine(bgr, static_cast<int>(h - 1 - y));
    for (int64_t x = 0; x < w; ++x) {
      const uint32_t r = line[3 * x + FI_RGBA_RED];
      const uint32_t g = line[3 * x + FI_RGBA_GREEN];
      const uint32_t b = line[3 * x + FI_RGBA_BLUE];
      uint8_t* p = po + (y * w + x) * c;
      if (pf == PixelFormat::kGray) {
        p[0] = static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
      } else if (pf == PixelFormat::kRgb) {
        p[0] = static_cast<uint8_t>(r), p[1] = static_cast<uint8_t>(g), p[2] = static_cast<uint8_t>(b);
      } else {
        p[0] = static_cast<uint8_t>(b), p[1] = static_cast<uint8_t>(g), p[2] = static_cast<uint8_t>(r);
      }
    }
  }
  return Status::ok();
}

Status image_decoder_infer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(PixelFormat pf, pixel_format_of(ctx.node()));
  const int64_t c = pf == PixelFormat::kGray ? 1 : 3;
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kUInt8, Shape({Dim(), Dim(), Dim(c)})));
  return Status::ok();
}

}  // namespace

void register_image(Registry& r) {
  r.add({.name = "ImageDecoder", .domain = "", .since_version = 20, .min_inputs = 1, .max_inputs = 1,
         .kernel = image_decoder_kernel, .infer = image_decoder_infer});
}

}  // namespace kiln::ops
