// Int8 on the GPU: Q/DQ around MatMul/Gemm lowered to the int8 GEMM step
// (plan_ops_quant.cc), QuantizeLinear / DequantizeLinear kernels, and the
// float fallback. Every case runs the fp32 plan on the CPU emulator (the int8
// GEMM in int32, exactly) against the reference interpreter, which runs the
// Q/DQ ops as written; with a GPU the fp32 and fp16 engines are checked too.
#include <gtest/gtest.h>

#include <random>

#include "backends/tactic.h"
#include "gpu_test_util.h"
#include "ops/registry.h"
#include "ops/shape_inference.h"
#include "passes/pipeline.h"

namespace kiln::backends::cuda {
namespace {

using ir::Attribute;
using kiln::test::GraphBuilder;
using test::expect_matches_reference;
using test::f32;
using test::random_tensor;
using test::tolerance;

Tensor int8_tensor(Dims d, uint32_t seed, int lo = -127, int hi = 127) {
  Tensor t = Tensor::empty(DataType::kInt8, std::move(d));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  for (int8_t& v : t.span<int8_t>()) v = static_cast<int8_t>(dist(rng));
  return t;
}

Tensor zero_points(DataType t, int64_t n, int value) {
  Tensor z = Tensor::empty(t, n == 0 ? Dims{} : Dims{n});
  for (int64_t i = 0; i < std::max<int64_t>(n, 1); ++i) {
    if (t == DataType::kUInt8) {
      z.data<uint8_t>()[i] = static_cast<uint8_t>(value);
    } else {
      z.data<int8_t>()[i] = static_cast<int8_t>(value);
    }
  }
  return z;
}

// x -> QuantizeLinear -> DequantizeLinear -> MatMul/Gemm(DequantizeLinear(W_q))
//   -> [bias Add] -> [Relu | exact Gelu]
struct QdqCase {
  Dims x;
  int64_t n = 24;
  bool per_channel = false;
  DataType act_type = DataType::kInt8;
  int zero_point = 0;
  bool bias = false;
  std::string act;  // "", "Relu", "Gelu"
  bool gemm = false, trans_b = false;
};

GraphBuilder qdq_graph(const QdqCase& c) {
  GraphBuilder b("main", nullptr, 17);
  const int64_t k = c.x.back();
  b.input("x", f32(c.x));
  b.constant("sx", Tensor::scalar<float>(DataType::kFloat32, 0.02f));
  b.constant("zx", zero_points(c.act_type, 0, c.zero_point));
  b.constant("wq", int8_tensor(c.trans_b ? Dims{c.n, k} : Dims{k, c.n}, 11));
  b.constant("sw", c.per_channel ? random_tensor({c.n}, 12, 0.002f, 0.006f)
                                 : Tensor::scalar<float>(DataType::kFloat32, 0.004f));
  b.constant("zw", zero_points(DataType::kInt8, c.per_channel ? c.n : 0, 0));
  b.constant("bias", random_tensor({c.n}, 13));
  b.node("QuantizeLinear", {"x", "sx", "zx"}, {"xq"});
  b.node("DequantizeLinear", {"xq", "sx", "zx"}, {"xd"});
  b.node("DequantizeLinear", {"wq", "sw", "zw"}, {"wd"}, {Attribute::make_int("axis", c.trans_b ? 0 : 1)});
  std::string h = "m";
  if (c.gemm) {
    std::vector<std::string> ins = {"xd", "wd"};
    if (c.bias) ins.push_back("bias");
    b.node("Gemm", ins, {"m"}, {Attribute::make_int("transB", c.trans_b ? 1 : 0)});
  } else {
    b.node("MatMul", {"xd", "wd"}, {"m"});
    if (c.bias) {
      b.node("Add", {"m", "bias"}, {"h"});
      h = "h";
    }
  }
  if (c.act == "Relu") {
    b.node("Relu", {h}, {"y"});
  } else if (c.act == "Gelu") {
    b.constant("inv_sqrt2", Tensor::scalar<float>(DataType::kFloat32, 0.70710677f));
    b.constant("one", Tensor::scalar<float>(DataType::kFloat32, 1.0f));
    b.constant("half", Tensor::scalar<float>(DataType::kFloat32, 0.5f));
    b.node("Mul", {h, "inv_sqrt2"}, {"hs"});
    b.node("Erf", {"hs"}, {"e"});
    b.node("Add", {"e", "one"}, {"e1"});
    b.node("Mul", {h, "half"}, {"hh"});
    b.node("Mul", {"hh", "e1"}, {"y"});
  } else {
    b.node("Identity", {h}, {"y"});
  }
  b.output("y");
  return b;
}

Plan fp32_plan(const ir::Graph& g, const std::vector<Tensor>& in) {
  std::vector<Dims> dims;
  std::vector<DataType> types;
  for (const Tensor& t : in) {
    dims.push_back(t.dims());
    types.push_back(t.dtype());
  }
  auto plan = build_plan(g, dims, types, PlanOptions{});
  EXPECT_TRUE(plan.is_ok()) << plan.status().to_string();
  return plan.is_ok() ? std::move(plan).value() : Plan{};
}

int count(const Plan& p, StepKind k, bool int8 = false) {
  int n = 0;
  for (const Step& s : p.steps) n += s.kind == k && (k != StepKind::kGemm || s.gemm.int8 == int8) ? 1 : 0;
  return n;
}

// The emulated fp32 plan and, with a GPU, the fp32 and fp16 engines. At
// fp16 the activation is rounded to 16 bits before its QuantizeLinear, so a
// few q land one step away from the reference's: a wider atol.
void expect_int8_matches(const ir::Graph& g, const std::vector<Tensor>& in, bool fp16 = true) {
  expect_matches_reference(g, in, Precision::kFp32, tolerance(Precision::kFp32));
  if (fp16) {
    SCOPED_TRACE("fp16");
    expect_matches_reference(g, in, Precision::kFp16, test::Tolerance{0.05, 3e-2});
  }
}

TEST(GpuInt8, QdqMatMulBecomesOneInt8Gemm) {
  for (const QdqCase& c : {QdqCase{{2, 5, 16}, 24, false, DataType::kInt8, 0, true, "Relu"},
                           QdqCase{{6, 32}, 8, true, DataType::kInt8, 0, false, ""},
                           QdqCase{{2, 5, 16}, 24, true, DataType::kInt8, 0, true, "Gelu"},
                           QdqCase{{16}, 12, true, DataType::kInt8, 0, true, "Relu"}}) {
    SCOPED_TRACE(dims_to_string(c.x) + " per_channel=" + std::to_string(c.per_channel) + " " + c.act);
    GraphBuilder b = qdq_graph(c);
    std::vector<Tensor> in = {random_tensor(c.x, 14)};
    Plan plan = fp32_plan(b.graph(), in);
    EXPECT_EQ(count(plan, StepKind::kGemm, true), 1) << plan.to_string();
    EXPECT_EQ(count(plan, StepKind::kGemm, false), 0) << plan.to_string();
    EXPECT_EQ(count(plan, StepKind::kQuantize), 1) << plan.to_string();
    EXPECT_EQ(count(plan, StepKind::kDequantize), 0) << plan.to_string();
    EXPECT_EQ(count(plan, StepKind::kElementwise), 0) << "bias and activation fused\n" << plan.to_string();
    expect_int8_matches(b.graph(), in);
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

// MatMul + bias + [Relu] + QuantizeLinear: the epilogue requantizes (int8
// out, uint8 kept as int8 q-128), within one output step of the reference
// (which rounds the float result into the Q).
TEST(GpuInt8, OutputQuantizeFusesIntoTheEpilogue) {
  struct Case {
    DataType type;
    int zero_point;
    bool relu;
  };
  for (const Case& c :
       {Case{DataType::kUInt8, 0, true}, Case{DataType::kInt8, 3, false}, Case{DataType::kUInt8, 128, false}}) {
    SCOPED_TRACE(std::string(data_type_name(c.type)) + " zero point " + std::to_string(c.zero_point));
    GraphBuilder b("main", nullptr, 17);
    b.input("x", f32({2, 6, 32}));
    b.constant("sx", Tensor::scalar<float>(DataType::kFloat32, 0.01f));
    b.constant("zx", zero_points(DataType::kUInt8, 0, 128));
    b.constant("wq", int8_tensor({32, 16}, 50));
    b.constant("sw", random_tensor({16}, 51, 0.001f, 0.002f));
    b.constant("bias", random_tensor({16}, 52));
    b.constant("sy", Tensor::scalar<float>(DataType::kFloat32, 0.03f));
    b.constant("zy", zero_points(c.type, 0, c.zero_point));
    b.node("QuantizeLinear", {"x", "sx", "zx"}, {"xq"});
    b.node("DequantizeLinear", {"xq", "sx", "zx"}, {"xd"});
    b.node("DequantizeLinear", {"wq", "sw"}, {"wd"});
    b.node("MatMul", {"xd", "wd"}, {"m"});
    b.node("Add", {"m", "bias"}, {"h"});
    std::string pre = "h";
    if (c.relu) {
      b.node("Relu", {"h"}, {"r"});
      pre = "r";
    }
    b.node("QuantizeLinear", {pre, "sy", "zy"}, {"yq"});
    b.node("DequantizeLinear", {"yq", "sy", "zy"}, {"y"});
    b.output("y");
    std::vector<Tensor> in = {random_tensor({2, 6, 32}, 53)};
    Plan plan = fp32_plan(b.graph(), in);
    EXPECT_EQ(count(plan, StepKind::kGemm, true), 1) << plan.to_string();
    EXPECT_EQ(count(plan, StepKind::kQuantize), 1) << plan.to_string();
    EXPECT_EQ(count(plan, StepKind::kDequantize), 1) << plan.to_string();
    EXPECT_NE(plan.to_string().find("requantized"), std::string::npos) << plan.to_string();
    test::Tolerance step{0.03 * 1.01, 0.0};
    std::vector<Tensor> ref = test::run_reference(b.graph(), in);
    auto out = test::emulate_plan(plan, in);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    test::expect_close(*out, ref, step, "emulated fp32 plan", plan.to_string());
    if (device_count() == 0) continue;
    for (Precision p : {Precision::kFp32, Precision::kFp16}) {
      GpuOptions o;
      o.precision = p;
      auto engine = GpuEngine::create(b.graph(), o);
      ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
      auto got = (*engine)->run(in);
      ASSERT_TRUE(got.is_ok()) << got.status().to_string();
      // fp16: x rounds to 16 bits before its Q; the output is still within a step or two.
      test::Tolerance tol = p == Precision::kFp32 ? step : test::Tolerance{2 * step.atol, 0.0};
      test::expect_close(*got, ref, tol, std::string(precision_name(p)), (*engine)->plan_summary());
    }
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

// An empty batch: nothing to compute, no failure.
TEST(GpuInt8, EmptyBatch) {
  GraphBuilder b = qdq_graph(QdqCase{{0, 16}, 8, true, DataType::kUInt8, 128, true, "Relu"});
  std::vector<Tensor> in = {Tensor::empty(DataType::kFloat32, {0, 16})};
  Plan plan = fp32_plan(b.graph(), in);
  EXPECT_EQ(count(plan, StepKind::kGemm, true), 1) << plan.to_string();
  expect_int8_matches(b.graph(), in);
  KILN_SKIP_REST_WITHOUT_GPU();
}

// Parameters that do not fit the data are errors naming the problem, never crashes.
TEST(GpuInt8, BadParametersAreErrors) {
  {
    GraphBuilder b("main", nullptr, 17);
    b.input("x", f32({2, 3}));
    b.constant("s", random_tensor({5}, 40, 0.1f, 0.2f));
    b.constant("z", int8_tensor({5}, 41, 0, 0));
    b.node("QuantizeLinear", {"x", "s", "z"}, {"q"}, {Attribute::make_int("axis", 1)});
    b.output("q");
    auto plan = build_plan(b.graph(), {{2, 3}}, {DataType::kFloat32}, PlanOptions{});
    ASSERT_FALSE(plan.is_ok());
    EXPECT_NE(plan.status().message().find("does not fit"), std::string::npos) << plan.status().to_string();
  }
  {
    GraphBuilder b("main", nullptr, 21);
    b.input("x", f32({2, 3}));
    b.constant("s", Tensor::scalar<float>(DataType::kFloat32, 0.1f));
    b.constant("z", Tensor::scalar<int16_t>(DataType::kInt16, 0));
    b.node("QuantizeLinear", {"x", "s", "z"}, {"q"});
    b.output("q");
    auto plan = build_plan(b.graph(), {{2, 3}}, {DataType::kFloat32}, PlanOptions{});
    ASSERT_FALSE(plan.is_ok());
    EXPECT_NE(plan.status().message().find("int16"), std::string::npos) << plan.status().to_string();
  }
}

// uint8 activations (onnxruntime's and src/quant's default): stored as
// int8 q - 128; a zero point other than 128 becomes a bias term.
TEST(GpuInt8, Uint8ActivationsAndZeroPoints) {
  for (int zp : {128, 0, 3, 200}) {
    SCOPED_TRACE("uint8 zero point " + std::to_string(zp));
    GraphBuilder b = qdq_graph(QdqCase{{3, 4, 16}, 20, true, DataType::kUInt8, zp, true, "Relu"});
    std::vector<Tensor> in = {random_tensor({3, 4, 16}, 15)};
    Plan plan = fp32_plan(b.graph(), in);
    EXPECT_EQ(count(plan, StepKind::kGemm, true), 1) << plan.to_string();
    expect_int8_matches(b.graph(), in);
  }
  GraphBuilder b = qdq_graph(QdqCase{{4, 16}, 8, false, DataType::kInt8, -5, false, ""});
  std::vector<Tensor> in = {random_tensor({4, 16}, 16)};
  EXPECT_EQ(count(fp32_plan(b.graph(), in), StepKind::kGemm, true), 1);
  expect_int8_matches(b.graph(), in);
  KILN_SKIP_REST_WITHOUT_GPU();
}

TEST(GpuInt8, QdqGemmWithTransposedWeightsAndBias) {
  for (bool trans_b : {true, false}) {
    SCOPED_TRACE(trans_b ? "transB" : "no transB");
    QdqCase c{{6, 16}, 12, true, DataType::kUInt8, 128, true, "Relu", true, trans_b};
    GraphBuilder b = qdq_graph(c);
    std::vector<Tensor> in = {random_tensor(c.x, 17)};
    Plan plan = fp32_plan(b.graph(), in);
    EXPECT_EQ(count(plan, StepKind::kGemm, true), 1) << plan.to_string();
    expect_int8_matches(b.graph(), in);
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

// K = 6 and N = 10 are not multiples of 4: the activation is dequantized by a
// kernel and the float GEMM runs on the weights dequantized at plan time.
TEST(GpuInt8, UnalignedShapesFallBackToFloat) {
  for (const QdqCase& c : {QdqCase{{2, 3, 6}, 8, true, DataType::kUInt8, 128, true, "Relu"},
                           QdqCase{{5, 16}, 10, false, DataType::kInt8, 0, true, ""}}) {
    SCOPED_TRACE(dims_to_string(c.x) + " n=" + std::to_string(c.n));
    GraphBuilder b = qdq_graph(c);
    std::vector<Tensor> in = {random_tensor(c.x, 18)};
    Plan plan = fp32_plan(b.graph(), in);
    EXPECT_EQ(count(plan, StepKind::kGemm, true), 0) << plan.to_string();
    EXPECT_EQ(count(plan, StepKind::kGemm, false), 1) << plan.to_string();
    EXPECT_EQ(count(plan, StepKind::kDequantize), 1) << plan.to_string();
    EXPECT_NE(plan.to_string().find("not int8: K="), std::string::npos) << plan.to_string();
    expect_int8_matches(b.graph(), in);
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

// One activation read by an int8-capable GEMM and by one that must fall back
// (Gemm with transA): one dequantization serves the fallback.
TEST(GpuInt8, SharedActivationWithOneFallback) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({8, 8}));
  b.constant("sx", Tensor::scalar<float>(DataType::kFloat32, 0.02f));
  b.constant("zx", zero_points(DataType::kInt8, 0, 0));
  b.constant("wq", int8_tensor({8, 8}, 19));
  b.constant("sw", Tensor::scalar<float>(DataType::kFloat32, 0.005f));
  b.node("QuantizeLinear", {"x", "sx", "zx"}, {"xq"});
  b.node("DequantizeLinear", {"xq", "sx", "zx"}, {"xd"});
  b.node("DequantizeLinear", {"wq", "sw"}, {"wd"});
  b.node("MatMul", {"xd", "wd"}, {"y1"});
  b.node("Gemm", {"xd", "wd"}, {"y2"}, {Attribute::make_int("transA", 1)});
  b.output("y1");
  b.output("y2");
  std::vector<Tensor> in = {random_tensor({8, 8}, 20)};
  Plan plan = fp32_plan(b.graph(), in);
  EXPECT_EQ(count(plan, StepKind::kGemm, true), 1) << plan.to_string();
  EXPECT_EQ(count(plan, StepKind::kGemm, false), 1) << plan.to_string();
  EXPECT_EQ(count(plan, StepKind::kDequantize), 1) << plan.to_string();
  expect_int8_matches(b.graph(), in);
  KILN_SKIP_REST_WITHOUT_GPU();
}

// QuantizeLinear / DequantizeLinear on their own: a uint8 graph output, a
// DequantizeLinear feeding an element-wise op, per-axis scales, saturation
// and round half to even (x / scale landing on .5).
TEST(GpuInt8, StandaloneQuantizeAndDequantize) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({2, 3, 8}));
  b.constant("s", Tensor::scalar<float>(DataType::kFloat32, 0.0625f));
  b.constant("z", zero_points(DataType::kUInt8, 0, 10));
  b.constant("sa", random_tensor({3}, 21, 0.01f, 0.03f));
  b.constant("za", int8_tensor({3}, 22, -3, 3));
  b.node("QuantizeLinear", {"x", "s", "z"}, {"q"});
  b.node("DequantizeLinear", {"q", "s", "z"}, {"d"});
  b.node("Relu", {"d"}, {"r"});
  b.node("QuantizeLinear", {"x", "sa", "za"}, {"qa"}, {Attribute::make_int("axis", 1)});
  b.node("DequantizeLinear", {"qa", "sa", "za"}, {"da"}, {Attribute::make_int("axis", 1)});
  b.output("q");
  b.output("r");
  b.output("qa");
  b.output("da");
  Tensor x = random_tensor({2, 3, 8}, 23, -6.0f, 6.0f);  // saturates below 0 and at both ends of int8
  for (int64_t i = 0; i < 6; ++i) x.data<float>()[i] = 0.0625f * (static_cast<float>(i) + 0.5f);  // ties
  std::vector<Tensor> in = {x};
  Plan plan = fp32_plan(b.graph(), in);
  EXPECT_EQ(count(plan, StepKind::kQuantize), 2) << plan.to_string();
  EXPECT_EQ(count(plan, StepKind::kDequantize), 2) << plan.to_string();
  // fp32 only: the quantized outputs are compared exactly (fp16 inputs round first).
  expect_int8_matches(b.graph(), in, /*fp16=*/false);
  KILN_SKIP_REST_WITHOUT_GPU();
}

// A Q/DQ convolution has no int8 lowering: dequantize kernel, float conv on
// the weights dequantized at plan time.
TEST(GpuInt8, QdqConvRunsAsFloatConv) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({1, 4, 6, 6}));
  b.constant("sx", Tensor::scalar<float>(DataType::kFloat32, 0.02f));
  b.constant("zx", zero_points(DataType::kUInt8, 0, 128));
  b.constant("wq", int8_tensor({8, 4, 3, 3}, 30));
  b.constant("sw", random_tensor({8}, 31, 0.002f, 0.004f));
  b.node("QuantizeLinear", {"x", "sx", "zx"}, {"xq"});
  b.node("DequantizeLinear", {"xq", "sx", "zx"}, {"xd"});
  b.node("DequantizeLinear", {"wq", "sw"}, {"wd"}, {Attribute::make_int("axis", 0)});
  b.node("Conv", {"xd", "wd"}, {"c"}, {Attribute::make_ints("pads", {1, 1, 1, 1})});
  b.node("Relu", {"c"}, {"y"});
  b.output("y");
  std::vector<Tensor> in = {random_tensor({1, 4, 6, 6}, 32)};
  Plan plan = fp32_plan(b.graph(), in);
  EXPECT_EQ(count(plan, StepKind::kQuantize), 1) << plan.to_string();
  EXPECT_EQ(count(plan, StepKind::kDequantize), 1) << plan.to_string();
  EXPECT_EQ(count(plan, StepKind::kConv), 1) << plan.to_string();
  expect_int8_matches(b.graph(), in);
  KILN_SKIP_REST_WITHOUT_GPU();
}

// Two int8 layers as src/quant writes them (uint8, Q/DQ shared between
// layers): Gemm + bias + Relu, then a MatMul with N = 10 (not a multiple of 4).
GraphBuilder two_layers() {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({4, 32}));
  b.constant("s1", Tensor::scalar<float>(DataType::kFloat32, 0.01f));
  b.constant("z1", zero_points(DataType::kUInt8, 0, 128));
  b.constant("s2", Tensor::scalar<float>(DataType::kFloat32, 0.05f));
  b.constant("z2", zero_points(DataType::kUInt8, 0, 0));
  b.constant("w1", int8_tensor({32, 16}, 24));
  b.constant("w2", int8_tensor({16, 10}, 25));
  b.constant("sw1", random_tensor({16}, 26, 0.001f, 0.002f));
  b.constant("sw2", random_tensor({10}, 27, 0.001f, 0.002f));
  b.constant("b1", random_tensor({16}, 28));
  b.node("QuantizeLinear", {"x", "s1", "z1"}, {"q1"});
  b.node("DequantizeLinear", {"q1", "s1", "z1"}, {"d1"});
  b.node("DequantizeLinear", {"w1", "sw1"}, {"wd1"});
  b.node("Gemm", {"d1", "wd1", "b1"}, {"a1"});
  b.node("Relu", {"a1"}, {"r1"});
  b.node("QuantizeLinear", {"r1", "s2", "z2"}, {"q2"});
  b.node("DequantizeLinear", {"q2", "s2", "z2"}, {"d2"});
  b.node("DequantizeLinear", {"w2", "sw2"}, {"wd2"});
  b.constant("s3", Tensor::scalar<float>(DataType::kFloat32, 0.02f));
  b.constant("z3", zero_points(DataType::kInt8, 0, 0));
  b.node("MatMul", {"d2", "wd2"}, {"m2"});
  b.node("QuantizeLinear", {"m2", "s3", "z3"}, {"q3"});
  b.node("DequantizeLinear", {"q3", "s3", "z3"}, {"y"});
  b.output("y");
  return b;
}

// The Q/DQ form: int8 then float (N = 10), within one quantization step of
// the reference, since a layer's float output may round differently into
// the next Q.
TEST(GpuInt8, TwoQuantizedLayers) {
  GraphBuilder b = two_layers();
  std::vector<Tensor> in = {random_tensor({4, 32}, 29)};
  Plan plan = fp32_plan(b.graph(), in);
  EXPECT_EQ(count(plan, StepKind::kGemm, true), 1) << plan.to_string();
  EXPECT_EQ(count(plan, StepKind::kGemm, false), 1) << plan.to_string();
  // One step of q2 moves m2 by s2 * sw2 * 127 at most, which may move q3 by one more step.
  test::Tolerance step{0.05 * 0.002 * 127 * 1.01 + 0.02, 1e-4};
  std::vector<Tensor> ref = test::run_reference(b.graph(), in);
  auto out = test::emulate_plan(plan, in);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  test::expect_close(*out, ref, step, "emulated fp32 plan", plan.to_string());
  if (device_count() == 0) GTEST_SKIP() << no_gpu_reason() << " (fp32 plan checked on the CPU emulator)";
  for (Precision p : {Precision::kFp32, Precision::kFp16}) {
    GpuOptions o;
    o.precision = p;
    auto engine = GpuEngine::create(b.graph(), o);
    ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
    auto got = (*engine)->run(in);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    test::Tolerance tol = p == Precision::kFp32 ? step : test::Tolerance{3 * step.atol, 3e-2};
    test::expect_close(*got, ref, tol, std::string(precision_name(p)), (*engine)->plan_summary());
  }
}

// The same layers after the optimizer's qdq_lowering: kiln.QGemm steps that
// requantize to (u)int8, bit-exact with the reference kernels, uint8 between
// them kept as int8 q-128; the N = 10 layer runs the plain kernel.
TEST(GpuInt8, KilnQGemmIsExact) {
  GraphBuilder b = two_layers();
  ASSERT_TRUE(ops::infer_shapes(b.graph()).is_ok());
  passes::PipelineOptions po;
  po.stop_after = "qdq_lowering";
  auto report = passes::optimize(b.graph(), po);
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  int qgemms = 0;
  for (const auto& node : b.graph().nodes()) qgemms += node->op_type() == "QGemm" ? 1 : 0;
  ASSERT_EQ(qgemms, 2);
  std::vector<Tensor> in = {random_tensor({4, 32}, 29)};
  Plan plan = fp32_plan(b.graph(), in);
  EXPECT_EQ(count(plan, StepKind::kGemm, true), 2) << plan.to_string();
  EXPECT_EQ(count(plan, StepKind::kDequantize), 1) << plan.to_string();
  std::vector<Tensor> ref = test::run_reference(b.graph(), in);
  test::Tolerance exact{1e-7, 0.0};
  auto out = test::emulate_plan(plan, in);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  test::expect_close(*out, ref, exact, "emulated fp32 plan", plan.to_string());
  if (device_count() == 0) GTEST_SKIP() << no_gpu_reason() << " (fp32 plan checked on the CPU emulator)";
  for (Precision p : {Precision::kFp32, Precision::kFp16}) {
    GpuOptions o;
    o.precision = p;
    auto engine = GpuEngine::create(b.graph(), o);
    ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
    auto got = (*engine)->run(in);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    // fp16: the input is rounded to 16 bits before its QuantizeLinear.
    test::Tolerance tol = p == Precision::kFp32 ? exact : test::Tolerance{0.1, 3e-2};
    test::expect_close(*got, ref, tol, std::string(precision_name(p)), (*engine)->plan_summary());
  }
}

// The builder's int8 GPU tactic for kiln.QGemm: registered, unsupported
// without a GPU, and on a GPU bit-exact with the reference kernel.
TEST(GpuInt8, QGemmTactic) {
  const Tactic* t = TacticRegistry::global().find("cuda.cublaslt_qgemm.int8");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->source(), "cuda");
  GraphBuilder b = two_layers();
  ASSERT_TRUE(ops::infer_shapes(b.graph()).is_ok());
  passes::PipelineOptions po;
  po.stop_after = "qdq_lowering";
  ASSERT_TRUE(passes::optimize(b.graph(), po).is_ok());
  const ir::Node* qgemm = nullptr;
  for (const auto& node : b.graph().nodes()) {
    if (node->op_type() == "QGemm") qgemm = node.get();
  }
  ASSERT_NE(qgemm, nullptr);
  EXPECT_EQ(t->supports(*qgemm), device_count() > 0);
  {
    // The tactic's view on the emulator: the QGemm alone, its uint8 activation
    // a graph input (lowered through the q - 128 quantize step).
    GraphBuilder one("main", nullptr, 17);
    auto opsets = one.graph().opset_imports();
    opsets["kiln"] = 1;
    one.graph().set_opset_imports(opsets);
    one.input("a", ir::ValueType::tensor(qgemm->input(0)->type().dtype, Shape::of({4, 16})));
    std::vector<ir::Value*> ins = {one.graph().find_value("a")};
    for (size_t i = 1; i < qgemm->num_inputs(); ++i) {
      if (!qgemm->has_input(i)) {
        ins.push_back(nullptr);
        continue;
      }
      std::string name = "c" + std::to_string(i);
      one.constant(name, qgemm->input(i)->constant());
      ins.push_back(one.graph().find_value(name));
    }
    ir::Value* y = one.value("y");
    ir::Node* copy = one.graph().add_node("QGemm", ins, {y}, "qgemm", "kiln");
    copy->set_opset(1);
    for (const auto& [name, attr] : qgemm->attributes()) copy->set_attr(attr);
    one.output("y");
    ASSERT_TRUE(ops::infer_shapes(one.graph()).is_ok());
    Tensor a = Tensor::empty(qgemm->input(0)->type().dtype, {4, 16});
    std::mt19937 rng(34);
    for (int64_t i = 0; i < a.numel(); ++i) static_cast<uint8_t*>(a.raw_data())[i] = static_cast<uint8_t>(rng());
    std::vector<Tensor> ref = test::run_reference(one.graph(), {a});
    auto plan = build_plan(one.graph(), {a.dims()}, {a.dtype()}, PlanOptions{});
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    auto out = test::emulate_plan(*plan, {a});
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    test::expect_close(*out, ref, test::Tolerance{0.0, 0.0}, "emulated QGemm plan", plan->to_string());
  }
  KILN_REQUIRE_GPU();
  auto kernel = t->prepare(*qgemm);
  ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
  // A random uint8 activation (a graph input of the tactic's one-node graph) and the node's constants.
  Tensor a = Tensor::empty(qgemm->input(0)->type().dtype, {4, 16});
  std::mt19937 rng(33);
  for (int64_t i = 0; i < a.numel(); ++i) static_cast<uint8_t*>(a.raw_data())[i] = static_cast<uint8_t>(rng());
  std::vector<Datum> inputs = {Datum(a)};
  for (size_t i = 1; i < qgemm->num_inputs(); ++i) {
    inputs.push_back(qgemm->has_input(i) ? Datum(qgemm->input(i)->constant()) : Datum());
  }
  std::vector<Datum> got(1), ref(1);
  ops::KernelContext ctx(*qgemm, inputs, got, nullptr, nullptr);
  Status st = (*kernel)->run(ctx);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  const ops::OpDef* def = ops::Registry::global().find("kiln", "QGemm", 1);
  ASSERT_NE(def, nullptr);
  ops::KernelContext rctx(*qgemm, inputs, ref, nullptr, nullptr);
  ASSERT_TRUE(def->kernel(rctx).is_ok());
  test::expect_close({got[0].tensor()}, {ref[0].tensor()}, test::Tolerance{0.0, 0.0}, "QGemm tactic", "");
}

}  // namespace
}  // namespace kiln::backends::cuda
