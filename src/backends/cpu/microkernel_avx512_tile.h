// The 14 x 32 AVX-512 microkernel shared by the fp32 (microkernel_avx512.cc)
// and bf16 (microkernel_avx512bf16.cc) translation units: each includes this
// header under its own ISA flags and passes the step that multiplies one
// packed depth slot of A's 14 rows with the panel's two B registers into the
// rows' accumulators. For fp32 a slot is one float; for bf16 it is a pair of
// bfloat16 values along K (vdpbf16ps). The store applies the epilogue.
//
// Everything here is a template or has internal linkage, so the copies
// compiled under different flags are never merged by the linker.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "backends/cpu/microkernel.h"

namespace kiln::backends::cpu::avx512_tile {

constexpr int kMr = 14;
constexpr int kNr = 32;
constexpr int kVecs = kNr / 16;

template <typename Tag>
inline __m512 activate(__m512 v, const TileArgs& t) {
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

// step(a_slot, b0, b1, acc0, acc1): acc += A's slot value (a pointer to one
// 32-bit slot of a row) times the two B vectors. Tag makes each including
// file's instantiation distinct.
template <typename Tag, typename Step>
inline void tile_14x32(const TileArgs& t, Step step) {
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
    for (int i = 0; i < kMr; ++i) step(a + i, b0, b1, acc[i][0], acc[i][1]);
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
        y = activate<Tag>(y, t);
        if (t.residual2 != nullptr) y = _mm512_add_ps(y, _mm512_loadu_ps(t.residual2 + i * t.ldr2 + v * 16));
      }
      _mm512_storeu_ps(c, y);
    }
  }
}

}  // namespace kiln::backends::cpu::avx512_tile
