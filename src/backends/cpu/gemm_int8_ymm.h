// The 256-bit u8s8 microkernel loop shared by the AVX2 and AVX-VNNI
// translation units; each includes this header under its own ISA flags and
// passes the step that multiplies one K group of a row of A (kGroup bytes)
// with the panel's two B registers into the row's two accumulators.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "backends/cpu/gemm_int8.h"

namespace kiln::backends::cpu {

template <int64_t kGroup, typename Step>
inline void int8_kernel_ymm(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups,
                            int32_t* c, Step step) {
  // Rows past `rows` read row 0 again and are not stored.
  const uint8_t* ar[kInt8Mr];
#pragma GCC unroll 8
  for (int64_t r = 0; r < kInt8Mr; ++r) ar[r] = a + (r < rows ? r : 0) * lda;
  __m256i acc[kInt8Mr][2];
  for (auto& row : acc) row[0] = row[1] = _mm256_setzero_si256();
  for (int64_t g = 0; g < k_groups; ++g) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + g * 64));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel + g * 64 + 32));
    // Unrolled, so that the accumulators live in registers (GCC otherwise keeps
    // acc[][] on the stack and pays a load and a store per multiply-add).
#pragma GCC unroll 8
    for (int64_t r = 0; r < kInt8Mr; ++r) step(ar[r] + g * kGroup, b0, b1, acc[r][0], acc[r][1]);
  }
  for (int64_t r = 0; r < rows; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * kInt8Nr), acc[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * kInt8Nr + 8), acc[r][1]);
  }
}

}  // namespace kiln::backends::cpu
