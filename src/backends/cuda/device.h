// CUDA runtime wrappers: every call is checked and a failure becomes a Status
// naming the call; device and pinned buffers, streams and events own their
// handles (RAII, move-only).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include "kiln/status.h"

namespace kiln::backends::cuda {

// Status for a CUDA runtime / cuBLAS / cuDNN result; `call` names the call
// ("cudaMalloc(8388608 bytes)") in the message.
Status check_cuda(cudaError_t err, std::string_view call);
Status check_cublas(cublasStatus_t st, std::string_view call);
Status check_cudnn(cudnnStatus_t st, std::string_view call);

#define KILN_CUDA_CHECK(expr) KILN_RETURN_IF_ERROR(::kiln::backends::cuda::check_cuda((expr), #expr))
#define KILN_CUBLAS_CHECK(expr) KILN_RETURN_IF_ERROR(::kiln::backends::cuda::check_cublas((expr), #expr))
#define KILN_CUDNN_CHECK(expr) KILN_RETURN_IF_ERROR(::kiln::backends::cuda::check_cudnn((expr), #expr))

// Device memory from cudaMalloc.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static Result<DeviceBuffer> allocate(size_t bytes);
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  void* get() const { return ptr_; }
  size_t size() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Page-locked host memory (cudaMallocHost): the staging area for H2D/D2H
// copies, so they are asynchronous and capturable in a CUDA graph.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  static Result<PinnedBuffer> allocate(size_t bytes);
  PinnedBuffer(PinnedBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer();

  void* get() const { return ptr_; }
  size_t size() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class Stream {
 public:
  Stream() = default;
  static Result<Stream> create();
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  cudaStream_t get() const { return s_; }
  Status synchronize() const;

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  Event() = default;
  static Result<Event> create();
  Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  Event& operator=(Event&& o) noexcept;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event();

  cudaEvent_t get() const { return e_; }
  Status record(cudaStream_t stream) const;
  // Milliseconds between `start` and this event (both recorded and complete).
  Result<float> elapsed_since(const Event& start) const;

 private:
  cudaEvent_t e_ = nullptr;
};

// Makes `device` current for the calling thread.
Status set_device(int device);

}  // namespace kiln::backends::cuda
