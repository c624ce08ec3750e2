// The shape inference driver: declared types kept where inference knows
// nothing, inferred facts filling the gaps, declarations winning conflicts.
#include <gtest/gtest.h>

#include "onnx/model_builder.h"
#include "ops/shape_inference.h"

namespace kiln::test {
namespace {

using ir::ValueType;
using pb::TensorProto;

TEST(ShapeInference, MergeTypes) {
  bool conflict = false;
  ValueType declared = ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("N"), Dim(3), Dim()}));
  ValueType inferred = ValueType::tensor(DataType::kFloat32, Shape({Dim(2), Dim(3), Dim(7)}));
  EXPECT_EQ(ops::merge_types(declared, inferred, conflict).to_string(), "float[2,3,7]");
  EXPECT_FALSE(conflict);

  EXPECT_EQ(ops::merge_types(declared, ValueType{}, conflict).to_string(), declared.to_string());
  EXPECT_EQ(ops::merge_types(ValueType{}, inferred, conflict).to_string(), inferred.to_string());
  EXPECT_EQ(ops::merge_types(declared, ValueType::tensor(DataType::kFloat32), conflict).to_string(),
            declared.to_string());
  EXPECT_FALSE(conflict);

  ValueType other_dim = ValueType::tensor(DataType::kFloat32, Shape({Dim(2), Dim(4), Dim(7)}));
  EXPECT_EQ(ops::merge_types(declared, other_dim, conflict).to_string(), declared.to_string());
  EXPECT_TRUE(conflict);
  conflict = false;
  ValueType other_type = ValueType::tensor(DataType::kInt64, Shape({Dim(2), Dim(3), Dim(7)}));
  EXPECT_EQ(ops::merge_types(declared, other_type, conflict).to_string(), declared.to_string());
  EXPECT_TRUE(conflict);
  conflict = false;
  ValueType other_rank = ValueType::tensor(DataType::kFloat32, Shape({Dim(2)}));
  EXPECT_EQ(ops::merge_types(declared, other_rank, conflict).to_string(), declared.to_string());
  EXPECT_TRUE(conflict);

  conflict = false;
  ValueType seq_declared = ValueType::wrapping(ValueType::Kind::kSequence, ValueType{});
  ValueType seq_inferred = ValueType::wrapping(ValueType::Kind::kSequence, inferred);
  EXPECT_EQ(ops::merge_types(seq_declared, seq_inferred, conflict).elem->to_string(), "float[2,3,7]");
  EXPECT_FALSE(conflict);
}

TEST(ShapeInference, ImportRefinesAndKeepsDeclarations) {
  auto m = make_model(17);
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {2, 3});
  add_node(g, "Identity", {"x"}, {"a"});
  add_node(g, "Identity", {"a"}, {"b"});
  add_node(g, "Identity", {"b"}, {"c"});
  add_output(g, "a", TensorProto::FLOAT, {"N", 3});  // symbol refined to 2
  add_output(g, "b", TensorProto::INT64, {2, 3});     // conflicts: declaration kept
  add_untyped_output(g, "c");                         // inferred from b's (declared) type
  auto r = import(m);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->graph->find_value("a")->type().to_string(), "float[2,3]");
  EXPECT_EQ(r->graph->find_value("b")->type().to_string(), "int64[2,3]");
  EXPECT_EQ(r->graph->find_value("c")->type().to_string(), "int64[2,3]");

  onnx::ImportOptions off;
  off.infer_shapes = false;
  auto raw = import(m, "", off);
  ASSERT_TRUE(raw.is_ok()) << raw.status().to_string();
  EXPECT_EQ(raw->graph->find_value("a")->type().to_string(), "float[N,3]");
  EXPECT_EQ(raw->graph->find_value("c")->type().kind, ValueType::Kind::kUnknown);
}

TEST(ShapeInference, ArityErrorsNameTheNode) {
  auto m = make_model(17);
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {2});
  add_node(g, "Identity", {"x", "x"}, {"y"}, "greedy");
  add_untyped_output(g, "y");
  expect_error(import(m), StatusCode::kInvalidArgument, {"test.onnx: node 'greedy' (Identity) has 2 inputs"});
}

}  // namespace
}  // namespace kiln::test
