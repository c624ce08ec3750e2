// Constant, ConstantOfShape, Concat, Split, Slice, Tile, Range, Compress,
// ReverseSequence. Expected arrays not obvious by hand were computed with
// onnx.reference.ReferenceEvaluator (onnx 1.23.2) and pasted here.
#include <limits>

#include "ops/op_test_util.h"

namespace kiln::test {
namespace {

using ir::Attribute;

std::vector<float> iota_floats(int n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i);
  return v;
}

// ---- Constant ----------------------------------------------------------------

TEST(Constant, TensorValue) {
  OpTest t("Constant", 13);
  t.attr(Attribute::make_tensor("value", floats({2}, {1.5f, -2})));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2}, {1.5, -2});
}

TEST(Constant, ScalarAndListAttributes) {
  OpTest f("Constant", 13);
  f.attr(Attribute::make_float("value_float", 2.5f));
  auto fo = f.run();
  ASSERT_TRUE(fo.is_ok()) << fo.status().to_string();
  EXPECT_EQ((*fo)[0].dtype(), DataType::kFloat32);
  expect_near((*fo)[0], {}, {2.5});

  OpTest fs("Constant", 13);
  fs.attr(Attribute::make_floats("value_floats", {1, 2, 3}));
  auto fso = fs.run();
  ASSERT_TRUE(fso.is_ok());
  expect_near((*fso)[0], {3}, {1, 2, 3});

  OpTest i("Constant", 13);
  i.attr(Attribute::make_int("value_int", -7));
  auto io = i.run();
  ASSERT_TRUE(io.is_ok());
  EXPECT_EQ((*io)[0].dtype(), DataType::kInt64);
  expect_near((*io)[0], {}, {-7});

  OpTest is("Constant", 13);
  is.attr(Attribute::make_ints("value_ints", {4, 5}));
  auto iso = is.run();
  ASSERT_TRUE(iso.is_ok());
  EXPECT_EQ((*iso)[0].dtype(), DataType::kInt64);
  expect_near((*iso)[0], {2}, {4, 5});

  OpTest s("Constant", 13);
  s.attr(Attribute::make_string("value_string", "hello"));
  auto so = s.run();
  ASSERT_TRUE(so.is_ok());
  EXPECT_EQ(string_values((*so)[0]), std::vector<std::string>{"hello"});
  EXPECT_EQ((*so)[0].rank(), 0);

  Attribute strs;
  strs.name = "value_strings";
  strs.kind = Attribute::Kind::kStrings;
  strs.strings = {"x", "yz"};
  OpTest ss("Constant", 13);
  ss.attr(strs);
  auto sso = ss.run();
  ASSERT_TRUE(sso.is_ok());
  EXPECT_EQ(string_values((*sso)[0]), (std::vector<std::string>{"x", "yz"}));
}

TEST(Constant, Errors) {
  Attribute sparse;
  sparse.name = "sparse_value";
  sparse.kind = Attribute::Kind::kSparseTensor;
  OpTest sp("Constant", 13);
  sp.attr(sparse);
  auto r = sp.run();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(r.status().message().find("sparse"), std::string::npos);

  OpTest none("Constant", 13);
  expect_error(none.run(), "no value attribute");
  OpTest two("Constant", 13);
  two.attr(Attribute::make_int("value_int", 1)).attr(Attribute::make_float("value_float", 1));
  expect_error(two.run(), "exactly one");
}

TEST(Constant, Infer) {
  auto r = InferTest("Constant", 13).attr(Attribute::make_ints("value_ints", {1, 2, 3})).run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "int64[3]");
}

// ---- ConstantOfShape ---------------------------------------------------------

TEST(ConstantOfShape, DefaultFloatZeroAndValue) {
  OpTest t("ConstantOfShape", 20);
  t.input("s", int64s({2}, {2, 3}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kFloat32);
  expect_near((*out)[0], {2, 3}, {0, 0, 0, 0, 0, 0});

  OpTest v("ConstantOfShape", 20);
  v.input("s", int64s({1}, {3})).attr(Attribute::make_tensor("value", make_tensor(DataType::kInt32, {1}, std::vector<int>{7})));
  auto vo = v.run();
  ASSERT_TRUE(vo.is_ok()) << vo.status().to_string();
  EXPECT_EQ((*vo)[0].dtype(), DataType::kInt32);
  expect_near((*vo)[0], {3}, {7, 7, 7});

  OpTest scalar("ConstantOfShape", 20);
  scalar.input("s", int64s({0}, {})).attr(Attribute::make_tensor("value", bools({1}, {1})));
  auto so = scalar.run();
  ASSERT_TRUE(so.is_ok()) << so.status().to_string();
  EXPECT_EQ((*so)[0].dtype(), DataType::kBool);
  expect_near((*so)[0], {}, {1});
}

TEST(ConstantOfShape, Errors) {
  OpTest neg("ConstantOfShape", 20);
  neg.input("s", int64s({2}, {2, -1}));
  expect_error(neg.run(), "negative");
  OpTest two("ConstantOfShape", 20);
  two.input("s", int64s({1}, {2})).attr(Attribute::make_tensor("value", floats({2}, {1, 2})));
  expect_error(two.run(), "one element");
}

TEST(ConstantOfShape, Infer) {
  auto r = InferTest("ConstantOfShape", 20).constant(int64s({2}, {4, 0})).run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float[4,0]");
}

// ---- Concat ------------------------------------------------------------------

TEST(Concat, NegativeAxisAndEmptyInput) {
  OpTest t("Concat", 13);
  t.input("a", floats({2, 1}, {1, 2})).input("b", floats({2, 0}, {})).input("c", floats({2, 2}, {3, 4, 5, 6}));
  t.attr(Attribute::make_int("axis", -1));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 3}, {1, 3, 4, 2, 5, 6});
}

TEST(Concat, Strings) {
  OpTest t("Concat", 13);
  t.input("a", strings({1}, {"a"})).input("b", strings({2}, {"b", "c"})).attr(Attribute::make_int("axis", 0));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(string_values((*out)[0]), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(Concat, Errors) {
  OpTest t("Concat", 13);
  t.input("a", floats({2, 1}, {1, 2})).input("b", floats({3, 1}, {1, 2, 3})).attr(Attribute::make_int("axis", 1));
  expect_error(t.run(), "does not match");
  OpTest axis("Concat", 13);
  axis.input("a", floats({2}, {1, 2})).attr(Attribute::make_int("axis", 1));
  expect_error(axis.run(), "out of range");
  OpTest missing("Concat", 13);
  missing.input("a", floats({2}, {1, 2}));
  expect_error(missing.run(), "'axis' is required");
}

TEST(Concat, Infer) {
  auto r = InferTest("Concat", 13)
               .input(tensor_type(DataType::kFloat32, {Dim::sym("N"), 2}))
               .input(tensor_type(DataType::kFloat32, {Dim(), 3}))
               .attr(Attribute::make_int("axis", 1))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float[N,5]");
}

// ---- Split -------------------------------------------------------------------

TEST(Split, EqualSplitByOutputs) {
  OpTest t("Split", 13);
  t.input("x", floats({2, 4}, iota_floats(8))).attr(Attribute::make_int("axis", -1)).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 2}, {0, 1, 4, 5});
  expect_near((*out)[1], {2, 2}, {2, 3, 6, 7});
}

TEST(Split, AttributeBeforeOpset13) {
  OpTest t("Split", 11);
  t.input("x", floats({5}, iota_floats(5))).attr(Attribute::make_ints("split", {2, 0, 3})).outputs(3);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2}, {0, 1});
  expect_near((*out)[1], {0}, {});
  expect_near((*out)[2], {3}, {2, 3, 4});
}

TEST(Split, InputSinceOpset13) {
  OpTest t("Split", 13);
  t.input("x", strings({3}, {"a", "b", "c"})).input("split", int64s({2}, {1, 2})).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(string_values((*out)[0]), std::vector<std::string>{"a"});
  EXPECT_EQ(string_values((*out)[1]), (std::vector<std::string>{"b", "c"}));
}

TEST(Split, NumOutputsSinceOpset18LastChunkSmaller) {
  OpTest t("Split", 18);
  t.input("x", floats({7}, iota_floats(7))).attr(Attribute::make_int("num_outputs", 3)).outputs(3);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {0, 1, 2});
  expect_near((*out)[1], {3}, {3, 4, 5});
  expect_near((*out)[2], {1}, {6});
}

TEST(Split, Errors) {
  OpTest uneven("Split", 13);
  uneven.input("x", floats({5}, iota_floats(5))).outputs(2);
  expect_error(uneven.run(), "evenly");
  OpTest sum("Split", 13);
  sum.input("x", floats({5}, iota_floats(5))).input("split", int64s({2}, {2, 2})).outputs(2);
  expect_error(sum.run(), "sums to 4");
  OpTest count("Split", 11);
  count.input("x", floats({5}, iota_floats(5))).attr(Attribute::make_ints("split", {5})).outputs(2);
  expect_error(count.run(), "entries");
  OpTest num("Split", 18);
  num.input("x", floats({4}, iota_floats(4))).attr(Attribute::make_int("num_outputs", 3)).outputs(2);
  expect_error(num.run(), "num_outputs");
  OpTest neg("Split", 13);
  neg.input("x", floats({2}, iota_floats(2))).input("split", int64s({2}, {3, -1})).outputs(2);
  expect_error(neg.run(), "negative");
}

TEST(Split, Infer) {
  auto r = InferTest("Split", 13)
               .input(tensor_type(DataType::kFloat32, {Dim::sym("N"), 6}))
               .constant(int64s({2}, {2, 4}))
               .attr(Attribute::make_int("axis", 1))
               .outputs(2)
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float[N,2]");
  EXPECT_EQ((*r)[1].to_string(), "float[N,4]");
  auto eq = InferTest("Split", 18)
                .input(tensor_type(DataType::kFloat32, {5}))
                .attr(Attribute::make_int("num_outputs", 2))
                .outputs(2)
                .run();
  ASSERT_TRUE(eq.is_ok()) << eq.status().to_string();
  EXPECT_EQ((*eq)[1].to_string(), "float[2]");
  // A split that cannot work (5 into 4 chunks of 2) may sit in an If branch
  // that never runs: inference leaves the dim unknown, the kernel reports it.
  auto dead = InferTest("Split", 18)
                  .input(tensor_type(DataType::kInt64, {5}))
                  .attr(Attribute::make_int("num_outputs", 4))
                  .outputs(4)
                  .run();
  ASSERT_TRUE(dead.is_ok()) << dead.status().to_string();
  EXPECT_EQ((*dead)[3].to_string(), "int64[?]");
  OpTest run("Split", 18);
  run.input("x", int64s({5}, {1, 2, 3, 4, 5})).attr(Attribute::make_int("num_outputs", 4)).outputs(4);
  expect_error(run.run(), "cannot be split into 4 outputs");
}

// ---- Slice -------------------------------------------------------------------

TEST(Slice, AttributesBeforeOpset10) {
  OpTest t("Slice", 9);
  t.input("x", floats({3, 4}, iota_floats(12)));
  t.attr(Attribute::make_ints("starts", {1, -3})).attr(Attribute::make_ints("ends", {1000, -1}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 2}, {5, 6, 9, 10});

  OpTest axes("Slice", 1);
  axes.input("x", floats({3, 4}, iota_floats(12)));
  axes.attr(Attribute::make_ints("starts", {2})).attr(Attribute::make_ints("ends", {4}))
      .attr(Attribute::make_ints("axes", {1}));
  auto ao = axes.run();
  ASSERT_TRUE(ao.is_ok()) << ao.status().to_string();
  expect_near((*ao)[0], {3, 2}, {2, 3, 6, 7, 10, 11});
}

TEST(Slice, NegativeStepsAndClamping) {
  // Reference: x = arange(20).reshape(4,5); Slice(starts=[-1,4], ends=[-1000,0], axes=[0,1], steps=[-2,-3]).
  OpTest t("Slice", 13);
  t.input("x", floats({4, 5}, iota_floats(20)))
      .input("starts", int64s({2}, {-1, 4}))
      .input("ends", int64s({2}, {-1000, 0}))
      .input("axes", int64s({2}, {0, 1}))
      .input("steps", int64s({2}, {-2, -3}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 2}, {19, 16, 9, 6});
}

TEST(Slice, IntMaxEndAndNegativeAxis) {
  OpTest t("Slice", 13);
  t.input("x", floats({4, 5}, iota_floats(20)))
      .input("starts", int64s({1}, {1}))
      .input("ends", int64s({1}, {std::numeric_limits<int64_t>::max()}))
      .input("axes", int64s({1}, {-1}))
      .input("steps", int64s({1}, {2}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {4, 2}, {1, 3, 6, 8, 11, 13, 16, 18});
}

TEST(Slice, FullReverseWithIntMin) {
  OpTest t("Slice", 13);
  t.input("x", strings({3}, {"a", "b", "c"}))
      .input("starts", int64s({1}, {-1}))
      .input("ends", int64s({1}, {std::numeric_limits<int64_t>::min()}))
      .input("axes", int32s({1}, {0}))
      .input("steps", int64s({1}, {std::numeric_limits<int64_t>::min()}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(string_values((*out)[0]), std::vector<std::string>{"c"});
}

TEST(Slice, EmptyResultsAndZeroDims) {
  OpTest t("Slice", 13);
  t.input("x", floats({4}, iota_floats(4))).input("starts", int64s({1}, {3})).input("ends", int64s({1}, {1}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {0}, {});
  OpTest z("Slice", 13);
  z.input("x", floats({0, 2}, {})).input("starts", int64s({1}, {-1})).input("ends", int64s({1}, {-5}))
      .none().input("steps", int64s({1}, {-1}));
  auto zo = z.run();
  ASSERT_TRUE(zo.is_ok()) << zo.status().to_string();
  EXPECT_EQ(dims_to_string((*zo)[0].dims()), "[0,2]");
}

TEST(Slice, Errors) {
  OpTest zero("Slice", 13);
  zero.input("x", floats({4}, iota_floats(4))).input("starts", int64s({1}, {0})).input("ends", int64s({1}, {4}))
      .input("axes", int64s({1}, {0})).input("steps", int64s({1}, {0}));
  expect_error(zero.run(), "contains 0");
  OpTest dup("Slice", 13);
  dup.input("x", floats({4}, iota_floats(4))).input("starts", int64s({2}, {0, 0})).input("ends", int64s({2}, {4, 4}))
      .input("axes", int64s({2}, {0, -1}));
  expect_error(dup.run(), "twice");
  OpTest len("Slice", 13);
  len.input("x", floats({4}, iota_floats(4))).input("starts", int64s({1}, {0})).input("ends", int64s({2}, {4, 4}));
  expect_error(len.run(), "ends has 2");
  OpTest axis("Slice", 13);
  axis.input("x", floats({4}, iota_floats(4))).input("starts", int64s({1}, {0})).input("ends", int64s({1}, {4}))
      .input("axes", int64s({1}, {1}));
  expect_error(axis.run(), "out of range");
}

TEST(Slice, Infer) {
  auto r = InferTest("Slice", 13)
               .input(tensor_type(DataType::kFloat32, {Dim::sym("N"), 10}))
               .constant(int64s({1}, {-1}))
               .constant(int64s({1}, {0}))
               .constant(int64s({1}, {1}))
               .constant(int64s({1}, {-3}))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float[N,3]");
  auto unknown = InferTest("Slice", 13)
                     .input(tensor_type(DataType::kFloat32, {4, 10}))
                     .input(tensor_type(DataType::kInt64, {1}))
                     .constant(int64s({1}, {0}))
                     .run();
  ASSERT_TRUE(unknown.is_ok());
  EXPECT_EQ((*unknown)[0].to_string(), "float[?,?]");
}

// ---- Tile --------------------------------------------------------------------

TEST(Tile, RepeatsAndStrings) {
  OpTest t("Tile", 13);
  t.input("x", floats({2, 2}, {1, 2, 3, 4})).input("r", int64s({2}, {1, 2}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 4}, {1, 2, 1, 2, 3, 4, 3, 4});
  OpTest s("Tile", 13);
  s.input("x", strings({2}, {"a", "b"})).input("r", int64s({1}, {2}));
  auto so = s.run();
  ASSERT_TRUE(so.is_ok()) << so.status().to_string();
  EXPECT_EQ(string_values((*so)[0]), (std::vector<std::string>{"a", "b", "a", "b"}));
  OpTest z("Tile", 13);
  z.input("x", floats({2}, {1, 2})).input("r", int64s({1}, {0}));
  auto zo = z.run();
  ASSERT_TRUE(zo.is_ok());
  EXPECT_EQ(dims_to_string((*zo)[0].dims()), "[0]");
}

TEST(Tile, Errors) {
  OpTest neg("Tile", 13);
  neg.input("x", floats({2}, {1, 2})).input("r", int64s({1}, {-1}));
  expect_error(neg.run(), "negative");
  OpTest len("Tile", 13);
  len.input("x", floats({2}, {1, 2})).input("r", int64s({2}, {1, 1}));
  expect_error(len.run(), "rank");
}

TEST(Tile, Infer) {
  auto r = InferTest("Tile", 13)
               .input(tensor_type(DataType::kFloat32, {Dim::sym("N"), 3}))
               .constant(int64s({2}, {1, 4}))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float[N,12]");
}

// ---- Range -------------------------------------------------------------------

TEST(Range, FloatAndInt) {
  OpTest f("Range", 11);
  f.input("s", floats({}, {1})).input("l", floats({}, {2})).input("d", floats({}, {0.25f}));
  auto fo = f.run();
  ASSERT_TRUE(fo.is_ok()) << fo.status().to_string();
  expect_near((*fo)[0], {4}, {1, 1.25, 1.5, 1.75});

  OpTest i("Range", 11);
  i.input("s", int64s({}, {10})).input("l", int64s({}, {3})).input("d", int64s({}, {-3}));
  auto io = i.run();
  ASSERT_TRUE(io.is_ok()) << io.status().to_string();
  EXPECT_EQ((*io)[0].dtype(), DataType::kInt64);
  expect_near((*io)[0], {3}, {10, 7, 4});

  OpTest e("Range", 11);
  e.input("s", int32s({}, {5})).input("l", int32s({}, {1})).input("d", int32s({}, {2}));
  auto eo = e.run();
  ASSERT_TRUE(eo.is_ok()) << eo.status().to_string();
  expect_near((*eo)[0], {0}, {});
}

TEST(Range, Errors) {
  OpTest z("Range", 11);
  z.input("s", floats({}, {1})).input("l", floats({}, {2})).input("d", floats({}, {0}));
  expect_error(z.run(), "delta");
  OpTest mixed("Range", 11);
  mixed.input("s", floats({}, {1})).input("l", int64s({}, {2})).input("d", floats({}, {1}));
  expect_error(mixed.run(), "one type");
  OpTest huge("Range", 11);
  huge.input("s", int64s({}, {std::numeric_limits<int64_t>::min()}))
      .input("l", int64s({}, {std::numeric_limits<int64_t>::max()}))
      .input("d", int64s({}, {1}));
  expect_error(huge.run(), "elements");
}

// ---- Compress ----------------------------------------------------------------

TEST(Compress, AxisAndFlattened) {
  OpTest t("Compress", 11);
  t.input("x", floats({3, 2}, {1, 2, 3, 4, 5, 6})).input("c", bools({2}, {0, 1}))
      .attr(Attribute::make_int("axis", -2));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 2}, {3, 4});
  OpTest flat("Compress", 11);
  flat.input("x", strings({2, 2}, {"a", "b", "c", "d"})).input("c", bools({4}, {1, 0, 0, 1}));
  auto fo = flat.run();
  ASSERT_TRUE(fo.is_ok()) << fo.status().to_string();
  EXPECT_EQ(string_values((*fo)[0]), (std::vector<std::string>{"a", "d"}));
  OpTest bad("Compress", 11);
  bad.input("x", floats({2}, {1, 2})).input("c", bools({3}, {0, 0, 1}));
  expect_error(bad.run(), "index 2");
}

// ---- ReverseSequence ---------------------------------------------------------

TEST(ReverseSequence, TimeMajor) {
  // Reference: x = arange(16).reshape(4,4), sequence_lens=[4,3,2,1], batch_axis=1, time_axis=0.
  std::vector<float> v = iota_floats(16);
  OpTest t("ReverseSequence", 10);
  t.input("x", floats({4, 4}, v)).input("l", int64s({4}, {4, 3, 2, 1}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {4, 4}, {12, 9, 6, 3, 8, 5, 2, 7, 4, 1, 10, 11, 0, 13, 14, 15});
}

TEST(ReverseSequence, BatchMajorStringsAndErrors) {
  OpTest t("ReverseSequence", 10);
  t.input("x", strings({2, 3}, {"a", "b", "c", "d", "e", "f"})).input("l", int64s({2}, {2, 3}));
  t.attr(Attribute::make_int("batch_axis", 0)).attr(Attribute::make_int("time_axis", 1));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(string_values((*out)[0]), (std::vector<std::string>{"b", "a", "c", "f", "e", "d"}));
  OpTest bad("ReverseSequence", 10);
  bad.input("x", floats({2, 2}, {1, 2, 3, 4})).input("l", int64s({2}, {3, 1}));
  expect_error(bad.run(), "outside");
  OpTest axes("ReverseSequence", 10);
  axes.input("x", floats({2, 2}, {1, 2, 3, 4})).input("l", int64s({2}, {1, 1}));
  axes.attr(Attribute::make_int("batch_axis", 0));
  expect_error(axes.run(), "batch_axis");
}

}  // namespace
}  // namespace kiln::test
