#include "server/gpu_devices.h"

#ifdef KILN_HAVE_CUDA
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

}  // namespace kiln::server
