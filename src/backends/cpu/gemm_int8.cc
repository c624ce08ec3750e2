// The u8s8 GEMM driver: B packing, variant dispatch, the portable
// microkernel and the requantizing epilogue (see gemm_int8.h).
#include "backends/cpu/gemm_int8.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cpu/isa.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace kiln::backends::cpu {
namespace {

// Bytes of one k-group of one 16-column panel (both layouts).
constexpr int64_t kGroupBytes = 64;
constexpr uint32_t kPackMagic = 0x38494b51;  // "QKI8"

bool uses_pairs(Int8Variant v) { return v == Int8Variant::kAvx2; }

Int8MicroKernel kernel_for(Int8Variant v) {
  switch (v) {
    case Int8Variant::kAvx512Vnni:
      return int8_kernel_avx512vnni;
    case Int8Variant::kAvxVnni:
      return int8_kernel_avxvnni;
    case Int8Variant::kAvx2:
      return int8_kernel_avx2;
    case Int8Variant::kGeneric:
      break;
  }
  return int8_kernel_generic;
}

// Runs fn(row0, rows, panel) for every block of kInt8Mr rows and every B
// panel. Rows go in chunks of up to 16 blocks, and a chunk runs all its blocks
// over one panel before the next: the chunk's A rows and the panel stay in L2
// (B used to stream from memory once per 4 rows). Chunks split over the pool.
template <typename Fn>
void for_tiles(int64_t m, int64_t panels, ThreadPool* pool, const Fn& fn) {
  const int64_t blocks = (m + kInt8Mr - 1) / kInt8Mr;
  const bool parallel = pool != nullptr && pool->threads() > 1 && blocks >= 8;
  const int64_t ways = parallel ? 2 * pool->threads() : 1;
  const int64_t chunk = std::clamp<int64_t>((blocks + ways - 1) / ways, 1, 16);
  const int64_t chunks = (blocks + chunk - 1) / chunk;
  auto run = [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t b0 = c * chunk, b1 = std::min(blocks, b0 + chunk);
      for (int64_t p = 0; p < panels; ++p) {
        for (int64_t b = b0; b < b1; ++b) fn(b * kInt8Mr, std::min(kInt8Mr, m - b * kInt8Mr), p);
      }
    }
  };
  if (parallel && chunks >= 2) {
    pool->parallel_for(chunks, 1, run);
  } else {
    run(0, chunks);
  }
}

// Every kInt8Mr x kInt8Nr tile of A x B, handed to tile_fn(row0, rows, panel,
// tile) as it is computed. The AVX-512 VNNI variant computes two adjacent
// panels per call: each A quad it loads feeds two products.
template <typename TileFn>
void for_each_tile(const PackedInt8B& b, int64_t m, const uint8_t* a, int64_t lda, ThreadPool* pool,
                   const TileFn& tile_fn) {
  const int64_t panels = (b.n + kInt8Nr - 1) / kInt8Nr;
  const int64_t panel_bytes = b.k_groups * kGroupBytes;
  const uint8_t* data = b.data.data();
  if (b.variant == Int8Variant::kAvx512Vnni && panels >= 2) {
    for_tiles(m, (panels + 1) / 2, pool, [&](int64_t row0, int64_t rows, int64_t pair) {
      alignas(64) int32_t tile[2][kInt8Mr * kInt8Nr];
      const int64_t p = 2 * pair;
      if (p + 1 < panels) {
        int8_kernel_avx512vnni_x2(a + row0 * lda, lda, rows, data + p * panel_bytes, data + (p + 1) * panel_bytes,
                                  b.k_groups, tile[0], tile[1]);
        tile_fn(row0, rows, p, tile[0]);
        tile_fn(row0, rows, p + 1, tile[1]);
      } else {
        int8_kernel_avx512vnni(a + row0 * lda, lda, rows, data + p * panel_bytes, b.k_groups, tile[0]);
        tile_fn(row0, rows, p, tile[0]);
      }
    });
    return;
  }
  const Int8MicroKernel kernel = kernel_for(b.variant);
  for_tiles(m, panels, pool, [&](int64_t row0, int64_t rows, int64_t p) {
    alignas(64) int32_t tile[kInt8Mr * kInt8Nr];
    kernel(a + row0 * lda, lda, rows, data + p * panel_bytes, b.k_groups, tile);
    tile_fn(row0, rows, p, tile);
  });
}

// clamp(nearbyint(v) + zp, lo, hi) without a libm call per element: v is
// first clamped to [lo - zp - 1, hi - zp + 1] (integer bounds, and rounding
// is monotone, so the result is unchanged), then rounded half to even by
// adding and subtracting 1.5 * 2^52, exact for |v| < 2^51 in the default
// rounding mode (the same mode nearbyint uses).
inline double round_half_even_clamped(double v, int32_t zp, int32_t lo, int32_t hi) {
  constexpr double kMagic = 6755399441055744.0;  // 1.5 * 2^52
  const double c = std::clamp(v, static_cast<double>(lo - zp - 1), static_cast<double>(hi - zp + 1));
  const double r = (c + kMagic) - kMagic;
  return std::clamp(r + zp, static_cast<double>(lo), static_cast<double>(hi));
}

// The integer part of column `col`'s epilogue: bias - a_zero_point * colsum(B).
inline int64_t column_offset(const PackedInt8B& b, const Int8Requant& rq, size_t col) {
  return (rq.bias != nullptr ? int64_t{rq.bias[col]} : 0) - int64_t{rq.a_zero_point} * b.col_sums[col];
}

}  // namespace

std::string_view int8_variant_name(Int8Variant v) {
  switch (v) {
    case Int8Variant::kGeneric:
      return "u8s8_generic";
    case Int8Variant::kAvx2:
      return "u8s8_avx2";
    case Int8Variant::kAvxVnni:
      return "u8s8_avxvnni";
    case Int8Variant::kAvx512Vnni:
      return "u8s8_avx512vnni";
  }
  return "?";
}

std::vector<Int8Variant> supported_int8_variants() {
  const CpuFeatures& f = cpu_features();
  const Isa isa = detect_isa();
  std::vector<Int8Variant> out;
  if (isa >= Isa::kAvx512 && f.avx512vnni) out.push_back(Int8Variant::kAvx512Vnni);
  if (isa >= Isa::kAvx2 && f.avxvnni) out.push_back(Int8Variant::kAvxVnni);
  if (isa >= Isa::kAvx2) out.push_back(Int8Variant::kAvx2);
  out.push_back(Int8Variant::kGeneric);
  return out;
}

int64_t PackedInt8B::padded_k() const { return k_groups * (uses_pairs(variant) ? 2 : 4); }

PackedInt8B pack_int8_b(Int8Variant v, const int8_t* b, int64_t stride_k, int64_t stride_n, int64_t k, int64_t n) {
  PackedInt8B p;
  p.variant = v;
  p.k = k;
  p.n = n;
  const int64_t per_group = uses_pairs(v) ? 2 : 4;
  p.k_groups = (k + per_group - 1) / per_group;
  const int64_t panels = (n + kInt8Nr - 1) / kInt8Nr;
  p.data.assign(static_cast<size_t>(panels * p.k_groups * kGroupBytes), 0);
  p.col_sums.assign(static_cast<size_t>(n), 0);
  for (int64_t col = 0; col < n; ++col) {
    const int64_t panel = col / kInt8Nr, j = col % kInt8Nr;
    int32_t sum = 0;
    for (int64_t kk = 0; kk < k; ++kk) {
      const int8_t value = b[kk * stride_k + col * stride_n];
      sum += value;
      const int64_t g = kk / per_group, q = kk % per_group;
      uint8_t* group = p.data.data() + (panel * p.k_groups + g) * kGroupBytes;
      if (per_group == 2) {
        const auto wide = static_cast<int16_t>(value);
        std::memcpy(group + (j * 2 + q) * 2, &wide, sizeof(wide));
      } else {
        group[j * 4 + q] = static_cast<uint8_t>(value);
      }
    }
    p.col_sums[static_cast<size_t>(col)] = sum;
  }
  return p;
}

std::vector<uint8_t> PackedInt8B::serialize() const {
  const int64_t header[4] = {static_cast<int64_t>(variant), k, n, k_groups};
  std::vector<uint8_t> out(sizeof(kPackMagic) + sizeof(header) + data.size() + col_sums.size() * sizeof(int32_t));
  uint8_t* p = out.data();
  std::memcpy(p, &kPackMagic, sizeof(kPackMagic));
  p += sizeof(kPackMagic);
  std::memcpy(p, header, sizeof(header));
  p += sizeof(header);
  std::memcpy(p, data.data(), data.size());
  p += data.size();
  std::memcpy(p, col_sums.data(), col_sums.size() * sizeof(int32_t));
  return out;
}

Result<PackedInt8B> PackedInt8B::deserialize(std::span<const uint8_t> bytes) {
  int64_t header[4];
  uint32_t magic = 0;
  if (bytes.size() < sizeof(magic) + sizeof(header)) return invalid_argument("packed int8 weights: truncated header");
  std::memcpy(&magic, bytes.data(), sizeof(magic));
  std::memcpy(header, bytes.data() + sizeof(magic), sizeof(header));
  if (magic != kPackMagic) return invalid_argument("packed int8 weights: bad magic");
  PackedInt8B p;
  if (header[0] < 0 || header[0] > 3 || header[1] < 0 || header[2] < 0 || header[3] < 0 || header[1] > (1LL << 32) ||
      header[2] > (1LL << 32)) {
    return invalid_argument("packed int8 weights: bad header");
  }
  p.variant = static_cast<Int8Variant>(header[0]);
  p.k = header[1];
  p.n = header[2];
  p.k_groups = header[3];
  const int64_t per_group = uses_pairs(p.variant) ? 2 : 4;
  if (p.k_groups != (p.k + per_group - 1) / per_group) return invalid_argument("packed int8 weights: bad depth");
  const auto data_bytes = static_cast<size_t>(((p.n + kInt8Nr - 1) / kInt8Nr) * p.k_groups * kGroupBytes);
  const size_t want = sizeof(magic) + sizeof(header) + data_bytes + static_cast<size_t>(p.n) * sizeof(int32_t);
  if (bytes.size() != want) {
    return invalid_argument("packed int8 weights: {} bytes, expected {}", bytes.size(), want);
  }
  const uint8_t* src = bytes.data() + sizeof(magic) + sizeof(header);
  p.data.assign(src, src + data_bytes);
  p.col_sums.resize(static_cast<size_t>(p.n));
  std::memcpy(p.col_sums.data(), src + data_bytes, p.col_sums.size() * sizeof(int32_t));
  return p;
}

void int8_kernel_generic(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups,
                         int32_t* c) {
  for (int64_t r = 0; r < rows; ++r) {
    int32_t acc[kInt8Nr] = {};
    const uint8_t* ar = a + r * lda;
    for (int64_t g = 0; g < k_groups; ++g) {
      const auto* bg = reinterpret_cast<const int8_t*>(panel + g * kGroupBytes);
      for (int64_t j = 0; j < kInt8Nr; ++j) {
        int32_t s = 0;
        for (int64_t q = 0; q < 4; ++q) s += static_cast<int32_t>(ar[g * 4 + q]) * bg[j * 4 + q];
        acc[j] += s;
      }
    }
    std::memcpy(c + r * kInt8Nr, acc, sizeof(acc));
  }
}

void qgemm_u8s8_int32(const PackedInt8B& b, int64_t m, const uint8_t* a, int64_t lda, int32_t a_zero_point, int32_t* c,
                      int64_t ldc, ThreadPool* pool) {
  for_each_tile(b, m, a, lda, pool, [&](int64_t row0, int64_t rows, int64_t p, const int32_t* tile) {
    const int64_t cols = std::min(kInt8Nr, b.n - p * kInt8Nr);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t col = p * kInt8Nr + j;
        c[(row0 + r) * ldc + col] = tile[r * kInt8Nr + j] - a_zero_point * b.col_sums[static_cast<size_t>(col)];
      }
    }
  });
}

void qgemm_u8s8(const PackedInt8B& b, int64_t m, const uint8_t* a, int64_t lda, const Int8Requant& rq, void* y,
                int64_t y_stride_m, int64_t y_stride_n, ThreadPool* pool) {
  const int64_t panels = (b.n + kInt8Nr - 1) / kInt8Nr;
  auto* out = static_cast<uint8_t*>(y);
  if (b.variant != Int8Variant::kGeneric) {
    // Every non-generic variant runs on an AVX2 machine (VNNI's on AVX-512): the vectorized epilogue, with the
    // per-column offset and multiplier laid out by panel (zero past the last column).
    std::vector<double> offset(static_cast<size_t>(panels * kInt8Nr), 0.0);
    std::vector<double> multiplier(offset.size(), 0.0);
    for (int64_t col = 0; col < b.n; ++col) {
      const auto c = static_cast<size_t>(col);
      offset[c] = static_cast<double>(column_offset(b, rq, c));
      multiplier[c] = rq.multiplier[c];
    }
    const auto requant = b.variant == Int8Variant::kAvx512Vnni ? requant_tile_avx512 : requant_tile_avx2;
    for_each_tile(b, m, a, lda, pool, [&](int64_t row0, int64_t rows, int64_t p, const int32_t* tile) {
      requant(tile, rows, std::min(kInt8Nr, b.n - p * kInt8Nr), offset.data() + p * kInt8Nr,
                        multiplier.data() + p * kInt8Nr, rq, out + row0 * y_stride_m + p * kInt8Nr * y_stride_n,
                        y_stride_m, y_stride_n);
    });
    return;
  }
  for_each_tile(b, m, a, lda, pool, [&](int64_t row0, int64_t rows, int64_t p, const int32_t* tile) {
    const int64_t cols = std::min(kInt8Nr, b.n - p * kInt8Nr);
    for (int64_t j = 0; j < cols; ++j) {
      const auto col = static_cast<size_t>(p * kInt8Nr + j);
      const int64_t offset = column_offset(b, rq, col);
      const double mult = rq.multiplier[col];
      for (int64_t r = 0; r < rows; ++r) {
        // The accumulator is exact; the product in double and rounding
        // half to even match the reference's float64 requantization.
        const double v = static_cast<double>(tile[r * kInt8Nr + j] + offset) * mult;
        const auto q = static_cast<int32_t>(round_half_even_clamped(v, rq.y_zero_point, rq.y_min, rq.y_max));
        uint8_t* dst = out + (row0 + r) * y_stride_m + static_cast<int64_t>(col) * y_stride_n;
        *dst = rq.y_signed ? static_cast<uint8_t>(static_cast<int8_t>(q)) : static_cast<uint8_t>(q);
      }
    }
  });
}

}  // namespace kiln::backends::cpu
