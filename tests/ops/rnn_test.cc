// RNN, GRU and LSTM against values computed by onnxruntime (see
// tests/ops/gen/rnn_expected.py, which writes rnn_cases.inc).
#include "ops/graph_builder.h"
#include "ops/op_test_util.h"
#include "ops/registry.h"

namespace kiln::test {
namespace {

using ir::Attribute;

Attribute make_strings(std::string name, std::vector<std::string> v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Attribute::Kind::kStrings;
  a.strings = std::move(v);
  return a;
}

struct CaseTensor {
  bool present = false;
  Dims dims;
  std::vector<double> values;
};

struct RnnCase {
  const char* name;
  const char* op;
  int64_t opset;
  bool fp16;  // inputs are float16 values; compare float16 results loosely
  std::vector<Attribute> attrs;
  std::vector<CaseTensor> inputs;   // X, W, R, B, sequence_lens, initial_h[, initial_c, P]
  std::vector<CaseTensor> outputs;  // Y, Y_h[, Y_c]
};

const std::vector<RnnCase>& cases() {
  static const std::vector<RnnCase> kCases = {
#include "ops/rnn_cases.inc"
  };
  return kCases;
}

const char* const kInputNames[] = {"X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"};
const char* const kOutputNames[] = {"Y", "Y_h", "Y_c"};

// Runs the case's node in `dtype` with the outputs flagged in `wanted`
// (default: all); returns the graph outputs (the wanted ones, in order).
Result<std::vector<Datum>> run_case(const RnnCase& c, DataType dtype, std::vector<bool> wanted = {},
                                    std::vector<Attribute> extra_attrs = {}) {
  GraphBuilder top("main", nullptr, c.opset);
  std::vector<std::string> in;
  std::vector<Datum> feeds;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const CaseTensor& t = c.inputs[i];
    if (!t.present) {
      in.emplace_back();
      continue;
    }
    in.emplace_back(kInputNames[i]);
    top.input(kInputNames[i]);
    feeds.emplace_back(make_tensor(i == 4 ? DataType::kInt32 : dtype, t.dims, t.values));
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < c.outputs.size(); ++i) out.emplace_back(wanted.empty() || wanted[i] ? kOutputNames[i] : "");
  std::vector<Attribute> attrs = c.attrs;
  for (auto& a : extra_attrs) attrs.push_back(std::move(a));
  top.node(c.op, in, out, std::move(attrs));
  for (const auto& o : out) {
    if (!o.empty()) top.output(o);
  }
  return top.run(feeds);
}

class RnnCases : public ::testing::TestWithParam<size_t> {};

TEST_P(RnnCases, MatchesOnnxruntime) {
  const RnnCase& c = cases()[GetParam()];
  std::vector<std::pair<DataType, double>> runs;
  if (c.fp16) {
    runs = {{DataType::kFloat16, 2e-3}, {DataType::kFloat32, 2e-5}, {DataType::kBFloat16, 4e-2}};
  } else {
    runs = {{DataType::kFloat32, 2e-5}, {DataType::kFloat64, 2e-5}};
  }
  for (auto [dtype, tol] : runs) {
    SCOPED_TRACE(data_type_name(dtype));
    auto r = run_case(c, dtype);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_EQ(r->size(), c.outputs.size());
    for (size_t i = 0; i < c.outputs.size(); ++i) {
      SCOPED_TRACE(kOutputNames[i]);
      ASSERT_TRUE((*r)[i].is_tensor());
      EXPECT_EQ((*r)[i].tensor().dtype(), dtype);
      expect_near((*r)[i].tensor(), c.outputs[i].dims, c.outputs[i].values, tol, tol);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ort, RnnCases, ::testing::Range<size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) { return cases()[info.param].name; });

const RnnCase& find_case(const std::string& name) {
  for (const auto& c : cases()) {
    if (name == c.name) return c;
  }
  ADD_FAILURE() << "no case " << name;
  return cases().front();
}

TEST(Lstm, SetsOnlyTheRequestedOutputs) {
  const RnnCase& c = find_case("LstmForwardPeepholes");
  for (size_t only = 0; only < 3; ++only) {
    std::vector<bool> wanted(3, false);
    wanted[only] = true;
    auto r = run_case(c, DataType::kFloat32, wanted);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_EQ(r->size(), 1u);
    expect_near((*r)[0].tensor(), c.outputs[only].dims, c.outputs[only].values, 2e-5, 2e-5);
  }
  // No output at all is legal too.
  auto none = run_case(c, DataType::kFloat32, {false, false, false});
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
}

TEST(Rnn, ActivationNamesAreCaseInsensitive) {
  const RnnCase& c = find_case("RnnActivationRelu");
  RnnCase lower = c;
  for (auto& a : lower.attrs) {
    if (a.name == "activations") a.strings = {"relu"};
  }
  auto r = run_case(lower, DataType::kFloat32);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), c.outputs[0].dims, c.outputs[0].values, 2e-5, 2e-5);
}

TEST(Rnn, OneActivationListServesBothDirections) {
  // RnnBidirectionalAlphaOrder uses [Tanh, Affine]; giving [Tanh] for a
  // bidirectional node must equal [Tanh, Tanh]: compare the two runs.
  RnnCase once = find_case("RnnBidirectionalAlphaOrder");
  RnnCase twice = once;
  for (auto& a : once.attrs) {
    if (a.name == "activations") a.strings = {"Tanh"};
  }
  for (auto& a : twice.attrs) {
    if (a.name == "activations") a.strings = {"Tanh", "Tanh"};
  }
  auto r1 = run_case(once, DataType::kFloat32);
  auto r2 = run_case(twice, DataType::kFloat32);
  ASSERT_TRUE(r1.is_ok() && r2.is_ok());
  expect_near((*r1)[0].tensor(), (*r2)[0].tensor().dims(), values_of((*r2)[0].tensor()), 0, 0);
  // And the reverse half now differs from the Affine run.
  EXPECT_NE(values_of((*r1)[0].tensor()), once.outputs[0].values);
}

TEST(Rnn, ActivationDefaultsFollowTheOnnxOps) {
  // hidden 1, W = 1, R = 0, no bias: Y[t] = f(X[t]). ONNX: "default values are
  // the same as of corresponding ONNX operators" (onnxruntime uses 0 instead
  // for ThresholdedRelu, Affine and ScaledTanh). Expected values by hand.
  struct Want {
    const char* act;
    std::vector<double> y;
  };
  const std::vector<double> x = {-2, -0.5, 0.5, 0.95, 1.5};
  const std::vector<Want> wants = {
      {"ThresholdedRelu", {0, 0, 0, 0, 1.5}},  // alpha 1
      {"Affine", {-2, -0.5, 0.5, 0.95, 1.5}},  // alpha 1, beta 0
      {"ScaledTanh", {std::tanh(-2.0), std::tanh(-0.5), std::tanh(0.5), std::tanh(0.95), std::tanh(1.5)}},
      {"LeakyRelu", {-0.02, -0.005, 0.5, 0.95, 1.5}},                 // alpha 0.01
      {"HardSigmoid", {0.1, 0.4, 0.6, 0.69, 0.8}},                    // alpha 0.2, beta 0.5
      {"Elu", {std::expm1(-2.0), std::expm1(-0.5), 0.5, 0.95, 1.5}},  // alpha 1
  };
  for (const Want& w : wants) {
    SCOPED_TRACE(w.act);
    GraphBuilder top("main", nullptr, 14);
    top.input("X");
    top.input("W");
    top.input("R");
    top.node("RNN", {"X", "W", "R"}, {"Y"}, {make_strings("activations", {w.act})});
    top.output("Y");
    // batch 5, seq 1: each batch entry sees one x.
    auto r = top.run({make_tensor(DataType::kFloat64, {1, 5, 1}, x),
                      make_tensor(DataType::kFloat64, {1, 1, 1}, std::vector<double>{1}),
                      make_tensor(DataType::kFloat64, {1, 1, 1}, std::vector<double>{0})});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    expect_near((*r)[0].tensor(), {1, 1, 5, 1}, w.y, 1e-6, 1e-6);
  }
}

void expect_case_error(const RnnCase& c, std::vector<Attribute> attrs, const std::vector<std::string>& fragments) {
  auto r = run_case(c, DataType::kFloat32, {}, std::move(attrs));
  ASSERT_FALSE(r.is_ok());
  for (const auto& f : fragments) {
    EXPECT_NE(r.status().message().find(f), std::string::npos) << "missing '" << f << "' in " << r.status().message();
  }
}

TEST(Rnn, AttributeErrors) {
  const RnnCase& lstm = find_case("LstmForwardPeepholes");
  expect_case_error(lstm, {Attribute::make_string("direction", "sideways")}, {"LSTM_0", "direction", "sideways"});
  expect_case_error(lstm, {make_strings("activations", {"Sigmoid", "Tanh"})},
                    {"LSTM_0", "activations", "3 per direction"});
  expect_case_error(lstm, {make_strings("activations", {"Sigmoid", "Gelu", "Tanh"})}, {"LSTM_0", "'Gelu'"});
  expect_case_error(lstm, {Attribute::make_float("clip", 0.f)}, {"LSTM_0", "clip"});
  expect_case_error(lstm, {Attribute::make_int("hidden_size", 5)}, {"LSTM_0", "input W", "[1,20,2]"});
  expect_case_error(lstm, {Attribute::make_int("hidden_size", -1)}, {"LSTM_0", "hidden_size"});
  const RnnCase& gru = find_case("GruBidirectionalLinearBeforeResetClip");
  expect_case_error(gru, {Attribute::make_int("layout", 2)}, {"GRU_0", "layout"});
  // A bidirectional node with forward weights: W has 1 direction.
  const RnnCase& rnn = find_case("RnnForward");
  expect_case_error(rnn, {Attribute::make_string("direction", "bidirectional")}, {"RNN_0", "W", "[2,3,2]"});
}

TEST(Rnn, InputErrors) {
  RnnCase c = find_case("LstmForwardPeepholes");  // X [3,2,2], hidden 3
  RnnCase bad = c;
  bad.inputs[1].dims = {1, 12, 3};  // W's input size differs from X's
  bad.inputs[1].values.resize(36);
  expect_case_error(bad, {}, {"LSTM_0", "input W has shape [1,12,3], expected [1,12,2]"});
  bad = c;
  bad.inputs[7].dims = {1, 4};  // P must be [1, 9]
  bad.inputs[7].values.resize(4);
  expect_case_error(bad, {}, {"LSTM_0", "input P"});
  bad = c;
  bad.inputs[6].dims = {2, 1, 3};  // initial_c with the batch and direction axes swapped
  expect_case_error(bad, {}, {"LSTM_0", "initial_c"});
  bad = c;
  bad.inputs[0].dims = {12};
  expect_case_error(bad, {}, {"LSTM_0", "X", "rank 3"});
  bad = c;
  bad.inputs[4] = {true, {2}, {3, 4}};
  expect_case_error(bad, {}, {"LSTM_0", "sequence_lens[1] is 4"});
  bad.inputs[4] = {true, {3}, {1, 1, 1}};
  expect_case_error(bad, {}, {"LSTM_0", "sequence_lens"});

  // Integer X is rejected with a clear error.
  GraphBuilder top("main", nullptr, 14);
  top.input("X");
  top.input("W");
  top.input("R");
  top.node("RNN", {"X", "W", "R"}, {"Y"}, {Attribute::make_int("hidden_size", 1)});
  top.output("Y");
  auto r = top.run({int64s({1, 1, 1}, {1}), int64s({1, 1, 1}, {1}), int64s({1, 1, 1}, {1})});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("RNN_0"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("int64"), std::string::npos) << r.status().message();
  // W in another dtype than X.
  r = top.run({floats({1, 1, 1}, {1}), int64s({1, 1, 1}, {1}), floats({1, 1, 1}, {1})});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("input W is int64"), std::string::npos) << r.status().message();
}

TEST(Rnn, EmptyBatchAndSequence) {
  // batch 0: outputs with a zero dim; seq 0: Y empty, Y_h zero.
  GraphBuilder top("main", nullptr, 14);
  top.input("X");
  top.input("W");
  top.input("R");
  top.node("GRU", {"X", "W", "R"}, {"Y", "Y_h"});
  top.output("Y");
  top.output("Y_h");
  Tensor w = floats({1, 6, 1}, {1, 1, 1, 1, 1, 1});
  Tensor r = floats({1, 6, 2}, std::vector<float>(12, 0.5f));
  auto out = top.run({floats({3, 0, 1}, {}), w, r});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].tensor().debug_string(), "float[3,1,0,2]");
  EXPECT_EQ((*out)[1].tensor().debug_string(), "float[1,0,2]");
  out = top.run({floats({0, 2, 1}, {}), w, r});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].tensor().debug_string(), "float[0,1,2,2]");
  expect_near((*out)[1].tensor(), {1, 2, 2}, {0, 0, 0, 0});
}

TEST(Rnn, ShapeInference) {
  GraphBuilder top("main", nullptr, 14);
  top.input("X", tensor_type(DataType::kFloat16, {Dim::sym("batch"), 7, 4}));
  top.input("W");
  top.input("R", tensor_type(DataType::kFloat16, {2, 20, 5}));
  ir::Node* node = top.node("LSTM", {"X", "W", "R"}, {"Y", "Y_h", "Y_c"},
                            {Attribute::make_string("direction", "bidirectional"), Attribute::make_int("layout", 1)});
  ops::InferContext ctx(*node);
  ASSERT_TRUE(ops::Registry::global().find("", "LSTM", 14)->infer(ctx).is_ok());
  EXPECT_EQ(node->output(0)->type().to_string(), "float16[batch,7,2,5]");
  EXPECT_EQ(node->output(2)->type().to_string(), "float16[batch,2,5]");
  node->set_attr(Attribute::make_string("direction", "up"));
  EXPECT_FALSE(ops::Registry::global().find("", "LSTM", 14)->infer(ctx).is_ok());
}

}  // namespace
}  // namespace kiln::test
