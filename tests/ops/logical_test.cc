// Tests of comparisons, logic, bit operations and Where.
#include <cmath>
#include <limits>

#include "ops/elementwise_test_util.h"

namespace kiln::test {
namespace {

Tensor binary(const std::string& op, int64_t opset, Tensor a, Tensor b) {
  OpTest t(op, opset);
  t.input("a", std::move(a)).input("b", std::move(b));
  return run1(t);
}

TEST(Compare, FloatsWithNaNAndBroadcast) {
  Tensor a = floats({2, 3}, {1, 2, NAN, 4, 5, 6});
  Tensor b = floats({3}, {1, 3, NAN});
  expect_values(binary("Equal", 19, a, b), DataType::kBool, {2, 3}, {1, 0, 0, 0, 0, 0});
  expect_values(binary("Less", 13, a, b), DataType::kBool, {2, 3}, {0, 1, 0, 0, 0, 0});
  expect_values(binary("Greater", 13, a, b), DataType::kBool, {2, 3}, {0, 0, 0, 1, 1, 0});
  expect_values(binary("LessOrEqual", 16, a, b), DataType::kBool, {2, 3}, {1, 1, 0, 0, 0, 0});
  expect_values(binary("GreaterOrEqual", 16, a, b), DataType::kBool, {2, 3}, {1, 0, 0, 1, 1, 0});
}

TEST(Compare, IntegersBoolsAndStrings) {
  expect_values(binary("Less", 13, make_tensor(DataType::kUInt64, {2}, std::vector<int>{1, 5}),
                       make_tensor(DataType::kUInt64, {}, std::vector<int>{3})),
                DataType::kBool, {2}, {1, 0});
  expect_values(binary("Equal", 13, bools({3}, {1, 0, 1}), bools({3}, {1, 1, 0})), DataType::kBool, {3}, {1, 0, 0});
  expect_values(binary("Equal", 19, strings({2, 2}, {"a", "b", "", "bb"}), strings({2}, {"a", "bb"})),
                DataType::kBool, {2, 2}, {1, 0, 0, 1});
  OpTest t("Less", 13);
  t.input("a", strings({1}, {"a"})).input("b", strings({1}, {"b"}));
  expect_error(t, "element type string is not supported");
  OpTest u("Equal", 19);
  u.input("a", floats({1}, {1})).input("b", int32s({1}, {1}));
  expect_error(u, "different element types");
}

TEST(Logic, AndOrXorNot) {
  Tensor a = bools({2, 2}, {0, 0, 1, 1});
  Tensor b = bools({2}, {0, 1});
  expect_values(binary("And", 7, a, b), DataType::kBool, {2, 2}, {0, 0, 0, 1});
  expect_values(binary("Or", 7, a, b), DataType::kBool, {2, 2}, {0, 1, 1, 1});
  expect_values(binary("Xor", 7, a, b), DataType::kBool, {2, 2}, {0, 1, 1, 0});
  OpTest n("Not", 1);
  n.input("x", bools({3}, {1, 0, 1}));
  expect_values(run1(n), DataType::kBool, {3}, {0, 1, 0});
  OpTest bad("And", 7);
  bad.input("a", int32s({1}, {1})).input("b", int32s({1}, {1}));
  expect_error(bad, "not supported");
}

TEST(Bitwise, AndOrXorNot) {
  Tensor a = int32s({3}, {0b1100, -1, 7});
  Tensor b = int32s({3}, {0b1010, 0x0f, 0});
  expect_values(binary("BitwiseAnd", 18, a, b), DataType::kInt32, {3}, {0b1000, 0x0f, 0});
  expect_values(binary("BitwiseOr", 18, a, b), DataType::kInt32, {3}, {0b1110, -1, 7});
  expect_values(binary("BitwiseXor", 18, a, b), DataType::kInt32, {3}, {0b0110, -16, 7});
  OpTest n("BitwiseNot", 18);
  n.input("x", make_tensor(DataType::kUInt8, {2}, std::vector<int>{0, 0xf0}));
  expect_values(run1(n), DataType::kUInt8, {2}, {255, 0x0f});
  OpTest bad("BitwiseAnd", 18);
  bad.input("a", floats({1}, {1})).input("b", floats({1}, {1}));
  expect_error(bad, "not supported");
}

TEST(BitShift, LeftRightAndOutOfRangeAmounts) {
  OpTest r("BitShift", 11);
  r.input("x", make_tensor(DataType::kUInt8, {3}, std::vector<int>{16, 4, 255}))
      .input("y", make_tensor(DataType::kUInt8, {3}, std::vector<int>{1, 2, 8}))
      .attr(ir::Attribute::make_string("direction", "RIGHT"));
  expect_values(run1(r), DataType::kUInt8, {3}, {8, 1, 0});
  OpTest l("BitShift", 11);
  l.input("x", make_tensor(DataType::kUInt32, {3}, std::vector<int>{1, 2, 3}))
      .input("y", make_tensor(DataType::kUInt32, {3}, std::vector<int>{1, 31, 32}))
      .attr(ir::Attribute::make_string("direction", "LEFT"));
  expect_values(run1(l), DataType::kUInt32, {3}, {2, 0, 0});
  // Signed types (opset 28): arithmetic right shift; out-of-range amounts give
  // the sign fill.
  OpTest s("BitShift", 28);
  s.input("x", make_tensor(DataType::kInt8, {4}, std::vector<int>{-8, -8, 8, 64}))
      .input("y", make_tensor(DataType::kInt8, {4}, std::vector<int>{1, 9, -1, 1}))
      .attr(ir::Attribute::make_string("direction", "RIGHT"));
  expect_values(run1(s), DataType::kInt8, {4}, {-4, -1, 0, 32});
  OpTest sl("BitShift", 28);
  sl.input("x", make_tensor(DataType::kInt8, {2}, std::vector<int>{64, -1}))
      .input("y", make_tensor(DataType::kInt8, {2}, std::vector<int>{1, 7}))
      .attr(ir::Attribute::make_string("direction", "LEFT"));
  expect_values(run1(sl), DataType::kInt8, {2}, {-128, -128});
  OpTest bad("BitShift", 11);
  bad.input("x", make_tensor(DataType::kUInt8, {1}, std::vector<int>{1}))
      .input("y", make_tensor(DataType::kUInt8, {1}, std::vector<int>{1}));
  expect_error(bad, "direction must be");
}

TEST(Where, ThreeWayBroadcast) {
  OpTest t("Where", 16);
  t.input("c", bools({2, 1}, {1, 0})).input("x", floats({3}, {1, 2, 3})).input("y", floats({}, {-1}));
  expect_values(run1(t), DataType::kFloat32, {2, 3}, {1, 2, 3, -1, -1, -1});
}

TEST(Where, AnyElementType) {
  OpTest s("Where", 16);
  s.input("c", bools({3}, {1, 0, 1})).input("x", strings({3}, {"a", "b", "c"})).input("y", strings({1}, {"z"}));
  Tensor out = run1(s);
  ASSERT_EQ(out.dtype(), DataType::kString);
  ASSERT_EQ(out.numel(), 3);
  EXPECT_EQ(out.data<std::string>()[0], "a");
  EXPECT_EQ(out.data<std::string>()[1], "z");
  EXPECT_EQ(out.data<std::string>()[2], "c");
  OpTest b("Where", 16);
  b.input("c", bools({2}, {0, 1})).input("x", bools({2}, {1, 1})).input("y", bools({2}, {0, 0}));
  expect_values(run1(b), DataType::kBool, {2}, {0, 1});
  OpTest i("Where", 9);
  i.input("c", bools({2}, {0, 1})).input("x", int64s({2}, {1, 2})).input("y", int64s({2}, {-1, -2}));
  expect_values(run1(i), DataType::kInt64, {2}, {-1, 2});
  OpTest h("Where", 16);
  h.input("c", bools({2}, {1, 0}))
      .input("x", make_tensor(DataType::kFloat16, {2}, std::vector<double>{0.5, 1}))
      .input("y", make_tensor(DataType::kFloat16, {2}, std::vector<double>{3, 4}));
  expect_values(run1(h), DataType::kFloat16, {2}, {0.5, 4});
}

TEST(Where, ErrorPaths) {
  OpTest t("Where", 16);
  t.input("c", int32s({1}, {1})).input("x", floats({1}, {1})).input("y", floats({1}, {2}));
  expect_error(t, "condition must be bool");
  OpTest u("Where", 16);
  u.input("c", bools({1}, {1})).input("x", floats({1}, {1})).input("y", doubles({1}, {2}));
  expect_error(u, "different element types");
  OpTest v("Where", 16);
  v.input("c", bools({2}, {1, 0})).input("x", floats({3}, {1, 2, 3})).input("y", floats({1}, {2}));
  expect_error(v, "cannot be broadcast");
}

TEST(LogicalInfer, BoolOutputsAndWhere) {
  EXPECT_EQ(InferTest("Equal", 19)
                .tensor(DataType::kString, sym_shape({Dim::sym("N")}))
                .tensor(DataType::kString, sym_shape({1}))
                .str(),
            "bool[N]");
  EXPECT_EQ(InferTest("Less", 13).tensor(DataType::kFloat32, sym_shape({2, 1})).tensor(DataType::kFloat32, sym_shape({3}))
                .str(),
            "bool[2,3]");
  EXPECT_EQ(InferTest("Where", 16)
                .tensor(DataType::kBool, sym_shape({Dim::sym("B"), 1}))
                .tensor(DataType::kInt64, sym_shape({4}))
                .tensor(DataType::kInt64, sym_shape({}))
                .str(),
            "int64[B,4]");
  EXPECT_EQ(InferTest("BitShift", 11).tensor(DataType::kUInt8, sym_shape({2})).tensor(DataType::kUInt8, sym_shape({}))
                .str(),
            "uint8[2]");
}

}  // namespace
}  // namespace kiln::test
