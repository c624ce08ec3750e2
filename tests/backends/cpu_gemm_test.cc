// Differential tests of the MatMul / Gemm / kiln.FusedMatMul / kiln.FusedGemm
// tactics on every ISA this machine runs, against the reference kernels of
// MatMul and Gemm with the fused epilogue applied in the test.
// Tolerance: 1e-4 relative to the magnitude of the accumulation (the
// reference op run on |A|, |B|, |C|, plus |Z|).
#include <gtest/gtest.h>

#include <bit>
#include <limits>
#include <random>

#include "backends/cpu/gemm.h"
#include "backends/cpu/microkernel.h"
#include "backends/cpu/tactics.h"
#include "core/float_types.h"
#include "cpu_test_util.h"

namespace kiln::backends::cpu::test {
namespace {

using ir::Attribute;
constexpr float kRel = 1e-4f;

// Runs tactic on the node and compares with `want` (computed by the caller).
void check_tactic(const Tactic& tactic, OneNode& g, const Tensor& want, const Tensor& mag, const std::string& what) {
  ASSERT_TRUE(tactic.supports(g.node())) << tactic.name() << " " << what;
  auto kernel = tactic.prepare(g.node());
  ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    auto got = g.run(**kernel, &pool);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    expect_close(*got, want, mag, kRel,
                 std::string(tactic.name()) + " " + what + " threads=" + std::to_string(threads));
  }
  // A plan stores the packed weights and loads them back.
  auto loaded = tactic.load(g.node(), (*kernel)->serialize());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  ThreadPool pool(2);
  auto again = g.run(**loaded, &pool);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  expect_close(*again, want, mag, kRel, std::string(tactic.name()) + " " + what + " after load");
}

struct MatMulCase {
  Dims a, b;
  bool b_const;
};

TEST(CpuMatMul, MatchesReferenceOnEveryIsa) {
  const std::vector<MatMulCase> cases = {
      {{1, 1}, {1, 1}, true},           {{7, 13}, {13, 5}, true},      {{33, 300}, {300, 65}, true},
      {{2, 3, 17, 40}, {40, 33}, true}, {{64}, {64, 48}, true},        {{100, 513}, {513, 37}, true},
      {{2, 5, 7}, {2, 7, 9}, false},    {{1, 5, 7}, {3, 7, 9}, false}, {{20, 31}, {31, 47}, false},
      {{4, 0}, {0, 6}, true},
  };
  uint32_t seed = 1;
  for (const auto& c : cases) {
    Tensor a = random_tensor(c.a, seed++), b = random_tensor(c.b, seed++);
    OneNode g("", "MatMul", {{a}, {b, c.b_const}}, {});
    auto want = g.run_reference({a, b});
    ASSERT_TRUE(want.is_ok()) << want.status().to_string();
    auto mag = g.run_reference({abs_tensor(a), abs_tensor(b)});
    ASSERT_TRUE(mag.is_ok());
    for (Isa isa : supported_isas()) {
      check_tactic(*make_matmul_tactic(isa, false), g, *want, *mag,
                   dims_to_string(c.a) + "x" + dims_to_string(c.b) + (c.b_const ? " const" : ""));
    }
    auto onednn = make_onednn_matmul_tactic();
    EXPECT_EQ(onednn->supports(g.node()), c.b_const && c.b.size() == 2);
    if (onednn->supports(g.node()) && c.a.back() > 0) check_tactic(*onednn, g, *want, *mag, dims_to_string(c.a));
  }
}

TEST(CpuFusedMatMul, EveryActivationBiasAndResidual) {
  const std::vector<MatMulCase> cases = {{{2, 9, 70}, {70, 35}, true}, {{3, 8, 16}, {3, 16, 33}, false}};
  uint32_t seed = 100;
  for (const auto& c : cases) {
    Tensor a = random_tensor(c.a, seed++), b = random_tensor(c.b, seed++);
    const int64_t n = c.b.back();
    Tensor bias = random_tensor({n}, seed++);
    OneNode plain("", "MatMul", {{a}, {b, c.b_const}}, {});
    Tensor base = *plain.run_reference({a, b});
    Tensor base_mag = *plain.run_reference({abs_tensor(a), abs_tensor(b)});
    Tensor z = random_tensor(base.dims(), seed++);
    for (const ops::Epilogue& act : all_epilogues()) {
      for (int variant = 0; variant < 3; ++variant) {  // bias only, + residual before, + residual after
        ops::Epilogue e = act;
        e.residual_after_activation = variant == 2;
        const bool with_z = variant > 0;
        std::vector<NodeInput> in = {{a}, {b, c.b_const}, {bias, true}};
        if (with_z) in.push_back({z});
        OneNode g("kiln", "FusedMatMul", in, {});
        e.to_node(g.node());
        Tensor want = base.clone(), mag = base_mag.clone();
        for (int64_t i = 0; i < want.numel(); ++i) {
          want.data<float>()[i] += bias.data<float>()[i % n];
          mag.data<float>()[i] +=
              std::fabs(bias.data<float>()[i % n]) + (with_z ? std::fabs(z.data<float>()[i]) : 0.0f);
        }
        apply_epilogue(want, e, with_z ? &z : nullptr);
        for (Isa isa : supported_isas()) {
          check_tactic(*make_matmul_tactic(isa, true), g, want, mag,
                       std::string(ops::activation_name(e.activation)) + " variant " + std::to_string(variant));
        }
        if (c.b_const) {
          check_tactic(*make_onednn_matmul_tactic(), g, want, mag,
                       std::string(ops::activation_name(e.activation)) + " variant " + std::to_string(variant));
        }
      }
    }
  }
}

struct GemmCase {
  int64_t m, k, n;
  int trans_a, trans_b;
  float alpha, beta;
  Dims c;  // {} with has_c false means no C
  bool has_c;
};

TEST(CpuGemm, MatchesReferenceOnEveryIsa) {
  const std::vector<GemmCase> cases = {
      {5, 7, 3, 0, 0, 1.0f, 1.0f, {}, false},         {17, 33, 29, 1, 0, 0.5f, 2.0f, {29}, true},
      {17, 33, 29, 0, 1, 1.0f, 1.0f, {1, 29}, true},  {30, 64, 40, 1, 1, 1.5f, 0.5f, {30, 1}, true},
      {9, 12, 70, 0, 1, 1.0f, 1.0f, {9, 70}, true},   {9, 12, 70, 0, 1, 2.0f, -1.0f, {9, 70}, true},
      {1, 256, 1000, 0, 1, 1.0f, 1.0f, {1000}, true}, {4, 5, 6, 0, 0, 1.0f, 3.0f, {}, true},
  };
  uint32_t seed = 200;
  int onednn_cases = 0;
  for (const auto& c : cases) {
    Tensor a = random_tensor(c.trans_a ? Dims{c.k, c.m} : Dims{c.m, c.k}, seed++);
    Tensor b = random_tensor(c.trans_b ? Dims{c.n, c.k} : Dims{c.k, c.n}, seed++);
    Tensor cc = random_tensor(c.c, seed++);
    std::vector<Attribute> attrs = {Attribute::make_int("transA", c.trans_a), Attribute::make_int("transB", c.trans_b),
                                    Attribute::make_float("alpha", c.alpha), Attribute::make_float("beta", c.beta)};
    std::vector<NodeInput> in = {{a}, {b, true}};
    if (c.has_c) in.push_back({cc, true});
    OneNode g("", "Gemm", in, attrs);
    std::vector<Datum> feeds = {a, b}, abs_feeds = {abs_tensor(a), abs_tensor(b)};
    if (c.has_c) {
      feeds.push_back(cc);
      abs_feeds.push_back(abs_tensor(cc));
    }
    auto want = g.run_reference(feeds);
    ASSERT_TRUE(want.is_ok()) << want.status().to_string();
    Tensor mag = *g.run_reference(abs_feeds);
    for (float& v : mag.span<float>()) v = std::fabs(v) * 4.0f;  // |alpha|, |beta| up to 2
    for (Isa isa : supported_isas()) {
      check_tactic(*make_gemm_tactic(isa, false), g, *want, mag,
                   "gemm m=" + std::to_string(c.m) + " k=" + std::to_string(c.k) + " n=" + std::to_string(c.n) + " C" +
                       dims_to_string(c.c));
    }
    auto onednn = make_onednn_matmul_tactic();
    if (onednn->supports(g.node())) {
      ++onednn_cases;
      check_tactic(*onednn, g, *want, mag, "gemm m=" + std::to_string(c.m) + " C" + dims_to_string(c.c));
    }
  }
  EXPECT_GE(onednn_cases, 4);
}

TEST(CpuGemm, OnednnTakesConstantRowBiasOnly) {
  Tensor a = random_tensor({3, 4}, 1), b = random_tensor({4, 6}, 2), c = random_tensor({3, 6}, 3);
  OneNode with_full_c("", "Gemm", {{a}, {b, true}, {c, true}}, {});
  EXPECT_FALSE(make_onednn_matmul_tactic()->supports(with_full_c.node()));
  OneNode trans_a("", "Gemm", {{random_tensor({4, 3}, 4)}, {b, true}}, {Attribute::make_int("transA", 1)});
  EXPECT_FALSE(make_onednn_matmul_tactic()->supports(trans_a.node()));
}

TEST(CpuFusedGemm, EveryActivationWithResidual) {
  const int64_t m = 13, k = 40, n = 37;
  Tensor a = random_tensor({m, k}, 300), b = random_tensor({n, k}, 301), c = random_tensor({n}, 302),
         z = random_tensor({m, n}, 303);
  std::vector<Attribute> attrs = {Attribute::make_int("transB", 1), Attribute::make_float("alpha", 0.5f)};
  OneNode plain("", "Gemm", {{a}, {b, true}, {c, true}}, attrs);
  Tensor base = *plain.run_reference({a, b, c});
  Tensor mag = *plain.run_reference({abs_tensor(a), abs_tensor(b), abs_tensor(c)});
  for (int64_t i = 0; i < mag.numel(); ++i) mag.data<float>()[i] += std::fabs(z.data<float>()[i]);
  for (const ops::Epilogue& act : all_epilogues()) {
    for (bool after : {false, true}) {
      ops::Epilogue e = act;
      e.residual_after_activation = after;
      OneNode g("kiln", "FusedGemm", {{a}, {b, true}, {c, true}, {z}}, attrs);
      e.to_node(g.node());
      Tensor want = base.clone();
      apply_epilogue(want, e, &z);
      for (Isa isa : supported_isas()) {
        check_tactic(*make_gemm_tactic(isa, true), g, want, mag, std::string(ops::activation_name(e.activation)));
      }
      check_tactic(*make_onednn_matmul_tactic(), g, want, mag, std::string(ops::activation_name(e.activation)));
    }
  }
}

// The bf16 tactics on operands that hold bfloat16 values compute the fp32
// product of those values (exact products, fp32 sums): the same tolerance.
TEST(CpuBf16MatMul, MatchesTheFp32ProductOfBf16Values) {
  if (!bf16_dot_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  const std::vector<MatMulCase> cases = {
      {{1, 1}, {1, 1}, true},         {{7, 13}, {13, 5}, true},         {{33, 300}, {300, 65}, true},
      {{2, 3, 17, 41}, {41, 33}, true}, {{64}, {64, 48}, true},         {{100, 513}, {513, 37}, true},
      {{29, 2}, {2, 70}, true},       {{15, 1027}, {1027, 31}, true},
  };
  uint32_t seed = 400;
  for (const auto& c : cases) {
    const Tensor a = round_bf16(random_tensor(c.a, seed++)), b = round_bf16(random_tensor(c.b, seed++));
    const std::string what = dims_to_string(c.a) + "x" + dims_to_string(c.b);
    OneNode g("", "MatMul", {{a}, {b, true}}, {});
    const auto tactic = make_matmul_bf16_tactic(false);
    EXPECT_FALSE(tactic->supports(g.node())) << what << ": A is not known to hold bfloat16 values";
    g.round_trip_input(0, DataType::kBFloat16);
    auto want = g.run_reference({a, b});
    ASSERT_TRUE(want.is_ok()) << want.status().to_string();
    auto mag = g.run_reference({abs_tensor(a), abs_tensor(b)});
    ASSERT_TRUE(mag.is_ok());
    check_tactic(*tactic, g, *want, *mag, what);
  }
  // Weights that are not all bfloat16 values, or a run-time B: not served.
  const Tensor a = round_bf16(random_tensor({4, 8}, 1));
  OneNode inexact("", "MatMul", {{a}, {random_tensor({8, 3}, 2), true}}, {});
  inexact.round_trip_input(0, DataType::kBFloat16);
  EXPECT_FALSE(make_matmul_bf16_tactic(false)->supports(inexact.node()));
  OneNode runtime_b("", "MatMul", {{a}, {round_bf16(random_tensor({8, 3}, 2)), false}}, {});
  runtime_b.round_trip_input(0, DataType::kBFloat16);
  EXPECT_FALSE(make_matmul_bf16_tactic(false)->supports(runtime_b.node()));
  OneNode fp16("", "MatMul", {{a}, {round_bf16(random_tensor({8, 3}, 2)), true}}, {});
  fp16.round_trip_input(0, DataType::kFloat16);
  EXPECT_FALSE(make_matmul_bf16_tactic(false)->supports(fp16.node())) << "an fp16 round trip";
}

TEST(CpuBf16Gemm, TransposesEpiloguesAndResiduals) {
  if (!bf16_dot_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  const int64_t m = 31, k = 77, n = 45;
  uint32_t seed = 500;
  for (int trans_a : {0, 1}) {
    for (int trans_b : {0, 1}) {
      const Tensor a = round_bf16(random_tensor(trans_a ? Dims{k, m} : Dims{m, k}, seed++));
      const Tensor b = round_bf16(random_tensor(trans_b ? Dims{n, k} : Dims{k, n}, seed++));
      const Tensor c = random_tensor({n}, seed++), z = random_tensor({m, n}, seed++);
      std::vector<Attribute> attrs = {Attribute::make_int("transA", trans_a), Attribute::make_int("transB", trans_b),
                                      Attribute::make_float("alpha", 0.5f)};
      OneNode plain("", "Gemm", {{a}, {b, true}, {c, true}}, attrs);
      const Tensor base = *plain.run_reference({a, b, c});
      Tensor mag = *plain.run_reference({abs_tensor(a), abs_tensor(b), abs_tensor(c)});
      for (int64_t i = 0; i < mag.numel(); ++i) mag.data<float>()[i] += std::fabs(z.data<float>()[i]);
      const std::string what = "transA=" + std::to_string(trans_a) + " transB=" + std::to_string(trans_b);
      plain.round_trip_input(0, DataType::kBFloat16);
      check_tactic(*make_gemm_bf16_tactic(false), plain, base, mag, what);
      for (const ops::Epilogue& act : all_epilogues()) {
        ops::Epilogue e = act;
        e.residual_after_activation = trans_b == 1;
        OneNode g("kiln", "FusedGemm", {{a}, {b, true}, {c, true}, {z}}, attrs);
        e.to_node(g.node());
        g.round_trip_input(0, DataType::kBFloat16);
        Tensor want = base.clone();
        apply_epilogue(want, e, &z);
        check_tactic(*make_gemm_bf16_tactic(true), g, want, mag,
                     what + " " + std::string(ops::activation_name(e.activation)));
      }
    }
  }
}

// The AVX-512 packer (row-major rows) and the scalar one (any strides) write
// the same slots: each the bfloat16 pair of two K neighbours, zero past K.
TEST(CpuBf16Gemm, PackedSlotsHoldRoundedPairs) {
  const int64_t rows = 23, depth = 37;
  Tensor x = random_tensor({rows, depth}, 9);
  x.data<float>()[5] = 1.00390625f;  // 1 + 2^-8: a rounding tie to even (1.0)
  Tensor xt = Tensor::empty(DataType::kFloat32, {depth, rows});
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < depth; ++k) xt.data<float>()[k * rows + r] = x.data<float>()[r * depth + k];
  }
  const int width = 14;
  for (auto [s0, sc] : {std::pair<int64_t, int64_t>{0, bf16_slots(depth)}, {3, 9}, {17, 2}}) {
    AlignedFloats direct((rows + width - 1) / width * width * sc), strided((rows + width - 1) / width * width * sc);
    pack_strided_bf16({x.data<float>(), depth, 1}, depth, 0, rows, s0, sc, width, direct.data());
    pack_strided_bf16({xt.data<float>(), 1, rows}, depth, 0, rows, s0, sc, width, strided.data());
    for (int64_t p = 0; p * width < rows; ++p) {
      for (int64_t s = 0; s < sc; ++s) {
        for (int64_t r = 0; r < width; ++r) {
          const int64_t row = p * width + r, k = 2 * (s0 + s);
          uint32_t want = 0;
          if (row < rows && k < depth) want = BFloat16(x.data<float>()[row * depth + k]).bits;
          if (row < rows && k + 1 < depth) {
            want |= static_cast<uint32_t>(BFloat16(x.data<float>()[row * depth + k + 1]).bits) << 16;
          }
          const size_t at = static_cast<size_t>((p * sc + s) * width + r);
          uint32_t got_direct, got_strided;
          std::memcpy(&got_direct, direct.data() + at, 4);
          std::memcpy(&got_strided, strided.data() + at, 4);
          ASSERT_EQ(got_direct, want) << "row " << row << " slot " << s0 + s;
          ASSERT_EQ(got_strided, want) << "row " << row << " slot " << s0 + s;
        }
      }
    }
  }
}

// The fp16-storage products (a --fp16 build's rounded weights, any A)
// against the fp32 tactics of the same ISA: the same bits (tails of M, N
// and K, depths past one kc block, batched A), transposes and epilogues.
TEST(CpuFp16MatMul, HalfWeightsGiveTheFp32TacticsBits) {
  if (!cpu_features().f16c) GTEST_SKIP() << "this CPU has no F16C";
  const std::vector<MatMulCase> cases = {
      {{1, 1}, {1, 1}, true},           {{7, 13}, {13, 5}, true},   {{33, 300}, {300, 65}, true},
      {{2, 3, 17, 41}, {41, 33}, true}, {{64}, {64, 48}, true},     {{100, 513}, {513, 37}, true},
      {{15, 1027}, {1027, 31}, true},   {{3, 600}, {600, 130}, true},
  };
  uint32_t seed = 800;
  for (Isa isa : supported_isas()) {
    if (isa == Isa::kGeneric) continue;
    for (const auto& c : cases) {
      OneNode g("", "MatMul", {{random_tensor(c.a, seed++)}, {round_f16(random_tensor(c.b, seed++)), true}}, {});
      expect_same_as_fp32(*make_matmul_fp16_tactic(isa, false), *make_matmul_tactic(isa, false), g,
                          dims_to_string(c.a) + "x" + dims_to_string(c.b));
    }
    const int64_t m = 31, k = 300, n = 45;
    for (int trans_b : {0, 1}) {
      const Tensor a = random_tensor({m, k}, seed++);
      const Tensor b = round_f16(random_tensor(trans_b ? Dims{n, k} : Dims{k, n}, seed++));
      const Tensor c = random_tensor({n}, seed++), z = random_tensor({m, n}, seed++);
      std::vector<Attribute> attrs = {Attribute::make_int("transB", trans_b), Attribute::make_float("alpha", 0.5f)};
      OneNode plain("", "Gemm", {{a}, {b, true}, {c, true}}, attrs);
      expect_same_as_fp32(*make_gemm_fp16_tactic(isa, false), *make_gemm_tactic(isa, false), plain,
                          "transB=" + std::to_string(trans_b));
      for (const ops::Epilogue& e : all_epilogues()) {
        OneNode g("kiln", "FusedGemm", {{a}, {b, true}, {c, true}, {z}}, attrs);
        e.to_node(g.node());
        expect_same_as_fp32(*make_gemm_fp16_tactic(isa, true), *make_gemm_tactic(isa, true), g,
                            std::string(ops::activation_name(e.activation)));
      }
    }
    // Weights with a value that is not a half, or a run-time B: not served.
    const Tensor a = random_tensor({4, 8}, 1);
    Tensor b = round_f16(random_tensor({8, 3}, 2));
    b.data<float>()[5] = 1.0f + 1.0f / 4096.0f;
    OneNode inexact("", "MatMul", {{a}, {b, true}}, {});
    EXPECT_FALSE(make_matmul_fp16_tactic(isa, false)->supports(inexact.node()));
    OneNode runtime_b("", "MatMul", {{a}, {round_f16(random_tensor({8, 3}, 2)), false}}, {});
    EXPECT_FALSE(make_matmul_fp16_tactic(isa, false)->supports(runtime_b.node()));
  }
}

// A float16 input 0 (what a --fp16 plan stores before the layer) is widened
// exactly by the fp16 tactics and the fused reference kernels.
TEST(CpuFp16MatMul, Float16InputsAreWidenedExactly) {
  if (!cpu_features().f16c) GTEST_SKIP() << "this CPU has no F16C";
  const Tensor b = round_f16(random_tensor({300, 45}, 1)), bias = random_tensor({45}, 2);
  const Tensor bt = round_f16(random_tensor({45, 300}, 3)), z = random_tensor({2, 31, 45}, 4);
  for (Isa isa : supported_isas()) {
    if (isa == Isa::kGeneric) continue;
    const Tensor x = round_f16(random_tensor({2, 31, 300}, 5));
    expect_half_input_widened(
        *make_matmul_fp16_tactic(isa, true), *make_matmul_tactic(isa, true), x,
        [&](const Tensor& a) {
          OneNode g("kiln", "FusedMatMul", {{a}, {b, true}, {bias, true}, {z}}, {});
          ops::Epilogue e;
          e.activation = ops::Activation::kRelu;
          e.to_node(g.node());
          return g;
        },
        "FusedMatMul relu");
    const Tensor x2 = round_f16(random_tensor({31, 300}, 6));
    expect_half_input_widened(
        *make_gemm_fp16_tactic(isa, true), *make_gemm_tactic(isa, true), x2,
        [&](const Tensor& a) {
          return OneNode("kiln", "FusedGemm", {{a}, {bt, true}, {bias, true}},
                         {Attribute::make_int("transB", 1), Attribute::make_float("alpha", 0.5f)});
        },
        "FusedGemm transB");
  }
}

// all_f16_values agrees with the round trip through core/float_types.h's
// Float16 on edges (range, subnormals, rounding, specials) and random bits;
// the F16C converters agree with it bit for bit.
TEST(CpuFp16, HalfValuesAndConverters) {
  auto exact = [](float v) {
    const float back = static_cast<float>(Float16(v));
    return !std::isnan(v) && std::memcmp(&back, &v, 4) == 0;
  };
  auto one = [](float v) {
    Tensor t = Tensor::empty(DataType::kFloat32, {1});
    t.data<float>()[0] = v;
    return all_f16_values(t);
  };
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> edges = {0.0f, -0.0f, 1.0f, 65504.0f, 65520.0f, 65536.0f, std::ldexp(1.0f, -14),
                                    std::ldexp(1.0f, -24), std::ldexp(1.0f, -25), std::ldexp(3.0f, -24),
                                    std::ldexp(3.0f, -25), std::ldexp(1023.0f, -24), std::ldexp(2047.0f, -25),
                                    1.0f + std::ldexp(1.0f, -10), 1.0f + std::ldexp(1.0f, -11), inf, -inf,
                                    std::numeric_limits<float>::quiet_NaN(), 1e-40f, -3.0f};
  for (float v : edges) EXPECT_EQ(one(v), exact(v)) << v;
  EXPECT_TRUE(one(std::ldexp(1.0f, -24)) && one(65504.0f) && one(inf)) << "the half range's ends";
  std::mt19937 gen(7);
  int exact_count = 0;
  for (int i = 0; i < 200000; ++i) {
    // Random exponents near the half range, mantissas with few low bits.
    uint32_t u = (gen() & 0x8000'0000u) | ((100u + gen() % 60u) << 23) | (gen() & 0x7fe000u);
    if (i % 3 == 0) u |= gen() & 0x1fffu;
    const float v = std::bit_cast<float>(u);
    ASSERT_EQ(one(v), exact(v)) << std::hex << u;
    exact_count += exact(v);
  }
  EXPECT_GT(exact_count, 50000);
  if (!cpu_features().f16c) return;
  std::vector<float> src(37), back(37);
  std::vector<uint16_t> halves(37);
  for (size_t i = 0; i < src.size(); ++i) src[i] = std::ldexp(static_cast<float>(gen() % 4096) - 2048.0f, -9);
  src[3] = 1.0f + std::ldexp(1.0f, -11);  // a tie, to even
  src[4] = 70000.0f;                        // past the range: infinity
  narrow_to_halves_f16c(src.data(), halves.data(), 37);
  widen_halves(halves.data(), back.data(), 37);
  for (size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(halves[i], Float16(src[i]).bits) << i;
    EXPECT_EQ(back[i], static_cast<float>(Float16(src[i]))) << i;
  }
}

TEST(CpuMatMul, FallsBackToReferenceErrors) {
  Tensor a = random_tensor({3, 4}, 1), b = random_tensor({5, 6}, 2);
  OneNode g("", "MatMul", {{a}, {b, false}}, {});
  auto kernel = make_matmul_tactic(detect_isa(), false)->prepare(g.node());
  ASSERT_TRUE(kernel.is_ok());
  auto got = g.run(**kernel, nullptr);
  EXPECT_FALSE(got.is_ok());
}

TEST(CpuGemm, RejectsCorruptPackedWeights) {
  Tensor a = random_tensor({3, 4}, 1), b = random_tensor({4, 6}, 2);
  OneNode g("", "Gemm", {{a}, {b, true}}, {});
  auto tactic = make_gemm_tactic(detect_isa(), false);
  auto kernel = tactic->prepare(g.node());
  ASSERT_TRUE(kernel.is_ok());
  std::vector<uint8_t> bytes = (*kernel)->serialize();
  ASSERT_FALSE(bytes.empty());
  bytes.pop_back();
  EXPECT_FALSE(tactic->load(g.node(), bytes).is_ok());
}

// The fp16 tactic's state holds halves: truncated, or a float state of the
// same geometry (twice the bytes), it is refused with a message naming it.
TEST(CpuFp16Gemm, RejectsCorruptPackedWeights) {
  if (!cpu_features().f16c) GTEST_SKIP() << "this CPU has no F16C";
  Tensor a = random_tensor({3, 40}, 1), b = round_f16(random_tensor({40, 36}, 2));
  OneNode g("", "Gemm", {{a}, {b, true}}, {});
  for (Isa isa : supported_isas()) {
    if (isa == Isa::kGeneric) continue;
    auto fp16 = make_gemm_fp16_tactic(isa, false);
    auto kernel = fp16->prepare(g.node());
    ASSERT_TRUE(kernel.is_ok());
    std::vector<uint8_t> bytes = (*kernel)->serialize();
    bytes.pop_back();
    auto truncated = fp16->load(g.node(), bytes);
    ASSERT_FALSE(truncated.is_ok());
    EXPECT_NE(truncated.status().to_string().find("packed weights"), std::string::npos)
        << truncated.status().to_string();
    auto fp32_state = make_gemm_tactic(isa, false)->prepare(g.node());
    ASSERT_TRUE(fp32_state.is_ok());
    auto floats = fp16->load(g.node(), (*fp32_state)->serialize());
    ASSERT_FALSE(floats.is_ok());
    EXPECT_NE(floats.status().to_string().find("packed weights"), std::string::npos) << floats.status().to_string();
  }
}

// The vectorized exp/erf activations against the scalar definitions
// (ops::Epilogue::activate) over a wide range, extremes included.
TEST(CpuActivations, VectorizedTranscendentalsMatchScalar) {
  if (detect_isa() < Isa::kAvx2) GTEST_SKIP() << "no AVX2";
  std::vector<float> xs;
  for (float x = -30.0f; x <= 30.0f; x += 0.0137f) xs.push_back(x);
  for (float x : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-6f, -1e-6f, 87.0f, -87.0f, 100.0f, -100.0f, 1e10f, -1e10f}) {
    xs.push_back(x);
  }
  const std::pair<ops::Activation, TileTranscendental> acts[] = {
      {ops::Activation::kSigmoid, TileTranscendental::kSigmoid},   {ops::Activation::kTanh, TileTranscendental::kTanh},
      {ops::Activation::kSilu, TileTranscendental::kSilu},         {ops::Activation::kGelu, TileTranscendental::kGelu},
      {ops::Activation::kGeluTanh, TileTranscendental::kGeluTanh},
  };
  for (const auto& [act, tile] : acts) {
    ops::Epilogue e;
    e.activation = act;
    std::vector<float> got = xs;
    // One row of odd length so that the masked tail runs too.
    activate_tile_avx2(got.data(), static_cast<int64_t>(got.size()), 1, static_cast<int64_t>(got.size()), tile);
    int bad = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const float want = e.activate(xs[i]);
      const float tol = 2e-6f * std::max(1.0f, std::fabs(xs[i]));
      if (!(std::fabs(got[i] - want) <= tol) && bad++ < 3) {
        ADD_FAILURE() << ops::activation_name(act) << "(" << xs[i] << ") = " << got[i] << ", expected " << want;
      }
    }
    EXPECT_EQ(bad, 0) << ops::activation_name(act);
  }
}

TEST(CpuIsa, DetectionIsConsistent) {
  const CpuFeatures& f = cpu_features();
  const Isa isa = detect_isa();
  if (isa == Isa::kAvx512) {
    EXPECT_TRUE(f.avx512f && f.avx2 && f.fma);
  }
  if (isa >= Isa::kAvx2) {
    EXPECT_TRUE(f.avx2 && f.fma);
  }
  EXPECT_EQ(supported_isas().front(), isa);
  EXPECT_EQ(supported_isas().back(), Isa::kGeneric);
}

}  // namespace
}  // namespace kiln::backends::cpu::test
