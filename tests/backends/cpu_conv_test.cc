// Differential tests of the Conv / kiln.FusedConv tactics (im2col GEMM and
// direct depthwise) on every ISA this machine runs, against the reference
// Conv kernel with the fused epilogue applied in the test. Tolerance: 1e-4
// relative to the magnitude of the accumulation (Conv on |X|, |W|, |B|, plus |Z|).
#include <gtest/gtest.h>

#include <thread>

#include "backends/cpu/tactics.h"
#include "cpu_test_util.h"

namespace kiln::backends::cpu::test {
namespace {

using ir::Attribute;
constexpr float kRel = 1e-4f;

struct ConvCase {
  Dims x;  // [N, C, H, W] or [N, C, W]
  int64_t m;
  Dims kernel;
  Dims strides, dilations, pads;
  int64_t group;
  std::string auto_pad;
  bool bias;
};

std::vector<Attribute> conv_attrs(const ConvCase& c) {
  std::vector<Attribute> a = {Attribute::make_int("group", c.group)};
  if (!c.strides.empty()) a.push_back(Attribute::make_ints("strides", c.strides));
  if (!c.dilations.empty()) a.push_back(Attribute::make_ints("dilations", c.dilations));
  if (!c.pads.empty()) a.push_back(Attribute::make_ints("pads", c.pads));
  if (!c.auto_pad.empty()) a.push_back(Attribute::make_string("auto_pad", c.auto_pad));
  return a;
}

std::string describe(const ConvCase& c) {
  return "x" + dims_to_string(c.x) + " m=" + std::to_string(c.m) + " k" + dims_to_string(c.kernel) + " s" +
         dims_to_string(c.strides) + " d" + dims_to_string(c.dilations) + " p" + dims_to_string(c.pads) +
         " g=" + std::to_string(c.group) + " " + c.auto_pad;
}

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {{1, 16, 9, 9}, 24, {1, 1}, {}, {}, {}, 1, "", true},                  // 1x1 as GEMM
      {{2, 8, 7, 11}, 20, {1, 1}, {}, {}, {}, 1, "", false},                 // 1x1, batch 2
      {{1, 3, 17, 15}, 10, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}, 1, "", true},   // 3x3 pad 1
      {{1, 5, 16, 16}, 7, {3, 3}, {2, 2}, {}, {1, 1, 1, 1}, 1, "", true},    // stride 2
      {{1, 4, 13, 12}, 9, {3, 3}, {}, {2, 2}, {2, 2, 2, 2}, 1, "", true},    // dilation 2
      {{1, 6, 10, 9}, 5, {3, 2}, {1, 2}, {}, {0, 2, 1, 0}, 1, "", true},     // asymmetric pads
      {{2, 8, 9, 9}, 12, {3, 3}, {}, {}, {1, 1, 1, 1}, 2, "", true},         // groups 2, batch 2
      {{1, 12, 8, 8}, 8, {1, 1}, {}, {}, {}, 4, "", false},                  // grouped 1x1
      {{1, 3, 23, 23}, 16, {7, 7}, {2, 2}, {}, {3, 3, 3, 3}, 1, "", true},   // stem-like
      {{1, 4, 10, 7}, 6, {3, 3}, {2, 1}, {}, {}, 1, "SAME_UPPER", true},     // auto_pad
      {{2, 5, 30}, 7, {5}, {2}, {}, {2, 1}, 1, "", true},                    // 1-D
      {{1, 1, 1, 1}, 1, {1, 1}, {}, {}, {}, 1, "", true},                    // scalar-size
      {{1, 40, 15, 15}, 70, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}, 1, "", true},  // tails in M and N
      {{2, 16, 14, 14}, 32, {3, 3}, {}, {}, {0, 1, 2, 0}, 1, "", true},      // 3x3 asymmetric pads, batch 2
      {{1, 64, 28, 28}, 64, {3, 3}, {}, {}, {1, 1, 1, 1}, 1, "", false},     // a ResNet layer
      // depthwise (group == C == M)
      {{1, 16, 12, 12}, 16, {3, 3}, {}, {}, {1, 1, 1, 1}, 16, "", true},
      {{2, 8, 11, 13}, 8, {3, 3}, {2, 2}, {}, {1, 1, 1, 1}, 8, "", true},
      {{1, 9, 14, 10}, 9, {5, 5}, {1, 1}, {2, 2}, {4, 3, 2, 5}, 9, "", true},
      {{1, 7, 9, 40}, 7, {3, 3}, {1, 2}, {}, {0, 1, 2, 0}, 7, "", false},
      {{1, 5, 6, 45}, 5, {3, 3}, {}, {}, {1, 1, 1, 1}, 5, "", true},      // wide rows: vector interior
      {{1, 3, 5, 50}, 3, {3, 5}, {}, {1, 3}, {0, 7, 1, 2}, 3, "", true},  // dilated, asymmetric
  };
  return cases;
}

void check_kernel(const Tactic& tactic, OneNode& g, const Tensor& want, const Tensor& mag, const std::string& what) {
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
  auto loaded = tactic.load(g.node(), (*kernel)->serialize());
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  auto again = g.run(**loaded, nullptr);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  expect_close(*again, want, mag, kRel, std::string(tactic.name()) + " " + what + " after load");
}

bool is_depthwise(const ConvCase& c) { return c.group == c.x[1] && c.m == c.x[1]; }

// The reference output of case `c`'s node on x, w (and b when the case has a
// bias), and the magnitude of its accumulation (the same on |x|, |w|, |b|).
void reference_of(OneNode& g, const ConvCase& c, const Tensor& x, const Tensor& w, const Tensor& b, Tensor& want,
                  Tensor& mag) {
  std::vector<Datum> feeds = {x, w}, abs_feeds = {abs_tensor(x), abs_tensor(w)};
  if (c.bias) {
    feeds.push_back(b);
    abs_feeds.push_back(abs_tensor(b));
  }
  auto r = g.run_reference(feeds);
  ASSERT_TRUE(r.is_ok()) << describe(c) << ": " << r.status().to_string();
  want = *r;
  mag = *g.run_reference(abs_feeds);
}

TEST(CpuConv, MatchesReferenceOnEveryIsa) {
  uint32_t seed = 1;
  size_t winograd_cases = 0;
  for (const ConvCase& c : conv_cases()) {
    Dims wd = {c.m, c.x[1] / c.group};
    wd.insert(wd.end(), c.kernel.begin(), c.kernel.end());
    Tensor x = random_tensor(c.x, seed++), w = random_tensor(wd, seed++), b = random_tensor({c.m}, seed++);
    std::vector<NodeInput> in = {{x}, {w, true}};
    if (c.bias) in.push_back({b, true});
    OneNode g("", "Conv", in, conv_attrs(c));
    Tensor want_t, mag;
    ASSERT_NO_FATAL_FAILURE(reference_of(g, c, x, w, b, want_t, mag));
    const Tensor* want = &want_t;
    for (Isa isa : supported_isas()) {
      check_kernel(*make_conv_gemm_tactic(isa, false), g, *want, mag, describe(c));
      auto dw = make_conv_depthwise_tactic(isa, false);
      EXPECT_EQ(dw->supports(g.node()), is_depthwise(c)) << describe(c);
      if (is_depthwise(c)) check_kernel(*dw, g, *want, mag, describe(c));
      for (int tile : {2, 4}) {
        auto wino = make_conv_winograd_tactic(isa, false, tile);
        if (wino->supports(g.node())) {
          ++winograd_cases;
          check_kernel(*wino, g, *want, mag, describe(c));
        }
      }
    }
    for (bool blocked : {false, true}) {
      auto onednn = make_onednn_conv_tactic(blocked);
      EXPECT_EQ(onednn->supports(g.node()), c.x.size() == 4) << describe(c);
      if (onednn->supports(g.node())) check_kernel(*onednn, g, *want, mag, describe(c));
    }
  }
  EXPECT_GE(winograd_cases, 6u);
}

TEST(CpuFusedConv, EveryActivationAndResidual) {
  const std::vector<ConvCase> cases = {
      {{2, 6, 9, 8}, 10, {3, 3}, {1, 1}, {}, {1, 0, 1, 2}, 1, "", true},
      {{1, 8, 10, 10}, 8, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}, 8, "", true},
  };
  uint32_t seed = 50;
  for (const ConvCase& c : cases) {
    Dims wd = {c.m, c.x[1] / c.group};
    wd.insert(wd.end(), c.kernel.begin(), c.kernel.end());
    Tensor x = random_tensor(c.x, seed++), w = random_tensor(wd, seed++), b = random_tensor({c.m}, seed++);
    OneNode plain("", "Conv", {{x}, {w, true}, {b, true}}, conv_attrs(c));
    Tensor base = *plain.run_reference({x, w, b});
    Tensor base_mag = *plain.run_reference({abs_tensor(x), abs_tensor(w), abs_tensor(b)});
    Tensor z = random_tensor(base.dims(), seed++);
    for (const ops::Epilogue& act : all_epilogues()) {
      for (int variant = 0; variant < 3; ++variant) {
        ops::Epilogue e = act;
        e.residual_after_activation = variant == 2;
        const bool with_z = variant > 0;
        std::vector<NodeInput> in = {{x}, {w, true}, {b, true}};
        if (with_z) in.push_back({z});
        OneNode g("kiln", "FusedConv", in, conv_attrs(c));
        e.to_node(g.node());
        Tensor want = base.clone(), mag = base_mag.clone();
        if (with_z) {
          for (int64_t i = 0; i < mag.numel(); ++i) mag.data<float>()[i] += std::fabs(z.data<float>()[i]);
        }
        apply_epilogue(want, e, with_z ? &z : nullptr);
        const std::string what =
            describe(c) + " " + std::string(ops::activation_name(e.activation)) + " variant " + std::to_string(variant);
        for (Isa isa : supported_isas()) {
          check_kernel(*make_conv_gemm_tactic(isa, true), g, want, mag, what);
          if (is_depthwise(c)) check_kernel(*make_conv_depthwise_tactic(isa, true), g, want, mag, what);
          for (int tile : {2, 4}) {
            auto wino = make_conv_winograd_tactic(isa, true, tile);
            if (wino->supports(g.node())) check_kernel(*wino, g, want, mag, what);
          }
        }
        for (bool blocked : {false, true}) check_kernel(*make_onednn_conv_tactic(blocked), g, want, mag, what);
      }
    }
  }
}

// The bf16 conv on operands that hold bfloat16 values (a --bf16 build's
// rounded weights and round-tripped input) against the fp32 reference on
// the same values: every case of the table (1x1 as the paired-row packer,
// odd depths, groups, strides, 1-D), and fused epilogues.
TEST(CpuConv, Bf16MatchesTheFp32ConvOfBf16Values) {
  if (!bf16_dot_supported()) GTEST_SKIP() << "this CPU has no AVX-512 BF16";
  uint32_t seed = 700;
  for (const ConvCase& c : conv_cases()) {
    Dims wd = {c.m, c.x[1] / c.group};
    wd.insert(wd.end(), c.kernel.begin(), c.kernel.end());
    Tensor x = round_bf16(random_tensor(c.x, seed++)), w = round_bf16(random_tensor(wd, seed++));
    Tensor b = random_tensor({c.m}, seed++);
    std::vector<NodeInput> in = {{x}, {w, true}};
    if (c.bias) in.push_back({b, true});
    OneNode g("", "Conv", in, conv_attrs(c));
    const auto tactic = make_conv_gemm_bf16_tactic(false);
    EXPECT_FALSE(tactic->supports(g.node())) << describe(c) << ": X is not known to hold bfloat16 values";
    g.round_trip_input(0, DataType::kBFloat16);
    Tensor want, mag;
    ASSERT_NO_FATAL_FAILURE(reference_of(g, c, x, w, b, want, mag));
    check_kernel(*tactic, g, want, mag, describe(c));
  }
  const ConvCase c = {{2, 6, 9, 8}, 10, {3, 3}, {1, 1}, {}, {1, 0, 1, 2}, 1, "", true};
  Tensor x = round_bf16(random_tensor(c.x, 1)), w = round_bf16(random_tensor({10, 6, 3, 3}, 2));
  Tensor b = random_tensor({10}, 3);
  OneNode plain("", "Conv", {{x}, {w, true}, {b, true}}, conv_attrs(c));
  const Tensor base = *plain.run_reference({x, w, b});
  Tensor mag = *plain.run_reference({abs_tensor(x), abs_tensor(w), abs_tensor(b)});
  const Tensor z = random_tensor(base.dims(), 4);
  for (int64_t i = 0; i < mag.numel(); ++i) mag.data<float>()[i] += std::fabs(z.data<float>()[i]);
  for (const ops::Epilogue& act : all_epilogues()) {
    OneNode g("kiln", "FusedConv", {{x}, {w, true}, {b, true}, {z}}, conv_attrs(c));
    act.to_node(g.node());
    g.round_trip_input(0, DataType::kBFloat16);
    Tensor want = base.clone();
    apply_epilogue(want, act, &z);
    check_kernel(*make_conv_gemm_bf16_tactic(true), g, want, mag, std::string(ops::activation_name(act.activation)));
  }
  // Weights that are not all bfloat16 values: not served.
  OneNode inexact("", "Conv", {{x}, {random_tensor({10, 6, 3, 3}, 5), true}}, conv_attrs(c));
  inexact.round_trip_input(0, DataType::kBFloat16);
  EXPECT_FALSE(make_conv_gemm_bf16_tactic(false)->supports(inexact.node()));
}

// The fp16-storage conv (a --fp16 build's rounded weights, any X) against
// the fp32 conv_gemm of the same ISA: the same bits on every case of the
// table and with fused epilogues; weights with a non-half value: not served.
TEST(CpuConv, Fp16WeightsGiveTheFp32TacticsBits) {
  if (!cpu_features().f16c) GTEST_SKIP() << "this CPU has no F16C";
  uint32_t seed = 900;
  const ConvCase fused = {{2, 6, 9, 8}, 10, {3, 3}, {1, 1}, {}, {1, 0, 1, 2}, 1, "", true};
  for (Isa isa : supported_isas()) {
    if (isa == Isa::kGeneric) continue;
    for (const ConvCase& c : conv_cases()) {
      Dims wd = {c.m, c.x[1] / c.group};
      wd.insert(wd.end(), c.kernel.begin(), c.kernel.end());
      std::vector<NodeInput> in = {{random_tensor(c.x, seed++)}, {round_f16(random_tensor(wd, seed++)), true}};
      if (c.bias) in.push_back({random_tensor({c.m}, seed++), true});
      OneNode g("", "Conv", in, conv_attrs(c));
      expect_same_as_fp32(*make_conv_gemm_fp16_tactic(isa, false), *make_conv_gemm_tactic(isa, false), g, describe(c));
    }
    const Tensor x = random_tensor(fused.x, 1), w = round_f16(random_tensor({10, 6, 3, 3}, 2));
    const Tensor b = random_tensor({10}, 3);
    OneNode plain("", "Conv", {{x}, {w, true}, {b, true}}, conv_attrs(fused));
    const Tensor z = random_tensor(plain.run_reference({x, w, b})->dims(), 4);
    for (const ops::Epilogue& act : all_epilogues()) {
      OneNode g("kiln", "FusedConv", {{x}, {w, true}, {b, true}, {z}}, conv_attrs(fused));
      act.to_node(g.node());
      expect_same_as_fp32(*make_conv_gemm_fp16_tactic(isa, true), *make_conv_gemm_tactic(isa, true), g,
                          std::string(ops::activation_name(act.activation)));
    }
    OneNode inexact("", "Conv", {{x}, {random_tensor({10, 6, 3, 3}, 5), true}}, conv_attrs(fused));
    EXPECT_FALSE(make_conv_gemm_fp16_tactic(isa, false)->supports(inexact.node()));
  }
}

// A float16 X (what a --fp16 plan stores before the layer), widened
// exactly per image by the fp16 conv and by the fused reference kernel.
TEST(CpuConv, Fp16WidensAFloat16Input) {
  if (!cpu_features().f16c) GTEST_SKIP() << "this CPU has no F16C";
  const ConvCase c = {{2, 6, 9, 8}, 10, {3, 3}, {1, 1}, {}, {1, 0, 1, 2}, 1, "", true};
  const Tensor w = round_f16(random_tensor({10, 6, 3, 3}, 2)), b = random_tensor({10}, 3);
  for (Isa isa : supported_isas()) {
    if (isa == Isa::kGeneric) continue;
    expect_half_input_widened(
        *make_conv_gemm_fp16_tactic(isa, true), *make_conv_gemm_tactic(isa, true), round_f16(random_tensor(c.x, 1)),
        [&](const Tensor& x) { return OneNode("kiln", "FusedConv", {{x}, {w, true}, {b, true}}, conv_attrs(c)); },
        "FusedConv");
  }
}

TEST(CpuConv, UnsupportedNodesAreDeclined) {
  Tensor x = random_tensor({1, 2, 4, 4, 4}, 1), w = random_tensor({3, 2, 1, 1, 1}, 2);
  OneNode conv3d("", "Conv", {{x}, {w, true}}, {});
  EXPECT_FALSE(make_conv_gemm_tactic(detect_isa(), false)->supports(conv3d.node()));
  Tensor x2 = random_tensor({1, 2, 4, 4}, 3), w2 = random_tensor({3, 2, 1, 1}, 4);
  OneNode dynamic_w("", "Conv", {{x2}, {w2, false}}, {});
  EXPECT_FALSE(make_conv_gemm_tactic(detect_isa(), false)->supports(dynamic_w.node()));
}

TEST(CpuConv, BadRuntimeShapeReportsAnError) {
  Tensor x = random_tensor({1, 2, 4, 4}, 1), w = random_tensor({3, 2, 3, 3}, 2);
  OneNode g("", "Conv", {{x}, {w, true}}, {});
  auto kernel = make_conv_gemm_tactic(detect_isa(), false)->prepare(g.node());
  ASSERT_TRUE(kernel.is_ok());
  // Feed an input whose channel count does not match the weights.
  Tensor bad = random_tensor({1, 5, 4, 4}, 3);
  std::vector<Datum> feeds = {bad, w};
  std::vector<Datum> outs(1);
  ops::KernelContext ctx(g.node(), feeds, outs, nullptr, nullptr);
  EXPECT_FALSE((*kernel)->run(ctx).is_ok());
}

// A kernel is shared by every execution context of an engine: several
// threads run it at once, each with its own pool, and get the same result.
TEST(CpuConv, KernelsRunConcurrently) {
  Tensor x = random_tensor({2, 16, 12, 12}, 1), w = random_tensor({24, 16, 3, 3}, 2), b = random_tensor({24}, 3);
  OneNode g("", "Conv", {{x}, {w, true}, {b, true}}, {Attribute::make_ints("pads", {1, 1, 1, 1})});
  Tensor want = *g.run_reference({x, w, b});
  Tensor mag = *g.run_reference({abs_tensor(x), abs_tensor(w), abs_tensor(b)});
  const Isa isa = detect_isa();
  for (const auto& tactic : {make_conv_gemm_tactic(isa, false), make_conv_winograd_tactic(isa, false),
                             make_conv_winograd_tactic(isa, false, 4),
                             make_onednn_conv_tactic(false), make_onednn_conv_tactic(true)}) {
    auto kernel = tactic->prepare(g.node());
    ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
    std::vector<Tensor> results(4);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < results.size(); ++t) {
      threads.emplace_back([&, t] {
        ThreadPool pool(1 + static_cast<int>(t % 2));
        for (int rep = 0; rep < 3; ++rep) {
          auto got = g.run(**kernel, &pool);
          if (got.is_ok()) results[t] = *got;
        }
      });
    }
    for (auto& t : threads) t.join();
    for (const Tensor& r : results) {
      ASSERT_TRUE(r.defined()) << tactic->name();
      expect_close(r, want, mag, kRel, std::string(tactic->name()) + " concurrent");
    }
  }
}

}  // namespace
}  // namespace kiln::backends::cpu::test
