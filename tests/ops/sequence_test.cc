// The sequence family: Sequence*, SplitToSequence, ConcatFromSequence,
// SequenceMap and Optional*. Graphs take sequence/optional inputs through
// GraphBuilder; expected values were worked out by hand (they are small
// enough) and agree with onnx.reference.ReferenceEvaluator.
#include "ops/graph_builder.h"
#include "ops/op_test_util.h"
#include "ops/registry.h"

namespace kiln::test {
namespace {

using ir::Attribute;
using Kind = ir::ValueType::Kind;

ir::ValueType seq_of(DataType dtype) { return ir::ValueType::wrapping(Kind::kSequence, tensor_type(dtype)); }
ir::ValueType opt_of(ir::ValueType inner) { return ir::ValueType::wrapping(Kind::kOptional, std::move(inner)); }

Datum float_seq(std::vector<Tensor> items) { return Datum::sequence(std::move(items), DataType::kFloat32); }

void expect_error(const Result<std::vector<Datum>>& r, const std::vector<std::string>& fragments) {
  ASSERT_FALSE(r.is_ok()) << "expected an error";
  for (const auto& f : fragments) {
    EXPECT_NE(r.status().message().find(f), std::string::npos) << "missing '" << f << "' in: " << r.status().message();
  }
}

// One node `op` on graph inputs named in0, in1, ... of the given types ("" in
// `present` leaves an optional input out); outputs out0...
struct OneNode {
  GraphBuilder g;
  OneNode(const std::string& op, int64_t opset, const std::vector<ir::ValueType>& types, int outputs = 1,
          std::vector<Attribute> attrs = {}, const std::vector<bool>& present = {})
      : g("main", nullptr, opset) {
    std::vector<std::string> ins;
    for (size_t i = 0; i < types.size(); ++i) {
      std::string name = "in" + std::to_string(i);
      if (i < present.size() && !present[i]) {
        ins.emplace_back();
        continue;
      }
      g.input(name, types[i]);
      ins.push_back(name);
    }
    std::vector<std::string> outs;
    for (int i = 0; i < outputs; ++i) outs.push_back("out" + std::to_string(i));
    g.node(op, ins, outs, std::move(attrs));
    for (const auto& o : outs) g.output(o);
  }
  Result<std::vector<Datum>> run(const std::vector<Datum>& feeds) { return g.run(feeds); }
};

// ---- SequenceEmpty / Construct / Insert / At / Erase / Length ------------------

TEST(SequenceEmpty, DefaultsToFloatAndTakesDtype) {
  OneNode f("SequenceEmpty", 11, {});
  auto r = f.run({});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE((*r)[0].is_sequence());
  EXPECT_TRUE((*r)[0].items().empty());
  EXPECT_EQ((*r)[0].elem_type(), DataType::kFloat32);

  OneNode i("SequenceEmpty", 11, {}, 1, {Attribute::make_int("dtype", 7)});
  r = i.run({});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].elem_type(), DataType::kInt64);

  OneNode bad("SequenceEmpty", 11, {}, 1, {Attribute::make_int("dtype", 99)});
  expect_error(bad.run({}), {"SequenceEmpty", "dtype", "99"});
}

TEST(SequenceConstruct, BuildsInOrderAndChecksTypes) {
  OneNode n("SequenceConstruct", 11, {tensor_type(DataType::kFloat32), tensor_type(DataType::kFloat32)});
  auto r = n.run({floats({1}, {1}), floats({2}, {2, 3})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ((*r)[0].items().size(), 2u);
  expect_near((*r)[0].items()[1], {2}, {2, 3});
  EXPECT_EQ((*r)[0].elem_type(), DataType::kFloat32);

  OneNode mixed("SequenceConstruct", 11, {tensor_type(DataType::kFloat32), tensor_type(DataType::kInt64)});
  expect_error(mixed.run({floats({1}, {1}), int64s({1}, {2})}), {"SequenceConstruct", "int64", "float"});
}

TEST(SequenceInsert, AtEndFrontAndNegativePosition) {
  Datum s = float_seq({floats({1}, {1}), floats({1}, {2})});
  OneNode back("SequenceInsert", 11, {seq_of(DataType::kFloat32), tensor_type(DataType::kFloat32)});
  auto r = back.run({s, floats({1}, {9})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ((*r)[0].items().size(), 3u);
  expect_near((*r)[0].items()[2], {1}, {9});
  // The input sequence is not modified.
  EXPECT_EQ(s.items().size(), 2u);

  OneNode at("SequenceInsert", 11,
             {seq_of(DataType::kFloat32), tensor_type(DataType::kFloat32), tensor_type(DataType::kInt64)});
  for (auto [pos, where] : std::vector<std::pair<int64_t, size_t>>{{0, 0}, {-1, 1}, {-2, 0}, {2, 2}}) {
    r = at.run({s, floats({1}, {9}), int64_scalar(pos)});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_EQ((*r)[0].items().size(), 3u);
    expect_near((*r)[0].items()[where], {1}, {9});
  }
  // int32 positions too.
  OneNode at32("SequenceInsert", 11,
               {seq_of(DataType::kFloat32), tensor_type(DataType::kFloat32), tensor_type(DataType::kInt32)});
  r = at32.run({s, floats({1}, {9}), Tensor::scalar<int32_t>(DataType::kInt32, 1)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].items()[1], {1}, {9});
}

TEST(SequenceInsert, Errors) {
  Datum s = float_seq({floats({1}, {1})});
  OneNode at("SequenceInsert", 11,
             {seq_of(DataType::kFloat32), tensor_type(DataType::kFloat32), tensor_type(DataType::kInt64)});
  expect_error(at.run({s, floats({1}, {9}), int64_scalar(2)}), {"SequenceInsert", "position 2", "out of range"});
  expect_error(at.run({s, floats({1}, {9}), int64_scalar(-2)}), {"position -2"});
  expect_error(at.run({s, floats({1}, {9}), int64s({2}, {0, 1})}), {"position", "scalar"});
  expect_error(at.run({s, floats({1}, {9}), floats({}, {0})}), {"position", "int32 or int64"});
  OneNode typed("SequenceInsert", 11, {seq_of(DataType::kFloat32), tensor_type(DataType::kInt64)});
  expect_error(typed.run({s, int64s({1}, {9})}), {"int64", "holds float"});
  // The first input must be a sequence.
  OneNode plain("SequenceInsert", 11, {tensor_type(DataType::kFloat32), tensor_type(DataType::kFloat32)});
  expect_error(plain.run({floats({1}, {1}), floats({1}, {9})}), {"input_sequence", "sequence"});
}

TEST(SequenceInsert, IntoEmptySequenceTakesTheDtype) {
  OneNode n("SequenceInsert", 11, {seq_of(DataType::kInt64), tensor_type(DataType::kInt64)});
  auto r = n.run({Datum::sequence({}, DataType::kInt64), int64s({0}, {})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ((*r)[0].items().size(), 1u);
  EXPECT_EQ((*r)[0].items()[0].numel(), 0);
}

TEST(SequenceAt, PositiveNegativeAndOutOfRange) {
  Datum s = float_seq({floats({1}, {1}), floats({2}, {2, 3}), floats({}, {4})});
  OneNode n("SequenceAt", 11, {seq_of(DataType::kFloat32), tensor_type(DataType::kInt64)});
  auto r = n.run({s, int64_scalar(1)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2}, {2, 3});
  r = n.run({s, int64_scalar(-1)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {}, {4});
  expect_error(n.run({s, int64_scalar(3)}), {"SequenceAt", "position 3", "[-3, 2]"});
  expect_error(n.run({s, int64_scalar(-4)}), {"position -4"});
  expect_error(n.run({Datum::sequence({}, DataType::kFloat32), int64_scalar(0)}), {"out of range"});
}

TEST(SequenceErase, DefaultLastAndPosition) {
  Datum s = float_seq({floats({1}, {1}), floats({1}, {2}), floats({1}, {3})});
  OneNode last("SequenceErase", 11, {seq_of(DataType::kFloat32)});
  auto r = last.run({s});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ((*r)[0].items().size(), 2u);
  expect_near((*r)[0].items()[1], {1}, {2});

  OneNode at("SequenceErase", 11, {seq_of(DataType::kFloat32), tensor_type(DataType::kInt64)});
  r = at.run({s, int64_scalar(-3)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ((*r)[0].items().size(), 2u);
  expect_near((*r)[0].items()[0], {1}, {2});
  expect_error(at.run({s, int64_scalar(3)}), {"SequenceErase", "out of range"});

  // Erasing the only element leaves an empty sequence that keeps its type.
  r = last.run({Datum::sequence({int64s({1}, {1})}, DataType::kInt64)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE((*r)[0].items().empty());
  EXPECT_EQ((*r)[0].elem_type(), DataType::kInt64);
  expect_error(last.run({Datum::sequence({}, DataType::kFloat32)}), {"SequenceErase", "empty sequence"});
}

TEST(SequenceLength, CountsItems) {
  OneNode n("SequenceLength", 11, {seq_of(DataType::kFloat32)});
  auto r = n.run({float_seq({floats({1}, {1}), floats({0}, {})})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].tensor().dtype(), DataType::kInt64);
  expect_near((*r)[0].tensor(), {}, {2});
  r = n.run({Datum::sequence({}, DataType::kFloat32)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {}, {0});
  expect_error(n.run({floats({1}, {1})}), {"SequenceLength", "sequence", "tensor"});
}

// ---- SplitToSequence / ConcatFromSequence ------------------------------------

TEST(SplitToSequence, NoSplitKeepdimsAndNot) {
  Tensor x = floats({2, 3}, {1, 2, 3, 4, 5, 6});
  OneNode keep("SplitToSequence", 11, {tensor_type(DataType::kFloat32)}, 1, {Attribute::make_int("axis", 1)});
  auto r = keep.run({x});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ((*r)[0].items().size(), 3u);
  expect_near((*r)[0].items()[2], {2, 1}, {3, 6});
  OneNode drop("SplitToSequence", 11, {tensor_type(DataType::kFloat32)}, 1,
               {Attribute::make_int("axis", -1), Attribute::make_int("keepdims", 0)});
  r = drop.run({x});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ((*r)[0].items().size(), 3u);
  expect_near((*r)[0].items()[1], {2}, {2, 5});
  // A zero-length axis gives an empty sequence of the input's type.
  r = keep.run({floats({2, 0}, {})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE((*r)[0].items().empty());
  EXPECT_EQ((*r)[0].elem_type(), DataType::kFloat32);
}

TEST(SplitToSequence, ScalarAndListSplit) {
  Tensor x = int64s({5, 1}, {0, 1, 2, 3, 4});
  OneNode n("SplitToSequence", 11, {tensor_type(DataType::kInt64), tensor_type(DataType::kInt64)}, 1,
            {Attribute::make_int("keepdims", 0)});  // ignored when split is given
  auto r = n.run({x, int64_scalar(2)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ((*r)[0].items().size(), 3u);
  expect_near((*r)[0].items()[1], {2, 1}, {2, 3});
  expect_near((*r)[0].items()[2], {1, 1}, {4});
  r = n.run({x, int64s({3}, {1, 0, 4})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ((*r)[0].items().size(), 3u);
  EXPECT_EQ(dims_to_string((*r)[0].items()[1].dims()), dims_to_string({0, 1}));
  expect_near((*r)[0].items()[2], {4, 1}, {1, 2, 3, 4});

  expect_error(n.run({x, int64s({2}, {1, 2})}), {"SplitToSequence", "sum to 3", "length 5"});
  expect_error(n.run({x, int64s({2}, {6, -1})}), {"negative"});
  expect_error(n.run({x, int64_scalar(0)}), {"positive"});
  expect_error(n.run({x, int64s({1, 1}, {5})}), {"scalar or 1-D"});
  expect_error(n.run({x, floats({}, {1})}), {"int32 or int64"});
  OneNode bad_axis("SplitToSequence", 11, {tensor_type(DataType::kInt64)}, 1, {Attribute::make_int("axis", 2)});
  expect_error(bad_axis.run({x}), {"SplitToSequence", "axis"});
  expect_error(bad_axis.run({int64_scalar(1)}), {"rank >= 1"});
}

TEST(ConcatFromSequence, ConcatAndNewAxis) {
  Datum s = float_seq({floats({2, 1}, {1, 2}), floats({2, 2}, {3, 4, 5, 6})});
  OneNode cat("ConcatFromSequence", 11, {seq_of(DataType::kFloat32)}, 1, {Attribute::make_int("axis", -1)});
  auto r = cat.run({s});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2, 3}, {1, 3, 4, 2, 5, 6});

  Datum same = float_seq({floats({2}, {1, 2}), floats({2}, {3, 4})});
  OneNode stack0("ConcatFromSequence", 11, {seq_of(DataType::kFloat32)}, 1,
                 {Attribute::make_int("axis", 0), Attribute::make_int("new_axis", 1)});
  r = stack0.run({same});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2, 2}, {1, 2, 3, 4});
  // new_axis allows axis = rank (here -1 means the new last axis).
  OneNode stack_last("ConcatFromSequence", 11, {seq_of(DataType::kFloat32)}, 1,
                     {Attribute::make_int("axis", -1), Attribute::make_int("new_axis", 1)});
  r = stack_last.run({same});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2, 2}, {1, 3, 2, 4});
  // Scalars stack with new_axis.
  r = stack0.run({float_seq({floats({}, {7}), floats({}, {8})})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2}, {7, 8});
}

TEST(ConcatFromSequence, Errors) {
  OneNode cat("ConcatFromSequence", 11, {seq_of(DataType::kFloat32)}, 1, {Attribute::make_int("axis", 0)});
  expect_error(cat.run({Datum::sequence({}, DataType::kFloat32)}), {"ConcatFromSequence", "empty sequence"});
  expect_error(cat.run({float_seq({floats({2, 1}, {1, 2}), floats({1, 2}, {3, 4})})}), {"may differ only on axis 0"});
  expect_error(cat.run({float_seq({floats({2}, {1, 2}), floats({1, 1}, {3})})}), {"rank"});
  expect_error(cat.run({float_seq({floats({}, {1})})}), {"scalars"});
  OneNode far("ConcatFromSequence", 11, {seq_of(DataType::kFloat32)}, 1, {Attribute::make_int("axis", 2)});
  expect_error(far.run({float_seq({floats({2}, {1, 2})})}), {"axis"});
  OneNode no_axis("ConcatFromSequence", 11, {seq_of(DataType::kFloat32)});
  expect_error(no_axis.run({float_seq({floats({2}, {1, 2})})}), {"'axis' is required"});
  OneNode bad_new("ConcatFromSequence", 11, {seq_of(DataType::kFloat32)}, 1,
                  {Attribute::make_int("axis", 0), Attribute::make_int("new_axis", 2)});
  expect_error(bad_new.run({float_seq({floats({2}, {1, 2})})}), {"new_axis"});
}

// ---- SequenceMap ---------------------------------------------------------------

// main(s, extra) = SequenceMap(s, extra) with body(x, e) = (Identity(x), Shape(e) ... ) built by the test.
TEST(SequenceMap, MapsWithTensorAndSequenceExtras) {
  GraphBuilder top("main", nullptr, 17);
  top.input("s", seq_of(DataType::kFloat32));
  top.input("t", tensor_type(DataType::kFloat32));
  top.input("u", seq_of(DataType::kFloat32));
  GraphBuilder body("body", &top.graph(), 17);
  body.input("x", tensor_type(DataType::kFloat32));
  body.input("y", tensor_type(DataType::kFloat32));
  body.input("z", tensor_type(DataType::kFloat32));
  body.node("Add", {"x", "y"}, {"xy"});
  body.node("Shape", {"z"}, {"zs"});
  body.output("xy");
  body.output("zs");
  top.node("SequenceMap", {"s", "t", "u"}, {"o1", "o2"}, {Attribute::make_graph("body", body.share())});
  top.output("o1");
  top.output("o2");
  Datum s = float_seq({floats({2}, {1, 2}), floats({1}, {3})});
  Datum u = float_seq({floats({3}, {0, 0, 0}), floats({1, 4}, {0, 0, 0, 0})});
  auto r = top.run({s, floats({1}, {10}), u});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE((*r)[0].is_sequence());
  ASSERT_EQ((*r)[0].items().size(), 2u);
  expect_near((*r)[0].items()[0], {2}, {11, 12});
  expect_near((*r)[0].items()[1], {1}, {13});
  EXPECT_EQ((*r)[1].elem_type(), DataType::kInt64);
  expect_near((*r)[1].items()[1], {2}, {1, 4});

  // Sequence extras must be as long as the mapped sequence.
  expect_error(top.run({s, floats({1}, {10}), float_seq({floats({1}, {0})})}),
               {"SequenceMap", "additional input 2", "1 tensors", "has 2"});
  // An empty input gives empty outputs, typed from the body.
  r = top.run({Datum::sequence({}, DataType::kFloat32), floats({1}, {10}), Datum::sequence({}, DataType::kFloat32)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE((*r)[0].items().empty());
  // Errors in the body name the element.
  expect_error(top.run({float_seq({floats({2}, {1, 2})}), floats({3}, {1, 2, 3}), float_seq({floats({1}, {0})})}),
               {"SequenceMap", "element 0"});
}

TEST(SequenceMap, BodyArityMustMatch) {
  GraphBuilder top("main", nullptr, 17);
  top.input("s", seq_of(DataType::kFloat32));
  GraphBuilder body("body", &top.graph(), 17);
  body.input("x");
  body.input("y");
  body.node("Identity", {"x"}, {"o"});
  body.output("o");
  top.node("SequenceMap", {"s"}, {"out"}, {Attribute::make_graph("body", body.share())});
  top.output("out");
  expect_error(top.run({float_seq({floats({1}, {1})})}), {"SequenceMap", "body takes 2 inputs", "node has 1"});
}

// ---- Optional, OptionalHasElement, OptionalGetElement ---------------------------

TEST(Optional, WrapsInputOrIsEmptyOfType) {
  OneNode wrap("Optional", 15, {tensor_type(DataType::kFloat32)});
  auto r = wrap.run({floats({1}, {5})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE((*r)[0].is_optional());
  ASSERT_NE((*r)[0].optional_value(), nullptr);
  expect_near((*r)[0].optional_value()->tensor(), {1}, {5});

  Attribute type;
  type.name = "type";
  type.kind = Attribute::Kind::kTypeProto;
  type.types = {tensor_type(DataType::kInt64)};
  OneNode empty("Optional", 15, {}, 1, {type});
  r = empty.run({});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE((*r)[0].is_optional());
  EXPECT_EQ((*r)[0].optional_value(), nullptr);

  OneNode untyped("Optional", 15, {});
  expect_error(untyped.run({}), {"Optional", "'type'"});
  OneNode mismatch("Optional", 15, {tensor_type(DataType::kFloat32)}, 1, {type});
  expect_error(mismatch.run({floats({1}, {5})}), {"float", "int64"});

  // A sequence may be wrapped too.
  OneNode seq("Optional", 15, {seq_of(DataType::kFloat32)});
  r = seq.run({float_seq({floats({1}, {5})})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE((*r)[0].optional_value()->is_sequence());
}

TEST(OptionalHasElement, OptionalsTensorsAndAbsentInput) {
  OneNode n("OptionalHasElement", 18, {opt_of(tensor_type(DataType::kFloat32))});
  auto r = n.run({Datum::optional(nullptr)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE((*r)[0].tensor().data<bool>()[0]);
  r = n.run({Datum::optional(std::make_shared<const Datum>(floats({1}, {1})))});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE((*r)[0].tensor().data<bool>()[0]);

  OneNode plain("OptionalHasElement", 18, {tensor_type(DataType::kFloat32)});
  r = plain.run({floats({0}, {})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE((*r)[0].tensor().data<bool>()[0]);

  OneNode absent("OptionalHasElement", 18, {tensor_type(DataType::kFloat32)}, 1, {}, {false});
  r = absent.run({});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE((*r)[0].tensor().data<bool>()[0]);

  // Before opset 18 the input must be a given optional.
  OneNode old_plain("OptionalHasElement", 15, {tensor_type(DataType::kFloat32)});
  expect_error(old_plain.run({floats({1}, {1})}), {"OptionalHasElement", "before opset 18"});
  OneNode old_absent("OptionalHasElement", 15, {tensor_type(DataType::kFloat32)}, 1, {}, {false});
  expect_error(old_absent.run({}), {"required before opset 18"});
}

TEST(OptionalGetElement, UnwrapsAndPassesPlainValues) {
  OneNode n("OptionalGetElement", 18, {opt_of(seq_of(DataType::kFloat32))});
  auto r = n.run({Datum::optional(std::make_shared<const Datum>(float_seq({floats({1}, {3})})))});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE((*r)[0].is_sequence());
  expect_near((*r)[0].items()[0], {1}, {3});
  expect_error(n.run({Datum::optional(nullptr)}), {"OptionalGetElement", "empty"});

  OneNode plain("OptionalGetElement", 18, {tensor_type(DataType::kFloat32)});
  r = plain.run({floats({2}, {1, 2})});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near((*r)[0].tensor(), {2}, {1, 2});
  OneNode old_plain("OptionalGetElement", 15, {tensor_type(DataType::kFloat32)});
  expect_error(old_plain.run({floats({2}, {1, 2})}), {"before opset 18"});
}

TEST(OptionalInput, CapturedEmptyOptionalIsDefinedInSubgraphs) {
  // main(o: optional) = If(c) then { OptionalHasElement(o) } else { OptionalHasElement(o) }:
  // a subgraph reading an empty optional of the outer scope sees it as empty, not missing.
  GraphBuilder top("main", nullptr, 18);
  top.input("c", tensor_type(DataType::kBool, {}));
  top.input("o", opt_of(tensor_type(DataType::kFloat32)));
  auto branch = [&](const std::string& name) {
    GraphBuilder b(name, &top.graph(), 18);
    b.capture("o");
    b.node("OptionalHasElement", {"o"}, {name + "_has"});
    b.output(name + "_has");
    return b.share();
  };
  top.node("If", {"c"}, {"has"},
           {Attribute::make_graph("then_branch", branch("then")), Attribute::make_graph("else_branch", branch("else"))});
  top.output("has");
  // Fed as an empty optional, or left out (kNone).
  for (const Datum& o : {Datum::optional(nullptr), Datum()}) {
    auto r = top.run({bool_scalar(true), o});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_FALSE((*r)[0].tensor().data<bool>()[0]);
  }
}

TEST(OptionalInput, LoopCarriedOptionalReceivesPlainValues) {
  // main(M, o) = Loop(M, "", o) with body(i, c, o_in: optional(seq)) returning
  // (c, SequenceConstruct(x), OptionalHasElement(o_in)): the first iteration
  // sees the empty optional, the second the sequence the first one returned,
  // bound to the optional-typed body input as a filled optional.
  GraphBuilder top("main", nullptr, 16);
  top.input("M", tensor_type(DataType::kInt64, {}));
  top.input("o", opt_of(seq_of(DataType::kFloat32)));
  top.constant("x", floats({1}, {4}));
  GraphBuilder body("body", &top.graph(), 16);
  body.input("i", tensor_type(DataType::kInt64, {}));
  body.input("c", tensor_type(DataType::kBool, {}));
  body.input("o_in", opt_of(seq_of(DataType::kFloat32)));
  body.capture("x");
  body.node("Identity", {"c"}, {"c_out"});
  body.node("SequenceConstruct", {"x"}, {"s"});
  body.node("OptionalHasElement", {"o_in"}, {"has"});
  for (const char* n : {"c_out", "s", "has"}) body.output(n);
  top.node("Loop", {"M", "", "o"}, {"final", "has_all"}, {Attribute::make_graph("body", body.share())});
  top.output("final");
  top.output("has_all");
  auto r = top.run({int64_scalar(2), Datum::optional(nullptr)});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE((*r)[0].is_sequence());
  expect_near((*r)[1].tensor(), {2}, {0, 1});
}

// ---- Shape inference -----------------------------------------------------------

TEST(SequenceInfer, Types) {
  EXPECT_EQ(InferTest("SequenceEmpty", 11).attr(Attribute::make_int("dtype", 7)).str(), "seq(int64*)");
  EXPECT_EQ(InferTest("SequenceConstruct", 11)
                .tensor(DataType::kFloat32, sym_shape({Dim(2), Dim(3)}))
                .tensor(DataType::kFloat32, sym_shape({Dim(2), Dim(4)}))
                .str(),
            "seq(float[2,?])");
  EXPECT_NE(InferTest("SequenceConstruct", 11)
                .tensor(DataType::kFloat32, sym_shape({Dim(2)}))
                .tensor(DataType::kInt64, sym_shape({Dim(2)}))
                .str()
                .find("error"),
            std::string::npos);
  EXPECT_EQ(InferTest("SequenceAt", 11).input(seq_of(DataType::kInt32)).tensor(DataType::kInt64, Shape::of({})).str(),
            "int32*");
  EXPECT_EQ(InferTest("SequenceLength", 11).input(seq_of(DataType::kInt32)).str(), "int64[]");
  EXPECT_EQ(InferTest("SequenceInsert", 11)
                .input(seq_of(DataType::kFloat32))
                .tensor(DataType::kFloat32, sym_shape({Dim(2)}))
                .str(),
            "seq(float*)");
  EXPECT_EQ(InferTest("SequenceInsert", 11).input({}).tensor(DataType::kInt64, sym_shape({Dim(2)})).str(),
            "seq(int64*)");
  EXPECT_EQ(InferTest("SequenceErase", 11).input(seq_of(DataType::kBool)).str(), "seq(bool*)");
  EXPECT_EQ(InferTest("SplitToSequence", 11)
                .tensor(DataType::kFloat32, sym_shape({Dim(6), Dim::sym("n")}))
                .constant(int64_scalar(2))
                .str(),
            "seq(float[2,n])");
  EXPECT_EQ(InferTest("SplitToSequence", 11)
                .tensor(DataType::kFloat32, sym_shape({Dim(6), Dim::sym("n")}))
                .attr(Attribute::make_int("axis", 1))
                .attr(Attribute::make_int("keepdims", 0))
                .str(),
            "seq(float[6])");
  EXPECT_EQ(InferTest("ConcatFromSequence", 11)
                .input(ir::ValueType::wrapping(Kind::kSequence, tensor_type(DataType::kFloat32, {Dim(2), Dim(3)})))
                .attr(Attribute::make_int("axis", 1))
                .attr(Attribute::make_int("new_axis", 1))
                .str(),
            "float[2,?,3]");
  EXPECT_EQ(InferTest("OptionalHasElement", 18).input(opt_of(tensor_type(DataType::kFloat32))).str(), "bool[]");
  EXPECT_EQ(InferTest("OptionalGetElement", 18).input(opt_of(seq_of(DataType::kFloat32))).str(), "seq(float*)");
  EXPECT_EQ(InferTest("Optional", 15).tensor(DataType::kInt8, sym_shape({Dim(1)})).str(), "optional(int8[1])");
}

}  // namespace
}  // namespace kiln::test
