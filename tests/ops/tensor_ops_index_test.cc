// Gather, GatherElements, GatherND, ScatterElements, ScatterND, Scatter.
// Expected arrays were computed with onnx.reference.ReferenceEvaluator
// (onnx 1.23.2) on the same inputs and pasted here.
#include "ops/op_test_util.h"

namespace kiln::test {
namespace {

using ir::Attribute;

std::vector<float> iota_floats(int n, float start = 0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = start + static_cast<float>(i);
  return v;
}

// ---- Gather ------------------------------------------------------------------

TEST(Gather, Axis0WithNegativeIndices) {
  OpTest t("Gather", 13);
  t.input("x", floats({3, 2}, iota_floats(6))).input("i", int64s({2, 2}, {0, -1, 1, 1}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 2, 2}, {0, 1, 4, 5, 2, 3, 2, 3});
}

TEST(Gather, NegativeAxisInt32IndicesAndScalarIndex) {
  OpTest t("Gather", 13);
  t.input("x", floats({2, 3}, iota_floats(6))).input("i", int32s({}, {2})).attr(Attribute::make_int("axis", -1));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2}, {2, 5});
}

TEST(Gather, StringsAndEmptyIndices) {
  OpTest t("Gather", 13);
  t.input("x", strings({3}, {"a", "b", "c"})).input("i", int64s({2}, {2, 0}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(string_values((*out)[0]), (std::vector<std::string>{"c", "a"}));
  OpTest e("Gather", 13);
  e.input("x", floats({3, 2}, iota_floats(6))).input("i", int64s({0}, {}));
  auto eo = e.run();
  ASSERT_TRUE(eo.is_ok()) << eo.status().to_string();
  EXPECT_EQ(dims_to_string((*eo)[0].dims()), "[0,2]");
}

TEST(Gather, OutOfRangeIndexIsAnError) {
  for (int64_t bad : {3, -4}) {
    OpTest t("Gather", 13);
    t.input("x", floats({3}, iota_floats(3))).input("i", int64s({1}, {bad}));
    auto out = t.run();
    expect_error(out, "out of range");
    EXPECT_EQ(out.status().code(), StatusCode::kOutOfRange);
  }
  OpTest f("Gather", 13);
  f.input("x", floats({3}, iota_floats(3))).input("i", floats({1}, {0}));
  expect_error(f.run(), "int32 or int64");
  OpTest empty_axis("Gather", 13);
  empty_axis.input("x", floats({0}, {})).input("i", int64s({1}, {0}));
  expect_error(empty_axis.run(), "out of range");
}

TEST(Gather, Infer) {
  auto r = InferTest("Gather", 13)
               .input(tensor_type(DataType::kFloat32, {Dim::sym("V"), 8}))
               .input(tensor_type(DataType::kInt64, {Dim::sym("B"), 5}))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float[B,5,8]");
}

// ---- GatherElements ----------------------------------------------------------

TEST(GatherElements, Axis0) {
  OpTest t("GatherElements", 13);
  t.input("x", floats({3, 3}, iota_floats(9))).input("i", int64s({2, 3}, {2, -1, 0, 0, 1, 2}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 3}, {6, 7, 2, 0, 4, 8});
}

TEST(GatherElements, SmallerIndicesOnOtherAxesAndBool) {
  // indices [[1],[0]] along axis 1 of a 2x3 bool tensor: out[i][0] = x[i][idx].
  OpTest t("GatherElements", 13);
  t.input("x", bools({2, 3}, {0, 1, 0, 1, 0, 0})).input("i", int64s({2, 1}, {1, 0}))
      .attr(Attribute::make_int("axis", -1));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kBool);
  expect_near((*out)[0], {2, 1}, {1, 1});
}

TEST(GatherElements, Errors) {
  OpTest range("GatherElements", 13);
  range.input("x", floats({2, 2}, iota_floats(4))).input("i", int64s({1, 2}, {0, 2}));
  expect_error(range.run(), "out of range");
  OpTest rank("GatherElements", 13);
  rank.input("x", floats({2, 2}, iota_floats(4))).input("i", int64s({2}, {0, 1}));
  expect_error(rank.run(), "rank");
  OpTest big("GatherElements", 13);
  big.input("x", floats({2, 2}, iota_floats(4))).input("i", int64s({1, 3}, {0, 0, 0}));
  expect_error(big.run(), "exceed");
}

// ---- GatherND ----------------------------------------------------------------

TEST(GatherND, Basic) {
  OpTest t("GatherND", 13);
  t.input("x", floats({2, 2, 2}, iota_floats(8))).input("i", int64s({2, 2}, {0, 1, 1, 0}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 2}, {2, 3, 4, 5});
  OpTest full("GatherND", 13);
  full.input("x", floats({2, 2, 2}, iota_floats(8))).input("i", int64s({2, 1, 3}, {0, 1, 1, 1, 0, 0}));
  auto fo = full.run();
  ASSERT_TRUE(fo.is_ok()) << fo.status().to_string();
  expect_near((*fo)[0], {2, 1}, {3, 4});
}

TEST(GatherND, BatchDimsAndNegativeIndex) {
  OpTest t("GatherND", 12);
  t.input("x", floats({2, 2, 2}, iota_floats(8))).input("i", int64s({2, 1}, {-1, 0}))
      .attr(Attribute::make_int("batch_dims", 1));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 2}, {2, 3, 4, 5});
}

TEST(GatherND, Errors) {
  OpTest range("GatherND", 13);
  range.input("x", floats({2, 2}, iota_floats(4))).input("i", int64s({1, 2}, {0, 2}));
  expect_error(range.run(), "out of range");
  OpTest depth("GatherND", 13);
  depth.input("x", floats({2, 2}, iota_floats(4))).input("i", int64s({1, 3}, {0, 0, 0}));
  expect_error(depth.run(), "last dim");
  OpTest batch("GatherND", 13);
  batch.input("x", floats({2, 2}, iota_floats(4))).input("i", int64s({3, 1}, {0, 0, 0}))
      .attr(Attribute::make_int("batch_dims", 1));
  expect_error(batch.run(), "batch dim");
  auto r = InferTest("GatherND", 13)
               .input(tensor_type(DataType::kFloat32, {4, 5, 6}))
               .input(tensor_type(DataType::kInt64, {Dim::sym("K"), 2}))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float[K,6]");
}

// ---- ScatterElements / Scatter -----------------------------------------------

TEST(ScatterElements, NoneReductionOnStrings) {
  OpTest t("ScatterElements", 13);
  t.input("x", strings({3}, {"a", "b", "c"})).input("i", int64s({2}, {-1, 0})).input("u", strings({2}, {"z", "y"}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(string_values((*out)[0]), (std::vector<std::string>{"y", "b", "z"}));
}

TEST(ScatterElements, AddAndMax) {
  OpTest add("ScatterElements", 16);
  add.input("x", floats({3, 3}, std::vector<float>(9, 1)))
      .input("i", int64s({2, 3}, {1, 0, 2, 0, 2, 1}))
      .input("u", floats({2, 3}, iota_floats(6)))
      .attr(Attribute::make_string("reduction", "add"));
  auto ao = add.run();
  ASSERT_TRUE(ao.is_ok()) << ao.status().to_string();
  expect_near((*ao)[0], {3, 3}, {4, 2, 1, 1, 1, 6, 1, 5, 3});

  OpTest mx("ScatterElements", 18);
  mx.input("x", floats({1, 5}, std::vector<float>(5, 1)))
      .input("i", int64s({1, 3}, {1, 3, -2}))
      .input("u", floats({1, 3}, {1.1f, 2.1f, 0.5f}))
      .attr(Attribute::make_int("axis", 1))
      .attr(Attribute::make_string("reduction", "max"));
  auto mo = mx.run();
  ASSERT_TRUE(mo.is_ok()) << mo.status().to_string();
  expect_near((*mo)[0], {1, 5}, {1, 1.1, 1, 2.1, 1});

  OpTest mn("ScatterElements", 18);
  mn.input("x", int64s({3}, {5, 5, 5})).input("i", int64s({2}, {0, 0})).input("u", int64s({2}, {7, 2}))
      .attr(Attribute::make_string("reduction", "min"));
  auto no = mn.run();
  ASSERT_TRUE(no.is_ok()) << no.status().to_string();
  expect_near((*no)[0], {3}, {2, 5, 5});

  OpTest mul("ScatterElements", 16);
  mul.input("x", int32s({2}, {3, 4})).input("i", int64s({2}, {1, 1})).input("u", int32s({2}, {2, 5}))
      .attr(Attribute::make_string("reduction", "mul"));
  auto uo = mul.run();
  ASSERT_TRUE(uo.is_ok()) << uo.status().to_string();
  expect_near((*uo)[0], {2}, {3, 40});
}

TEST(ScatterElements, Errors) {
  OpTest range("ScatterElements", 13);
  range.input("x", floats({3}, iota_floats(3))).input("i", int64s({1}, {3})).input("u", floats({1}, {1}));
  expect_error(range.run(), "out of range");
  OpTest red("ScatterElements", 13);
  red.input("x", floats({3}, iota_floats(3))).input("i", int64s({1}, {0})).input("u", floats({1}, {1}))
      .attr(Attribute::make_string("reduction", "add"));
  expect_error(red.run(), "not valid at opset 13");
  OpTest maxe("ScatterElements", 16);
  maxe.input("x", floats({3}, iota_floats(3))).input("i", int64s({1}, {0})).input("u", floats({1}, {1}))
      .attr(Attribute::make_string("reduction", "max"));
  expect_error(maxe.run(), "not valid at opset 16");
  OpTest shape("ScatterElements", 13);
  shape.input("x", floats({3}, iota_floats(3))).input("i", int64s({2}, {0, 1})).input("u", floats({1}, {1}));
  expect_error(shape.run(), "one shape");
  OpTest str("ScatterElements", 16);
  str.input("x", strings({1}, {"a"})).input("i", int64s({1}, {0})).input("u", strings({1}, {"b"}))
      .attr(Attribute::make_string("reduction", "add"));
  auto so = str.run();
  ASSERT_FALSE(so.is_ok());
  EXPECT_EQ(so.status().code(), StatusCode::kUnimplemented);
}

TEST(Scatter, Opset9And10OnlyAndSameAsScatterElements) {
  OpTest t("Scatter", 10);
  t.input("x", floats({2, 2}, std::vector<float>(4, 0))).input("i", int64s({1, 2}, {1, 0}))
      .input("u", floats({1, 2}, {5, 6}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 2}, {0, 6, 5, 0});
  OpTest later("Scatter", 11);
  later.input("x", floats({1}, {0})).input("i", int64s({1}, {0})).input("u", floats({1}, {1}));
  expect_error(later.run(), "no kernel for opset 11");
}

// ---- ScatterND ---------------------------------------------------------------

TEST(ScatterND, SlicesAndReduction) {
  OpTest t("ScatterND", 13);
  std::vector<float> u = {100, 101, 102, 103, 200, 201, 202, 203};
  t.input("x", floats({2, 2, 4}, iota_floats(16))).input("i", int64s({2, 2}, {1, 0, 0, 1})).input("u", floats({2, 4}, u));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 2, 4}, {0, 1, 2, 3, 200, 201, 202, 203, 100, 101, 102, 103, 12, 13, 14, 15});

  OpTest mul("ScatterND", 16);
  mul.input("x", floats({4}, iota_floats(4, 1))).input("i", int64s({3, 1}, {1, -3, 3})).input("u", floats({3}, {2, 3, 10}))
      .attr(Attribute::make_string("reduction", "mul"));
  auto mo = mul.run();
  ASSERT_TRUE(mo.is_ok()) << mo.status().to_string();
  expect_near((*mo)[0], {4}, {1, 12, 3, 40});
}

TEST(ScatterND, Errors) {
  OpTest range("ScatterND", 13);
  range.input("x", floats({4}, iota_floats(4))).input("i", int64s({1, 1}, {4})).input("u", floats({1}, {1}));
  expect_error(range.run(), "out of range");
  OpTest shape("ScatterND", 13);
  shape.input("x", floats({2, 2}, iota_floats(4))).input("i", int64s({1, 1}, {0})).input("u", floats({1, 3}, {1, 2, 3}));
  expect_error(shape.run(), "updates");
  OpTest depth("ScatterND", 13);
  depth.input("x", floats({2}, iota_floats(2))).input("i", int64s({1, 2}, {0, 0})).input("u", floats({1}, {1}));
  expect_error(depth.run(), "last dim");
}

}  // namespace
}  // namespace kiln::test
