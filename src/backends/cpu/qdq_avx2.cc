// AVX2 Quantize/DequantizeLinear spans (compiled with -mavx2 -mfma; see qdq_avx2.h).
#include "backends/cpu/qdq_avx2.h"

#include <immintrin.h>

namespace kiln::backends::cpu {

int64_t quantize_span_avx2(const float* in, uint8_t* out, int64_t n, float scale, float zp, float lo, float hi,
                           float clo, float chi, bool is_signed) {
  const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zp);
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  const __m256 vclo = _mm256_set1_ps(clo), vchi = _mm256_set1_ps(chi);
  // packs/packus work within 128-bit lanes: this puts the four vectors' bytes back in order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  auto one = [&](const float* p) {
    const __m256 x = _mm256_div_ps(_mm256_loadu_ps(p), s);  // a division, as the scalar loop (not * 1/scale)
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 r = _mm256_min_ps(_mm256_max_ps(x, vclo), vchi);
    r = _mm256_round_ps(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);  // half to even, as the 1.5*2^23 trick
    const __m256 v = _mm256_blendv_ps(_mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, z), vlo), vhi), z, nan);
    return _mm256_cvttps_epi32(v);
  };
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i a = _mm256_packs_epi32(one(in + i), one(in + i + 8));
    const __m256i b = _mm256_packs_epi32(one(in + i + 16), one(in + i + 24));
    const __m256i bytes = is_signed ? _mm256_packs_epi16(a, b) : _mm256_packus_epi16(a, b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permutevar8x32_epi32(bytes, order));
  }
  return i;
}

int64_t dequantize_span_avx2(const uint8_t* in, float* out, int64_t n, int32_t zp, float scale, bool is_signed) {
  const __m256i z = _mm256_set1_epi32(zp);
  const __m256 s = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int64_t k = 0; k < 32; k += 8) {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + i + k));
      const __m256i q = is_signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
      _mm256_storeu_ps(out + i + k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, z)), s));
    }
  }
  return i;
}

}  // namespace kiln::backends::cpu
