#include "backends/cuda/device.h"

#include <mutex>
#include <string>

#include "backends/cuda/cuda_backend.h"
#include "core/error.h"

namespace kiln::backends::cuda {

Status check_cuda(cudaError_t err, std::string_view call) {
  if (err == cudaSuccess) return Status::ok();
  // Clear the sticky-free error state so the next call does not report it again.
  (void)cudaGetLastError();
  StatusCode code = err == cudaErrorMemoryAllocation ? StatusCode::kResourceExhausted : StatusCode::kInternal;
  return Status(code, fmt::format("{} failed: {} ({})", call, cudaGetErrorString(err), cudaGetErrorName(err)));
}

Status check_cublas(cublasStatus_t st, std::string_view call) {
  if (st == CUBLAS_STATUS_SUCCESS) return Status::ok();
  StatusCode code = st == CUBLAS_STATUS_NOT_SUPPORTED  ? StatusCode::kUnimplemented
                    : st == CUBLAS_STATUS_ALLOC_FAILED ? StatusCode::kResourceExhausted
                                                       : StatusCode::kInternal;
  return Status(code, fmt::format("{} failed: cuBLAS status {}", call, static_cast<int>(st)));
}

Status check_cudnn(cudnnStatus_t st, std::string_view call) {
  if (st == CUDNN_STATUS_SUCCESS) return Status::ok();
  StatusCode code = st == CUDNN_STATUS_NOT_SUPPORTED  ? StatusCode::kUnimplemented
                    : st == CUDNN_STATUS_ALLOC_FAILED ? StatusCode::kResourceExhausted
                                                      : StatusCode::kInternal;
  return Status(code, fmt::format("{} failed: {}", call, cudnnGetErrorString(st)));
}

namespace {
struct DeviceQuery {
  int count = 0;
  std::string reason;
};

const DeviceQuery& query() {
  static const DeviceQuery q = [] {
    DeviceQuery r;
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      r.reason = fmt::format("no GPU: cudaGetDeviceCount failed: {}", cudaGetErrorString(err));
    } else if (n <= 0) {
      r.reason = "no GPU: cudaGetDeviceCount reports 0 devices";
    } else {
      r.count = n;
    }
    return r;
  }();
  return q;
}
}  // namespace

int device_count() { return query().count; }
std::string no_gpu_reason() { return query().reason; }

std::string device_name(int device) {
  if (device < 0 || device >= device_count()) return "";
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return "";
  }
  return fmt::format("{} sm_{}{}", prop.name, prop.major, prop.minor);
}

Status set_device(int device) {
  if (device < 0 || device >= device_count()) {
    return invalid_argument("CUDA device {} does not exist ({} present{})", device, device_count(),
                            device_count() == 0 ? "; " + no_gpu_reason() : "");
  }
  return check_cuda(cudaSetDevice(device), fmt::format("cudaSetDevice({})", device));
}

Result<DeviceBuffer> DeviceBuffer::allocate(size_t bytes) {
  DeviceBuffer b;
  if (bytes == 0) return b;
  KILN_RETURN_IF_ERROR(check_cuda(cudaMalloc(&b.ptr_, bytes), fmt::format("cudaMalloc({} bytes)", bytes)));
  b.bytes_ = bytes;
  return b;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr) (void)cudaFree(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_ != nullptr) (void)cudaFree(ptr_);
}

Result<PinnedBuffer> PinnedBuffer::allocate(size_t bytes) {
  PinnedBuffer b;
  if (bytes == 0) return b;
  KILN_RETURN_IF_ERROR(check_cuda(cudaMallocHost(&b.ptr_, bytes), fmt::format("cudaMallocHost({} bytes)", bytes)));
  b.bytes_ = bytes;
  return b;
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr) (void)cudaFreeHost(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

PinnedBuffer::~PinnedBuffer() {
  if (ptr_ != nullptr) (void)cudaFreeHost(ptr_);
}

Result<Stream> Stream::create() {
  Stream s;
  KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&s.s_, cudaStreamNonBlocking));
  return s;
}

Stream& Stream::operator=(Stream&& o) noexcept {
  if (this != &o) {
    if (s_ != nullptr) (void)cudaStreamDestroy(s_);
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}

Stream::~Stream() {
  if (s_ != nullptr) (void)cudaStreamDestroy(s_);
}

Status Stream::synchronize() const { return check_cuda(cudaStreamSynchronize(s_), "cudaStreamSynchronize"); }

Result<Event> Event::create() {
  Event e;
  KILN_CUDA_CHECK(cudaEventCreate(&e.e_));
  return e;
}

Event& Event::operator=(Event&& o) noexcept {
  if (this != &o) {
    if (e_ != nullptr) (void)cudaEventDestroy(e_);
    e_ = std::exchange(o.e_, nullptr);
  }
  return *this;
}

Event::~Event() {
  if (e_ != nullptr) (void)cudaEventDestroy(e_);
}

Status Event::record(cudaStream_t stream) const { return check_cuda(cudaEventRecord(e_, stream), "cudaEventRecord"); }

Result<float> Event::elapsed_since(const Event& start) const {
  float ms = 0.0f;
  KILN_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
  return ms;
}

}  // namespace kiln::backends::cuda
