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
  auto step = [&]() {
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
  };
  if (t.prefetch_b != nullptr) {
    // One 64-byte line of the next panel per k: the whole panel by the end.
    const char* pf = reinterpret_cast<const char*>(t.prefetch_b);
    for (int64_t k = 0; k < kc; ++k) {
      _mm_prefetch(pf + k * kNr * sizeof(float), _MM_HINT_T0);
      step();
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) step();
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

// e^x for x in float range (Cephes expf: range reduction by ln 2, degree-6
// polynomial, scaling by 2^n through the exponent bits); clamped to +-88.
__m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-88.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__m256 sigmoid_ps(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// tanh(x) = sign(x) (1 - e) / (1 + e) with e = exp(-2|x|); no cancellation for large |x|.
__m256 tanh_ps(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 e = exp_ps(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0f)));
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
  return _mm256_or_ps(t, sign);
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
__m256 erf_ps(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(ax, _mm256_set1_ps(0.3275911f), one));
  __m256 p = _mm256_set1_ps(1.061405429f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  p = _mm256_mul_ps(p, t);
  const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(ax, ax)));
  const __m256 y = _mm256_fnmadd_ps(p, e, one);
  return _mm256_or_ps(y, sign);
}

__m256 transcendental(__m256 v, TileTranscendental act) {
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 one = _mm256_set1_ps(1.0f);
  switch (act) {
    case TileTranscendental::kSigmoid:
      return sigmoid_ps(v);
    case TileTranscendental::kTanh:
      return tanh_ps(v);
    case TileTranscendental::kSilu:
      return _mm256_mul_ps(v, sigmoid_ps(v));
    case TileTranscendental::kGelu:
      return _mm256_mul_ps(_mm256_mul_ps(half, v),
                           _mm256_add_ps(one, erf_ps(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f)))));
    case TileTranscendental::kGeluTanh: {
      const __m256 cube = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
      const __m256 inner =
          _mm256_mul_ps(_mm256_set1_ps(0.79788456080286536f), _mm256_fmadd_ps(cube, _mm256_set1_ps(0.044715f), v));
      return _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, tanh_ps(inner)));
    }
  }
  return v;
}

}  // namespace

void activate_tile_avx2(float* c, int64_t ldc, int64_t rows, int64_t cols, TileTranscendental act) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = c + i * ldc;
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) _mm256_storeu_ps(row + j, transcendental(_mm256_loadu_ps(row + j), act));
    if (j < cols) {
      alignas(32) float buf[8] = {};
      for (int64_t q = j; q < cols; ++q) buf[q - j] = row[q];
      _mm256_store_ps(buf, transcendental(_mm256_load_ps(buf), act));
      for (int64_t q = j; q < cols; ++q) row[q] = buf[q - j];
    }
  }
}

namespace {

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace

void softmax_row_avx2(const float* x, float* y, int64_t n) {
  if (n <= 0) return;
  __m256 vmax = _mm256_set1_ps(x[0]);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
  float mx = hmax(vmax);
  for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  const __m256 m = _mm256_set1_ps(mx);
  __m256 vsum = _mm256_setzero_ps();
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
    _mm256_storeu_ps(y + i, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  float sum = hsum(vsum);
  if (i < n) {
    alignas(32) float buf[8] = {};
    for (int64_t q = i; q < n; ++q) buf[q - i] = x[q] - mx;
    _mm256_store_ps(buf, exp_ps(_mm256_load_ps(buf)));
    for (int64_t q = i; q < n; ++q) {
      y[q] = buf[q - i];
      sum += buf[q - i];
    }
  }
  const __m256 inv = _mm256_set1_ps(1.0f / sum);
  i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
  for (; i < n; ++i) y[i] *= 1.0f / sum;
}

void layernorm_row_avx2(const float* x, float* y, const float* scale, const float* bias, int64_t n, float eps) {
  if (n <= 0) return;
  __m256 vs = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) vs = _mm256_add_ps(vs, _mm256_loadu_ps(x + i));
  float sum = hsum(vs);
  for (; i < n; ++i) sum += x[i];
  const float mean = sum / static_cast<float>(n);
  const __m256 vm = _mm256_set1_ps(mean);
  __m256 vq = _mm256_setzero_ps();
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
    vq = _mm256_fmadd_ps(d, d, vq);
  }
  float sq = hsum(vq);
  for (; i < n; ++i) sq += (x[i] - mean) * (x[i] - mean);
  const float inv = 1.0f / __builtin_sqrtf(sq / static_cast<float>(n) + eps);
  const __m256 vi = _mm256_set1_ps(inv);
  i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vi), _mm256_loadu_ps(scale + i));
    if (bias != nullptr) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + i));
    _mm256_storeu_ps(y + i, v);
  }
  for (; i < n; ++i) y[i] = (x[i] - mean) * inv * scale[i] + (bias != nullptr ? bias[i] : 0.0f);
}

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

void round_to_f16_f16c(float* v, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(v + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(v + i, _mm256_cvtph_ps(h));
  }
  if (i < n) {
    alignas(32) float tail[8] = {};
    for (int64_t j = i; j < n; ++j) tail[j - i] = v[j];
    const __m128i h = _mm256_cvtps_ph(_mm256_load_ps(tail), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_store_ps(tail, _mm256_cvtph_ps(h));
    for (int64_t j = i; j < n; ++j) v[j] = tail[j - i];
  }
}

void widen_halves_f16c(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    const __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 8)));
    _mm256_storeu_ps(dst + i, lo);
    _mm256_storeu_ps(dst + i + 8, hi);
  }
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  if (i < n) {
    alignas(16) uint16_t tail[8] = {};
    alignas(32) float out[8];
    for (int64_t j = i; j < n; ++j) tail[j - i] = src[j];
    _mm256_store_ps(out, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(tail))));
    for (int64_t j = i; j < n; ++j) dst[j] = out[j - i];
  }
}

void narrow_to_halves_f16c(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  if (i < n) {
    alignas(32) float tail[8] = {};
    alignas(16) uint16_t out[8];
    for (int64_t j = i; j < n; ++j) tail[j - i] = src[j];
    _mm_store_si128(reinterpret_cast<__m128i*>(out),
                    _mm256_cvtps_ph(_mm256_load_ps(tail), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (int64_t j = i; j < n; ++j) dst[j] = out[j - i];
  }
}

}  // namespace kiln::backends::cpu
