// Int8 kernels: QuantizeLinear, DequantizeLinear and the int8 GEMM's
// dequantizing epilogue (see kernels_quant.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "backends/cuda/kernels_common.cuh"
#include "backends/cuda/kernels_quant.h"

namespace kiln::backends::cuda::kernels {
namespace {

__device__ __forceinline__ int64_t channel_of(int64_t i, int64_t channels, int64_t inner) {
  return channels == 1 ? 0 : (i / inner) % channels;
}

// Q: the ONNX formula in float32, as the reference computes it for float
// inputs: IEEE division (whatever the compiler flags), round half to even.
template <class X, class Y>
__global__ void quantize_kernel(Y* y, const X* x, int64_t n, int64_t channels, int64_t inner, const float* scale,
                                const int32_t* zp, float lo, float hi) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t c = channel_of(i, channels, inner);
    float z = static_cast<float>(zp[c]);
    float r = rintf(__fdiv_rn(to_f(x[i]), scale[c]));
    float v = isnan(r) ? z : fminf(fmaxf(r + z, lo), hi);
    y[i] = static_cast<Y>(static_cast<int>(v));
  }
}

template <class X, class Y>
__global__ void dequantize_kernel(Y* y, const X* x, int64_t n, int64_t channels, int64_t inner, const float* scale,
                                  const int32_t* zp) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t c = channel_of(i, channels, inner);
    y[i] = from_f<Y>(static_cast<float>(static_cast<int32_t>(x[i]) - zp[c]) * scale[c]);
  }
}

__device__ __forceinline__ float activate(EwOp act, float v, float p0, float p1) {
  switch (act) {
    case EwOp::kRelu:
      return v > 0.0f ? v : 0.0f;
    case EwOp::kGelu:
      return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case EwOp::kGeluTanh:
      return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case EwOp::kClip:
      return fminf(fmaxf(v, p0), p1);
    default:
      return v;
  }
}

template <class T>
__global__ void gemm_epilogue_kernel(T* y, const int32_t* acc, int64_t n, int64_t cols, const float* scale,
                                     const float* bias, const T* z, bool residual_after, EwOp act, float p0, float p1) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t c = i % cols;
    float v = static_cast<float>(acc[i]) * scale[c];
    if (bias != nullptr) v += bias[c];
    if (z != nullptr && !residual_after) v += to_f(z[i]);
    v = activate(act, v, p0, p1);
    if (z != nullptr && residual_after) v += to_f(z[i]);
    y[i] = from_f<T>(v);
  }
}

// One output per thread; a 16x16 block shares nothing (a fallback, not the fast path).
__global__ void int8_gemm_kernel(int32_t* acc, const int* a, const int* w, int64_t m, int64_t n, int64_t k4) {
  int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  int64_t i = blockIdx.y * static_cast<int64_t>(blockDim.y) + threadIdx.y;
  if (i >= m || j >= n) return;
  const int* ar = a + i * k4;
  const int* wr = w + j * k4;
  int sum = 0;
  for (int64_t q = 0; q < k4; ++q) sum = __dp4a(ar[q], wr[q], sum);
  acc[i * n + j] = sum;
}

__global__ void int8_gemm_bytes_kernel(int32_t* acc, const signed char* a, const signed char* w, int64_t m, int64_t n,
                                       int64_t k) {
  int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  int64_t i = blockIdx.y * static_cast<int64_t>(blockDim.y) + threadIdx.y;
  if (i >= m || j >= n) return;
  int sum = 0;
  for (int64_t q = 0; q < k; ++q) sum += static_cast<int>(a[i * k + q]) * static_cast<int>(w[j * k + q]);
  acc[i * n + j] = sum;
}

template <class Y>
__global__ void requantize_kernel(Y* y, const int32_t* acc, int64_t n, int64_t cols, const double* offset,
                                  const double* multiplier, double zp, double lo, double hi, bool relu) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t c = i % cols;
    double v = rint((static_cast<double>(acc[i]) + offset[c]) * multiplier[c]) + zp;
    v = fmin(fmax(v, relu ? fmax(lo, zp) : lo), hi);
    y[i] = static_cast<Y>(static_cast<int>(v));
  }
}

template <class X>
int launch_quantize(const X* x, DType y_t, void* y, int64_t n, int64_t channels, int64_t inner, const float* scale,
                    const int32_t* zp, StreamHandle s) {
  if (y_t == DType::kI8) {
    quantize_kernel<X, signed char><<<grid_for(n), kThreads, 0, s>>>(static_cast<signed char*>(y), x, n, channels,
                                                                     inner, scale, zp, -128.0f, 127.0f);
  } else if (y_t == DType::kU8) {
    quantize_kernel<X, unsigned char><<<grid_for(n), kThreads, 0, s>>>(static_cast<unsigned char*>(y), x, n, channels,
                                                                       inner, scale, zp, 0.0f, 255.0f);
  } else {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

template <class X>
int launch_dequantize(const X* x, DType y_t, void* y, int64_t n, int64_t channels, int64_t inner, const float* scale,
                      const int32_t* zp, StreamHandle s) {
  switch (y_t) {
    case DType::kF32:
      dequantize_kernel<X, float>
          <<<grid_for(n), kThreads, 0, s>>>(static_cast<float*>(y), x, n, channels, inner, scale, zp);
      break;
    case DType::kF16:
      dequantize_kernel<X, __half>
          <<<grid_for(n), kThreads, 0, s>>>(static_cast<__half*>(y), x, n, channels, inner, scale, zp);
      break;
    case DType::kBF16:
      dequantize_kernel<X, __nv_bfloat16>
          <<<grid_for(n), kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(y), x, n, channels, inner, scale, zp);
      break;
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int quantize_linear(DType x_t, const void* x, DType y_t, void* y, int64_t n, int64_t channels, int64_t inner,
                    const float* scale, const int32_t* zp, StreamHandle s) {
  switch (x_t) {
    case DType::kF32:
      return launch_quantize(static_cast<const float*>(x), y_t, y, n, channels, inner, scale, zp, s);
    case DType::kF16:
      return launch_quantize(static_cast<const __half*>(x), y_t, y, n, channels, inner, scale, zp, s);
    case DType::kBF16:
      return launch_quantize(static_cast<const __nv_bfloat16*>(x), y_t, y, n, channels, inner, scale, zp, s);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

int dequantize_linear(DType x_t, const void* x, DType y_t, void* y, int64_t n, int64_t channels, int64_t inner,
                      const float* scale, const int32_t* zp, StreamHandle s) {
  switch (x_t) {
    case DType::kI8:
      return launch_dequantize(static_cast<const signed char*>(x), y_t, y, n, channels, inner, scale, zp, s);
    case DType::kU8:
      return launch_dequantize(static_cast<const unsigned char*>(x), y_t, y, n, channels, inner, scale, zp, s);
    case DType::kI32:
      return launch_dequantize(static_cast<const int32_t*>(x), y_t, y, n, channels, inner, scale, zp, s);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

int int8_gemm_simple(int32_t* acc, const int8_t* a, const int8_t* w, int64_t m, int64_t n, int64_t k, StreamHandle s) {
  if ((n + 15) / 16 > 0x7fffffff || (m + 15) / 16 > 65535) return static_cast<int>(cudaErrorInvalidValue);
  dim3 block(16, 16);
  dim3 grid(static_cast<unsigned>((n + 15) / 16), static_cast<unsigned>((m + 15) / 16));
  bool aligned = k % 4 == 0 && reinterpret_cast<uintptr_t>(a) % 4 == 0 && reinterpret_cast<uintptr_t>(w) % 4 == 0;
  if (aligned) {
    int8_gemm_kernel<<<grid, block, 0, s>>>(acc, reinterpret_cast<const int*>(a), reinterpret_cast<const int*>(w), m, n,
                                            k / 4);
  } else {
    int8_gemm_bytes_kernel<<<grid, block, 0, s>>>(acc, reinterpret_cast<const signed char*>(a),
                                                  reinterpret_cast<const signed char*>(w), m, n, k);
  }
  return static_cast<int>(cudaGetLastError());
}

int int8_gemm_requantize(DType y_t, void* y, const int32_t* acc, int64_t rows, int64_t cols, const double* offset,
                         const double* multiplier, int32_t zp, bool relu, StreamHandle s) {
  int64_t n = rows * cols;
  if (y_t == DType::kI8) {
    requantize_kernel<signed char><<<grid_for(n), kThreads, 0, s>>>(static_cast<signed char*>(y), acc, n, cols, offset,
                                                                    multiplier, zp, -128.0, 127.0, relu);
  } else if (y_t == DType::kU8) {
    requantize_kernel<unsigned char><<<grid_for(n), kThreads, 0, s>>>(static_cast<unsigned char*>(y), acc, n, cols,
                                                                      offset, multiplier, zp, 0.0, 255.0, relu);
  } else {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

int int8_gemm_epilogue(DType y_t, void* y, const int32_t* acc, int64_t rows, int64_t cols, const float* scale,
                       const float* bias, const void* z, bool residual_after, EwOp act, float p0, float p1,
                       StreamHandle s) {
  if (act != EwOp::kIdentity && act != EwOp::kRelu && act != EwOp::kGelu && act != EwOp::kGeluTanh &&
      act != EwOp::kClip) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  int64_t n = rows * cols;
  switch (y_t) {
    case DType::kF32:
      gemm_epilogue_kernel<float><<<grid_for(n), kThreads, 0, s>>>(
          static_cast<float*>(y), acc, n, cols, scale, bias, static_cast<const float*>(z), residual_after, act, p0, p1);
      break;
    case DType::kF16:
      gemm_epilogue_kernel<__half><<<grid_for(n), kThreads, 0, s>>>(static_cast<__half*>(y), acc, n, cols, scale, bias,
                                                                    static_cast<const __half*>(z), residual_after, act,
                                                                    p0, p1);
      break;
    case DType::kBF16:
      gemm_epilogue_kernel<__nv_bfloat16>
          <<<grid_for(n), kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(y), acc, n, cols, scale, bias,
                                            static_cast<const __nv_bfloat16*>(z), residual_after, act, p0, p1);
      break;
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace kiln::backends::cuda::kernels
