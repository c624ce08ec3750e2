// The AVX-VNNI u8s8 microkernel (compiled with -mavx2 -mfma -mavxvnni; called
// only where cpu_features().avxvnni): vpdpbusd on ymm sums four u8*s8
// products into each int32 lane without saturation.
#include <cstring>

#include "backends/cpu/gemm_int8_ymm.h"

namespace kiln::backends::cpu {

void int8_kernel_avxvnni(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups,
                         int32_t* c) {
  int8_kernel_ymm<4>(a, lda, rows, panel, k_groups, c,
                     [](const uint8_t* p, __m256i b0, __m256i b1, __m256i& acc0, __m256i& acc1) {
                       int32_t quad;
                       std::memcpy(&quad, p, sizeof(quad));
                       const __m256i av = _mm256_set1_epi32(quad);
                       acc0 = _mm256_dpbusd_avx_epi32(acc0, av, b0);
                       acc1 = _mm256_dpbusd_avx_epi32(acc1, av, b1);
                     });
}

}  // namespace kiln::backends::cpu
