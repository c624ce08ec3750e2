// The ONNX exporter (`kiln quantize` writes with it): import(export(model))
// keeps nodes, attributes, constants, input/output types and opsets; what it
// cannot write (subgraph attributes) is an error naming the node.
#include <gtest/gtest.h>

#include "model_builder.h"
#include "onnx/exporter.h"

namespace kiln::test {
namespace {

TEST(Exporter, RoundTripsThroughTheImporter) {
  auto m = make_model(17);
  auto* g = m.mutable_graph();
  add_input(g, "x", pb::TensorProto::FLOAT, {"N", 3});
  add_initializer(g, float_tensor("w", {3, 2}, {1, 2, 3, 4, 5, 6}));
  auto* mm = add_node(g, "MatMul", {"x", "w"}, {"h"}, "mm");
  (void)mm;
  auto* t = add_node(g, "Transpose", {"h"}, {"y"}, "tr");
  auto* perm = t->add_attribute();
  perm->set_name("perm");
  perm->set_type(pb::AttributeProto::INTS);
  perm->add_ints(1);
  perm->add_ints(0);
  add_output(g, "y", pb::TensorProto::FLOAT, {2, "N"});
  auto model = import(m);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  auto bytes = onnx::export_model_bytes(*model);
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  auto back = onnx::import_model_bytes(*bytes, "", "exported.onnx");
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  const ir::Graph& a = *model->graph;
  const ir::Graph& b = *back->graph;
  EXPECT_EQ(a.to_string(), b.to_string());
  EXPECT_EQ(b.opset_imports().at(""), 17);
  EXPECT_EQ(b.inputs()[0]->type().to_string(), "float[N,3]");
  const Tensor& w = b.find_value("w")->constant();
  EXPECT_EQ(w.dims(), (Dims{3, 2}));
  EXPECT_EQ(w.data<float>()[5], 6.0f);
}

TEST(Exporter, SubgraphsAreAnErrorNamingTheNode) {
  auto m = make_model(17);
  auto* g = m.mutable_graph();
  add_input(g, "c", pb::TensorProto::BOOL, {});
  pb::GraphProto branch;
  branch.set_name("b");
  add_initializer(&branch, float_tensor("k", {1}, {1}));
  add_node(&branch, "Identity", {"k"}, {"o"});
  add_output(&branch, "o", pb::TensorProto::FLOAT, {1});
  auto* n = add_node(g, "If", {"c"}, {"y"}, "branchy");
  add_attr_graph(n, "then_branch", branch);
  add_attr_graph(n, "else_branch", branch);
  add_output(g, "y", pb::TensorProto::FLOAT, {1});
  auto model = import(m);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  auto bytes = onnx::export_model_bytes(*model);
  ASSERT_FALSE(bytes.is_ok());
  EXPECT_NE(bytes.status().message().find("branchy"), std::string::npos) << bytes.status().message();
}

}  // namespace
}  // namespace kiln::test
