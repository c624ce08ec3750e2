// Row reductions (softmax, layer norm) and pooling kernels (see kernels.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>

#include "backends/cuda/kernels.h"
#include "backends/cuda/kernels_common.cuh"

namespace kiln::backends::cuda::kernels {
namespace {

constexpr int kRowThreads = 256;

inline unsigned row_grid(int64_t rows) { return static_cast<unsigned>(rows > (1 << 30) ? (1 << 30) : rows); }

// Block-wide reduction of one float per thread (sum or max); every thread gets the result.
template <bool kMax>
__device__ float block_reduce(float v) {
  __shared__ float partial[kRowThreads / 32];
  __shared__ float result;
  for (int o = 16; o > 0; o >>= 1) {
    float other = __shfl_xor_sync(0xffffffffu, v, o);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kRowThreads / 32 ? partial[lane] : (kMax ? -FLT_MAX : 0.0f);
    for (int o = 16; o > 0; o >>= 1) {
      float other = __shfl_xor_sync(0xffffffffu, v, o);
      v = kMax ? fmaxf(v, other) : v + other;
    }
    if (lane == 0) result = v;
  }
  __syncthreads();
  float r = result;
  __syncthreads();  // partial/result may be reused by the next reduction
  return r;
}

template <class T>
__global__ void softmax_kernel(T* y, const T* x, int64_t rows, int64_t cols) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    float m = -FLT_MAX;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, to_f(xr[j]));
    m = block_reduce<true>(m);
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += expf(to_f(xr[j]) - m);
    sum = block_reduce<false>(sum);
    float inv = 1.0f / sum;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = from_f<T>(expf(to_f(xr[j]) - m) * inv);
  }
}

template <class T>
__global__ void layernorm_kernel(T* y, const T* x, const float* gamma, const float* beta, int64_t rows, int64_t cols,
                                 float eps) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += to_f(xr[j]);
    float mean = block_reduce<false>(sum) / static_cast<float>(cols);
    float sq = 0.0f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      float d = to_f(xr[j]) - mean;
      sq += d * d;
    }
    float var = block_reduce<false>(sq) / static_cast<float>(cols);
    float inv = rsqrtf(var + eps);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      float v = (to_f(xr[j]) - mean) * inv * gamma[j];
      if (beta != nullptr) v += beta[j];
      yr[j] = from_f<T>(v);
    }
  }
}

template <class T>
__global__ void pool_kernel(T* y, const T* x, PoolParams p) {
  int64_t n_out = p.n * p.oh * p.ow * p.c;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n_out;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t c, ow, oh, n;
    if (p.channels_last) {
      c = i % p.c;
      ow = (i / p.c) % p.ow;
      oh = (i / (p.c * p.ow)) % p.oh;
      n = i / (p.c * p.ow * p.oh);
    } else {
      ow = i % p.ow;
      oh = (i / p.ow) % p.oh;
      c = (i / (p.ow * p.oh)) % p.c;
      n = i / (p.ow * p.oh * p.c);
    }
    float acc = p.is_max ? -FLT_MAX : 0.0f;
    int64_t count = 0;
    for (int64_t ky = 0; ky < p.kh; ++ky) {
      int64_t iy = oh * p.sh - p.pad_top + ky * p.dh;
      for (int64_t kx = 0; kx < p.kw; ++kx) {
        int64_t ix = ow * p.sw - p.pad_left + kx * p.dw;
        if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w) {
          int64_t off = p.channels_last ? ((n * p.h + iy) * p.w + ix) * p.c + c : ((n * p.c + c) * p.h + iy) * p.w + ix;
          float v = to_f(x[off]);
          acc = p.is_max ? fmaxf(acc, v) : acc + v;
          ++count;
        } else if (p.count_include_pad && iy < p.h + p.pad_bottom && ix < p.w + p.pad_right) {
          ++count;  // an explicit padding tap (zero); the ceil_mode overhang never counts
        }
      }
    }
    float out = p.is_max ? acc : (count > 0 ? acc / static_cast<float>(count) : 0.0f);
    y[i] = from_f<T>(out);
  }
}

template <class T>
__global__ void gap_kernel(T* y, const T* x, int64_t n, int64_t c, int64_t hw, bool channels_last) {
  // One thread per (n, c) output; fine for the classifier heads it serves.
  int64_t total = n * c;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t ch = i % c, b = i / c;
    float sum = 0.0f;
    for (int64_t k = 0; k < hw; ++k) {
      sum += channels_last ? to_f(x[(b * hw + k) * c + ch]) : to_f(x[(b * c + ch) * hw + k]);
    }
    y[i] = from_f<T>(sum / static_cast<float>(hw));
  }
}

}  // namespace

#define KILN_FLOAT_DISPATCH(t, launch)                \
  switch (t) {                                        \
    case DType::kF32: {                               \
      using T = float;                                \
      launch;                                         \
      break;                                          \
    }                                                 \
    case DType::kF16: {                               \
      using T = __half;                               \
      launch;                                         \
      break;                                          \
    }                                                 \
    case DType::kBF16: {                              \
      using T = __nv_bfloat16;                        \
      launch;                                         \
      break;                                          \
    }                                                 \
    default:                                          \
      return static_cast<int>(cudaErrorInvalidValue); \
  }

int softmax_rows(DType t, void* y, const void* x, int64_t rows, int64_t cols, StreamHandle s) {
  if (rows == 0) return 0;
  KILN_FLOAT_DISPATCH(t, (softmax_kernel<T><<<row_grid(rows), kRowThreads, 0, s>>>(
                             static_cast<T*>(y), static_cast<const T*>(x), rows, cols)))
  return static_cast<int>(cudaGetLastError());
}

int layernorm_rows(DType t, void* y, const void* x, const float* gamma, const float* beta, int64_t rows, int64_t cols,
                   float epsilon, StreamHandle s) {
  if (rows == 0) return 0;
  KILN_FLOAT_DISPATCH(t, (layernorm_kernel<T><<<row_grid(rows), kRowThreads, 0, s>>>(
                             static_cast<T*>(y), static_cast<const T*>(x), gamma, beta, rows, cols, epsilon)))
  return static_cast<int>(cudaGetLastError());
}

int pool2d(DType t, void* y, const void* x, const PoolParams& p, StreamHandle s) {
  int64_t n = p.n * p.oh * p.ow * p.c;
  if (n == 0) return 0;
  KILN_FLOAT_DISPATCH(
      t, (pool_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x), p)))
  return static_cast<int>(cudaGetLastError());
}

int global_avg_pool(DType t, void* y, const void* x, int64_t n, int64_t c, int64_t hw, bool channels_last,
                    StreamHandle s) {
  if (n * c == 0) return 0;
  KILN_FLOAT_DISPATCH(t, (gap_kernel<T><<<grid_for(n * c), kThreads, 0, s>>>(
                             static_cast<T*>(y), static_cast<const T*>(x), n, c, hw, channels_last)))
  return static_cast<int>(cudaGetLastError());
}

}  // namespace kiln::backends::cuda::kernels
