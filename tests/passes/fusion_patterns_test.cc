// Horizontal, LayerNorm, GELU, attention and pointwise fusion.
#include <gtest/gtest.h>

#include <cmath>

#include "passes/pass_test_util.h"

namespace kiln::test {
namespace {

using namespace passes;  // NOLINT(google-build-using-namespace)

TEST(HorizontalFusion, MergesSibling1x1Convs) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({Dim::sym("n"), 4, 3, 3}));
  const char* names[] = {"a", "b", "c"};
  for (int i = 0; i < 3; ++i) {
    const std::string n = names[i];
    b.constant("w" + n, random_floats({static_cast<int64_t>(2 + i), 4, 1, 1}, 10 + static_cast<uint32_t>(i)));
    b.constant("b" + n, random_floats({static_cast<int64_t>(2 + i)}, 20 + static_cast<uint32_t>(i)));
    b.node("Conv", {"x", "w" + n, i == 1 ? "" : "b" + n}, {"y" + n});
    b.output("y" + n);
  }
  // A 3x3 sibling is not merged.
  b.constant("w3", random_floats({2, 4, 3, 3}, 30));
  b.node("Conv", {"x", "w3"}, {"y3"});
  b.output("y3");
  expect_preserved(b.graph(), {random_floats({2, 4, 3, 3}, 1)}, pass_list(make_horizontal_fusion()));
  EXPECT_EQ(count_ops(b.graph(), "Conv"), 2);
  EXPECT_EQ(count_ops(b.graph(), "Split"), 1);
}

TEST(HorizontalFusion, MergesQkvProjectionsAfterVerticalFusion) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({Dim::sym("n"), 5, 8}));
  for (const std::string n : {"q", "k", "v"}) {
    b.constant("w" + n, random_floats({8, 8}, static_cast<uint32_t>(n[0])));
    b.constant("b" + n, random_floats({8}, static_cast<uint32_t>(n[0]) + 1));
    b.node("MatMul", {"x", "w" + n}, {"m" + n});
    b.node("Add", {"m" + n, "b" + n}, {n});
    b.output(n);
  }
  expect_preserved(b.graph(), {random_floats({2, 5, 8}, 2)},
                   pass_list(make_vertical_fusion(), make_horizontal_fusion()));
  EXPECT_EQ(count_ops(b.graph(), "kiln.FusedMatMul"), 1);
  EXPECT_EQ(count_ops(b.graph(), "Split"), 1);
}

// LayerNorm written with primitives, as older exporters emit it.
void primitive_layernorm(GraphBuilder& b, bool pow) {
  b.input("x", f32({Dim::sym("n"), 3, 8}));
  b.constant("axes", int64s({1}, {-1}));
  b.constant("two", floats({}, {2.0f}));
  b.constant("eps", floats({}, {1e-5f}));
  b.constant("gamma", random_floats({8}, 3, 0.5f, 1.5f));
  b.constant("beta", random_floats({8}, 4));
  const auto axes = ir::Attribute::make_ints("axes", {-1});
  b.node("ReduceMean", {"x"}, {"mean"}, {axes});
  b.node("Sub", {"x", "mean"}, {"d"});
  if (pow) {
    b.node("Pow", {"d", "two"}, {"sq"});
  } else {
    b.node("Mul", {"d", "d"}, {"sq"});
  }
  b.node("ReduceMean", {"sq"}, {"var"}, {axes});
  b.node("Add", {"var", "eps"}, {"ve"});
  b.node("Sqrt", {"ve"}, {"sd"});
  b.node("Div", {"d", "sd"}, {"nrm"});
  b.node("Mul", {"nrm", "gamma"}, {"g"});
  b.node("Add", {"g", "beta"}, {"y"});
  b.output("y");
}

TEST(LayerNormFusion, PrimitiveFormsBecomeLayerNormalization) {
  for (bool pow : {true, false}) {
    GraphBuilder b("g", nullptr, 17);
    primitive_layernorm(b, pow);
    expect_preserved(b.graph(), {random_floats({2, 3, 8}, 5)}, pass_list(make_layernorm_fusion()));
    EXPECT_EQ(b.graph().num_nodes(), 1u) << b.graph().to_string();
    EXPECT_EQ(count_ops(b.graph(), "LayerNormalization"), 1);
  }
}

TEST(LayerNormFusion, OlderOpsetsGetTheKilnOp) {
  GraphBuilder b("g", nullptr, 13);
  primitive_layernorm(b, true);
  expect_preserved(b.graph(), {random_floats({2, 3, 8}, 6)}, pass_list(make_layernorm_fusion()));
  EXPECT_EQ(count_ops(b.graph(), "kiln.LayerNormalization"), 1);
}

TEST(LayerNormFusion, SkipsReductionsOverOtherAxes) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({2, 3, 8}));
  b.constant("eps", floats({}, {1e-5f}));
  const auto axes = ir::Attribute::make_ints("axes", {1});
  b.node("ReduceMean", {"x"}, {"mean"}, {axes});
  b.node("Sub", {"x", "mean"}, {"d"});
  b.node("Mul", {"d", "d"}, {"sq"});
  b.node("ReduceMean", {"sq"}, {"var"}, {axes});
  b.node("Add", {"var", "eps"}, {"ve"});
  b.node("Sqrt", {"ve"}, {"sd"});
  b.node("Div", {"d", "sd"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({2, 3, 8}, 7)}, pass_list(make_layernorm_fusion()), false);
}

TEST(GeluFusion, ErfFormsInEveryProductOrder) {
  for (int order = 0; order < 3; ++order) {
    GraphBuilder b("g", nullptr, 17);
    b.input("x", f32({4, 6}));
    b.constant("sqrt2", floats({}, {1.41421356f}));
    b.constant("one", floats({}, {1.0f}));
    b.constant("half", floats({}, {0.5f}));
    b.node("Div", {"x", "sqrt2"}, {"u"});
    b.node("Erf", {"u"}, {"e"});
    b.node("Add", {"one", "e"}, {"e1"});
    if (order == 0) {
      b.node("Mul", {"x", "e1"}, {"p"});
      b.node("Mul", {"p", "half"}, {"y"});
    } else if (order == 1) {
      b.node("Mul", {"e1", "half"}, {"p"});
      b.node("Mul", {"x", "p"}, {"y"});
    } else {
      b.node("Mul", {"half", "x"}, {"p"});
      b.node("Mul", {"p", "e1"}, {"y"});
    }
    b.output("y");
    expect_preserved(b.graph(), {random_floats({4, 6}, 8, -3.0f, 3.0f)}, pass_list(make_gelu_fusion()));
    EXPECT_EQ(b.graph().num_nodes(), 1u) << "order " << order << "\n" << b.graph().to_string();
    EXPECT_EQ(count_ops(b.graph(), "kiln.Gelu"), 1);
  }
}

TEST(GeluFusion, TanhFormAndOnnxGeluFromOpset20) {
  for (bool pow : {true, false}) {
    GraphBuilder b("g", nullptr, 20);
    b.input("x", f32({4, 6}));
    b.constant("three", floats({}, {3.0f}));
    b.constant("k", floats({}, {0.044715f}));
    b.constant("c", floats({}, {0.7978845608f}));
    b.constant("one", floats({}, {1.0f}));
    b.constant("half", floats({}, {0.5f}));
    if (pow) {
      b.node("Pow", {"x", "three"}, {"cube"});
    } else {
      b.node("Mul", {"x", "x"}, {"sq"});
      b.node("Mul", {"x", "sq"}, {"cube"});
    }
    b.node("Mul", {"k", "cube"}, {"kc"});
    b.node("Add", {"x", "kc"}, {"s"});
    b.node("Mul", {"s", "c"}, {"u"});
    b.node("Tanh", {"u"}, {"t"});
    b.node("Add", {"t", "one"}, {"t1"});
    b.node("Mul", {"x", "half"}, {"hx"});
    b.node("Mul", {"hx", "t1"}, {"y"});
    b.output("y");
    expect_preserved(b.graph(), {random_floats({4, 6}, 9, -3.0f, 3.0f)}, pass_list(make_gelu_fusion()));
    EXPECT_EQ(b.graph().num_nodes(), 1u) << b.graph().to_string();
    const ir::Node* g = find_op(b.graph(), "Gelu");
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->attr_string("approximate"), "tanh");
  }
}

TEST(AttentionFusion, ScaledMaskedSoftmaxAttention) {
  for (bool div : {false, true}) {
    GraphBuilder b("g", nullptr, 17);
    b.input("q", f32({Dim::sym("n"), 2, 5, 4}));
    b.input("kt", f32({Dim::sym("n"), 2, 4, 5}));
    b.input("v", f32({Dim::sym("n"), 2, 5, 4}));
    b.input("mask", f32({Dim::sym("n"), 1, 1, 5}));
    b.constant("scale", floats({}, {div ? 2.0f : 0.5f}));
    b.node("MatMul", {"q", "kt"}, {"s"});
    b.node(div ? "Div" : "Mul", {"s", "scale"}, {"ss"});
    b.node("Add", {"ss", "mask"}, {"sm"});
    b.node("Softmax", {"sm"}, {"p"}, {ir::Attribute::make_int("axis", -1)});
    b.node("MatMul", {"p", "v"}, {"y"});
    b.output("y");
    expect_preserved(b.graph(),
                     {random_floats({2, 2, 5, 4}, 10), random_floats({2, 2, 4, 5}, 11), random_floats({2, 2, 5, 4}, 12),
                      random_floats({2, 1, 1, 5}, 13, -5.0f, 0.0f)},
                     pass_list(make_attention_fusion()));
    ASSERT_EQ(b.graph().num_nodes(), 1u) << b.graph().to_string();
    const ir::Node* a = find_op(b.graph(), "kiln.Attention");
    ASSERT_NE(a, nullptr);
    EXPECT_NEAR(a->attr_float("scale", 0), 0.5f, 1e-7);
  }
}

TEST(AttentionFusion, SkipsSoftmaxOverAnotherAxis) {
  GraphBuilder b("g", nullptr, 17);
  b.input("q", f32({2, 5, 4}));
  b.input("kt", f32({2, 4, 5}));
  b.input("v", f32({2, 5, 4}));
  b.node("MatMul", {"q", "kt"}, {"s"});
  b.node("Softmax", {"s"}, {"p"}, {ir::Attribute::make_int("axis", 1)});
  b.node("MatMul", {"p", "v"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({2, 5, 4}, 1), random_floats({2, 4, 5}, 2), random_floats({2, 5, 4}, 3)},
                   pass_list(make_attention_fusion()), false);
}

TEST(PointwiseFusion, ChainsBecomeOneNode) {
  GraphBuilder b("g", nullptr, 17);
  b.input("m", ir::ValueType::tensor(DataType::kInt64, Shape({Dim::sym("n"), 6})));
  b.input("x", f32({Dim::sym("n"), 6}));
  b.constant("one", floats({}, {1.0f}));
  b.constant("neg", floats({}, {-10000.0f}));
  b.constant("row", random_floats({6}, 4));
  b.node("Cast", {"m"}, {"mf"}, {ir::Attribute::make_int("to", 1)});
  b.node("Sub", {"one", "mf"}, {"inv"});
  b.node("Mul", {"inv", "neg"}, {"mask"});
  b.node("Add", {"x", "mask"}, {"xm"});  // two non-constant operands: not part of a chain
  b.node("Mul", {"xm", "row"}, {"r"});
  b.node("Tanh", {"r"}, {"y"});
  b.output("y");
  Tensor m = Tensor::empty(DataType::kInt64, {2, 6});
  for (int64_t i = 0; i < 12; ++i) m.data<int64_t>()[i] = i % 3 == 0 ? 0 : 1;
  expect_preserved(b.graph(), {Datum(m), random_floats({2, 6}, 5)}, pass_list(make_pointwise_fusion()));
  EXPECT_EQ(count_ops(b.graph(), "kiln.Pointwise"), 2) << b.graph().to_string();
  EXPECT_EQ(b.graph().num_nodes(), 3u);
}

// A Q/DQ model's float detour between two int8 layers, DequantizeLinear ->
// BatchNormalization -> Relu -> QuantizeLinear, becomes one kiln.Pointwise
// from 8-bit to 8-bit; a BatchNormalization outside such a chain stays.
TEST(PointwiseFusion, QuantizedChainsTakeBatchNorm) {
  GraphBuilder b("g", nullptr, 17);
  b.input("q", ir::ValueType::tensor(DataType::kUInt8, Shape({2, 3, 4, 5})));
  b.input("f", f32({2, 3, 4, 5}));
  Tensor zp = Tensor::empty(DataType::kUInt8, {});
  zp.data<uint8_t>()[0] = 128;
  Tensor zp2 = Tensor::empty(DataType::kUInt8, {});
  zp2.data<uint8_t>()[0] = 3;
  b.constant("s", floats({}, {0.05f}));
  b.constant("zp", zp);
  b.constant("s2", floats({}, {0.03f}));
  b.constant("zp2", zp2);
  b.constant("gamma", random_floats({3}, 1));
  b.constant("beta", random_floats({3}, 2));
  b.constant("mean", random_floats({3}, 3));
  b.constant("var", random_floats({3}, 4, 0.5f, 2.0f));
  b.node("DequantizeLinear", {"q", "s", "zp"}, {"x"});
  b.node("BatchNormalization", {"x", "gamma", "beta", "mean", "var"}, {"bn"});
  b.node("Relu", {"bn"}, {"r"});
  b.node("QuantizeLinear", {"r", "s2", "zp2"}, {"y"});
  b.node("BatchNormalization", {"f", "gamma", "beta", "mean", "var"}, {"fb"});
  b.node("Relu", {"fb"}, {"z"});
  b.output("y");
  b.output("z");
  Tensor q = Tensor::empty(DataType::kUInt8, {2, 3, 4, 5});
  for (int64_t i = 0; i < q.numel(); ++i) q.data<uint8_t>()[i] = static_cast<uint8_t>(i * 37 % 256);
  expect_preserved(b.graph(), {Datum(q), random_floats({2, 3, 4, 5}, 5)}, pass_list(make_pointwise_fusion()));
  EXPECT_EQ(count_ops(b.graph(), "kiln.Pointwise"), 1) << b.graph().to_string();
  EXPECT_EQ(count_ops(b.graph(), "BatchNormalization"), 1) << b.graph().to_string();
  EXPECT_EQ(count_ops(b.graph(), "QuantizeLinear"), 0) << b.graph().to_string();
}

// A Q/DQ model's residual add, Add(DQ(a), DQ(b)) -> Relu -> Q, becomes one
// two-input kiln.Pointwise; an Add of a float value stays.
TEST(PointwiseFusion, QuantizedResidualAdds) {
  GraphBuilder b("g", nullptr, 17);
  const Shape shape({2, 3, 4, 5});
  b.input("qa", ir::ValueType::tensor(DataType::kUInt8, shape));
  b.input("qb", ir::ValueType::tensor(DataType::kUInt8, shape));
  b.input("f", f32({2, 3, 4, 5}));
  Tensor zp = Tensor::empty(DataType::kUInt8, {});
  zp.data<uint8_t>()[0] = 120;
  b.constant("sa", floats({}, {0.05f}));
  b.constant("sb", floats({}, {0.08f}));
  b.constant("sy", floats({}, {0.1f}));
  b.constant("zp", zp);
  b.node("DequantizeLinear", {"qa", "sa", "zp"}, {"a"});
  b.node("DequantizeLinear", {"qb", "sb", "zp"}, {"bb"});
  b.node("Add", {"a", "bb"}, {"s"});
  b.node("Relu", {"s"}, {"r"});
  b.node("QuantizeLinear", {"r", "sy", "zp"}, {"y"});
  b.node("DequantizeLinear", {"y", "sy", "zp"}, {"yf"});
  b.node("Add", {"yf", "f"}, {"z"});  // one float operand: stays
  b.output("z");
  Tensor qa = Tensor::empty(DataType::kUInt8, {2, 3, 4, 5}), qb = qa.clone();
  for (int64_t i = 0; i < qa.numel(); ++i) {
    qa.data<uint8_t>()[i] = static_cast<uint8_t>(i * 37 % 256);
    qb.data<uint8_t>()[i] = static_cast<uint8_t>(i * 91 % 256);
  }
  expect_preserved(b.graph(), {Datum(qa), Datum(qb), random_floats({2, 3, 4, 5}, 5)},
                   pass_list(make_pointwise_fusion()));
  EXPECT_EQ(count_ops(b.graph(), "kiln.Pointwise"), 1) << b.graph().to_string();
  EXPECT_EQ(count_ops(b.graph(), "Add"), 1) << b.graph().to_string();
  EXPECT_EQ(count_ops(b.graph(), "DequantizeLinear"), 1) << b.graph().to_string();
}

}  // namespace
}  // namespace kiln::test
