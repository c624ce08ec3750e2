// u8s8 integer GEMM: uint8 activations times int8 weights, int32
// accumulation, and a requantizing epilogue (bias, per-channel multiplier,
// rounding half to even, output zero point, optional ReLU, saturation).
//
//   C(m, n) = sum_k (A(m, k) - a_zero_point) * B(k, n)       (exact in int32)
//   Y(m, n) = saturate(nearbyint((C(m, n) + bias(n)) * multiplier(n)) + y_zero_point)
//
// The zero-point term is applied after the product as -a_zero_point *
// colsum_B(n), so the microkernels only multiply raw bytes. The epilogue
// multiplies in double, so the result is bit-exact with the reference
// QLinearConv/QLinearMatMul kernels (src/ops/quantization_qlinear.cc), which
// compute the same expression in float64.
//
// Variants (run-time dispatch, cpu_features() of isa.h):
//   u8s8_avx512vnni  vpdpbusd on zmm (16 columns x 4 k per instruction)
//   u8s8_avxvnni     vpdpbusd on ymm (AVX-VNNI, VEX encoded)
//   u8s8_avx2        zero-/sign-extends both operands to int16 and uses
//                    vpmaddwd. We do not use vpmaddubsw: its int16 pair sums
//                    saturate (255*127*2 > 32767), which would either lose
//                    exactness or force 7-bit weights; widening keeps every
//                    int8 weight exact at half vpmaddubsw's throughput.
//   u8s8_generic     portable C++ over the 4-k-group layout.
// B is packed once per variant into panels of 16 columns (output channels):
// the VNNI and generic variants store groups of 4 k's as bytes (64 bytes per
// group per panel), the AVX2 variant pairs of k's widened to int16 (also 64
// bytes per pair per panel). Padding (k beyond K, columns beyond N) is zero.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "kiln/status.h"

namespace kiln {
class ThreadPool;
}

namespace kiln::backends::cpu {

enum class Int8Variant { kGeneric = 0, kAvx2 = 1, kAvxVnni = 2, kAvx512Vnni = 3 };

// "u8s8_generic", "u8s8_avx2", "u8s8_avxvnni", "u8s8_avx512vnni".
std::string_view int8_variant_name(Int8Variant v);
// Every variant this machine runs (capped by KILN_CPU_ISA like detect_isa():
// "avx2" leaves out the AVX-512 variant, "generic" all but the portable one), best first.
std::vector<Int8Variant> supported_int8_variants();

inline constexpr int64_t kInt8Nr = 16;  // columns per packed panel
inline constexpr int64_t kInt8Mr = 4;   // rows per microkernel call

// B packed for one variant. Immutable after packing.
struct PackedInt8B {
  Int8Variant variant = Int8Variant::kGeneric;
  int64_t k = 0;         // logical depth
  int64_t n = 0;         // logical columns
  int64_t k_groups = 0;  // groups of 4 (generic, VNNI) or pairs (AVX2) of k
  std::vector<uint8_t> data;
  std::vector<int32_t> col_sums;  // sum over k of B(k, n), n entries

  // The depth an A row must be padded to (with any values) for this packing.
  int64_t padded_k() const;
  std::vector<uint8_t> serialize() const;
  static Result<PackedInt8B> deserialize(std::span<const uint8_t> bytes);
};

// Packs B(k, n) = b[k * stride_k + n * stride_n].
PackedInt8B pack_int8_b(Int8Variant v, const int8_t* b, int64_t stride_k, int64_t stride_n, int64_t k, int64_t n);

// The requantizing epilogue. Pointers are borrowed for the call.
struct Int8Requant {
  int32_t a_zero_point = 0;
  const int32_t* bias = nullptr;       // n entries, or nullptr
  const double* multiplier = nullptr;  // n entries: a_scale * b_scale(n) / y_scale
  int32_t y_zero_point = 0;
  int32_t y_min = 0, y_max = 255;  // saturation range; ReLU raises y_min to y_zero_point
  bool y_signed = false;           // int8 output (else uint8)
};

// Y(m, n) stored at y + m * y_stride_m + n * y_stride_n (bytes). A is m rows
// of b.padded_k() uint8 at a + m * lda (values past b.k are ignored).
void qgemm_u8s8(const PackedInt8B& b, int64_t m, const uint8_t* a, int64_t lda, const Int8Requant& rq, void* y,
                int64_t y_stride_m, int64_t y_stride_n, ThreadPool* pool);

// The raw product with the zero-point correction, no requantization:
// c[m * ldc + n] = sum_k (A(m, k) - a_zero_point) * B(k, n). For MatMulInteger
// style int32 outputs and for tests.
void qgemm_u8s8_int32(const PackedInt8B& b, int64_t m, const uint8_t* a, int64_t lda, int32_t a_zero_point, int32_t* c,
                      int64_t ldc, ThreadPool* pool);

// Microkernels: c[r * kInt8Nr + j] = sum over the packed panel of A row r
// times column j, for r < rows (<= kInt8Mr); `a` rows padded to the packing.
using Int8MicroKernel = void (*)(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups,
                                 int32_t* c);
void int8_kernel_generic(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups,
                         int32_t* c);
void int8_kernel_avx2(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups, int32_t* c);
void int8_kernel_avxvnni(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups,
                         int32_t* c);
void int8_kernel_avx512vnni(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel, int64_t k_groups,
                            int32_t* c);
// Two panels at once (tiles c0 and c1): each A quad loaded feeds two vpdpbusd.
void int8_kernel_avx512vnni_x2(const uint8_t* a, int64_t lda, int64_t rows, const uint8_t* panel0,
                               const uint8_t* panel1, int64_t k_groups, int32_t* c0, int32_t* c1);

// The requantizing epilogue of one tile on AVX2 (rows <= kInt8Mr of the
// tile's kInt8Nr columns, of which the first `cols` are stored): `offset` and
// `multiplier` hold the panel's kInt8Nr columns (bias - a_zero_point *
// colsum(B), and a_scale * b_scale / y_scale; zero past the matrix), `y` the
// tile's first output. Bit-exact with the scalar epilogue: the sum is an
// integer below 2^53 in double, the product and rounding (half to even) are
// the same operations.
void requant_tile_avx2(const int32_t* tile, int64_t rows, int64_t cols, const double* offset, const double* multiplier,
                       const Int8Requant& rq, uint8_t* y, int64_t y_stride_m, int64_t y_stride_n);
// The same on AVX-512 (F/DQ/BW/VL): for the AVX-512 VNNI variant.
void requant_tile_avx512(const int32_t* tile, int64_t rows, int64_t cols, const double* offset,
                         const double* multiplier, const Int8Requant& rq, uint8_t* y, int64_t y_stride_m,
                         int64_t y_stride_n);

}  // namespace kiln::backends::cpu
