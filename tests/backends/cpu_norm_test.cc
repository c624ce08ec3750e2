// Differential tests of the Softmax and LayerNormalization tactics against
// their reference kernels. Tolerance: 1e-5 relative to max(1, |value|) for
// softmax probabilities, 1e-4 for layer norm outputs (the reference works in
// double; the tactics in float).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "backends/cpu/tactics.h"
#include "cpu_test_util.h"

namespace kiln::backends::cpu::test {
namespace {

using ir::Attribute;

std::vector<Isa> row_isas() {
  std::vector<Isa> out = {Isa::kGeneric};
  if (detect_isa() >= Isa::kAvx2) out.push_back(Isa::kAvx2);
  return out;
}

void check(const Tactic& tactic, OneNode& g, float rel, const std::string& what) {
  ASSERT_TRUE(tactic.supports(g.node())) << tactic.name() << " " << what;
  auto want = g.run_reference(g.feeds());
  ASSERT_TRUE(want.is_ok()) << want.status().to_string();
  Tensor mag = want->clone();
  for (float& v : mag.span<float>()) v = std::max(1.0f, std::fabs(v));
  auto kernel = tactic.prepare(g.node());
  ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    auto got = g.run(**kernel, &pool);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    expect_close(*got, *want, mag, rel, std::string(tactic.name()) + " " + what);
  }
}

TEST(CpuSoftmax, MatchesReference) {
  uint32_t seed = 1;
  for (const Dims& dims : std::vector<Dims>{{1}, {3, 7}, {2, 8}, {4, 13}, {2, 12, 128}, {2, 1000}}) {
    Tensor x = random_tensor(dims, seed++, -20.0f, 20.0f);
    OneNode g("", "Softmax", {{x}}, {}, 13);
    for (Isa isa : row_isas()) check(*make_softmax_tactic(isa), g, 1e-5f, dims_to_string(dims));
  }
  // Before opset 13, rows are the 2-D coercion at `axis`: any axis works.
  Tensor x = random_tensor({2, 3, 5}, 9);
  OneNode legacy("", "Softmax", {{x}}, {Attribute::make_int("axis", 1)}, 11);
  for (Isa isa : row_isas()) check(*make_softmax_tactic(isa), legacy, 1e-5f, "opset 11 axis 1");
}

TEST(CpuSoftmax, OtherAxesAndNonFiniteInputs) {
  Tensor x = random_tensor({3, 4}, 1);
  OneNode axis0("", "Softmax", {{x}}, {Attribute::make_int("axis", 0)}, 13);
  EXPECT_FALSE(make_softmax_tactic(Isa::kGeneric)->supports(axis0.node()));
  // Inf and NaN rows go to the reference kernel, which defines them.
  Tensor y = random_tensor({3, 9}, 2);
  y.data<float>()[3] = std::numeric_limits<float>::infinity();
  y.data<float>()[12] = std::numeric_limits<float>::quiet_NaN();
  OneNode g("", "Softmax", {{y}}, {}, 13);
  auto want = g.run_reference(g.feeds());
  ASSERT_TRUE(want.is_ok());
  for (Isa isa : row_isas()) {
    auto kernel = make_softmax_tactic(isa)->prepare(g.node());
    ASSERT_TRUE(kernel.is_ok());
    auto got = g.run(**kernel, nullptr);
    ASSERT_TRUE(got.is_ok());
    expect_same(*got, *want, "softmax with Inf and NaN");
  }
}

TEST(CpuLayerNorm, MatchesReference) {
  uint32_t seed = 10;
  struct Case {
    Dims x;
    bool bias;
    float eps;
  };
  for (const Case& c : std::vector<Case>{{{2, 5, 768}, true, 1e-12f}, {{3, 13}, false, 1e-5f}, {{1, 7}, true, 1e-3f}}) {
    Tensor x = random_tensor(c.x, seed++, -3.0f, 5.0f);
    Tensor scale = random_tensor({c.x.back()}, seed++), bias = random_tensor({c.x.back()}, seed++);
    std::vector<NodeInput> in = {{x}, {scale, true}};
    if (c.bias) in.push_back({bias, true});
    OneNode g("", "LayerNormalization", in, {Attribute::make_float("epsilon", c.eps)}, 17);
    for (Isa isa : row_isas()) check(*make_layernorm_tactic(isa), g, 1e-4f, dims_to_string(c.x));
  }
}

TEST(CpuLayerNorm, DeclinesStatisticsOutputsAndOtherAxes) {
  Tensor x = random_tensor({2, 6}, 1), scale = random_tensor({6}, 2);
  OneNode axis0("", "LayerNormalization", {{x}, {scale, true}}, {Attribute::make_int("axis", 0)}, 17);
  EXPECT_FALSE(make_layernorm_tactic(Isa::kGeneric)->supports(axis0.node()));
  OneNode stats("", "LayerNormalization", {{x}, {scale, true}}, {}, 17);
  ir::Value* mean = *stats.node().graph()->add_value("mean");
  stats.node().set_output(1, mean);
  EXPECT_FALSE(make_layernorm_tactic(Isa::kGeneric)->supports(stats.node()));
}

// BatchNormalization: per-channel affine from the running statistics. Tolerance
// 1e-5 relative to max(1, |value|) (the reference works in double).
TEST(CpuBatchNorm, MatchesReference) {
  uint32_t seed = 40;
  for (const Dims& dims : std::vector<Dims>{{2, 3}, {1, 8, 5, 5}, {2, 16, 7, 9}, {1, 4, 3, 4, 5}, {3, 5, 1}}) {
    const int64_t c = dims[1];
    for (bool constant : {true, false}) {
      for (int64_t opset : {9, 15}) {
        Tensor x = random_tensor(dims, seed++, -4.0f, 4.0f);
        Tensor scale = random_tensor({c}, seed++, 0.5f, 2.0f);
        Tensor bias = random_tensor({c}, seed++);
        Tensor mean = random_tensor({c}, seed++);
        Tensor var = random_tensor({c}, seed++, 0.01f, 3.0f);
        OneNode g("", "BatchNormalization",
                  {{x}, {scale, constant}, {bias, constant}, {mean, constant}, {var, constant}},
                  {Attribute::make_float("epsilon", 1e-3f)}, opset);
        check(*make_batchnorm_tactic(), g, 1e-5f,
              dims_to_string(dims) + (constant ? " constant" : " fed") + " opset " + std::to_string(opset));
      }
    }
  }
}

TEST(CpuBatchNorm, NonFiniteValuesAndRefusedForms) {
  Tensor x = random_tensor({1, 2, 3, 3}, 3);
  x.data<float>()[4] = std::numeric_limits<float>::infinity();
  x.data<float>()[11] = std::numeric_limits<float>::quiet_NaN();
  Tensor p = random_tensor({2}, 4, 0.5f, 1.5f);
  OneNode g("", "BatchNormalization", {{x}, {p, true}, {p, true}, {p, true}, {p, true}}, {}, 15);
  auto want = g.run_reference(g.feeds());
  ASSERT_TRUE(want.is_ok());
  auto kernel = make_batchnorm_tactic()->prepare(g.node());
  ASSERT_TRUE(kernel.is_ok());
  auto got = g.run(**kernel, nullptr);
  ASSERT_TRUE(got.is_ok());
  EXPECT_TRUE(std::isinf(got->data<float>()[4]) && got->data<float>()[4] > 0);
  EXPECT_TRUE(std::isnan(got->data<float>()[11]));
  EXPECT_NEAR(got->data<float>()[0], want->data<float>()[0], 1e-5f);
  // Training mode and the pre-opset-9 per-activation form stay on the reference kernel.
  OneNode training("", "BatchNormalization", {{x}, {p, true}, {p, true}, {p, true}, {p, true}},
                   {Attribute::make_int("training_mode", 1)}, 15);
  EXPECT_FALSE(make_batchnorm_tactic()->supports(training.node()));
  Tensor per = random_tensor({2, 9}, 5);
  OneNode spatial0("", "BatchNormalization", {{x}, {per, true}, {per, true}, {per, true}, {per, true}},
                   {Attribute::make_int("spatial", 0)}, 7);
  EXPECT_FALSE(make_batchnorm_tactic()->supports(spatial0.node()));
}

}  // namespace
}  // namespace kiln::backends::cpu::test
