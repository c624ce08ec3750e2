// Model-level import: valid models, opsets, metadata, graph structure, and
// the error of every malformed model (each names what is wrong).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "exec/program.h"
#include "onnx/model_builder.h"

namespace kiln::test {
namespace {

using pb::TensorProto;

// x: float[N,3] -> Identity -> y; initializer w: float[3] -> Identity -> w_out.
pb::ModelProto identity_model() {
  auto m = make_model(17);
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {"N", 3});
  add_initializer(g, float_tensor("w", {3}, {1.5f, -2.0f, 4.25f}));
  add_node(g, "Identity", {"x"}, {"y"}, "id_x");
  add_node(g, "Identity", {"w"}, {"w_out"}, "id_w");
  add_output(g, "y", TensorProto::FLOAT, {"N", 3});
  add_output(g, "w_out", TensorProto::FLOAT, {3});
  return m;
}

TEST(OnnxImport, ValidModelWithInitializerRuns) {
  auto m = identity_model();
  auto* meta = m.add_metadata_props();
  meta->set_key("author");
  meta->set_value("kiln");
  auto r = import(m);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Model& model = *r;
  EXPECT_EQ(model.ir_version, 8);
  EXPECT_EQ(model.producer_name, "kiln-test");
  EXPECT_EQ(model.producer_version, "1.0");
  EXPECT_EQ(model.source_path, "test.onnx");
  EXPECT_EQ(model.metadata.at("author"), "kiln");
  EXPECT_EQ(model.opset(), 17);
  EXPECT_EQ(model.opset("ai.onnx"), 17);

  const ir::Graph& g = *model.graph;
  ASSERT_EQ(g.inputs().size(), 1u);
  EXPECT_EQ(g.inputs()[0]->name(), "x");
  EXPECT_EQ(g.inputs()[0]->type().to_string(), "float[N,3]");
  ASSERT_EQ(g.constants().size(), 1u);
  EXPECT_EQ(g.constants()[0]->name(), "w");
  ASSERT_EQ(g.num_nodes(), 2u);
  for (const auto& n : g.nodes()) EXPECT_EQ(n->opset(), 17);
  EXPECT_EQ(g.find_value("y")->type().to_string(), "float[N,3]");

  auto program = exec::Program::compile(g);
  ASSERT_TRUE(program.is_ok()) << program.status().to_string();
  Tensor x = Tensor::empty(DataType::kFloat32, {2, 3});
  for (int i = 0; i < 6; ++i) x.data<float>()[i] = static_cast<float>(i);
  std::vector<Datum> feeds{Datum(x)};
  auto out = exec::execute(**program, feeds, nullptr);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].tensor().data<float>()[5], 5.0f);
  const Tensor& w = (*out)[1].tensor();
  ASSERT_EQ(w.numel(), 3);
  EXPECT_EQ(w.data<float>()[0], 1.5f);
  EXPECT_EQ(w.data<float>()[1], -2.0f);
  EXPECT_EQ(w.data<float>()[2], 4.25f);
}

TEST(OnnxImport, InputWithInitializerIsInputWithDefault) {
  auto m = make_model(13);
  auto* g = m.mutable_graph();
  add_input(g, "w", TensorProto::FLOAT, {2});
  add_initializer(g, float_tensor("w", {2}, {3.0f, 4.0f}));
  add_node(g, "Identity", {"w"}, {"y"});
  add_output(g, "y", TensorProto::FLOAT, {2});
  auto r = import(m);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Value* w = r->graph->find_value("w");
  ASSERT_NE(w, nullptr);
  EXPECT_TRUE(w->is_graph_input());
  EXPECT_TRUE(w->is_constant());
  EXPECT_TRUE(r->graph->constants().empty());

  auto program = exec::Program::compile(*r->graph);
  ASSERT_TRUE(program.is_ok()) << program.status().to_string();
  std::vector<Datum> feeds{Datum()};  // use the default
  auto out = exec::execute(**program, feeds, nullptr);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].tensor().data<float>()[1], 4.0f);
}

TEST(OnnxImport, NodesInAnyOrderAreSortedAndNamed) {
  auto m = make_model(17);
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {1});
  add_node(g, "Identity", {"b"}, {"c"});  // unnamed: Identity_0
  add_node(g, "Identity", {"a"}, {"b"}, "second");
  add_node(g, "Identity", {"x"}, {"a"}, "first");
  add_output(g, "c", TensorProto::FLOAT, {1});
  auto r = import(m);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  std::vector<std::string> names;
  for (const auto& n : r->graph->nodes()) names.push_back(n->name());
  EXPECT_EQ(names, (std::vector<std::string>{"first", "second", "Identity_0"}));
  EXPECT_EQ(r->graph->find_value("c")->type().to_string(), "float[1]");
}

TEST(OnnxImport, SymbolicAndUnknownDims) {
  auto m = make_model(17);
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT16, {"batch", 3, UnknownDim{}});
  add_node(g, "Identity", {"x"}, {"y"});
  add_untyped_output(g, "y");
  auto r = import(m);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const Shape& s = r->graph->inputs()[0]->type().shape;
  ASSERT_TRUE(s.rank_known());
  ASSERT_EQ(s.rank(), 3);
  EXPECT_EQ(s[0].symbol, "batch");
  EXPECT_FALSE(s[0].known());
  EXPECT_EQ(s[1].value, 3);
  EXPECT_FALSE(s[2].known());
  EXPECT_TRUE(s[2].symbol.empty());
  // Shape inference carried the type to the untyped output.
  EXPECT_EQ(r->graph->find_value("y")->type().to_string(), r->graph->inputs()[0]->type().to_string());
}

TEST(OnnxImport, SequenceOptionalAndMapTypes) {
  auto m = make_model(17);
  auto* g = m.mutable_graph();
  auto* seq = g->add_input();
  seq->set_name("s");
  set_tensor_type(seq->mutable_type()->mutable_sequence_type()->mutable_elem_type(), TensorProto::INT64, {2});
  auto* opt = g->add_input();
  opt->set_name("o");
  set_tensor_type(opt->mutable_type()->mutable_optional_type()->mutable_elem_type(), TensorProto::FLOAT, {});
  auto* map = g->add_input();
  map->set_name("m");
  map->mutable_type()->mutable_map_type()->set_key_type(TensorProto::STRING);
  set_tensor_type(map->mutable_type()->mutable_map_type()->mutable_value_type(), TensorProto::FLOAT, {});
  auto* sp = g->add_input();
  sp->set_name("sp");
  sp->mutable_type()->mutable_sparse_tensor_type()->set_elem_type(TensorProto::FLOAT);
  add_node(g, "Identity", {"s"}, {"y"});
  add_untyped_output(g, "y");
  auto r = import(m);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto& in = r->graph->inputs();
  EXPECT_EQ(in[0]->type().kind, ir::ValueType::Kind::kSequence);
  EXPECT_EQ(in[0]->type().elem->dtype, DataType::kInt64);
  EXPECT_EQ(in[1]->type().kind, ir::ValueType::Kind::kOptional);
  EXPECT_EQ(in[1]->type().elem->shape.rank(), 0);
  EXPECT_EQ(in[2]->type().kind, ir::ValueType::Kind::kMap);
  EXPECT_EQ(in[2]->type().dtype, DataType::kString);
  EXPECT_EQ(in[2]->type().elem->dtype, DataType::kFloat32);
  EXPECT_EQ(in[3]->type().kind, ir::ValueType::Kind::kSparseTensor);
  EXPECT_FALSE(in[3]->type().shape.rank_known());
}

TEST(OnnxImport, UnknownElemTypeIsAnError) {
  auto m = make_model(17);
  add_input(m.mutable_graph(), "x", 99, {1});
  expect_error(import(m), StatusCode::kInvalidArgument, {"test.onnx: ", "graph input 'x'", "unknown data type 99"});
}

TEST(OnnxImport, NegativeDeclaredDimIsAnError) {
  auto m = make_model(17);
  add_input(m.mutable_graph(), "x", TensorProto::FLOAT, {2, -3});
  expect_error(import(m), StatusCode::kInvalidArgument, {"graph input 'x'", "negative dimension -3"});
}

TEST(OnnxImport, OtherDomainsAreRecorded) {
  auto m = identity_model();
  auto* ml = m.add_opset_import();
  ml->set_domain("ai.onnx.ml");
  ml->set_version(3);
  auto* ms = m.add_opset_import();
  ms->set_domain("com.microsoft");
  ms->set_version(1);
  auto r = import(m);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->opset("ai.onnx.ml"), 3);
  EXPECT_EQ(r->opset("com.microsoft"), 1);
  EXPECT_EQ(r->graph->opset_imports().size(), 3u);
}

TEST(OnnxImport, AiOnnxDomainIsTheDefault) {
  auto m = identity_model();
  m.mutable_opset_import(0)->set_domain("ai.onnx");
  auto r = import(m);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->opset(""), 17);
}

TEST(OnnxImport, UnsupportedOpsets) {
  for (int64_t v : {0, -1, 29, 99}) {
    auto m = identity_model();
    m.mutable_opset_import(0)->set_version(v);
    expect_error(import(m), StatusCode::kUnimplemented,
                 {"test.onnx: unsupported opset " + std::to_string(v) + " (Kiln supports 1 to 28)"});
  }
  for (int64_t v : {7, 28}) {
    auto m = identity_model();
    m.mutable_opset_import(0)->set_version(v);
    EXPECT_TRUE(import(m).is_ok()) << v;
  }
}

TEST(OnnxImport, DefaultDomainNodesNeedAnImport) {
  auto m = identity_model();
  m.mutable_opset_import(0)->set_domain("ai.onnx.ml");
  expect_error(import(m), StatusCode::kInvalidArgument, {"node 'id_x' (Identity)", "no opset_import", "ai.onnx"});
}

TEST(OnnxImport, ConflictingOpsetImports) {
  auto m = identity_model();
  auto* o = m.add_opset_import();
  o->set_version(13);
  expect_error(import(m), StatusCode::kInvalidArgument, {"twice", "17", "13"});
}

TEST(OnnxImport, UnknownOperator) {
  auto m = identity_model();
  add_node(m.mutable_graph(), "FooBar", {"x"}, {"z"}, "mystery");
  expect_error(import(m), StatusCode::kUnimplemented,
               {"test.onnx: node 'mystery' (FooBar): unknown operator 'FooBar' (domain '')"});

  auto m2 = identity_model();
  auto* o = m2.add_opset_import();
  o->set_domain("com.example");
  o->set_version(1);
  add_node(m2.mutable_graph(), "Identity", {"x"}, {"z"}, "custom", "com.example");
  expect_error(import(m2), StatusCode::kUnimplemented,
               {"node 'custom' (com.example.Identity): unknown operator 'Identity' (domain 'com.example')"});
}

TEST(OnnxImport, UnknownOperatorsAllowedForInspection) {
  auto m = identity_model();
  add_node(m.mutable_graph(), "FooBar", {"x", "", "w"}, {"", "z"}, "mystery");
  onnx::ImportOptions options;
  options.allow_unknown_ops = true;
  auto r = import(m, "", options);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Node* n = r->graph->find_value("z")->producer();
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->op_type(), "FooBar");
  ASSERT_EQ(n->num_inputs(), 3u);
  EXPECT_EQ(n->input(1), nullptr);  // omitted optional input
  EXPECT_EQ(n->input(2)->name(), "w");
  ASSERT_EQ(n->num_outputs(), 2u);
  EXPECT_EQ(n->output(0), nullptr);
  // The interpreter refuses what it cannot run.
  auto program = exec::Program::compile(*r->graph);
  expect_error(program, StatusCode::kUnimplemented, {"node 'mystery' (FooBar)", "unknown operator"});
}

TEST(OnnxImport, UndefinedInput) {
  auto m = identity_model();
  add_node(m.mutable_graph(), "Identity", {"missing_w"}, {"z"}, "n");
  auto r = import(m);
  expect_error(r, StatusCode::kInvalidArgument, {});
  EXPECT_EQ(r.status().message(),
            "test.onnx: node 'n' (Identity): input 'missing_w' is not defined (missing initializer?)");
}

TEST(OnnxImport, UndefinedGraphOutput) {
  auto m = identity_model();
  add_output(m.mutable_graph(), "nowhere", TensorProto::FLOAT, {});
  expect_error(import(m), StatusCode::kInvalidArgument, {"output 'nowhere' is not defined"});
}

TEST(OnnxImport, Cycle) {
  auto m = make_model(17);
  auto* g = m.mutable_graph();
  add_input(g, "x", TensorProto::FLOAT, {1});
  add_node(g, "Identity", {"x"}, {"a"}, "ok");
  add_node(g, "Identity", {"c"}, {"b"}, "loop_b");
  add_node(g, "Identity", {"b"}, {"c"}, "loop_c");
  add_output(g, "c", TensorProto::FLOAT, {1});
  expect_error(import(m), StatusCode::kInvalidArgument, {"cycle", "node 'loop_b' (Identity)"});

  auto self = make_model(17);
  add_node(self.mutable_graph(), "Identity", {"s"}, {"s"}, "selfish");
  add_output(self.mutable_graph(), "s", TensorProto::FLOAT, {1});
  expect_error(import(self), StatusCode::kInvalidArgument, {"cycle", "node 'selfish' (Identity)"});
}

TEST(OnnxImport, DuplicateNames) {
  {
    auto m = identity_model();
    add_node(m.mutable_graph(), "Identity", {"x"}, {"y"}, "again");
    expect_error(import(m), StatusCode::kInvalidArgument,
                 {"value 'y' is produced twice", "node 'id_x' (Identity)", "node 'again' (Identity)"});
  }
  {
    auto m = identity_model();
    add_node(m.mutable_graph(), "Identity", {"x"}, {"w"}, "shadow");
    expect_error(import(m), StatusCode::kInvalidArgument,
                 {"node 'shadow' (Identity): output 'w' has the same name as an initializer"});
  }
  {
    auto m = identity_model();
    add_node(m.mutable_graph(), "Identity", {"w"}, {"x"}, "shadow");
    expect_error(import(m), StatusCode::kInvalidArgument, {"output 'x' has the same name as a graph input"});
  }
  {
    auto m = identity_model();
    add_initializer(m.mutable_graph(), float_tensor("w", {1}, {0.0f}));
    expect_error(import(m), StatusCode::kInvalidArgument, {"initializer 'w' is defined twice"});
  }
  {
    auto m = identity_model();
    add_input(m.mutable_graph(), "x", TensorProto::FLOAT, {1});
    expect_error(import(m), StatusCode::kInvalidArgument, {"input 'x' is listed twice"});
  }
}

TEST(OnnxImport, DuplicateAttribute) {
  auto m = identity_model();
  auto* n = m.mutable_graph()->mutable_node(0);
  add_attr_int(n, "k", 1);
  add_attr_int(n, "k", 2);
  expect_error(import(m), StatusCode::kInvalidArgument, {"node 'id_x' (Identity): attribute 'k' is given twice"});
}

TEST(OnnxImport, AllAttributeKinds) {
  auto m = identity_model();
  auto* n = m.mutable_graph()->mutable_node(0);
  add_attr_int(n, "i", 7);
  auto* f = n->add_attribute();
  f->set_name("f");
  f->set_type(pb::AttributeProto::FLOAT);
  f->set_f(0.5f);
  auto* s = n->add_attribute();
  s->set_name("s");
  s->set_type(pb::AttributeProto::STRING);
  s->set_s("hello");
  auto* t = n->add_attribute();
  t->set_name("t");
  t->set_type(pb::AttributeProto::TENSOR);
  *t->mutable_t() = float_tensor("", {2}, {1.0f, 2.0f}, false);
  auto* fs = n->add_attribute();
  fs->set_name("fs");
  fs->set_type(pb::AttributeProto::FLOATS);
  fs->add_floats(1.0f);
  fs->add_floats(2.0f);
  auto* is = n->add_attribute();
  is->set_name("is");
  is->set_type(pb::AttributeProto::INTS);
  is->add_ints(-1);
  auto* ss = n->add_attribute();
  ss->set_name("ss");
  ss->set_type(pb::AttributeProto::STRINGS);
  ss->add_strings("a");
  ss->add_strings("b");
  auto* ts = n->add_attribute();
  ts->set_name("ts");
  ts->set_type(pb::AttributeProto::TENSORS);
  *ts->add_tensors() = float_tensor("", {1}, {3.0f});
  auto* tp = n->add_attribute();
  tp->set_name("tp");
  tp->set_type(pb::AttributeProto::TYPE_PROTO);
  set_tensor_type(tp->mutable_tp(), TensorProto::INT8, {4});
  auto* tps = n->add_attribute();
  tps->set_name("tps");
  tps->set_type(pb::AttributeProto::TYPE_PROTOS);
  set_tensor_type(tps->add_type_protos(), TensorProto::BOOL, {});
  auto* untyped = n->add_attribute();  // IR version 1 style: no type field
  untyped->set_name("old");
  untyped->set_i(3);
  auto* sparse = n->add_attribute();
  sparse->set_name("sp");
  sparse->set_type(pb::AttributeProto::SPARSE_TENSOR);
  *sparse->mutable_sparse_tensor()->mutable_values() = float_tensor("", {1}, {9.0f});
  sparse->mutable_sparse_tensor()->add_dims(3);
  auto* idx = sparse->mutable_sparse_tensor()->mutable_indices();
  idx->set_data_type(TensorProto::INT64);
  idx->add_dims(1);
  idx->add_int64_data(2);

  auto r = import(m);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const ir::Node* node = r->graph->find_value("y")->producer();
  EXPECT_EQ(node->attr_int("i", 0), 7);
  EXPECT_EQ(node->attr_float("f", 0), 0.5f);
  EXPECT_EQ(node->attr_string("s"), "hello");
  ASSERT_NE(node->attr_tensor("t"), nullptr);
  EXPECT_EQ(node->attr_tensor("t")->data<float>()[1], 2.0f);
  EXPECT_EQ(node->attr_floats("fs"), (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(node->attr_ints("is"), (std::vector<int64_t>{-1}));
  EXPECT_EQ(node->attr_strings("ss"), (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(node->attr("ts")->tensors.size(), 1u);
  EXPECT_EQ(node->attr("tp")->types.at(0).to_string(), "int8[4]");
  EXPECT_EQ(node->attr("tps")->types.at(0).dtype, DataType::kBool);
  EXPECT_EQ(node->attr_int("old", 0), 3);
  const ir::Attribute* sp = node->attr("sp");
  ASSERT_EQ(sp->kind, ir::Attribute::Kind::kSparseTensor);
  EXPECT_EQ(sp->t.dims(), (Dims{3}));
  EXPECT_EQ(sp->t.data<float>()[0], 0.0f);
  EXPECT_EQ(sp->t.data<float>()[2], 9.0f);
}

TEST(OnnxImport, RefAttrOutsideFunctionIsAnError) {
  auto m = identity_model();
  auto* a = m.mutable_graph()->mutable_node(0)->add_attribute();
  a->set_name("alpha");
  a->set_type(pb::AttributeProto::FLOAT);
  a->set_ref_attr_name("beta");
  expect_error(import(m), StatusCode::kInvalidArgument, {"node 'id_x' (Identity)", "attribute 'alpha'", "'beta'"});
}

TEST(OnnxImport, TruncatedBytes) {
  auto m = identity_model();
  std::string bytes = serialize(m);
  ASSERT_GT(bytes.size(), 20u);
  for (size_t cut : {bytes.size() / 2, bytes.size() - 1}) {
    auto r = onnx::import_model_bytes(std::string_view(bytes).substr(0, cut), "", "cut.onnx");
    expect_error(r, StatusCode::kInvalidArgument, {"cut.onnx: not a valid ONNX model (protobuf parse failed)"});
  }
}

TEST(OnnxImport, GarbageBytes) {
  const std::string garbage = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01this is not a model";
  auto r = onnx::import_model_bytes(garbage, "", "garbage.onnx");
  expect_error(r, StatusCode::kInvalidArgument, {"garbage.onnx: not a valid ONNX model"});
  // Bytes that parse as an empty ModelProto.
  auto empty = onnx::import_model_bytes("", "", "empty.onnx");
  expect_error(empty, StatusCode::kInvalidArgument, {"empty.onnx: the model has no graph"});
}

TEST(OnnxImport, MissingFile) {
  auto r = onnx::import_model_file("/nonexistent/dir/model.onnx");
  expect_error(r, StatusCode::kNotFound, {"/nonexistent/dir/model.onnx"});
}

TEST(OnnxImport, FromFile) {
  namespace fs = std::filesystem;
  std::string tmpl = (fs::temp_directory_path() / "kiln_import_XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const fs::path path = fs::path(tmpl) / "model.onnx";
  {
    std::ofstream out(path, std::ios::binary);
    out << serialize(identity_model());
  }
  auto r = onnx::import_model_file(path.string());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->source_path, path.string());
  auto dir = onnx::import_model_file(tmpl);
  expect_error(dir, StatusCode::kInvalidArgument, {tmpl, "not a regular file"});
  fs::remove_all(tmpl);
}

}  // namespace
}  // namespace kiln::test
