// Tests of kiln perf's request data: shapes from metadata, -b and --shape,
// random/zero data and perf_analyzer-style JSON files, with clear errors.
#include "perf_data.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace kiln::cli {
namespace {

client::ModelMetadata two_inputs() {
  client::ModelMetadata md;
  md.name = "m";
  md.inputs = {{"X", "FP32", {-1, 4}}, {"S", "BYTES", {-1, -1}}};
  return md;
}

std::string write_file(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path) << text;
  return path.string();
}

TEST(PerfData, ShapesFromMetadataBatchAndShapeFlag) {
  PerfDataOptions o;
  o.batch_size = 3;
  o.shapes["S"] = {2};
  auto sets = make_perf_inputs(two_inputs(), 8, o);
  ASSERT_TRUE(sets.is_ok()) << sets.status().to_string();
  ASSERT_EQ(sets->size(), 1u);
  const auto& x = (*sets)[0][0];
  EXPECT_EQ(x.shape, (Dims{3, 4}));
  EXPECT_EQ(x.data.size(), 3u * 4 * 4);
  const auto& s = (*sets)[0][1];
  EXPECT_EQ(s.shape, (Dims{3, 2}));
  EXPECT_EQ(s.data.size(), 6u * (4 + 16));  // random strings of --string-length 16
  for (size_t i = 0; i < x.data.size(); i += 4) {
    float v;
    std::memcpy(&v, x.data.data() + i, 4);
    EXPECT_TRUE(v >= 0.0f && v < 1.0f);
  }
}

TEST(PerfData, ShapeAndBatchErrors) {
  PerfDataOptions o;
  auto missing = make_perf_inputs(two_inputs(), 8, o);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("give its shape with --shape S:d1,d2"), std::string::npos)
      << missing.status().message();
  o.shapes["S"] = {2};
  o.shapes["Q"] = {1};
  EXPECT_NE(make_perf_inputs(two_inputs(), 8, o).status().message().find("has no input 'Q' (inputs: X, S)"),
            std::string::npos);
  o.shapes.erase("Q");
  o.shapes["X"] = {5};
  EXPECT_NE(make_perf_inputs(two_inputs(), 8, o).status().message().find("dim 0 is 5 but the model fixes it to 4"),
            std::string::npos);
  o.shapes["X"] = {4, 1};
  EXPECT_NE(make_perf_inputs(two_inputs(), 8, o).status().message().find("2 dims given, the input has 1"),
            std::string::npos);
  o.shapes.erase("X");
  o.batch_size = 9;
  EXPECT_NE(make_perf_inputs(two_inputs(), 8, o).status().message().find("at most max_batch_size 8"),
            std::string::npos);
  client::ModelMetadata fixed;
  fixed.name = "f";
  fixed.inputs = {{"X", "INT64", {2}}};
  PerfDataOptions batched;
  batched.batch_size = 2;
  EXPECT_NE(make_perf_inputs(fixed, 0, batched).status().message().find("does not batch"), std::string::npos);
  PerfDataOptions zero;
  zero.input_data = "zero";
  auto one = make_perf_inputs(fixed, 0, zero);
  ASSERT_TRUE(one.is_ok());
  EXPECT_EQ((*one)[0][0].data, std::string(16, '\0'));
}

TEST(PerfData, ParseShapeArg) {
  auto ok = parse_shape_arg("a:b:3,224");
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(ok->first, "a:b");
  EXPECT_EQ(ok->second, (Dims{3, 224}));
  EXPECT_FALSE(parse_shape_arg("x").is_ok());
  EXPECT_FALSE(parse_shape_arg("x:").is_ok());
  EXPECT_FALSE(parse_shape_arg("x:-1").is_ok());
  EXPECT_FALSE(parse_shape_arg(":3").is_ok());
}

TEST(PerfData, JsonInputData) {
  std::string path = write_file("kiln_perf_data_test.json", R"({"data": [
      {"X": [1, 2, 3, 4], "S": {"content": ["a", "bc"], "shape": [2]}},
      {"X": {"b64": "AACAPwAAAEAAAEBAAACAQA=="}, "S": {"content": ["q"], "shape": [1]}}]})");
  PerfDataOptions o;
  o.batch_size = 2;
  o.input_data = path;
  auto sets = make_perf_inputs(two_inputs(), 8, o);
  ASSERT_TRUE(sets.is_ok()) << sets.status().to_string();
  ASSERT_EQ(sets->size(), 2u);
  EXPECT_EQ((*sets)[0][0].shape, (Dims{2, 4}));
  EXPECT_EQ((*sets)[0][1].shape, (Dims{2, 2}));       // "shape" of the entry, batch prepended
  EXPECT_EQ((*sets)[1][0].data, (*sets)[0][0].data);  // base64 of 1, 2, 3, 4 as FP32
  EXPECT_EQ((*sets)[1][1].shape, (Dims{2, 1}));
  EXPECT_EQ((*sets)[1][1].data, std::string("\x01\0\0\0q\x01\0\0\0q", 10));  // the item, twice
}

TEST(PerfData, JsonInputDataErrors) {
  PerfDataOptions o;
  o.shapes["S"] = {1};
  auto err = [&](const std::string& text) {
    o.input_data = write_file("kiln_perf_data_bad.json", text);
    return make_perf_inputs(two_inputs(), 8, o).status().message();
  };
  EXPECT_NE(err("{").find("JSON error at offset"), std::string::npos);
  EXPECT_NE(err(R"({"rows": []})").find("expected {\"data\""), std::string::npos);
  EXPECT_NE(err(R"({"data": [{"X": [1, 2, 3, 4]}]})").find("entry 0, input 'S': missing"), std::string::npos);
  EXPECT_NE(err(R"({"data": [{"X": [1, 2, 3], "S": ["a"]}]})").find("12 bytes for FP32 [4] (needs 16)"),
            std::string::npos);
  EXPECT_NE(err(R"({"data": [{"X": ["a", 2, 3, 4], "S": ["a"]}]})").find("does not fit datatype FP32"),
            std::string::npos);
  EXPECT_NE(err(R"({"data": [[{"X": [1, 2, 3, 4]}]]})").find("sequence data"), std::string::npos);
  o.shapes.clear();
  EXPECT_NE(err(R"({"data": [{"X": [1, 2, 3, 4], "S": ["a"]}]})").find("give \"shape\" in the data or --shape S"),
            std::string::npos);
  o.input_data = "/no/such/file.json";
  EXPECT_NE(make_perf_inputs(two_inputs(), 8, o).status().message().find("cannot open the file"), std::string::npos);
}

}  // namespace
}  // namespace kiln::cli
