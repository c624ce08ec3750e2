// kiln.FusedConv / kiln.FusedGemm / kiln.FusedMatMul (the fusion passes'
// output, contract in ops/epilogue.h) on the GPU engine against their
// reference kernels. Skipped where those ops are not registered.
#include <gtest/gtest.h>

#include "backends/tactic.h"
#include "gpu_test_util.h"
#include "ops/registry.h"

namespace kiln::backends::cuda {
namespace {

using ir::Attribute;
using test::expect_matches_reference_all;
using test::f32;
using test::random_tensor;

bool fused_op_registered(const char* op) { return ops::Registry::global().find("kiln", op, 1) != nullptr; }

// A graph with one fused node; `inputs` name values already in the graph ("" omits one).
ir::Node* add_fused(kiln::test::GraphBuilder& b, const char* op, const std::vector<std::string>& inputs,
                    const std::string& activation, std::vector<float> params, bool residual_after) {
  std::vector<ir::Value*> in;
  for (const auto& name : inputs) in.push_back(name.empty() ? nullptr : b.graph().find_value(name));
  ir::Value* y = b.value("y");
  ir::Node* n = b.graph().add_node(op, in, {y}, std::string(op) + "_0", "kiln");
  n->set_opset(1);
  n->set_attr(Attribute::make_string("activation", activation));
  if (!params.empty()) n->set_attr(Attribute::make_floats("activation_params", params));
  n->set_attr(Attribute::make_int("residual_after_activation", residual_after ? 1 : 0));
  Attribute from;
  from.name = "fused_from";
  from.kind = Attribute::Kind::kStrings;
  from.strings = {"a", "b"};
  n->set_attr(from);
  b.output("y");
  return n;
}

kiln::test::GraphBuilder fused_builder() {
  kiln::test::GraphBuilder b("main", nullptr, 17);
  auto opsets = b.graph().opset_imports();
  opsets["kiln"] = 1;
  b.graph().set_opset_imports(opsets);
  return b;
}

TEST(GpuFusedOps, FusedConv) {
  if (!fused_op_registered("FusedConv")) GTEST_SKIP() << "kiln.FusedConv is not registered in this build";
  for (bool after : {false, true}) {
    for (const char* act : {"Relu", "Clip", "Sigmoid", "LeakyRelu"}) {
      SCOPED_TRACE(std::string(act) + (after ? " residual after" : ""));
      kiln::test::GraphBuilder b = fused_builder();
      b.input("x", f32({2, 4, 7, 7}));
      b.input("z", f32({2, 6, 7, 7}));
      b.constant("w", random_tensor({6, 4, 3, 3}, 121, -0.4f, 0.4f));
      b.constant("bias", random_tensor({6}, 122));
      std::vector<float> params = std::string(act) == "Clip"        ? std::vector<float>{0.0f, 0.8f}
                                  : std::string(act) == "LeakyRelu" ? std::vector<float>{0.1f}
                                                                    : std::vector<float>{};
      ir::Node* n = add_fused(b, "FusedConv", {"x", "w", "bias", "z"}, act, params, after);
      n->set_attr(Attribute::make_ints("pads", {1, 1, 1, 1}));
      n->set_attr(Attribute::make_ints("kernel_shape", {3, 3}));
      expect_matches_reference_all(b.graph(), {random_tensor({2, 4, 7, 7}, 123), random_tensor({2, 6, 7, 7}, 124)});
    }
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

TEST(GpuFusedOps, FusedGemmAndMatMul) {
  if (!fused_op_registered("FusedGemm") || !fused_op_registered("FusedMatMul")) {
    GTEST_SKIP() << "kiln.FusedGemm / kiln.FusedMatMul are not registered in this build";
  }
  for (const char* act : {"", "Relu", "Gelu", "Tanh"}) {
    SCOPED_TRACE(act);
    {
      kiln::test::GraphBuilder b = fused_builder();
      b.input("a", f32({5, 8}));
      b.input("z", f32({5, 6}));
      b.constant("w", random_tensor({6, 8}, 131));
      b.constant("c", random_tensor({6}, 132));
      ir::Node* n = add_fused(b, "FusedGemm", {"a", "w", "c", "z"}, act, {}, false);
      n->set_attr(Attribute::make_int("transB", 1));
      expect_matches_reference_all(b.graph(), {random_tensor({5, 8}, 133), random_tensor({5, 6}, 134)});
    }
    {
      kiln::test::GraphBuilder b = fused_builder();
      b.input("a", f32({2, 3, 8}));
      b.input("z", f32({2, 3, 6}));
      b.constant("w", random_tensor({8, 6}, 141));
      b.constant("bias", random_tensor({6}, 142));
      add_fused(b, "FusedMatMul", {"a", "w", "bias", "z"}, act, {}, true);
      expect_matches_reference_all(b.graph(), {random_tensor({2, 3, 8}, 143), random_tensor({2, 3, 6}, 144)});
    }
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

// The builder's cuBLASLt tactic for kiln.FusedGemm (bias, residual, Relu)
// run through a KernelContext like any kernel; without a GPU it is
// registered and declines the node.
TEST(GpuTactics, FusedGemmTacticMatchesReference) {
  if (!fused_op_registered("FusedGemm")) GTEST_SKIP() << "kiln.FusedGemm is not registered in this build";
  kiln::test::GraphBuilder b = fused_builder();
  b.input("a", f32({7, 16}));
  b.input("z", f32({7, 5}));
  b.constant("w", random_tensor({5, 16}, 151));
  b.constant("c", random_tensor({5}, 152));
  ir::Node* n = add_fused(b, "FusedGemm", {"a", "w", "c", "z"}, "Relu", {}, false);
  n->set_attr(Attribute::make_int("transB", 1));
  b.graph().find_value("y")->set_type(f32({7, 5}));
  const Tactic* t = TacticRegistry::global().find("cuda.cublaslt_fused_gemm.fp32");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->supports(*n), device_count() > 0);
  if (device_count() == 0) GTEST_SKIP() << no_gpu_reason() << " (the tactic is registered and declines the node)";
  Tensor a = random_tensor({7, 16}, 153), z = random_tensor({7, 5}, 154);
  std::vector<Tensor> ref = test::run_reference(b.graph(), {a, z});
  auto kernel = t->prepare(*n);
  ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
  std::vector<Datum> inputs = {Datum(a), Datum(n->input(1)->constant()), Datum(n->input(2)->constant()), Datum(z)};
  std::vector<Datum> outputs(1);
  ops::KernelContext ctx(*n, inputs, outputs, nullptr, nullptr);
  Status st = (*kernel)->run(ctx);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  test::expect_close({outputs[0].tensor()}, ref, test::tolerance(Precision::kFp32), "cuda.cublaslt_fused_gemm.fp32",
                     "");
}

}  // namespace
}  // namespace kiln::backends::cuda
