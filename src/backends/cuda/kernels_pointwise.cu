// Element-wise, conversion, epilogue, copy and gather kernels (see kernels.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "backends/cuda/kernels.h"
#include "backends/cuda/kernels_common.cuh"

namespace kiln::backends::cuda::kernels {
namespace {

// Kernel arguments are passed by value: dims and strides travel in a struct.
struct StridedDims {
  int64_t dims[kMaxRank];
  int64_t strides[kMaxRank];
};

__device__ __forceinline__ float apply(EwOp op, float a, float b, float p0, float p1) {
  switch (op) {
    case EwOp::kIdentity:
      return a;
    case EwOp::kRelu:
      return a > 0.0f ? a : 0.0f;
    case EwOp::kSigmoid:
      return 1.0f / (1.0f + expf(-a));
    case EwOp::kTanh:
      return tanhf(a);
    case EwOp::kErf:
      return erff(a);
    case EwOp::kSqrt:
      return sqrtf(a);
    case EwOp::kExp:
      return expf(a);
    case EwOp::kLog:
      return logf(a);
    case EwOp::kAbs:
      return fabsf(a);
    case EwOp::kNeg:
      return -a;
    case EwOp::kReciprocal:
      return 1.0f / a;
    case EwOp::kClip:
      return fminf(fmaxf(a, p0), p1);
    case EwOp::kLeakyRelu:
      return a >= 0.0f ? a : p0 * a;
    case EwOp::kHardSigmoid:
      return fmaxf(0.0f, fminf(1.0f, p0 * a + p1));
    case EwOp::kHardSwish:
      return a * fmaxf(0.0f, fminf(1.0f, a / 6.0f + 0.5f));
    case EwOp::kSilu:
      return a / (1.0f + expf(-a));
    case EwOp::kGelu:
      return 0.5f * a * (1.0f + erff(a * 0.70710678118654752f));
    case EwOp::kGeluTanh:
      return 0.5f * a * (1.0f + tanhf(0.79788456080286536f * (a + 0.044715f * a * a * a)));
    case EwOp::kFloor:
      return floorf(a);
    case EwOp::kCeil:
      return ceilf(a);
    case EwOp::kAdd:
      return a + b;
    case EwOp::kSub:
      return a - b;
    case EwOp::kMul:
      return a * b;
    case EwOp::kDiv:
      return a / b;
    case EwOp::kPow:
      return powf(a, b);
    case EwOp::kMax:
      return fmaxf(a, b);
    case EwOp::kMin:
      return fminf(a, b);
  }
  return a;
}

template <class T>
__global__ void ew_flat(EwOp op, T* out, const T* a, const T* b, int64_t n, bool a_scalar, bool b_scalar, float p0,
                        float p1) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float va = to_f(a[a_scalar ? 0 : i]);
    float vb = b != nullptr ? to_f(b[b_scalar ? 0 : i]) : 0.0f;
    out[i] = from_f<T>(apply(op, va, vb, p0, p1));
  }
}

template <class T>
__global__ void ew_strided(EwOp op, T* out, const T* a, const T* b, int64_t n, EwShape sh, float p0, float p1) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t rem = i, oa = 0, ob = 0;
    for (int d = sh.rank - 1; d >= 0; --d) {
      int64_t idx = rem % sh.dims[d];
      rem /= sh.dims[d];
      oa += idx * sh.a_strides[d];
      ob += idx * sh.b_strides[d];
    }
    float va = to_f(a[oa]);
    float vb = b != nullptr ? to_f(b[ob]) : 0.0f;
    out[i] = from_f<T>(apply(op, va, vb, p0, p1));
  }
}

template <class T>
void launch_ew(EwOp op, void* out, const void* a, const void* b, int64_t n, bool flat, bool a_scalar, bool b_scalar,
               const EwShape& sh, float p0, float p1, StreamHandle s) {
  if (flat) {
    ew_flat<T><<<grid_for(n), kThreads, 0, s>>>(op, static_cast<T*>(out), static_cast<const T*>(a),
                                                static_cast<const T*>(b), n, a_scalar, b_scalar, p0, p1);
  } else {
    ew_strided<T><<<grid_for(n), kThreads, 0, s>>>(op, static_cast<T*>(out), static_cast<const T*>(a),
                                                   static_cast<const T*>(b), n, sh, p0, p1);
  }
}

// Conversion through double for every type pair (exact for the integer
// ranges that matter here, and for every float type).
__device__ __forceinline__ double load_any(DType t, const void* p, int64_t i) {
  switch (t) {
    case DType::kF32:
      return static_cast<const float*>(p)[i];
    case DType::kF16:
      return __half2float(static_cast<const __half*>(p)[i]);
    case DType::kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::kI64:
      return static_cast<double>(static_cast<const long long*>(p)[i]);
    case DType::kI32:
      return static_cast<const int*>(p)[i];
    case DType::kI8:
      return static_cast<const signed char*>(p)[i];
    case DType::kU8:
      return static_cast<const unsigned char*>(p)[i];
    case DType::kBool:
      return static_cast<const unsigned char*>(p)[i] != 0 ? 1.0 : 0.0;
    case DType::kF64:
      return static_cast<const double*>(p)[i];
  }
  return 0.0;
}

__device__ __forceinline__ void store_any(DType t, void* p, int64_t i, double v) {
  switch (t) {
    case DType::kF32:
      static_cast<float*>(p)[i] = static_cast<float>(v);
      break;
    case DType::kF16:
      static_cast<__half*>(p)[i] = __double2half(v);
      break;
    case DType::kBF16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(static_cast<float>(v));
      break;
    case DType::kI64:
      static_cast<long long*>(p)[i] = static_cast<long long>(v);
      break;
    case DType::kI32:
      static_cast<int*>(p)[i] = static_cast<int>(v);
      break;
    case DType::kI8:
      static_cast<signed char*>(p)[i] = static_cast<signed char>(v);
      break;
    case DType::kU8:
      static_cast<unsigned char*>(p)[i] = static_cast<unsigned char>(v);
      break;
    case DType::kBool:
      static_cast<unsigned char*>(p)[i] = v != 0.0 ? 1 : 0;
      break;
    case DType::kF64:
      static_cast<double*>(p)[i] = v;
      break;
  }
}

__global__ void cast_kernel(DType st, const void* src, DType dt, void* dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (st == DType::kI64 && dt == DType::kI64) {
      static_cast<long long*>(dst)[i] = static_cast<const long long*>(src)[i];
    } else {
      store_any(dt, dst, i, load_any(st, src, i));
    }
  }
}

// I is the index type: 32-bit when the tensor allows it (integer division is
// the costly part of this memory-bound kernel).
template <class T, class I>
__global__ void epilogue_kernel(T* y, const T* x, I n, I channels, I inner, const float* scale, const float* bias,
                                const T* z, bool residual_after, EwOp act, float p0, float p1) {
  for (I i = blockIdx.x * static_cast<I>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<I>(gridDim.x) * blockDim.x) {
    I c = (inner == 1 ? i : i / inner) % channels;
    float v = to_f(x[i]);
    if (scale != nullptr) v *= scale[c];
    if (bias != nullptr) v += bias[c];
    if (z != nullptr && !residual_after) v += to_f(z[i]);
    v = apply(act, v, 0.0f, p0, p1);
    if (z != nullptr && residual_after) v += to_f(z[i]);
    y[i] = from_f<T>(v);
  }
}

template <class T>
void launch_epilogue(void* y, const void* x, int64_t n, int64_t channels, int64_t inner, const float* scale,
                     const float* bias, const void* z, bool residual_after, EwOp act, float p0, float p1,
                     StreamHandle s) {
  if (n < (int64_t{1} << 31)) {
    epilogue_kernel<T, uint32_t><<<grid_for(n), kThreads, 0, s>>>(
        static_cast<T*>(y), static_cast<const T*>(x), static_cast<uint32_t>(n), static_cast<uint32_t>(channels),
        static_cast<uint32_t>(inner), scale, bias, static_cast<const T*>(z), residual_after, act, p0, p1);
  } else {
    epilogue_kernel<T, int64_t><<<grid_for(n), kThreads, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x), n,
                                                                 channels, inner, scale, bias, static_cast<const T*>(z),
                                                                 residual_after, act, p0, p1);
  }
}

template <class E>
__global__ void strided_copy_kernel(E* dst, const E* src, int64_t n, int rank, StridedDims dims, int64_t offset) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t rem = i, o = offset;
    for (int d = rank - 1; d >= 0; --d) {
      int64_t idx = rem % dims.dims[d];
      rem /= dims.dims[d];
      o += idx * dims.strides[d];
    }
    dst[i] = src[o];
  }
}

template <class E>
__global__ void gather_kernel(E* out, const E* data, const int64_t* indices, int64_t outer, int64_t axis_dim,
                              int64_t n_idx, int64_t inner) {
  int64_t n = outer * n_idx * inner;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t k = i % inner;
    int64_t j = (i / inner) % n_idx;
    int64_t o = i / (inner * n_idx);
    int64_t idx = indices[j];
    if (idx < 0) idx += axis_dim;
    idx = idx < 0 ? 0 : (idx >= axis_dim ? axis_dim - 1 : idx);
    out[i] = data[(o * axis_dim + idx) * inner + k];
  }
}

}  // namespace

int elementwise(DType t, EwOp op, void* out, const void* a, const void* b, int64_t numel, bool flat, bool a_scalar,
                bool b_scalar, const EwShape& shape, float p0, float p1, StreamHandle s) {
  switch (t) {
    case DType::kF32:
      launch_ew<float>(op, out, a, b, numel, flat, a_scalar, b_scalar, shape, p0, p1, s);
      break;
    case DType::kF16:
      launch_ew<__half>(op, out, a, b, numel, flat, a_scalar, b_scalar, shape, p0, p1, s);
      break;
    case DType::kBF16:
      launch_ew<__nv_bfloat16>(op, out, a, b, numel, flat, a_scalar, b_scalar, shape, p0, p1, s);
      break;
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

int cast(DType src_t, const void* src, DType dst_t, void* dst, int64_t n, StreamHandle s) {
  cast_kernel<<<grid_for(n), kThreads, 0, s>>>(src_t, src, dst_t, dst, n);
  return static_cast<int>(cudaGetLastError());
}

int channel_epilogue(DType t, void* y, const void* x, int64_t n, int64_t channels, int64_t inner, const float* scale,
                     const float* bias, const void* z, bool residual_after, EwOp act, float p0, float p1,
                     StreamHandle s) {
  switch (t) {
    case DType::kF32:
      launch_epilogue<float>(y, x, n, channels, inner, scale, bias, z, residual_after, act, p0, p1, s);
      break;
    case DType::kF16:
      launch_epilogue<__half>(y, x, n, channels, inner, scale, bias, z, residual_after, act, p0, p1, s);
      break;
    case DType::kBF16:
      launch_epilogue<__nv_bfloat16>(y, x, n, channels, inner, scale, bias, z, residual_after, act, p0, p1, s);
      break;
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

int strided_copy(int elem_size, void* dst, const void* src, int rank, const int64_t* out_dims,
                 const int64_t* src_strides, int64_t src_offset, StreamHandle s) {
  StridedDims d{};
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) {
    d.dims[i] = out_dims[i];
    d.strides[i] = src_strides[i];
    n *= out_dims[i];
  }
  if (n == 0) return 0;
  switch (elem_size) {
    case 1:
      strided_copy_kernel<unsigned char><<<grid_for(n), kThreads, 0, s>>>(
          static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), n, rank, d, src_offset);
      break;
    case 2:
      strided_copy_kernel<unsigned short><<<grid_for(n), kThreads, 0, s>>>(
          static_cast<unsigned short*>(dst), static_cast<const unsigned short*>(src), n, rank, d, src_offset);
      break;
    case 4:
      strided_copy_kernel<unsigned int><<<grid_for(n), kThreads, 0, s>>>(
          static_cast<unsigned int*>(dst), static_cast<const unsigned int*>(src), n, rank, d, src_offset);
      break;
    case 8:
      strided_copy_kernel<unsigned long long><<<grid_for(n), kThreads, 0, s>>>(
          static_cast<unsigned long long*>(dst), static_cast<const unsigned long long*>(src), n, rank, d, src_offset);
      break;
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

int gather(int elem_size, void* out, const void* data, const int64_t* indices, int64_t outer, int64_t axis_dim,
           int64_t n_indices, int64_t inner, StreamHandle s) {
  int64_t n = outer * n_indices * inner;
  if (n == 0) return 0;
  switch (elem_size) {
    case 1:
      gather_kernel<unsigned char><<<grid_for(n), kThreads, 0, s>>>(static_cast<unsigned char*>(out),
                                                                    static_cast<const unsigned char*>(data), indices,
                                                                    outer, axis_dim, n_indices, inner);
      break;
    case 2:
      gather_kernel<unsigned short><<<grid_for(n), kThreads, 0, s>>>(static_cast<unsigned short*>(out),
                                                                     static_cast<const unsigned short*>(data), indices,
                                                                     outer, axis_dim, n_indices, inner);
      break;
    case 4:
      gather_kernel<unsigned int><<<grid_for(n), kThreads, 0, s>>>(static_cast<unsigned int*>(out),
                                                                   static_cast<const unsigned int*>(data), indices,
                                                                   outer, axis_dim, n_indices, inner);
      break;
    case 8:
      gather_kernel<unsigned long long><<<grid_for(n), kThreads, 0, s>>>(static_cast<unsigned long long*>(out),
                                                                         static_cast<const unsigned long long*>(data),
                                                                         indices, outer, axis_dim, n_indices, inner);
      break;
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace kiln::backends::cuda::kernels
