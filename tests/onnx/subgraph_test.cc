// Subgraphs (If/Loop/Scan bodies): recursive import, captures of outer values
// in every graph between the definition and the use, and ordering of nodes by
// the outer values their subgraphs read.
//
// If is not registered on every build, so these tests import with
// allow_unknown_ops and inspect the IR instead of running it.
#include <gtest/gtest.h>

#include <algorithm>

#include "onnx/model_builder.h"

namespace kiln::test {
namespace {

using pb::TensorProto;

onnx::ImportOptions lenient() {
  onnx::ImportOptions o;
  o.allow_unknown_ops = true;
  return o;
}

std::vector<std::string> capture_names(const ir::Graph& g) {
  std::vector<std::string> names;
  for (const ir::Value* v : g.captures()) names.push_back(v->name());
  std::sort(names.begin(), names.end());
  return names;
}

const ir::Node* find_if(const ir::Graph& g) {
  for (const auto& n : g.nodes()) {
    if (n->op_type() == "If") return n.get();
  }
  ADD_FAILURE() << "no If node";
  return nullptr;
}

// cond, x -> If(then: Identity(t), else: Nest{body: Identity(x)}) -> out,
// where t = Identity(x) comes after the If in the proto.
pb::ModelProto if_model() {
  auto m = make_model(16);
  auto* g = m.mutable_graph();
  add_input(g, "cond", TensorProto::BOOL, {});
  add_input(g, "x", TensorProto::FLOAT, {2});

  pb::GraphProto then_branch;
  then_branch.set_name("then");
  add_node(&then_branch, "Identity", {"t"}, {"then_out"}, "then_id");
  add_output(&then_branch, "then_out", TensorProto::FLOAT, {2});

  pb::GraphProto body;
  body.set_name("body");
  add_node(&body, "Identity", {"x"}, {"inner"}, "body_id");
  add_output(&body, "inner", TensorProto::FLOAT, {2});
  pb::GraphProto else_branch;
  else_branch.set_name("else");
  auto* nest = add_node(&else_branch, "Nest", {}, {"else_out"}, "nest");
  add_attr_graph(nest, "body", body);
  add_output(&else_branch, "else_out", TensorProto::FLOAT, {2});

  auto* iff = add_node(g, "If", {"cond"}, {"out"}, "if");
  add_attr_graph(iff, "then_branch", then_branch);
  add_attr_graph(iff, "else_branch", else_branch);
  add_node(g, "Identity", {"x"}, {"t"}, "make_t");
  add_output(g, "out", TensorProto::FLOAT, {2});
  return m;
}

TEST(OnnxSubgraph, CapturesInEveryGraphOnThePath) {
  auto r = import(if_model(), "", lenient());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Graph& top = *r->graph;
  // The If reads t through its branch, so t's producer comes first.
  ASSERT_EQ(top.num_nodes(), 2u);
  EXPECT_EQ(top.nodes().front()->name(), "make_t");
  const ir::Node* iff = top.nodes().back().get();
  EXPECT_EQ(iff->op_type(), "If");

  const ir::Graph* then_g = iff->attr_graph("then_branch");
  const ir::Graph* else_g = iff->attr_graph("else_branch");
  ASSERT_NE(then_g, nullptr);
  ASSERT_NE(else_g, nullptr);
  EXPECT_EQ(then_g->parent(), &top);
  EXPECT_EQ(else_g->parent(), &top);
  EXPECT_EQ(capture_names(*then_g), (std::vector<std::string>{"t"}));
  // The else branch does not read x itself, but its nested body does.
  EXPECT_EQ(capture_names(*else_g), (std::vector<std::string>{"x"}));
  const ir::Node* nest = else_g->nodes().front().get();
  const ir::Graph* body = nest->attr_graph("body");
  ASSERT_NE(body, nullptr);
  EXPECT_EQ(body->parent(), else_g);
  EXPECT_EQ(capture_names(*body), (std::vector<std::string>{"x"}));
  EXPECT_EQ(body->find_value("x")->type().to_string(), "float[2]");
  EXPECT_TRUE(body->find_value("x")->is_capture());
  // Subgraph nodes carry the model's opset too.
  EXPECT_EQ(then_g->nodes().front()->opset(), 16);
  EXPECT_EQ(body->nodes().front()->opset(), 16);
  EXPECT_EQ(body->opset_imports().at(""), 16);
}

TEST(OnnxSubgraph, BranchMayOutputAnOuterValueDirectly) {
  auto m = if_model();
  auto* then_branch = m.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g();
  then_branch->clear_node();
  then_branch->mutable_output(0)->set_name("x");
  auto r = import(m, "", lenient());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Graph* then_g = find_if(*r->graph)->attr_graph("then_branch");
  ASSERT_EQ(then_g->outputs().size(), 1u);
  EXPECT_TRUE(then_g->outputs()[0]->is_capture());
  EXPECT_EQ(then_g->outputs()[0]->name(), "x");
}

TEST(OnnxSubgraph, LocalNamesShadowOuterOnes) {
  auto m = if_model();
  // The nested body defines its own x as an input: no capture of the outer x.
  auto* body = m.mutable_graph()->mutable_node(0)->mutable_attribute(1)->mutable_g()->mutable_node(0)
                   ->mutable_attribute(0)->mutable_g();
  add_input(body, "x", TensorProto::FLOAT, {2});
  auto r = import(m, "", lenient());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Graph* else_g = find_if(*r->graph)->attr_graph("else_branch");
  EXPECT_TRUE(else_g->captures().empty());
}

TEST(OnnxSubgraph, UndefinedNameInASubgraph) {
  auto m = if_model();
  auto* then_branch = m.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g();
  then_branch->mutable_node(0)->set_input(0, "ghost");
  expect_error(import(m, "", lenient()), StatusCode::kInvalidArgument,
               {"test.onnx: node 'if' (If): attribute 'then_branch': node 'then_id' (Identity): input 'ghost' is not "
                "defined (missing initializer?)"});
}

TEST(OnnxSubgraph, SubgraphErrorsNameThePath) {
  auto m = if_model();
  auto* body = m.mutable_graph()->mutable_node(0)->mutable_attribute(1)->mutable_g()->mutable_node(0)
                   ->mutable_attribute(0)->mutable_g();
  add_node(body, "Identity", {"x"}, {"inner"}, "dup");
  expect_error(import(m, "", lenient()), StatusCode::kInvalidArgument,
               {"node 'if' (If): attribute 'else_branch': node 'nest' (Nest): attribute 'body'",
                "value 'inner' is produced twice"});
}

TEST(OnnxSubgraph, SubgraphInitializersAndInputs) {
  auto m = if_model();
  auto* then_branch = m.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g();
  add_initializer(then_branch, float_tensor("k", {2}, {1.0f, 2.0f}));
  add_input(then_branch, "local_in", TensorProto::INT64, {});
  then_branch->mutable_node(0)->set_input(0, "k");
  auto r = import(m, "", lenient());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Graph* then_g = find_if(*r->graph)->attr_graph("then_branch");
  ASSERT_EQ(then_g->constants().size(), 1u);
  EXPECT_EQ(then_g->constants()[0]->name(), "k");
  ASSERT_EQ(then_g->inputs().size(), 1u);
  EXPECT_TRUE(then_g->captures().empty());
  // t is no longer read by the branch, so the proto order stands.
  EXPECT_EQ(r->graph->nodes().front()->op_type(), "If");
}

TEST(OnnxSubgraph, CycleThroughACapture) {
  // t = Identity(out) and the If reads t in its branch: a cycle.
  auto m = if_model();
  m.mutable_graph()->mutable_node(1)->set_input(0, "out");
  expect_error(import(m, "", lenient()), StatusCode::kInvalidArgument, {"cycle", "node 'if' (If)"});
}

}  // namespace
}  // namespace kiln::test
