// GPU instances without a GPU: instance_group normalization (KIND_AUTO,
// KIND_GPU, gpus, count per GPU, the auto-completed group), the errors where
// no GPU or no such GPU exists, instance placement, the precision parameter,
// and the nv_gpu_* metrics text from a fake source.
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <mutex>

#include "core/error.h"
#include "server/gpu_metrics.h"
#include "server/instances.h"
#include "server/model_config.h"

namespace kiln::server {
namespace {

using Group = inference::ModelInstanceGroup;

inference::ModelConfig parse(const std::string& text) {
  inference::ModelConfig c;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &c)) << text;
  if (c.name().empty()) c.set_name("m");
  return c;
}

GpuInventory no_gpu() { return {0, "no GPU: CUDA driver version is insufficient"}; }
GpuInventory gpus(int n) { return {n, ""}; }

std::vector<int> ids(const Group& g) { return {g.gpus().begin(), g.gpus().end()}; }

TEST(GpuInstancesTest, NoInstanceGroupIsOneCpuInstanceWithoutAGpu) {
  auto c = parse("platform: \"onnxruntime_onnx\"");
  ASSERT_TRUE(normalize_instance_groups(c, no_gpu()).is_ok());
  ASSERT_EQ(c.instance_group_size(), 1);
  EXPECT_EQ(c.instance_group(0).kind(), Group::KIND_CPU);
  EXPECT_EQ(c.instance_group(0).count(), 1);
  EXPECT_EQ(c.instance_group(0).name(), "m");  // as Triton 2.51 names the group it adds
  EXPECT_EQ(c.instance_group(0).gpus_size(), 0);
}

TEST(GpuInstancesTest, NoInstanceGroupIsOneInstancePerGpuWhereGpusAreVisible) {
  auto c = parse("platform: \"onnxruntime_onnx\"");
  ASSERT_TRUE(normalize_instance_groups(c, gpus(2)).is_ok());
  ASSERT_EQ(c.instance_group_size(), 1);
  EXPECT_EQ(c.instance_group(0).kind(), Group::KIND_GPU);
  EXPECT_EQ(c.instance_group(0).count(), 1);
  EXPECT_EQ(ids(c.instance_group(0)), (std::vector<int>{0, 1}));
  EXPECT_EQ(instance_count(c), 2);
  // The PyTorch backend has no GPU support in this build: its default stays on the CPU.
  auto torch = parse("platform: \"pytorch_libtorch\" backend: \"pytorch\"");
  ASSERT_TRUE(normalize_instance_groups(torch, gpus(2)).is_ok());
  EXPECT_EQ(torch.instance_group(0).kind(), Group::KIND_CPU);
  // Ensembles have no instances.
  auto ens = parse("platform: \"ensemble\"");
  ASSERT_TRUE(normalize_instance_groups(ens, gpus(2)).is_ok());
  EXPECT_EQ(ens.instance_group_size(), 0);
}

TEST(GpuInstancesTest, KindAutoIsGpuWhereOneIsVisibleElseCpu) {
  const std::string text = "backend: \"onnxruntime\" instance_group [ { count: 2 } ]";
  auto cpu = parse(text);
  ASSERT_TRUE(normalize_instance_groups(cpu, no_gpu()).is_ok());
  EXPECT_EQ(cpu.instance_group(0).kind(), Group::KIND_CPU);
  EXPECT_EQ(cpu.instance_group(0).count(), 2);
  EXPECT_EQ(instance_count(cpu), 2);
  auto gpu = parse(text);
  ASSERT_TRUE(normalize_instance_groups(gpu, gpus(1)).is_ok());
  EXPECT_EQ(gpu.instance_group(0).kind(), Group::KIND_GPU);
  EXPECT_EQ(ids(gpu.instance_group(0)), (std::vector<int>{0}));
  // gpus listed make KIND_AUTO a GPU group; then the listed GPUs must exist.
  auto listed = parse("backend: \"onnxruntime\" instance_group [ { gpus: [ 1 ] } ]");
  ASSERT_TRUE(normalize_instance_groups(listed, gpus(2)).is_ok());
  EXPECT_EQ(listed.instance_group(0).kind(), Group::KIND_GPU);
  EXPECT_EQ(ids(listed.instance_group(0)), (std::vector<int>{1}));
  auto absent = parse("backend: \"onnxruntime\" instance_group [ { gpus: [ 1 ] } ]");
  EXPECT_FALSE(normalize_instance_groups(absent, no_gpu()).is_ok());
}

TEST(GpuInstancesTest, KindGpuCountsInstancesOnEachListedGpu) {
  auto c = parse(
      "backend: \"onnxruntime\" instance_group [ { name: \"g\" kind: KIND_GPU count: 3 gpus: [ 0, 2 ] },"
      " { kind: KIND_GPU }, { kind: KIND_CPU count: 2 } ]");
  ASSERT_TRUE(normalize_instance_groups(c, gpus(4)).is_ok());
  EXPECT_EQ(ids(c.instance_group(0)), (std::vector<int>{0, 2}));
  EXPECT_EQ(ids(c.instance_group(1)), (std::vector<int>{0, 1, 2, 3}));  // no gpus: every visible GPU
  EXPECT_EQ(c.instance_group(1).name(), "m_1");
  EXPECT_EQ(c.instance_group(1).count(), 1);
  EXPECT_EQ(instance_count(c), 3 * 2 + 4 + 2);
}

TEST(GpuInstancesTest, KindGpuWithoutAGpuNamesTheModelTheGroupAndWhy) {
  auto c = parse("backend: \"onnxruntime\" instance_group [ { name: \"fast\" kind: KIND_GPU } ]");
  Status st = normalize_instance_groups(c, no_gpu());
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(),
            "model 'm': instance_group 'fast' is KIND_GPU but no GPU: CUDA driver version is insufficient");
}

TEST(GpuInstancesTest, AGpuThatDoesNotExistIsAnError) {
  auto c = parse("backend: \"onnxruntime\" instance_group [ { kind: KIND_GPU gpus: [ 0, 3 ] } ]");
  Status st = normalize_instance_groups(c, gpus(1));
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(), "model 'm': instance_group 'm_0': gpu 3 does not exist: 1 GPU visible");
  auto negative = parse("backend: \"onnxruntime\" instance_group [ { kind: KIND_GPU gpus: [ -1 ] } ]");
  st = normalize_instance_groups(negative, gpus(2));
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(), "model 'm': instance_group 'm_0': gpu -1 does not exist: 2 GPUs visible");
}

TEST(GpuInstancesTest, GpusOnACpuGroupAndKindGpuForPyTorchAreRefused) {
  auto cpu = parse("backend: \"onnxruntime\" instance_group [ { kind: KIND_CPU gpus: [ 0 ] } ]");
  Status st = normalize_instance_groups(cpu, gpus(1));
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(), "model 'm': instance_group 'm_0' has kind KIND_CPU but lists gpus");
  auto torch = parse("backend: \"pytorch\" instance_group [ { kind: KIND_GPU } ]");
  st = normalize_instance_groups(torch, gpus(1));
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(),
            "model 'm': instance_group 'm_0': KIND_GPU is not supported by the PyTorch backend in this build");
  // The Python backend takes GPU instances (the model gets the device id).
  auto python = parse("backend: \"python\" instance_group [ { kind: KIND_GPU count: 2 } ]");
  ASSERT_TRUE(normalize_instance_groups(python, gpus(1)).is_ok());
  EXPECT_EQ(instance_count(python), 2);
}

TEST(GpuInstancesTest, GpuChosenByDefaultOnlyWhereTheConfigDidNotAsk) {
  auto chosen = [](const std::string& text) {
    auto written = parse(text);
    auto normalized = written;
    EXPECT_TRUE(normalize_instance_groups(normalized, gpus(2)).is_ok()) << text;
    return gpu_chosen_by_default(written, normalized);
  };
  EXPECT_TRUE(chosen("backend: \"onnxruntime\""));                                  // no instance_group
  EXPECT_TRUE(chosen("backend: \"onnxruntime\" instance_group [ { count: 2 } ]"));  // KIND_AUTO
  EXPECT_FALSE(chosen("backend: \"onnxruntime\" instance_group [ { gpus: [ 1 ] } ]"));
  EXPECT_FALSE(chosen("backend: \"onnxruntime\" instance_group [ { kind: KIND_GPU } ]"));
  EXPECT_FALSE(chosen("backend: \"onnxruntime\" instance_group [ { kind: KIND_CPU } ]"));  // no GPU group
  EXPECT_FALSE(chosen("backend: \"onnxruntime\" instance_group [ { count: 1 }, { kind: KIND_GPU } ]"));
  auto written = parse("backend: \"onnxruntime\"");
  auto normalized = written;
  ASSERT_TRUE(normalize_instance_groups(normalized, no_gpu()).is_ok());
  EXPECT_FALSE(gpu_chosen_by_default(written, normalized));  // on the CPU already
}

TEST(GpuInstancesTest, SingleGpuOfAModelLabelsItsMetrics) {
  auto on = [](const std::string& text, GpuInventory inv) {
    auto c = parse(text);
    EXPECT_TRUE(normalize_instance_groups(c, inv).is_ok()) << text;
    return single_gpu(c);
  };
  EXPECT_EQ(on("instance_group [ { kind: KIND_GPU count: 2 gpus: [ 1 ] } ]", gpus(2)), std::optional<int>(1));
  EXPECT_EQ(on("instance_group [ { kind: KIND_GPU gpus: [ 1 ] }, { gpus: [ 1 ] } ]", gpus(2)), std::optional<int>(1));
  EXPECT_EQ(on("", gpus(1)), std::optional<int>(0));
  EXPECT_EQ(on("", gpus(2)), std::nullopt);  // one instance on each GPU
  EXPECT_EQ(on("instance_group [ { kind: KIND_GPU gpus: [ 0 ] }, { kind: KIND_CPU } ]", gpus(1)), std::nullopt);
  EXPECT_EQ(on("", no_gpu()), std::nullopt);
  if (visible_gpus().count == 0) {
    EXPECT_EQ(gpu_uuid(0), "");  // no GPU: no uuid
  } else {
    EXPECT_EQ(gpu_uuid(0).rfind("GPU-", 0), 0u) << gpu_uuid(0);
  }
}

TEST(GpuInstancesTest, PrecisionParameter) {
  EXPECT_EQ(gpu_precision(parse("")).value(), "fp32");
  EXPECT_EQ(gpu_precision(parse("parameters { key: \"precision\" value { string_value: \"FP16\" } }")).value(), "fp16");
  auto bad = gpu_precision(parse("parameters { key: \"precision\" value { string_value: \"fp8\" } }"));
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message(), "model 'm': parameter precision must be fp32, tf32, fp16 or bf16, got 'fp8'");
}

// Records where each instance was asked to run; instances on `bad_device` fail to start.
class PlacementBackend final : public ModelBackend {
 public:
  explicit PlacementBackend(int bad_device = -1) : bad_device_(bad_device) {}
  const std::vector<TensorSpec>& inputs() const override { return specs_; }
  const std::vector<TensorSpec>& outputs() const override { return specs_; }
  const std::string& path() const override { return path_; }
  std::unique_ptr<BackendInstance> create_instance(const InstancePlacement& where) const override {
    std::lock_guard<std::mutex> lock(mu_);
    placements.push_back(where);
    return std::make_unique<Instance>(
        where.gpu && where.device == bad_device_ ? unavailable("GPU engine: out of memory") : Status::ok());
  }
  mutable std::vector<InstancePlacement> placements;

 private:
  class Instance final : public BackendInstance {
   public:
    explicit Instance(Status st) : st_(std::move(st)) {}
    Result<NamedTensors> run(const NamedTensors&, const std::vector<std::string>&) override { return NamedTensors{}; }
    Status ready() const override { return st_; }

   private:
    Status st_;
  };
  int bad_device_;
  mutable std::mutex mu_;
  std::vector<TensorSpec> specs_;
  std::string path_ = "placement";
};

TEST(GpuInstancesTest, InstancesArePlacedPerGroupAndGpu) {
  auto c = parse(
      "backend: \"onnxruntime\" instance_group [ { name: \"g\" kind: KIND_GPU count: 2 gpus: [ 0, 1 ] },"
      " { name: \"c\" kind: KIND_CPU } ]");
  ASSERT_TRUE(normalize_instance_groups(c, gpus(2)).is_ok());
  PlacementBackend backend;
  auto set = create_instances(c, backend, nullptr);
  ASSERT_TRUE(set.is_ok()) << set.status().message();
  EXPECT_EQ(set->instances.size(), 5u);
  EXPECT_EQ(set->needs.size(), 5u);
  ASSERT_EQ(backend.placements.size(), 5u);
  std::vector<std::string> got;
  for (const auto& p : backend.placements)
    got.push_back(p.group + (p.gpu ? ":gpu" + std::to_string(p.device) : ":cpu"));
  EXPECT_EQ(got, (std::vector<std::string>{"g:gpu0", "g:gpu0", "g:gpu1", "g:gpu1", "c:cpu"}));
}

TEST(GpuInstancesTest, AGpuInstanceThatFailsToStartNamesTheGroupAndDevice) {
  auto c = parse("backend: \"onnxruntime\" instance_group [ { name: \"g\" kind: KIND_GPU gpus: [ 0, 1 ] } ]");
  ASSERT_TRUE(normalize_instance_groups(c, gpus(2)).is_ok());
  PlacementBackend backend(1);
  auto set = create_instances(c, backend, nullptr);
  ASSERT_FALSE(set.is_ok());
  EXPECT_EQ(set.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(set.status().message(), "model 'm': instance_group 'g' on gpu 1: GPU engine: out of memory");
}

class FakeGpus final : public GpuMetricsSource {
 public:
  std::vector<GpuSample> sample() override {
    GpuSample a;
    a.uuid = "GPU-0a1b";
    a.utilization = 0.25;
    a.memory_total_bytes = 85899345920ull;
    a.memory_used_bytes = 1048576;
    a.power_watts = 71.5;
    a.power_limit_watts = 700;
    a.energy_joules = 1234.5;
    GpuSample b;  // an older GPU: no energy counter, no power readings
    b.uuid = "GPU-ffff";
    b.utilization = 1;
    b.memory_total_bytes = 1024;
    b.memory_used_bytes = 0;
    return {a, b};
  }
};

TEST(GpuInstancesTest, GpuMetricsExposition) {
  FakeGpus source;
  std::string out;
  append_gpu_metrics(out, source.sample());
  EXPECT_EQ(out,
            "# HELP nv_gpu_utilization GPU utilization rate [0.0 - 1.0)\n"
            "# TYPE nv_gpu_utilization gauge\n"
            "nv_gpu_utilization{gpu_uuid=\"GPU-0a1b\"} 0.25\n"
            "nv_gpu_utilization{gpu_uuid=\"GPU-ffff\"} 1\n"
            "# HELP nv_gpu_memory_total_bytes GPU total memory, in bytes\n"
            "# TYPE nv_gpu_memory_total_bytes gauge\n"
            "nv_gpu_memory_total_bytes{gpu_uuid=\"GPU-0a1b\"} 85899345920\n"
            "nv_gpu_memory_total_bytes{gpu_uuid=\"GPU-ffff\"} 1024\n"
            "# HELP nv_gpu_memory_used_bytes GPU used memory, in bytes\n"
            "# TYPE nv_gpu_memory_used_bytes gauge\n"
            "nv_gpu_memory_used_bytes{gpu_uuid=\"GPU-0a1b\"} 1048576\n"
            "nv_gpu_memory_used_bytes{gpu_uuid=\"GPU-ffff\"} 0\n"
            "# HELP nv_gpu_power_usage GPU power usage in watts\n"
            "# TYPE nv_gpu_power_usage gauge\n"
            "nv_gpu_power_usage{gpu_uuid=\"GPU-0a1b\"} 71.5\n"
            "# HELP nv_gpu_power_limit GPU power management limit in watts\n"
            "# TYPE nv_gpu_power_limit gauge\n"
            "nv_gpu_power_limit{gpu_uuid=\"GPU-0a1b\"} 700\n"
            "# HELP nv_energy_consumption GPU energy consumption in joules since the Triton Server started\n"
            "# TYPE nv_energy_consumption counter\n"
            "nv_energy_consumption{gpu_uuid=\"GPU-0a1b\"} 1234.5\n");
  std::string none;
  append_gpu_metrics(none, {});
  EXPECT_EQ(none, "");
}

}  // namespace
}  // namespace kiln::server
