// ONNX models with KIND_GPU instance groups through load_backend and
// create_instances, on whatever this machine has: without a GPU the GPU
// instances fail to start naming the group, the GPU and why, while CPU
// instances of the same model run; with one (and the CUDA backend built in)
// every instance answers z = x + y. A node the GPU engine lacks fails the load.
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "onnx/model_builder.h"
#include "server/instances.h"
#include "server/model_config.h"

namespace kiln::server {
namespace {

namespace pb = test::pb;

// <tmp>/kiln_gpu_backend_<tag>/1/model.onnx holding `model`; returns the version folder.
std::string write_model(const std::string& tag, const pb::ModelProto& model) {
  auto dir = std::filesystem::temp_directory_path() / ("kiln_gpu_backend_" + tag) / "1";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "model.onnx", std::ios::binary) << test::serialize(model);
  return dir.string();
}

// z = x + y on float[N, 4].
pb::ModelProto add_model() {
  auto m = test::make_model(17);
  auto* g = m.mutable_graph();
  test::add_input(g, "x", pb::TensorProto::FLOAT, {"N", 4});
  test::add_input(g, "y", pb::TensorProto::FLOAT, {"N", 4});
  test::add_node(g, "Add", {"x", "y"}, {"z"}, "add");
  test::add_output(g, "z", pb::TensorProto::FLOAT, {"N", 4});
  return m;
}

inference::ModelConfig config(const std::string& text) {
  inference::ModelConfig c;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &c)) << text;
  c.set_name("m");
  return c;
}

Tensor filled(float start) {
  Tensor t = Tensor::empty(DataType::kFloat32, {2, 4});
  for (int i = 0; i < 8; ++i) t.data<float>()[i] = start + static_cast<float>(i);
  return t;
}

void expect_adds(BackendInstance& instance) {
  auto out = instance.run({{"x", filled(1.0f)}, {"y", filled(0.5f)}}, {"z"});
  ASSERT_TRUE(out.is_ok()) << out.status().message();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ(out->at(0).first, "z");
  const Tensor& z = out->at(0).second;
  ASSERT_EQ(z.numel(), 8);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(z.data<float>()[i], 1.5f + 2.0f * static_cast<float>(i));
}

TEST(GpuBackendTest, GpuAndCpuInstancesOfOneModel) {
  const std::string dir = write_model("add", add_model());
  auto c = config(
      "backend: \"onnxruntime\" max_batch_size: 4 parameters { key: \"kiln_time_tactics\" value { string_value: "
      "\"false\" } } instance_group [ { name: \"g\" kind: KIND_GPU count: 2 gpus: [ 0 ] },"
      " { name: \"c\" kind: KIND_CPU } ]");
  ASSERT_TRUE(normalize_instance_groups(c, {1, ""}).is_ok());  // as if one GPU were visible
  auto backend = load_backend(dir, c);
#ifndef KILN_HAVE_CUDA
  ASSERT_FALSE(backend.is_ok());
  EXPECT_NE(backend.status().message().find("need the CUDA backend"), std::string::npos) << backend.status().message();
  return;
#endif
  ASSERT_TRUE(backend.is_ok()) << backend.status().message();
  ASSERT_TRUE(complete_config(c, **backend).is_ok());
  auto cpu = (*backend)->create_instance({"c", false, 0});
  ASSERT_TRUE(cpu->ready().is_ok()) << cpu->ready().message();
  expect_adds(*cpu);
  auto set = create_instances(c, **backend, nullptr);
  if (visible_gpus().count == 0) {
    ASSERT_FALSE(set.is_ok());
    const std::string& msg = set.status().message();
    EXPECT_EQ(msg.rfind("model 'm': instance_group 'g' on gpu 0: ", 0), 0u) << msg;
    EXPECT_NE(msg.find("no GPU"), std::string::npos) << msg;
    return;
  }
  ASSERT_TRUE(set.is_ok()) << set.status().message();
  ASSERT_EQ(set->instances.size(), 3u);  // two contexts on GPU 0, one CPU instance
  for (auto& instance : set->instances) expect_adds(*instance);
}

TEST(GpuBackendTest, GpuOnlyModelKeepsTheModelsInputsAndOutputs) {
  const std::string dir = write_model("add_gpu_only", add_model());
  auto c = config("backend: \"onnxruntime\" instance_group [ { kind: KIND_GPU } ]");
  ASSERT_TRUE(normalize_instance_groups(c, {1, ""}).is_ok());
  auto backend = load_backend(dir, c);
#ifndef KILN_HAVE_CUDA
  ASSERT_FALSE(backend.is_ok());
  return;
#endif
  ASSERT_TRUE(backend.is_ok()) << backend.status().message();
  ASSERT_EQ((*backend)->inputs().size(), 2u);
  EXPECT_EQ((*backend)->inputs()[0].name, "x");
  EXPECT_EQ((*backend)->inputs()[0].dims, (std::vector<int64_t>{-1, 4}));
  ASSERT_EQ((*backend)->outputs().size(), 1u);
  ASSERT_TRUE(complete_config(c, **backend).is_ok());
  EXPECT_EQ(c.max_batch_size(), kDefaultMaxBatchSize);  // auto-completed as for a CPU model
  // A CPU instance of a model loaded for the GPU only cannot be made.
  EXPECT_FALSE((*backend)->create_instance({"other", false, 0})->ready().is_ok());
}

TEST(GpuBackendTest, ANodeWithoutAGpuImplementationFailsTheLoad) {
  auto m = test::make_model(17);
  auto* g = m.mutable_graph();
  test::add_input(g, "x", pb::TensorProto::FLOAT, {"N", 2, 2});
  test::add_node(g, "Det", {"x"}, {"d"}, "det");
  test::add_output(g, "d", pb::TensorProto::FLOAT, {"N"});
  const std::string dir = write_model("det", m);
  auto c = config("backend: \"onnxruntime\" instance_group [ { kind: KIND_GPU } ]");
  ASSERT_TRUE(normalize_instance_groups(c, {1, ""}).is_ok());
  auto backend = load_backend(dir, c);
  ASSERT_FALSE(backend.is_ok());
#ifdef KILN_HAVE_CUDA
  EXPECT_NE(backend.status().message().find("Det"), std::string::npos) << backend.status().message();
#endif
  // The same model on the CPU loads.
  auto cpu = config("backend: \"onnxruntime\" instance_group [ { kind: KIND_CPU } ]");
  ASSERT_TRUE(normalize_instance_groups(cpu, {1, ""}).is_ok());
  EXPECT_TRUE(load_backend(dir, cpu).is_ok());
}

TEST(GpuBackendTest, PrecisionIsCheckedAtLoad) {
  const std::string dir = write_model("add_fp8", add_model());
  auto c = config(
      "backend: \"onnxruntime\" instance_group [ { kind: KIND_GPU } ] parameters { key: \"precision\" value { "
      "string_value: \"fp8\" } }");
  ASSERT_TRUE(normalize_instance_groups(c, {1, ""}).is_ok());
  auto backend = load_backend(dir, c);
  ASSERT_FALSE(backend.is_ok());
#ifdef KILN_HAVE_CUDA
  EXPECT_NE(backend.status().message().find("precision must be"), std::string::npos) << backend.status().message();
#endif
}

}  // namespace
}  // namespace kiln::server
