// IEEE half (Float16) and bfloat16 (BFloat16) storage types with exact
// conversions to and from float (round to nearest even, NaN preserved).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>

namespace kiln {

struct Float16 {
  uint16_t bits = 0;

  Float16() = default;
  explicit Float16(float f) : bits(from_float(f)) {}
  static Float16 from_bits(uint16_t b) {
    Float16 h;
    h.bits = b;
    return h;
  }
  operator float() const { return to_float(bits); }  // NOLINT(google-explicit-constructor)

  static uint16_t from_float(float f) {
    uint32_t x = std::bit_cast<uint32_t>(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) {  // inf or NaN
      return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u | ((abs >> 13) & 0x3ffu) : 0u));
    }
    if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
    if (abs < 0x38800000u) {  // result is subnormal or zero
      if (abs < 0x33000000u) return static_cast<uint16_t>(sign);  // below half of the smallest subnormal
      uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
      int shift = 113 - static_cast<int>(abs >> 23) + 13;  // 126 - exp + 1 ... aligns to 2^-24 units
      uint32_t result = mant >> shift;
      uint32_t rem = mant & ((1u << shift) - 1u);
      uint32_t half = 1u << (shift - 1);
      if (rem > half || (rem == half && (result & 1u))) ++result;
      return static_cast<uint16_t>(sign | result);
    }
    uint32_t result = ((abs - 0x38000000u) >> 13);
    uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (result & 1u))) ++result;
    return static_cast<uint16_t>(sign | result);
  }

  static float to_float(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t x;
    if (exp == 0x1f) {
      x = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
      x = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
      x = sign;
    } else {  // subnormal: normalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      x = sign | ((112u - static_cast<uint32_t>(e)) << 23) | ((mant & 0x3ffu) << 13);
    }
    return std::bit_cast<float>(x);
  }
};

// True if float `v` is exactly an IEEE half value: zero, a normal or
// subnormal half, or an infinity (NaN is not: its payload need not survive).
inline bool is_float16_value(float v) {
  const uint32_t u = std::bit_cast<uint32_t>(v);
  const uint32_t exp = (u >> 23) & 0xffu, mant = u & 0x7fffffu;
  if (exp == 0xffu || exp == 0) return mant == 0;  // fp32 subnormals are not halves
  const int e = static_cast<int>(exp) - 127;
  if (e > 15 || e < -24) return false;
  // A normal half keeps 10 mantissa bits; a subnormal one (2^-24 steps) fewer.
  const int dropped = e >= -14 ? 13 : -1 - e;
  return (mant & ((1u << dropped) - 1u)) == 0;
}

// True if every value is_float16_value.
inline bool all_float16_values(std::span<const float> values) {
  for (float v : values) {
    if (!is_float16_value(v)) return false;
  }
  return true;
}

struct BFloat16 {
  uint16_t bits = 0;

  BFloat16() = default;
  explicit BFloat16(float f) : bits(from_float(f)) {}
  static BFloat16 from_bits(uint16_t b) {
    BFloat16 h;
    h.bits = b;
    return h;
  }
  operator float() const { return to_float(bits); }  // NOLINT(google-explicit-constructor)

  static uint16_t from_float(float f) {
    uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
    uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
    return static_cast<uint16_t>((x + rounding) >> 16);
  }
  static float to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }
};

static_assert(sizeof(Float16) == 2 && sizeof(BFloat16) == 2);

}  // namespace kiln
