#include <gtest/gtest.h>

#include "passes/pass_test_util.h"
#include "passes/pipeline.h"

namespace kiln::test {
namespace {

using passes::make_constant_folding;
using passes::make_dead_code_elimination;

TEST(ConstantFolding, FoldsConstantArithmetic) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({2, 3}));
  b.constant("a", floats({3}, {1, 2, 3}));
  b.constant("c", floats({3}, {10, 20, 30}));
  b.node("Mul", {"a", "c"}, {"ac"});
  b.node("Add", {"x", "ac"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({2, 3}, 1)}, pass_list(make_constant_folding()));
  EXPECT_EQ(count_ops(b.graph(), "Mul"), 0);
  ASSERT_TRUE(b.graph().find_value("ac")->is_constant());
  EXPECT_EQ(b.graph().find_value("ac")->constant().data<float>()[2], 90.0f);
}

TEST(ConstantFolding, FoldsShapeArithmeticIntoReshape) {
  // Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])) with x static.
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({2, 3, 4}));
  b.constant("i0", int64_scalar(0));
  b.constant("ax", int64s({1}, {0}));
  b.constant("m1", int64s({1}, {-1}));
  b.node("Shape", {"x"}, {"s"});
  b.node("Gather", {"s", "i0"}, {"n"}, {ir::Attribute::make_int("axis", 0)});
  b.node("Unsqueeze", {"n", "ax"}, {"n1"});
  b.node("Concat", {"n1", "m1"}, {"shape"}, {ir::Attribute::make_int("axis", 0)});
  b.node("Reshape", {"x", "shape"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({2, 3, 4}, 2)}, pass_list(make_constant_folding()));
  EXPECT_EQ(b.graph().num_nodes(), 1u);
  const ir::Value* shape = b.graph().find_value("shape");
  ASSERT_TRUE(shape->is_constant());
  EXPECT_EQ(shape->constant().data<int64_t>()[0], 2);
  // Shape inference ran on the folded graph: the Reshape's output is static now.
  EXPECT_EQ(b.graph().find_value("y")->type().shape.to_string(), "[2,12]");
}

TEST(ConstantFolding, GatherOfShapeFoldsKnownDimsOfSymbolicShapes) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({Dim::sym("batch"), 8}));
  b.constant("i1", int64_scalar(1));
  b.constant("i0", int64_scalar(0));
  b.node("Shape", {"x"}, {"s"});
  b.node("Gather", {"s", "i1"}, {"cols"}, {ir::Attribute::make_int("axis", 0)});
  b.node("Gather", {"s", "i0"}, {"rows"}, {ir::Attribute::make_int("axis", 0)});
  b.output("cols");
  b.output("rows");
  expect_preserved(b.graph(), {random_floats({3, 8}, 3)}, pass_list(make_constant_folding()));
  EXPECT_TRUE(b.graph().find_value("cols")->is_constant());
  EXPECT_FALSE(b.graph().find_value("rows")->is_constant());  // the batch is dynamic
}

TEST(ConstantFolding, NeverFoldsRandomOps) {
  GraphBuilder b("g", nullptr, 17);
  b.node("RandomNormal", {}, {"r"}, {ir::Attribute::make_ints("shape", {4}), ir::Attribute::make_int("dtype", 1)});
  b.output("r");
  ASSERT_TRUE(ops::infer_shapes(b.graph()).is_ok());
  auto r = make_constant_folding()->run(b.graph());
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(count_ops(b.graph(), "RandomNormal"), 1);
}

TEST(ConstantFolding, DoesNotMaterializeHugeTensors) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({1}));
  b.constant("one", floats({}, {1.0f}));
  b.constant("shape", int64s({2}, {1000, 1000}));
  b.node("Expand", {"one", "shape"}, {"big"});
  b.node("Add", {"big", "x"}, {"y"});
  b.output("y");
  ASSERT_TRUE(ops::infer_shapes(b.graph()).is_ok());
  auto r = make_constant_folding()->run(b.graph());
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(count_ops(b.graph(), "Expand"), 1);
}

TEST(ConstantFolding, LeavesFailingNodesForRunTime) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({2}));
  b.constant("a", floats({2}, {1, 2}));
  b.constant("bad", int64s({1}, {7}));
  b.node("Reshape", {"a", "bad"}, {"r"});  // 2 elements cannot become [7]
  b.node("Add", {"x", "x"}, {"y"});
  b.output("y");
  b.output("r");
  auto r = make_constant_folding()->run(b.graph());
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(count_ops(b.graph(), "Reshape"), 1);
}

TEST(DeadCodeElimination, RemovesUnusedNodesButKeepsOutputs) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({2}));
  b.node("Relu", {"x"}, {"unused"});
  b.node("Neg", {"unused"}, {"unused2"});
  b.node("Abs", {"x"}, {"y"});
  b.output("y");
  expect_preserved(b.graph(), {random_floats({2}, 4)}, pass_list(make_dead_code_elimination()));
  EXPECT_EQ(b.graph().num_nodes(), 1u);
  EXPECT_EQ(count_ops(b.graph(), "Abs"), 1);
}

TEST(DeadCodeElimination, KeepsValuesCapturedBySubgraphs) {
  GraphBuilder top("g", nullptr, 17);
  top.input("c", ir::ValueType::tensor(DataType::kBool, Shape::of({})));
  top.input("x", f32({2}));
  top.node("Neg", {"x"}, {"nx"});  // read only inside the branches
  GraphBuilder then_b("then", &top.graph(), 17);
  then_b.capture("nx", f32({2}));
  then_b.node("Identity", {"nx"}, {"t"});
  then_b.output("t");
  GraphBuilder else_b("else", &top.graph(), 17);
  else_b.capture("x", f32({2}));
  else_b.node("Identity", {"x"}, {"e"});
  else_b.output("e");
  top.node("If", {"c"}, {"y"},
           {ir::Attribute::make_graph("then_branch", then_b.share()),
            ir::Attribute::make_graph("else_branch", else_b.share())});
  top.output("y");
  expect_preserved(top.graph(), {Datum(bool_scalar(true)), random_floats({2}, 5)},
                   pass_list(make_dead_code_elimination(), passes::make_layer_elimination()), false);
  EXPECT_EQ(count_ops(top.graph(), "Neg"), 1);
}

}  // namespace
}  // namespace kiln::test

namespace kiln::test {
namespace {

// y = x + Neg(w) where w is a graph input with an initializer (a default).
void initializer_input_graph(GraphBuilder& b) {
  b.input("x", f32({2}));
  b.input("w", f32({2}))->set_constant(floats({2}, {1, 2}));
  b.node("Neg", {"w"}, {"nw"});
  b.node("Add", {"x", "nw"}, {"y"});
  b.output("y");
}

TEST(ConstantFolding, InitializerInputsAreFedValuesUnlessOldIrSaysOtherwise) {
  GraphBuilder b("g", nullptr, 17);
  initializer_input_graph(b);
  ASSERT_TRUE(passes::optimize(b.graph(), {}).is_ok());
  EXPECT_EQ(count_ops(b.graph(), "Neg"), 1);

  GraphBuilder old("g", nullptr, 8);
  initializer_input_graph(old);
  passes::PipelineOptions options;
  options.initializer_inputs_are_constant = true;  // what the engine sets for IR version < 4
  ASSERT_TRUE(passes::optimize(old.graph(), options).is_ok());
  EXPECT_EQ(count_ops(old.graph(), "Neg"), 0);
}

}  // namespace
}  // namespace kiln::test
