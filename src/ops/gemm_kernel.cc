#include "ops/gemm_kernel.h"

#include <algorithm>
#include <type_traits>

#include "core/thread_pool.h"

namespace kiln::ops {
namespace {

// Blocking: a kBlockK x kTileN panel of B (128 KiB of floats) stays in L2
// while kBlockM rows of A stream past it; one kTileN slice of a row of C
// (1 KiB) stays in L1.
constexpr int64_t kTileN = 256;
constexpr int64_t kBlockK = 128;
constexpr int64_t kBlockM = 32;
// Fixed-length inner blocks let GCC vectorize at -O2 (its "very cheap" cost
// model vectorizes only loops whose trip count is a known multiple).
constexpr int64_t kVec = 16;

// Unsigned arithmetic for the integer types, so that overflow wraps (defined) instead of being UB.
template <class T>
struct Wrap {
  using type = T;
};
template <class T>
  requires std::is_integral_v<T>
struct Wrap<T> {
  using type = std::make_unsigned_t<T>;
};
template <class T>
using wrap_t = typename Wrap<T>::type;

// c[j] += a0*b0[j] + a1*b1[j] + a2*b2[j] + a3*b3[j] for j in [0, n).
template <class T>
void axpy4(int64_t n, T a0, T a1, T a2, T a3, const T* __restrict b0, const T* __restrict b1,
           const T* __restrict b2, const T* __restrict b3, T* __restrict c) {
  int64_t j = 0;
  for (; j + kVec <= n; j += kVec) {
    for (int64_t u = 0; u < kVec; ++u) {
      c[j + u] += a0 * b0[j + u] + a1 * b1[j + u] + a2 * b2[j + u] + a3 * b3[j + u];
    }
  }
  for (; j < n; ++j) c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
}

// c[j] += a * b[j] for j in [0, n).
template <class T>
void axpy1(int64_t n, T a, const T* __restrict b, T* __restrict c) {
  int64_t j = 0;
  for (; j + kVec <= n; j += kVec) {
    for (int64_t u = 0; u < kVec; ++u) c[j + u] += a * b[j + u];
  }
  for (; j < n; ++j) c[j] += a * b[j];
}

// Rows [m0, m1) and columns [n0, n1) of C, all of k.
template <class T>
void gemm_tile(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t k, const T* a, int64_t lda, const T* b,
               int64_t ldb, T* c, int64_t ldc) {
  const int64_t width = n1 - n0;
  for (int64_t k0 = 0; k0 < k; k0 += kBlockK) {
    const int64_t k1 = std::min(k, k0 + kBlockK);
    for (int64_t i = m0; i < m1; ++i) {
      const T* arow = a + i * lda;
      T* crow = c + i * ldc + n0;
      int64_t p = k0;
      for (; p + 4 <= k1; p += 4) {
        const T* bp = b + p * ldb + n0;
        axpy4<T>(width, arow[p], arow[p + 1], arow[p + 2], arow[p + 3], bp, bp + ldb, bp + 2 * ldb, bp + 3 * ldb,
                 crow);
      }
      for (; p < k1; ++p) axpy1<T>(width, arow[p], b + p * ldb + n0, crow);
    }
  }
}

template <class T>
void gemm_impl(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc,
               ThreadPool* pool) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  const int64_t m_blocks = (m + kBlockM - 1) / kBlockM;
  const int64_t n_tiles = (n + kTileN - 1) / kTileN;
  // Task t covers N-tile t / m_blocks and M-block t % m_blocks: consecutive
  // tasks share a panel of B.
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t nt = t / m_blocks;
      const int64_t mb = t % m_blocks;
      gemm_tile<T>(mb * kBlockM, std::min(m, (mb + 1) * kBlockM), nt * kTileN, std::min(n, (nt + 1) * kTileN), k, a,
                   lda, b, ldb, c, ldc);
    }
  };
  const int64_t tasks = m_blocks * n_tiles;
  const bool worth_splitting = m * n * k >= (int64_t{1} << 18);
  if (pool != nullptr && pool->threads() > 1 && tasks > 1 && worth_splitting) {
    pool->parallel_for(tasks, 1, run);
  } else {
    run(0, tasks);
  }
}

}  // namespace

template <class T>
void gemm_accumulate(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
                     int64_t ldc, ThreadPool* pool) {
  using W = wrap_t<T>;
  gemm_impl<W>(m, n, k, reinterpret_cast<const W*>(a), lda, reinterpret_cast<const W*>(b), ldb,
               reinterpret_cast<W*>(c), ldc, pool);
}

template void gemm_accumulate<float>(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*,
                                     int64_t, ThreadPool*);
template void gemm_accumulate<double>(int64_t, int64_t, int64_t, const double*, int64_t, const double*, int64_t,
                                      double*, int64_t, ThreadPool*);
template void gemm_accumulate<int32_t>(int64_t, int64_t, int64_t, const int32_t*, int64_t, const int32_t*, int64_t,
                                       int32_t*, int64_t, ThreadPool*);
template void gemm_accumulate<int64_t>(int64_t, int64_t, int64_t, const int64_t*, int64_t, const int64_t*, int64_t,
                                       int64_t*, int64_t, ThreadPool*);
template void gemm_accumulate<uint32_t>(int64_t, int64_t, int64_t, const uint32_t*, int64_t, const uint32_t*,
                                        int64_t, uint32_t*, int64_t, ThreadPool*);
template void gemm_accumulate<uint64_t>(int64_t, int64_t, int64_t, const uint64_t*, int64_t, const uint64_t*,
                                        int64_t, uint64_t*, int64_t, ThreadPool*);

}  // namespace kiln::ops
