// Int8 tactics on the u8s8 GEMM (gemm_int8.h):
//   QLinearConv / kiln.QConv: im2col of the 8-bit input (padding with the
//     input zero point, so padded taps add nothing), weights packed in
//     prepare, requantization (and ReLU) in the GEMM epilogue, NCHW output.
//   kiln.QGemm: A [..., K] times the packed constant B [K, N].
// int8 activations are shifted to uint8 (x + 128, zero point + 128), which
// leaves (x - zero_point) unchanged. Build-time facts the tactics rely on:
// constant scales and zero points, per-tensor input/output parameters,
// symmetric (all-zero) weight zero points, constant int8 weights, no groups.
// Anything else at run time goes to the reference kernel.
#include <emmintrin.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "backends/cpu/conv_geometry.h"
#include "backends/cpu/gemm_int8.h"
#include "backends/cpu/tactics.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/epilogue.h"

namespace kiln::backends::cpu {
namespace {

bool const_of(const ir::Node& node, size_t i, DataType t) {
  const ir::Value* v = node.input(i);
  return v != nullptr && v->is_constant() && v->constant().dtype() == t;
}

bool is_8bit(DataType t) { return t == DataType::kUInt8 || t == DataType::kInt8; }

bool all_zero(const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.raw_data());
  return std::all_of(p, p + t.nbytes(), [](uint8_t b) { return b == 0; });
}

// The facts shared by both ops: inputs 0..7 in QLinearConv/QGemm order,
// weight input 3 with `out_channels` output channels.
bool quant_params_supported(const ir::Node& node, int64_t out_channels) {
  if (node.num_inputs() < 8) return false;
  const ir::Value* x = node.input(0);
  if (x == nullptr || !x->type().is_tensor() || !is_8bit(x->type().dtype)) return false;
  if (!const_of(node, 1, DataType::kFloat32) || node.input(1)->constant().numel() != 1) return false;
  if (!const_of(node, 2, x->type().dtype) || node.input(2)->constant().numel() != 1) return false;
  if (!const_of(node, 4, DataType::kFloat32)) return false;
  const int64_t ws = node.input(4)->constant().numel();
  if (ws != 1 && ws != out_channels) return false;
  if (!const_of(node, 5, DataType::kInt8) || !all_zero(node.input(5)->constant())) return false;
  if (!const_of(node, 6, DataType::kFloat32) || node.input(6)->constant().numel() != 1) return false;
  const ir::Value* yz = node.input(7);
  if (yz == nullptr || !yz->is_constant() || !is_8bit(yz->constant().dtype()) || yz->constant().numel() != 1) {
    return false;
  }
  if (node.has_input(8) &&
      (!const_of(node, 8, DataType::kInt32) || node.input(8)->constant().numel() != out_channels)) {
    return false;
  }
  if (node.domain() == "kiln") {
    auto e = ops::Epilogue::from_node(node);
    if (!e.is_ok() || (e->activation != ops::Activation::kNone && e->activation != ops::Activation::kRelu))
      return false;
  }
  return true;
}

int32_t scalar_8bit(const Tensor& t) {
  return t.dtype() == DataType::kInt8 ? int32_t{t.data<int8_t>()[0]} : int32_t{t.data<uint8_t>()[0]};
}

// The epilogue parameters of a node accepted by quant_params_supported.
struct Requant {
  bool x_signed = false;
  int32_t x_zero_point = 0;  // after the uint8 shift
  std::vector<int32_t> bias;
  std::vector<double> multiplier;
  Int8Requant rq;

  void bind() {
    rq.a_zero_point = x_zero_point;
    rq.bias = bias.empty() ? nullptr : bias.data();
    rq.multiplier = multiplier.data();
  }
};

Requant make_requant(const ir::Node& node, int64_t out_channels) {
  Requant r;
  r.x_signed = node.input(0)->type().dtype == DataType::kInt8;
  r.x_zero_point = scalar_8bit(node.input(2)->constant()) + (r.x_signed ? 128 : 0);
  const float xs = node.input(1)->constant().data<float>()[0];
  const float ys = node.input(6)->constant().data<float>()[0];
  const Tensor& ws = node.input(4)->constant();
  for (int64_t c = 0; c < out_channels; ++c) {
    const float xw = xs * ws.data<float>()[ws.numel() == 1 ? 0 : c];
    r.multiplier.push_back(static_cast<float>(xw / ys));
  }
  if (node.has_input(8)) {
    const Tensor& b = node.input(8)->constant();
    r.bias.assign(b.data<int32_t>(), b.data<int32_t>() + b.numel());
  }
  const Tensor& yz = node.input(7)->constant();
  r.rq.y_signed = yz.dtype() == DataType::kInt8;
  r.rq.y_zero_point = scalar_8bit(yz);
  r.rq.y_min = r.rq.y_signed ? -128 : 0;
  r.rq.y_max = r.rq.y_signed ? 127 : 255;
  if (node.domain() == "kiln") {
    auto e = ops::Epilogue::from_node(node);
    if (e.is_ok() && e->activation == ops::Activation::kRelu) r.rq.y_min = r.rq.y_zero_point;
  }
  r.bind();
  return r;
}

// Byte of the input as uint8 (int8 shifted by 128).
inline uint8_t as_u8(uint8_t raw, bool is_signed) { return is_signed ? static_cast<uint8_t>(raw ^ 0x80) : raw; }

// ---- Conv ------------------------------------------------------------------------

// out[j] byte i = r[i] byte j: a 16x16 byte transpose in SSE2 registers,
// four rounds of interleaving (bytes, 16-bit, 32-bit and 64-bit pairs).
inline void transpose_16x16(__m128i r[16], __m128i out[16]) {
  __m128i t[16];
  for (int i = 0; i < 8; ++i) {
    t[i] = _mm_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
    t[i + 8] = _mm_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm_unpacklo_epi16(t[2 * i], t[2 * i + 1]);
    r[i + 4] = _mm_unpackhi_epi16(t[2 * i], t[2 * i + 1]);
    r[i + 8] = _mm_unpacklo_epi16(t[8 + 2 * i], t[8 + 2 * i + 1]);
    r[i + 12] = _mm_unpackhi_epi16(t[8 + 2 * i], t[8 + 2 * i + 1]);
  }
  for (int h = 0; h < 4; ++h) {
    t[4 * h] = _mm_unpacklo_epi32(r[4 * h], r[4 * h + 1]);
    t[4 * h + 1] = _mm_unpackhi_epi32(r[4 * h], r[4 * h + 1]);
    t[4 * h + 2] = _mm_unpacklo_epi32(r[4 * h + 2], r[4 * h + 3]);
    t[4 * h + 3] = _mm_unpackhi_epi32(r[4 * h + 2], r[4 * h + 3]);
  }
  for (int h = 0; h < 4; ++h) {
    out[4 * h] = _mm_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
    out[4 * h + 1] = _mm_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
    out[4 * h + 2] = _mm_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
    out[4 * h + 3] = _mm_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
  }
}

// The im2col of a pointwise (1x1, stride 1, no padding) convolution is a
// transpose: rows[p * lda + c] = x[c * pixels + p] ^ flip for p in [p0, p1),
// c < channels. 16x16 byte blocks go through SSE2 registers; the edges are
// copied one byte at a time.
void transpose_to_rows(const uint8_t* x, int64_t pixels, int64_t channels, int64_t p0, int64_t p1, uint8_t flip,
                       uint8_t* rows, int64_t lda) {
  const __m128i f = _mm_set1_epi8(static_cast<char>(flip));
  int64_t p = p0;
  for (; p + 16 <= p1; p += 16) {
    int64_t c = 0;
    for (; c + 16 <= channels; c += 16) {
      __m128i r[16];
      for (int i = 0; i < 16; ++i) {
        r[i] = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + (c + i) * pixels + p)), f);
      }
      __m128i out[16];
      transpose_16x16(r, out);
      for (int i = 0; i < 16; ++i) _mm_storeu_si128(reinterpret_cast<__m128i*>(rows + (p + i) * lda + c), out[i]);
    }
    for (; c < channels; ++c) {
      for (int64_t q = p; q < p + 16; ++q) rows[q * lda + c] = static_cast<uint8_t>(x[c * pixels + q] ^ flip);
    }
  }
  for (; p < p1; ++p) {
    for (int64_t c = 0; c < channels; ++c) rows[p * lda + c] = static_cast<uint8_t>(x[c * pixels + p] ^ flip);
  }
}

// The input image with its padding written out: every channel plane is
// rows x cols bytes, the image at (pt, pl), `pad` around it and 32 more
// columns on the right, so that every tap of every output pixel, and the
// 16- or 32-byte loads that cover a block of pixels, lie inside the buffer.
// Values are already shifted to uint8 (x ^ flip).
struct PaddedImage {
  const uint8_t* data = nullptr;
  int64_t rows = 0, cols = 0;
};

PaddedImage pad_image(const Conv2dGeom& g, const uint8_t* x, uint8_t flip, uint8_t pad, std::vector<uint8_t>& buf) {
  PaddedImage p;
  p.rows = std::max<int64_t>(g.pt + g.h, (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1);
  p.cols = std::max<int64_t>(g.pl + g.w, (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1) + 32;
  buf.resize(static_cast<size_t>(g.c * p.rows * p.cols));
  std::memset(buf.data(), pad, buf.size());
  const __m128i f = _mm_set1_epi8(static_cast<char>(flip));
  for (int64_t c = 0; c < g.c; ++c) {
    for (int64_t y = 0; y < g.h; ++y) {
      const uint8_t* src = x + (c * g.h + y) * g.w;
      uint8_t* dst = buf.data() + (c * p.rows + g.pt + y) * p.cols + g.pl;
      int64_t i = 0;
      for (; i + 16 <= g.w; i += 16) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                         _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)), f));
      }
      for (; i < g.w; ++i) dst[i] = static_cast<uint8_t>(src[i] ^ flip);
    }
  }
  p.data = buf.data();
  return p;
}

// One tap of a convolution window, in the im2col row's [c][ky][kx] order:
// its offset in the padded image from the window's top-left corner.
std::vector<int64_t> window_taps(const Conv2dGeom& g, const PaddedImage& img) {
  std::vector<int64_t> taps;
  taps.reserve(static_cast<size_t>(g.c * g.kh * g.kw));
  for (int64_t c = 0; c < g.c; ++c) {
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      for (int64_t kx = 0; kx < g.kw; ++kx) taps.push_back((c * img.rows + ky * g.dh) * img.cols + kx * g.dw);
    }
  }
  return taps;
}

// The im2col rows of output rows [oy0, oy1): row p = oy * ow + ox holds the
// window of output pixel (oy, ox), tap t at rows[p * lda + t]. Works in
// blocks of 16 pixels of one output row by 16 taps: each tap's 16 source
// bytes are one load from the padded image (stride 2 loads 32 bytes and
// keeps the even ones; other strides gather), then a 16x16 transpose turns
// the taps' runs into the pixels' rows.
void window_rows(const Conv2dGeom& g, const PaddedImage& img, const std::vector<int64_t>& taps, int64_t oy0,
                 int64_t oy1, uint8_t* rows, int64_t lda) {
  const auto k = static_cast<int64_t>(taps.size());
  const __m128i even = _mm_set1_epi16(0x00ff);
  alignas(16) uint8_t gathered[16];
  for (int64_t oy = oy0; oy < oy1; ++oy) {
    for (int64_t ox0 = 0; ox0 < g.ow; ox0 += 16) {
      const int64_t n = std::min<int64_t>(16, g.ow - ox0);
      const uint8_t* corner = img.data + oy * g.sh * img.cols + ox0 * g.sw;
      uint8_t* dst = rows + (oy * g.ow + ox0) * lda;
      for (int64_t t0 = 0; t0 < k; t0 += 16) {
        const int64_t kn = std::min<int64_t>(16, k - t0);
        __m128i r[16];
        for (int64_t i = 0; i < 16; ++i) {
          const uint8_t* src = corner + taps[static_cast<size_t>(std::min(t0 + i, k - 1))];
          if (g.sw == 1) {
            r[i] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
          } else if (g.sw == 2) {
            const __m128i lo = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)), even);
            const __m128i hi = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16)), even);
            r[i] = _mm_packus_epi16(lo, hi);
          } else {
            for (int64_t j = 0; j < 16; ++j) gathered[j] = j < n ? src[j * g.sw] : 0;
            r[i] = _mm_load_si128(reinterpret_cast<const __m128i*>(gathered));
          }
        }
        __m128i out[16];
        transpose_16x16(r, out);
        if (t0 + 16 <= lda) {
          for (int64_t j = 0; j < n; ++j) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j * lda + t0), out[j]);
        } else {
          for (int64_t j = 0; j < n; ++j) {
            alignas(16) uint8_t tmp[16];
            _mm_store_si128(reinterpret_cast<__m128i*>(tmp), out[j]);
            std::memcpy(dst + j * lda + t0, tmp, static_cast<size_t>(kn));
          }
        }
      }
    }
  }
}

// Per-thread im2col scratch, reused across runs and layers: a fresh vector
// per image cost a page fault per 4 KiB (and zeroing) every run.
uint8_t* col_scratch(size_t bytes) {
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < bytes) buf.resize(bytes);
  return buf.data();
}

class QConvKernel final : public Kernel {
 public:
  QConvKernel(PackedInt8B b, Requant r, Dims w_dims) : b_(std::move(b)), r_(std::move(r)), w_dims_(std::move(w_dims)) {
    r_.bind();
  }

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    if (x.rank() != 4 || x.dtype() != (r_.x_signed ? DataType::kInt8 : DataType::kUInt8)) return run_reference(ctx);
    auto geom = conv2d_geometry(ctx.node(), x.dims(), w_dims_);
    if (!geom.is_ok() || geom->group != 1 || geom->depth() != b_.k) return run_reference(ctx);
    const Conv2dGeom& g = *geom;
    KILN_ASSIGN_OR_RETURN(
        Tensor * y, ctx.allocate_output(0, r_.rq.y_signed ? DataType::kInt8 : DataType::kUInt8, g.output_dims(4)));
    const int64_t pixels = g.oh * g.ow;
    const int64_t lda = b_.padded_k();
    const auto pad = static_cast<uint8_t>(r_.x_zero_point);
    const uint8_t flip = r_.x_signed ? 0x80 : 0;  // int8 -> uint8 (as_u8)
    const auto* xin = static_cast<const uint8_t*>(x.raw_data());
    auto* yout = static_cast<uint8_t*>(y->raw_data());
    // One image: im2col into this thread's scratch, then the GEMM; `pool`
    // (or nullptr) splits both.
    auto image = [&](int64_t img, ThreadPool* pool) {
      // Bytes past K in a row are never read as products (B is zero there).
      uint8_t* col = col_scratch(static_cast<size_t>(pixels * lda));
      thread_local std::vector<uint8_t> padded;
      const bool parallel = pool != nullptr && pool->threads() > 1 && pixels >= 64;
      const uint8_t* ximg = xin + img * g.c * g.h * g.w;
      if (g.pointwise()) {
        auto fill = [&](int64_t p0, int64_t p1) { transpose_to_rows(ximg, pixels, g.c, p0, p1, flip, col, lda); };
        if (parallel) {
          pool->parallel_for(pixels, 16, fill);
        } else {
          fill(0, pixels);
        }
      } else {
        const PaddedImage padded_image = pad_image(g, ximg, flip, pad, padded);
        const std::vector<int64_t> taps = window_taps(g, padded_image);
        auto fill = [&](int64_t r0, int64_t r1) { window_rows(g, padded_image, taps, r0, r1, col, lda); };
        if (parallel) {
          pool->parallel_for(g.oh, 1, fill);
        } else {
          fill(0, g.oh);
        }
      }
      qgemm_u8s8(b_, pixels, col, lda, r_.rq, yout + img * g.m * pixels, 1, pixels, pool);
    };
    // A batch of at least one image per thread: whole images per thread, one
    // fork and join per layer instead of two per image (each a wake-up of
    // the pool's workers).
    ThreadPool* pool = ctx.pool();
    if (pool != nullptr && pool->threads() > 1 && g.n >= pool->threads()) {
      pool->parallel_for(g.n, 1, [&](int64_t i0, int64_t i1) {
        for (int64_t img = i0; img < i1; ++img) image(img, nullptr);
      });
    } else {
      for (int64_t img = 0; img < g.n; ++img) image(img, pool);
    }
    return Status::ok();
  }

 private:
  PackedInt8B b_;
  Requant r_;
  Dims w_dims_;
};

class QConvTactic final : public Tactic {
 public:
  QConvTactic(Int8Variant v, bool kiln_op)
      : v_(v),
        kiln_op_(kiln_op),
        name_(fmt::format("own.{}.{}", kiln_op ? "qconv_im2col" : "qlinear_conv_im2col", int8_variant_name(v))) {}
  std::string_view name() const override { return name_; }
  std::string_view source() const override { return "own"; }

  bool supports(const ir::Node& node) const override {
    if (node.op_type() != (kiln_op_ ? "QConv" : "QLinearConv")) return false;
    if (!const_of(node, 3, DataType::kInt8)) return false;
    const Tensor& w = node.input(3)->constant();
    if (w.rank() != 4 || node.attr_int("group", 1) != 1) return false;
    return quant_params_supported(node, w.dim(0));
  }

  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by {}", node.describe(), name_);
    const Tensor& w = node.input(3)->constant();
    const int64_t m = w.dim(0), k = w.numel() / std::max<int64_t>(m, 1);
    PackedInt8B b = pack_int8_b(v_, w.data<int8_t>(), 1, k, k, m);
    return std::unique_ptr<Kernel>(new QConvKernel(std::move(b), make_requant(node, m), w.dims()));
  }

 private:
  Int8Variant v_;
  bool kiln_op_;
  std::string name_;
};

// ---- Gemm ------------------------------------------------------------------------

class QGemmKernel final : public Kernel {
 public:
  QGemmKernel(PackedInt8B b, Requant r) : b_(std::move(b)), r_(std::move(r)) { r_.bind(); }

  bool fills_outputs() const override { return true; }
  Status run(ops::KernelContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    if (a.rank() < 1 || a.dim(a.rank() - 1) != b_.k ||
        a.dtype() != (r_.x_signed ? DataType::kInt8 : DataType::kUInt8)) {
      return run_reference(ctx);
    }
    Dims ydims(a.dims().begin(), a.dims().end() - 1);
    ydims.push_back(b_.n);
    KILN_ASSIGN_OR_RETURN(Tensor * y,
                          ctx.allocate_output(0, r_.rq.y_signed ? DataType::kInt8 : DataType::kUInt8, ydims));
    const int64_t rows = b_.k > 0 ? a.numel() / b_.k : 0;
    const auto* ain = static_cast<const uint8_t*>(a.raw_data());
    const int64_t lda = b_.padded_k();
    std::vector<uint8_t> padded;
    if (lda != b_.k || r_.x_signed) {
      padded.assign(static_cast<size_t>(rows * lda), 0);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i = 0; i < b_.k; ++i) padded[r * lda + i] = as_u8(ain[r * b_.k + i], r_.x_signed);
      }
      ain = padded.data();
    }
    qgemm_u8s8(b_, rows, ain, lda, r_.rq, y->raw_data(), b_.n, 1, ctx.pool());
    return Status::ok();
  }

 private:
  PackedInt8B b_;
  Requant r_;
};

class QGemmTactic final : public Tactic {
 public:
  explicit QGemmTactic(Int8Variant v) : v_(v), name_(fmt::format("own.qgemm.{}", int8_variant_name(v))) {}
  std::string_view name() const override { return name_; }
  std::string_view source() const override { return "own"; }

  bool supports(const ir::Node& node) const override {
    if (node.op_type() != "QGemm" || !const_of(node, 3, DataType::kInt8)) return false;
    const Tensor& b = node.input(3)->constant();
    return b.rank() == 2 && quant_params_supported(node, b.dim(1));
  }

  Result<std::unique_ptr<Kernel>> prepare(const ir::Node& node) const override {
    if (!supports(node)) return invalid_argument("{}: not supported by {}", node.describe(), name_);
    const Tensor& b = node.input(3)->constant();
    const int64_t k = b.dim(0), n = b.dim(1);
    PackedInt8B packed = pack_int8_b(v_, b.data<int8_t>(), n, 1, k, n);
    return std::unique_ptr<Kernel>(new QGemmKernel(std::move(packed), make_requant(node, n)));
  }

 private:
  Int8Variant v_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Tactic> make_qconv_tactic(Int8Variant v, bool kiln_op) {
  return std::make_unique<QConvTactic>(v, kiln_op);
}

std::unique_ptr<Tactic> make_qgemm_tactic(Int8Variant v) { return std::make_unique<QGemmTactic>(v); }

}  // namespace kiln::backends::cpu
