// Model-local functions: inlining at import, renaming, attribute binding
// (ref_attr_name and defaults), nested calls, recursion and malformed bodies.
#include <gtest/gtest.h>

#include "exec/program.h"
#include "onnx/model_builder.h"

namespace kiln::test {
namespace {

using pb::TensorProto;

// Twice(X) -> Y in domain "local": T = Identity(X); Y = Identity(T).
pb::FunctionProto twice() {
  pb::FunctionProto f;
  f.set_name("Twice");
  f.set_domain("local");
  f.add_input("X");
  f.add_output("Y");
  auto* o = f.add_opset_import();
  o->set_domain("");
  o->set_version(17);
  auto* a = f.add_node();
  a->set_op_type("Identity");
  a->add_input("X");
  a->add_output("T");
  auto* b = f.add_node();
  b->set_op_type("Identity");
  b->add_input("T");
  b->add_output("Y");
  b->set_name("second");
  return f;
}

pb::ModelProto call_model() {
  auto m = make_model(17);
  auto* o = m.add_opset_import();
  o->set_domain("local");
  o->set_version(1);
  *m.add_functions() = twice();
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {2});
  add_node(g, "Twice", {"x"}, {"y"}, "call", "local");
  add_output(g, "y", TensorProto::FLOAT, {2});
  return m;
}

onnx::ImportOptions lenient() {
  onnx::ImportOptions o;
  o.allow_unknown_ops = true;
  return o;
}

TEST(OnnxFunction, CallIsInlinedAndRuns) {
  auto r = import(call_model());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Graph& g = *r->graph;
  ASSERT_EQ(g.num_nodes(), 2u);
  EXPECT_EQ(g.nodes().front()->name(), "call/Identity_0");
  EXPECT_EQ(g.nodes().back()->name(), "call/second");
  EXPECT_NE(g.find_value("call/T"), nullptr);
  EXPECT_EQ(g.find_value("T"), nullptr);
  EXPECT_EQ(g.nodes().front()->opset(), 17);
  EXPECT_EQ(g.find_value("y")->producer(), g.nodes().back().get());

  auto program = exec::Program::compile(g);
  ASSERT_TRUE(program.is_ok()) << program.status().to_string();
  Tensor x = Tensor::empty(DataType::kFloat32, {2});
  x.data<float>()[0] = 3.0f;
  x.data<float>()[1] = 5.0f;
  std::vector<Datum> feeds{Datum(x)};
  auto out = exec::execute(**program, feeds, nullptr);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].tensor().data<float>()[1], 5.0f);
}

TEST(OnnxFunction, TwoCallsGetDistinctNames) {
  auto m = call_model();
  auto* g = m.mutable_graph();
  add_node(g, "Twice", {"y"}, {"z"}, "call2", "local");
  add_node(g, "Twice", {"z"}, {"w"}, "", "local");  // unnamed call: Twice_2
  g->mutable_output(0)->set_name("w");
  // A graph value named like the fresh name forces a suffix.
  add_node(g, "Identity", {"x"}, {"call/T"}, "squatter");
  auto r = import(m);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Graph& gr = *r->graph;
  EXPECT_EQ(gr.num_nodes(), 7u);
  EXPECT_NE(gr.find_value("call/T_1"), nullptr);
  EXPECT_NE(gr.find_value("call2/T"), nullptr);
  EXPECT_NE(gr.find_value("Twice_2/T"), nullptr);
}

TEST(OnnxFunction, NestedCalls) {
  auto m = call_model();
  // Quad(X) -> Y: Y = Twice(Twice(X)).
  pb::FunctionProto quad;
  quad.set_name("Quad");
  quad.set_domain("local");
  quad.add_input("X");
  quad.add_output("Y");
  auto* a = quad.add_node();
  a->set_op_type("Twice");
  a->set_domain("local");
  a->add_input("X");
  a->add_output("M");
  a->set_name("inner1");
  auto* b = quad.add_node();
  b->set_op_type("Twice");
  b->set_domain("local");
  b->add_input("M");
  b->add_output("Y");
  b->set_name("inner2");
  *m.add_functions() = quad;
  m.mutable_graph()->mutable_node(0)->set_op_type("Quad");
  auto r = import(m);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->graph->num_nodes(), 4u);
  EXPECT_NE(r->graph->find_value("call/M"), nullptr);
  EXPECT_NE(r->graph->find_value("call/inner1/T"), nullptr);
  EXPECT_EQ(r->graph->nodes().back()->name(), "call/inner2/second");
}

TEST(OnnxFunction, AttributesBindByReferenceAndDefault) {
  auto m = call_model();
  auto* f = m.mutable_functions(0);
  f->add_attribute("gain");  // no default
  auto* def = f->add_attribute_proto();
  def->set_name("alpha");
  def->set_type(pb::AttributeProto::FLOAT);
  def->set_f(2.0f);
  // A custom node in the body reads both.
  auto* n = f->add_node();
  n->set_op_type("Scale");
  n->set_domain("custom");
  n->add_input("X");
  n->add_output("S");
  n->set_name("scale");
  auto* ra = n->add_attribute();
  ra->set_name("a");
  ra->set_type(pb::AttributeProto::FLOAT);
  ra->set_ref_attr_name("alpha");
  auto* rg = n->add_attribute();
  rg->set_name("g");
  rg->set_type(pb::AttributeProto::INT);
  rg->set_ref_attr_name("gain");
  add_attr_int(n, "fixed", 9);
  auto* o = m.add_opset_import();
  o->set_domain("custom");
  o->set_version(1);
  auto* g = m.mutable_graph();
  auto* call2 = add_node(g, "Twice", {"x"}, {"y2"}, "call2", "local");
  auto* alpha = call2->add_attribute();
  alpha->set_name("alpha");
  alpha->set_type(pb::AttributeProto::FLOAT);
  alpha->set_f(5.0f);
  add_attr_int(call2, "gain", 3);

  auto r = import(m, "", lenient());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Node* s1 = r->graph->find_value("call/S")->producer();
  const ir::Node* s2 = r->graph->find_value("call2/S")->producer();
  EXPECT_EQ(s1->name(), "call/scale");
  EXPECT_EQ(s1->attr_float("a", 0), 2.0f);  // the default
  EXPECT_FALSE(s1->has_attr("g"));           // not given, no default
  EXPECT_EQ(s1->attr_int("fixed", 0), 9);
  EXPECT_EQ(s2->attr_float("a", 0), 5.0f);
  EXPECT_EQ(s2->attr_int("g", 0), 3);
  EXPECT_EQ(s2->opset(), 1);
}

TEST(OnnxFunction, SubgraphInBodyReadsFunctionValues) {
  auto m = call_model();
  auto* f = m.mutable_functions(0);
  pb::GraphProto body;
  add_node(&body, "Identity", {"T"}, {"b_out"}, "in_body");
  add_output(&body, "b_out", TensorProto::FLOAT, {2});
  auto* n = f->add_node();
  n->set_op_type("Wrap");
  n->set_domain("custom");
  n->add_output("W");
  n->set_name("wrap");
  add_attr_graph(n, "body", body);
  auto* o = m.add_opset_import();
  o->set_domain("custom");
  o->set_version(1);
  auto r = import(m, "", lenient());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Node* wrap = r->graph->find_value("call/W")->producer();
  const ir::Graph* sub = wrap->attr_graph("body");
  ASSERT_EQ(sub->captures().size(), 1u);
  EXPECT_EQ(sub->captures()[0]->name(), "call/T");
  // The wrap node reads call/T through its body: ordered after its producer.
  bool seen_t = false;
  for (const auto& node : r->graph->nodes()) {
    if (node->name() == "call/Identity_0") seen_t = true;
    if (node.get() == wrap) {
      EXPECT_TRUE(seen_t);
    }
  }
}

TEST(OnnxFunction, OmittedOutputAndPassthrough) {
  auto m = call_model();
  auto* f = m.mutable_functions(0);
  f->add_output("X");  // second output: the input, passed through
  auto* g = m.mutable_graph();
  add_node(g, "Twice", {"x"}, {"", "same"}, "call2", "local");
  add_output(g, "same", TensorProto::FLOAT, {2});
  auto r = import(m);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Node* pass = r->graph->find_value("same")->producer();
  ASSERT_NE(pass, nullptr);
  EXPECT_EQ(pass->op_type(), "Identity");
  EXPECT_EQ(pass->input(0)->name(), "x");
  EXPECT_NE(r->graph->find_value("call2/Y"), nullptr);  // omitted output got a fresh name
}

TEST(OnnxFunction, Recursion) {
  auto m = call_model();
  auto* n = m.mutable_functions(0)->mutable_node(1);
  n->set_op_type("Twice");
  n->set_domain("local");
  expect_error(import(m), StatusCode::kInvalidArgument, {"test.onnx: ", "'Twice' calls itself recursively"});
}

// F0 = Identity; F_k calls F_{k-1} `calls` times (in sequence).
pb::ModelProto chain_model(int levels, int calls) {
  auto m = call_model();
  m.clear_functions();
  pb::FunctionProto f0 = twice();
  f0.set_name("F0");
  *m.add_functions() = f0;
  for (int k = 1; k <= levels; ++k) {
    pb::FunctionProto f;
    f.set_name("F" + std::to_string(k));
    f.set_domain("local");
    f.add_input("X");
    f.add_output("Y");
    for (int c = 0; c < calls; ++c) {
      auto* n = f.add_node();
      n->set_op_type("F" + std::to_string(k - 1));
      n->set_domain("local");
      n->add_input(c == 0 ? "X" : "M" + std::to_string(c - 1));
      n->add_output(c == calls - 1 ? "Y" : "M" + std::to_string(c));
    }
    *m.add_functions() = f;
  }
  m.mutable_graph()->mutable_node(0)->set_op_type("F" + std::to_string(levels));
  return m;
}

TEST(OnnxFunction, ExponentialExpansionIsRefused) {
  auto ok = import(chain_model(5, 2));  // 2 * 2^5 nodes
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok->graph->num_nodes(), 64u);
  expect_error(import(chain_model(40, 2)), StatusCode::kResourceExhausted,
               {"node 'call' (F40)", "inlining local function 'F40' creates billions of nodes"});
  expect_error(import(chain_model(100, 1)), StatusCode::kUnimplemented, {"nest more than 64 calls deep"});
}

TEST(OnnxFunction, MalformedBodies) {
  {
    auto m = call_model();
    m.mutable_functions(0)->mutable_node(1)->set_input(0, "undefined_inside");
    expect_error(import(m), StatusCode::kInvalidArgument,
                 {"node 'call' (Twice): function 'Twice'", "reads 'undefined_inside'"});
  }
  {
    auto m = call_model();
    m.mutable_functions(0)->set_output(0, "never");
    expect_error(import(m), StatusCode::kInvalidArgument, {"never produces output 'never'"});
  }
  {
    auto m = call_model();
    m.mutable_graph()->mutable_node(0)->add_input("x");
    expect_error(import(m), StatusCode::kInvalidArgument, {"takes 1 inputs and 1 outputs"});
  }
  {
    auto m = call_model();
    *m.add_functions() = twice();
    expect_error(import(m), StatusCode::kInvalidArgument, {"'Twice'", "defined twice"});
  }
}

TEST(OnnxFunction, UnsupportedOpsetInFunction) {
  auto m = call_model();
  m.mutable_functions(0)->mutable_opset_import(0)->set_version(30);
  expect_error(import(m), StatusCode::kUnimplemented, {"call/Identity_0", "unsupported opset 30"});
}

}  // namespace
}  // namespace kiln::test
