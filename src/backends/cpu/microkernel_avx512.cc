// The AVX-512 SGEMM microkernel: a 14 x 32 tile of C in 28 zmm accumulators
// (two B vectors and one A broadcast per row per k), and the AVX-512 FMA
// peak loop. Compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma
// (src/CMakeLists.txt); called only when detect_isa() == kAvx512.
#include <immintrin.h>

#include "backends/cpu/microkernel.h"

namespace kiln::backends::cpu {
namespace {

constexpr int kMr = 14;
constexpr int kNr = 32;
constexpr int kVecs = kNr / 16;

__m512 activate(__m512 v, const TileArgs& t) {
  const __m512 zero = _mm512_setzero_ps();
  switch (t.act) {
    case TileActivation::kNone:
      return v;
    case TileActivation::kRelu:
      return _mm512_max_ps(v, zero);
    case TileActivation::kClip:
      return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(t.p0)), _mm512_set1_ps(t.p1));
    case TileActivation::kLeakyRelu: {
      const __mmask16 neg = _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ);
      return _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(t.p0));
    }
    case TileActivation::kHardSigmoid: {
      const __m512 y = _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(t.p0)), _mm512_set1_ps(t.p1));
      return _mm512_max_ps(zero, _mm512_min_ps(_mm512_set1_ps(1.0f), y));
    }
    case TileActivation::kHardSwish: {
      const __m512 y = _mm512_add_ps(_mm512_div_ps(v, _mm512_set1_ps(6.0f)), _mm512_set1_ps(0.5f));
      return _mm512_mul_ps(v, _mm512_max_ps(zero, _mm512_min_ps(_mm512_set1_ps(1.0f), y)));
    }
  }
  return v;
}

void kernel_14x32(const TileArgs& t) {
  __m512 acc[kMr][kVecs];
#pragma GCC unroll 14
  for (int i = 0; i < kMr; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  const float* a = t.a;
  const float* b = t.b;
  const int64_t kc = t.kc;
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < kMr; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += kMr;
    b += kNr;
  }
  const __m512 scale = _mm512_set1_ps(t.scale);
#pragma GCC unroll 14
  for (int i = 0; i < kMr; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) {
      float* c = t.c + i * t.ldc + v * 16;
      __m512 y = acc[i][v];
      if (t.load_c) y = _mm512_add_ps(y, _mm512_loadu_ps(c));
      if (t.epilogue) {
        if (t.scale != 1.0f) y = _mm512_mul_ps(y, scale);
        if (t.bias_row != nullptr) y = _mm512_add_ps(y, _mm512_set1_ps(t.bias_row[i]));
        if (t.bias_col != nullptr) y = _mm512_add_ps(y, _mm512_loadu_ps(t.bias_col + v * 16));
        if (t.residual != nullptr) y = _mm512_add_ps(y, _mm512_loadu_ps(t.residual + i * t.ldr + v * 16));
        y = activate(y, t);
        if (t.residual2 != nullptr) y = _mm512_add_ps(y, _mm512_loadu_ps(t.residual2 + i * t.ldr2 + v * 16));
      }
      _mm512_storeu_ps(c, y);
    }
  }
}

}  // namespace

MicroKernel microkernel_avx512() { return {kMr, kNr, kernel_14x32}; }

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
