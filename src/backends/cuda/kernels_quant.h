// The GPU engine's int8 kernels (kernels_quant.cu): ONNX QuantizeLinear and
// DequantizeLinear, and the dequantizing epilogue of an int8 GEMM. Same
// conventions as kernels.h: plain host launchers, preconditions checked by
// the callers, the launch error returned as an int (0 on success).
//
// Scales and zero points are per channel: element i belongs to channel
// (i / inner) % channels (channels = inner = 1 for a per-tensor scale).
// Zero points are int32 so that a uint8 tensor stored shifted to int8
// (q - 128, see plan_ops_quant.cc) carries its zero point minus 128.
#pragma once

#include <cstdint>

#include "backends/cuda/kernels.h"

namespace kiln::backends::cuda::kernels {

// y[i] = saturate(round_half_even(x[i] / scale[c]) + zp[c]) into the range of
// `y_t` (kI8 or kU8); NaN becomes the zero point. x is a float type.
int quantize_linear(DType x_t, const void* x, DType y_t, void* y, int64_t n, int64_t channels, int64_t inner,
                    const float* scale, const int32_t* zp, StreamHandle s);

// y[i] = (x[i] - zp[c]) * scale[c], x kI8, kU8 or kI32, y a float type.
int dequantize_linear(DType x_t, const void* x, DType y_t, void* y, int64_t n, int64_t channels, int64_t inner,
                      const float* scale, const int32_t* zp, StreamHandle s);

// The epilogue of an int8 GEMM: for acc [rows, cols] (int32, row-major),
//   v = float(acc[r, c]) * scale[c] + bias[c]   (bias optional)
//   v = v + z[i] unless residual_after; v = act(v); v = v + z[i] if residual_after
// written to y (a float type, z of the same type, optional). act is one of
// kIdentity, kRelu, kGelu, kGeluTanh, kClip (p0/p1 the bounds); others fail
// with cudaErrorInvalidValue.
int int8_gemm_epilogue(DType y_t, void* y, const int32_t* acc, int64_t rows, int64_t cols, const float* scale,
                       const float* bias, const void* z, bool residual_after, EwOp act, float p0, float p1,
                       StreamHandle s);

// The requantizing epilogue of kiln.QGemm, exactly its reference's:
//   q = saturate(round_half_even((acc[r, c] + offset[c]) * multiplier[c]) + zp)   (in float64)
// into kI8 [-128, 127] or kU8 [0, 255]; with `relu`, q = max(q, zp).
int int8_gemm_requantize(DType y_t, void* y, const int32_t* acc, int64_t rows, int64_t cols, const double* offset,
                         const double* multiplier, int32_t zp, bool relu, StreamHandle s);

// acc[m, n] = sum_k a[m, k] * w[n, k] (int8 in, int32 out, row-major): a
// plain kernel (dp4a when k is a multiple of 4), for GEMMs cuBLASLt's int8
// kernels do not take.
int int8_gemm_simple(int32_t* acc, const int8_t* a, const int8_t* w, int64_t m, int64_t n, int64_t k, StreamHandle s);

}  // namespace kiln::backends::cuda::kernels
