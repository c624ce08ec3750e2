// kiln.Attention on the GPU (batched GEMMs with float scores, the generated
// masked-softmax kernel, or mask Add + Softmax + cast without generated
// kernels) against its reference kernel: on the plan emulator at fp32, and
// with a GPU at every precision. Also the optimizer's attention fusion
// lowered as a whole, and the generated softmax source compiled by NVRTC.
#include <gtest/gtest.h>

#include <cmath>

#include "backends/cuda/nvrtc_compile.h"
#include "backends/cuda/softmax_codegen.h"
#include "gpu_test_util.h"
#include "ops/shape_inference.h"
#include "passes/pipeline.h"

namespace kiln::backends::cuda {
namespace {

using ir::Attribute;
using kiln::test::GraphBuilder;
using test::expect_matches_reference_all;
using test::f32;
using test::random_tensor;

struct AttentionCase {
  int64_t batch, heads, sq, skv, d, dv;
  int mask;  // 0: none, 1: [B,1,1,Skv], 2: [B,1,Sq,Skv]
};

// A mask of 0 and -10000 (about a quarter masked, never a whole row).
Tensor mask_tensor(Dims dims, uint32_t seed) {
  Tensor t = random_tensor(dims, seed);
  const int64_t cols = dims.back();
  for (int64_t i = 0; i < t.numel(); ++i) {
    t.data<float>()[i] = (i % cols != 0 && t.data<float>()[i] > 0.5f) ? -10000.0f : 0.0f;
  }
  return t;
}

// The fp32 plan without generated kernels (Add, Softmax, cast) on the emulator.
void expect_node_by_node_plan_matches(const ir::Graph& g, const std::vector<Tensor>& in) {
  std::vector<Dims> dims;
  std::vector<DataType> types;
  for (const Tensor& t : in) {
    dims.push_back(t.dims());
    types.push_back(t.dtype());
  }
  PlanOptions o;
  o.generated_kernels = false;
  auto plan = build_plan(g, dims, types, o);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  for (const Step& s : plan->steps) EXPECT_NE(s.kind, StepKind::kMaskedSoftmax);
  auto out = test::emulate_plan(*plan, in);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  test::expect_close(*out, test::run_reference(g, in), test::tolerance(Precision::kFp32), "without generated kernels",
                     plan->to_string());
}

class GpuAttention : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(GpuAttention, MatchesReference) {
  const AttentionCase& c = GetParam();
  GraphBuilder b("main", nullptr, 17);
  auto opsets = b.graph().opset_imports();
  opsets["kiln"] = 1;
  b.graph().set_opset_imports(opsets);
  Dims qd = {c.batch, c.heads, c.sq, c.d}, kd = {c.batch, c.heads, c.d, c.skv}, vd = {c.batch, c.heads, c.skv, c.dv};
  b.input("q", f32(qd));
  b.input("kt", f32(kd));
  b.input("v", f32(vd));
  std::vector<ir::Value*> ins = {b.graph().find_value("q"), b.graph().find_value("kt"), b.graph().find_value("v")};
  std::vector<Tensor> in = {random_tensor(qd, 401), random_tensor(kd, 402), random_tensor(vd, 403)};
  if (c.mask != 0) {
    Dims md = c.mask == 1 ? Dims{c.batch, 1, 1, c.skv} : Dims{c.batch, 1, c.sq, c.skv};
    ins.push_back(b.input("mask", f32(md)));
    in.push_back(mask_tensor(md, 404));
  }
  ir::Node* n = b.graph().add_node("Attention", ins, {b.value("y")}, "attn", "kiln");
  n->set_opset(1);
  n->set_attr(Attribute::make_float("scale", 1.0f / std::sqrt(static_cast<float>(c.d))));
  b.output("y");
  expect_matches_reference_all(b.graph(), in);
  expect_node_by_node_plan_matches(b.graph(), in);
  KILN_SKIP_REST_WITHOUT_GPU();
}

INSTANTIATE_TEST_SUITE_P(Shapes, GpuAttention,
                         ::testing::Values(AttentionCase{1, 1, 4, 4, 8, 8, 0}, AttentionCase{2, 3, 5, 7, 8, 6, 1},
                                           AttentionCase{2, 4, 16, 16, 16, 16, 1}, AttentionCase{2, 2, 6, 9, 4, 4, 2},
                                           AttentionCase{1, 12, 32, 32, 64, 64, 2},
                                           AttentionCase{3, 2, 1, 5, 8, 8, 0}));

// MatMul / Div / Add(mask) / Softmax / MatMul, fused by the optimizer and lowered.
TEST(GpuAttentionFusion, OptimizedGraphMatchesReference) {
  GraphBuilder b("main", nullptr, 17);
  b.input("q", f32({2, 2, 6, 8}));
  b.input("k", f32({2, 2, 6, 8}));
  b.input("v", f32({2, 2, 6, 8}));
  b.input("mask", f32({2, 1, 1, 6}));
  b.constant("root", Tensor::scalar<float>(DataType::kFloat32, std::sqrt(8.0f)));
  b.node("Transpose", {"k"}, {"kt"}, {Attribute::make_ints("perm", {0, 1, 3, 2})});
  b.node("MatMul", {"q", "kt"}, {"s"});
  b.node("Div", {"s", "root"}, {"ss"});
  b.node("Add", {"ss", "mask"}, {"sm"});
  b.node("Softmax", {"sm"}, {"p"}, {Attribute::make_int("axis", -1)});
  b.node("MatMul", {"p", "v"}, {"y"});
  b.output("y");
  ASSERT_TRUE(ops::infer_shapes(b.graph()).is_ok());
  auto report = passes::optimize(b.graph());
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  bool fused = false;
  for (const auto& n : b.graph().nodes()) fused = fused || n->op_type() == "Attention";
  ASSERT_TRUE(fused) << "the optimizer no longer fuses this attention";
  std::vector<Tensor> in = {random_tensor({2, 2, 6, 8}, 411), random_tensor({2, 2, 6, 8}, 412),
                            random_tensor({2, 2, 6, 8}, 413), mask_tensor({2, 1, 1, 6}, 414)};
  expect_matches_reference_all(b.graph(), in);
  KILN_SKIP_REST_WITHOUT_GPU();
}

// Host-only: at fp16 and bf16 the scores, the mask Add and the Softmax are
// float; the probabilities are cast to the activation type for P x V (by the
// generated kernel, or a cast step), and a mask shared by two attentions is
// cast once.
TEST(GpuAttentionPlan, ScoresAreFloatAtHalfPrecision) {
  GraphBuilder b("main", nullptr, 17);
  auto opsets = b.graph().opset_imports();
  opsets["kiln"] = 1;
  b.graph().set_opset_imports(opsets);
  b.input("q", f32({2, 2, 6, 8}));
  b.input("kt", f32({2, 2, 8, 6}));
  b.input("v", f32({2, 2, 6, 8}));
  b.input("mask", f32({2, 1, 1, 6}));
  for (const char* y : {"y0", "y1"}) {
    ir::Node* n = b.graph().add_node("Attention",
                                     {b.graph().find_value("q"), b.graph().find_value("kt"), b.graph().find_value("v"),
                                      b.graph().find_value("mask")},
                                     {b.value(y)}, std::string(y) + "_attn", "kiln");
    n->set_opset(1);
    n->set_attr(Attribute::make_float("scale", 0.35f));
    b.output(y);
  }
  for (Precision p : {Precision::kFp16, Precision::kBf16}) {
    SCOPED_TRACE(std::string(precision_name(p)));
    PlanOptions o;
    o.precision = p;
    o.generated_kernels = false;
    std::vector<Dims> dims = {{2, 2, 6, 8}, {2, 2, 8, 6}, {2, 2, 6, 8}, {2, 1, 1, 6}};
    auto plan = build_plan(b.graph(), dims, std::vector<DataType>(4, DataType::kFloat32), o);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    DataType act = p == Precision::kFp16 ? DataType::kFloat16 : DataType::kBFloat16;
    int gemms = 0, softmaxes = 0, mask_casts = 0;
    for (const Step& s : plan->steps) {
      const PlanValue& out = plan->values[static_cast<size_t>(s.outputs.empty() ? s.inputs[0] : s.outputs[0])];
      if (s.kind == StepKind::kGemm) {
        // The QK product gives float scores; P x V reads the probabilities in the activation type.
        EXPECT_EQ(out.dtype, gemms % 2 == 0 ? DataType::kFloat32 : act) << plan->to_string();
        if (gemms % 2 == 1) {
          EXPECT_EQ(plan->values[static_cast<size_t>(s.inputs[0])].dtype, act);
        }
        ++gemms;
      } else if (s.kind == StepKind::kSoftmax || s.kind == StepKind::kElementwise) {
        EXPECT_EQ(out.dtype, DataType::kFloat32) << plan->to_string();
        softmaxes += s.kind == StepKind::kSoftmax ? 1 : 0;
      } else if (s.kind == StepKind::kCast && s.label.rfind("mask of", 0) == 0) {
        ++mask_casts;
      }
    }
    EXPECT_EQ(gemms, 4);
    EXPECT_EQ(softmaxes, 2);
    EXPECT_EQ(mask_casts, 1) << plan->to_string();
    // With generated kernels: one masked softmax per attention, float in, activation type out.
    o.generated_kernels = true;
    plan = build_plan(b.graph(), dims, std::vector<DataType>(4, DataType::kFloat32), o);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    int fused = 0;
    for (const Step& s : plan->steps) {
      EXPECT_NE(s.kind, StepKind::kSoftmax);
      if (s.kind != StepKind::kMaskedSoftmax) continue;
      ++fused;
      EXPECT_EQ(plan->values[static_cast<size_t>(s.inputs[0])].dtype, DataType::kFloat32);
      EXPECT_EQ(plan->values[static_cast<size_t>(s.inputs[1])].dtype, DataType::kFloat32);
      EXPECT_EQ(plan->values[static_cast<size_t>(s.outputs[0])].dtype, act);
    }
    EXPECT_EQ(fused, 2) << plan->to_string();
  }
}

// On a GPU the engine runs the generated masked softmax (not the fallback).
TEST(GpuAttentionPlan, EngineUsesTheGeneratedSoftmax) {
  KILN_REQUIRE_GPU();
  GraphBuilder b("main", nullptr, 17);
  auto opsets = b.graph().opset_imports();
  opsets["kiln"] = 1;
  b.graph().set_opset_imports(opsets);
  std::vector<ir::Value*> ins = {b.input("q", f32({2, 3, 40, 16})), b.input("kt", f32({2, 3, 16, 40})),
                                 b.input("v", f32({2, 3, 40, 16})), b.input("mask", f32({2, 1, 40, 40}))};
  ir::Node* n = b.graph().add_node("Attention", ins, {b.value("y")}, "attn", "kiln");
  n->set_opset(1);
  n->set_attr(Attribute::make_float("scale", 0.25f));
  b.output("y");
  std::vector<Tensor> in = {random_tensor({2, 3, 40, 16}, 421), random_tensor({2, 3, 16, 40}, 422),
                            random_tensor({2, 3, 40, 16}, 423), mask_tensor({2, 1, 40, 40}, 424)};
  std::vector<Tensor> ref = test::run_reference(b.graph(), in);
  for (Precision p : {Precision::kFp32, Precision::kFp16, Precision::kBf16}) {
    GpuOptions o;
    o.precision = p;
    auto engine = GpuEngine::create(b.graph(), o);
    ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
    auto out = (*engine)->run(in);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_NE((*engine)->plan_summary().find("masked_softmax "), std::string::npos) << (*engine)->plan_summary();
    test::expect_close(*out, ref, test::tolerance(p), std::string(precision_name(p)), (*engine)->plan_summary());
  }
}

// The generated masked-softmax kernels compile for sm_80 and sm_90 (no GPU needed).
TEST(GpuAttentionPlan, MaskedSoftmaxSourceCompilesWithNvrtc) {
  for (bool mask : {false, true}) {
    for (DataType t : {DataType::kFloat32, DataType::kFloat16, DataType::kBFloat16}) {
      std::string src = masked_softmax_source(mask, 3, t);
      for (int arch : {80, 90}) {
        auto cubin = nvrtc_compile(src, arch);
        EXPECT_TRUE(cubin.is_ok()) << data_type_name(t) << " sm_" << arch << ": " << cubin.status().to_string() << "\n"
                                   << src;
      }
    }
  }
}

}  // namespace
}  // namespace kiln::backends::cuda
