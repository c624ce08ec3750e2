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

void axpy_avx2(float* y, const float* x, float a, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
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
