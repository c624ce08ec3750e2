// GPU metrics in Prometheus text: Triton's nv_gpu_* families (utilization,
// memory, power, energy) per GPU, labelled gpu_uuid, read from NVML. NVML is
// opened with dlopen("libnvidia-ml.so.1") at run time, never linked: on a
// machine without the driver the families are simply absent.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kiln::server {

// One GPU's readings; a reading the device does not support is absent.
struct GpuSample {
  std::string uuid;                   // "GPU-..."
  std::optional<double> utilization;  // 0..1, over NVML's last sample period
  std::optional<uint64_t> memory_total_bytes;
  std::optional<uint64_t> memory_used_bytes;
  std::optional<double> power_watts;        // instantaneous draw
  std::optional<double> power_limit_watts;  // power management limit
  std::optional<double> energy_joules;      // since the source was opened (server start)
};

// Where the samples come from: NVML, or a test's fake.
class GpuMetricsSource {
 public:
  virtual ~GpuMetricsSource() = default;
  virtual std::vector<GpuSample> sample() = 0;
};

// NVML when `library` loads, initializes and sees at least one GPU; null
// otherwise (logged at debug level). Tests pass a fake library's path.
std::unique_ptr<GpuMetricsSource> open_nvml(const char* library = "libnvidia-ml.so.1");

// The process's NVML source, opened at the first call (null: no GPU metrics).
GpuMetricsSource* nvml_source();

// Appends the nv_gpu_* families with Triton's HELP and TYPE lines for
// `gpus`; nothing when `gpus` is empty.
void append_gpu_metrics(std::string& out, const std::vector<GpuSample>& gpus);

}  // namespace kiln::server
