// The AVX-512 VNNI u8s8 microkernel (compiled with the AVX-512 flags plus
// -mavx512vnni; called only where cpu_features().avx512vnni): one vpdpbusd
// on zmm covers a whole 16-column panel for four k's.
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/gemm_int8.h"

namespace kiln::backends::cpu {

void int8_kernel_avx512vnni(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups,
                            int32_t* c) {
  static_assert(kInt8Mr == 4, "one named accumulator per row");
  // Rows past `rows` read row 0 again and are not stored. The accumulators are
  // named, not an array: GCC kept an array of them on the stack, and every
  // vpdpbusd waited for a load and a store of its accumulator (10% of VNNI's peak).
  const uint8_t* a0 = a;
  const uint8_t* a1 = a + (rows > 1 ? lda : 0);
  const uint8_t* a2 = a + (rows > 2 ? 2 * lda : 0);
  const uint8_t* a3 = a + (rows > 3 ? 3 * lda : 0);
  auto quad = [](const uint8_t* p) {
    int32_t q;
    std::memcpy(&q, p, sizeof(q));
    return _mm512_set1_epi32(q);
  };
  __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
  for (int64_t g = 0; g < k_groups; ++g) {
    const __m512i b = _mm512_loadu_si512(panel + g * 64);
    c0 = _mm512_dpbusd_epi32(c0, quad(a0 + g * 4), b);
    c1 = _mm512_dpbusd_epi32(c1, quad(a1 + g * 4), b);
    c2 = _mm512_dpbusd_epi32(c2, quad(a2 + g * 4), b);
    c3 = _mm512_dpbusd_epi32(c3, quad(a3 + g * 4), b);
  }
  _mm512_storeu_si512(c, c0);
  if (rows > 1) _mm512_storeu_si512(c + kInt8Nr, c1);
  if (rows > 2) _mm512_storeu_si512(c + 2 * kInt8Nr, c2);
  if (rows > 3) _mm512_storeu_si512(c + 3 * kInt8Nr, c3);
}

void int8_kernel_avx512vnni_x2(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel0,
                               const uint8_t* panel1, int64_t k_groups, int32_t* c0, int32_t* c1) {
  static_assert(kInt8Mr == 4, "two named accumulators per row");
  const uint8_t* a0 = a;
  const uint8_t* a1 = a + (rows > 1 ? lda : 0);
  const uint8_t* a2 = a + (rows > 2 ? 2 * lda : 0);
  const uint8_t* a3 = a + (rows > 3 ? 3 * lda : 0);
  auto quad = [](const uint8_t* p) {
    int32_t q;
    std::memcpy(&q, p, sizeof(q));
    return _mm512_set1_epi32(q);
  };
  __m512i x00 = _mm512_setzero_si512(), x01 = x00, x10 = x00, x11 = x00, x20 = x00, x21 = x00, x30 = x00, x31 = x00;
  for (int64_t g = 0; g < k_groups; ++g) {
    const __m512i b0 = _mm512_loadu_si512(panel0 + g * 64);
    const __m512i b1 = _mm512_loadu_si512(panel1 + g * 64);
    __m512i q = quad(a0 + g * 4);
    x00 = _mm512_dpbusd_epi32(x00, q, b0);
    x01 = _mm512_dpbusd_epi32(x01, q, b1);
    q = quad(a1 + g * 4);
    x10 = _mm512_dpbusd_epi32(x10, q, b0);
    x11 = _mm512_dpbusd_epi32(x11, q, b1);
    q = quad(a2 + g * 4);
    x20 = _mm512_dpbusd_epi32(x20, q, b0);
    x21 = _mm512_dpbusd_epi32(x21, q, b1);
    q = quad(a3 + g * 4);
    x30 = _mm512_dpbusd_epi32(x30, q, b0);
    x31 = _mm512_dpbusd_epi32(x31, q, b1);
  }
  _mm512_storeu_si512(c0, x00);
  _mm512_storeu_si512(c1, x01);
  if (rows > 1) _mm512_storeu_si512(c0 + kInt8Nr, x10), _mm512_storeu_si512(c1 + kInt8Nr, x11);
  if (rows > 2) _mm512_storeu_si512(c0 + 2 * kInt8Nr, x20), _mm512_storeu_si512(c1 + 2 * kInt8Nr, x21);
  if (rows > 3) _mm512_storeu_si512(c0 + 3 * kInt8Nr, x30), _mm512_storeu_si512(c1 + 3 * kInt8Nr, x31);
}

}  // namespace kiln::backends::cpu
