// Scan (opset 8 and 9+) with Identity bodies.
#include "ops/graph_builder.h"
#include "ops/op_test_util.h"
#include "ops/registry.h"

namespace kiln::test {
namespace {

using ir::Attribute;

void expect_error(const Result<std::vector<Datum>>& r, const std::vector<std::string>& fragments) {
  ASSERT_FALSE(r.is_ok());
  for (const auto& f : fragments) {
    EXPECT_NE(r.status().message().find(f), std::string::npos) << "missing '" << f << "' in: " << r.status().message();
  }
}

// Body (s, x) -> (s_out = x, y = s): the state becomes the current slice and
// the scan output is the previous state, so outputs show the visiting order.
std::shared_ptr<ir::Graph> shift_body(ir::Graph* parent, int64_t opset, ir::ValueType y_type = {}) {
  GraphBuilder body("body", parent, opset);
  body.input("s");
  body.input("x");
  body.node("Identity", {"x"}, {"s_out"});
  body.node("Identity", {"s"}, {"y"});
  body.value("y", std::move(y_type));
  body.output("s_out");
  body.output("y");
  return body.share();
}

// main(s0, x) = Scan(s0, x) -> (s_final, ys) at `opset` with `attrs`.
struct ScanGraph {
  GraphBuilder top;
  ScanGraph(int64_t opset, std::vector<Attribute> attrs, ir::ValueType y_type = {}) : top("main", nullptr, opset) {
    top.input("s0");
    top.input("x");
    attrs.push_back(Attribute::make_int("num_scan_inputs", 1));
    attrs.push_back(Attribute::make_graph("body", shift_body(&top.graph(), opset, std::move(y_type))));
    top.node("Scan", {"s0", "x"}, {"s_final", "ys"}, std::move(attrs));
    top.output("s_final");
    top.output("ys");
  }
};

TEST(Scan, ForwardAlongAxis0) {
  ScanGraph g(16, {});
  auto r = g.top.run({floats({2}, {-1, -2}), floats({3, 2}, {0, 1, 2, 3, 4, 5})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2}, {4, 5});
  expect_near((*r)[1].tensor(), {3, 2}, {-1, -2, 0, 1, 2, 3});
}

TEST(Scan, ReverseInputDirection) {
  ScanGraph g(16, {Attribute::make_ints("scan_input_directions", {1})});
  auto r = g.top.run({floats({2}, {-1, -2}), floats({3, 2}, {0, 1, 2, 3, 4, 5})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2}, {0, 1});
  expect_near((*r)[1].tensor(), {3, 2}, {-1, -2, 4, 5, 2, 3});
}

TEST(Scan, InputAxis1AndNegativeAxis) {
  // x is [2,3]; scanning axis 1 visits the columns [0,3], [1,4], [2,5].
  for (int64_t axis : {1, -1}) {
    ScanGraph g(16, {Attribute::make_ints("scan_input_axes", {axis})});
    auto r = g.top.run({floats({2}, {-1, -2}), floats({2, 3}, {0, 1, 2, 3, 4, 5})});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    expect_near((*r)[0].tensor(), {2}, {2, 5});
    expect_near((*r)[1].tensor(), {3, 2}, {-1, -2, 0, 3, 1, 4});
  }
}

TEST(Scan, OutputAxisAndReverseOutputDirection) {
  ScanGraph g(16, {Attribute::make_ints("scan_output_axes", {1}), Attribute::make_ints("scan_output_directions", {1})});
  auto r = g.top.run({floats({2}, {-1, -2}), floats({3, 2}, {0, 1, 2, 3, 4, 5})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  // Items in order: [-1,-2], [0,1], [2,3]; reversed and stacked as columns.
  expect_near((*r)[1].tensor(), {2, 3}, {2, 0, -1, 3, 1, -2});
  ScanGraph neg(16, {Attribute::make_ints("scan_output_axes", {-1})});
  r = neg.top.run({floats({2}, {-1, -2}), floats({3, 2}, {0, 1, 2, 3, 4, 5})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[1].tensor(), {2, 3}, {-1, 0, 2, -2, 1, 3});
}

TEST(Scan, TwoScanInputsAndStrings) {
  // Body (a, b) -> (b, a): zips two inputs, one reversed, no state.
  GraphBuilder top("main", nullptr, 16);
  top.input("a");
  top.input("b");
  GraphBuilder body("body", &top.graph(), 16);
  body.input("ai");
  body.input("bi");
  body.output("bi");
  body.output("ai");
  top.node("Scan", {"a", "b"}, {"bs", "as"},
           {Attribute::make_int("num_scan_inputs", 2), Attribute::make_ints("scan_input_directions", {0, 1}),
            Attribute::make_graph("body", body.share())});
  top.output("bs");
  top.output("as");
  Tensor strings = Tensor::empty(DataType::kString, {3});
  for (int i = 0; i < 3; ++i) strings.data<std::string>()[i] = std::string(1, static_cast<char>('a' + i));
  auto r = top.run({strings, int64s({3}, {10, 11, 12})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {3}, {12, 11, 10});
  const Tensor& as = (*r)[1].tensor();
  ASSERT_EQ(as.dtype(), DataType::kString);
  EXPECT_EQ(as.data<std::string>()[0], "a");
  EXPECT_EQ(as.data<std::string>()[2], "c");
}

TEST(Scan, ZeroLengthKeepsTheStateAndGivesEmptyOutputs) {
  ScanGraph g(16, {}, tensor_type(DataType::kFloat32, {2}));
  auto r = g.top.run({floats({2}, {-1, -2}), floats({0, 2}, {})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2}, {-1, -2});
  EXPECT_EQ((*r)[1].tensor().debug_string(), "float[0,2]");
  ScanGraph unknown(16, {});
  r = unknown.top.run({floats({2}, {-1, -2}), floats({0, 2}, {})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[1].tensor().debug_string(), "float[0]");
}

TEST(Scan, Opset8BatchWithSequenceLengthsAndReverse) {
  // Expected values from onnxruntime 1.32 on the same model (Scan-8,
  // directions=[1], sequence_lens=[2,1]): each batch entry walks its valid
  // part backwards; scan outputs are zero past the length.
  GraphBuilder top("main", nullptr, 8);
  top.input("lens", tensor_type(DataType::kInt64, {2}));
  top.input("s0");
  top.input("x");
  GraphBuilder body("body", &top.graph(), 8);
  body.input("s");
  body.input("xi");
  body.node("Identity", {"xi"}, {"s_out"});
  body.node("Identity", {"xi"}, {"y"});
  body.output("s_out");
  body.output("y");
  top.node("Scan", {"lens", "s0", "x"}, {"s_final", "ys"},
           {Attribute::make_int("num_scan_inputs", 1), Attribute::make_ints("directions", {1}),
            Attribute::make_graph("body", body.share())});
  top.output("s_final");
  top.output("ys");
  Tensor x = floats({2, 3, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  Tensor s0 = floats({2, 2}, {-1, -1, -1, -1});
  auto r = top.run({int64s({2}, {2, 1}), s0, x});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2, 2}, {0, 1, 6, 7});
  expect_near((*r)[1].tensor(), {2, 3, 2}, {2, 3, 0, 1, 0, 0, 6, 7, 0, 0, 0, 0});
  // Without lengths every entry runs the full length; a zero length keeps the initial state.
  r = top.run({Datum(int64s({2}, {3, 0})), s0, x});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2, 2}, {0, 1, -1, -1});
  expect_near((*r)[1].tensor(), {2, 3, 2}, {4, 5, 2, 3, 0, 1, 0, 0, 0, 0, 0, 0});
  expect_error(top.run({int64s({2}, {4, 1}), s0, x}), {"Scan_0", "sequence_lens[0] is 4"});
  expect_error(top.run({int64s({3}, {1, 1, 1}), s0, x}), {"Scan_0", "sequence_lens", "[2]"});
  expect_error(top.run({int64s({2}, {1, 1}), floats({3, 2}, {0, 0, 0, 0, 0, 0}), x}), {"Scan_0", "batch size"});
}

TEST(Scan, Opset8WithoutSequenceLengths) {
  GraphBuilder top("main", nullptr, 8);
  top.input("s0");
  top.input("x");
  top.node("Scan", {"", "s0", "x"}, {"s_final", "ys"},
           {Attribute::make_int("num_scan_inputs", 1), Attribute::make_graph("body", shift_body(&top.graph(), 8))});
  top.output("s_final");
  top.output("ys");
  auto r = top.run({floats({1, 1}, {-1}), floats({1, 3, 1}, {0, 1, 2})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {1, 1}, {2});
  expect_near((*r)[1].tensor(), {1, 3, 1}, {-1, 0, 1});
}

TEST(Scan, Errors) {
  Tensor s0 = floats({2}, {0, 0});
  Tensor x = floats({3, 2}, {0, 1, 2, 3, 4, 5});
  {
    ScanGraph g(16, {Attribute::make_ints("scan_input_directions", {2})});
    expect_error(g.top.run({s0, x}), {"Scan_0", "scan_input_directions", "2"});
  }
  {
    ScanGraph g(16, {Attribute::make_ints("scan_input_axes", {2})});
    expect_error(g.top.run({s0, x}), {"Scan_0", "scan_input_axes[0]", "out of range"});
  }
  {
    ScanGraph g(16, {Attribute::make_ints("scan_output_axes", {0, 1})});
    expect_error(g.top.run({s0, x}), {"Scan_0", "scan_output_axes has 2 entries"});
  }
  {
    ScanGraph g(16, {});
    expect_error(g.top.run({s0, floats({}, {1})}), {"Scan_0", "scalar"});
  }
  {
    // Scan inputs of different lengths.
    GraphBuilder top("main", nullptr, 16);
    top.input("a");
    top.input("b");
    GraphBuilder body("body", &top.graph(), 16);
    body.input("ai");
    body.input("bi");
    body.output("ai");
    top.node("Scan", {"a", "b"}, {"as"},
             {Attribute::make_int("num_scan_inputs", 2), Attribute::make_graph("body", body.share())});
    top.output("as");
    expect_error(top.run({floats({3}, {1, 2, 3}), floats({2}, {1, 2})}), {"Scan_0", "scan input 1 has length 2"});
  }
  {
    // num_scan_inputs larger than the inputs; body arity mismatch.
    GraphBuilder top("main", nullptr, 16);
    top.input("a");
    GraphBuilder body("body", &top.graph(), 16);
    body.input("ai");
    body.input("extra");
    body.output("ai");
    top.node("Scan", {"a"}, {"as"},
             {Attribute::make_int("num_scan_inputs", 3), Attribute::make_graph("body", body.share())});
    top.output("as");
    expect_error(top.run({floats({3}, {1, 2, 3})}), {"Scan_0", "num_scan_inputs is 3"});
    top.graph().nodes().back()->set_attr(Attribute::make_int("num_scan_inputs", 1));
    expect_error(top.run({floats({3}, {1, 2, 3})}), {"Scan_0", "body takes 2 inputs"});
  }
}

TEST(Scan, ShapeInference) {
  ScanGraph g(16, {Attribute::make_ints("scan_output_axes", {1})}, tensor_type(DataType::kFloat32, {2}));
  g.top.graph().find_value("s0")->set_type(tensor_type(DataType::kFloat32, {2}));
  g.top.graph().find_value("x")->set_type(tensor_type(DataType::kFloat32, {5, 2}));
  ir::Node* node = g.top.graph().nodes().back().get();
  ops::InferContext ctx(*node);
  ASSERT_TRUE(ops::Registry::global().find("", "Scan", 16)->infer(ctx).is_ok());
  EXPECT_EQ(node->output(1)->type().to_string(), "float[2,5]");
}

}  // namespace
}  // namespace kiln::test
