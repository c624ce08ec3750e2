#include "server/model_config.h"

#include <gtest/gtest.h>
#include <google/protobuf/text_format.h>

#include <filesystem>
#include <fstream>

#include "server/fake_backend.h"

namespace kiln::server {
namespace {

inference::ModelConfig parse(const std::string& text) {
  inference::ModelConfig c;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &c)) << text;
  return c;
}

TEST(ModelConfigTest, ModelNamesThatArePathsAreRejected) {
  EXPECT_TRUE(check_model_name("resnet50").is_ok());
  EXPECT_TRUE(check_model_name("a.b-c_d").is_ok());
  for (const char* bad : {"", ".", "..", "../x", "a/b", "a\\b", "x\ny"}) {
    EXPECT_FALSE(check_model_name(bad).is_ok()) << bad;
  }
  EXPECT_FALSE(check_model_name(std::string(300, 'a')).is_ok());
}

TEST(ModelConfigTest, ReadsTritonConfigAndReportsParseErrors) {
  auto dir = std::filesystem::temp_directory_path() / "kiln_cfg_test";
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "config.pbtxt") << "name: \"m\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 8\n"
                                           "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 2 ] } ]\n"
                                           "instance_group [ { count: 2 kind: KIND_CPU } ]\n";
  }
  auto c = read_model_config(dir.string(), "m");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->max_batch_size(), 8);
  EXPECT_EQ(instance_count(c.value()), 2);
  auto mismatch = read_model_config(dir.string(), "other");
  ASSERT_FALSE(mismatch.is_ok());
  EXPECT_NE(mismatch.status().message().find("does not match"), std::string::npos);
  { std::ofstream(dir / "config.pbtxt") << "max_batch_size: \"eight\"\n"; }
  auto bad = read_model_config(dir.string(), "m");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("line 1"), std::string::npos) << bad.status().message();
  std::filesystem::remove(dir / "config.pbtxt");
  auto empty = read_model_config(dir.string(), "m");
  ASSERT_TRUE(empty.is_ok());
  EXPECT_EQ(empty->name(), "m");
  std::filesystem::remove_all(dir);
}

TEST(ModelConfigTest, PlatformsServedAndRefused) {
  auto c = parse("");
  ASSERT_TRUE(resolve_platform(c).is_ok());
  EXPECT_EQ(c.platform(), "onnxruntime_onnx");
  auto b = parse("backend: \"onnxruntime\"");
  EXPECT_TRUE(resolve_platform(b).is_ok());
  auto tf = parse("name: \"m\" platform: \"tensorflow_savedmodel\"");
  Status st = resolve_platform(tf);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("tensorflow_savedmodel"), std::string::npos);
  auto py = parse("backend: \"python\"");
  EXPECT_TRUE(resolve_platform(py).is_ok());
  auto torch = parse("backend: \"pytorch\"");
  ASSERT_TRUE(resolve_platform(torch).is_ok());
  EXPECT_EQ(torch.platform(), "pytorch_libtorch");
  auto libtorch = parse("platform: \"pytorch_libtorch\"");
  ASSERT_TRUE(resolve_platform(libtorch).is_ok());
  EXPECT_EQ(libtorch.backend(), "pytorch");
  auto mixed = parse("platform: \"pytorch_libtorch\" backend: \"onnxruntime\"");
  EXPECT_NE(resolve_platform(mixed).message().find("different frameworks"), std::string::npos);
  auto ens = parse("platform: \"ensemble\" ensemble_scheduling { }");
  EXPECT_TRUE(resolve_platform(ens).is_ok());
  auto ens_no_steps = parse("platform: \"ensemble\"");
  EXPECT_NE(resolve_platform(ens_no_steps).message().find("ensemble_scheduling"), std::string::npos);
}

TEST(ModelConfigTest, AutoCompleteFromTheModel) {
  testing::FakeBackend backend;
  auto c = parse("name: \"m\"");
  ASSERT_TRUE(complete_config(c, backend).is_ok());
  EXPECT_EQ(c.max_batch_size(), kDefaultMaxBatchSize);
  ASSERT_EQ(c.input_size(), 1);
  EXPECT_EQ(c.input(0).data_type(), inference::TYPE_FP32);
  ASSERT_EQ(c.input(0).dims_size(), 1);
  EXPECT_EQ(c.input(0).dims(0), 2);
  EXPECT_TRUE(c.has_dynamic_batching());
  EXPECT_EQ(instance_count(c), 1);
  EXPECT_EQ(c.version_policy().latest().num_versions(), 1u);
}

TEST(ModelConfigTest, AutoCompleteOffTakesTheConfigAsWritten) {
  testing::FakeBackend backend;
  auto empty = parse("name: \"m\"");
  Status st = complete_config(empty, backend, /*auto_complete=*/false);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("--disable-auto-complete-config"), std::string::npos) << st.message();
  auto written = parse(
      "name: \"m\" max_batch_size: 8 input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 2 ] } ] "
      "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 2 ] } ]");
  ASSERT_TRUE(complete_config(written, backend, /*auto_complete=*/false).is_ok());
  EXPECT_FALSE(written.has_dynamic_batching());  // each request runs alone
  EXPECT_EQ(instance_count(written), 1);
  EXPECT_EQ(written.version_policy().latest().num_versions(), 1u);
  auto only_output = parse("name: \"m\" max_batch_size: 8 output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 2 ] } ]");
  st = complete_config(only_output, backend, /*auto_complete=*/false);  // input x is not filled in
  EXPECT_NE(st.message().find("input 'x' is missing"), std::string::npos) << st.message();
  auto batching = parse(
      "name: \"m\" max_batch_size: 8 input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 2 ] } ] "
      "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 2 ] } ] dynamic_batching { }");
  ASSERT_TRUE(complete_config(batching, backend, /*auto_complete=*/false).is_ok());
  ASSERT_EQ(batching.dynamic_batching().preferred_batch_size_size(), 1);
  EXPECT_EQ(batching.dynamic_batching().preferred_batch_size(0), 8);
}

TEST(ModelConfigTest, ConfigMustMatchTheModel) {
  testing::FakeBackend backend;
  auto wrong_type = parse("name: \"m\" input [ { name: \"x\" data_type: TYPE_INT32 dims: [ 2 ] } ]");
  EXPECT_NE(complete_config(wrong_type, backend).message().find("data_type"), std::string::npos);
  auto wrong_dims = parse("name: \"m\" max_batch_size: 2 input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 3 ] } ]");
  EXPECT_NE(complete_config(wrong_dims, backend).message().find("does not match"), std::string::npos);
  auto unknown = parse("name: \"m\" input [ { name: \"z\" data_type: TYPE_FP32 dims: [ 2 ] } ]");
  EXPECT_FALSE(complete_config(unknown, backend).is_ok());
  auto seq = parse("name: \"m\" sequence_batching { }");
  EXPECT_TRUE(complete_config(seq, backend).is_ok());
  auto two_controls = parse(
      "name: \"m\" sequence_batching { control_input [ { name: \"s\" control [ { kind: CONTROL_SEQUENCE_START "
      "int32_false_true: [0, 1] }, { kind: CONTROL_SEQUENCE_END int32_false_true: [0, 1] } ] } ] }");
  EXPECT_NE(complete_config(two_controls, backend).message().find("exactly one control"), std::string::npos);
  auto half_state = parse("name: \"m\" sequence_batching { state [ { input_name: \"s\" data_type: TYPE_FP32 } ] }");
  EXPECT_NE(complete_config(half_state, backend).message().find("output_name"), std::string::npos);
  auto preferred = parse("name: \"m\" max_batch_size: 4 dynamic_batching { preferred_batch_size: [ 8 ] }");
  EXPECT_FALSE(complete_config(preferred, backend).is_ok());
  testing::FakeBackend fixed(std::chrono::milliseconds(0), /*batchable=*/false);
  auto batch = parse("name: \"m\" max_batch_size: 4");
  EXPECT_NE(complete_config(batch, fixed).message().find("does not support batching"), std::string::npos);
  auto none = parse("name: \"m\"");
  ASSERT_TRUE(complete_config(none, fixed).is_ok());
  EXPECT_EQ(none.max_batch_size(), 0);
  EXPECT_EQ(none.input(0).dims_size(), 2);
}

TEST(ModelConfigTest, VersionPolicy) {
  std::vector<int64_t> available = {3, 1, 10, 2};
  EXPECT_EQ(select_versions(parse(""), available), (std::vector<int64_t>{10}));
  EXPECT_EQ(select_versions(parse("version_policy { latest { num_versions: 2 } }"), available),
            (std::vector<int64_t>{3, 10}));
  EXPECT_EQ(select_versions(parse("version_policy { all { } }"), available), (std::vector<int64_t>{1, 2, 3, 10}));
  EXPECT_EQ(select_versions(parse("version_policy { specific { versions: [ 2, 7 ] } }"), available),
            (std::vector<int64_t>{2}));
}

}  // namespace
}  // namespace kiln::server
