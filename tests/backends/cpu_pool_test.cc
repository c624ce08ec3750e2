// Differential tests of the 2-D pooling tactics (own.* and oneDNN's NCHW
// onednn.pool) against the reference kernels: odd sizes, strides,
// dilations, asymmetric and large pads, ceil_mode, count_include_pad,
// windows that see no input, 1 and 2 threads. oneDNN's tactic must refuse
// the cases it cannot compute as the reference does (dilations, pads as
// large as the window, count_include_pad with ceil_mode). The blocked
// variant is tested inside a chain of blocked convolutions
// (tests/plan/layouts_test.cc). Tolerance: max pools exact; averages 1e-5
// relative to max(1, |value|) (the tactics sum in float, the reference in
// double).
#include <gtest/gtest.h>

#include <limits>

#include "backends/cpu/tactics.h"
#include "cpu_test_util.h"

namespace kiln::backends::cpu::test {
namespace {

using ir::Attribute;

struct PoolCase {
  Dims x;
  std::vector<int64_t> kernel, strides, pads, dilations;
  int64_t ceil_mode = 0;
  int64_t count_include_pad = 0;
};

std::string describe(const PoolCase& c) {
  auto list = [](const std::vector<int64_t>& v) {
    std::string s;
    for (int64_t d : v) s += std::to_string(d) + ",";
    return s;
  };
  return dims_to_string(c.x) + " k" + list(c.kernel) + " s" + list(c.strides) + " p" + list(c.pads) + " d" +
         list(c.dilations) + " ceil" + std::to_string(c.ceil_mode) + " cip" + std::to_string(c.count_include_pad);
}

void check(const Tactic& tactic, const std::string& op, OneNode& g, float rel, const std::string& what) {
  ASSERT_TRUE(tactic.supports(g.node())) << what;
  auto want = g.run_reference(g.feeds());
  ASSERT_TRUE(want.is_ok()) << what << ": " << want.status().to_string();
  Tensor mag = want->clone();
  for (float& v : mag.span<float>()) v = std::isfinite(v) ? std::max(1.0f, std::fabs(v)) : 1.0f;
  auto kernel = tactic.prepare(g.node());
  ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    auto got = g.run(**kernel, &pool);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    ASSERT_EQ(got->dims(), want->dims()) << what;
    // Windows that see no input give -inf (max) or NaN (average) on both sides.
    for (int64_t i = 0; i < want->numel(); ++i) {
      const float a = got->data<float>()[i], b = want->data<float>()[i];
      if (!std::isfinite(b)) {
        EXPECT_TRUE((std::isnan(a) && std::isnan(b)) || a == b) << what << " element " << i << ": " << a << " vs " << b;
        got->data<float>()[i] = 0;
        want->data<float>()[i] = 0;
      }
    }
    expect_close(*got, *want, mag, rel,
                 std::string(tactic.name()) + " " + op + " " + what + " threads " + std::to_string(threads));
  }
}

void check(const std::string& op, OneNode& g, float rel, const std::string& what) {
  auto tactic = make_pool_tactic(op);
  ASSERT_NE(tactic, nullptr);
  check(*tactic, op, g, rel, what);
}

// What oneDNN's pooling cannot compute as ONNX does: a dilated window, a
// pad as large as the window (windows that may see only padding), an
// average that counts padding under ceil_mode (oneDNN would count the taps
// ceil_mode adds past the explicit pads).
bool onednn_can_pool(const std::string& op, const PoolCase& c) {
  for (int64_t d : c.dilations) {
    if (d != 1) return false;
  }
  for (size_t i = 0; i < c.pads.size(); ++i) {
    if (c.pads[i] >= c.kernel[i % 2]) return false;
  }
  return !(op == "AveragePool" && c.count_include_pad != 0 && c.ceil_mode != 0);
}

void check_onednn(const std::string& op, OneNode& g, const PoolCase& c, float rel) {
  auto tactic = make_onednn_pool_tactic(/*blocked=*/false);
  EXPECT_EQ(tactic->supports(g.node()), onednn_can_pool(op, c)) << describe(c);
  if (tactic->supports(g.node())) check(*tactic, op, g, rel, describe(c));
}

std::vector<PoolCase> cases() {
  return {
      {{1, 64, 112, 112}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}},  // resnet's stem pool
      {{2, 3, 13, 11}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}},
      {{2, 3, 13, 11}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 1},
      {{1, 4, 9, 10}, {2, 2}, {2, 2}, {0, 0, 0, 0}, {1, 1}},
      {{1, 2, 7, 7}, {3, 2}, {1, 3}, {2, 0, 1, 1}, {1, 1}},  // asymmetric pads
      {{1, 2, 11, 12}, {3, 3}, {1, 1}, {2, 2, 2, 2}, {2, 2}},  // dilation
      {{1, 2, 5, 6}, {1, 1}, {3, 2}, {0, 0, 0, 0}, {1, 1}, 1},  // stride past the kernel, ceil
      {{1, 3, 6, 5}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 1, 1},
      {{1, 3, 8, 8}, {5, 5}, {3, 3}, {2, 2, 2, 2}, {1, 1}, 0, 1},
      {{3, 1, 1, 17}, {1, 4}, {1, 4}, {0, 0, 0, 3}, {1, 1}, 1},
  };
}

OneNode make_node(const std::string& op, const PoolCase& c, uint32_t seed, int64_t opset) {
  std::vector<Attribute> attrs = {Attribute::make_ints("kernel_shape", c.kernel),
                                  Attribute::make_ints("strides", c.strides), Attribute::make_ints("pads", c.pads),
                                  Attribute::make_int("ceil_mode", c.ceil_mode)};
  if (op == "MaxPool" || opset >= 19) attrs.push_back(Attribute::make_ints("dilations", c.dilations));
  if (op == "AveragePool") attrs.push_back(Attribute::make_int("count_include_pad", c.count_include_pad));
  return OneNode("", op, {{random_tensor(c.x, seed, -3.0f, 3.0f)}}, attrs, opset);
}

TEST(CpuPool, MaxPoolMatchesReference) {
  uint32_t seed = 1;
  for (const PoolCase& c : cases()) {
    OneNode g = make_node("MaxPool", c, seed++, 12);
    check("MaxPool", g, 0.0f, describe(c));
    check_onednn("MaxPool", g, c, 0.0f);
  }
}

TEST(CpuPool, AveragePoolMatchesReference) {
  uint32_t seed = 100;
  for (const PoolCase& c : cases()) {
    OneNode g = make_node("AveragePool", c, seed++, 19);
    check("AveragePool", g, 1e-5f, describe(c));
    check_onednn("AveragePool", g, c, 1e-5f);
  }
}

TEST(CpuPool, GlobalPoolsMatchReference) {
  uint32_t seed = 200;
  for (const Dims& dims : std::vector<Dims>{{1, 2048, 7, 7}, {2, 3, 5, 9}, {1, 5, 1, 1}, {2, 4, 64, 64}}) {
    for (const char* op : {"GlobalMaxPool", "GlobalAveragePool"}) {
      OneNode g("", op, {{random_tensor(dims, seed++, -3.0f, 3.0f)}}, {}, 17);
      check(op, g, 1e-5f, dims_to_string(dims));
      check(*make_onednn_pool_tactic(false), op, g, 1e-5f, dims_to_string(dims));
    }
  }
}

TEST(CpuPool, NanInputsAndOtherRanksGoToTheReference) {
  Tensor x = random_tensor({1, 2, 6, 6}, 7);
  x.data<float>()[4] = std::numeric_limits<float>::quiet_NaN();
  x.data<float>()[40] = std::numeric_limits<float>::quiet_NaN();
  OneNode g("", "MaxPool", {{x}},
            {Attribute::make_ints("kernel_shape", {3, 3}), Attribute::make_ints("pads", {1, 1, 1, 1})}, 12);
  auto want = g.run_reference(g.feeds());
  ASSERT_TRUE(want.is_ok());
  auto kernel = make_pool_tactic("MaxPool")->prepare(g.node());
  ASSERT_TRUE(kernel.is_ok());
  auto got = g.run(**kernel, nullptr);
  ASSERT_TRUE(got.is_ok());
  expect_same(*got, *want, "MaxPool with NaN");
  // 1-D and 3-D pools are not this tactic's.
  OneNode one_d("", "MaxPool", {{random_tensor({1, 2, 9}, 8)}}, {Attribute::make_ints("kernel_shape", {3})}, 12);
  EXPECT_FALSE(make_pool_tactic("MaxPool")->supports(one_d.node()));
  EXPECT_EQ(make_pool_tactic("LpPool"), nullptr);
}

}  // namespace
}  // namespace kiln::backends::cpu::test
