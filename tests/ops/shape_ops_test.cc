#include "ops/op_test_util.h"

namespace kiln::test {
namespace {

using ir::Attribute;

TEST(Identity, PassesTensorThrough) {
  OpTest t("Identity", 17);
  t.input("x", floats({2, 2}, {1, 2, 3, 4}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 2}, {1, 2, 3, 4});
}

TEST(Identity, PassesSequenceThrough) {
  ir::Graph g("seq");
  g.set_opset_imports({{"", 17}});
  ir::Value* in = g.add_value("s", ir::ValueType::wrapping(ir::ValueType::Kind::kSequence,
                                                           ir::ValueType::tensor(DataType::kFloat32)))
                      .value();
  g.add_input(in);
  ir::Value* out = g.add_value("o").value();
  g.add_output(out);
  g.add_node("Identity", {in}, {out})->set_opset(17);
  auto program = exec::Program::compile(g);
  ASSERT_TRUE(program.is_ok()) << program.status().to_string();
  std::vector<Datum> feeds = {Datum::sequence({floats({1}, {5})}, DataType::kFloat32)};
  auto r = exec::execute(**program, feeds, nullptr);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_TRUE((*r)[0].is_sequence());
  expect_near((*r)[0].items()[0], {1}, {5});
}

TEST(Registry, UnknownOpIsAClearError) {
  OpTest t("NoSuchOp", 17);
  t.input("x", floats({1}, {1}));
  auto out = t.run();
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("unknown operator"), std::string::npos) << out.status().message();
  EXPECT_NE(out.status().message().find("NoSuchOp"), std::string::npos);
}

// ---- Shape / Size ------------------------------------------------------------

TEST(Shape, WholeShape) {
  OpTest t("Shape", 13);
  t.input("x", floats({2, 3, 0}, {}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kInt64);
  expect_near((*out)[0], {3}, {2, 3, 0});
}

TEST(Shape, StartEndClampedSinceOpset15) {
  OpTest t("Shape", 15);
  t.input("x", floats({2, 3, 4, 5}, std::vector<float>(120, 0)));
  t.attr(Attribute::make_int("start", -3)).attr(Attribute::make_int("end", 100));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {3, 4, 5});

  OpTest empty("Shape", 15);
  empty.input("x", floats({2, 3}, std::vector<float>(6, 0)));
  empty.attr(Attribute::make_int("start", 2)).attr(Attribute::make_int("end", -5));
  auto e = empty.run();
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  expect_near((*e)[0], {0}, {});
}

TEST(Shape, StartIgnoredBeforeOpset15) {
  OpTest t("Shape", 13);
  t.input("x", floats({2, 3}, std::vector<float>(6, 0)));
  t.attr(Attribute::make_int("start", 1));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2}, {2, 3});
}

TEST(Shape, Infer) {
  auto r = InferTest("Shape", 15)
               .input(tensor_type(DataType::kFloat32, {Dim::sym("N"), 3, 4}))
               .attr(Attribute::make_int("start", 1))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "int64[2]");
  auto u = InferTest("Shape", 13).input(ir::ValueType::tensor(DataType::kFloat32)).run();
  ASSERT_TRUE(u.is_ok());
  EXPECT_EQ((*u)[0].to_string(), "int64[?]");
}

TEST(Size, CountsElements) {
  OpTest t("Size", 13);
  t.input("x", strings({2, 3}, {"a", "b", "c", "d", "e", "f"}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {}, {6});
  auto r = InferTest("Size", 13).input(ir::ValueType::tensor(DataType::kFloat32)).run();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ((*r)[0].to_string(), "int64[]");
}

// ---- Reshape -----------------------------------------------------------------

TEST(Reshape, ZeroCopiesAndMinusOneInfers) {
  OpTest t("Reshape", 13);
  t.input("x", floats({2, 3, 4}, std::vector<float>(24, 1))).input("s", int64s({3}, {0, -1, 2}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(dims_to_string((*out)[0].dims()), "[2,6,2]");
}

TEST(Reshape, AllowZeroMakesEmptyDim) {
  OpTest t("Reshape", 14);
  t.input("x", floats({0, 3}, {})).input("s", int64s({2}, {3, 0}));
  t.attr(Attribute::make_int("allowzero", 1));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(dims_to_string((*out)[0].dims()), "[3,0]");
}

TEST(Reshape, StringsKeepValues) {
  OpTest t("Reshape", 13);
  t.input("x", strings({2, 2}, {"a", "b", "c", "d"})).input("s", int64s({1}, {-1}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(string_values((*out)[0]), (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST(Reshape, Errors) {
  OpTest mismatch("Reshape", 13);
  mismatch.input("x", floats({2, 3}, std::vector<float>(6, 0))).input("s", int64s({2}, {4, 2}));
  expect_error(mismatch.run(), "cannot reshape");
  OpTest two("Reshape", 13);
  two.input("x", floats({2, 3}, std::vector<float>(6, 0))).input("s", int64s({2}, {-1, -1}));
  expect_error(two.run(), "more than one -1");
  OpTest neg("Reshape", 13);
  neg.input("x", floats({2, 3}, std::vector<float>(6, 0))).input("s", int64s({2}, {-2, 3}));
  expect_error(neg.run(), "invalid dim");
  OpTest zero_past_rank("Reshape", 13);
  zero_past_rank.input("x", floats({6}, std::vector<float>(6, 0))).input("s", int64s({2}, {6, 0}));
  expect_error(zero_past_rank.run(), "rank");
  OpTest zero_and_minus("Reshape", 14);
  zero_and_minus.input("x", floats({0}, {})).input("s", int64s({2}, {0, -1}));
  zero_and_minus.attr(Attribute::make_int("allowzero", 1));
  expect_error(zero_and_minus.run(), "allowzero");
}

TEST(Reshape, InferWithConstantShape) {
  auto r = InferTest("Reshape", 13)
               .input(tensor_type(DataType::kFloat32, {2, 3, 4}))
               .constant(int64s({2}, {0, -1}))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float[2,12]");
  auto partial = InferTest("Reshape", 13)
                     .input(tensor_type(DataType::kFloat32, {Dim::sym("N"), 3, 4}))
                     .constant(int64s({3}, {0, -1, 2}))
                     .run();
  ASSERT_TRUE(partial.is_ok()) << partial.status().to_string();
  EXPECT_EQ((*partial)[0].to_string(), "float[N,?,2]");
  auto unknown = InferTest("Reshape", 13)
                     .input(tensor_type(DataType::kFloat32, {2, 3}))
                     .input(tensor_type(DataType::kInt64, {3}))
                     .run();
  ASSERT_TRUE(unknown.is_ok());
  EXPECT_EQ((*unknown)[0].to_string(), "float[?,?,?]");
}

// ---- Flatten -----------------------------------------------------------------

TEST(Flatten, AxesIncludingNegativeAndZero) {
  struct Case {
    int64_t axis;
    const char* dims;
  } cases[] = {{0, "[1,24]"}, {1, "[2,12]"}, {3, "[24,1]"}, {-1, "[6,4]"}, {-3, "[1,24]"}};
  for (const auto& c : cases) {
    OpTest t("Flatten", 13);
    t.input("x", floats({2, 3, 4}, std::vector<float>(24, 0))).attr(Attribute::make_int("axis", c.axis));
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ(dims_to_string((*out)[0].dims()), c.dims) << "axis " << c.axis;
  }
  OpTest bad("Flatten", 13);
  bad.input("x", floats({2, 3}, std::vector<float>(6, 0))).attr(Attribute::make_int("axis", 3));
  expect_error(bad.run(), "out of range");
  auto r = InferTest("Flatten", 13).input(tensor_type(DataType::kFloat32, {2, 0, 4})).run();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ((*r)[0].to_string(), "float[2,0]");
}

// ---- Squeeze / Unsqueeze -----------------------------------------------------

TEST(Squeeze, AxesAttributeBeforeOpset13) {
  OpTest t("Squeeze", 11);
  t.input("x", floats({1, 3, 1}, {1, 2, 3})).attr(Attribute::make_ints("axes", {-1}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 3}, {1, 2, 3});
}

TEST(Squeeze, AxesInputSinceOpset13) {
  OpTest t("Squeeze", 13);
  t.input("x", floats({1, 3, 1}, {1, 2, 3})).input("axes", int64s({1}, {0}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3, 1}, {1, 2, 3});
}

TEST(Squeeze, NoAxesRemovesAllOnes) {
  for (int64_t opset : {11, 13}) {
    OpTest t("Squeeze", opset);
    t.input("x", bools({1, 2, 1, 1}, {1, 0}));
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_EQ(dims_to_string((*out)[0].dims()), "[2]");
    EXPECT_EQ((*out)[0].dtype(), DataType::kBool);
  }
}

TEST(Squeeze, Errors) {
  OpTest t("Squeeze", 13);
  t.input("x", floats({1, 3}, {1, 2, 3})).input("axes", int64s({1}, {1}));
  expect_error(t.run(), "cannot squeeze axis 1 of size 3");
  OpTest range("Squeeze", 13);
  range.input("x", floats({1, 3}, {1, 2, 3})).input("axes", int64s({1}, {2}));
  expect_error(range.run(), "out of range");
}

TEST(Squeeze, Infer) {
  auto r = InferTest("Squeeze", 13)
               .input(tensor_type(DataType::kFloat32, {1, Dim::sym("N"), 1}))
               .constant(int64s({2}, {0, -1}))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float[N]");
  auto no_axes = InferTest("Squeeze", 11).input(tensor_type(DataType::kFloat32, {1, 2, 1})).run();
  ASSERT_TRUE(no_axes.is_ok());
  EXPECT_EQ((*no_axes)[0].to_string(), "float[2]");
  auto bad = InferTest("Squeeze", 11)
                 .input(tensor_type(DataType::kFloat32, {1, 2}))
                 .attr(Attribute::make_ints("axes", {1}))
                 .run();
  EXPECT_FALSE(bad.is_ok());
}

TEST(Unsqueeze, AttributeAndInputVariants) {
  OpTest old("Unsqueeze", 11);
  old.input("x", floats({3}, {1, 2, 3})).attr(Attribute::make_ints("axes", {0, -1}));
  auto a = old.run();
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(dims_to_string((*a)[0].dims()), "[1,3,1]");

  OpTest now("Unsqueeze", 13);
  now.input("x", strings({2}, {"p", "q"})).input("axes", int64s({2}, {2, -3}));
  auto b = now.run();
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(dims_to_string((*b)[0].dims()), "[1,2,1]");
  EXPECT_EQ(string_values((*b)[0]), (std::vector<std::string>{"p", "q"}));
}

TEST(Unsqueeze, Errors) {
  OpTest dup("Unsqueeze", 13);
  dup.input("x", floats({3}, {1, 2, 3})).input("axes", int64s({2}, {0, 0}));
  expect_error(dup.run(), "twice");
  OpTest range("Unsqueeze", 13);
  range.input("x", floats({3}, {1, 2, 3})).input("axes", int64s({1}, {2}));
  expect_error(range.run(), "out of range");
  OpTest missing("Unsqueeze", 11);
  missing.input("x", floats({3}, {1, 2, 3}));
  expect_error(missing.run(), "axes");
}

TEST(Unsqueeze, Infer) {
  auto r = InferTest("Unsqueeze", 13)
               .input(tensor_type(DataType::kInt32, {Dim::sym("B"), 4}))
               .constant(int64s({2}, {0, -1}))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "int32[1,B,4,1]");
}

// ---- Expand ------------------------------------------------------------------

TEST(Expand, Bidirectional) {
  OpTest t("Expand", 13);
  t.input("x", floats({3, 1}, {1, 2, 3})).input("s", int64s({3}, {2, 1, 2}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 3, 2}, {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3});
}

TEST(Expand, StringsAndZeroDims) {
  OpTest t("Expand", 13);
  t.input("x", strings({1}, {"z"})).input("s", int64s({2}, {2, 2}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(string_values((*out)[0]), (std::vector<std::string>{"z", "z", "z", "z"}));
  OpTest empty("Expand", 13);
  empty.input("x", floats({1, 3}, {1, 2, 3})).input("s", int64s({2}, {0, 1}));
  auto e = empty.run();
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(dims_to_string((*e)[0].dims()), "[0,3]");
}

TEST(Expand, Errors) {
  OpTest t("Expand", 13);
  t.input("x", floats({3}, {1, 2, 3})).input("s", int64s({1}, {2}));
  expect_error(t.run(), "cannot be broadcast");
  OpTest neg("Expand", 13);
  neg.input("x", floats({3}, {1, 2, 3})).input("s", int64s({1}, {-3}));
  expect_error(neg.run(), "negative");
}

TEST(Expand, Infer) {
  auto r = InferTest("Expand", 13)
               .input(tensor_type(DataType::kFloat32, {Dim::sym("N"), 1}))
               .constant(int64s({3}, {2, 1, 5}))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float[2,N,5]");
}

// ---- Transpose ---------------------------------------------------------------

TEST(Transpose, DefaultReverses) {
  OpTest t("Transpose", 13);
  t.input("x", floats({2, 3}, {1, 2, 3, 4, 5, 6}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3, 2}, {1, 4, 2, 5, 3, 6});
}

TEST(Transpose, PermOnInt64AndStrings) {
  // Expected from numpy: np.arange(24).reshape(2,3,4).transpose(1,2,0)[0,:2] -> [[0,12],[1,13]].
  std::vector<int64_t> v(24);
  for (int i = 0; i < 24; ++i) v[static_cast<size_t>(i)] = i;
  OpTest t("Transpose", 13);
  t.input("x", int64s({2, 3, 4}, v)).attr(Attribute::make_ints("perm", {1, 2, 0}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(dims_to_string((*out)[0].dims()), "[3,4,2]");
  EXPECT_EQ((*out)[0].data<int64_t>()[1], 12);
  EXPECT_EQ((*out)[0].data<int64_t>()[23], 23);
  EXPECT_EQ((*out)[0].data<int64_t>()[2], 1);

  OpTest s("Transpose", 13);
  s.input("x", strings({2, 2}, {"a", "b", "c", "d"}));
  auto so = s.run();
  ASSERT_TRUE(so.is_ok()) << so.status().to_string();
  EXPECT_EQ(string_values((*so)[0]), (std::vector<std::string>{"a", "c", "b", "d"}));
}

TEST(Transpose, BadPerm) {
  for (std::vector<int64_t> perm : std::vector<std::vector<int64_t>>{{0, 0}, {0, 2}, {0}, {-1, 0}}) {
    OpTest t("Transpose", 13);
    t.input("x", floats({2, 3}, std::vector<float>(6, 0))).attr(Attribute::make_ints("perm", perm));
    auto out = t.run();
    EXPECT_FALSE(out.is_ok());
    EXPECT_NE(out.status().message().find("perm"), std::string::npos) << out.status().message();
  }
}

TEST(Transpose, Infer) {
  auto r = InferTest("Transpose", 13)
               .input(tensor_type(DataType::kFloat16, {Dim::sym("N"), 3, 0}))
               .attr(Attribute::make_ints("perm", {2, 0, 1}))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float16[0,N,3]");
}

}  // namespace
}  // namespace kiln::test
