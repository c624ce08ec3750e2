// Tests of the attention family: Attention, RotaryEmbedding, SwiGLU,
// LinearAttention, CausalConvWithState and FlexAttention.
//
// Inputs come from seq() below; expected values were computed with ONNX's
// reference implementation (onnx 1.23.2, onnx.reference.ReferenceEvaluator)
// on the same inputs, built in numpy as
//   (np.sin(np.arange(n) * 1.7 + off) * scale * 10).reshape(shape).astype(np.float32)
#include <cmath>
#include <limits>

#include "ops/elementwise_test_util.h"

namespace kiln::test {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor seq(Dims dims, double scale = 0.1, double off = 0.0, DataType dtype = DataType::kFloat32) {
  Tensor f = Tensor::empty(DataType::kFloat32, dims);
  for (int64_t i = 0; i < f.numel(); ++i) {
    f.data<float>()[i] = static_cast<float>(std::sin(static_cast<double>(i) * 1.7 + off) * scale * 10);
  }
  return dtype == DataType::kFloat32 ? f : ops::cast_tensor(f, dtype).value();
}

ir::Attribute iattr(const std::string& name, int64_t v) { return ir::Attribute::make_int(name, v); }
ir::Attribute fattr(const std::string& name, float v) { return ir::Attribute::make_float(name, v); }

// ---- Attention -------------------------------------------------------------------

TEST(Attention, Basic4D) {
  OpTest t("Attention", 23);
  t.input("Q", seq({1, 1, 2, 2})).input("K", seq({1, 1, 3, 2}, 0.1, 1.0)).input("V", seq({1, 1, 3, 2}, 0.1, 2.0));
  expect_near(run1(t), {1, 1, 2, 2},
              {0.34668436646461487, -0.2856852114200592, 0.02423441782593727, -0.04892875626683235});
}

TEST(Attention, Packed3DGroupedCausalWithPast) {
  OpTest t("Attention", 23);
  t.input("Q", seq({1, 2, 4})).input("K", seq({1, 2, 2}, 0.1, 1.0)).input("V", seq({1, 2, 2}, 0.1, 2.0));
  t.none().input("pk", seq({1, 1, 1, 2}, 0.1, 3.0)).input("pv", seq({1, 1, 1, 2}, 0.1, 4.0));
  t.attr(iattr("is_causal", 1)).attr(iattr("q_num_heads", 2)).attr(iattr("kv_num_heads", 1)).outputs(3);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 2, 4},
              {0.46149036288261414, -0.5354399085044861, -0.32839637994766235, -0.5453245043754578, 0.20355544984340668,
               -0.2581709325313568, -0.5195547342300415, 0.04813962057232857});
  expect_near((*out)[1], {1, 1, 3, 2},
              {0.14112000167369843, -0.9999232292175293, 0.8414709568023682, 0.42737987637519836, -0.9516021013259888,
               -0.18216250836849213});
  expect_near((*out)[2], {1, 1, 3, 2},
              {-0.756802499294281, -0.5506855249404907, 0.9092974066734314, -0.529836118221283, -0.7727645039558411,
               0.7289690375328064});
}

TEST(Attention, FullyMaskedRowIsZeroInYAndMode3) {
  OpTest t("Attention", 23);
  t.input("Q", seq({1, 1, 2, 2})).input("K", seq({1, 1, 2, 2}, 0.1, 1.0)).input("V", seq({1, 1, 2, 2}, 0.1, 2.0));
  t.input("mask", bools({2, 2}, {1, 0, 0, 0})).attr(iattr("qk_matmul_output_mode", 3));
  t.outputs(4);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 1, 2, 2}, {0.9092974066734314, -0.529836118221283, 0, 0});
  expect_near((*out)[3], {1, 1, 2, 2}, {1, 0, 0, 0});
}

TEST(Attention, ExternalCacheOffsetsTheCausalFrontier) {
  OpTest t("Attention", 24);
  t.input("Q", seq({2, 1, 2, 2})).input("K", seq({2, 1, 4, 2}, 0.1, 1.0)).input("V", seq({2, 1, 4, 2}, 0.1, 2.0));
  t.none().none().none().input("n", int64s({2}, {3, 4})).attr(iattr("is_causal", 1));
  expect_near(run1(t), {2, 1, 2, 2},
              {0.24531559646129608, -0.0329318530857563, 0.02423441782593727, -0.04892875626683235,
               -0.0026355667505413294, -0.1708543300628662, 0.07267340272665024, -0.06503450870513916});
}

TEST(Attention, WindowShortFloatMaskSoftcapAndBiasOutput) {
  OpTest t("Attention", 25);
  t.input("Q", seq({1, 1, 3, 2})).input("K", seq({1, 1, 4, 2}, 0.1, 1.0)).input("V", seq({1, 1, 4, 2}, 0.1, 2.0));
  t.input("mask", floats({3}, {0.5, -1.0, 0.25}));  // the 4th key is masked: the mask is short
  t.attr(iattr("left_window_size", 1)).attr(iattr("right_window_size", 1)).attr(fattr("softcap", 2.0f));
  t.attr(iattr("qk_matmul_output_mode", 2)).outputs(4);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 1, 3, 2},
              {0.6951666474342346, -0.3695870339870453, 0.46715882420539856, -0.4466085433959961, 0.420589417219162,
               -0.6849901080131531});
  std::vector<double> qk = values_of((*out)[3]);
  const std::vector<double> want = {0.7974613308906555,
                                    -1.127561330795288,
                                    -kInf,
                                    -kInf,
                                    0.07475423812866211,
                                    -0.7108381986618042,
                                    0.11895404756069183,
                                    -kInf,
                                    -kInf,
                                    -1.4285856485366821,
                                    0.5540745258331299,
                                    -kInf};
  ASSERT_EQ(qk.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isinf(want[i])) {
      EXPECT_EQ(qk[i], want[i]) << i;
    } else {
      EXPECT_NEAR(qk[i], want[i], 1e-5) << i;
    }
  }
}

TEST(Attention, Mode0IsTheRawProductEvenWithSoftcap) {
  // The spec's function body exposes QK before softcap in mode 0 (the Python
  // reference returns it softcapped); mode 1 is after softcap.
  for (int64_t mode : {0, 1}) {
    OpTest t("Attention", 23);
    t.input("Q", floats({1, 1, 1, 1}, {4})).input("K", floats({1, 1, 1, 1}, {1})).input("V", floats({1, 1, 1, 1}, {1}));
    t.attr(fattr("softcap", 1.0f)).attr(iattr("qk_matmul_output_mode", mode)).outputs(4);
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_near((*out)[3], {1, 1, 1, 1}, {mode == 0 ? 4.0 : std::tanh(4.0)});
  }
}

TEST(Attention, Float16) {
  OpTest t("Attention", 23);
  t.input("Q", seq({1, 1, 2, 2}, 0.1, 0, DataType::kFloat16))
      .input("K", seq({1, 1, 3, 2}, 0.1, 1.0, DataType::kFloat16));
  t.input("V", seq({1, 1, 3, 2}, 0.1, 2.0, DataType::kFloat16)).attr(fattr("scale", 0.5f));
  expect_values(run1(t), DataType::kFloat16, {1, 1, 2, 2},
                {0.31494140625, -0.2685546875, 0.0880126953125, -0.10302734375});
}

TEST(Attention, EmptyKeysAndQueries) {
  OpTest t("Attention", 23);
  t.input("Q", seq({1, 1, 2, 2})).input("K", floats({1, 1, 0, 2}, {})).input("V", floats({1, 1, 0, 3}, {}));
  expect_near(run1(t), {1, 1, 2, 3}, {0, 0, 0, 0, 0, 0});
  OpTest u("Attention", 23);
  u.input("Q", floats({1, 0, 6}, {})).input("K", seq({1, 2, 6})).input("V", seq({1, 2, 6}));
  u.attr(iattr("q_num_heads", 3)).attr(iattr("kv_num_heads", 3));
  expect_near(run1(u), {1, 0, 6}, {});
}

struct AttnError {
  const char* needle;
  int64_t opset;
  std::vector<Tensor> inputs;  // undefined tensors are omitted optionals
  std::vector<ir::Attribute> attrs;
};

void expect_attention_error(const AttnError& c) {
  OpTest t("Attention", c.opset);
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (c.inputs[i].defined()) {
      t.input("in" + std::to_string(i), c.inputs[i]);
    } else {
      t.none();
    }
  }
  for (const auto& a : c.attrs) t.attr(a);
  SCOPED_TRACE(c.needle);
  expect_error(t, c.needle);
}

TEST(Attention, ErrorPaths) {
  Tensor q4 = seq({1, 2, 2, 4}), k4 = seq({1, 2, 3, 4}), v4 = seq({1, 2, 3, 4});
  const std::vector<AttnError> cases = {
      {"must have the same rank", 23, {q4, seq({1, 3, 8}), v4}, {}},
      {"rank 3 or 4", 23, {seq({2, 4}), seq({2, 4}), seq({2, 4})}, {}},
      {"need the q_num_heads", 23, {seq({1, 2, 8}), seq({1, 3, 8}), seq({1, 3, 8})}, {}},
      {"not divisible by q_num_heads",
       23,
       {seq({1, 2, 8}), seq({1, 3, 8}), seq({1, 3, 8})},
       {iattr("q_num_heads", 3), iattr("kv_num_heads", 2)}},
      {"not a multiple of kv_num_heads", 23, {seq({1, 3, 2, 4}), k4, v4}, {}},
      {"differs from Q head size", 23, {q4, seq({1, 2, 3, 2}), v4}, {}},
      {"past_key and past_value must be given together", 23, {q4, k4, v4, Tensor(), seq({1, 2, 1, 4})}, {}},
      {"past_key", 23, {q4, k4, v4, Tensor(), seq({1, 2, 1, 3}), seq({1, 2, 1, 4})}, {}},
      {"does not broadcast", 23, {q4, k4, v4, seq({3, 3})}, {}},
      {"longer than the 3 keys", 23, {q4, k4, v4, seq({2, 4})}, {}},
      {"qk_matmul_output_mode 7", 23, {q4, k4, v4}, {iattr("qk_matmul_output_mode", 7)}},
      {"softmax_precision 7", 23, {q4, k4, v4}, {iattr("softmax_precision", 7)}},
      {"is_causal must be 0 or 1", 23, {q4, k4, v4}, {iattr("is_causal", 2)}},
      {"must not be negative", 23, {q4, k4, v4}, {fattr("scale", -1.0f)}},
      {"left_window_size (-2)", 25, {q4, k4, v4}, {iattr("left_window_size", -2)}},
      {"outside [0, 3]", 24, {q4, k4, v4, Tensor(), Tensor(), Tensor(), int64s({1}, {4})}, {}},
      {"cannot be combined", 24, {q4, k4, v4, Tensor(), seq({1, 2, 1, 4}), seq({1, 2, 1, 4}), int64s({1}, {3})}, {}},
      {"element type int32", 23, {int32s({1, 1, 1, 1}, {1}), k4, v4}, {}},
      {"q_num_heads 3 does not match", 23, {q4, k4, v4}, {iattr("q_num_heads", 3)}},
  };
  for (const auto& c : cases) expect_attention_error(c);
}

TEST(AttentionInfer, Shapes) {
  InferTest packed("Attention", 23);
  packed.tensor(DataType::kFloat16, sym_shape({Dim::sym("B"), 4, 72}))
      .tensor(DataType::kFloat16, sym_shape({Dim::sym("B"), 6, 24}))
      .tensor(DataType::kFloat16, sym_shape({Dim::sym("B"), 6, 30}))
      .none()
      .tensor(DataType::kFloat16, sym_shape({Dim::sym("B"), 3, 5, 8}))
      .tensor(DataType::kFloat16, sym_shape({Dim::sym("B"), 3, 5, 10}))
      .attr(iattr("q_num_heads", 9))
      .attr(iattr("kv_num_heads", 3))
      .outputs(4);
  auto types = packed.run();
  ASSERT_TRUE(types.is_ok()) << types.status().to_string();
  EXPECT_EQ((*types)[0].to_string(), "float16[B,4,90]");
  EXPECT_EQ((*types)[1].to_string(), "float16[B,3,11,8]");
  EXPECT_EQ((*types)[2].to_string(), "float16[B,3,11,10]");
  EXPECT_EQ((*types)[3].to_string(), "float16[B,9,4,11]");
  EXPECT_EQ(InferTest("Attention", 23)
                .tensor(DataType::kFloat32, sym_shape({2, 9, Dim::sym("S"), 8}))
                .tensor(DataType::kFloat32, Shape::unknown_rank())
                .tensor(DataType::kFloat32, sym_shape({2, 3, 6, 10}))
                .str(),
            "float[2,9,S,10]");
  EXPECT_EQ(InferTest("Attention", 23)
                .tensor(DataType::kFloat32, sym_shape({2, 9}))
                .tensor(DataType::kFloat32, sym_shape({2, 9}))
                .tensor(DataType::kFloat32, sym_shape({2, 9}))
                .str()
                .rfind("error:", 0),
            0u);
}

// ---- RotaryEmbedding -------------------------------------------------------------

Tensor rope_cache(bool sine, int64_t rows, int64_t half) {
  Tensor t = Tensor::empty(DataType::kFloat32, {rows, half});
  for (int64_t i = 0; i < rows * half; ++i) {
    double a = static_cast<double>(i) * 0.3;
    t.data<float>()[i] = static_cast<float>(sine ? std::sin(a) : std::cos(a));
  }
  return t;
}

TEST(RotaryEmbedding, HalvesInterleavedAndPartial) {
  // cos/sin = cos/sin(arange(6).reshape(3, 2) * 0.3), position_ids [[2, 0]].
  for (int interleaved : {0, 1}) {
    OpTest t("RotaryEmbedding", 23);
    t.input("x", seq({1, 2, 2, 4})).input("cos", rope_cache(false, 3, 2)).input("sin", rope_cache(true, 3, 2));
    t.input("pos", int64s({1, 2}, {2, 0})).attr(iattr("interleaved", interleaved));
    if (interleaved == 0) {
      expect_near(run1(t), {1, 2, 2, 4},
                  {0.23817430436611176, 0.9936431050300598, -0.09259730577468872, 0.9236911535263062,
                   0.49411335587501526, 0.9454959034919739, -0.6998746991157532, -0.35455989837646484,
                   1.2073838710784912, 0.17669010162353516, 0.4524025321006775, 0.3852069675922394, 0.9997928738594055,
                   -0.20989350974559784, -0.9717984199523926, 0.3109172284603119});
    } else {
      expect_near(run1(t), {1, 2, 2, 4},
                  {-0.9242703914642334, 0.3593374490737915, 0.9054192900657654, -0.320390522480011, 0.49411335587501526,
                   0.79848712682724, -0.48594385385513306, -0.7973560690879822, -0.05845379829406738, 0.944534420967102,
                   0.080619215965271, -0.9695289134979248, 0.9997928738594055, -0.10863659530878067, -1.03450345993042,
                   0.055835455656051636});
    }
  }
  // 3-D input, 2 heads of 4, rotary_embedding_dim 2: caches are column 0 of the above.
  Tensor c = Tensor::empty(DataType::kFloat32, {3, 1}), s = Tensor::empty(DataType::kFloat32, {3, 1});
  for (int64_t i = 0; i < 3; ++i) {
    c.data<float>()[i] = static_cast<float>(std::cos(0.6 * static_cast<double>(i)));
    s.data<float>()[i] = static_cast<float>(std::sin(0.6 * static_cast<double>(i)));
  }
  OpTest t("RotaryEmbedding", 23);
  t.input("x", seq({1, 2, 8})).input("cos", c).input("sin", s).input("pos", int64s({1, 2}, {2, 0}));
  t.attr(iattr("num_heads", 2)).attr(iattr("rotary_embedding_dim", 2));
  expect_near(run1(t), {1, 2, 8},
              {-0.9242703914642334, 0.3593374490737915, -0.2555411159992218, -0.925814688205719, -0.5651754140853882,
               0.749871015548706, -0.6998746991157532, -0.6181371212005615, 0.8591617941856384, 0.396740585565567,
               -0.9613974690437317, -0.14899902045726776, 0.9997928738594055, -0.10863659530878067, -0.9717984199523926,
               0.35905835032463074});
}

TEST(RotaryEmbedding, NoPositionIdsBroadcastsBatchOfCaches) {
  // Without position_ids the caches are [batch, seq, half]; a batch of 1 broadcasts.
  OpTest t("RotaryEmbedding", 23);
  t.input("x", floats({2, 1, 1, 2}, {1, 0, 0, 1})).input("cos", floats({1, 1, 1}, {0}));
  t.input("sin", floats({1, 1, 1}, {1}));
  expect_near(run1(t), {2, 1, 1, 2}, {0, 1, -1, 0});
}

TEST(RotaryEmbedding, ErrorPaths) {
  auto base = [](OpTest& t, Tensor x, Tensor pos) {
    t.input("x", std::move(x)).input("cos", rope_cache(false, 3, 2)).input("sin", rope_cache(true, 3, 2));
    t.input("pos", std::move(pos));
  };
  OpTest a("RotaryEmbedding", 23);
  base(a, seq({1, 2, 2, 4}), int64s({1, 2}, {3, 0}));
  expect_error(a, "position id 3 is outside");
  OpTest b("RotaryEmbedding", 23);
  base(b, seq({1, 2, 8}), int64s({1, 2}, {0, 0}));
  expect_error(b, "num_heads");
  OpTest c("RotaryEmbedding", 23);
  base(c, seq({1, 2, 2, 4}), int64s({1, 2}, {0, 0}));
  c.attr(iattr("rotary_embedding_dim", 3));
  expect_error(c, "must be even");
  OpTest d("RotaryEmbedding", 23);
  base(d, seq({1, 2, 2, 6}), int64s({1, 2}, {0, 0}));
  expect_error(d, "rotary_embedding_dim / 2 = 3");
  OpTest e("RotaryEmbedding", 23);
  base(e, seq({1, 2, 2, 4}), int64s({3, 2}, {0, 0, 0, 0, 0, 0}));
  expect_error(e, "does not broadcast");
}

// ---- SwiGLU -----------------------------------------------------------------------

TEST(SwiGLU, ValuesAndErrors) {
  OpTest t("SwiGLU", 28);
  t.input("a", seq({2, 3})).input("b", seq({2, 3}, 0.1, 1.0)).attr(fattr("alpha", 0.5f));
  expect_near(
      run1(t), {2, 3},
      {0.0, 0.26339393854141235, 0.11382967978715897, 0.06514838337898254, 0.2770167589187622, -0.03591466695070267});
  OpTest u("SwiGLU", 28);
  u.input("a", seq({2, 3})).input("b", seq({3}));
  expect_error(u, "identical shapes");
  OpTest v("SwiGLU", 28);
  v.input("a", seq({2})).input("b", seq({2}, 0.1, 0, DataType::kFloat16));
  expect_error(v, "same element type");
  EXPECT_EQ(InferTest("SwiGLU", 28)
                .tensor(DataType::kBFloat16, sym_shape({Dim::sym("N"), 8}))
                .tensor(DataType::kBFloat16, sym_shape({Dim::sym("N"), 8}))
                .str(),
            "bfloat16[N,8]");
}

// ---- LinearAttention ----------------------------------------------------------------

TEST(LinearAttention, GatedDeltaGroupedAndLinearWithPast) {
  // decay = -|seq(0.1, 3)|, beta = |seq(0.05, 4)|.
  Tensor decay = seq({1, 2, 1}, 0.1, 3.0), beta = seq({1, 2, 1}, 0.05, 4.0);
  for (int64_t i = 0; i < 2; ++i) {
    decay.data<float>()[i] = -std::abs(decay.data<float>()[i]);
    beta.data<float>()[i] = std::abs(beta.data<float>()[i]);
  }
  OpTest t("LinearAttention", 27);
  t.input("q", seq({1, 2, 4})).input("k", seq({1, 2, 2}, 0.1, 1.0)).input("v", seq({1, 2, 2}, 0.1, 2.0));
  t.none().input("decay", decay).input("beta", beta);
  t.attr(iattr("q_num_heads", 2)).attr(iattr("kv_num_heads", 1)).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 2, 4},
              {0.10311514884233475, -0.06008389964699745, -0.1485850065946579, 0.0865786075592041, 0.14706067740917206,
               -0.11909565329551697, -0.1766476035118103, 0.1451772153377533});
  expect_near((*out)[1], {1, 1, 2, 2},
              {0.27985674142837524, -0.23609013855457306, 0.08728286623954773, -0.06483685970306396});

  OpTest u("LinearAttention", 27);
  u.input("q", seq({1, 2, 4})).input("k", seq({1, 2, 2}, 0.1, 1.0)).input("v", seq({1, 2, 2}, 0.1, 2.0));
  u.input("past", seq({1, 1, 2, 2}, 0.1, 5.0)).attr(iattr("q_num_heads", 2)).attr(iattr("kv_num_heads", 1));
  u.attr(ir::Attribute::make_string("update_rule", "linear")).attr(fattr("scale", 0.5f)).outputs(2);
  out = u.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 2, 4},
              {0.6164259314537048, -0.422207236289978, -0.5507339835166931, 0.3994086980819702, 0.686349093914032,
               -0.5744842290878296, -0.6172673106193542, 0.5613090991973877});
  expect_near((*out)[1], {1, 1, 2, 2},
              {0.5415874123573303, -0.7346802353858948, 1.3839830160140991, -0.9843027591705322});
}

TEST(LinearAttention, ErrorPaths) {
  auto make = [](const std::string& rule, bool decay, bool beta) {
    auto t = std::make_unique<OpTest>("LinearAttention", 27);
    t->input("q", seq({1, 2, 4})).input("k", seq({1, 2, 4})).input("v", seq({1, 2, 4})).none();
    if (decay) {
      t->input("decay", seq({1, 2, 2}));
    } else {
      t->none();
    }
    if (beta) t->input("beta", seq({1, 2, 2}));
    t->attr(iattr("q_num_heads", 2)).attr(iattr("kv_num_heads", 2));
    t->attr(ir::Attribute::make_string("update_rule", rule)).outputs(2);
    return t;
  };
  expect_error(*make("gated", false, false), "requires the decay input");
  expect_error(*make("linear", false, true), "forbids the beta input");
  expect_error(*make("fancy", false, false), "update_rule 'fancy'");
  OpTest t("LinearAttention", 27);
  t.input("q", seq({1, 2, 4})).input("k", seq({1, 2, 4})).input("v", seq({1, 2, 4}));
  t.attr(iattr("q_num_heads", 3))
      .attr(iattr("kv_num_heads", 2))
      .attr(ir::Attribute::make_string("update_rule", "linear"));
  expect_error(t, "positive multiple");
  OpTest u("LinearAttention", 27);
  u.input("q", seq({1, 2, 4})).input("k", seq({1, 2, 4})).input("v", seq({1, 2, 4})).input("past", seq({1, 2, 2, 3}));
  u.attr(iattr("q_num_heads", 2))
      .attr(iattr("kv_num_heads", 2))
      .attr(ir::Attribute::make_string("update_rule", "linear"));
  expect_error(u, "past_state [1,2,2,3] must be [1,2,2,2]");
}

// ---- CausalConvWithState ------------------------------------------------------------

TEST(CausalConvWithState, SiluWithPastAndNoPast) {
  OpTest t("CausalConvWithState", 27);
  t.input("x", seq({1, 2, 3})).input("w", seq({2, 1, 3}, 0.1, 1.0)).input("b", floats({2}, {0.5, -0.5}));
  t.input("past", seq({1, 2, 2}, 0.1, 2.0)).attr(ir::Attribute::make_string("activation", "silu")).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 2, 3},
              {0.767188549041748, -0.25903528928756714, 0.8899481296539307, 0.26638808846473694, -0.26908063888549805,
               0.05361808463931084});
  expect_near((*out)[1], {1, 2, 2}, {0.9916648268699646, -0.2555411159992218, 0.49411335587501526, 0.79848712682724});
  OpTest u("CausalConvWithState", 27);
  u.input("x", seq({1, 2, 3})).input("w", seq({2, 1, 3}, 0.1, 1.0)).outputs(2);
  out = u.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near(
      (*out)[0], {1, 2, 3},
      {0.0, -0.9436703324317932, 0.6669910550117493, 0.06957601010799408, -0.9615992307662964, 0.6020351052284241});
}

TEST(CausalConvWithState, KernelOfOneAndErrors) {
  OpTest t("CausalConvWithState", 27);
  t.input("x", floats({1, 1, 2}, {1, 2})).input("w", floats({1, 1, 1}, {3})).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 1, 2}, {3, 6});
  EXPECT_EQ(dims_to_string((*out)[1].dims()), "[1,1,0]");
  OpTest u("CausalConvWithState", 27);
  u.input("x", seq({1, 2, 3})).input("w", seq({3, 1, 2})).outputs(2);
  expect_error(u, "weight must be [channels 2, 1, k >= 1]");
  OpTest v("CausalConvWithState", 27);
  v.input("x", seq({1, 2, 3})).input("w", seq({2, 1, 3})).none().input("past", seq({1, 2, 3})).outputs(2);
  expect_error(v, "past_state must be");
  OpTest w("CausalConvWithState", 27);
  w.input("x", seq({1, 2, 3})).input("w", seq({2, 1, 3})).attr(ir::Attribute::make_string("activation", "gelu"));
  expect_error(w, "activation 'gelu'");
}

// ---- FlexAttention ----------------------------------------------------------------

TEST(FlexAttention, GroupedScaled) {
  OpTest t("FlexAttention", 1, "ai.onnx.preview");
  t.input("Q", seq({1, 2, 2, 2})).input("K", seq({1, 1, 3, 2}, 0.1, 1.0)).input("V", seq({1, 1, 3, 2}, 0.1, 2.0));
  t.attr(fattr("scale", 0.5f));
  expect_near(run1(t), {1, 2, 2, 2},
              {0.31525543332099915, -0.26867228746414185, 0.08817065507173538, -0.10306622087955475, 0.4323713481426239,
               -0.3870532810688019, -0.04381919279694557, 0.03340853005647659});
  OpTest u("FlexAttention", 1, "ai.onnx.preview");
  u.input("Q", seq({1, 2, 4})).input("K", seq({1, 2, 4})).input("V", seq({1, 2, 4}));
  expect_error(u, "must be 4-D");
  OpTest v("FlexAttention", 1, "ai.onnx.preview");
  v.input("Q", seq({1, 3, 2, 2})).input("K", seq({1, 2, 3, 2})).input("V", seq({1, 2, 3, 2}));
  expect_error(v, "multiple of K/V heads");
}

}  // namespace
}  // namespace kiln::test
