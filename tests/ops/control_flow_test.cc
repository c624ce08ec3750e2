// If and Loop, with bodies built from Identity (the only other op registered
// on this branch) and from the control-flow ops themselves.
#include "ops/graph_builder.h"
#include "ops/op_test_util.h"
#include "ops/registry.h"

namespace kiln::test {
namespace {

using ir::Attribute;
constexpr int64_t kOpset = 17;

const ir::ValueType kBool = tensor_type(DataType::kBool, {});
const ir::ValueType kInt64 = tensor_type(DataType::kInt64, {});

void expect_error(const Result<std::vector<Datum>>& r, const std::vector<std::string>& fragments) {
  ASSERT_FALSE(r.is_ok());
  for (const auto& f : fragments) {
    EXPECT_NE(r.status().message().find(f), std::string::npos) << "missing '" << f << "' in: " << r.status().message();
  }
}

// ---- If ----------------------------------------------------------------------

// main(cond, a, b) = If(cond) then Identity(a) else Identity(b); branches capture a and b.
struct IfGraph {
  GraphBuilder top{"main", nullptr, kOpset};
  IfGraph() {
    top.input("cond", kBool);
    top.input("a", tensor_type(DataType::kFloat32, {2}));
    top.input("b", tensor_type(DataType::kFloat32, {2}));
    GraphBuilder then_b("then", &top.graph(), kOpset);
    then_b.capture("a");
    then_b.node("Identity", {"a"}, {"ta"});
    then_b.value("ta", tensor_type(DataType::kFloat32, {2}));
    then_b.output("ta");
    GraphBuilder else_b("else", &top.graph(), kOpset);
    else_b.capture("b");
    else_b.node("Identity", {"b"}, {"eb"});
    else_b.value("eb", tensor_type(DataType::kFloat32, {Dim::sym("n")}));
    else_b.output("eb");
    top.node(
        "If", {"cond"}, {"out"},
        {Attribute::make_graph("then_branch", then_b.share()), Attribute::make_graph("else_branch", else_b.share())});
    top.output("out");
  }
};

TEST(If, ChoosesBranchAndReadsCapturedValues) {
  IfGraph g;
  Tensor a = floats({2}, {1, 2});
  Tensor b = floats({2}, {3, 4});
  auto t = g.top.run({bool_scalar(true), a, b});
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  expect_near((*t)[0].tensor(), {2}, {1, 2});
  auto f = g.top.run({bool_scalar(false), a, b});
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  expect_near((*f)[0].tensor(), {2}, {3, 4});
  // cond of shape [1] is accepted too.
  auto one = g.top.run({make_tensor(DataType::kBool, {1}, std::vector<int>{1}), a, b});
  ASSERT_TRUE(one.is_ok()) << one.status().to_string();
  expect_near((*one)[0].tensor(), {2}, {1, 2});
}

TEST(If, ShapeInferenceMergesBranches) {
  IfGraph g;
  ir::Node* node = g.top.graph().nodes().back().get();
  const ops::OpDef* def = ops::Registry::global().find("", "If", kOpset);
  ASSERT_NE(def, nullptr);
  ops::InferContext ctx(*node);
  ASSERT_TRUE(def->infer(ctx).is_ok());
  // then gives float[2], else float[n]: the merge is float[?].
  EXPECT_EQ(node->output(0)->type().to_string(), "float[?]");
}

TEST(If, BranchOutputMayBeACaptureOrASequence) {
  GraphBuilder top("main", nullptr, kOpset);
  top.input("cond", kBool);
  top.input("s", ir::ValueType::wrapping(ir::ValueType::Kind::kSequence, tensor_type(DataType::kFloat32)));
  GraphBuilder then_b("then", &top.graph(), kOpset);
  then_b.capture("s");
  then_b.output("s");  // no node: the branch returns the captured value itself
  GraphBuilder else_b("else", &top.graph(), kOpset);
  else_b.capture("s");
  else_b.node("Identity", {"s"}, {"s2"});
  else_b.output("s2");
  top.node(
      "If", {"cond"}, {"out"},
      {Attribute::make_graph("then_branch", then_b.share()), Attribute::make_graph("else_branch", else_b.share())});
  top.output("out");
  Datum seq = Datum::sequence({floats({1}, {5}), floats({2}, {6, 7})}, DataType::kFloat32);
  for (bool c : {true, false}) {
    auto r = top.run({bool_scalar(c), seq});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_TRUE((*r)[0].is_sequence());
    ASSERT_EQ((*r)[0].items().size(), 2u);
    expect_near((*r)[0].items()[1], {2}, {6, 7});
  }
}

TEST(If, ConditionMustBeOneBool) {
  IfGraph g;
  Tensor a = floats({2}, {1, 2});
  expect_error(g.top.run({floats({}, {1}), a, a}), {"If_0", "cond", "bool"});
  expect_error(g.top.run({make_tensor(DataType::kBool, {2}, std::vector<int>{1, 0}), a, a}), {"If_0", "one element"});
}

TEST(If, BranchOutputCountMustMatchTheNode) {
  GraphBuilder top("main", nullptr, kOpset);
  top.input("cond", kBool);
  top.input("a");
  GraphBuilder then_b("then", &top.graph(), kOpset);
  then_b.capture("a");
  then_b.output("a");
  GraphBuilder else_b("else", &top.graph(), kOpset);
  else_b.capture("a");
  else_b.output("a");
  else_b.node("Identity", {"a"}, {"a2"});
  else_b.output("a2");
  top.node(
      "If", {"cond"}, {"out"},
      {Attribute::make_graph("then_branch", then_b.share()), Attribute::make_graph("else_branch", else_b.share())});
  top.output("out");
  expect_error(top.run({bool_scalar(true), floats({1}, {1})}), {"If_0", "else_branch has 2 outputs"});
}

TEST(If, MissingBranchIsAnError) {
  GraphBuilder top("main", nullptr, kOpset);
  top.input("cond", kBool);
  top.node("If", {"cond"}, {"out"});
  top.output("out");
  expect_error(top.run({bool_scalar(true)}), {"If_0", "then_branch"});
}

// ---- Loop --------------------------------------------------------------------

// Body (i, cond_in, v) -> (cond_in, v, i): carries v unchanged and emits the
// iteration number as a scan output.
std::shared_ptr<ir::Graph> counting_body(ir::Graph* parent, ir::ValueType scan_type = kInt64) {
  GraphBuilder body("body", parent, kOpset);
  body.input("i", kInt64);
  body.input("cond_in", kBool);
  body.input("v_in");
  body.node("Identity", {"cond_in"}, {"cond_out"});
  body.node("Identity", {"v_in"}, {"v_out"});
  body.node("Identity", {"i"}, {"scan"});
  body.value("scan", std::move(scan_type));
  body.output("cond_out");
  body.output("v_out");
  body.output("scan");
  return body.share();
}

struct LoopGraph {
  GraphBuilder top{"main", nullptr, kOpset};
  // inputs: names of M and cond ("" to omit); the loop carries "v".
  LoopGraph(bool with_m, bool with_cond, ir::ValueType scan_type = kInt64) {
    if (with_m) top.input("M", kInt64);
    if (with_cond) top.input("cond", kBool);
    top.input("v");
    top.node("Loop", {with_m ? "M" : "", with_cond ? "cond" : "", "v"}, {"v_final", "iters"},
             {Attribute::make_graph("body", counting_body(&top.graph(), std::move(scan_type)))});
    top.output("v_final");
    top.output("iters");
  }
};

TEST(Loop, TripCountOnly) {
  LoopGraph g(true, false);
  auto r = g.top.run({int64_scalar(3), floats({2}, {7, 8})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2}, {7, 8});
  EXPECT_EQ((*r)[1].tensor().dtype(), DataType::kInt64);
  expect_near((*r)[1].tensor(), {3}, {0, 1, 2});
}

TEST(Loop, TripCountAndCond) {
  LoopGraph g(true, true);
  auto r = g.top.run({int64_scalar(4), bool_scalar(true), floats({1}, {1})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[1].tensor(), {4}, {0, 1, 2, 3});
  // M given as a [1] tensor.
  auto m1 = g.top.run({int64s({1}, {2}), bool_scalar(true), floats({1}, {1})});
  ASSERT_TRUE(m1.is_ok()) << m1.status().to_string();
  expect_near((*m1)[1].tensor(), {2}, {0, 1});
}

TEST(Loop, ZeroIterationsGiveInitialValuesAndEmptyScans) {
  LoopGraph g(true, true);
  // cond false up front, M = 0, M negative: no iteration runs.
  for (auto [m, c] : {std::pair<int64_t, bool>{5, false}, {0, true}, {-3, true}}) {
    auto r = g.top.run({int64_scalar(m), bool_scalar(c), floats({2}, {1, 2})});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    expect_near((*r)[0].tensor(), {2}, {1, 2});
    // The body's scan output is statically int64[]: the empty stack is int64[0].
    EXPECT_EQ((*r)[1].tensor().debug_string(), "int64[0]");
  }
  // Statically int64[2] items: int64[0,2]; unknown type: float[0].
  LoopGraph shaped(true, false, tensor_type(DataType::kInt64, {2}));
  auto r = shaped.top.run({int64_scalar(0), floats({1}, {1})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[1].tensor().debug_string(), "int64[0,2]");
  LoopGraph unknown(true, false, ir::ValueType{});
  r = unknown.top.run({int64_scalar(0), floats({1}, {1})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[1].tensor().debug_string(), "float[0]");
}

// Body (i, cond_in, a, b) -> (a, b, a, i): the condition comes from a carried
// value, and a and b swap each iteration.
std::shared_ptr<ir::Graph> swapping_body(ir::Graph* parent) {
  GraphBuilder body("body", parent, kOpset);
  body.input("i", kInt64);
  body.input("cond_in", kBool);
  body.input("a_in");
  body.input("b_in");
  body.node("Identity", {"a_in"}, {"cond_out"});
  body.node("Identity", {"b_in"}, {"a_out"});
  body.node("Identity", {"a_in"}, {"b_out"});
  body.node("Identity", {"i"}, {"scan"});
  for (const char* n : {"cond_out", "a_out", "b_out", "scan"}) body.output(n);
  return body.share();
}

TEST(Loop, ConditionFromTheBodyStopsTheLoop) {
  GraphBuilder top("main", nullptr, kOpset);
  top.input("M", kInt64);
  top.input("cond", kBool);
  top.input("a");
  top.input("b");
  top.node("Loop", {"M", "cond", "a", "b"}, {"a_final", "b_final", "iters"},
           {Attribute::make_graph("body", swapping_body(&top.graph()))});
  for (const char* n : {"a_final", "b_final", "iters"}) top.output(n);
  // Iteration 0 returns cond = a = true; iteration 1 returns cond = false.
  auto r = top.run({int64_scalar(10), bool_scalar(true), bool_scalar(true), bool_scalar(false)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[2].tensor(), {2}, {0, 1});
  expect_near((*r)[0].tensor(), {}, {1});
  expect_near((*r)[1].tensor(), {}, {0});
  // Without a cond input the body's cond is ignored (ONNX's for-loop form).
  GraphBuilder no_cond("main", nullptr, kOpset);
  no_cond.input("M", kInt64);
  no_cond.input("a");
  no_cond.input("b");
  no_cond.node("Loop", {"M", "", "a", "b"}, {"a_final", "b_final", "iters"},
               {Attribute::make_graph("body", swapping_body(&no_cond.graph()))});
  for (const char* n : {"a_final", "b_final", "iters"}) no_cond.output(n);
  r = no_cond.run({int64_scalar(3), bool_scalar(false), bool_scalar(false)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[2].tensor(), {3}, {0, 1, 2});
}

TEST(Loop, CondOnlyIsAWhileLoop) {
  GraphBuilder top("main", nullptr, kOpset);
  top.input("cond", kBool);
  top.input("a");
  top.input("b");
  top.node("Loop", {"", "cond", "a", "b"}, {"a_final", "b_final", "iters"},
           {Attribute::make_graph("body", swapping_body(&top.graph()))});
  for (const char* n : {"a_final", "b_final", "iters"}) top.output(n);
  auto r = top.run({bool_scalar(true), bool_scalar(false), bool_scalar(true)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[2].tensor(), {1}, {0});
}

TEST(Loop, ScanOutputsStackTensorsAndCarriedValuesMayBeSequences) {
  GraphBuilder top("main", nullptr, kOpset);
  top.input("M", kInt64);
  top.input("x");
  top.input("s");
  GraphBuilder body("body", &top.graph(), kOpset);
  body.input("i", kInt64);
  body.input("c", kBool);
  body.input("x_in");
  body.input("s_in");
  body.node("Identity", {"c"}, {"c_out"});
  body.node("Identity", {"x_in"}, {"x_out"});
  body.node("Identity", {"s_in"}, {"s_out"});
  body.node("Identity", {"x_in"}, {"x_scan"});
  for (const char* n : {"c_out", "x_out", "s_out", "x_scan"}) body.output(n);
  top.node("Loop", {"M", "", "x", "s"}, {"x_final", "s_final", "xs"}, {Attribute::make_graph("body", body.share())});
  for (const char* n : {"x_final", "s_final", "xs"}) top.output(n);
  Datum seq = Datum::sequence({int64s({1}, {4})}, DataType::kInt64);
  auto r = top.run({int64_scalar(2), floats({2, 1}, {1, 2}), seq});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[2].tensor(), {2, 2, 1}, {1, 2, 1, 2});
  ASSERT_TRUE((*r)[1].is_sequence());
  EXPECT_EQ((*r)[1].items().size(), 1u);
}

TEST(Loop, NestedIfReadsAValueOfTheOutermostGraph) {
  // main(x, M): y = Identity(x); z = Identity(y)  -- y's last direct use
  //   Loop(M) body(i, c, v): w = If(c) then { Identity(y) } else { Identity(y) }
  // Only the branches declare y as a capture; the loop body does not, so the
  // interpreter must keep y alive for the grandchild graphs.
  for (bool body_declares_capture : {false, true}) {
    GraphBuilder top("main", nullptr, kOpset);
    top.input("x");
    top.input("M", kInt64);
    top.node("Identity", {"x"}, {"y"});
    top.node("Identity", {"y"}, {"z"});
    GraphBuilder body("body", &top.graph(), kOpset);
    body.input("i", kInt64);
    body.input("c", kBool);
    body.input("v_in");
    if (body_declares_capture) body.capture("y");
    auto branch = [&](const char* name) {
      GraphBuilder b(name, &body.graph(), kOpset);
      b.capture("y");
      b.node("Identity", {"y"}, {std::string(name) + "_y"});
      b.output(std::string(name) + "_y");
      return b.share();
    };
    body.node(
        "If", {"c"}, {"w"},
        {Attribute::make_graph("then_branch", branch("then")), Attribute::make_graph("else_branch", branch("else"))});
    body.node("Identity", {"c"}, {"c_out"});
    body.node("Identity", {"w"}, {"v_out"});
    body.node("Identity", {"w"}, {"w_scan"});
    for (const char* n : {"c_out", "v_out", "w_scan"}) body.output(n);
    top.node("Loop", {"M", "", "z"}, {"v_final", "ws"}, {Attribute::make_graph("body", body.share())});
    top.output("v_final");
    top.output("ws");
    auto r = top.run({floats({2}, {3, 4}), int64_scalar(2)});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    expect_near((*r)[0].tensor(), {2}, {3, 4});
    expect_near((*r)[1].tensor(), {2, 2}, {3, 4, 3, 4});
  }
}

TEST(Loop, NestedLoopCapturesTheOuterIterationNumber) {
  // Outer Loop(2) body(i, c): inner Loop(3) body(j, c2) emits the outer i.
  GraphBuilder top("main", nullptr, kOpset);
  top.input("M", kInt64);
  top.input("N", kInt64);
  GraphBuilder outer("outer", &top.graph(), kOpset);
  outer.input("i", kInt64);
  outer.input("c", kBool);
  outer.capture("N");
  GraphBuilder inner("inner", &outer.graph(), kOpset);
  inner.input("j", kInt64);
  inner.input("c2", kBool);
  inner.capture("i");
  inner.node("Identity", {"c2"}, {"c2_out"});
  inner.node("Identity", {"i"}, {"i_scan"});
  inner.output("c2_out");
  inner.output("i_scan");
  outer.node("Loop", {"N", ""}, {"row"}, {Attribute::make_graph("body", inner.share())});
  outer.node("Identity", {"c"}, {"c_out"});
  outer.output("c_out");
  outer.output("row");
  top.node("Loop", {"M", ""}, {"rows"}, {Attribute::make_graph("body", outer.share())});
  top.output("rows");
  auto r = top.run({int64_scalar(2), int64_scalar(3)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2, 3}, {0, 0, 0, 1, 1, 1});
}

TEST(Loop, ErrorsNameTheNode) {
  {
    LoopGraph g(false, false);
    expect_error(g.top.run({floats({1}, {1})}), {"Loop_0", "M and cond are both absent"});
  }
  {
    LoopGraph g(true, true);
    expect_error(g.top.run({int64_scalar(2), floats({}, {1}), floats({1}, {1})}), {"Loop_0", "cond", "bool"});
    expect_error(g.top.run({floats({}, {2}), bool_scalar(true), floats({1}, {1})}), {"Loop_0", "'M'"});
  }
  {
    // The body's cond output is not a bool.
    GraphBuilder top("main", nullptr, kOpset);
    top.input("M", kInt64);
    top.input("cond", kBool);
    top.input("v");
    GraphBuilder body("body", &top.graph(), kOpset);
    body.input("i", kInt64);
    body.input("c", kBool);
    body.input("v_in");
    body.output("v_in");  // cond_out = v (a float)
    body.output("v_in");
    top.node("Loop", {"M", "cond", "v"}, {"v_final"}, {Attribute::make_graph("body", body.share())});
    top.output("v_final");
    expect_error(top.run({int64_scalar(2), bool_scalar(true), floats({1}, {1})}), {"Loop_0", "body output 0", "bool"});
  }
  {
    // Body input count does not match the carried values.
    GraphBuilder top("main", nullptr, kOpset);
    top.input("M", kInt64);
    top.input("v");
    GraphBuilder body("body", &top.graph(), kOpset);
    body.input("i", kInt64);
    body.input("c", kBool);
    body.output("c");
    top.node("Loop", {"M", "", "v"}, {"v_final"}, {Attribute::make_graph("body", body.share())});
    top.output("v_final");
    expect_error(top.run({int64_scalar(1), floats({1}, {1})}), {"Loop_0", "body takes 2 inputs", "carries 1"});
  }
  {
    // Node output count does not match the body's.
    GraphBuilder top("main", nullptr, kOpset);
    top.input("M", kInt64);
    top.input("v");
    top.node("Loop", {"M", "", "v"}, {"v_final"}, {Attribute::make_graph("body", counting_body(&top.graph()))});
    top.output("v_final");
    expect_error(top.run({int64_scalar(1), floats({1}, {1})}), {"Loop_0", "1 outputs", "1 scan outputs"});
  }
  {
    // A scan output whose shape changes between iterations: carried a and b
    // of different shapes swap, and a is emitted.
    GraphBuilder top("main", nullptr, kOpset);
    top.input("M", kInt64);
    top.input("a");
    top.input("b");
    GraphBuilder body("body", &top.graph(), kOpset);
    body.input("i", kInt64);
    body.input("c", kBool);
    body.input("a_in");
    body.input("b_in");
    body.node("Identity", {"a_in"}, {"a_scan"});
    for (const char* n : {"c", "b_in", "a_in", "a_scan"}) body.output(n);
    top.node("Loop", {"M", "", "a", "b"}, {"a_f", "b_f", "as"}, {Attribute::make_graph("body", body.share())});
    for (const char* n : {"a_f", "b_f", "as"}) top.output(n);
    expect_error(top.run({int64_scalar(3), floats({1}, {1}), floats({2}, {1, 2})}),
                 {"Loop_0", "scan output 0", "float[2]", "float[1]"});
  }
}

TEST(Loop, ErrorInsideTheBodyCarriesBothNodes) {
  // The body holds a Loop with neither M nor cond.
  GraphBuilder top("main", nullptr, kOpset);
  top.input("M", kInt64);
  GraphBuilder body("body", &top.graph(), kOpset);
  body.input("i", kInt64);
  body.input("c", kBool);
  GraphBuilder inner("inner", &body.graph(), kOpset);
  inner.input("j", kInt64);
  inner.input("c2", kBool);
  inner.output("c2");
  body.node("Loop", {"", ""}, {}, {Attribute::make_graph("body", inner.share())})->set_name("bad_loop");
  body.output("c");
  top.node("Loop", {"M", ""}, {}, {Attribute::make_graph("body", body.share())});
  expect_error(top.run({int64_scalar(1)}), {"Loop_0", "iteration 0", "bad_loop", "both absent"});
}

TEST(Loop, ShapeInference) {
  LoopGraph g(true, false, tensor_type(DataType::kInt64, {3}));
  g.top.graph().find_value("v")->set_type(tensor_type(DataType::kFloat32, {2}));
  ir::Node* node = g.top.graph().nodes().back().get();
  ops::InferContext ctx(*node);
  ASSERT_TRUE(ops::Registry::global().find("", "Loop", kOpset)->infer(ctx).is_ok());
  // v_out's type is unknown in the body: v_final stays unknown; the scan is int64[?,3].
  EXPECT_EQ(node->output(0)->type().to_string(), "?");
  EXPECT_EQ(node->output(1)->type().to_string(), "int64[?,3]");
}

}  // namespace
}  // namespace kiln::test
