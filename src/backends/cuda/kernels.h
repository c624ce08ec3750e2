// The GPU engine's own CUDA kernels, behind plain host launchers (no CUDA
// types beyond the stream). Preconditions, checked by the callers (the
// engine's steps) before launch: pointers are device pointers of the stated
// element type and size, counts are positive and fit the launch grid, ranks
// are at most kMaxRank. Floating kernels compute in float whatever the
// storage type. Launchers return the launch error (cudaGetLastError) as an
// int, 0 on success; the engine turns it into a Status naming the step.
#pragma once

#include <cstdint>

struct CUstream_st;

namespace kiln::backends::cuda::kernels {

using StreamHandle = CUstream_st*;

inline constexpr int kMaxRank = 6;

// Storage types the kernels know.
enum class DType : int { kF32, kF16, kBF16, kI64, kI32, kI8, kU8, kBool, kF64 };

// Element-wise operations. Unary ops ignore the second operand; kClip uses
// p0/p1 as min/max, kLeakyRelu p0 as alpha, kHardSigmoid p0/p1 as alpha/beta.
enum class EwOp : int {
  // unary
  kIdentity,
  kRelu,
  kSigmoid,
  kTanh,
  kErf,
  kSqrt,
  kExp,
  kLog,
  kAbs,
  kNeg,
  kReciprocal,
  kClip,
  kLeakyRelu,
  kHardSigmoid,
  kHardSwish,
  kSilu,
  kGelu,
  kGeluTanh,
  kFloor,
  kCeil,
  // binary
  kAdd,
  kSub,
  kMul,
  kDiv,
  kPow,
  kMax,
  kMin,
};
inline bool is_binary(EwOp op) { return static_cast<int>(op) >= static_cast<int>(EwOp::kAdd); }

// Output dims and per-operand element strides (0 where the operand
// broadcasts), rank <= kMaxRank, leading unused dims padded with 1.
struct EwShape {
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t a_strides[kMaxRank] = {};
  int64_t b_strides[kMaxRank] = {};
};

// out[i] = op(a[...], b[...]) over `numel` outputs of a float type. When
// `flat` is true, a and b are read at i (or at 0 when a_scalar / b_scalar)
// and `shape` is ignored.
int elementwise(DType t, EwOp op, void* out, const void* a, const void* b, int64_t numel, bool flat, bool a_scalar,
                bool b_scalar, const EwShape& shape, float p0, float p1, StreamHandle s);

// dst[i] = convert(src[i]) for i < n.
int cast(DType src_t, const void* src, DType dst_t, void* dst, int64_t n, StreamHandle s);

// Per-channel epilogue over `n` elements of a float type; channel of element
// i is (i / inner) % channels:
//   v = x[i] * scale[c] + bias[c]   (scale/bias float, each optional)
//   v = v + z[i] unless residual_after; v = act(v); v = v + z[i] if residual_after
// y may equal x.
int channel_epilogue(DType t, void* y, const void* x, int64_t n, int64_t channels, int64_t inner, const float* scale,
                     const float* bias, const void* z, bool residual_after, EwOp act, float p0, float p1,
                     StreamHandle s);

// dst (contiguous, dims out_dims) = src[offset + sum_d idx_d * src_strides[d]]
// for any element size of 1, 2, 4 or 8 bytes; strides may be 0 (broadcast).
int strided_copy(int elem_size, void* dst, const void* src, int rank, const int64_t* out_dims,
                 const int64_t* src_strides, int64_t src_offset, StreamHandle s);

// out[o, j, k] = data[o, idx[j], k] with data [outer, axis_dim, inner];
// negative indices count from the end, out-of-range ones are clamped.
int gather(int elem_size, void* out, const void* data, const int64_t* indices, int64_t outer, int64_t axis_dim,
           int64_t n_indices, int64_t inner, StreamHandle s);

// Softmax over the last dimension of [rows, cols].
int softmax_rows(DType t, void* y, const void* x, int64_t rows, int64_t cols, StreamHandle s);

// Layer normalization over the last dimension of [rows, cols]; gamma/beta are
// float [cols] (beta optional).
int layernorm_rows(DType t, void* y, const void* x, const float* gamma, const float* beta, int64_t rows, int64_t cols,
                   float epsilon, StreamHandle s);

struct PoolParams {
  int64_t n, h, w, c, oh, ow;
  int64_t kh, kw, sh, sw, pad_top, pad_left, pad_bottom, pad_right, dh, dw;
  bool is_max;
  bool count_include_pad;  // padded taps (not the ceil_mode overhang) count toward the divisor
  bool channels_last;      // x and y are NHWC (else NCHW)
};
// 2-D max/average pooling.
int pool2d(DType t, void* y, const void* x, const PoolParams& p, StreamHandle s);

// Mean over the spatial positions: x [n, c, hw] (channels_last: [n, hw, c])
// to y [n, c].
int global_avg_pool(DType t, void* y, const void* x, int64_t n, int64_t c, int64_t hw, bool channels_last,
                    StreamHandle s);

}  // namespace kiln::backends::cuda::kernels
