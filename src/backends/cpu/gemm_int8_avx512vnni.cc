// The AVX-512 VNNI u8s8 microkernel (compiled with the AVX-512 flags plus
// -mavx512vnni; called only where cpu_features().avx512vnni): one vpdpbusd
// on zmm covers a whole 16-column panel for four k's.
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/gemm_int8.h"

namespace kiln::backends::cpu {

namespace {

static_assert(kInt8Mr == 4, "four named accumulators per panel");

// A tile's four A rows; rows past `rows` read row 0 again (their sums are not
// stored). quad(r, g) is row r's four bytes of k-group g in every lane.
struct TileRows {
  TileRows(const uint8_t* a, int64_t lda, int64_t rows)
      : p{a, a + (rows > 1 ? lda : 0), a + (rows > 2 ? 2 * lda : 0), a + (rows > 3 ? 3 * lda : 0)} {}
  __m512i quad(int r, int64_t g) const {
    int32_t q;
    std::memcpy(&q, p[r] + g * 4, sizeof(q));
    return _mm512_set1_epi32(q);
  }
  const uint8_t* p[kInt8Mr];
};

void store_tile(int32_t* c, int64_t rows, __m512i r0, __m512i r1, __m512i r2, __m512i r3) {
  _mm512_storeu_si512(c, r0);
  if (rows > 1) _mm512_storeu_si512(c + kInt8Nr, r1);
  if (rows > 2) _mm512_storeu_si512(c + 2 * kInt8Nr, r2);
  if (rows > 3) _mm512_storeu_si512(c + 3 * kInt8Nr, r3);
}

}  // namespace

// The accumulators are named, not an array: GCC kept an array of them on the
// stack, and every vpdpbusd waited for a load and a store of its accumulator
// (10% of VNNI's peak).
void int8_kernel_avx512vnni(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups,
                            int32_t* c) {
  const TileRows t(a, lda, rows);
  __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
  for (int64_t g = 0; g < k_groups; ++g) {
    const __m512i b = _mm512_loadu_si512(panel + g * 64);
    c0 = _mm512_dpbusd_epi32(c0, t.quad(0, g), b);
    c1 = _mm512_dpbusd_epi32(c1, t.quad(1, g), b);
    c2 = _mm512_dpbusd_epi32(c2, t.quad(2, g), b);
    c3 = _mm512_dpbusd_epi32(c3, t.quad(3, g), b);
  }
  store_tile(c, rows, c0, c1, c2, c3);
}

void int8_kernel_avx512vnni_x2(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel0,
                               const uint8_t* panel1, int64_t k_groups, int32_t* c0, int32_t* c1) {
  const TileRows t(a, lda, rows);
  __m512i x00 = _mm512_setzero_si512(), x01 = x00, x10 = x00, x11 = x00, x20 = x00, x21 = x00, x30 = x00, x31 = x00;
  for (int64_t g = 0; g < k_groups; ++g) {
    const __m512i b0 = _mm512_loadu_si512(panel0 + g * 64);
    const __m512i b1 = _mm512_loadu_si512(panel1 + g * 64);
    __m512i q = t.quad(0, g);
    x00 = _mm512_dpbusd_epi32(x00, q, b0);
    x01 = _mm512_dpbusd_epi32(x01, q, b1);
    q = t.quad(1, g);
    x10 = _mm512_dpbusd_epi32(x10, q, b0);
    x11 = _mm512_dpbusd_epi32(x11, q, b1);
    q = t.quad(2, g);
    x20 = _mm512_dpbusd_epi32(x20, q, b0);
    x21 = _mm512_dpbusd_epi32(x21, q, b1);
    q = t.quad(3, g);
    x30 = _mm512_dpbusd_epi32(x30, q, b0);
    x31 = _mm512_dpbusd_epi32(x31, q, b1);
  }
  store_tile(c0, rows, x00, x10, x20, x30);
  store_tile(c1, rows, x01, x11, x21, x31);
}

// requant_tile_avx2's steps on eight doubles per register; an NCHW tile of
// four rows (pixels) is turned into one 32-bit word per column with byte
// unpacks instead of a scalar loop.
void requant_tile_avx512(const int32_t* tile, int64_t rows, int64_t cols, const double* offset,
                         const double* multiplier, const Int8Requant& rq, uint8_t* y, int64_t y_stride_m,
                         int64_t y_stride_n) {
  // Rounding is monotone and the bounds lo - zp, hi - zp are integers, so
  // clamping to them before rounding and adding the zero point after (in
  // int32) gives clamp(round(v) + zp, lo, hi), the scalar epilogue's value.
  const __m512d lo = _mm512_set1_pd(static_cast<double>(rq.y_min - rq.y_zero_point));
  const __m512d hi = _mm512_set1_pd(static_cast<double>(rq.y_max - rq.y_zero_point));
  const __m256i zp = _mm256_set1_epi32(rq.y_zero_point);
  const __m512d off0 = _mm512_loadu_pd(offset), off1 = _mm512_loadu_pd(offset + 8);
  const __m512d mul0 = _mm512_loadu_pd(multiplier), mul1 = _mm512_loadu_pd(multiplier + 8);
  auto half = [&](const int32_t* src, __m512d off, __m512d mul) {
    __m512d x = _mm512_cvtepi32_pd(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src)));
    x = _mm512_mul_pd(_mm512_add_pd(x, off), mul);
    x = _mm512_min_pd(_mm512_max_pd(x, lo), hi);
    x = _mm512_roundscale_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_add_epi32(_mm512_cvtpd_epi32(x), zp);
  };
  // Row r's 16 results as bytes (int8 and uint8 outputs alike keep the low byte).
  __m128i q[kInt8Mr];
  for (int64_t r = 0; r < kInt8Mr; ++r) {
    if (r >= rows) {
      q[r] = _mm_setzero_si128();
      continue;
    }
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(half(tile + r * kInt8Nr, off0, mul0)),
                                         half(tile + r * kInt8Nr + 8, off1, mul1), 1);
    q[r] = _mm512_cvtepi32_epi8(v);
  }
  if (y_stride_m == 1 && rows == kInt8Mr) {
    // NCHW convolution output: a column's four rows are four adjacent bytes.
    const __m128i t0 = _mm_unpacklo_epi8(q[0], q[1]), t1 = _mm_unpackhi_epi8(q[0], q[1]);
    const __m128i t2 = _mm_unpacklo_epi8(q[2], q[3]), t3 = _mm_unpackhi_epi8(q[2], q[3]);
    alignas(16) uint32_t words[kInt8Nr];
    _mm_store_si128(reinterpret_cast<__m128i*>(words), _mm_unpacklo_epi16(t0, t2));
    _mm_store_si128(reinterpret_cast<__m128i*>(words + 4), _mm_unpackhi_epi16(t0, t2));
    _mm_store_si128(reinterpret_cast<__m128i*>(words + 8), _mm_unpacklo_epi16(t1, t3));
    _mm_store_si128(reinterpret_cast<__m128i*>(words + 12), _mm_unpackhi_epi16(t1, t3));
    for (int64_t j = 0; j < cols; ++j) std::memcpy(y + j * y_stride_n, &words[j], sizeof(uint32_t));
    return;
  }
  alignas(16) uint8_t bytes[kInt8Mr][kInt8Nr];
  for (int64_t r = 0; r < rows; ++r) _mm_store_si128(reinterpret_cast<__m128i*>(bytes[r]), q[r]);
  for (int64_t r = 0; r < rows; ++r) {
    if (y_stride_n == 1) {
      std::memcpy(y + r * y_stride_m, bytes[r], static_cast<size_t>(cols));
      continue;
    }
    for (int64_t j = 0; j < cols; ++j) y[r * y_stride_m + j * y_stride_n] = bytes[r][j];
  }
}

}  // namespace kiln::backends::cpu
