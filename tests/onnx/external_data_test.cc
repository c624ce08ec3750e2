// External tensor data: files next to the model, offsets and lengths, and
// the paths that must be refused (absolute, "..", symlinks out of the folder).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "onnx/model_builder.h"

namespace kiln::test {
namespace {

namespace fs = std::filesystem;
using pb::TensorProto;

class ExternalData : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "kiln_extdata_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "model");
    // weights.bin: 8 bytes of padding, then floats 1..4.
    std::vector<float> w = {1.0f, 2.0f, 3.0f, 4.0f};
    std::ofstream out(dir_ / "model" / "weights.bin", std::ios::binary);
    out.write("PADPADPA", 8);
    out.write(reinterpret_cast<const char*>(w.data()), 16);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A model whose initializer 'w' (float[4]) lives in `location`.
  static pb::ModelProto model(const std::string& location, const std::string& offset = "8",
                              const std::string& length = "16") {
    auto m = make_model(17);
    auto* g = m.mutable_graph();
    auto* t = g->add_initializer();
    t->set_name("w");
    t->set_data_type(TensorProto::FLOAT);
    t->add_dims(4);
    t->set_data_location(TensorProto::EXTERNAL);
    auto add = [&](const std::string& k, const std::string& v) {
      if (v.empty()) return;
      auto* e = t->add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    add("location", location);
    add("offset", offset);
    add("length", length);
    add_node(g, "Identity", {"w"}, {"y"});
    add_output(g, "y", TensorProto::FLOAT, {4});
    return m;
  }

  std::string model_dir() const { return (dir_ / "model").string(); }

  fs::path dir_;
};

TEST_F(ExternalData, ReadsFromTheModelFolder) {
  auto r = import(model("weights.bin"), model_dir());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const Tensor& w = r->graph->find_value("w")->constant();
  ASSERT_EQ(w.numel(), 4);
  EXPECT_EQ(w.data<float>()[0], 1.0f);
  EXPECT_EQ(w.data<float>()[3], 4.0f);
}

TEST_F(ExternalData, ImportFileUsesItsFolder) {
  const fs::path path = dir_ / "model" / "m.onnx";
  {
    std::ofstream out(path, std::ios::binary);
    out << serialize(model("./weights.bin", "8", ""));  // no length: taken from the dims
  }
  auto r = onnx::import_model_file(path.string());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->graph->find_value("w")->constant().data<float>()[1], 2.0f);
}

TEST_F(ExternalData, SubfolderIsFine) {
  fs::create_directories(dir_ / "model" / "data");
  fs::copy_file(dir_ / "model" / "weights.bin", dir_ / "model" / "data" / "w.bin");
  auto r = import(model("data/w.bin"), model_dir());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
}

TEST_F(ExternalData, MissingFile) {
  auto r = import(model("nope.bin"), model_dir());
  expect_error(r, StatusCode::kNotFound, {"test.onnx: initializer 'w'", "'nope.bin' not found"});
}

TEST_F(ExternalData, PathsEscapingTheFolder) {
  std::ofstream(dir_ / "secret.bin") << std::string(64, 'x');
  expect_error(import(model("../secret.bin", "0"), model_dir()), StatusCode::kInvalidArgument,
               {"initializer 'w'", "'../secret.bin' leaves the model's folder"});
  expect_error(import(model("data/../../secret.bin", "0"), model_dir()), StatusCode::kInvalidArgument,
               {"initializer 'w'", "leaves the model's folder"});
  expect_error(import(model((dir_ / "secret.bin").string(), "0"), model_dir()), StatusCode::kInvalidArgument,
               {"initializer 'w'", "absolute path"});
  fs::create_symlink(dir_ / "secret.bin", dir_ / "model" / "link.bin");
  expect_error(import(model("link.bin", "0"), model_dir()), StatusCode::kInvalidArgument,
               {"initializer 'w'", "outside the model's folder"});
}

TEST_F(ExternalData, OffsetAndLengthChecks) {
  expect_error(import(model("weights.bin", "16"), model_dir()), StatusCode::kOutOfRange,
               {"initializer 'w'", "has 24 bytes", "offset 16 + length 16"});
  expect_error(import(model("weights.bin", "1000"), model_dir()), StatusCode::kOutOfRange, {"offset 1000"});
  expect_error(import(model("weights.bin", "8", "12"), model_dir()), StatusCode::kInvalidArgument,
               {"initializer 'w'", "length is 12 bytes", "needs 16"});
  expect_error(import(model("weights.bin", "-8"), model_dir()), StatusCode::kInvalidArgument,
               {"offset '-8' is not a non-negative integer"});
  expect_error(import(model("weights.bin", "8x"), model_dir()), StatusCode::kInvalidArgument, {"offset '8x'"});
  expect_error(import(model(""), model_dir()), StatusCode::kInvalidArgument, {"empty location"});
}

TEST_F(ExternalData, BytesWithoutAFolder) {
  expect_error(import(model("weights.bin"), ""), StatusCode::kFailedPrecondition,
               {"initializer 'w'", "external data"});
}

TEST_F(ExternalData, PackedTypes) {
  // int4 [1, -8, 7] packed into 2 bytes at offset 3.
  std::ofstream(dir_ / "model" / "q.bin", std::ios::binary) << std::string("abc\x81\x07", 5);
  auto m = model("q.bin", "3", "2");
  auto* t = m.mutable_graph()->mutable_initializer(0);
  t->set_data_type(TensorProto::INT4);
  t->set_dims(0, 3);
  auto* out_type = m.mutable_graph()->mutable_output(0)->mutable_type()->mutable_tensor_type();
  out_type->set_elem_type(TensorProto::INT4);
  out_type->mutable_shape()->mutable_dim(0)->set_dim_value(3);
  auto r = import(m, model_dir());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const Tensor& q = r->graph->find_value("w")->constant();
  EXPECT_EQ(std::vector<int8_t>(q.data<int8_t>(), q.data<int8_t>() + 3), (std::vector<int8_t>{1, -8, 7}));
}

}  // namespace
}  // namespace kiln::test
