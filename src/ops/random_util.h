// RandomSource: the random numbers of the random family (RandomUniform,
// RandomNormal, Bernoulli, Multinomial...) and of training-mode Dropout.
//
// A 64-bit Mersenne Twister (fully specified by the C++ standard) with
// Kiln's own mappings to uniform and normal values, so that a given seed gives
// the same numbers on every platform and standard library. The values do not
// match numpy's or any other framework's generator.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>

#include "ir/graph.h"

namespace kiln::ops {

class RandomSource {
 public:
  explicit RandomSource(uint64_t seed) : gen_(seed) {}

  // Seeded from the node's "seed" attribute (a float for the random ops, an
  // int for Dropout) when it has one: every run of the node then draws the
  // same numbers. Without it, seeded nondeterministically.
  static RandomSource for_node(const ir::Node& node) {
    if (const ir::Attribute* a = node.attr("seed")) {
      if (a->kind == ir::Attribute::Kind::kFloat) {
        return RandomSource(static_cast<uint64_t>(std::bit_cast<uint32_t>(a->f)) ^ kSeedSalt);
      }
      if (a->kind == ir::Attribute::Kind::kInt) return RandomSource(static_cast<uint64_t>(a->i) ^ kSeedSalt);
    }
    std::random_device rd;
    return RandomSource((static_cast<uint64_t>(rd()) << 32) ^ rd());
  }

  // Uniform in [0, 1), with 53 random bits.
  double uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }

  // Standard normal (Box-Muller; one value per pair of uniforms).
  double normal() {
    double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  static constexpr uint64_t kSeedSalt = 0x9e3779b97f4a7c15ull;
  std::mt19937_64 gen_;
};

}  // namespace kiln::ops
