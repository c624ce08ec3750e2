// Run-time compilation of generated CUDA C (the kiln.Pointwise kernels) with
// NVRTC, and loading of the result with the CUDA runtime's library API
// (cudaLibraryLoadData, CUDA 12+; no driver API, so libcuda is not linked).
// Compiling needs no GPU; loading does.
#pragma once

#include <string>
#include <vector>

#include "kiln/status.h"

namespace kiln::backends::cuda {

// Compiles `source` for sm_<arch> (80 for sm_80) into a cubin, with
// -default-device and no headers. The error names the NVRTC log.
Result<std::vector<char>> nvrtc_compile(const std::string& source, int arch);

// The compute capability of the current device as 10 * major + minor.
Result<int> current_device_arch();

// Opaque handle of a loaded kernel: a cudaKernel_t, which cudaLaunchKernel
// takes as its function pointer.
using LoadedKernel = const void*;

// Compiles (once per source text and arch in this process) and loads
// `kernel_name` from `source` for the current device. Modules stay loaded
// for the life of the process (they are shared by every plan using them).
Result<LoadedKernel> load_generated_kernel(const std::string& source, const std::string& kernel_name);

}  // namespace kiln::backends::cuda
