// The NVML reader of gpu_metrics.cc against a fake libnvidia-ml (fake_nvml.cc):
// dlopen, the functions it binds, unit conversions, readings a GPU lacks, and
// the energy counter's zero at open.
#include "server/gpu_metrics.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace kiln::server {
namespace {

TEST(GpuMetricsTest, ReadsNvmlThroughDlopen) {
  if (!std::filesystem::exists(KILN_FAKE_NVML)) GTEST_SKIP() << "no fake NVML library at " << KILN_FAKE_NVML;
  std::unique_ptr<GpuMetricsSource> nvml = open_nvml(KILN_FAKE_NVML);
  ASSERT_NE(nvml, nullptr);
  std::vector<GpuSample> gpus = nvml->sample();
  ASSERT_EQ(gpus.size(), 2u);
  const GpuSample& a = gpus[0];
  EXPECT_EQ(a.uuid, "GPU-fake-0");
  EXPECT_EQ(a.utilization, 0.37);
  EXPECT_EQ(a.memory_total_bytes, 85899345920ull);
  EXPECT_EQ(a.memory_used_bytes, 1073741824ull);
  EXPECT_EQ(a.power_watts, 123.456);
  EXPECT_EQ(a.power_limit_watts, 700.0);
  EXPECT_EQ(a.energy_joules, 1.5);  // one 1500 mJ step since open
  const GpuSample& b = gpus[1];
  EXPECT_EQ(b.uuid, "GPU-fake-1");
  EXPECT_EQ(b.utilization, 1.0);
  EXPECT_EQ(b.memory_used_bytes, 0u);
  EXPECT_FALSE(b.power_watts.has_value());
  EXPECT_FALSE(b.energy_joules.has_value());
  EXPECT_EQ(nvml->sample()[0].energy_joules, 3.0);
  std::string out;
  append_gpu_metrics(out, gpus);
  EXPECT_NE(out.find("nv_gpu_utilization{gpu_uuid=\"GPU-fake-0\"} 0.37\n"), std::string::npos) << out;
  EXPECT_NE(out.find("nv_energy_consumption{gpu_uuid=\"GPU-fake-0\"} 1.5\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("nv_gpu_power_usage{gpu_uuid=\"GPU-fake-1\"}"), std::string::npos) << out;
}

TEST(GpuMetricsTest, NoLibraryNoSource) {
  EXPECT_EQ(open_nvml("/nonexistent/libnvidia-ml.so.1"), nullptr);
  // A library without NVML's functions is no NVML either.
  EXPECT_EQ(open_nvml("libc.so.6"), nullptr);
}

}  // namespace
}  // namespace kiln::server
