// Scalar forms of the activations whose literal formula overflows, shared
// by the reference kernels (activations.cc) and the CPU backend's
// own.pointwise, which must match them bit for bit.
#pragma once

#include <cmath>

namespace kiln::ops {

// 1 / (1 + e^-x), without overflow for large |x|.
template <class V>
V stable_sigmoid(V x) {
  if (x >= V(0)) return V(1) / (V(1) + std::exp(-x));
  V e = std::exp(x);
  return e / (V(1) + e);
}

// log(1 + e^x), without overflow for large x.
template <class V>
V stable_softplus(V x) {
  return x > V(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

}  // namespace kiln::ops
