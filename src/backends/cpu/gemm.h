// Packed SGEMM: C[M, N] = epilogue(A[M, K] x B[K, N]) for the CPU tactics.
//
// GotoBLAS structure: the driver walks C in blocks (NC columns, KC depth, MC
// rows), packs the operands into panels that the microkernel streams (A in
// panels of MR rows, B in panels of NR columns, each panel [depth][width]
// contiguous and zero-padded), and calls the ISA's register-blocked
// microkernel (microkernel.h) on every MR x NR tile. Either operand can be
// packed once ahead of time (weights, in Tactic::prepare) or packed block by
// block while the product runs (activations, im2col columns). The epilogue
// (scale, bias per row or per column, residual, activation) is applied in
// the microkernel's store, on the last depth block.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "backends/cpu/isa.h"
#include "backends/cpu/microkernel.h"
#include "kiln/status.h"
#include "ops/epilogue.h"

namespace kiln {
class ThreadPool;
}

namespace kiln::backends::cpu {

// 64-byte aligned float storage that does not zero-initialize on resize.
class AlignedFloats {
 public:
  AlignedFloats() = default;
  explicit AlignedFloats(int64_t n) { resize(n); }
  // Grows (never shrinks) to at least n floats; contents are not kept.
  void reserve_discard(int64_t n);
  void resize(int64_t n);
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  int64_t size() const { return size_; }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Free> data_;
  int64_t size_ = 0;
  int64_t capacity_ = 0;
};

// The ISA's microkernel and the cache blocking used with it.
struct GemmConfig {
  Isa isa = Isa::kGeneric;
  MicroKernel kernel;
  TileActivateFn activate = nullptr;  // vectorized exp/erf activations; nullptr: scalar
  int64_t mc = 0;                     // rows of A per packed block (multiple of MR): stays in L2
  int64_t kc = 0;                     // depth per block: one MR x KC and one KC x NR panel stay in L1
  int64_t nc = 0;                     // columns of B per block packed on the fly
};
GemmConfig gemm_config(Isa isa);

// One whole operand packed into panels of `width` along its row dimension
// (M for A, N for B), each panel holding all `depth` (K) values. With `f16`
// the panels hold IEEE half values (2 bytes each, the same [depth][width]
// order): weights stored at half the bytes and widened block by block
// while the product runs (GemmOperand::prepacked_f16).
struct PackedMatrix {
  int64_t rows = 0;
  int64_t depth = 0;
  int width = 0;
  bool f16 = false;
  AlignedFloats data;

  int64_t panels() const { return (rows + width - 1) / width; }
  int64_t elements() const { return panels() * depth * width; }
  // Bytes of the packed values.
  int64_t bytes() const { return elements() * (f16 ? 2 : 4); }
  const float* panel(int64_t p) const { return data.data() + p * depth * width; }
  const uint16_t* panel_f16(int64_t p) const {
    return reinterpret_cast<const uint16_t*>(data.data()) + p * depth * width;
  }

  // rows, depth, width then the packed values, little-endian host order.
  std::vector<uint8_t> serialize() const;
  // Restores serialize()'s bytes; checks the header against the expected
  // geometry and the byte count.
  static Result<PackedMatrix> deserialize(std::span<const uint8_t> bytes, int64_t rows, int64_t depth, int width,
                                          bool f16 = false);
};

// Element (r, k) of a strided matrix operand is src[r * row_stride + k * depth_stride].
// For A [M, K] row-major: (K, 1); A transposed: (1, M). For B [K, N]
// row-major: (1, N); B transposed ([N, K]): (K, 1).
struct StridedMatrix {
  const float* src = nullptr;
  int64_t row_stride = 0;
  int64_t depth_stride = 0;
};

// Writes rows [r0, r0 + n) x depth [k0, k0 + kc) of `m` as ceil(n / width)
// panels of kc x width floats into dst, zero-padding the last panel.
void pack_strided(const StridedMatrix& m, int64_t r0, int64_t n, int64_t k0, int64_t kc, int width, float* dst);

// Packs a whole operand (all rows, all depth); work is split over `pool`.
PackedMatrix pack_matrix(const StridedMatrix& m, int64_t rows, int64_t depth, int width, ThreadPool* pool);

// Packs a block of an operand computed on the fly (e.g. im2col): same
// contract as pack_strided.
using PackFn = std::function<void(int64_t r0, int64_t n, int64_t k0, int64_t kc, int width, float* dst)>;

// One operand of a product: prepacked (with the config's MR or NR as width),
// or packed block by block with `pack`.
struct GemmOperand {
  const PackedMatrix* packed = nullptr;
  PackFn pack;
  // Set by prepacked_f16 (which packs through `pack`): the driver splits a
  // product over the columns of such a B when it is wider than A is tall,
  // so that each thread widens only its share.
  const PackedMatrix* halves = nullptr;

  static GemmOperand prepacked(const PackedMatrix& p) { return {&p, nullptr}; }
  // A PackedMatrix of half values (pack_matrix_f16): each block is widened
  // to floats (F16C) as the driver asks for it. The values are exact, so
  // the product is the fp32 one, bit for bit.
  static GemmOperand prepacked_f16(const PackedMatrix& p);
  static GemmOperand strided(StridedMatrix m);
  // A strided operand of `depth` K values packed as bfloat16 pairs (below).
  static GemmOperand strided_bf16(StridedMatrix m, int64_t depth);
  static GemmOperand custom(PackFn f) { return {nullptr, std::move(f)}; }
};

// What happens to each accumulated value (see ops/epilogue.h):
//   y = scale * acc + bias_row[i] + bias_col[j] (+ residual[i, j]); y = act(y) (+ residual[i, j])
struct GemmEpilogue {
  float scale = 1.0f;
  const float* bias_row = nullptr;  // M values or nullptr
  const float* bias_col = nullptr;  // N values or nullptr
  const float* residual = nullptr;  // [M, N] with leading dimension ldr, or nullptr
  int64_t ldr = 0;
  bool residual_after_activation = false;
  const float* addend = nullptr;  // a second [M, N] term always added before the activation
  int64_t lda = 0;                // (Gemm's full C); leading dimension of addend
  ops::Epilogue activation;       // activation kind and parameters
};

// Which dimension the driver splits over threads first: the one whose
// operand is packed on the fly, so that each thread packs its own share.
enum class GemmSplit { kAuto, kRows, kColumns };

// C[M, N] (leading dimension ldc, fully overwritten) = epilogue(A x B).
// A prepacked operand must have the config's MR (A) or NR (B) width and the
// product's M/N and K.
void gemm(const GemmConfig& cfg, int64_t m, int64_t n, int64_t k, const GemmOperand& a, const GemmOperand& b, float* c,
          int64_t ldc, const GemmEpilogue& epilogue, ThreadPool* pool, GemmSplit split = GemmSplit::kAuto);

// ---- bfloat16 products ------------------------------------------------------
// A bf16 product (gemm_config_bf16) runs the same driver over K counted in
// slots of two bfloat16 values: pass k = bf16_slots(K). A packed slot is one
// 32-bit element holding bf16(x[2s]) in its low half and bf16(x[2s + 1]) in
// its high half (zero past K); PackedMatrix::depth counts slots. The
// products of bfloat16 values are exact in fp32 and accumulate in fp32, so
// when both operands already hold bfloat16 values the result is the fp32
// product up to summation order.
inline int64_t bf16_slots(int64_t k) { return (k + 1) / 2; }
// The AVX-512 BF16 microkernel and its blocking; only when bf16_dot_supported().
GemmConfig gemm_config_bf16();
// pack_strided for bf16 pairs: rows [r0, r0 + n) x slots [s0, s0 + sc) of
// an operand with `depth` K values, rounding each value to nearest even.
void pack_strided_bf16(const StridedMatrix& m, int64_t depth, int64_t r0, int64_t n, int64_t s0, int64_t sc, int width,
                       float* dst);
// pack_matrix for bf16 pairs: the result's depth is bf16_slots(depth).
PackedMatrix pack_matrix_bf16(const StridedMatrix& m, int64_t rows, int64_t depth, int width, ThreadPool* pool);
// Slot rows [0, sc) of one panel from K rows of `width` values (row k at
// rows + k * row_stride, `k_count` of them): slot s pairs rows 2s and 2s + 1,
// zero past k_count. AVX-512 BF16 only (bf16_dot_supported()).
void pair_slots_bf16(const float* rows, int64_t row_stride, int64_t k_count, int64_t sc, int width, float* dst);

// ---- half-precision weights ------------------------------------------------
// pack_matrix with the panels stored as IEEE half values; every value of m
// must be one (all_f16_values), so nothing is rounded.
PackedMatrix pack_matrix_f16(const StridedMatrix& m, int64_t rows, int64_t depth, int width, ThreadPool* pool);
// dst[i] = float(src[i]) (IEEE half bits) and dst[i] = half(src[i]) (round
// to nearest even, the Cast to float16) for i < n: F16C where
// f16c_supported(), else scalar, bit-exact with core/float_types.h.
void widen_halves(const uint16_t* src, float* dst, int64_t n);
void narrow_to_halves(const float* src, uint16_t* dst, int64_t n);
// widen_halves into the calling thread's buffer (kept between calls): a
// float16 activation as the fp32 kernels read it. Valid until this thread's
// next call.
const float* widen_halves_to_thread_buffer(const uint16_t* src, int64_t n);

// How a tactic stores its constant operand (the weights):
//   kFp32: fp32 panels on the ISA's fp32 microkernel;
//   kBf16: bfloat16 pairs (depth counted in slots) on the AVX-512 BF16
//          microkernel, the other operand rounded while packed;
//   kFp16: half-value panels (half the bytes) widened block by block onto
//          the fp32 microkernel: the fp32 product of the same values.
enum class WeightFormat : uint8_t { kFp32, kBf16, kFp16 };

// The packing of one weight format for the tactics.
struct GemmPacking {
  WeightFormat format = WeightFormat::kFp32;
  bool bf16() const { return format == WeightFormat::kBf16; }
  bool fp16() const { return format == WeightFormat::kFp16; }
  // The tactic-name suffix: "", "_bf16" or "_fp16".
  const char* suffix() const { return bf16() ? "_bf16" : fp16() ? "_fp16" : ""; }
  int64_t depth(int64_t k) const { return bf16() ? bf16_slots(k) : k; }
  GemmConfig config(Isa isa) const { return bf16() ? gemm_config_bf16() : gemm_config(isa); }
  // The weights, packed ahead of time.
  PackedMatrix pack(const StridedMatrix& m, int64_t rows, int64_t k, int width, ThreadPool* pool) const {
    if (bf16()) return pack_matrix_bf16(m, rows, k, width, pool);
    if (fp16()) return pack_matrix_f16(m, rows, k, width, pool);
    return pack_matrix(m, rows, k, width, pool);
  }
  // Restores pack()'s result from PackedMatrix::serialize() bytes.
  Result<PackedMatrix> unpack(std::span<const uint8_t> bytes, int64_t rows, int64_t k, int width) const {
    return PackedMatrix::deserialize(bytes, rows, depth(k), width, fp16());
  }
  // pack()'s result as an operand of gemm().
  static GemmOperand weights(const PackedMatrix& p) {
    return p.f16 ? GemmOperand::prepacked_f16(p) : GemmOperand::prepacked(p);
  }
  // The other (activation) operand, packed while the product runs.
  GemmOperand operand(StridedMatrix m, int64_t k) const {
    return bf16() ? GemmOperand::strided_bf16(m, k) : GemmOperand::strided(m);
  }
};

// Applies the full epilogue to one value at (i, j) that holds scale-free
// accumulation `acc`; the scalar path for tails and transcendental activations.
float apply_epilogue(const GemmEpilogue& e, float acc, int64_t i, int64_t j);

}  // namespace kiln::backends::cpu
