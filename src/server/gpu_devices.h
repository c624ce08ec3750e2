// The GPUs the server can place model instances on (instance_group
// KIND_GPU): how many CUDA devices this process sees, and why none when
// there are none (no driver, no device, or a build without the CUDA backend).
#pragma once

#include <string>

namespace kiln::server {

struct GpuInventory {
  int count = 0;              // CUDA devices visible to the process (0..count-1)
  std::string absent_reason;  // when count is 0: "no GPU: ..." or why the build cannot use one
};

// The process's GPUs (cached by the CUDA backend after the first call).
GpuInventory visible_gpus();

// "GPU-<uuid>" of CUDA device `device`, as NVML and nvidia-smi print it;
// "" when there is no such device (or no CUDA backend). Cached.
std::string gpu_uuid(int device);

}  // namespace kiln::server
