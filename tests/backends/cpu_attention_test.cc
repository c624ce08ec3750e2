// Differential tests of the kiln.Attention tactic against the reference
// kernel, on every ISA level this machine runs and on 1 and 2 threads:
// Sq != Skv, D and Dv not multiples of 8, Sq or Skv of 1, Skv = 512 (several
// row blocks per batch index), batch dims that broadcast, ranks 2 to 5, no
// mask and masks of many shapes (per key, per query row, full, scalar,
// lower rank), 40 random shapes, BERT's own shapes, -Inf masks (key
// padding, causal, rows masked entirely: NaN as in the reference). +Inf or
// NaN in the mask and Inf or NaN in Q, Kt or V go to the reference: exactly
// its results.
//
// Tolerance: |got - want| <= 1e-4 * max(1, |want|), NaN where the reference
// has NaN. With |Q|, |Kt| <= 2 and scale = 1/sqrt(D) the scores reach
// about 2 sqrt(D) and float accumulation
// in a different order moves them by ~1e-6; softmax turns that into a
// similar relative error of the weights, and the output (a convex
// combination of V's rows, |V| <= 1) moves by about as much. The vectorized
// exp adds a few ulp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <random>

#include "backends/cpu/tactics.h"
#include "cpu_test_util.h"

namespace kiln::backends::cpu::test {
namespace {

using ir::Attribute;

struct Case {
  Dims q, kt, v;
  std::optional<Dims> mask;
};

std::string describe(const Case& c) {
  std::string s = "Q" + dims_to_string(c.q) + " Kt" + dims_to_string(c.kt) + " V" + dims_to_string(c.v);
  return s + (c.mask ? " mask" + dims_to_string(*c.mask) : " no mask");
}

// BERT-style additive mask: mostly small values, some -10000 (masked keys).
Tensor make_mask(const Dims& dims, uint32_t seed) {
  Tensor m = random_tensor(dims, seed, -3.0f, 0.0f);
  float* p = m.data<float>();
  for (int64_t i = 0; i < m.numel(); i += 3) p[i] = -10000.0f;
  return m;
}

OneNode make_node(const Case& c, uint32_t seed) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.q.back()));
  std::vector<NodeInput> in = {{random_tensor(c.q, seed, -2.0f, 2.0f)},
                               {random_tensor(c.kt, seed + 1, -2.0f, 2.0f)},
                               {random_tensor(c.v, seed + 2)}};
  if (c.mask) in.push_back({make_mask(*c.mask, seed + 3)});
  return OneNode("kiln", "Attention", in, {Attribute::make_float("scale", scale)});
}

// |got - want| <= 1e-4 * max(1, |want|), and NaN exactly where the reference has NaN.
void expect_near(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.dims(), want.dims()) << what;
  int64_t bad = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const float g = got.data<float>()[i], w = want.data<float>()[i];
    const bool ok = std::isnan(w) ? std::isnan(g) : std::fabs(g - w) <= 1e-4f * std::max(1.0f, std::fabs(w));
    if (!ok && bad++ < 3) ADD_FAILURE() << what << ": element " << i << " is " << g << ", expected " << w;
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << want.numel() << " elements differ";
}

// Every ISA's tactic on 1 and 2 threads against the reference.
void check_node(OneNode& g, const std::string& what) {
  auto want = g.run_reference(g.feeds());
  ASSERT_TRUE(want.is_ok()) << what << ": " << want.status().to_string();
  for (Isa isa : supported_isas()) {
    auto tactic = make_attention_tactic(isa);
    ASSERT_TRUE(tactic->supports(g.node())) << tactic->name();
    auto kernel = tactic->prepare(g.node());
    ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      auto got = g.run(**kernel, &pool);
      const std::string label = std::string(tactic->name()) + " " + what + " threads " + std::to_string(threads);
      ASSERT_TRUE(got.is_ok()) << label << ": " << got.status().to_string();
      expect_near(*got, *want, label);
    }
  }
}

void check(const Case& c, uint32_t seed) {
  OneNode g = make_node(c, seed);
  check_node(g, describe(c));
}

TEST(CpuAttention, MatchesReferenceOddSizes) {
  const std::vector<Case> cases = {
      {{1, 2, 5, 7}, {1, 2, 7, 9}, {1, 2, 9, 11}, std::nullopt},
      {{2, 3, 17, 13}, {2, 3, 13, 29}, {2, 3, 29, 5}, std::nullopt},
      {{1, 1, 1, 8}, {1, 1, 8, 1}, {1, 1, 1, 8}, std::nullopt},       // Sq = Skv = 1
      {{1, 2, 1, 16}, {1, 2, 16, 33}, {1, 2, 33, 16}, std::nullopt},  // one query row
      {{1, 2, 33, 16}, {1, 2, 16, 1}, {1, 2, 1, 3}, std::nullopt},    // one key
      {{9, 6}, {6, 10}, {10, 4}, std::nullopt},                       // rank 2
      {{2, 2, 2, 7, 5}, {2, 2, 2, 5, 6}, {2, 2, 2, 6, 9}, std::nullopt},
  };
  uint32_t seed = 1;
  for (const Case& c : cases) check(c, seed += 4);
}

TEST(CpuAttention, MaskShapes) {
  const Dims q = {2, 3, 7, 10}, kt = {2, 3, 10, 12}, v = {2, 3, 12, 9};
  const std::vector<Dims> masks = {
      {2, 1, 1, 12},  // BERT: per batch and key
      {12},           // per key
      {7, 12},        // per query and key
      {2, 3, 7, 12},  // full
      {2, 1, 7, 1},   // per query row only
      {3, 1, 12},     // lower rank, per head
      {1},            // scalar
      {},             // 0-d scalar
      {1, 1, 1, 1, 12},
  };
  uint32_t seed = 100;
  for (const Dims& m : masks) {
    // A rank-5 mask does not fit rank-4 scores: the reference reports it, and so does the tactic.
    if (m.size() > q.size()) continue;
    check({q, kt, v, m}, seed += 4);
  }
}

TEST(CpuAttention, BroadcastBatchesAndLongSequences) {
  uint32_t seed = 200;
  // Batch dims of 1 broadcast against the others.
  check({{2, 3, 6, 8}, {1, 3, 8, 11}, {2, 1, 11, 5}, Dims{2, 1, 1, 11}}, seed += 4);
  check({{1, 3, 6, 8}, {1, 3, 8, 11}, {4, 3, 11, 5}, Dims{1, 3, 6, 11}}, seed += 4);
  // Skv = 512: score blocks of fewer rows than Sq (tiling).
  check({{1, 1, 512, 24}, {1, 1, 24, 512}, {1, 1, 512, 20}, Dims{1, 1, 1, 512}}, seed += 4);
  check({{1, 2, 300, 9}, {1, 2, 9, 700}, {1, 2, 700, 7}, Dims{300, 700}}, seed += 4);
  // BERT-base's layer: 12 heads of 64, sequence 128.
  check({{1, 12, 128, 64}, {1, 12, 64, 128}, {1, 12, 128, 64}, Dims{1, 1, 1, 128}}, seed += 4);
}

// Random ranks, extents, batch broadcasts and mask shapes (fixed seed).
TEST(CpuAttention, RandomShapes) {
  std::mt19937 gen(11);
  auto pick = [&](int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(gen() % static_cast<uint32_t>(hi - lo + 1));
  };
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t rank = pick(2, 4);
    const int64_t sq = pick(1, 20), skv = pick(1, 20), d = pick(1, 20), dv = pick(1, 20);
    Dims q, kt, v, scores;
    for (int64_t i = 0; i < rank - 2; ++i) {
      const int64_t e = pick(1, 3);
      // Q and Kt set the scores' batch dim; V may broadcast against it either way.
      const int64_t qe = pick(0, 1) ? e : 1, ke = pick(0, 1) ? e : 1;
      const int64_t se = std::max(qe, ke);
      const int64_t ve = se == 1 ? (pick(0, 1) ? e : 1) : (pick(0, 1) ? se : 1);
      q.push_back(qe);
      kt.push_back(ke);
      v.push_back(ve);
      scores.push_back(se);
    }
    q.insert(q.end(), {sq, d});
    kt.insert(kt.end(), {d, skv});
    v.insert(v.end(), {skv, dv});
    scores.insert(scores.end(), {sq, skv});
    std::optional<Dims> mask;
    if (pick(0, 3) != 0) {
      // A suffix of the scores' dims, each kept or made 1.
      const int64_t mrank = pick(0, rank);
      Dims m;
      for (int64_t i = rank - mrank; i < rank; ++i) m.push_back(pick(0, 1) ? scores[static_cast<size_t>(i)] : 1);
      mask = m;
    }
    check({q, kt, v, mask}, 1000 + static_cast<uint32_t>(trial) * 4);
  }
}

TEST(CpuAttention, NegativeInfinityMasks) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  Tensor q = random_tensor({1, 2, 4, 8}, 1, -2.0f, 2.0f), kt = random_tensor({1, 2, 8, 6}, 2, -2.0f, 2.0f);
  Tensor v = random_tensor({1, 2, 6, 8}, 3);
  // Per query row and key: row 1 masked entirely (NaN in the reference), one more masked key.
  Tensor full = random_tensor({1, 1, 4, 6}, 4);
  for (int j = 0; j < 6; ++j) full.data<float>()[6 + j] = kNegInf;
  full.data<float>()[0] = kNegInf;
  // Key padding, applied in the SGEMM's store.
  Tensor keys = random_tensor({1, 1, 1, 6}, 5);
  keys.data<float>()[4] = keys.data<float>()[5] = kNegInf;
  // One value per query row (the mask's last dim is 1): head 1's row 2 masked.
  Tensor rows = random_tensor({1, 2, 4, 1}, 6);
  rows.data<float>()[6] = kNegInf;
  for (const Tensor& m : {full, keys, rows}) {
    OneNode g("kiln", "Attention", {{q}, {kt}, {v}, {m}}, {Attribute::make_float("scale", 0.5f)});
    check_node(g, "-inf mask " + dims_to_string(m.dims()));
  }
  // A causal mask: -inf above the diagonal, over several row blocks.
  const int64_t s = 300;
  Tensor causal = Tensor::empty(DataType::kFloat32, {s, s});
  for (int64_t i = 0; i < s; ++i) {
    for (int64_t j = 0; j < s; ++j) causal.data<float>()[i * s + j] = j > i ? kNegInf : 0.0f;
  }
  OneNode g("kiln", "Attention",
            {{random_tensor({1, 2, s, 16}, 7, -2.0f, 2.0f)},
             {random_tensor({1, 2, 16, s}, 8, -2.0f, 2.0f)},
             {random_tensor({1, 2, s, 16}, 9)},
             {causal}},
            {Attribute::make_float("scale", 0.25f)});
  check_node(g, "causal -inf mask");
}

TEST(CpuAttention, FallsBackToTheReference) {
  // +Inf and NaN in the mask, an Inf in Q, a NaN in V.
  Tensor q = random_tensor({1, 2, 4, 8}, 1), kt = random_tensor({1, 2, 8, 6}, 2), v = random_tensor({1, 2, 6, 8}, 3);
  Tensor mask_inf = random_tensor({1, 1, 4, 6}, 4);
  mask_inf.data<float>()[7] = std::numeric_limits<float>::infinity();
  Tensor mask_nan = random_tensor({1, 1, 4, 6}, 4);
  mask_nan.data<float>()[0] = -std::numeric_limits<float>::infinity();
  mask_nan.data<float>()[9] = std::numeric_limits<float>::quiet_NaN();
  Tensor q_inf = q.clone();
  q_inf.data<float>()[5] = std::numeric_limits<float>::infinity();
  // A NaN in the scalar tail of the finiteness check (42 values).
  Tensor v_nan = random_tensor({1, 1, 6, 7}, 8);
  v_nan.data<float>()[41] = std::numeric_limits<float>::quiet_NaN();
  for (const auto& in : std::vector<std::vector<NodeInput>>{
           {{q}, {kt}, {v}, {mask_inf}}, {{q}, {kt}, {v}, {mask_nan}}, {{q_inf}, {kt}, {v}}, {{q}, {kt}, {v_nan}}}) {
    OneNode g("kiln", "Attention", in, {Attribute::make_float("scale", 0.5f)});
    auto want = g.run_reference(g.feeds());
    ASSERT_TRUE(want.is_ok()) << want.status().to_string();
    auto kernel = make_attention_tactic(Isa::kGeneric)->prepare(g.node());
    ASSERT_TRUE(kernel.is_ok());
    ThreadPool pool(2);
    auto got = g.run(**kernel, &pool);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    expect_same(*got, *want, "non-finite input");
  }
  // Inputs of different ranks (MatMul's broadcasting of a 2-D Kt) are the reference's.
  Tensor kt2 = random_tensor({8, 6}, 5);
  OneNode ranks("kiln", "Attention", {{q}, {kt2}, {v}}, {Attribute::make_float("scale", 0.5f)});
  auto want = ranks.run_reference(ranks.feeds());
  ASSERT_TRUE(want.is_ok()) << want.status().to_string();
  auto kernel = make_attention_tactic(Isa::kGeneric)->prepare(ranks.node());
  ASSERT_TRUE(kernel.is_ok());
  auto got = ranks.run(**kernel, nullptr);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  expect_same(*got, *want, "rank-2 Kt");
  // A mask that does not broadcast to the scores and mismatched depths: errors, as in the reference.
  OneNode bad_mask("kiln", "Attention", {{q}, {kt}, {v}, {random_tensor({5}, 6)}}, {});
  EXPECT_FALSE(bad_mask.run(**kernel, nullptr).is_ok());
  OneNode bad_depth("kiln", "Attention", {{q}, {random_tensor({1, 2, 7, 6}, 7)}, {v}}, {});
  EXPECT_FALSE(bad_depth.run(**kernel, nullptr).is_ok());
}

TEST(CpuAttention, DeclinesOtherDtypes) {
  Tensor q = Tensor::empty(DataType::kFloat64, {2, 3});
  OneNode g("kiln", "Attention", {{q}, {Tensor::empty(DataType::kFloat64, {3, 2})}, {q}}, {});
  EXPECT_FALSE(make_attention_tactic(Isa::kGeneric)->supports(g.node()));
}

}  // namespace
}  // namespace kiln::backends::cpu::test
