// The CUDA backend: a GPU engine that runs a whole optimized ir::Graph on an
// NVIDIA GPU (cuDNN convolutions, cuBLASLt GEMMs, own kernels for the rest),
// and GPU tactics offered to the builder. Compiled only when nvcc and cuDNN
// are found (KILN_HAVE_CUDA); every entry point works without a GPU present
// and reports its absence as a value, never a crash.
#pragma once

#include <string>

namespace kiln::backends {
class TacticRegistry;
}

namespace kiln::backends::cuda {

// Number of CUDA devices usable by this process; 0 when there is no driver,
// no device, or the runtime fails to initialize. Cached after the first call.
int device_count();
// "no GPU: <why>" when device_count() is 0, else "".
std::string no_gpu_reason();
// "<name> sm_<major><minor>" of a device ("NVIDIA H100 80GB HBM3 sm_90"); "" when absent.
std::string device_name(int device);

// Adds the GPU tactics (cuBLASLt MatMul/Gemm) to `registry`. They are always
// registered; their supports() is false when no GPU is present.
void register_tactics(TacticRegistry& registry);

}  // namespace kiln::backends::cuda
