// The AVX-512 SGEMM microkernel: a 14 x 32 tile of C in 28 zmm accumulators
// (two B vectors and one A broadcast per row per k; microkernel_avx512_tile.h),
// the depthwise row kernel and the AVX-512 FMA
// peak loop. Compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma
// (src/CMakeLists.txt); called only when detect_isa() == kAvx512.
#include <immintrin.h>

#include "backends/cpu/microkernel.h"
#include "backends/cpu/microkernel_avx512_tile.h"

namespace kiln::backends::cpu {
namespace {

struct Fp32Tag {};

void kernel_14x32(const TileArgs& t) {
  avx512_tile::tile_14x32<Fp32Tag>(t, [](const float* a, __m512 b0, __m512 b1, __m512& acc0, __m512& acc1) {
    const __m512 ai = _mm512_set1_ps(*a);
    acc0 = _mm512_fmadd_ps(ai, b0, acc0);
    acc1 = _mm512_fmadd_ps(ai, b1, acc1);
  });
}

}  // namespace

MicroKernel microkernel_avx512() { return {avx512_tile::kMr, avx512_tile::kNr, kernel_14x32}; }

void depthwise_row_avx512(float* y, const float* const* rows, const float* w, int64_t kh, int64_t kw, int64_t dw,
                          int64_t lo, int64_t hi) {
  for (int64_t ox = lo; ox < hi; ox += 16) {
    const int64_t n = hi - ox < 16 ? hi - ox : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1);
    __m512 s = _mm512_setzero_ps();
    for (int64_t ky = 0; ky < kh; ++ky) {
      const float* r = rows[ky];
      if (r == nullptr) continue;
      for (int64_t kx = 0; kx < kw; ++kx) {
        s = _mm512_fmadd_ps(_mm512_set1_ps(w[ky * kw + kx]), _mm512_maskz_loadu_ps(m, r + ox + kx * dw), s);
      }
    }
    _mm512_mask_storeu_ps(y + ox, m, s);
  }
}

double fma_peak_loop_avx512(int64_t iters) {
  constexpr int kChains = 16;  // > FMA latency x FMA ports
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i) * 1e-3f);
  const __m512 x = _mm512_set1_ps(0.999999f);
  const __m512 y = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm512_add_ps(sum, acc[i]);
  alignas(64) float out[16];
  _mm512_store_ps(out, sum);
  volatile float sink = out[0];
  (void)sink;
  return static_cast<double>(iters) * kChains * 16 * 2;
}

}  // namespace kiln::backends::cpu
