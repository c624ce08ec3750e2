#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace kiln::test {
namespace {

using passes::make_gelu_fusion;
using passes::make_vertical_fusion;

// x [1,3,5,5] -> Conv(w [4,3,3,3], pads 1) -> "c"
void conv(GraphBuilder& b, uint32_t seed = 10) {
  b.input("x", f32({Dim::sym("n"), 3, 5, 5}));
  b.constant("w", random_floats({4, 3, 3, 3}, seed));
  b.node("Conv", {"x", "w"}, {"c"}, {ir::Attribute::make_ints("pads", {1, 1, 1, 1})});
}

TEST(VerticalFusion, ConvBiasRelu) {
  GraphBuilder b("g", nullptr, 17);
  conv(b);
  b.constant("bias", random_floats({1, 4, 1, 1}, 11));
  b.node("Add", {"c", "bias"}, {"a"});
  b.node("Relu", {"a"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({2, 3, 5, 5}, 1)}, pass_list(make_vertical_fusion()));
  ASSERT_EQ(b.graph().num_nodes(), 1u);
  const ir::Node* f = find_op(b.graph(), "kiln.FusedConv");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->attr_string("activation"), "Relu");
  EXPECT_EQ(f->attr_strings("fused_from").size(), 3u);
  EXPECT_EQ(f->opset(), 1);
  EXPECT_EQ(b.graph().opset_imports().at("kiln"), 1);
}

TEST(VerticalFusion, ResidualBeforeAndAfterTheActivation) {
  for (bool after : {false, true}) {
    GraphBuilder b("g", nullptr, 17);
    conv(b);
    b.input("z", f32({Dim::sym("n"), 4, 5, 5}));
    b.constant("lo", floats({}, {0.0f}));
    b.constant("hi", floats({}, {0.5f}));
    if (after) {
      b.node("Clip", {"c", "lo", "hi"}, {"a"});
      b.node("Add", {"z", "a"}, {"y"});
    } else {
      b.node("Add", {"c", "z"}, {"a"});
      b.node("Clip", {"a", "lo", "hi"}, {"y"});
    }
    b.output("y");
    expect_preserved(b.graph(), {random_floats({2, 3, 5, 5}, 1), random_floats({2, 4, 5, 5}, 2)},
                     pass_list(make_vertical_fusion()));
    ASSERT_EQ(b.graph().num_nodes(), 1u);
    const ir::Node* f = find_op(b.graph(), "kiln.FusedConv");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->attr_int("residual_after_activation", -1), after ? 1 : 0);
    EXPECT_EQ(f->attr_string("activation"), "Clip");
  }
}

TEST(VerticalFusion, EachActivation) {
  struct Case {
    std::string op;
    std::vector<ir::Attribute> attrs;
    std::string name;
  };
  const std::vector<Case> cases = {
      {"Sigmoid", {}, "Sigmoid"},
      {"Tanh", {}, "Tanh"},
      {"HardSwish", {}, "HardSwish"},
      {"HardSigmoid", {ir::Attribute::make_float("alpha", 0.3f)}, "HardSigmoid"},
      {"LeakyRelu", {ir::Attribute::make_float("alpha", 0.2f)}, "LeakyRelu"},
  };
  for (const auto& c : cases) {
    GraphBuilder b("g", nullptr, 17);
    b.input("x", f32({3, 8}));
    b.constant("w", random_floats({8, 6}, 12));
    b.node("Gemm", {"x", "w"}, {"g"});
    b.node(c.op, {"g"}, {"y"}, c.attrs);
    b.output("y");
    expect_preserved(b.graph(), {random_floats({3, 8}, 3, -4.0f, 4.0f)}, pass_list(make_vertical_fusion()));
    const ir::Node* f = find_op(b.graph(), "kiln.FusedGemm");
    ASSERT_NE(f, nullptr) << c.op;
    EXPECT_EQ(f->attr_string("activation"), c.name);
  }
}

TEST(VerticalFusion, SiluWrittenAsMulSigmoid) {
  GraphBuilder b("g", nullptr, 17);
  conv(b);
  b.node("Sigmoid", {"c"}, {"s"});
  b.node("Mul", {"s", "c"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({1, 3, 5, 5}, 4)}, pass_list(make_vertical_fusion()));
  ASSERT_EQ(b.graph().num_nodes(), 1u);
  EXPECT_EQ(find_op(b.graph(), "kiln.FusedConv")->attr_string("activation"), "Silu");
}

TEST(VerticalFusion, MatMulBiasGeluFromPrimitivesAndResidual) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({Dim::sym("n"), 4, 8}));
  b.constant("w", random_floats({8, 8}, 13));
  b.constant("bias", random_floats({8}, 14));
  b.constant("inv_sqrt2", floats({}, {0.70710678f}));
  b.constant("one", floats({}, {1.0f}));
  b.constant("half", floats({}, {0.5f}));
  b.node("MatMul", {"x", "w"}, {"m"});
  b.node("Add", {"m", "bias"}, {"h"});
  b.node("Mul", {"h", "inv_sqrt2"}, {"u"});
  b.node("Erf", {"u"}, {"e"});
  b.node("Add", {"e", "one"}, {"e1"});
  b.node("Mul", {"h", "half"}, {"hh"});
  b.node("Mul", {"hh", "e1"}, {"g"});
  b.node("Add", {"g", "x"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({2, 4, 8}, 5)}, pass_list(make_gelu_fusion(), make_vertical_fusion()));
  ASSERT_EQ(b.graph().num_nodes(), 1u) << b.graph().to_string();
  const ir::Node* f = find_op(b.graph(), "kiln.FusedMatMul");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->attr_string("activation"), "Gelu");
  EXPECT_EQ(f->attr_int("residual_after_activation", 0), 1);
  EXPECT_EQ(f->num_inputs(), 4u);
}

TEST(VerticalFusion, KeepsIntermediatesThatAreGraphOutputs) {
  GraphBuilder b("g", nullptr, 17);
  conv(b);
  b.node("Relu", {"c"}, {"y"});
  b.output("c");
  b.output("y");
  expect_preserved(b.graph(), {random_floats({1, 3, 5, 5}, 6)}, pass_list(make_vertical_fusion()), false);
}

TEST(VerticalFusion, SkipsAddsThatBroadcastTheOutputUp) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({1, 8}));
  b.constant("w", random_floats({8, 4}, 15));
  b.constant("big", random_floats({3, 4}, 16));
  b.node("MatMul", {"x", "w"}, {"m"});
  b.node("Add", {"m", "big"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({1, 8}, 7)}, pass_list(make_vertical_fusion()), false);
}

TEST(VerticalFusion, FusesInsideIfBranches) {
  GraphBuilder top("g", nullptr, 17);
  top.input("c", ir::ValueType::tensor(DataType::kBool, Shape::of({})));
  top.input("x", f32({1, 3, 5, 5}));
  GraphBuilder then_b("then", &top.graph(), 17);
  then_b.capture("x", f32({1, 3, 5, 5}));
  then_b.constant("w", random_floats({2, 3, 1, 1}, 20));
  then_b.node("Conv", {"x", "w"}, {"cv"});
  then_b.node("Relu", {"cv"}, {"t"});
  then_b.output("t");
  GraphBuilder else_b("else", &top.graph(), 17);
  else_b.capture("x", f32({1, 3, 5, 5}));
  else_b.constant("w2", random_floats({2, 3, 1, 1}, 21));
  else_b.node("Conv", {"x", "w2"}, {"e"});
  else_b.output("e");
  top.node("If", {"c"}, {"y"},
           {ir::Attribute::make_graph("then_branch", then_b.share()),
            ir::Attribute::make_graph("else_branch", else_b.share())});
  top.output("y");
  expect_preserved(top.graph(), {Datum(bool_scalar(true)), random_floats({1, 3, 5, 5}, 8)},
                   pass_list(make_vertical_fusion()));
  EXPECT_EQ(count_ops(then_b.graph(), "kiln.FusedConv"), 1);
  EXPECT_EQ(top.graph().opset_imports().at("kiln"), 1);
}

}  // namespace
}  // namespace kiln::test
