// Calibrators, the calibration cache, Q/DQ insertion and its lowering to
// int8 layers on a small MLP (MatMul-Relu-Gemm), run with the reference
// interpreter against the float model (tolerance: a few output quantization steps).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "exec/program.h"
#include "passes/pipeline.h"
#include "quant/quantizer.h"

namespace kiln::quant {
namespace {

Tensor random_tensor(const Dims& dims, uint32_t seed, float sd = 1.0f) {
  Tensor t = Tensor::empty(DataType::kFloat32, dims);
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, sd);
  for (float& v : t.span<float>()) v = dist(gen);
  return t;
}

TEST(Calibrator, MinMaxCoversTheRangeAndZero) {
  TensorStats s;
  std::vector<float> v = {0.5f, 2.0f, 1.0f};
  ASSERT_TRUE(s.observe_range(v, "t").is_ok());
  QuantRange r = choose_range(s, Calibrator::kMinMax);
  EXPECT_EQ(r.zero_point, 0);  // the range widens to include 0
  EXPECT_NEAR(r.scale, 2.0 / 255, 1e-7);
  std::vector<float> neg = {-1.0f, 3.0f};
  TensorStats t;
  ASSERT_TRUE(t.observe_range(neg, "t").is_ok());
  r = choose_range(t, Calibrator::kMinMax);
  EXPECT_EQ(r.zero_point, 64);
}

TEST(Calibrator, RejectsNanAndInfNamingTheTensor) {
  TensorStats s;
  std::vector<float> v = {1.0f, NAN};
  Status st = s.observe_range(v, "tensor 'h1'");
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("NaN"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("h1"), std::string::npos) << st.message();
  std::vector<float> w = {INFINITY};
  EXPECT_NE(s.observe_range(w, "x").message().find("Inf"), std::string::npos);
}

TEST(Calibrator, EntropyAndPercentileClipOutliers) {
  // A Gaussian plus a few huge outliers: minmax spans the outliers, entropy
  // and percentile clip near the bulk of the distribution.
  Tensor t = random_tensor({20000}, 3);
  t.data<float>()[0] = 60.0f;
  t.data<float>()[1] = -55.0f;
  TensorStats s;
  ASSERT_TRUE(s.observe_range(t.span<float>(), "t").is_ok());
  s.observe_histogram(t.span<float>());
  const double e = entropy_threshold(s.histogram, s.amax());
  const double p = percentile_threshold(s.histogram, s.amax(), 99.9);
  EXPECT_GT(e, 2.0);
  EXPECT_LT(e, 20.0);
  EXPECT_GT(p, 2.5);
  EXPECT_LT(p, 5.0);
  QuantRange r = choose_range(s, Calibrator::kEntropy);
  EXPECT_EQ(r.zero_point, 128);
  EXPECT_NEAR(r.scale, e / 127, 1e-6);
  EXPECT_FALSE(parse_calibrator("kl").is_ok());
}

TEST(Calibrator, CacheRoundTripsAndRejectsGarbage) {
  const std::string path = ::testing::TempDir() + "/kiln_calib.cache";
  CalibrationTable t;
  t.calibrator = "minmax";
  t.batches = 3;
  t.ranges["x"] = QuantRange{0.0125f, 17, -0.2125, 2.975};
  ASSERT_TRUE(save_calibration_cache(t, path).is_ok());
  auto back = load_calibration_cache(path);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->calibrator, "minmax");
  EXPECT_EQ(back->batches, 3);
  EXPECT_FLOAT_EQ(back->ranges.at("x").scale, 0.0125f);
  EXPECT_EQ(back->ranges.at("x").zero_point, 17);
  std::ofstream(path) << "kiln-calibration 1 minmax 1\nx 0.1 900 0 1\n";
  EXPECT_FALSE(load_calibration_cache(path).is_ok());
  std::ofstream(path) << "hello";
  EXPECT_FALSE(load_calibration_cache(path).is_ok());
  EXPECT_FALSE(load_calibration_cache(path + ".missing").is_ok());
}

// x[N, 16] -> MatMul(W1 [16, 24]) -> Relu -> Gemm(W2 [8, 24], transB, bias) -> y
std::shared_ptr<ir::Graph> make_mlp() {
  auto g = std::make_shared<ir::Graph>("mlp");
  g->set_opset_imports({{"", 17}});
  ir::Value* x = *g->add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape({Dim(), Dim(16)})));
  g->add_input(x);
  ir::Value* w1 = *g->add_constant("w1", random_tensor({16, 24}, 1, 0.3f));
  ir::Value* w2 = *g->add_constant("w2", random_tensor({8, 24}, 2, 0.3f));
  ir::Value* b2 = *g->add_constant("b2", random_tensor({8}, 3, 0.1f));
  ir::Value* h = *g->add_value("h", ir::ValueType::tensor(DataType::kFloat32));
  ir::Value* a = *g->add_value("a", ir::ValueType::tensor(DataType::kFloat32));
  ir::Value* y = *g->add_value("y", ir::ValueType::tensor(DataType::kFloat32));
  for (ir::Node* n : {g->add_node("MatMul", {x, w1}, {h}, "mm1"), g->add_node("Relu", {h}, {a}, "relu1"),
                      g->add_node("Gemm", {a, w2, b2}, {y}, "fc2")}) {
    n->set_opset(17);
    if (n->op_type() == "Gemm") n->set_attr(ir::Attribute::make_int("transB", 1));
  }
  g->add_output(y);
  return g;
}

std::vector<Feed> batches(int count, int64_t rows) {
  std::vector<Feed> out;
  for (int i = 0; i < count; ++i) out.push_back({{"x", random_tensor({rows, 16}, 100 + static_cast<uint32_t>(i))}});
  return out;
}

Result<Tensor> run(const ir::Graph& g, const Tensor& x) {
  KILN_ASSIGN_OR_RETURN(auto program, exec::Program::compile(g));
  std::vector<Datum> in = {Datum(x)};
  KILN_ASSIGN_OR_RETURN(auto out, exec::execute(*program, in, nullptr));
  return out[0].tensor();
}

int count_ops(const ir::Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes()) n += node->op_type() == op ? 1 : 0;
  return n;
}

TEST(Quantizer, CalibratesInsertsQdqAndLowersToInt8Layers) {
  for (Calibrator c : {Calibrator::kMinMax, Calibrator::kEntropy, Calibrator::kPercentile}) {
    auto g = make_mlp();
    Tensor x = random_tensor({32, 16}, 999);
    auto want = run(*g, x);
    ASSERT_TRUE(want.is_ok()) << want.status().to_string();
    auto targets = find_targets(*g, {});
    ASSERT_TRUE(targets.is_ok()) << targets.status().to_string();
    EXPECT_EQ(targets->layers.size(), 2u);
    EXPECT_EQ(targets->tensors, (std::vector<std::string>{"x", "a", "y"}));
    auto table = calibrate(*g, *targets, batches(4, 32), c);
    ASSERT_TRUE(table.is_ok()) << table.status().to_string();
    EXPECT_EQ(g->outputs().size(), 1u);  // restored
    auto layers = insert_qdq(*g, *targets, *table);
    ASSERT_TRUE(layers.is_ok()) << layers.status().to_string();
    EXPECT_EQ(*layers, 2);
    ASSERT_TRUE(g->verify().is_ok());
    auto reports = passes::optimize(*g);
    ASSERT_TRUE(reports.is_ok()) << reports.status().to_string();
    EXPECT_EQ(count_ops(*g, "QGemm"), 2) << g->to_string();
    EXPECT_EQ(count_ops(*g, "MatMul") + count_ops(*g, "Gemm"), 0);
    auto got = run(*g, x);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    const QuantRange& yr = table->ranges.at("y");
    double max_err = 0, max_y = 0, sum_err = 0;
    for (int64_t i = 0; i < got->numel(); ++i) {
      const double e = std::fabs(got->data<float>()[i] - want->data<float>()[i]);
      max_err = std::max(max_err, e);
      sum_err += e;
      max_y = std::max<double>(max_y, std::fabs(want->data<float>()[i]));
    }
    // minmax: the two layers' rounding only. Entropy and percentile clip the
    // tails of x and the hidden layer (on 128 calibration rows), which shows
    // in the worst element more than on average.
    EXPECT_LT(max_err, c == Calibrator::kMinMax ? 4 * yr.scale : 0.25 * max_y) << calibrator_name(c);
    EXPECT_LT(sum_err / static_cast<double>(got->numel()), 0.03 * max_y) << calibrator_name(c);
  }
}

TEST(Quantizer, BadCalibrationDataAndOverridesGiveClearErrors) {
  auto g = make_mlp();
  auto targets = find_targets(*g, {});
  ASSERT_TRUE(targets.is_ok());
  auto expect_error = [&](std::vector<Feed> b, const std::string& text) {
    auto r = calibrate(*g, *targets, b, Calibrator::kEntropy);
    ASSERT_FALSE(r.is_ok()) << text;
    EXPECT_NE(r.status().message().find(text), std::string::npos) << r.status().message();
  };
  expect_error({}, "empty");
  expect_error({{{"x", random_tensor({4, 15}, 1)}}}, "shape");
  expect_error({{{"x", Tensor::empty(DataType::kInt32, {4, 16})}}}, "int32");
  expect_error({{{"y", random_tensor({4, 16}, 1)}}}, "not an input");
  expect_error({{}}, "lacks input 'x'");
  Tensor nan = random_tensor({4, 16}, 1);
  nan.data<float>()[5] = NAN;
  expect_error({{{"x", nan}}}, "NaN");
  auto unknown = find_targets(*g, {"conv9"});
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find("conv9"), std::string::npos);
  auto kept = find_targets(*g, {"fc2"});
  ASSERT_TRUE(kept.is_ok());
  EXPECT_EQ(kept->layers.size(), 1u);
}

}  // namespace
}  // namespace kiln::quant

namespace kiln::quant {
namespace {

TEST(Quantizer, AccuracyBudgetKeepsSensitiveLayersInFp32) {
  QuantizeOptions o;
  o.batches = batches(3, 64);
  o.calibrator = "percentile";
  // A zero budget: layers go back to fp32 until the predictions agree with fp32 exactly.
  o.max_accuracy_drop = 0;
  auto g = make_mlp();
  auto r = quantize_model(*g, o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_FALSE(r->sensitivity.empty());
  EXPECT_EQ(r->int8_layers.size() + r->fp32_layers.size(), 2u);
  // A budget of 100 points: everything stays int8.
  o.max_accuracy_drop = 100;
  auto g2 = make_mlp();
  auto all = quantize_model(*g2, o);
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  EXPECT_EQ(all->int8_layers.size(), 2u);
  EXPECT_TRUE(all->fp32_layers.empty());
  // Only a cache: no data to measure on.
  o.batches.clear();
  o.cache = ::testing::TempDir() + "/kiln_budget.cache";
  QuantizeOptions write = o;
  write.batches = batches(1, 8);
  write.max_accuracy_drop = -1;
  auto g3 = make_mlp();
  ASSERT_TRUE(quantize_model(*g3, write).is_ok());
  auto g4 = make_mlp();
  EXPECT_FALSE(quantize_model(*g4, o).is_ok());
}

}  // namespace
}  // namespace kiln::quant
