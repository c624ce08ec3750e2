// A plain, cache-blocked GEMM shared by MatMul, Gemm, Conv and ConvTranspose.
//
// Reference quality, not a tuned kernel: the inner loop runs over a
// contiguous row of C in fixed-size blocks so that the compiler vectorizes it
// at -O2, and the loops are blocked so that a panel of B stays in cache while
// the rows of A stream past it. No intrinsics.
#pragma once

#include <cstdint>

namespace kiln {
class ThreadPool;
}

namespace kiln::ops {

// C[m, n] += A[m, k] * B[k, n]. All matrices are row-major with the given
// leading dimensions (elements between consecutive rows); C must not overlap
// A or B. Work is split over `pool` when it is non-null and the product is
// large enough; `pool` may be nullptr (serial). Instantiated for float,
// double, int32_t, int64_t, uint32_t and uint64_t (integers wrap on overflow
// like ONNX's reference implementation).
template <class T>
void gemm_accumulate(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
                     int64_t ldc, ThreadPool* pool);

}  // namespace kiln::ops
