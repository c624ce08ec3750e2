// The AVX-512 VNNI u8s8 microkernel (compiled with the AVX-512 flags plus
// -mavx512vnni; called only where cpu_features().avx512vnni): one vpdpbusd
// on zmm covers a whole 16-column panel for four k's.
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/gemm_int8.h"

namespace kiln::backends::cpu {

void int8_kernel_avx512vnni(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups,
                            int32_t* c) {
  // Rows past `rows` read row 0 again and are not stored.
  const uint8_t* ar[kInt8Mr];
  for (int64_t r = 0; r < kInt8Mr; ++r) ar[r] = a + (r < rows ? r : 0) * lda;
  __m512i acc[kInt8Mr];
  for (auto& row : acc) row = _mm512_setzero_si512();
  for (int64_t g = 0; g < k_groups; ++g) {
    const __m512i b = _mm512_loadu_si512(panel + g * 64);
    for (int64_t r = 0; r < kInt8Mr; ++r) {
      int32_t quad;
      std::memcpy(&quad, ar[r] + g * 4, sizeof(quad));
      acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_set1_epi32(quad), b);
    }
  }
  for (int64_t r = 0; r < rows; ++r) _mm512_storeu_si512(c + r * kInt8Nr, acc[r]);
}

}  // namespace kiln::backends::cpu
