#include "server/gpu_metrics.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include "core/logging.h"

namespace kiln::server {
namespace {

// The few NVML declarations used (nvml.h, stable ABI): return 0 is NVML_SUCCESS.
using NvmlReturn = int;
using NvmlDevice = struct NvmlDeviceOpaque*;
struct NvmlUtilization {
  unsigned int gpu;
  unsigned int memory;
};
struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
constexpr unsigned int kUuidBufferSize = 96;  // NVML_DEVICE_UUID_V2_BUFFER_SIZE

struct NvmlApi {
  NvmlReturn (*init)();
  NvmlReturn (*shutdown)();
  NvmlReturn (*count)(unsigned int*);
  NvmlReturn (*handle)(unsigned int, NvmlDevice*);
  NvmlReturn (*uuid)(NvmlDevice, char*, unsigned int);
  NvmlReturn (*utilization)(NvmlDevice, NvmlUtilization*);
  NvmlReturn (*memory)(NvmlDevice, NvmlMemory*);
  NvmlReturn (*power)(NvmlDevice, unsigned int*);         // milliwatts
  NvmlReturn (*power_limit)(NvmlDevice, unsigned int*);   // milliwatts
  NvmlReturn (*energy)(NvmlDevice, unsigned long long*);  // millijoules since the driver loaded
};

template <typename Fn>
bool bind(void* lib, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  return fn != nullptr;
}

class NvmlSource final : public GpuMetricsSource {
 public:
  NvmlSource(void* lib, NvmlApi api) : lib_(lib), api_(api) {}
  ~NvmlSource() override {
    api_.shutdown();
    dlclose(lib_);
  }

  // Finds the devices and their energy counters at this moment (the zero of nv_energy_consumption).
  bool open() {
    unsigned int n = 0;
    if (api_.count(&n) != 0) return false;
    for (unsigned int i = 0; i < n; ++i) {
      Device d;
      char uuid[kUuidBufferSize] = {};
      if (api_.handle(i, &d.handle) != 0 || api_.uuid(d.handle, uuid, kUuidBufferSize) != 0) continue;
      d.uuid = uuid;
      unsigned long long mj = 0;
      if (api_.energy != nullptr && api_.energy(d.handle, &mj) == 0) d.energy_start_mj = mj;
      devices_.push_back(std::move(d));
    }
    return !devices_.empty();
  }

  std::vector<GpuSample> sample() override {
    std::vector<GpuSample> out;
    for (const Device& d : devices_) {
      GpuSample s;
      s.uuid = d.uuid;
      NvmlUtilization util{};
      if (api_.utilization(d.handle, &util) == 0) s.utilization = util.gpu / 100.0;
      NvmlMemory mem{};
      if (api_.memory(d.handle, &mem) == 0) {
        s.memory_total_bytes = mem.total;
        s.memory_used_bytes = mem.used;
      }
      unsigned int mw = 0;
      if (api_.power(d.handle, &mw) == 0) s.power_watts = mw / 1000.0;
      if (api_.power_limit(d.handle, &mw) == 0) s.power_limit_watts = mw / 1000.0;
      unsigned long long mj = 0;
      if (d.energy_start_mj && api_.energy(d.handle, &mj) == 0 && mj >= *d.energy_start_mj) {
        s.energy_joules = static_cast<double>(mj - *d.energy_start_mj) / 1000.0;
      }
      out.push_back(std::move(s));
    }
    return out;
  }

 private:
  struct Device {
    NvmlDevice handle = nullptr;
    std::string uuid;
    std::optional<unsigned long long> energy_start_mj;
  };
  void* lib_;
  NvmlApi api_;
  std::vector<Device> devices_;
};

std::string escape_label(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::unique_ptr<GpuMetricsSource> open_nvml(const char* library) {
  void* lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    KILN_LOG_DEBUG("GPU metrics off: {}", dlerror());
    return nullptr;
  }
  NvmlApi api{};
  bool ok = bind(lib, "nvmlInit_v2", api.init) && bind(lib, "nvmlShutdown", api.shutdown) &&
            bind(lib, "nvmlDeviceGetCount_v2", api.count) && bind(lib, "nvmlDeviceGetHandleByIndex_v2", api.handle) &&
            bind(lib, "nvmlDeviceGetUUID", api.uuid) && bind(lib, "nvmlDeviceGetUtilizationRates", api.utilization) &&
            bind(lib, "nvmlDeviceGetMemoryInfo", api.memory) && bind(lib, "nvmlDeviceGetPowerUsage", api.power) &&
            bind(lib, "nvmlDeviceGetPowerManagementLimit", api.power_limit);
  if (ok) bind(lib, "nvmlDeviceGetTotalEnergyConsumption", api.energy);  // Volta and later; optional
  if (!ok || api.init() != 0) {
    KILN_LOG_DEBUG("GPU metrics off: NVML did not {}", ok ? "initialize" : "provide the functions used");
    dlclose(lib);
    return nullptr;
  }
  auto source = std::make_unique<NvmlSource>(lib, api);
  if (!source->open()) {
    KILN_LOG_DEBUG("GPU metrics off: NVML sees no GPU");
    return nullptr;
  }
  return source;
}

GpuMetricsSource* nvml_source() {
  static const std::unique_ptr<GpuMetricsSource> source = open_nvml();
  return source.get();
}

void append_gpu_metrics(std::string& out, const std::vector<GpuSample>& gpus) {
  if (gpus.empty()) return;
  auto family = [&](const char* name, const char* type, const char* help, auto value_of) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    for (const GpuSample& g : gpus) {
      if (auto v = value_of(g)) out += fmt::format("{}{{gpu_uuid=\"{}\"}} {}\n", name, escape_label(g.uuid), *v);
    }
  };
  family("nv_gpu_utilization", "gauge", "GPU utilization rate [0.0 - 1.0)",
         [](const GpuSample& g) { return g.utilization; });
  family("nv_gpu_memory_total_bytes", "gauge", "GPU total memory, in bytes",
         [](const GpuSample& g) { return g.memory_total_bytes; });
  family("nv_gpu_memory_used_bytes", "gauge", "GPU used memory, in bytes",
         [](const GpuSample& g) { return g.memory_used_bytes; });
  family("nv_gpu_power_usage", "gauge", "GPU power usage in watts", [](const GpuSample& g) { return g.power_watts; });
  family("nv_gpu_power_limit", "gauge", "GPU power management limit in watts",
         [](const GpuSample& g) { return g.power_limit_watts; });
  family("nv_energy_consumption", "counter", "GPU energy consumption in joules since the Triton Server started",
         [](const GpuSample& g) { return g.energy_joules; });
}

}  // namespace kiln::server
