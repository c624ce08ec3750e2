// A fake NVML library for server_test (GpuMetricsTest): the functions
// gpu_metrics.cc binds, answering for two GPUs. GPU 0 has every reading and
// an energy counter that grows 1500 mJ per read; GPU 1 reports no power
// draw and has no energy counter (NVML_ERROR_NOT_SUPPORTED, 3).
#include <cstdio>
#include <cstring>

namespace {

struct Utilization {
  unsigned int gpu;
  unsigned int memory;
};
struct Memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
constexpr int kNotSupported = 3;
unsigned long long energy_mj = 5000000;

long index_of(void* device) { return reinterpret_cast<long>(device) - 1; }

}  // namespace

extern "C" {

int nvmlInit_v2() { return 0; }
int nvmlShutdown() { return 0; }
int nvmlDeviceGetCount_v2(unsigned int* count) {
  *count = 2;
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  if (index > 1) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *device = reinterpret_cast<void*>(static_cast<long>(index) + 1);
  return 0;
}
int nvmlDeviceGetUUID(void* device, char* uuid, unsigned int length) {
  std::snprintf(uuid, length, "GPU-fake-%ld", index_of(device));
  return 0;
}
int nvmlDeviceGetUtilizationRates(void* device, Utilization* u) {
  u->gpu = index_of(device) == 0 ? 37 : 100;
  u->memory = 5;
  return 0;
}
int nvmlDeviceGetMemoryInfo(void* device, Memory* m) {
  m->total = 85899345920ull;
  m->used = index_of(device) == 0 ? 1073741824ull : 0;
  m->free = m->total - m->used;
  return 0;
}
int nvmlDeviceGetPowerUsage(void* device, unsigned int* mw) {
  if (index_of(device) == 1) return kNotSupported;
  *mw = 123456;
  return 0;
}
int nvmlDeviceGetPowerManagementLimit(void*, unsigned int* mw) {
  *mw = 700000;
  return 0;
}
int nvmlDeviceGetTotalEnergyConsumption(void* device, unsigned long long* mj) {
  if (index_of(device) == 1) return kNotSupported;
  energy_mj += 1500;
  *mj = energy_mj;
  return 0;
}

}  // extern "C"
