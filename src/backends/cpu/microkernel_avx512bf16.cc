// The AVX-512 BF16 GEMM microkernel and A packer. The tile is the fp32
// kernel's 14 x 32 (microkernel_avx512_tile.h) with one vdpbf16ps per B
// vector in place of the FMA: each packed depth slot holds a pair of
// bfloat16 values along K, so one instruction adds two products per lane
// into the fp32 accumulator (products of bfloat16 values are exact in fp32).
// Compiled with the AVX-512 flags plus -mavx512bf16 (src/CMakeLists.txt);
// called only when cpu_features().avx512bf16 and detect_isa() == kAvx512.
#include <immintrin.h>

#include <cstdint>

#include "backends/cpu/microkernel.h"
#include "backends/cpu/microkernel_avx512_tile.h"

namespace kiln::backends::cpu {
namespace {

struct Bf16Tag {};

void kernel_14x32_bf16(const TileArgs& t) {
  avx512_tile::tile_14x32<Bf16Tag>(t, [](const float* a, __m512 b0, __m512 b1, __m512& acc0, __m512& acc1) {
    const __m512bh ai = (__m512bh)_mm512_set1_epi32(*reinterpret_cast<const int32_t*>(a));
    acc0 = _mm512_dpbf16_ps(acc0, ai, (__m512bh)b0);
    acc1 = _mm512_dpbf16_ps(acc1, ai, (__m512bh)b1);
  });
}

}  // namespace

MicroKernel microkernel_avx512bf16() { return {avx512_tile::kMr, avx512_tile::kNr, kernel_14x32_bf16}; }

void pack_rows_bf16_avx512(const float* src, int64_t row_stride, int64_t rows, int64_t k0, int64_t k_end, int64_t slots,
                           int width, float* dst) {
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
  alignas(64) uint32_t pairs[16];
  for (int64_t r = 0; r < width; ++r) {
    if (r >= rows) {
      for (int64_t s = 0; s < slots; ++s) d[s * width + r] = 0;
      continue;
    }
    const float* row = src + r * row_stride;
    for (int64_t s = 0; s < slots; s += 16) {
      const int64_t k = k0 + 2 * s;  // first K index of this chunk of 16 slots
      const int64_t left = k_end - k;
      const __mmask16 m0 = left >= 16 ? 0xffff : left <= 0 ? 0 : static_cast<__mmask16>((1u << left) - 1);
      const int64_t left1 = left - 16;
      const __mmask16 m1 = left1 >= 16 ? 0xffff : left1 <= 0 ? 0 : static_cast<__mmask16>((1u << left1) - 1);
      const __m512 lo = _mm512_maskz_loadu_ps(m0, row + k);
      const __m512 hi = _mm512_maskz_loadu_ps(m1, row + k + 16);
      _mm512_store_si512(pairs, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
      const int64_t n = slots - s < 16 ? slots - s : 16;
      for (int64_t j = 0; j < n; ++j) d[(s + j) * width + r] = pairs[j];
    }
  }
}

void pair_rows_bf16_avx512(const float* even, const float* odd, int64_t n, float* dst) {
  auto* d = reinterpret_cast<uint32_t*>(dst);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(even + j));
    const __m256i hi = odd != nullptr ? (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(odd + j)) : _mm256_setzero_si256();
    // Interleave the 16-bit halves: pair j = even[j] | odd[j] << 16.
    const __m512i e = _mm512_cvtepu16_epi32(lo);
    const __m512i o = _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16);
    _mm512_storeu_si512(d + j, _mm512_or_si512(e, o));
  }
  if (j < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - j)) - 1);
    const __m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, even + j));
    const __m256i hi =
        odd != nullptr ? (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, odd + j)) : _mm256_setzero_si256();
    const __m512i v = _mm512_or_si512(_mm512_cvtepu16_epi32(lo), _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
    _mm512_mask_storeu_epi32(d + j, m, v);
  }
}

}  // namespace kiln::backends::cpu
