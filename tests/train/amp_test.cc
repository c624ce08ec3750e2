// AMP: loss scaling against fp16 overflow (skip, back off, recover) and
// underflow (gradients that flush to zero unscaled survive scaled), scale
// growth, and the precision plans of the levels.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kiln/train.h"
#include "train/amp.h"
#include "train/model_builder.h"

namespace kiln::train {
namespace {

Tensor random_input(Dims dims, uint32_t seed) {
  Tensor t = Tensor::empty(DataType::kFloat32, dims);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  for (float& v : t.span<float>()) v = n(rng);
  return t;
}

Tensor labels_for(const Tensor& x, int64_t classes) {
  // A learnable rule: the class is the index of the largest of the first `classes` features.
  Tensor y = Tensor::empty(DataType::kInt64, {x.dim(0)});
  for (int64_t i = 0; i < x.dim(0); ++i) {
    const float* row = x.data<float>() + i * x.dim(1);
    y.data<int64_t>()[i] = std::max_element(row, row + classes) - row;
  }
  return y;
}

TEST(Amp, ParsesLevels) {
  auto o1 = parse_amp_level("O1").value();
  EXPECT_EQ(o1.level, AmpLevel::kO1);
  EXPECT_EQ(o1.low, Precision::kFp16);
  EXPECT_TRUE(o1.scaler.dynamic);
  EXPECT_EQ(o1.scaler.init_scale, 65536.0);
  EXPECT_EQ(o1.scaler.growth_interval, 2000);
  EXPECT_EQ(o1.scaler.growth_factor, 2.0);
  EXPECT_EQ(o1.scaler.backoff_factor, 0.5);
  auto bf = parse_amp_level("o2_bf16").value();
  EXPECT_EQ(bf.low, Precision::kBf16);
  EXPECT_FALSE(bf.scaler.dynamic);
  EXPECT_EQ(bf.name(), "O2-bf16");
  EXPECT_FALSE(parse_amp_level("O3").value().master_weights);
  EXPECT_FALSE(parse_amp_level("O4").is_ok());
  EXPECT_FALSE(parse_amp_level("O1-fp8").is_ok());
}

TEST(Amp, PrecisionPlansFollowTheLevels) {
  ir::Model m = build_sequential({1, 6, 6}, {"conv:4:3", "bn", "relu", "flatten", "linear:3"}, 0).value();
  std::vector<const ir::Value*> params;
  for (const ir::Value* v : m.graph->constants()) params.push_back(v);
  auto precision_of = [&](const PrecisionPlan& plan, const std::string& op) {
    for (const auto& n : m.graph->nodes()) {
      if (n->op_type() == op) return plan.nodes.at(n.get());
    }
    return Precision::kFp32;
  };
  PrecisionPlan o1 = make_precision_plan(*m.graph, parse_amp_level("O1").value(), params);
  EXPECT_EQ(precision_of(o1, "Conv"), Precision::kFp16);
  EXPECT_EQ(precision_of(o1, "BatchNormalization"), Precision::kFp32);
  EXPECT_EQ(precision_of(o1, "Relu"), Precision::kFp32);  // promoted: its input is BN's fp32 output
  EXPECT_EQ(precision_of(o1, "Gemm"), Precision::kFp16);
  EXPECT_TRUE(o1.values.empty());  // O1 keeps weights fp32
  PrecisionPlan o2 = make_precision_plan(*m.graph, parse_amp_level("O2").value(), params);
  EXPECT_EQ(precision_of(o2, "Relu"), Precision::kFp16);
  EXPECT_EQ(precision_of(o2, "BatchNormalization"), Precision::kFp32);
  PrecisionPlan o3 = make_precision_plan(*m.graph, parse_amp_level("O3-bf16").value(), params);
  EXPECT_EQ(precision_of(o3, "BatchNormalization"), Precision::kBf16);
}

TEST(Amp, OverflowSkipsTheStepBacksOffAndRecovers) {
  Model model = Model::sequential({6}, {"linear:16", "relu", "linear:3"}, 1).value();
  Optimizer opt = Optimizer::sgd(model, {.lr = 0.1, .momentum = 0.9}).value();
  AmpOptions options;
  options.init_scale = std::ldexp(1.0, 40);  // scaled fp16 gradients overflow
  ASSERT_TRUE(amp::initialize(model, opt, "O1", options).is_ok());
  Tensor x = random_input({32, 6}, 3);
  Tensor y = labels_for(x, 3);

  std::string w = model.parameter_names()[0];
  Tensor before = model.parameter(w).value().clone();
  Loss first = cross_entropy(model.forward(x).value(), y).value();
  ASSERT_TRUE(amp::scaled_backward(model, opt, first).is_ok());
  EXPECT_FALSE(opt.step().value());  // skipped
  EXPECT_EQ(opt.skipped_steps(), 1);
  EXPECT_EQ(opt.steps(), 0);
  EXPECT_EQ(opt.loss_scale(), std::ldexp(1.0, 39));
  Tensor after = model.parameter(w).value();
  for (int64_t i = 0; i < after.numel(); ++i) ASSERT_EQ(after.data<float>()[i], before.data<float>()[i]);

  double last = 0;
  for (int it = 0; it < 120; ++it) {
    Loss l = cross_entropy(model.forward(x).value(), y).value();
    ASSERT_TRUE(amp::scaled_backward(model, opt, l).is_ok());
    ASSERT_TRUE(opt.step().is_ok());
    last = l.value;
  }
  EXPECT_GT(opt.skipped_steps(), 10);  // backed off step by step from 2^40
  EXPECT_GT(opt.steps(), 50);          // then trained
  EXPECT_LE(opt.loss_scale(), std::ldexp(1.0, 20));
  EXPECT_LT(last, 0.5 * first.value);  // and the loss went down
}

TEST(Amp, InjectedInfSkipsTheStep) {
  Model model = Model::sequential({4}, {"linear:3"}, 2).value();
  Optimizer opt = Optimizer::adam(model, {.lr = 0.01}).value();
  ASSERT_TRUE(amp::initialize(model, opt, "O2").is_ok());
  Tensor x = random_input({8, 4}, 5);
  Loss l = cross_entropy(model.forward(x).value(), labels_for(x, 3)).value();
  l.grad.data<float>()[0] = std::numeric_limits<float>::quiet_NaN();
  ASSERT_TRUE(amp::scaled_backward(model, opt, l).is_ok());
  EXPECT_FALSE(opt.step().value());
  EXPECT_EQ(opt.loss_scale(), 32768.0);
  Loss ok = cross_entropy(model.forward(x).value(), labels_for(x, 3)).value();
  ASSERT_TRUE(amp::scaled_backward(model, opt, ok).is_ok());
  EXPECT_TRUE(opt.step().value());
}

TEST(Amp, ScaleGrowsAfterCleanSteps) {
  Model model = Model::sequential({4}, {"linear:3"}, 2).value();
  Optimizer opt = Optimizer::sgd(model, {.lr = 0.01}).value();
  AmpOptions options;
  options.init_scale = 256;
  options.growth_interval = 3;
  ASSERT_TRUE(amp::initialize(model, opt, "O1", options).is_ok());
  Tensor x = random_input({8, 4}, 5);
  for (int i = 0; i < 6; ++i) {
    Loss l = cross_entropy(model.forward(x).value(), labels_for(x, 3)).value();
    ASSERT_TRUE(amp::scaled_backward(model, opt, l).is_ok());
    ASSERT_TRUE(opt.step().value());
    EXPECT_EQ(opt.loss_scale(), i < 2 ? 256 : i < 5 ? 512 : 1024) << "after step " << i + 1;
  }
}

// Gradients around 1e-8 are below fp16's smallest subnormal (6e-8): without
// scaling the fp16 GEMM backward flushes them to zero; scaled by 2^16 they
// survive and, unscaled in fp32, match the fp32 gradients.
TEST(Amp, ScalingRescuesUnderflowingGradients) {
  Tensor x = random_input({8, 4}, 9);
  Tensor tiny = Tensor::empty(DataType::kFloat32, {8, 3});
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  for (float& v : tiny.span<float>()) v = 2e-8f * u(rng);
  Loss loss{0, tiny};

  auto grads_with = [&](const char* level, std::optional<double> scale) {
    Model model = Model::sequential({4}, {"linear:3"}, 2).value();
    Optimizer opt = Optimizer::sgd(model, {.lr = 1e-6}).value();
    AmpOptions options;
    options.init_scale = scale;
    if (scale) options.dynamic = false;
    EXPECT_TRUE(amp::initialize(model, opt, level, options).is_ok());
    EXPECT_TRUE(model.forward(x).is_ok());
    EXPECT_TRUE(amp::scaled_backward(model, opt, loss).is_ok());
    EXPECT_TRUE(opt.step().value());  // unscales the gradients in place
    return model.grad(model.parameter_names()[0]).value().clone();
  };
  Tensor fp32 = grads_with("O0", std::nullopt);
  Tensor unscaled = grads_with("O1", 1.0);
  Tensor scaled = grads_with("O1", 65536.0);
  // fp16 rounding of the inputs and of dY leaves ~1e-3 relative error per
  // product; sums with cancellation are compared against the largest gradient.
  float largest = 0;
  for (float v : fp32.span<float>()) largest = std::max(largest, std::abs(v));
  int64_t zero_unscaled = 0;
  for (int64_t i = 0; i < fp32.numel(); ++i) {
    float ref = fp32.data<float>()[i];
    ASSERT_NE(ref, 0.0f);
    zero_unscaled += unscaled.data<float>()[i] == 0.0f ? 1 : 0;
    EXPECT_NEAR(scaled.data<float>()[i], ref, 1e-2 * largest) << "element " << i;
  }
  EXPECT_EQ(zero_unscaled, fp32.numel());  // every unscaled fp16 gradient underflowed
}

TEST(Amp, O3KeepsWeightsInHalfPrecision) {
  Model model = Model::sequential({4}, {"linear:3"}, 2).value();
  Optimizer opt = Optimizer::sgd(model, {.lr = 0.1}).value();
  ASSERT_TRUE(amp::initialize(model, opt, "O3").is_ok());
  Tensor x = random_input({8, 4}, 5);
  Loss l = cross_entropy(model.forward(x).value(), labels_for(x, 3)).value();
  ASSERT_TRUE(amp::scaled_backward(model, opt, l).is_ok());
  ASSERT_TRUE(opt.step().value());
  for (float v : model.parameter(model.parameter_names()[0]).value().span<float>()) {
    EXPECT_EQ(v, round_to(Precision::kFp16, v));
  }
}

}  // namespace
}  // namespace kiln::train
