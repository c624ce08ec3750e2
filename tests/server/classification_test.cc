// The classification extension's top-k (server/classification.h); the wire
// format is checked against the real Triton in tests/python/test_triton_diff.py.
#include "server/classification.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

namespace kiln::server {
namespace {

std::vector<std::string> strings(const Tensor& t) {
  return {t.data<std::string>(), t.data<std::string>() + t.numel()};
}

TEST(Classification, TopKPerBatchItemWithLabelsAndTies) {
  Tensor t = Tensor::empty(DataType::kFloat32, {2, 4});
  const float v[] = {0.5f, 3.25f, 3.25f, -1.0f, 7.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f, 2.0f};
  std::copy(std::begin(v), std::end(v), t.data<float>());
  const std::vector<std::string> labels = {"cat", "dog"};
  auto top = classify("y", t, 3, /*batched=*/true, &labels);
  ASSERT_TRUE(top.is_ok()) << top.status().to_string();
  EXPECT_EQ(top->dims(), (Dims{2, 3}));
  // Equal values by index; labels past the file's end are left out; NaN ranks last.
  EXPECT_EQ(strings(*top), (std::vector<std::string>{"3.250000:1:dog", "3.250000:2", "0.500000:0:cat",
                                                     "7.000000:0:cat", "2.000000:3", "1.000000:2"}));
  // Without batching the whole tensor is one item; k above the count keeps them all.
  auto all = classify("y", t, 100, /*batched=*/false, nullptr);
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(all->dims(), (Dims{8}));
  EXPECT_EQ(strings(*all).front(), "7.000000:4");
  EXPECT_EQ(strings(*all).back().substr(0, 4), "nan:");
}

TEST(Classification, IntegerValuesPrintWithoutDecimals) {
  Tensor t = Tensor::empty(DataType::kInt64, {3});
  t.data<int64_t>()[0] = -5;
  t.data<int64_t>()[1] = 9;
  t.data<int64_t>()[2] = 4;
  auto top = classify("y", t, 2, false, nullptr);
  ASSERT_TRUE(top.is_ok());
  EXPECT_EQ(strings(*top), (std::vector<std::string>{"9:1", "4:2"}));
}

TEST(Classification, BadRequestsAreErrors) {
  Tensor s = Tensor::empty(DataType::kString, {2});
  auto bytes = classify("names", s, 1, false, nullptr);
  ASSERT_FALSE(bytes.is_ok());
  EXPECT_NE(bytes.status().message().find("numeric"), std::string::npos);
  Tensor f = Tensor::empty(DataType::kFloat32, {2});
  EXPECT_FALSE(classify("y", f, 0, false, nullptr).is_ok());
}

TEST(Classification, LabelFilesAreReadFromTheModelFolder) {
  const auto dir = std::filesystem::temp_directory_path() / "kiln_classification_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "labels.txt") << "zero\r\none\ntwo\n";
  inference::ModelConfig config;
  auto* out = config.add_output();
  out->set_name("y");
  out->set_label_filename("labels.txt");
  config.add_output()->set_name("z");
  auto labels = read_output_labels(config, dir.string());
  ASSERT_TRUE(labels.is_ok()) << labels.status().to_string();
  EXPECT_EQ((*labels)->at("y"), (std::vector<std::string>{"zero", "one", "two"}));
  EXPECT_EQ((*labels)->count("z"), 0u);
  out->set_label_filename("missing.txt");
  EXPECT_FALSE(read_output_labels(config, dir.string()).is_ok());
  out->set_label_filename("../labels.txt");
  EXPECT_FALSE(read_output_labels(config, dir.string()).is_ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kiln::server
