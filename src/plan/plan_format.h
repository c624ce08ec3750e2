// Internals of the plan file shared by plan_writer.cc and plan_reader.cc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::plan {

inline constexpr uint64_t kWeightAlignment = 64;

inline uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

// FNV-1a, 64 bits: a cheap checksum that catches flipped bits in the metadata.
inline uint64_t fnv1a(const uint8_t* data, size_t size) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < size; ++i) {
    h ^= data[i];
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace kiln::plan
