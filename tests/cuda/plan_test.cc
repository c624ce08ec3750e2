// Host-side tests of the GPU plan: no GPU needed.
#include "backends/cuda/plan.h"

#include <gtest/gtest.h>

#include "backends/cuda/engine.h"
#include "backends/tactic.h"
#include "gpu_test_util.h"

namespace kiln::backends::cuda {
namespace {

using kiln::test::GraphBuilder;
using test::f32;
using test::random_tensor;

int count_steps(const Plan& p, StepKind k) {
  int n = 0;
  for (const Step& s : p.steps) n += s.kind == k ? 1 : 0;
  return n;
}

Tensor int64s(std::vector<int64_t> v) {
  Tensor t = Tensor::empty(DataType::kInt64, {static_cast<int64_t>(v.size())});
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

TEST(GpuArena, OverlappingLifetimesNeverShareBytes) {
  std::vector<BufferUse> b = {{1000, 0, 2}, {500, 1, 3}, {300, 3, 4}, {1000, 4, 5}, {10, 2, 2}};
  int64_t total = 0;
  std::vector<int64_t> off = plan_arena(b, 256, total);
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ(off[i] % 256, 0);
    EXPECT_LE(off[i] + b[i].bytes, total);
    for (size_t j = i + 1; j < b.size(); ++j) {
      bool overlap_time = b[i].first <= b[j].last && b[j].first <= b[i].last;
      bool overlap_mem = off[i] < off[j] + b[j].bytes && off[j] < off[i] + b[i].bytes;
      EXPECT_FALSE(overlap_time && overlap_mem) << i << " and " << j;
    }
  }
  // Buffer 3 starts after buffer 0 ends: memory is reused.
  EXPECT_LT(total, 1024 + 512 + 512 + 1024 + 256);
}

// Conv + BatchNormalization + Relu, then a residual Add + Relu with the input.
GraphBuilder conv_block() {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({2, 8, 10, 10}));
  b.constant("w", random_tensor({8, 8, 3, 3}, 1, -0.3f, 0.3f));
  b.constant("gamma", random_tensor({8}, 2, 0.5f, 1.5f));
  b.constant("beta", random_tensor({8}, 3));
  b.constant("mean", random_tensor({8}, 4));
  b.constant("var", random_tensor({8}, 5, 0.5f, 1.5f));
  b.node("Conv", {"x", "w"}, {"c"}, {ir::Attribute::make_ints("pads", {1, 1, 1, 1})});
  b.node("BatchNormalization", {"c", "gamma", "beta", "mean", "var"}, {"bn"});
  b.node("Add", {"bn", "x"}, {"sum"});
  b.node("Relu", {"sum"}, {"y"});
  b.output("y");
  return b;
}

TEST(GpuPlan, FusesConvBatchNormResidualAndRelu) {
  GraphBuilder b = conv_block();
  auto plan = build_plan(b.graph(), {{2, 8, 10, 10}}, {DataType::kFloat32}, PlanOptions{});
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_EQ(count_steps(*plan, StepKind::kConv), 1) << plan->to_string();
  EXPECT_EQ(count_steps(*plan, StepKind::kElementwise), 0) << plan->to_string();
  EXPECT_EQ(count_steps(*plan, StepKind::kEpilogue), 0) << plan->to_string();
  const Step* conv = nullptr;
  for (const Step& s : plan->steps) {
    if (s.kind == StepKind::kConv) conv = &s;
  }
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->epilogue.activation, ops::Activation::kRelu);
  EXPECT_GE(conv->inputs[3], 0) << "residual fused";
  EXPECT_EQ(plan->values[static_cast<size_t>(conv->outputs[0])].layout, Layout::kNhwc);
  // Input to NHWC before the conv, output back to NCHW before the download.
  EXPECT_EQ(count_steps(*plan, StepKind::kCopy), 2) << plan->to_string();
  EXPECT_EQ(plan->steps.back().kind, StepKind::kDownload);
  EXPECT_EQ(plan->steps.front().kind, StepKind::kUpload);
}

TEST(GpuPlan, HalfPrecisionConvertsInputsAndOutputs) {
  GraphBuilder b = conv_block();
  PlanOptions o;
  o.precision = Precision::kFp16;
  auto plan = build_plan(b.graph(), {{2, 8, 10, 10}}, {DataType::kFloat32}, o);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_EQ(plan->act_dtype, DataType::kFloat16);
  EXPECT_EQ(count_steps(*plan, StepKind::kCast), 2) << plan->to_string();
  EXPECT_EQ(plan->values[static_cast<size_t>(plan->output_values[0])].dtype, DataType::kFloat32);
}

TEST(GpuPlan, ChannelsFirstKeepsRowMajor) {
  GraphBuilder b = conv_block();
  PlanOptions o;
  o.channels_last = false;
  auto plan = build_plan(b.graph(), {{2, 8, 10, 10}}, {DataType::kFloat32}, o);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_EQ(count_steps(*plan, StepKind::kCopy), 0) << plan->to_string();
}

TEST(GpuPlan, ShapeArithmeticStaysOnTheHost) {
  // Reshape(x, Concat(Gather(Shape(x), 0), [-1])): a Flatten written with shape ops.
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({3, 4, 5}));
  b.constant("zero", Tensor::scalar<int64_t>(DataType::kInt64, 0));
  b.constant("minus1", int64s({-1}));
  b.constant("axes", int64s({0}));
  b.node("Shape", {"x"}, {"s"});
  b.node("Gather", {"s", "zero"}, {"n"});
  b.node("Unsqueeze", {"n", "axes"}, {"n1"});
  b.node("Concat", {"n1", "minus1"}, {"shape"}, {ir::Attribute::make_int("axis", 0)});
  b.node("Reshape", {"x", "shape"}, {"y"});
  b.output("y");
  auto plan = build_plan(b.graph(), {{3, 4, 5}}, {DataType::kFloat32}, PlanOptions{});
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  // Upload and download only: the reshape is an alias.
  EXPECT_EQ(plan->steps.size(), 2u) << plan->to_string();
  EXPECT_EQ(plan->values[static_cast<size_t>(plan->output_values[0])].dims, (Dims{3, 20}));
}

TEST(GpuPlan, MatMulBiasReluFuseIntoOneGemm) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({2, 7, 16}));
  b.constant("w", random_tensor({16, 24}, 7));
  b.constant("bias", random_tensor({24}, 8));
  b.node("MatMul", {"x", "w"}, {"m"});
  b.node("Add", {"m", "bias"}, {"a"});
  b.node("Relu", {"a"}, {"y"});
  b.output("y");
  auto plan = build_plan(b.graph(), {{2, 7, 16}}, {DataType::kFloat32}, PlanOptions{});
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  ASSERT_EQ(count_steps(*plan, StepKind::kGemm), 1) << plan->to_string();
  for (const Step& s : plan->steps) {
    if (s.kind != StepKind::kGemm) continue;
    EXPECT_EQ(s.gemm.m, 14);  // batch folded into M
    EXPECT_EQ(s.gemm.batch, 1);
    EXPECT_GE(s.inputs[3], 0);
    EXPECT_EQ(s.epilogue.activation, ops::Activation::kRelu);
  }
  EXPECT_EQ(plan->values[static_cast<size_t>(plan->output_values[0])].dims, (Dims{2, 7, 24}));
}

TEST(GpuPlan, GeluResidualAndScaleFuseIntoGemms) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({2, 5, 16}));
  b.constant("w", random_tensor({16, 16}, 101));
  b.constant("bias", random_tensor({16}, 102));
  b.constant("inv_sqrt2", Tensor::scalar<float>(DataType::kFloat32, 0.70710677f));
  b.constant("one", Tensor::scalar<float>(DataType::kFloat32, 1.0f));
  b.constant("half", Tensor::scalar<float>(DataType::kFloat32, 0.5f));
  b.node("MatMul", {"x", "w"}, {"m"});
  b.node("Add", {"m", "bias"}, {"h"});
  b.node("Mul", {"h", "inv_sqrt2"}, {"hs"});
  b.node("Erf", {"hs"}, {"e"});
  b.node("Add", {"e", "one"}, {"e1"});
  b.node("Mul", {"h", "half"}, {"hh"});
  b.node("Mul", {"hh", "e1"}, {"gelu"});
  b.node("Add", {"gelu", "x"}, {"y"});
  b.output("y");
  auto plan = build_plan(b.graph(), {{2, 5, 16}}, {DataType::kFloat32}, PlanOptions{});
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  ASSERT_EQ(plan->steps.size(), 3u) << plan->to_string();  // upload, gemm, download
  const Step& g = plan->steps[1];
  EXPECT_EQ(g.epilogue.activation, ops::Activation::kGelu);
  EXPECT_TRUE(g.epilogue.residual_after_activation);
  EXPECT_GE(g.inputs[4], 0);
}

TEST(GpuPlan, SmallInputChannelsPadToEight) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({2, 3, 9, 9}));
  b.constant("w", random_tensor({8, 3, 3, 3}, 151));
  b.constant("bias", random_tensor({8}, 152));
  b.node("Conv", {"x", "w", "bias"}, {"c"},
         {ir::Attribute::make_ints("pads", {1, 1, 1, 1}), ir::Attribute::make_ints("strides", {2, 2})});
  b.node("Relu", {"c"}, {"y"});
  b.output("y");
  PlanOptions o;
  o.pad_small_channels = true;
  std::vector<Tensor> in = {random_tensor({2, 3, 9, 9}, 153)};
  auto plan = build_plan(b.graph(), {{2, 3, 9, 9}}, {DataType::kFloat32}, o);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_EQ(count_steps(*plan, StepKind::kConcat), 1) << plan->to_string();
  auto out = test::emulate_plan(*plan, in);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  test::expect_close(*out, test::run_reference(b.graph(), in), test::tolerance(Precision::kFp32), "padded",
                     plan->to_string());
}

TEST(GpuPlan, UnsupportedNodeIsNamed) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({4}));
  b.node("NonZero", {"x"}, {"y"});
  b.output("y");
  Status st = check_graph_supported(b.graph());
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("NonZero_0"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("not supported on the GPU"), std::string::npos) << st.message();
  auto engine = GpuEngine::create(b.graph(), GpuOptions{});
  ASSERT_FALSE(engine.is_ok());
  EXPECT_EQ(engine.status().code(), StatusCode::kUnimplemented) << engine.status().to_string();
}

TEST(GpuPlan, BadShapesAreErrorsNotCrashes) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({2, 3}));
  b.constant("shape", int64s({4, -1, -1}));
  b.node("Reshape", {"x", "shape"}, {"y"});
  b.output("y");
  auto plan = build_plan(b.graph(), {{2, 3}}, {DataType::kFloat32}, PlanOptions{});
  ASSERT_FALSE(plan.is_ok());
  EXPECT_NE(plan.status().message().find("Reshape_0"), std::string::npos) << plan.status().to_string();
}

TEST(GpuEngine, CreateWithoutGpuSaysSo) {
  if (device_count() > 0) GTEST_SKIP() << "a GPU is present";
  GraphBuilder b = conv_block();
  auto engine = GpuEngine::create(b.graph(), GpuOptions{});
  ASSERT_FALSE(engine.is_ok());
  EXPECT_NE(engine.status().message().find("no GPU"), std::string::npos) << engine.status().to_string();
}

TEST(GpuTactics, RegisteredAndUnsupportedWithoutGpu) {
  const TacticRegistry& reg = TacticRegistry::global();
  const Tactic* t = reg.find("cuda.cublaslt_matmul.fp32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->source(), "cuda");
  GraphBuilder b("main", nullptr, 17);
  b.input("a", f32({4, 8}));
  b.constant("w", random_tensor({8, 3}, 9));
  ir::Node* mm = b.node("MatMul", {"a", "w"}, {"y"});
  b.value("y", f32({4, 3}));
  b.output("y");
  EXPECT_EQ(t->supports(*mm), device_count() > 0);
}

}  // namespace
}  // namespace kiln::backends::cuda
