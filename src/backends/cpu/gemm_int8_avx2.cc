// The AVX2 u8s8 microkernel (compiled with -mavx2 -mfma; called only after
// the run-time check of supported_int8_variants()). Both operands are
// widened to int16 and multiplied with vpmaddwd, which sums pairs of
// products into int32 exactly (see gemm_int8.h for why not vpmaddubsw).
#include <cstring>

#include "backends/cpu/gemm_int8_ymm.h"

namespace kiln::backends::cpu {

void int8_kernel_avx2(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups,
                      int32_t* c) {
  int8_kernel_ymm<2>(a, lda, rows, panel, k_groups, c,
                     [](const uint8_t* p, __m256i b0, __m256i b1, __m256i& acc0, __m256i& acc1) {
                       // The pair broadcast as bytes, then widened: every int32 lane is
                       // p[0] | p[1] << 16 (fewer uops than building it in a scalar register).
                       int16_t pair;
                       std::memcpy(&pair, p, sizeof(pair));
                       const __m256i av = _mm256_cvtepu8_epi16(_mm_set1_epi16(pair));
                       acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(av, b0));
                       acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(av, b1));
                     });
}

}  // namespace kiln::backends::cpu
