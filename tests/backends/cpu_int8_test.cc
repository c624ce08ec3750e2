// Differential tests of the u8s8 GEMM (gemm_int8.h) and the int8 tactics on
// every variant this machine runs (supported_int8_variants(): on an AVX2-only
// machine the AVX2 and portable variants; the VNNI variants where the CPU has
// them). Integer results must be exact, and requantized int8/uint8 outputs
// bit-exact with the reference kernels (QLinearConv, kiln.QConv, kiln.QGemm;
// MatMulInteger and QLinearMatMul check the references against each other).
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "backends/cpu/gemm_int8.h"
#include "backends/cpu/tactics.h"
#include "cpu_test_util.h"

namespace kiln::backends::cpu::test {
namespace {

using ir::Attribute;

template <typename T>
Tensor random_ints(DataType dtype, const Dims& dims, uint32_t seed, int lo, int hi) {
  Tensor t = Tensor::empty(dtype, dims);
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  for (T& v : t.span<T>()) v = static_cast<T>(dist(gen));
  return t;
}

Tensor random_u8(const Dims& d, uint32_t seed) { return random_ints<uint8_t>(DataType::kUInt8, d, seed, 0, 255); }
Tensor random_s8(const Dims& d, uint32_t seed) { return random_ints<int8_t>(DataType::kInt8, d, seed, -128, 127); }

std::string label(Int8Variant v) { return std::string(int8_variant_name(v)); }

TEST(CpuInt8, VariantsIncludeThePortableOneLast) {
  auto v = supported_int8_variants();
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v.back(), Int8Variant::kGeneric);
  if (detect_isa() >= Isa::kAvx2) {
    EXPECT_NE(std::find(v.begin(), v.end(), Int8Variant::kAvx2), v.end());
  }
}

TEST(CpuInt8, GemmInt32IsExact) {
  struct Case {
    int64_t m, n, k;
  };
  const Case cases[] = {{1, 1, 1}, {5, 7, 3}, {4, 16, 16}, {37, 45, 33}, {64, 130, 97}, {9, 17, 258}};
  ThreadPool pool(2);
  for (Int8Variant v : supported_int8_variants()) {
    for (const Case& c : cases) {
      const uint32_t seed = static_cast<uint32_t>(c.m * 131 + c.n * 7 + c.k);
      Tensor a = random_u8({c.m, c.k}, seed);
      Tensor b = random_s8({c.k, c.n}, seed + 1);
      const int32_t zp = static_cast<int32_t>(seed % 256);
      PackedInt8B packed = pack_int8_b(v, b.data<int8_t>(), c.n, 1, c.k, c.n);
      const int64_t lda = packed.padded_k();
      std::vector<uint8_t> ap(static_cast<size_t>(c.m * lda), 7);  // padding holds junk on purpose
      for (int64_t r = 0; r < c.m; ++r) std::copy_n(a.data<uint8_t>() + r * c.k, c.k, ap.data() + r * lda);
      std::vector<int32_t> got(static_cast<size_t>(c.m * c.n));
      qgemm_u8s8_int32(packed, c.m, ap.data(), lda, zp, got.data(), c.n, &pool);
      int64_t bad = 0;
      for (int64_t r = 0; r < c.m; ++r) {
        for (int64_t j = 0; j < c.n; ++j) {
          int32_t want = 0;
          for (int64_t i = 0; i < c.k; ++i) {
            want += (int32_t{a.data<uint8_t>()[r * c.k + i]} - zp) * b.data<int8_t>()[i * c.n + j];
          }
          if (got[static_cast<size_t>(r * c.n + j)] != want && bad++ < 3) {
            ADD_FAILURE() << label(v) << " m=" << c.m << " n=" << c.n << " k=" << c.k << " at (" << r << "," << j
                          << "): " << got[static_cast<size_t>(r * c.n + j)] << " != " << want;
          }
        }
      }
      EXPECT_EQ(bad, 0) << label(v);
    }
  }
}

// The int32 product against the MatMulInteger reference kernel.
TEST(CpuInt8, GemmInt32MatchesMatMulInteger) {
  const int64_t m = 13, k = 41, n = 29;
  Tensor a = random_u8({m, k}, 3);
  Tensor b = random_s8({k, n}, 4);
  const uint8_t zp = 131;
  OneNode one("", "MatMulInteger", {{a}, {b, true}, {Tensor::scalar(DataType::kUInt8, zp)}}, {}, 13);
  auto want = one.run_reference(one.feeds());
  ASSERT_TRUE(want.is_ok()) << want.status().to_string();
  for (Int8Variant v : supported_int8_variants()) {
    PackedInt8B packed = pack_int8_b(v, b.data<int8_t>(), n, 1, k, n);
    const int64_t lda = packed.padded_k();
    std::vector<uint8_t> ap(static_cast<size_t>(m * lda), 0);
    for (int64_t r = 0; r < m; ++r) std::copy_n(a.data<uint8_t>() + r * k, k, ap.data() + r * lda);
    std::vector<int32_t> got(static_cast<size_t>(m * n));
    qgemm_u8s8_int32(packed, m, ap.data(), lda, zp, got.data(), n, nullptr);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want->data<int32_t>())) << label(v);
  }
}

TEST(CpuInt8, PackedWeightsRoundTripAndRejectCorruption) {
  Tensor b = random_s8({19, 21}, 9);
  PackedInt8B p = pack_int8_b(supported_int8_variants().front(), b.data<int8_t>(), 21, 1, 19, 21);
  auto bytes = p.serialize();
  auto back = PackedInt8B::deserialize(bytes);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->data, p.data);
  EXPECT_EQ(back->col_sums, p.col_sums);
  bytes.pop_back();
  EXPECT_FALSE(PackedInt8B::deserialize(bytes).is_ok());
  bytes[0] ^= 1;
  EXPECT_FALSE(PackedInt8B::deserialize(bytes).is_ok());
}

// The quantization parameters of one test layer.
struct QParams {
  bool x_signed, y_signed, per_channel, bias, relu;
};

std::vector<QParams> qparam_cases() {
  return {{false, false, true, true, false},
          {true, false, true, true, true},
          {false, true, false, false, false},
          {true, true, true, true, true},
          {false, false, false, true, true}};
}

// Inputs in QLinearConv / kiln.QGemm order; `out` output channels, `k` the
// reduction length (for a y_scale that spreads results over the 8-bit range).
std::vector<NodeInput> q_inputs(const Tensor& x, const Tensor& w, int64_t out, int64_t k, const QParams& q,
                                uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> sd(0.002f, 0.01f);
  Tensor ws = q.per_channel ? Tensor::empty(DataType::kFloat32, {out}) : Tensor::scalar(DataType::kFloat32, 0.005f);
  if (q.per_channel) {
    for (float& s : ws.span<float>()) s = sd(gen);
  }
  const float xs = 0.02f;
  const float ys = xs * 0.006f * 40.0f * std::sqrt(static_cast<float>(k));
  Tensor wz = q.per_channel ? Tensor::empty(DataType::kInt8, {out}) : Tensor::scalar(DataType::kInt8, int8_t{0});
  for (int8_t& z : wz.span<int8_t>()) z = 0;
  std::vector<NodeInput> in = {
      {x},
      {Tensor::scalar(DataType::kFloat32, xs), true},
      {q.x_signed ? Tensor::scalar(DataType::kInt8, int8_t{-5}) : Tensor::scalar(DataType::kUInt8, uint8_t{120}), true},
      {w, true},
      {ws, true},
      {wz, true},
      {Tensor::scalar(DataType::kFloat32, ys), true},
      {q.y_signed ? Tensor::scalar(DataType::kInt8, int8_t{3}) : Tensor::scalar(DataType::kUInt8, uint8_t{100}), true}};
  if (q.bias) in.push_back({random_ints<int32_t>(DataType::kInt32, {out}, seed + 5, -3000, 3000), true});
  return in;
}

void expect_bytes_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.dims(), want.dims()) << what;
  const auto* g = static_cast<const uint8_t*>(got.raw_data());
  const auto* w = static_cast<const uint8_t*>(want.raw_data());
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < got.nbytes(); ++i) {
    if (g[i] != w[i] && bad++ == 0) first = static_cast<int64_t>(i);
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << got.nbytes() << " differ, first at " << first;
  // Not all saturated: the case exercises the rounding, not only the clamp.
  int64_t distinct[256] = {};
  for (size_t i = 0; i < want.nbytes(); ++i) distinct[w[i]] = 1;
  EXPECT_GT(std::count(std::begin(distinct), std::end(distinct), 1), 8) << what;
}

struct ConvShape {
  Dims x;
  int64_t m;
  int64_t kh, kw;
  std::vector<Attribute> attrs;
};

TEST(CpuInt8, QConvTacticsAreBitExact) {
  const std::vector<ConvShape> shapes = {
      {{1, 3, 9, 9}, 8, 3, 3, {Attribute::make_ints("pads", {1, 1, 1, 1})}},
      {{2, 16, 7, 6}, 20, 1, 1, {}},
      {{1, 37, 9, 8}, 12, 1, 1, {}},  // pointwise: 16x16 transposed blocks with pixel and channel tails
      {{1, 5, 12, 11}, 17, 3, 3, {Attribute::make_ints("strides", {2, 2}), Attribute::make_ints("pads", {0, 1, 2, 0})}},
      {{1, 4, 10, 10},
       6,
       3,
       3,
       {Attribute::make_ints("dilations", {2, 2}), Attribute::make_ints("pads", {2, 2, 2, 2})}},
      {{1, 4, 9, 7}, 5, 3, 3, {Attribute::make_string("auto_pad", "SAME_UPPER")}},
      // Rows wide enough for the 16-pixel vector loads, with tails in pixels and taps.
      {{2, 7, 6, 37}, 19, 3, 3, {Attribute::make_ints("pads", {1, 1, 1, 1})}},
      {{1, 6, 9, 70}, 8, 3, 3, {Attribute::make_ints("strides", {2, 2}), Attribute::make_ints("pads", {1, 1, 1, 1})}},
      {{1, 3, 12, 52}, 5, 7, 7, {Attribute::make_ints("strides", {2, 2}), Attribute::make_ints("pads", {3, 3, 3, 3})}},
      {{1, 3, 8, 40}, 4, 3, 3, {Attribute::make_ints("dilations", {2, 2}), Attribute::make_ints("pads", {2, 2, 2, 2})}},
      {{1, 2, 5, 33}, 3, 1, 3, {Attribute::make_ints("strides", {1, 3})}},
  };
  ThreadPool pool(2);
  uint32_t seed = 100;
  for (const ConvShape& s : shapes) {
    for (const QParams& q : qparam_cases()) {
      ++seed;
      Tensor x = q.x_signed ? random_s8(s.x, seed) : random_u8(s.x, seed);
      Tensor w = random_s8({s.m, s.x[1], s.kh, s.kw}, seed + 1);
      auto inputs = q_inputs(x, w, s.m, s.x[1] * s.kh * s.kw, q, seed);
      for (bool kiln_op : {false, true}) {
        if (!kiln_op && q.relu) continue;
        std::vector<Attribute> attrs = s.attrs;
        if (kiln_op && q.relu) attrs.push_back(Attribute::make_string("activation", "Relu"));
        OneNode one(kiln_op ? "kiln" : "", kiln_op ? "QConv" : "QLinearConv", inputs, attrs, 13);
        auto want = one.run_reference(one.feeds());
        ASSERT_TRUE(want.is_ok()) << want.status().to_string();
        for (Int8Variant v : supported_int8_variants()) {
          auto tactic = make_qconv_tactic(v, kiln_op);
          const std::string what =
              std::string(tactic->name()) + " x" + dims_to_string(s.x) + " case " + std::to_string(seed);
          ASSERT_TRUE(tactic->supports(one.node())) << what;
          auto kernel = tactic->prepare(one.node());
          ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
          auto got = one.run(**kernel, &pool);
          ASSERT_TRUE(got.is_ok()) << got.status().to_string();
          expect_bytes_equal(*got, *want, what);
        }
      }
    }
  }
}

TEST(CpuInt8, QGemmTacticIsBitExact) {
  ThreadPool pool(2);
  uint32_t seed = 500;
  for (Dims adims : {Dims{1, 10}, Dims{7, 33}, Dims{2, 3, 64}, Dims{40, 130}}) {
    for (int64_t n : {1, 10, 37}) {
      for (const QParams& q : qparam_cases()) {
        ++seed;
        const int64_t k = adims.back();
        Tensor a = q.x_signed ? random_s8(adims, seed) : random_u8(adims, seed);
        Tensor b = random_s8({k, n}, seed + 1);
        std::vector<Attribute> attrs;
        if (q.relu) attrs.push_back(Attribute::make_string("activation", "Relu"));
        OneNode one("kiln", "QGemm", q_inputs(a, b, n, k, q, seed), attrs);
        auto want = one.run_reference(one.feeds());
        ASSERT_TRUE(want.is_ok()) << want.status().to_string();
        for (Int8Variant v : supported_int8_variants()) {
          auto tactic = make_qgemm_tactic(v);
          const std::string what = std::string(tactic->name()) + " a" + dims_to_string(adims) +
                                   " n=" + std::to_string(n) + " case " + std::to_string(seed);
          ASSERT_TRUE(tactic->supports(one.node())) << what;
          auto kernel = tactic->prepare(one.node());
          ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
          auto got = one.run(**kernel, &pool);
          ASSERT_TRUE(got.is_ok()) << got.status().to_string();
          if (n * adims.front() >= 70) {
            expect_bytes_equal(*got, *want, what);
          } else {
            EXPECT_EQ(std::memcmp(got->raw_data(), want->raw_data(), got->nbytes()), 0) << what;
          }
        }
      }
    }
  }
}

// kiln.QGemm's reference agrees with ONNX's QLinearMatMul (no bias, no ReLU).
TEST(CpuInt8, QGemmReferenceMatchesQLinearMatMul) {
  for (bool per_channel : {false, true}) {
    QParams q{false, false, per_channel, false, false};
    Tensor a = random_u8({6, 50}, 77);
    Tensor b = random_s8({50, 12}, 78);
    auto inputs = q_inputs(a, b, 12, 50, q, 79);
    OneNode qgemm("kiln", "QGemm", inputs, {});
    OneNode qlm("", "QLinearMatMul", inputs, {}, 13);
    auto want = qlm.run_reference(qlm.feeds());
    auto got = qgemm.run_reference(qgemm.feeds());
    ASSERT_TRUE(want.is_ok()) << want.status().to_string();
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    expect_bytes_equal(*got, *want, per_channel ? "per-channel" : "per-tensor");
  }
}

TEST(CpuInt8, TacticsDeclineWhatTheyCannotRun) {
  QParams q{false, false, true, false, false};
  Tensor x = random_u8({1, 4, 5, 5}, 1);
  Tensor w = random_s8({4, 2, 3, 3}, 2);  // grouped
  OneNode grouped("", "QLinearConv", q_inputs(x, w, 4, 18, q, 3), {Attribute::make_int("group", 2)}, 13);
  auto t = make_qconv_tactic(Int8Variant::kGeneric, false);
  EXPECT_FALSE(t->supports(grouped.node()));
  auto inputs = q_inputs(x, random_s8({4, 4, 3, 3}, 4), 4, 36, q, 5);
  inputs[5].value = Tensor::scalar(DataType::kInt8, int8_t{1});  // asymmetric weights
  OneNode asym("", "QLinearConv", inputs, {}, 13);
  EXPECT_FALSE(t->supports(asym.node()));
}

// QuantizeLinear / DequantizeLinear tactics against the reference kernels,
// edge values included (NaN, +-Inf, ties, out of range).
TEST(CpuInt8, QdqTacticsAreBitExact) {
  Tensor x = random_tensor({3, 1000}, 21, -4.0f, 4.0f);
  float* xv = x.data<float>();
  const float edges[] = {NAN,           INFINITY, -INFINITY, 0.5f * 0.03f, 1.5f * 0.03f,
                         -2.5f * 0.03f, 1e30f,    -1e30f,    0.0f,         -0.0f};
  std::copy(std::begin(edges), std::end(edges), xv);
  ThreadPool pool(2);
  for (DataType qt : {DataType::kUInt8, DataType::kInt8}) {
    for (bool with_zp : {true, false}) {
      if (!with_zp && qt == DataType::kInt8) continue;  // an absent zero point means uint8
      std::vector<NodeInput> qin = {{x}, {Tensor::scalar(DataType::kFloat32, 0.03f), true}};
      if (with_zp) {
        qin.push_back({qt == DataType::kInt8 ? Tensor::scalar(DataType::kInt8, int8_t{-7})
                                             : Tensor::scalar(DataType::kUInt8, uint8_t{131}),
                       true});
      }
      OneNode q("", "QuantizeLinear", qin, {}, 19);
      q.node().output(0)->set_type(ir::ValueType::tensor(qt));
      auto want = q.run_reference(q.feeds());
      ASSERT_TRUE(want.is_ok()) << want.status().to_string();
      auto tq = make_qdq_tactic(true);
      ASSERT_TRUE(tq->supports(q.node()));
      auto kq = tq->prepare(q.node());
      ASSERT_TRUE(kq.is_ok());
      auto got = q.run(**kq, &pool);
      ASSERT_TRUE(got.is_ok()) << got.status().to_string();
      expect_bytes_equal(*got, *want, "QuantizeLinear");

      std::vector<NodeInput> din = qin;
      din[0] = {*want};
      OneNode d("", "DequantizeLinear", din, {}, 19);
      auto dwant = d.run_reference(d.feeds());
      ASSERT_TRUE(dwant.is_ok()) << dwant.status().to_string();
      auto td = make_qdq_tactic(false);
      ASSERT_TRUE(td->supports(d.node()));
      auto kd = td->prepare(d.node());
      ASSERT_TRUE(kd.is_ok());
      auto dgot = d.run(**kd, &pool);
      ASSERT_TRUE(dgot.is_ok());
      ASSERT_EQ(std::memcmp(dgot->raw_data(), dwant->raw_data(), dgot->nbytes()), 0) << "DequantizeLinear";
    }
  }
  // Per-axis scales stay on the reference.
  OneNode axis("", "QuantizeLinear", {{x}, {random_tensor({1000}, 3, 0.1f, 1.0f), true}}, {}, 19);
  EXPECT_FALSE(make_qdq_tactic(true)->supports(axis.node()));
}

}  // namespace
}  // namespace kiln::backends::cpu::test
