// A strided matrix product shared by the GEMM and convolution rules: plain
// loops, accumulation in T (fp32, or fp64 for gradient checks).
#pragma once

#include <algorithm>
#include <cstdint>

namespace kiln::train {

// c[m*cm + n*cn] (+)= alpha * sum_k a[m*am + k*ak] * b[k*bk + n*bn], with the
// sum accumulated in T. Strides express transposes without copies.
struct Strided {
  int64_t m, k, n;                  // problem size
  int64_t am, ak, bk, bn, cm, cn;   // element strides
};

template <class T>
void matmul_strided(const T* a, const T* b, T* c, const Strided& s, T alpha, bool accumulate) {
  if (s.bn == 1 && s.cn == 1) {
    for (int64_t m = 0; m < s.m; ++m) {
      T* crow = c + m * s.cm;
      if (!accumulate) std::fill_n(crow, s.n, T(0));
      for (int64_t k = 0; k < s.k; ++k) {
        T av = alpha * a[m * s.am + k * s.ak];
        const T* brow = b + k * s.bk;
        for (int64_t n = 0; n < s.n; ++n) crow[n] += av * brow[n];
      }
    }
    return;
  }
  for (int64_t m = 0; m < s.m; ++m) {
    for (int64_t n = 0; n < s.n; ++n) {
      T acc = 0;
      for (int64_t k = 0; k < s.k; ++k) acc += a[m * s.am + k * s.ak] * b[k * s.bk + n * s.bn];
      T& out = c[m * s.cm + n * s.cn];
      out = accumulate ? out + alpha * acc : alpha * acc;
    }
  }
}

}  // namespace kiln::train
