#include "server/gpu_devices.h"

#include <fmt/format.h>

#include <map>
#include <mutex>

#ifdef KILN_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "backends/cuda/cuda_backend.h"
#endif

namespace kiln::server {

GpuInventory visible_gpus() {
  GpuInventory inv;
#ifdef KILN_HAVE_CUDA
  inv.count = backends::cuda::device_count();
  if (inv.count == 0) inv.absent_reason = backends::cuda::no_gpu_reason();
#else
  inv.absent_reason = "this build of Kiln has no CUDA backend (built with -DKILN_CUDA=OFF or without nvcc and cuDNN)";
#endif
  return inv;
}

std::string gpu_uuid(int device) {
#ifdef KILN_HAVE_CUDA
  static std::mutex mu;
  static std::map<int, std::string> known;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = known.find(device); it != known.end()) return it->second;
  std::string uuid;
  cudaDeviceProp prop{};
  if (device >= 0 && device < backends::cuda::device_count() && cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
    const auto* b = reinterpret_cast<const unsigned char*>(prop.uuid.bytes);
    uuid = fmt::format(
        "GPU-{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  }
  known.emplace(device, uuid);
  return uuid;
#else
  (void)device;
  return "";
#endif
}

}  // namespace kiln::server
