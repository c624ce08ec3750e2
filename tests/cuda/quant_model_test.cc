// Q/DQ models written by Kiln's own quantizer (src/quant, what `kiln
// quantize` exports) lower for the GPU with int8 GEMMs, and their fp32 plan
// on the CPU emulator (and, with a GPU, the fp32/fp16 engines) follows the
// reference interpreter; optimized (kiln.QGemm), tiny_mlp's plan is exact.
// The zoo models are looked up in $KILN_ZOO_DIR like model_test.cc; a
// missing model skips.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "gpu_test_util.h"
#include "onnx/importer.h"
#include "passes/pipeline.h"
#include "quant/quantizer.h"

namespace kiln::backends::cuda {
namespace {

std::string zoo_model(const std::string& name) {
  const char* dir = std::getenv("KILN_ZOO_DIR");
  return std::string(dir != nullptr ? dir : "build/.cache/zoo_models") + "/" + name + ".onnx";
}

std::vector<Tensor> inputs_for(const ir::Graph& g, int64_t batch, int64_t seq, uint32_t seed) {
  std::vector<Tensor> in;
  std::mt19937 rng(seed);
  for (const ir::Value* v : g.inputs()) {
    if (v->type().dtype == DataType::kInt64) {  // input_ids / attention_mask
      Tensor t = Tensor::empty(DataType::kInt64, {batch, seq});
      for (int64_t i = 0; i < t.numel(); ++i) {
        t.data<int64_t>()[i] = v->name() == "attention_mask" ? (i % seq < seq - 3 ? 1 : 0) : rng() % 1000;
      }
      in.push_back(t);
      continue;
    }
    Dims d;
    for (const Dim& dim : v->type().shape.dims()) d.push_back(dim.known() ? dim.value : batch);
    in.push_back(test::random_tensor(d, seed));
  }
  return in;
}

// max |a - b| / max |b| over every output.
double relative_error(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double worst = 0.0;
  for (size_t j = 0; j < b.size(); ++j) {
    double scale = 1e-6, diff = 0.0;
    for (int64_t i = 0; i < b[j].numel(); ++i) {
      scale = std::max(scale, std::fabs(test::element(b[j], i)));
      double d = std::fabs(test::element(a[j], i) - test::element(b[j], i));
      diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    }
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

TEST(GpuInt8Models, KilnQuantizedModelsLowerToInt8Gemms) {
  bool any = false;
  for (const char* name : {"tiny_mlp", "bert_tiny"}) {
    std::string path = zoo_model(name);
    if (!std::filesystem::exists(path)) continue;
    any = true;
    SCOPED_TRACE(name);
    auto model = onnx::import_model_file(path);
    ASSERT_TRUE(model.is_ok()) << model.status().to_string();
    ir::Graph& g = *model->graph;
    quant::QuantizeOptions qo;
    qo.calibrator = "minmax";
    for (uint32_t seed : {1u, 2u}) {
      quant::Feed feed;
      std::vector<Tensor> in = inputs_for(g, 2, 16, seed);
      for (size_t i = 0; i < in.size(); ++i) feed[g.inputs()[i]->name()] = in[i];
      qo.batches.push_back(feed);
    }
    auto report = quant::quantize_model(g, qo);
    ASSERT_TRUE(report.is_ok()) << report.status().to_string();
    ASSERT_FALSE(report->int8_layers.empty());
    ASSERT_TRUE(check_graph_supported(g).is_ok()) << check_graph_supported(g).to_string();

    std::vector<Tensor> in = inputs_for(g, 2, 16, 3);
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
      ASSERT_TRUE(plan.is_ok()) << precision_name(p) << ": " << plan.status().to_string();
      // Every quantized layer is an int8 GEMM, or a float one saying why not
      // (tiny_mlp's last layer has N = 10).
      size_t int8 = 0, fallback = 0;
      for (const Step& s : plan->steps) {
        int8 += s.kind == StepKind::kGemm && s.gemm.int8 ? 1 : 0;
        fallback += s.kind == StepKind::kGemm && s.label.find("not int8") != std::string::npos ? 1 : 0;
      }
      EXPECT_GT(int8, 0u) << plan->to_string();
      EXPECT_EQ(int8 + fallback, report->int8_layers.size()) << plan->to_string();
      if (p != Precision::kFp32) continue;
      std::vector<Tensor> ref = test::run_reference(g, in);
      ASSERT_FALSE(ref.empty());
      auto out = test::emulate_plan(*plan, in);
      ASSERT_TRUE(out.is_ok()) << out.status().to_string();
      // Exact int32 sums against the reference's float ones: a Q downstream
      // may round one step apart, nothing more.
      EXPECT_LE(relative_error(*out, ref), 2e-2) << plan->to_string();
    }
    if (device_count() > 0) {  // the Q/DQ model on the GPU
      std::vector<Tensor> ref = test::run_reference(g, in);
      for (Precision p : {Precision::kFp32, Precision::kFp16}) {
        GpuOptions o;
        o.precision = p;
        auto engine = GpuEngine::create(g, o);
        ASSERT_TRUE(engine.is_ok()) << precision_name(p) << ": " << engine.status().to_string();
        auto out = (*engine)->run(in);
        ASSERT_TRUE(out.is_ok()) << precision_name(p) << ": " << out.status().to_string();
        // fp16 rounds each Q's input to 16 bits first: some q move by a step.
        EXPECT_LE(relative_error(*out, ref), p == Precision::kFp32 ? 2e-2 : 0.1) << precision_name(p) << "\n"
                                                                                 << (*engine)->plan_summary();
      }
    }
    if (std::string(name) != "tiny_mlp") continue;
    // The optimized graph (what the CPU builder runs): kiln.QGemm layers,
    // requantized on the GPU exactly as the reference kernel does.
    ASSERT_TRUE(passes::optimize(g).is_ok());
    auto plan = build_plan(g, dims, types, PlanOptions{});
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    size_t qgemm_steps = 0;
    for (const Step& s : plan->steps) {
      qgemm_steps += s.kind == StepKind::kGemm && s.gemm.int8 && s.node != nullptr && s.node->op_type() == "QGemm";
    }
    EXPECT_EQ(qgemm_steps, report->int8_layers.size()) << plan->to_string();
    std::vector<Tensor> ref = test::run_reference(g, in);
    auto out = test::emulate_plan(*plan, in);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ(relative_error(*out, ref), 0.0) << plan->to_string();
    if (device_count() > 0) {
      auto engine = GpuEngine::create(g, GpuOptions{});
      ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
      auto got = (*engine)->run(in);
      ASSERT_TRUE(got.is_ok()) << got.status().to_string();
      EXPECT_EQ(relative_error(*got, ref), 0.0) << (*engine)->plan_summary();
    }
  }
  if (!any) GTEST_SKIP() << "no zoo models (set KILN_ZOO_DIR)";
}

}  // namespace
}  // namespace kiln::backends::cuda
