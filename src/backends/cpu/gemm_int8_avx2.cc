// The AVX2 u8s8 microkernel (compiled with -mavx2 -mfma; called only after
// the run-time check of supported_int8_variants()). Both operands are
// widened to int16 and multiplied with vpmaddwd, which sums pairs of
// products into int32 exactly (see gemm_int8.h for why not vpmaddubsw).
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/gemm_int8.h"

namespace kiln::backends::cpu {

void int8_kernel_avx2(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups,
                      int32_t* c) {
  // Rows past `rows` read row 0 again and are not stored.
  const uint8_t* ar[kInt8Mr];
  for (int64_t r = 0; r < kInt8Mr; ++r) ar[r] = a + (r < rows ? r : 0) * lda;
  __m256i acc[kInt8Mr][2];
  for (auto& row : acc) row[0] = row[1] = _mm256_setzero_si256();
  for (int64_t g = 0; g < k_groups; ++g) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + g * 64));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + g * 64 + 32));
    for (int64_t r = 0; r < kInt8Mr; ++r) {
      const uint8_t* p = ar[r] + g * 2;
      const __m256i av = _mm256_set1_epi32(static_cast<int32_t>(p[0]) | (static_cast<int32_t>(p[1]) << 16));
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, b0));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, b1));
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * kInt8Nr), acc[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * kInt8Nr + 8), acc[r][1]);
  }
}

}  // namespace kiln::backends::cpu
