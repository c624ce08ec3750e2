// The kiln-domain ops of the "fused" family against the ONNX ops they replace.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/graph_builder.h"
#include "ops/op_test_util.h"

namespace kiln::test {
namespace {

ir::Node* kiln_node(GraphBuilder& b, const std::string& op, const std::vector<std::string>& in,
                    const std::vector<std::string>& out, std::vector<ir::Attribute> attrs) {
  std::vector<ir::Value*> inputs;
  for (const auto& n : in) inputs.push_back(n.empty() ? nullptr : b.graph().find_value(n));
  std::vector<ir::Value*> outputs;
  for (const auto& n : out) outputs.push_back(b.value(n));
  ir::Node* node = b.graph().add_node(op, inputs, outputs, op, "kiln");
  node->set_opset(1);
  for (auto& a : attrs) node->set_attr(std::move(a));
  return node;
}

TEST(FusedOps, FusedGemmAppliesBiasResidualAndActivation) {
  GraphBuilder b("g", nullptr, 17);
  b.input("a", {});
  b.constant("w", floats({2, 2}, {1, -1, 2, 0.5f}));
  b.constant("c", floats({2}, {0.5f, -3}));
  b.input("z", {});
  kiln_node(
      b, "FusedGemm", {"a", "w", "c", "z"}, {"y"},
      {ir::Attribute::make_string("activation", "Relu"), ir::Attribute::make_int("residual_after_activation", 1)});
  b.output("y");
  auto out = b.run({floats({1, 2}, {1, 2}), floats({1, 2}, {10, 20})});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  // a @ w = [5, 0]; + c = [5.5, -3]; relu = [5.5, 0]; + z = [15.5, 20].
  expect_near((*out)[0].tensor(), {1, 2}, {15.5, 20});
}

TEST(FusedOps, FusedMatMulBiasOverTheLastDim) {
  GraphBuilder b("g", nullptr, 17);
  b.input("a", {});
  b.constant("w", floats({2, 3}, {1, 0, 0, 0, 1, 0}));
  b.constant("bias", floats({3}, {1, 2, 3}));
  kiln_node(
      b, "FusedMatMul", {"a", "w", "bias"}, {"y"},
      {ir::Attribute::make_string("activation", "Clip"), ir::Attribute::make_floats("activation_params", {0, 2.5f})});
  b.output("y");
  auto out = b.run({floats({2, 2}, {1, 2, -5, 0})});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0].tensor(), {2, 3}, {2, 2.5, 2.5, 0, 2, 2.5});
}

TEST(FusedOps, BadResidualShapeIsAnError) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", {});
  b.constant("w", floats({1, 1, 1, 1}, {2}));
  b.input("z", {});
  kiln_node(b, "FusedConv", {"x", "w", "", "z"}, {"y"}, {});
  b.output("y");
  auto out = b.run({floats({1, 1, 2, 2}, {1, 2, 3, 4}), floats({1, 1, 1, 2}, {1, 2})});
  expect_error(out, "residual");
}

TEST(FusedOps, UnknownActivationIsAnError) {
  GraphBuilder b("g", nullptr, 17);
  b.input("a", {});
  b.constant("w", floats({1, 1}, {1}));
  kiln_node(b, "FusedMatMul", {"a", "w"}, {"y"}, {ir::Attribute::make_string("activation", "Swoosh")});
  b.output("y");
  expect_error(b.run({floats({1, 1}, {1})}), "Swoosh");
}

TEST(FusedOps, AttentionMatchesTheFormula) {
  GraphBuilder b("g", nullptr, 17);
  b.input("q", {});
  b.input("kt", {});
  b.input("v", {});
  b.input("mask", {});
  kiln_node(b, "Attention", {"q", "kt", "v", "mask"}, {"y"}, {ir::Attribute::make_float("scale", 0.5f)});
  b.output("y");
  // One query, two keys: scores = 0.5 * [2, 4] + [0, -1] = [1, 1] -> p = [0.5, 0.5].
  auto out = b.run(
      {floats({1, 1, 1}, {2}), floats({1, 1, 2}, {1, 2}), floats({1, 2, 1}, {10, 20}), floats({1, 1, 2}, {0, -1})});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0].tensor(), {1, 1, 1}, {15});
}

TEST(FusedOps, AttentionRejectsAMaskThatDoesNotBroadcast) {
  GraphBuilder b("g", nullptr, 17);
  for (const char* n : {"q", "kt", "v", "mask"}) b.input(n, {});
  kiln_node(b, "Attention", {"q", "kt", "v", "mask"}, {"y"}, {});
  b.output("y");
  auto out =
      b.run({floats({1, 1, 1}, {2}), floats({1, 1, 2}, {1, 2}), floats({1, 2, 1}, {10, 20}), floats({3}, {0, 0, 0})});
  expect_error(out, "mask");
}

TEST(FusedOps, GeluAndLayerNormForOlderOpsets) {
  GraphBuilder b("g", nullptr, 13);
  b.input("x", {});
  b.constant("g", floats({2}, {1, 1}));
  kiln_node(b, "Gelu", {"x"}, {"y"}, {});
  kiln_node(b, "LayerNormalization", {"x", "g"}, {"n"}, {ir::Attribute::make_int("axis", -1)});
  b.output("y");
  b.output("n");
  auto out = b.run({floats({1, 2}, {1, -1})});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  const double g1 = 0.5 * (1 + std::erf(1 / std::sqrt(2.0)));
  expect_near((*out)[0].tensor(), {1, 2}, {g1, -(1 - g1)}, 1e-5);
  expect_near((*out)[1].tensor(), {1, 2}, {1, -1}, 1e-3);
}

}  // namespace
}  // namespace kiln::test
