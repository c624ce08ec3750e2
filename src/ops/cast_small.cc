// Casts involving the sub-16-bit types, following the ONNX reference
// (onnx/reference/ops/op_cast.py), which defers to ml_dtypes:
//
// - float8 e4m3fn/e4m3fnuz/e5m2/e5m2fnuz: round to nearest even. saturate=1
//   clamps to the largest finite value (inf included, NaN stays NaN);
//   saturate=0 turns values that round past it into NaN (inf for e5m2). The
//   "fnuz" types have no -0 and one NaN (0x80).
// - float4e2m1: round to nearest even, always saturating; NaN becomes 0x8
//   (as ml_dtypes does).
// - float8e8m0: an exponent only, computed from the float32 bits with
//   round_mode "up" (default), "nearest" or "down"; saturate keeps 0xFE from
//   rounding up into NaN (0xFF).
// - int4/uint4/int2/uint2: float sources truncate toward zero, then every
//   source wraps modulo 2^bits (numpy astype semantics).
//
// Every element is stored in its own byte: the float types as their bit
// pattern, the integer types as their value (sign-extended for int4/int2).
// Other conversions go through double (float8 to float is exact).
#include "ops/cast_small.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "ops/op_util.h"

namespace kiln::ops {
namespace {

// A small float format: its finite positive codes 0..max_code in value order.
struct MiniFloat {
  int mbits;
  int ebits;
  int bias;
  uint8_t max_code;  // largest finite positive code
  uint8_t sign_bit;
  enum class Kind { kFn, kFnuz, kIeee, kFp4 } kind;
};

MiniFloat format_of(DataType t) {
  switch (t) {
    case DataType::kFloat8E4M3FN: return {3, 4, 7, 0x7E, 0x80, MiniFloat::Kind::kFn};
    case DataType::kFloat8E4M3FNUZ: return {3, 4, 8, 0x7F, 0x80, MiniFloat::Kind::kFnuz};
    case DataType::kFloat8E5M2: return {2, 5, 15, 0x7B, 0x80, MiniFloat::Kind::kIeee};
    case DataType::kFloat8E5M2FNUZ: return {2, 5, 16, 0x7F, 0x80, MiniFloat::Kind::kFnuz};
    default: return {1, 2, 1, 0x7, 0x8, MiniFloat::Kind::kFp4};  // float4e2m1
  }
}

double code_value(const MiniFloat& f, int code) {
  int e = code >> f.mbits;
  int m = code & ((1 << f.mbits) - 1);
  if (e == 0) return std::ldexp(static_cast<double>(m), 1 - f.bias - f.mbits);
  return std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -f.mbits), e - f.bias);
}

std::vector<double> value_table(const MiniFloat& f) {
  std::vector<double> v(static_cast<size_t>(f.max_code) + 1);
  for (int c = 0; c <= f.max_code; ++c) v[static_cast<size_t>(c)] = code_value(f, c);
  return v;
}

uint8_t nan_code(const MiniFloat& f, bool negative) {
  switch (f.kind) {
    case MiniFloat::Kind::kFn: return static_cast<uint8_t>(0x7F | (negative ? 0x80 : 0));
    case MiniFloat::Kind::kIeee: return static_cast<uint8_t>(0x7E | (negative ? 0x80 : 0));
    case MiniFloat::Kind::kFnuz: return 0x80;
    case MiniFloat::Kind::kFp4: return 0x8;
  }
  return 0;
}

// The code for values that round past the largest finite one without saturation.
uint8_t overflow_code(const MiniFloat& f, bool negative) {
  switch (f.kind) {
    case MiniFloat::Kind::kIeee: return static_cast<uint8_t>(0x7C | (negative ? 0x80 : 0));  // inf
    case MiniFloat::Kind::kFp4: return static_cast<uint8_t>(f.max_code | (negative ? f.sign_bit : 0));
    default: return nan_code(f, negative);
  }
}

uint8_t encode(const MiniFloat& f, const std::vector<double>& table, double x, bool saturate) {
  const bool negative = std::signbit(x);
  if (std::isnan(x)) return nan_code(f, negative);
  if (f.kind == MiniFloat::Kind::kFp4) saturate = true;
  const double max = table.back();
  double a = std::abs(x);
  if (saturate && a > max) a = max;
  uint8_t code;
  if (a >= max) {
    // Beyond max: [x] (x rounded with unbounded exponent) stays max below the
    // midpoint to the next value, and at it when max's code is even.
    const double mid = max + (max - table[table.size() - 2]) / 2;
    if (a < mid || (a == mid && (f.max_code & 1) == 0)) {
      code = f.max_code;
    } else {
      return overflow_code(f, negative);
    }
  } else {
    // The largest code whose value is <= a, then round to nearest, ties to the even code.
    auto it = std::upper_bound(table.begin(), table.end(), a);
    auto lo = static_cast<int>(it - table.begin()) - 1;
    double mid = (table[static_cast<size_t>(lo)] + table[static_cast<size_t>(lo) + 1]) / 2;
    code = static_cast<uint8_t>(a < mid ? lo : a > mid ? lo + 1 : (lo % 2 == 0 ? lo : lo + 1));
  }
  if (negative && !(f.kind == MiniFloat::Kind::kFnuz && code == 0)) code = static_cast<uint8_t>(code | f.sign_bit);
  return code;
}

double decode(const MiniFloat& f, const std::vector<double>& table, uint8_t code) {
  const bool negative = (code & f.sign_bit) != 0;
  const int mag = code & (f.sign_bit - 1);
  switch (f.kind) {
    case MiniFloat::Kind::kFn:
      if (mag == 0x7F) return std::numeric_limits<double>::quiet_NaN();
      break;
    case MiniFloat::Kind::kFnuz:
      if (code == 0x80) return std::numeric_limits<double>::quiet_NaN();
      break;
    case MiniFloat::Kind::kIeee:
      if (mag == 0x7C) return negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
      if (mag > 0x7C) return std::numeric_limits<double>::quiet_NaN();
      break;
    case MiniFloat::Kind::kFp4:
      break;
  }
  double v = table[static_cast<size_t>(mag)];
  return negative ? -v : v;
}

// ---- float8e8m0 ----------------------------------------------------------------------

Result<uint8_t> encode_e8m0(float x, bool saturate, const std::string& round_mode) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  uint32_t exponent = (bits >> 23) & 0xFFu;
  if (exponent == 0xFFu) return static_cast<uint8_t>(0xFF);
  bool round_up = false;
  if (round_mode == "nearest") {
    bool g = (bits & 0x400000u) != 0;
    bool r = (bits & 0x200000u) != 0;
    bool s = (bits & 0x1FFFFFu) != 0;
    round_up = g && (r || s || exponent > 0);
  } else if (round_mode == "up") {
    round_up = (bits & 0x7FFFFFu) != 0;
  } else if (round_mode != "down") {
    return invalid_argument("round_mode must be 'up', 'down' or 'nearest', got '{}'", round_mode);
  }
  if (saturate && exponent == 0xFEu) round_up = false;
  return static_cast<uint8_t>(exponent + (round_up ? 1 : 0));
}

double decode_e8m0(uint8_t code) {
  if (code == 0xFF) return std::numeric_limits<double>::quiet_NaN();
  return std::ldexp(1.0, static_cast<int>(code) - 127);
}

// ---- 4- and 2-bit integers -------------------------------------------------------------

int small_int_bits(DataType t) { return t == DataType::kInt4 || t == DataType::kUInt4 ? 4 : 2; }
bool small_int_signed(DataType t) { return t == DataType::kInt4 || t == DataType::kInt2; }

int8_t wrap_small_int(int64_t v, DataType t) {
  const int bits = small_int_bits(t);
  const auto mask = static_cast<int64_t>((1u << bits) - 1);
  int64_t u = v & mask;
  if (small_int_signed(t) && u >= (int64_t{1} << (bits - 1))) u -= int64_t{1} << bits;
  return static_cast<int8_t>(u);
}

bool is_small_int(DataType t) {
  return t == DataType::kInt4 || t == DataType::kUInt4 || t == DataType::kInt2 || t == DataType::kUInt2;
}

// Elements of a small-type tensor as doubles (exact).
Result<Tensor> small_to_double(const Tensor& x) {
  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(DataType::kFloat64, x.dims()));
  const auto* src = x.data<uint8_t>();
  double* dst = out.data<double>();
  const DataType t = x.dtype();
  if (t == DataType::kFloat8E8M0) {
    for (int64_t i = 0; i < x.numel(); ++i) dst[i] = decode_e8m0(src[i]);
  } else if (is_small_int(t)) {
    // Re-wrap so that any byte reads as an in-range value.
    for (int64_t i = 0; i < x.numel(); ++i) dst[i] = wrap_small_int(static_cast<int8_t>(src[i]), t);
  } else {
    MiniFloat f = format_of(t);
    std::vector<double> table = value_table(f);
    for (int64_t i = 0; i < x.numel(); ++i) dst[i] = decode(f, table, src[i]);
  }
  return out;
}

}  // namespace

bool is_small_type(DataType t) {
  switch (t) {
    case DataType::kFloat8E4M3FN:
    case DataType::kFloat8E4M3FNUZ:
    case DataType::kFloat8E5M2:
    case DataType::kFloat8E5M2FNUZ:
    case DataType::kFloat8E8M0:
    case DataType::kFloat4E2M1:
    case DataType::kUInt4:
    case DataType::kInt4:
    case DataType::kUInt2:
    case DataType::kInt2:
      return true;
    default:
      return false;
  }
}

Result<Tensor> cast_small(const Tensor& x, DataType to, bool saturate, const std::string& round_mode) {
  if (x.dtype() == DataType::kComplex64 || x.dtype() == DataType::kComplex128) {
    return unimplemented("Cast from {} is not supported", data_type_name(x.dtype()));
  }
  // Source values as double (exact for every source but int64 beyond 2^53).
  Tensor values;
  if (is_small_type(x.dtype())) {
    KILN_ASSIGN_OR_RETURN(values, small_to_double(x));
  } else {
    KILN_ASSIGN_OR_RETURN(values, cast_tensor(x, DataType::kFloat64));
  }
  if (!is_small_type(to)) return cast_tensor(values, to);

  KILN_ASSIGN_OR_RETURN(Tensor out, Tensor::allocate(to, x.dims()));
  auto* dst = out.data<uint8_t>();
  const double* v = values.data<double>();
  const int64_t n = x.numel();
  if (to == DataType::kFloat8E8M0) {
    for (int64_t i = 0; i < n; ++i) {
      KILN_ASSIGN_OR_RETURN(dst[i], encode_e8m0(static_cast<float>(v[i]), saturate, round_mode));
    }
  } else if (is_small_int(to)) {
    const bool int_source = is_integer(x.dtype()) && !is_small_type(x.dtype());
    Tensor ints;
    if (int_source) {
      KILN_ASSIGN_OR_RETURN(ints, cast_tensor(x, DataType::kInt64));  // keeps the low bits of any integer
    }
    for (int64_t i = 0; i < n; ++i) {
      int64_t iv = 0;
      if (int_source) {
        iv = ints.data<int64_t>()[i];
      } else if (std::isfinite(v[i]) && std::abs(v[i]) < 9.2e18) {
        iv = static_cast<int64_t>(v[i]);  // truncates toward zero
      }
      dst[i] = static_cast<uint8_t>(wrap_small_int(iv, to));
    }
  } else {
    MiniFloat f = format_of(to);
    std::vector<double> table = value_table(f);
    for (int64_t i = 0; i < n; ++i) dst[i] = encode(f, table, v[i], saturate);
  }
  return out;
}

}  // namespace kiln::ops
