// The portable SGEMM microkernel: a 4 x 8 tile in plain C++ (the compiler
// vectorizes it for the baseline target). The fallback when the CPU has
// neither AVX2 nor AVX-512, and a third path the differential tests check.
#include <algorithm>
#include <cmath>

#include "backends/cpu/microkernel.h"

namespace kiln::backends::cpu {
namespace {

constexpr int kMr = 4;
constexpr int kNr = 8;

float activate(float v, const TileArgs& t) {
  switch (t.act) {
    case TileActivation::kNone:
      return v;
    case TileActivation::kRelu:
      return v > 0.0f ? v : 0.0f;
    case TileActivation::kClip:
      return std::min(std::max(v, t.p0), t.p1);
    case TileActivation::kLeakyRelu:
      return v >= 0.0f ? v : t.p0 * v;
    case TileActivation::kHardSigmoid:
      return std::max(0.0f, std::min(1.0f, t.p0 * v + t.p1));
    case TileActivation::kHardSwish:
      return v * std::max(0.0f, std::min(1.0f, v / 6.0f + 0.5f));
  }
  return v;
}

void kernel_4x8(const TileArgs& t) {
  float acc[kMr][kNr] = {};
  const float* a = t.a;
  const float* b = t.b;
  const int64_t kc = t.kc;
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < kMr; ++i) {
      for (int j = 0; j < kNr; ++j) acc[i][j] += a[i] * b[j];
    }
    a += kMr;
    b += kNr;
  }
  for (int i = 0; i < kMr; ++i) {
    for (int j = 0; j < kNr; ++j) {
      float* c = t.c + i * t.ldc + j;
      float y = acc[i][j];
      if (t.load_c) y += *c;
      if (t.epilogue) {
        if (t.scale != 1.0f) y *= t.scale;
        if (t.bias_row != nullptr) y += t.bias_row[i];
        if (t.bias_col != nullptr) y += t.bias_col[j];
        if (t.residual != nullptr) y += t.residual[i * t.ldr + j];
        y = activate(y, t);
        if (t.residual2 != nullptr) y += t.residual2[i * t.ldr2 + j];
      }
      *c = y;
    }
  }
}

}  // namespace

MicroKernel microkernel_generic() { return {kMr, kNr, kernel_4x8}; }

}  // namespace kiln::backends::cpu

namespace kiln::backends::cpu {

void softmax_row_generic(const float* x, float* y, int64_t n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    y[i] = std::exp(x[i] - mx);
    sum += y[i];
  }
  for (int64_t i = 0; i < n; ++i) y[i] /= sum;
}

void layernorm_row_generic(const float* x, float* y, const float* scale, const float* bias, int64_t n, float eps) {
  if (n <= 0) return;
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const float mean = sum / static_cast<float>(n);
  float sq = 0.0f;
  for (int64_t i = 0; i < n; ++i) sq += (x[i] - mean) * (x[i] - mean);
  const float inv = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * inv * scale[i] + (bias != nullptr ? bias[i] : 0.0f);
}

void depthwise_row_generic(float* y, const float* const* rows, const float* w, int64_t kh, int64_t kw, int64_t dw,
                           int64_t lo, int64_t hi) {
  for (int64_t ox = lo; ox < hi; ++ox) {
    float s = 0.0f;
    for (int64_t ky = 0; ky < kh; ++ky) {
      if (rows[ky] == nullptr) continue;
      for (int64_t kx = 0; kx < kw; ++kx) s += w[ky * kw + kx] * rows[ky][ox + kx * dw];
    }
    y[ox] = s;
  }
}

}  // namespace kiln::backends::cpu
