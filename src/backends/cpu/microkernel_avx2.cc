// The AVX2 + FMA SGEMM microkernel: a 6 x 16 tile of C in 12 ymm
// accumulators (two B vectors and one A broadcast per row per k), and the
// AVX2 FMA peak loop. Compiled with -mavx2 -mfma (src/CMakeLists.txt); called
// only when detect_isa() >= kAvx2.
#include <immintrin.h>

#include "backends/cpu/microkernel.h"

namespace kiln::backends::cpu {
namespace {

constexpr int kMr = 6;
constexpr int kNr = 16;
constexpr int kVecs = kNr / 8;

__m256 activate(__m256 v, const TileArgs& t) {
  const __m256 zero = _mm256_setzero_ps();
  switch (t.act) {
    case TileActivation::kNone:
      return v;
    case TileActivation::kRelu:
      return _mm256_max_ps(v, zero);
    case TileActivation::kClip:
      return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(t.p0)), _mm256_set1_ps(t.p1));
    case TileActivation::kLeakyRelu: {
      const __m256 neg = _mm256_mul_ps(v, _mm256_set1_ps(t.p0));
      return _mm256_blendv_ps(neg, v, _mm256_cmp_ps(v, zero, _CMP_GE_OQ));
    }
    case TileActivation::kHardSigmoid: {
      const __m256 y = _mm256_add_ps(_mm256_mul_ps(v, _mm256_set1_ps(t.p0)), _mm256_set1_ps(t.p1));
      return _mm256_max_ps(zero, _mm256_min_ps(_mm256_set1_ps(1.0f), y));
    }
    case TileActivation::kHardSwish: {
      const __m256 y = _mm256_add_ps(_mm256_div_ps(v, _mm256_set1_ps(6.0f)), _mm256_set1_ps(0.5f));
      return _mm256_mul_ps(v, _mm256_max_ps(zero, _mm256_min_ps(_mm256_set1_ps(1.0f), y)));
    }
  }
  return v;
}

void kernel_6x16(const TileArgs& t) {
  __m256 acc[kMr][kVecs];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) acc[i][v] = _mm256_setzero_ps();
  }
  const float* a = t.a;
  const float* b = t.b;
  const int64_t kc = t.kc;
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += kMr;
    b += kNr;
  }
  const __m256 scale = _mm256_set1_ps(t.scale);
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < kVecs; ++v) {
      float* c = t.c + i * t.ldc + v * 8;
      __m256 y = acc[i][v];
      if (t.load_c) y = _mm256_add_ps(y, _mm256_loadu_ps(c));
      if (t.epilogue) {
        if (t.scale != 1.0f) y = _mm256_mul_ps(y, scale);
        if (t.bias_row != nullptr) y = _mm256_add_ps(y, _mm256_set1_ps(t.bias_row[i]));
        if (t.bias_col != nullptr) y = _mm256_add_ps(y, _mm256_loadu_ps(t.bias_col + v * 8));
        if (t.residual != nullptr) y = _mm256_add_ps(y, _mm256_loadu_ps(t.residual + i * t.ldr + v * 8));
        y = activate(y, t);
        if (t.residual2 != nullptr) y = _mm256_add_ps(y, _mm256_loadu_ps(t.residual2 + i * t.ldr2 + v * 8));
      }
      _mm256_storeu_ps(c, y);
    }
  }
}

}  // namespace

MicroKernel microkernel_avx2() { return {kMr, kNr, kernel_6x16}; }

void depthwise_row_avx2(float* y, const float* const* rows, const float* w, int64_t kh, int64_t kw, int64_t dw,
                        int64_t lo, int64_t hi) {
  int64_t ox = lo;
  for (; ox + 16 <= hi; ox += 16) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (int64_t ky = 0; ky < kh; ++ky) {
      const float* r = rows[ky];
      if (r == nullptr) continue;
      for (int64_t kx = 0; kx < kw; ++kx) {
        const __m256 wv = _mm256_set1_ps(w[ky * kw + kx]);
        const float* p = r + ox + kx * dw;
        s0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p), s0);
        s1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p + 8), s1);
      }
    }
    _mm256_storeu_ps(y + ox, s0);
    _mm256_storeu_ps(y + ox + 8, s1);
  }
  for (; ox + 8 <= hi; ox += 8) {
    __m256 s0 = _mm256_setzero_ps();
    for (int64_t ky = 0; ky < kh; ++ky) {
      const float* r = rows[ky];
      if (r == nullptr) continue;
      for (int64_t kx = 0; kx < kw; ++kx) {
        s0 = _mm256_fmadd_ps(_mm256_set1_ps(w[ky * kw + kx]), _mm256_loadu_ps(r + ox + kx * dw), s0);
      }
    }
    _mm256_storeu_ps(y + ox, s0);
  }
  for (; ox < hi; ++ox) {
    float s = 0.0f;
    for (int64_t ky = 0; ky < kh; ++ky) {
      if (rows[ky] == nullptr) continue;
      for (int64_t kx = 0; kx < kw; ++kx) s += w[ky * kw + kx] * rows[ky][ox + kx * dw];
    }
    y[ox] = s;
  }
}

double fma_peak_loop_avx2(int64_t iters) {
  constexpr int kChains = 12;  // > FMA latency x FMA ports
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i) * 1e-3f);
  const __m256 x = _mm256_set1_ps(0.999999f);
  const __m256 y = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm256_add_ps(sum, acc[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, sum);
  volatile float sink = out[0];
  (void)sink;
  return static_cast<double>(iters) * kChains * 8 * 2;
}

}  // namespace kiln::backends::cpu
