// Whole models from the zoo (shared/models/make_models.py) on the GPU against
// the reference interpreter. The models are looked up in $KILN_ZOO_DIR
// (tools/gpu_check.sh writes them there); a missing model skips its test.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "gpu_test_util.h"
#include "onnx/importer.h"
#include "passes/pipeline.h"

namespace kiln::backends::cuda {
namespace {

std::string zoo_path(const std::string& name) {
  const char* dir = std::getenv("KILN_ZOO_DIR");
  std::string d = dir != nullptr ? dir : "build/.cache/zoo_models";
  return d + "/" + name + ".onnx";
}

// max |gpu - ref| / max |ref| over every output.
double relative_error(const std::vector<Tensor>& gpu, const std::vector<Tensor>& ref) {
  double worst = 0.0;
  for (size_t j = 0; j < ref.size(); ++j) {
    double scale = 1e-6, diff = 0.0;
    for (int64_t i = 0; i < ref[j].numel(); ++i) {
      scale = std::max(scale, std::fabs(test::element(ref[j], i)));
      double d = std::fabs(test::element(gpu[j], i) - test::element(ref[j], i));
      diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    }
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

std::vector<Tensor> model_inputs(const ir::Graph& g, int64_t batch, int64_t seq) {
  std::vector<Tensor> in;
  std::mt19937 rng(5);
  for (const ir::Value* v : g.inputs()) {
    if (v->name() == "input_ids" || v->name() == "attention_mask") {
      Tensor t = Tensor::empty(DataType::kInt64, {batch, seq});
      for (int64_t i = 0; i < t.numel(); ++i) {
        t.data<int64_t>()[i] =
            v->name() == "input_ids" ? static_cast<int64_t>(rng() % 30522) : (i % seq < seq - 3 ? 1 : 0);
      }
      in.push_back(t);
      continue;
    }
    Dims d;
    for (const Dim& dim : v->type().shape.dims()) d.push_back(dim.known() ? dim.value : batch);
    in.push_back(test::random_tensor(d, 6));
  }
  return in;
}

// The graph's plans against `ref`: fp32 on the emulator without a GPU, every
// precision on the GPU (and a replay of the captured CUDA graph).
void check_model(const ir::Graph& g, const std::vector<Tensor>& in, const std::vector<Tensor>& ref);

class GpuModel : public ::testing::TestWithParam<const char*> {};

// The model as imported and as the optimizer leaves it (kiln.Attention,
// kiln.Pointwise and the fused ops), against the reference on the imported graph.
TEST_P(GpuModel, MatchesReferenceAtEveryPrecision) {
  std::string path = zoo_path(GetParam());
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found (set KILN_ZOO_DIR)";
  bool big = std::string(GetParam()) == "resnet18";
  if (device_count() == 0 && big) GTEST_SKIP() << no_gpu_reason();
  auto imported = onnx::import_model_file(path);
  ASSERT_TRUE(imported.is_ok()) << imported.status().to_string();
  std::vector<Tensor> in = model_inputs(*imported->graph, 2, 16);
  std::vector<Tensor> ref = test::run_reference(*imported->graph, in);
  ASSERT_FALSE(ref.empty());
  // The optimized graphs of the large CNNs hold nothing the small ones do not
  // (fused convolutions): only the small models run twice, to keep the GPU check short.
  const bool small = std::string(GetParam()).rfind("tiny", 0) == 0 || std::string(GetParam()) == "bert_tiny";
  for (bool optimized : {false, true}) {
    if (optimized && !small) continue;
    SCOPED_TRACE(optimized ? "optimized graph" : "imported graph");
    auto model = onnx::import_model_file(path);
    ASSERT_TRUE(model.is_ok()) << model.status().to_string();
    if (optimized) {
      auto report = passes::optimize(*model->graph);
      ASSERT_TRUE(report.is_ok()) << report.status().to_string();
    }
    check_model(*model->graph, in, ref);
  }
  if (device_count() == 0) GTEST_SKIP() << no_gpu_reason() << " (fp32 plans checked on the CPU emulator)";
}

void check_model(const ir::Graph& g, const std::vector<Tensor>& in, const std::vector<Tensor>& ref) {
  if (device_count() == 0) {  // the fp32 plan on the CPU emulator
    std::vector<Dims> dims;
    std::vector<DataType> types;
    for (const Tensor& t : in) {
      dims.push_back(t.dims());
      types.push_back(t.dtype());
    }
    auto plan = build_plan(g, dims, types, PlanOptions{});
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    auto out = test::emulate_plan(*plan, in);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_LE(relative_error(*out, ref), 1e-4) << plan->to_string();
    return;
  }
  for (Precision p : {Precision::kFp32, Precision::kTf32, Precision::kFp16, Precision::kBf16}) {
    GpuOptions o;
    o.precision = p;
    auto engine = GpuEngine::create(g, o);
    if (!engine.is_ok()) {  // go on with the other precisions
      ADD_FAILURE() << precision_name(p) << ": " << engine.status().to_string();
      continue;
    }
    auto out = (*engine)->run(in);
    if (!out.is_ok()) {
      ADD_FAILURE() << precision_name(p) << ": " << out.status().to_string();
      continue;
    }
    ASSERT_EQ(out->size(), ref.size());
    double err = relative_error(*out, ref);
    double tol = p == Precision::kFp32 ? 1e-3 : p == Precision::kBf16 ? 1e-1 : 3e-2;
    EXPECT_LE(err, tol) << "at " << precision_name(p) << "\n" << (*engine)->plan_summary();
    // A second run replays the captured graph: same results (within the
    // tolerance, should a library pick a reduction order per launch).
    auto again = (*engine)->run(in);
    ASSERT_TRUE(again.is_ok()) << again.status().to_string();
    EXPECT_LE(relative_error(*again, *out), tol) << "replay differs";
  }
}

INSTANTIATE_TEST_SUITE_P(Zoo, GpuModel,
                         ::testing::Values("tiny_mlp", "tiny_cnn", "bert_tiny", "mobilenetv2", "resnet18"));

}  // namespace
}  // namespace kiln::backends::cuda

namespace kiln::backends::cuda {
namespace {

// Host-only: every zoo model lowers at every precision, as imported and
// optimized (no GPU needed).
TEST(GpuModelPlan, ZooModelsLower) {
  for (const char* name : {"tiny_mlp", "tiny_cnn", "bert_tiny", "mobilenetv2", "resnet18", "resnet50", "bert_base"}) {
    for (bool optimized : {false, true}) {
      std::string path = zoo_path(name);
      if (!std::filesystem::exists(path)) continue;
      SCOPED_TRACE(std::string(name) + (optimized ? " optimized" : ""));
      auto model = onnx::import_model_file(path);
      ASSERT_TRUE(model.is_ok()) << model.status().to_string();
      if (optimized) {
        auto report = passes::optimize(*model->graph);
        ASSERT_TRUE(report.is_ok()) << report.status().to_string();
      }
      const ir::Graph& g = *model->graph;
      ASSERT_TRUE(check_graph_supported(g).is_ok()) << check_graph_supported(g).to_string();
      std::vector<Tensor> in = model_inputs(g, 2, 16);
      std::vector<Dims> dims;
      std::vector<DataType> types;
      for (const Tensor& t : in) {
        dims.push_back(t.dims());
        types.push_back(t.dtype());
      }
      for (Precision p : {Precision::kFp32, Precision::kFp16}) {
        PlanOptions o;
        o.precision = p;
        auto plan = build_plan(g, dims, types, o);
        ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
        EXPECT_GT(plan->steps.size(), 2u);
      }
    }
  }
}

}  // namespace
}  // namespace kiln::backends::cuda
