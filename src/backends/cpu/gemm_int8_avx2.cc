// The AVX2 u8s8 microkernel (compiled with -mavx2 -mfma; called only after
// the run-time check of supported_int8_variants()). Both operands are
// widened to int16 and multiplied with vpmaddwd, which sums pairs of
// products into int32 exactly (see gemm_int8.h for why not vpmaddubsw).
#include <cstring>

#include "backends/cpu/gemm_int8_ymm.h"

namespace kiln::backends::cpu {

void int8_kernel_avx2(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups, int32_t* c) {
  int8_kernel_ymm<2>(a, lda, rows, panel, k_groups, c,
                     [](const uint8_t* p, __m256i b0, __m256i b1, __m256i& acc0, __m256i& acc1) {
                       // The pair broadcast as bytes, then widened: every int32 lane is
                       // p[0] | p[1] << 16 (fewer uops than building it in a scalar register).
                       int16_t pair;
                       std::memcpy(&pair, p, sizeof(pair));
                       const __m256i av = _mm256_cvtepu8_epi16(_mm_set1_epi16(pair));
                       acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(av, b0));
                       acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(av, b1));
                     });
}

void requant_tile_avx2(const int32_t* tile, int64_t rows, int64_t cols, const double* offset, const double* multiplier,
                       const Int8Requant& rq, uint8_t* y, int64_t y_stride_m, int64_t y_stride_n) {
  // The scalar epilogue's steps: clamp to [lo - zp - 1, hi - zp + 1] (rounding is monotone),
  // round half to even, add the zero point, clamp to [lo, hi].
  const __m256d pre_lo = _mm256_set1_pd(static_cast<double>(rq.y_min - rq.y_zero_point - 1));
  const __m256d pre_hi = _mm256_set1_pd(static_cast<double>(rq.y_max - rq.y_zero_point + 1));
  const __m256d zp = _mm256_set1_pd(static_cast<double>(rq.y_zero_point));
  const __m256d lo = _mm256_set1_pd(static_cast<double>(rq.y_min));
  const __m256d hi = _mm256_set1_pd(static_cast<double>(rq.y_max));
  alignas(32) int32_t q[kInt8Mr][kInt8Nr];
  for (int64_t r = 0; r < rows; ++r) {
#pragma GCC unroll 4
    for (int64_t v = 0; v < kInt8Nr / 4; ++v) {
      __m256d x = _mm256_cvtepi32_pd(_mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + r * kInt8Nr + v * 4)));
      x = _mm256_mul_pd(_mm256_add_pd(x, _mm256_loadu_pd(offset + v * 4)), _mm256_loadu_pd(multiplier + v * 4));
      x = _mm256_min_pd(_mm256_max_pd(x, pre_lo), pre_hi);
      x = _mm256_round_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      x = _mm256_min_pd(_mm256_max_pd(_mm256_add_pd(x, zp), lo), hi);
      _mm_store_si128(reinterpret_cast<__m128i*>(&q[r][v * 4]), _mm256_cvtpd_epi32(x));
    }
  }
  // int8 and uint8 outputs alike keep the low byte.
  if (y_stride_m == 1 && rows == kInt8Mr) {
    // NCHW convolution output: a column's four rows are four adjacent bytes.
    for (int64_t j = 0; j < cols; ++j) {
      const uint32_t word = (static_cast<uint32_t>(q[0][j]) & 0xffu) | (static_cast<uint32_t>(q[1][j]) & 0xffu) << 8 |
                            (static_cast<uint32_t>(q[2][j]) & 0xffu) << 16 | static_cast<uint32_t>(q[3][j]) << 24;
      std::memcpy(y + j * y_stride_n, &word, sizeof(word));
    }
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; ++j) y[r * y_stride_m + j * y_stride_n] = static_cast<uint8_t>(q[r][j]);
  }
}

}  // namespace kiln::backends::cpu
