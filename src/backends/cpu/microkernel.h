// The SGEMM microkernels: one register-blocked MR x NR tile of C per call.
//
// Each ISA's microkernel lives in its own translation unit compiled with that
// ISA's flags (microkernel_<isa>.cc); this header is the only thing they
// share with the rest of Kiln, so it holds plain data and declarations only
// (no inline code that the linker could merge with an ISA-flagged copy).
//
// Operands are packed panels (gemm.h): A is kc x MR (column of MR values per
// k), B is kc x NR, both 64-byte aligned and zero-padded to full panels.
#pragma once

#include <cstdint>

namespace kiln::backends::cpu {

// Activations the microkernels apply in registers. Others (sigmoid, tanh,
// gelu, ...) are applied by the driver on the tile right after the store,
// while it is still in L1.
enum class TileActivation : int32_t {
  kNone = 0,
  kRelu,
  kClip,         // min(max(v, p0), p1)
  kLeakyRelu,    // v >= 0 ? v : p0 * v
  kHardSigmoid,  // max(0, min(1, p0 * v + p1))
  kHardSwish,    // v * max(0, min(1, v / 6 + 0.5))
};

// One full MR x NR tile:
//   v = acc (+ C when load_c)
//   if epilogue: v = v * scale + bias_row[i] + bias_col[j] + residual[i, j];
//                v = act(v); v += residual2[i, j]
//   C = v
struct TileArgs {
  int64_t kc = 0;
  const float* a = nullptr;  // kc x MR packed
  const float* b = nullptr;  // kc x NR packed
  // kc x NR floats the kernel may prefetch into cache while it runs (the
  // next B panel); nullptr for none. Kernels may ignore it.
  const float* prefetch_b = nullptr;
  float* c = nullptr;
  int64_t ldc = 0;
  bool load_c = false;
  bool epilogue = false;
  float scale = 1.0f;
  const float* bias_row = nullptr;  // MR values or nullptr
  const float* bias_col = nullptr;  // NR values or nullptr
  const float* residual = nullptr;  // added before the activation; nullptr for none
  int64_t ldr = 0;
  const float* residual2 = nullptr;  // added after the activation; nullptr for none
  int64_t ldr2 = 0;
  TileActivation act = TileActivation::kNone;
  float p0 = 0.0f;
  float p1 = 0.0f;
};

using MicroKernelFn = void (*)(const TileArgs& t);

// Activations with exp/erf that the driver applies to a stored tile in one
// vectorized pass (float accuracy: a few ulp; erf within 2e-7 absolute).
enum class TileTranscendental : int32_t { kSigmoid, kTanh, kSilu, kGelu, kGeluTanh };
using TileActivateFn = void (*)(float* c, int64_t ldc, int64_t rows, int64_t cols, TileTranscendental act);
// AVX2 + FMA; also used on AVX-512 machines (the tile pass is memory-bound).
void activate_tile_avx2(float* c, int64_t ldc, int64_t rows, int64_t cols, TileTranscendental act);

struct MicroKernel {
  int mr = 0;
  int nr = 0;
  MicroKernelFn fn = nullptr;
};

// Defined in microkernel_<isa>.cc. Call only after detect_isa() allows the ISA.
MicroKernel microkernel_generic();
MicroKernel microkernel_avx2();
MicroKernel microkernel_avx512();
// AVX-512 BF16: the same 14 x 32 tile over panels whose 32-bit slots each
// hold a pair of bfloat16 values along K (low half the even k). Call only
// when cpu_features().avx512bf16 and detect_isa() == kAvx512.
MicroKernel microkernel_avx512bf16();
// Packs rows [0, rows) of a row-major float matrix (row r at src + r *
// row_stride) over K [k0, k_end) into `slots` bf16 pair slots per row, as
// `width` interleaved rows (dst[s * width + r]); rows past `rows` and K past
// k_end are zero. Rounds to nearest even (vcvtne2ps2bf16).
void pack_rows_bf16_avx512(const float* src, int64_t row_stride, int64_t rows, int64_t k0, int64_t k_end, int64_t slots,
                           int width, float* dst);
// dst[j] (32-bit) = bf16(even[j]) | bf16(odd[j]) << 16 for j < n (odd ==
// nullptr: zero high halves): one slot row of a panel from two K rows.
void pair_rows_bf16_avx512(const float* even, const float* odd, int64_t n, float* dst);

// One output row of a stride-1 depthwise conv over the interior columns
// [lo, hi), where every tap is inside the input: y[ox] = sum over ky < kh
// with rows[ky] != nullptr and kx < kw of w[ky * kw + kx] * rows[ky][ox + kx * dw].
// Overwrites y[lo, hi); keeps each output vector in a register across taps.
using DepthwiseRowFn = void (*)(float* y, const float* const* rows, const float* w, int64_t kh, int64_t kw, int64_t dw,
                                int64_t lo, int64_t hi);
void depthwise_row_generic(float* y, const float* const* rows, const float* w, int64_t kh, int64_t kw, int64_t dw,
                           int64_t lo, int64_t hi);
void depthwise_row_avx2(float* y, const float* const* rows, const float* w, int64_t kh, int64_t kw, int64_t dw,
                        int64_t lo, int64_t hi);
void depthwise_row_avx512(float* y, const float* const* rows, const float* w, int64_t kh, int64_t kw, int64_t dw,
                          int64_t lo, int64_t hi);

// Row kernels of the normalization tactics (rows of n contiguous floats,
// all finite; the tactics check). softmax: y = exp(x - max) / sum.
// layernorm: y = (x - mean) / sqrt(var + eps) * scale + bias (bias may be null).
using SoftmaxRowFn = void (*)(const float* x, float* y, int64_t n);
using LayerNormRowFn = void (*)(const float* x, float* y, const float* scale, const float* bias, int64_t n, float eps);
void softmax_row_generic(const float* x, float* y, int64_t n);
void softmax_row_avx2(const float* x, float* y, int64_t n);
void layernorm_row_generic(const float* x, float* y, const float* scale, const float* bias, int64_t n, float eps);
void layernorm_row_avx2(const float* x, float* y, const float* scale, const float* bias, int64_t n, float eps);

// v[i] = float(float16(v[i])) (round to nearest even, subnormals kept, NaN
// quieted): the Cast to float16 and back, bit-exact with core/float_types.h.
// F16C; call only where f16c_supported() (isa.h).
void round_to_f16_f16c(float* v, int64_t n);
// dst[i] = float(src[i]) (IEEE half bits) and dst[i] = half(src[i]) (round
// to nearest even) for i < n; F16C, under the same condition.
void widen_halves_f16c(const uint16_t* src, float* dst, int64_t n);
void narrow_to_halves_f16c(const float* src, uint16_t* dst, int64_t n);

// Register-only FMA loops for measuring the peak: run `iters` iterations
// and return the floating-point operations done (2 per lane per FMA).
double fma_peak_loop_avx2(int64_t iters);
double fma_peak_loop_avx512(int64_t iters);

}  // namespace kiln::backends::cpu
