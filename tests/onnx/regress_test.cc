// Every file in tests/regress/ goes through the importer: the seed_*.onnx
// models (also the fuzzer's seeds) must import, and every other file (inputs
// that once crashed or hung the importer) must come back as an error or a
// model, never a crash.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "exec/program.h"
#include "onnx/importer.h"

namespace kiln::test {
namespace {

namespace fs = std::filesystem;

fs::path regress_dir() {
  if (const char* data = std::getenv("KILN_TEST_DATA")) return fs::path(data).parent_path() / "regress";
  return fs::path(__FILE__).parent_path().parent_path() / "regress";
}

TEST(OnnxRegress, EveryFileImportsOrFailsCleanly) {
  const fs::path dir = regress_dir();
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int seeds = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    onnx::ImportOptions options;
    options.allow_unknown_ops = true;  // seeds use If and Loop, which not every build registers
    auto model = onnx::import_model_file(entry.path().string(), options);
    if (name.rfind("seed_", 0) == 0) {
      ++seeds;
      EXPECT_TRUE(model.is_ok()) << name << ": " << model.status().to_string();
    }
    if (model.is_ok()) {
      auto program = exec::Program::compile(*model->graph);
      (void)program;
    }
  }
  EXPECT_GE(seeds, 5);
}

TEST(OnnxRegress, IdentitySeedRunsStrictly) {
  auto model = onnx::import_model_file((regress_dir() / "seed_identity.onnx").string());
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  EXPECT_EQ(model->graph->find_value("y")->type().to_string(), "float[N,3]");
  auto program = exec::Program::compile(*model->graph);
  EXPECT_TRUE(program.is_ok()) << program.status().to_string();
}

TEST(OnnxRegress, DtypeSeedMatchesOnnxPacking) {
  // seed_dtypes.onnx was written by onnx.helper.make_tensor (onnx 1.23.2).
  onnx::ImportOptions options;
  auto model = onnx::import_model_file((regress_dir() / "seed_dtypes.onnx").string(), options);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  const ir::Graph& g = *model->graph;
  auto bytes = [&](const std::string& name) {
    const Tensor& t = g.find_value(name)->constant();
    const auto* p = static_cast<const int8_t*>(t.raw_data());
    return std::vector<int>(p, p + t.nbytes());
  };
  EXPECT_EQ(bytes("i4"), (std::vector<int>{1, -8, 7}));
  EXPECT_EQ(bytes("u4"), (std::vector<int>{0, 15, 1, 2}));
  EXPECT_EQ(bytes("i2"), (std::vector<int>{1, -2, -1, 0, 1}));
  EXPECT_EQ(bytes("b"), (std::vector<int>{1, 0, 1}));
  EXPECT_EQ(g.find_value("s")->constant().data<std::string>()[1], "kiln");
  EXPECT_EQ(g.find_value("u32")->constant().data<uint32_t>()[1], 4000000000u);
  EXPECT_EQ(g.find_value("f16")->constant().data<uint16_t>()[1], 0xC000);
  EXPECT_EQ(g.find_value("f8")->constant().data<uint8_t>()[1], 0x40);  // 2.0 in float8e4m3fn
  const Tensor& sp = g.find_value("sp")->constant();
  EXPECT_EQ(std::vector<float>(sp.data<float>(), sp.data<float>() + 6), (std::vector<float>{0, 5, 0, 0, 6, 0}));
  const Tensor& c = g.find_value("c64")->constant();
  EXPECT_EQ(c.data<float>()[1], 2.0f);
}

}  // namespace
}  // namespace kiln::test
