#include "backends/cuda/nvrtc_compile.h"

#include <cuda_runtime_api.h>
#include <nvrtc.h>

#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "backends/cuda/device.h"
#include "core/error.h"

namespace kiln::backends::cuda {
namespace {

Status check_nvrtc(nvrtcResult r, std::string_view call) {
  if (r == NVRTC_SUCCESS) return Status::ok();
  return internal_error("{} failed: {}", call, nvrtcGetErrorString(r));
}

// nvrtcProgram, destroyed on every path.
class Program {
 public:
  ~Program() {
    if (p_ != nullptr) (void)nvrtcDestroyProgram(&p_);
  }
  nvrtcProgram* addr() { return &p_; }
  nvrtcProgram get() const { return p_; }

 private:
  nvrtcProgram p_ = nullptr;
};

struct Loaded {
  cudaLibrary_t library = nullptr;
  cudaKernel_t kernel = nullptr;
};

}  // namespace

Result<std::vector<char>> nvrtc_compile(const std::string& source, int arch) {
  if (arch <= 0) return invalid_argument("bad GPU architecture sm_{}", arch);
  Program prog;
  KILN_RETURN_IF_ERROR(check_nvrtc(
      nvrtcCreateProgram(prog.addr(), source.c_str(), "kiln_generated.cu", 0, nullptr, nullptr), "nvrtcCreateProgram"));
  std::string arch_opt = fmt::format("--gpu-architecture=sm_{}", arch);
  const char* opts[] = {arch_opt.c_str(), "-default-device"};
  nvrtcResult rc = nvrtcCompileProgram(prog.get(), 2, opts);
  if (rc != NVRTC_SUCCESS) {
    size_t log_size = 0;
    std::string log;
    if (nvrtcGetProgramLogSize(prog.get(), &log_size) == NVRTC_SUCCESS && log_size > 1) {
      log.resize(log_size);
      if (nvrtcGetProgramLog(prog.get(), log.data()) != NVRTC_SUCCESS) log.clear();
      while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
    }
    return internal_error("NVRTC could not compile a generated kernel for sm_{} ({}): {}", arch,
                          nvrtcGetErrorString(rc), log);
  }
  size_t size = 0;
  KILN_RETURN_IF_ERROR(check_nvrtc(nvrtcGetCUBINSize(prog.get(), &size), "nvrtcGetCUBINSize"));
  std::vector<char> cubin(size);
  KILN_RETURN_IF_ERROR(check_nvrtc(nvrtcGetCUBIN(prog.get(), cubin.data()), "nvrtcGetCUBIN"));
  return cubin;
}

Result<int> current_device_arch() {
  int dev = 0, major = 0, minor = 0;
  KILN_CUDA_CHECK(cudaGetDevice(&dev));
  KILN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  KILN_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return 10 * major + minor;
}

Result<LoadedKernel> load_generated_kernel(const std::string& source, const std::string& kernel_name) {
  KILN_ASSIGN_OR_RETURN(int arch, current_device_arch());
  static std::mutex mu;
  static std::map<std::pair<std::string, int>, Loaded> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(source + '\n' + kernel_name, arch);
  auto it = cache.find(key);
  if (it != cache.end()) return static_cast<LoadedKernel>(it->second.kernel);
  KILN_ASSIGN_OR_RETURN(std::vector<char> cubin, nvrtc_compile(source, arch));
  Loaded l;
  KILN_CUDA_CHECK(cudaLibraryLoadData(&l.library, cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0));
  Status st = check_cuda(cudaLibraryGetKernel(&l.kernel, l.library, kernel_name.c_str()),
                         fmt::format("cudaLibraryGetKernel({})", kernel_name));
  if (!st.is_ok()) {
    (void)cudaLibraryUnload(l.library);
    return st;
  }
  cache.emplace(std::move(key), l);
  return static_cast<LoadedKernel>(l.kernel);
}

}  // namespace kiln::backends::cuda
