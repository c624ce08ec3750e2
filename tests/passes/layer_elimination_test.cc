#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace kiln::test {
namespace {

using passes::make_layer_elimination;

TEST(LayerElimination, RemovesIdentityAndInferenceDropout) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({2, 3}));
  b.node("Relu", {"x"}, {"r"});
  b.node("Identity", {"r"}, {"i"});
  b.node("Dropout", {"i"}, {"d"});
  b.node("Neg", {"d"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({2, 3}, 1)}, pass_list(make_layer_elimination()));
  EXPECT_EQ(b.graph().num_nodes(), 2u);
}

TEST(LayerElimination, RewiresTheProducerOfAGraphOutput) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({2}));
  b.node("Relu", {"x"}, {"r"});
  b.node("Identity", {"r"}, {"logits"});
  b.output("logits");
  expect_preserved(b.graph(), {random_floats({2}, 2)}, pass_list(make_layer_elimination()));
  EXPECT_EQ(b.graph().num_nodes(), 1u);
  EXPECT_EQ(b.graph().outputs()[0]->name(), "logits");
}

TEST(LayerElimination, KeepsIdentityOfAGraphInputThatIsAnOutput) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({2}));
  b.node("Identity", {"x"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({2}, 3)}, pass_list(make_layer_elimination()), false);
}

TEST(LayerElimination, KeepsTrainingModeDropout) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({4}));
  b.input("t", ir::ValueType::tensor(DataType::kBool, Shape::of({})));
  b.node("Dropout", {"x", "", "t"}, {"d"});
  b.node("Neg", {"d"}, {"y"});
  b.output("y");
  ASSERT_TRUE(ops::infer_shapes(b.graph()).is_ok());
  auto r = make_layer_elimination()->run(b.graph());
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(*r);
}

TEST(LayerElimination, RemovesNoOpDataMovement) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({Dim::sym("n"), 3, 4}));
  b.constant("same", int64s({3}, {0, 3, -1}));
  b.constant("zeros", int64s({6}, {0, 0, 0, 0, 0, 0}));
  b.constant("starts", int64s({1}, {0}));
  b.constant("ends", int64s({1}, {100}));
  b.constant("axes", int64s({1}, {2}));
  b.constant("ones", int64s({2}, {1, 4}));
  b.node("Reshape", {"x", "same"}, {"a"});
  b.node("Transpose", {"a"}, {"t"}, {ir::Attribute::make_ints("perm", {0, 1, 2})});
  b.node("Cast", {"t"}, {"c"}, {ir::Attribute::make_int("to", 1)});
  b.node("Pad", {"c", "zeros"}, {"p"});
  b.node("Slice", {"p", "starts", "ends", "axes"}, {"s"});
  b.node("Expand", {"s", "ones"}, {"e"});
  b.node("Relu", {"e"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({2, 3, 4}, 4)}, pass_list(make_layer_elimination()));
  EXPECT_EQ(b.graph().num_nodes(), 1u) << b.graph().to_string();
}

TEST(LayerElimination, CancelsAndComposesTransposes) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({2, 3, 4}));
  b.node("Transpose", {"x"}, {"t1"}, {ir::Attribute::make_ints("perm", {0, 2, 1})});
  b.node("Transpose", {"t1"}, {"t2"}, {ir::Attribute::make_ints("perm", {0, 2, 1})});
  b.node("Relu", {"t2"}, {"y"});
  b.node("Transpose", {"x"}, {"u1"}, {ir::Attribute::make_ints("perm", {1, 0, 2})});
  b.node("Transpose", {"u1"}, {"u2"}, {ir::Attribute::make_ints("perm", {2, 1, 0})});
  b.node("Neg", {"u2"}, {"z"});
  b.output("y");
  b.output("z");
  expect_preserved(b.graph(), {random_floats({2, 3, 4}, 5)},
                   pass_list(make_layer_elimination(), passes::make_dead_code_elimination()));
  EXPECT_EQ(count_ops(b.graph(), "Transpose"), 1);
}

TEST(LayerElimination, CollapsesReshapeChains) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({Dim::sym("n"), 2, 3, 4}));
  b.constant("s1", int64s({2}, {-1, 12}));
  b.constant("s2", int64s({3}, {-1, 6, 4}));
  b.node("Flatten", {"x"}, {"f"}, {ir::Attribute::make_int("axis", 2)});
  b.node("Reshape", {"f", "s1"}, {"r1"});
  b.node("Reshape", {"r1", "s2"}, {"r2"});
  b.node("Relu", {"r2"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({2, 2, 3, 4}, 6)},
                   pass_list(make_layer_elimination(), passes::make_dead_code_elimination()));
  EXPECT_EQ(count_ops(b.graph(), "Reshape"), 1);
  EXPECT_EQ(count_ops(b.graph(), "Flatten"), 0);
}

TEST(LayerElimination, StaticSqueezeUnsqueezeChainsBecomeOneReshape) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({1, 6, 1}));
  b.constant("a0", int64s({1}, {0}));
  b.constant("a2", int64s({1}, {2}));
  b.node("Squeeze", {"x", "a0"}, {"s"});
  b.node("Unsqueeze", {"s", "a2"}, {"u"});
  b.node("Relu", {"u"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({1, 6, 1}, 7)},
                   pass_list(make_layer_elimination(), passes::make_dead_code_elimination()));
  EXPECT_EQ(count_ops(b.graph(), "Reshape"), 1);
  EXPECT_EQ(b.graph().num_nodes(), 2u);
}

}  // namespace
}  // namespace kiln::test
