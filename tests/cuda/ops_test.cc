// Every op of the GPU engine against the reference interpreter, at every
// precision (tolerances in gpu_test_util.h). Skipped where there is no GPU.
#include <gtest/gtest.h>

#include <thread>

#include "backends/tactic.h"
#include "gpu_test_util.h"

namespace kiln::backends::cuda {
namespace {

using ir::Attribute;
using kiln::test::GraphBuilder;
using test::compare_outputs;
using test::expect_matches_reference;
using test::expect_matches_reference_all;
using test::f32;
using test::random_tensor;
using test::run_reference;
using test::tolerance;

Tensor int64s(std::vector<int64_t> v) {
  Tensor t = Tensor::empty(DataType::kInt64, {static_cast<int64_t>(v.size())});
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

struct ConvCase {
  Dims x, w;
  std::vector<int64_t> pads, strides, dilations;
  int64_t group;
  bool bias;
};

class GpuConv : public ::testing::TestWithParam<ConvCase> {};

TEST_P(GpuConv, MatchesReference) {
  const ConvCase& c = GetParam();
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32(c.x));
  b.constant("w", random_tensor(c.w, 11, -0.5f, 0.5f));
  std::vector<std::string> ins = {"x", "w"};
  if (c.bias) {
    b.constant("b", random_tensor({c.w[0]}, 12));
    ins.push_back("b");
  }
  b.node("Conv", ins, {"y"},
         {Attribute::make_ints("pads", c.pads), Attribute::make_ints("strides", c.strides),
          Attribute::make_ints("dilations", c.dilations), Attribute::make_int("group", c.group)});
  b.output("y");
  std::vector<Tensor> in = {random_tensor(c.x, 13)};
  expect_matches_reference_all(b.graph(), in);
  expect_matches_reference(b.graph(), in, Precision::kFp32, test::tolerance(Precision::kFp32), false);
  KILN_SKIP_REST_WITHOUT_GPU();
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GpuConv,
    ::testing::Values(ConvCase{{2, 8, 9, 9}, {16, 8, 3, 3}, {1, 1, 1, 1}, {1, 1}, {1, 1}, 1, true},
                      ConvCase{{1, 3, 17, 17}, {8, 3, 7, 7}, {3, 3, 3, 3}, {2, 2}, {1, 1}, 1, false},
                      ConvCase{{2, 16, 8, 8}, {16, 1, 3, 3}, {1, 1, 1, 1}, {2, 2}, {1, 1}, 16, true},
                      ConvCase{{1, 8, 12, 12}, {8, 4, 3, 3}, {2, 2, 2, 2}, {1, 1}, {2, 2}, 2, true},
                      ConvCase{{3, 32, 7, 7}, {64, 32, 1, 1}, {0, 0, 0, 0}, {1, 1}, {1, 1}, 1, true}));

TEST(GpuOps, ConvBatchNormAddRelu) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({2, 8, 10, 10}));
  b.constant("w", random_tensor({8, 8, 3, 3}, 1, -0.3f, 0.3f));
  b.constant("gamma", random_tensor({8}, 2, 0.5f, 1.5f));
  b.constant("beta", random_tensor({8}, 3));
  b.constant("mean", random_tensor({8}, 4));
  b.constant("var", random_tensor({8}, 5, 0.5f, 1.5f));
  b.node("Conv", {"x", "w"}, {"c"}, {Attribute::make_ints("pads", {1, 1, 1, 1})});
  b.node("BatchNormalization", {"c", "gamma", "beta", "mean", "var"}, {"bn"});
  b.node("Add", {"bn", "x"}, {"sum"});
  b.node("Relu", {"sum"}, {"y"});
  b.output("y");
  expect_matches_reference_all(b.graph(), {random_tensor({2, 8, 10, 10}, 6)});
  KILN_SKIP_REST_WITHOUT_GPU();
}

TEST(GpuOps, ConvClipAndStandaloneBatchNorm) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({1, 4, 6, 6}));
  b.constant("w", random_tensor({6, 4, 3, 3}, 1));
  b.constant("lo", Tensor::scalar<float>(DataType::kFloat32, 0.0f));
  b.constant("hi", Tensor::scalar<float>(DataType::kFloat32, 0.5f));
  b.constant("gamma", random_tensor({4}, 2, 0.5f, 1.5f));
  b.constant("beta", random_tensor({4}, 3));
  b.constant("mean", random_tensor({4}, 4));
  b.constant("var", random_tensor({4}, 5, 0.5f, 1.5f));
  b.node("BatchNormalization", {"x", "gamma", "beta", "mean", "var"}, {"bn"});
  b.node("Conv", {"bn", "w"}, {"c"}, {Attribute::make_ints("pads", {1, 1, 1, 1})});
  b.node("Clip", {"c", "lo", "hi"}, {"y"});
  b.output("y");
  expect_matches_reference_all(b.graph(), {random_tensor({1, 4, 6, 6}, 6)});
  KILN_SKIP_REST_WITHOUT_GPU();
}

TEST(GpuOps, MatMulShapes) {
  struct Case {
    Dims a, b;
    bool b_const;
  };
  for (const Case& c :
       {Case{{5, 16}, {16, 12}, true}, Case{{2, 3, 8, 16}, {2, 3, 16, 4}, false}, Case{{2, 3, 8, 16}, {16, 4}, false},
        Case{{3, 8, 16}, {1, 16, 8}, false}, Case{{16}, {16, 8}, true}, Case{{4, 16}, {16}, false},
        // Batches that broadcast: both operands are expanded to [2, 3] (a strided copy each).
        Case{{2, 1, 8, 16}, {3, 16, 4}, false}, Case{{16}, {2, 16, 4}, false}}) {
    SCOPED_TRACE(dims_to_string(c.a) + " x " + dims_to_string(c.b));
    GraphBuilder g("main", nullptr, 17);
    g.input("a", f32(c.a));
    std::vector<Tensor> in = {random_tensor(c.a, 21)};
    if (c.b_const) {
      g.constant("b", random_tensor(c.b, 22));
    } else {
      g.input("b", f32(c.b));
      in.push_back(random_tensor(c.b, 22));
    }
    g.node("MatMul", {"a", "b"}, {"y"});
    g.output("y");
    expect_matches_reference_all(g.graph(), in);
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

TEST(GpuOps, MatMulBiasRelu) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({2, 7, 16}));
  b.constant("w", random_tensor({16, 24}, 7));
  b.constant("bias", random_tensor({24}, 8));
  b.node("MatMul", {"x", "w"}, {"m"});
  b.node("Add", {"m", "bias"}, {"a"});
  b.node("Relu", {"a"}, {"y"});
  b.output("y");
  expect_matches_reference_all(b.graph(), {random_tensor({2, 7, 16}, 9)});
  KILN_SKIP_REST_WITHOUT_GPU();
}

// MatMul + bias + exact GELU (Erf form) + residual after the activation, and
// a scaled batched product (attention's QK^T / sqrt(d)) + residual before it.
TEST(GpuOps, MatMulGeluResidualAndScaledProduct) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({2, 5, 16}));
  b.input("k", f32({2, 16, 5}));
  b.constant("w", random_tensor({16, 16}, 101, -0.4f, 0.4f));
  b.constant("bias", random_tensor({16}, 102));
  b.constant("inv_sqrt2", Tensor::scalar<float>(DataType::kFloat32, 0.70710677f));
  b.constant("one", Tensor::scalar<float>(DataType::kFloat32, 1.0f));
  b.constant("half", Tensor::scalar<float>(DataType::kFloat32, 0.5f));
  b.constant("scale", Tensor::scalar<float>(DataType::kFloat32, 0.25f));
  b.input("r", f32({2, 5, 5}));
  b.node("MatMul", {"x", "w"}, {"m"});
  b.node("Add", {"m", "bias"}, {"h"});
  b.node("Mul", {"h", "inv_sqrt2"}, {"hs"});
  b.node("Erf", {"hs"}, {"e"});
  b.node("Add", {"e", "one"}, {"e1"});
  b.node("Mul", {"h", "half"}, {"hh"});
  b.node("Mul", {"hh", "e1"}, {"gelu"});
  b.node("Add", {"gelu", "x"}, {"y"});
  b.node("MatMul", {"x", "k"}, {"qk"});
  b.node("Mul", {"qk", "scale"}, {"qks"});
  b.node("Add", {"r", "qks"}, {"s"});
  b.output("y");
  b.output("s");
  expect_matches_reference_all(
      b.graph(), {random_tensor({2, 5, 16}, 103), random_tensor({2, 16, 5}, 104), random_tensor({2, 5, 5}, 105)});
  KILN_SKIP_REST_WITHOUT_GPU();
}

TEST(GpuOps, GemmVariants) {
  struct Case {
    bool ta, tb;
    Dims c;
    float alpha, beta;
  };
  for (const Case& c : {Case{false, true, {12}, 1.0f, 1.0f}, Case{true, false, {1, 12}, 0.5f, 2.0f},
                        Case{true, true, {6, 12}, 1.0f, 0.5f}, Case{false, false, {6, 1}, 1.0f, 1.0f},
                        Case{false, false, {}, 2.0f, 0.0f}}) {
    GraphBuilder g("main", nullptr, 13);
    Dims ad = c.ta ? Dims{10, 6} : Dims{6, 10};
    Dims bd = c.tb ? Dims{12, 10} : Dims{10, 12};
    g.input("a", f32(ad));
    g.constant("b", random_tensor(bd, 31));
    std::vector<std::string> ins = {"a", "b"};
    if (!c.c.empty()) {
      g.constant("c", random_tensor(c.c, 32));
      ins.push_back("c");
    }
    g.node("Gemm", ins, {"y"},
           {Attribute::make_int("transA", c.ta), Attribute::make_int("transB", c.tb),
            Attribute::make_float("alpha", c.alpha), Attribute::make_float("beta", c.beta)});
    g.output("y");
    expect_matches_reference_all(g.graph(), {random_tensor(ad, 33)});
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

TEST(GpuOps, UnaryOps) {
  for (const char* op : {"Relu", "Sigmoid", "Tanh", "Erf", "Sqrt", "Exp", "Abs", "Neg", "LeakyRelu", "HardSigmoid",
                         "HardSwish", "Floor", "Ceil"}) {
    SCOPED_TRACE(op);
    GraphBuilder g("main", nullptr, 17);
    g.input("x", f32({3, 5, 7}));
    g.node(op, {"x"}, {"y"});
    g.output("y");
    bool positive = std::string(op) == "Sqrt";
    // Floor/Ceil jump at integers: keep inputs away from them at low precision.
    expect_matches_reference(g.graph(), {random_tensor({3, 5, 7}, 41, positive ? 0.1f : -2.0f, 2.0f)}, Precision::kFp32,
                             test::tolerance(Precision::kFp32));
    if (std::string(op) != "Floor" && std::string(op) != "Ceil") {
      expect_matches_reference(g.graph(), {random_tensor({3, 5, 7}, 41, positive ? 0.1f : -2.0f, 2.0f)},
                               Precision::kFp16, test::tolerance(Precision::kFp16));
    }
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

TEST(GpuOps, BinaryOpsBroadcast) {
  struct Case {
    Dims a, b;
  };
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"}) {
    for (const Case& c : {Case{{2, 3, 4}, {2, 3, 4}}, Case{{2, 3, 4}, {4}}, Case{{2, 1, 4}, {3, 1}}, Case{{}, {2, 5}},
                          Case{{2, 1, 1, 6}, {2, 3, 5, 1}}}) {
      SCOPED_TRACE(std::string(op) + " " + dims_to_string(c.a) + " " + dims_to_string(c.b));
      GraphBuilder g("main", nullptr, 17);
      g.input("a", f32(c.a));
      g.input("b", f32(c.b));
      g.node(op, {"a", "b"}, {"y"});
      g.output("y");
      bool pos = std::string(op) == "Pow" || std::string(op) == "Div";
      std::vector<Tensor> in = {random_tensor(c.a, 51, pos ? 0.5f : -1.0f, 1.5f),
                                random_tensor(c.b, 52, pos ? 0.5f : -1.0f, 1.5f)};
      expect_matches_reference_all(g.graph(), in);
    }
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

TEST(GpuOps, Pooling) {
  struct Case {
    const char* op;
    std::vector<int64_t> k, s, p;
    int64_t ceil, include_pad;
  };
  for (const Case& c :
       {Case{"MaxPool", {3, 3}, {2, 2}, {1, 1, 1, 1}, 0, 0}, Case{"AveragePool", {3, 3}, {2, 2}, {1, 1, 1, 1}, 1, 1},
        Case{"AveragePool", {2, 3}, {1, 2}, {0, 1, 1, 0}, 0, 0}, Case{"MaxPool", {2, 2}, {2, 2}, {0, 0, 0, 0}, 1, 0}}) {
    SCOPED_TRACE(c.op);
    for (bool conv_first : {false, true}) {
      GraphBuilder g("main", nullptr, 17);
      g.input("x", f32({2, 4, 9, 9}));
      std::string src = "x";
      if (conv_first) {  // puts the pool's input in NHWC
        g.constant("w", random_tensor({4, 4, 1, 1}, 61));
        g.node("Conv", {"x", "w"}, {"c"});
        src = "c";
      }
      std::vector<Attribute> attrs = {Attribute::make_ints("kernel_shape", c.k), Attribute::make_ints("strides", c.s),
                                      Attribute::make_ints("pads", c.p), Attribute::make_int("ceil_mode", c.ceil)};
      if (std::string(c.op) == "AveragePool") attrs.push_back(Attribute::make_int("count_include_pad", c.include_pad));
      g.node(c.op, {src}, {"y"}, attrs);
      g.output("y");
      expect_matches_reference_all(g.graph(), {random_tensor({2, 4, 9, 9}, 62)});
    }
  }
  GraphBuilder g("main", nullptr, 17);
  g.input("x", f32({2, 5, 7, 3}));
  g.node("GlobalAveragePool", {"x"}, {"y"});
  g.output("y");
  expect_matches_reference_all(g.graph(), {random_tensor({2, 5, 7, 3}, 63)});
  KILN_SKIP_REST_WITHOUT_GPU();
}

TEST(GpuOps, SoftmaxAndLayerNorm) {
  for (int64_t cols : {7, 128, 1000}) {
    GraphBuilder g("main", nullptr, 17);
    g.input("x", f32({3, 2, cols}));
    g.constant("gamma", random_tensor({cols}, 71, 0.5f, 1.5f));
    g.constant("beta", random_tensor({cols}, 72));
    g.node("Softmax", {"x"}, {"s"}, {Attribute::make_int("axis", -1)});
    g.node("LayerNormalization", {"x", "gamma", "beta"}, {"l"},
           {Attribute::make_int("axis", -1), Attribute::make_float("epsilon", 1e-5f)});
    g.output("s");
    g.output("l");
    expect_matches_reference_all(g.graph(), {random_tensor({3, 2, cols}, 73, -3.0f, 3.0f)});
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

TEST(GpuOps, DataMovement) {
  GraphBuilder g("main", nullptr, 17);
  g.input("x", f32({2, 3, 4, 5}));
  g.input("ids", ir::ValueType::tensor(DataType::kInt64, Shape::of({2, 3})));
  g.constant("table", random_tensor({10, 6}, 81));
  g.constant("starts", int64s({0, 1}));
  g.constant("ends", int64s({3, 5}));
  g.constant("axes", int64s({1, 3}));
  g.constant("steps", int64s({2, 2}));
  g.constant("shape", int64s({2, 3, 20}));
  g.constant("ax0", int64s({0}));
  g.constant("expand", int64s({3, 2, 3, 4, 5}));
  g.constant("idx", int64s({2, 0}));
  g.node("Transpose", {"x"}, {"t"}, {Attribute::make_ints("perm", {0, 2, 3, 1})});
  g.node("Slice", {"x", "starts", "ends", "axes", "steps"}, {"sl"});
  g.node("Reshape", {"x", "shape"}, {"r"});
  g.node("Flatten", {"x"}, {"f"}, {Attribute::make_int("axis", 2)});
  g.node("Unsqueeze", {"r", "ax0"}, {"u"});
  g.node("Squeeze", {"u", "ax0"}, {"sq"});
  g.node("Concat", {"r", "sq"}, {"cat"}, {Attribute::make_int("axis", 1)});
  g.node("Gather", {"table", "ids"}, {"emb"}, {Attribute::make_int("axis", 0)});
  g.node("Gather", {"x", "idx"}, {"gx"}, {Attribute::make_int("axis", 2)});
  g.node("Expand", {"x", "expand"}, {"e"});
  g.node("Shape", {"x"}, {"shp"});
  g.node("Cast", {"ids"}, {"idf"}, {Attribute::make_int("to", static_cast<int64_t>(DataType::kFloat32))});
  for (const char* o : {"t", "sl", "r", "f", "cat", "emb", "gx", "e", "shp", "idf"}) g.output(o);
  Tensor ids = Tensor::empty(DataType::kInt64, {2, 3});
  int64_t vals[6] = {0, 9, 3, 3, 7, 1};
  std::copy(vals, vals + 6, ids.data<int64_t>());
  expect_matches_reference_all(g.graph(), {random_tensor({2, 3, 4, 5}, 82), ids});
  KILN_SKIP_REST_WITHOUT_GPU();
}

// Split (which the optimizer's horizontal fusion puts after merged Q/K/V
// projections): given sizes on the last axis, equal parts, and opset 18's
// num_outputs with a smaller last part.
TEST(GpuOps, Split) {
  for (int64_t opset : {13, 18}) {
    SCOPED_TRACE("opset " + std::to_string(opset));
    GraphBuilder g("main", nullptr, opset);
    g.input("x", f32({2, 6, 9}));
    g.constant("sizes", int64s({2, 3, 4}));
    g.node("Split", {"x", "sizes"}, {"a", "b", "c"}, {Attribute::make_int("axis", -1)});
    if (opset == 18) {
      g.node("Split", {"x"}, {"d", "e", "f", "h"},
             {Attribute::make_int("axis", 1), Attribute::make_int("num_outputs", 4)});
    } else {
      g.node("Split", {"x"}, {"d", "e", "f"}, {Attribute::make_int("axis", 1)});
    }
    for (const char* o : {"a", "b", "c", "d", "e", "f"}) g.output(o);
    if (opset == 18) g.output("h");
    expect_matches_reference_all(g.graph(), {random_tensor({2, 6, 9}, 91)});
  }
  // Split -> Reshape -> Transpose becomes one copy per output; a Reshape
  // that merges dims stays a copy and an alias.
  GraphBuilder g("main", nullptr, 13);
  g.input("x", f32({2, 5, 12}));
  g.constant("heads", int64s({2, 5, 2, 2}));
  g.constant("flat", int64s({2, 20}));
  g.node("Split", {"x"}, {"q", "k", "v"}, {Attribute::make_int("axis", -1)});
  g.node("Reshape", {"q", "heads"}, {"qr"});
  g.node("Reshape", {"k", "heads"}, {"kr"});
  g.node("Reshape", {"v", "flat"}, {"vr"});
  g.node("Transpose", {"qr"}, {"qt"}, {Attribute::make_ints("perm", {0, 2, 1, 3})});
  g.node("Transpose", {"kr"}, {"kt"}, {Attribute::make_ints("perm", {0, 2, 3, 1})});
  g.node("Transpose", {"vr"}, {"vt"});
  for (const char* o : {"qt", "kt", "vt"}) g.output(o);
  std::vector<Tensor> in = {random_tensor({2, 5, 12}, 92)};
  auto plan = build_plan(g.graph(), {{2, 5, 12}}, {DataType::kFloat32}, PlanOptions{});
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  int copies = 0;
  for (const Step& s : plan->steps) copies += s.kind == StepKind::kCopy ? 1 : 0;
  EXPECT_EQ(copies, 4) << plan->to_string();  // q and k folded; v: the split and the transpose
  expect_matches_reference_all(g.graph(), in);
  KILN_SKIP_REST_WITHOUT_GPU();
}

TEST(GpuOps, ReRunWithNewShapesReplans) {
  KILN_REQUIRE_GPU();
  GraphBuilder g("main", nullptr, 17);
  g.input("x", ir::ValueType::tensor(DataType::kFloat32, Shape(std::vector<Dim>{Dim::sym("n"), Dim(8)})));
  g.constant("w", random_tensor({8, 4}, 91));
  g.node("MatMul", {"x", "w"}, {"y"});
  g.output("y");
  auto engine = GpuEngine::create(g.graph(), GpuOptions{});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  for (int64_t n : {3, 5, 3}) {
    Tensor x = random_tensor({n, 8}, 92);
    auto out = (*engine)->run({x});
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ((*out)[0].dims(), (Dims{n, 4}));
  }
  auto bad = (*engine)->run({random_tensor({3, 7}, 93)});
  EXPECT_FALSE(bad.is_ok());
  EXPECT_EQ((*engine)->cached_plans(), 2u);  // n = 3 was planned once
}

// Execution contexts share the engine's plans and weights and run
// concurrently, each on its own stream; every result matches the reference.
TEST(GpuOps, ContextsRunConcurrently) {
  KILN_REQUIRE_GPU();
  GraphBuilder g("main", nullptr, 17);
  g.input("x", ir::ValueType::tensor(DataType::kFloat32, Shape(std::vector<Dim>{Dim::sym("n"), Dim(64)})));
  g.constant("w", random_tensor({64, 32}, 94));
  g.constant("b", random_tensor({32}, 95));
  g.node("MatMul", {"x", "w"}, {"mm"});
  g.node("Add", {"mm", "b"}, {"a"});
  g.node("Relu", {"a"}, {"y"});
  g.output("y");
  GpuOptions o;
  o.precision = Precision::kFp16;
  auto engine = GpuEngine::create(g.graph(), o);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  constexpr int kContexts = 3;
  std::vector<std::unique_ptr<GpuExecutionContext>> contexts;
  for (int c = 0; c < kContexts; ++c) {
    auto ctx = (*engine)->create_context();
    ASSERT_TRUE(ctx.is_ok()) << ctx.status().to_string();
    contexts.push_back(std::move(ctx).value());
  }
  std::vector<Tensor> xs;
  std::vector<std::vector<Tensor>> refs;
  for (int64_t n : {4, 16, 33}) {
    xs.push_back(random_tensor({n, 64}, static_cast<uint32_t>(96 + n)));
    refs.push_back(run_reference(g.graph(), {xs.back()}));
  }
  std::vector<std::string> failures(kContexts);
  std::vector<std::thread> threads;
  for (int c = 0; c < kContexts; ++c) {
    threads.emplace_back([&, c] {
      for (int iter = 0; iter < 20; ++iter) {
        size_t i = static_cast<size_t>(iter + c) % xs.size();
        auto out = contexts[static_cast<size_t>(c)]->run({xs[i]});
        if (!out.is_ok()) {
          failures[static_cast<size_t>(c)] = out.status().to_string();
          return;
        }
        std::string why = compare_outputs(*out, refs[i], tolerance(Precision::kFp16));
        if (!why.empty()) {
          failures[static_cast<size_t>(c)] = why;
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int c = 0; c < kContexts; ++c) EXPECT_EQ(failures[static_cast<size_t>(c)], "") << "context " << c;
  EXPECT_EQ((*engine)->cached_plans(), 3u);  // one plan per batch size, shared by the contexts
  // A context outlives its engine.
  engine->reset();
  auto out = contexts[0]->run({xs[0]});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(compare_outputs(*out, refs[0], tolerance(Precision::kFp16)), "");
}

}  // namespace
}  // namespace kiln::backends::cuda

namespace kiln::backends::cuda {
namespace {

// The builder's view: the cuBLASLt tactic prepared for a node and run
// through a KernelContext like any other kernel.
TEST(GpuTactics, CublasLtMatMulTacticMatchesReference) {
  KILN_REQUIRE_GPU();
  kiln::test::GraphBuilder b("main", nullptr, 17);
  b.input("a", test::f32({6, 32}));
  b.constant("w", test::random_tensor({32, 12}, 111));
  ir::Node* mm = b.node("MatMul", {"a", "w"}, {"y"});
  b.value("y", test::f32({6, 12}));
  b.output("y");
  Tensor a = test::random_tensor({6, 32}, 112);
  std::vector<Tensor> ref = test::run_reference(b.graph(), {a});
  ASSERT_EQ(ref.size(), 1u);
  for (const char* name : {"cuda.cublaslt_matmul.fp32", "cuda.cublaslt_matmul.tf32"}) {
    const Tactic* t = TacticRegistry::global().find(name);
    ASSERT_NE(t, nullptr) << name;
    ASSERT_TRUE(t->supports(*mm));
    auto kernel = t->prepare(*mm);
    ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
    std::vector<Datum> inputs = {Datum(a), Datum(mm->input(1)->constant())};
    std::vector<Datum> outputs(1);
    ops::KernelContext ctx(*mm, inputs, outputs, nullptr, nullptr);
    Status st = (*kernel)->run(ctx);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    test::expect_close(
        {outputs[0].tensor()}, ref,
        test::tolerance(std::string(name).find("tf32") != std::string::npos ? Precision::kTf32 : Precision::kFp32),
        name, "");
  }
}

}  // namespace
}  // namespace kiln::backends::cuda
