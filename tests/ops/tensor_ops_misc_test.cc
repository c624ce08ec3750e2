// Dropout, TopK, NonZero, Unique, OneHot, CumSum, Trilu, EyeLike,
// DepthToSpace, SpaceToDepth, Einsum. Expected arrays not obvious by hand
// were computed with onnx.reference.ReferenceEvaluator (onnx 1.23.2) or
// numpy.einsum on the same inputs and pasted here.
#include "ops/op_test_util.h"

namespace kiln::test {
namespace {

using ir::Attribute;

std::vector<float> iota_floats(int n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i);
  return v;
}

// ---- Dropout -----------------------------------------------------------------

TEST(Dropout, InferenceIsIdentityWithBoolMask) {
  OpTest t("Dropout", 13);
  t.input("x", floats({2}, {1, 2})).input("ratio", floats({}, {0.7f})).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2}, {1, 2});
  EXPECT_EQ((*out)[1].dtype(), DataType::kBool);
  expect_near((*out)[1], {2}, {1, 1});
}

TEST(Dropout, MaskHasInputTypeBeforeOpset10) {
  OpTest t("Dropout", 7);
  t.input("x", floats({2}, {1, 2})).attr(Attribute::make_float("ratio", 0.3f)).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[1].dtype(), DataType::kFloat32);
  expect_near((*out)[1], {2}, {1, 1});
}

TEST(Dropout, TrainingMode) {
  OpTest zero("Dropout", 12);
  zero.input("x", floats({2}, {1, 2})).input("r", floats({}, {0})).input("t", bools({}, {1}));
  auto zo = zero.run();
  ASSERT_TRUE(zo.is_ok()) << zo.status().to_string();
  expect_near((*zo)[0], {2}, {1, 2});

  // Default ratio 0.5: each element is dropped or doubled (random_test.cc checks the rates).
  OpTest train("Dropout", 12);
  train.input("x", floats({2}, {1, 2})).none().input("t", bools({}, {1}));
  auto to = train.run();
  ASSERT_TRUE(to.is_ok()) << to.status().to_string();
  std::vector<double> y = values_of((*to)[0]);
  EXPECT_TRUE(y[0] == 0 || y[0] == 2);
  EXPECT_TRUE(y[1] == 0 || y[1] == 4);

  OpTest off("Dropout", 13);
  off.input("x", floats({2}, {1, 2})).input("r", floats({}, {0.5f})).input("t", bools({}, {0}));
  EXPECT_TRUE(off.run().is_ok());
}

TEST(Dropout, Infer) {
  auto r = InferTest("Dropout", 13).input(tensor_type(DataType::kFloat16, {Dim::sym("N")})).outputs(2).run();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ((*r)[0].to_string(), "float16[N]");
  EXPECT_EQ((*r)[1].to_string(), "bool[N]");
}

// ---- TopK --------------------------------------------------------------------

TEST(TopK, LargestTiesKeepLowerIndex) {
  OpTest t("TopK", 11);
  t.input("x", floats({2, 4}, {3, 1, 3, 2, 0, 5, 5, 1})).input("k", int64s({1}, {2})).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 2}, {3, 3, 5, 5});
  expect_near((*out)[1], {2, 2}, {0, 2, 1, 2});
}

TEST(TopK, SmallestOnAxis0) {
  OpTest t("TopK", 11);
  t.input("x", int32s({3, 2}, {4, 1, 2, 1, 3, 0})).input("k", int64s({1}, {2})).outputs(2);
  t.attr(Attribute::make_int("largest", 0)).attr(Attribute::make_int("axis", -2));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kInt32);
  expect_near((*out)[0], {2, 2}, {2, 0, 3, 1});
  expect_near((*out)[1], {2, 2}, {1, 2, 2, 0});
}

TEST(TopK, KAttributeBeforeOpset10) {
  OpTest t("TopK", 1);
  t.input("x", floats({4}, {1, 4, 2, 3})).attr(Attribute::make_int("k", 3)).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {4, 3, 2});
  expect_near((*out)[1], {3}, {1, 3, 2});
}

TEST(TopK, ZeroK) {
  OpTest t("TopK", 11);
  t.input("x", floats({3}, {1, 2, 3})).input("k", int64s({1}, {0})).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(dims_to_string((*out)[0].dims()), "[0]");
}

TEST(TopK, Errors) {
  OpTest big("TopK", 11);
  big.input("x", floats({3}, {1, 2, 3})).input("k", int64s({1}, {4})).outputs(2);
  expect_error(big.run(), "outside [0, 3]");
  OpTest neg("TopK", 10);
  neg.input("x", floats({3}, {1, 2, 3})).input("k", int64s({1}, {-1})).outputs(2);
  expect_error(neg.run(), "outside");
  OpTest missing("TopK", 9);
  missing.input("x", floats({3}, {1, 2, 3})).outputs(2);
  expect_error(missing.run(), "'k'");
  auto r = InferTest("TopK", 11)
               .input(tensor_type(DataType::kFloat32, {Dim::sym("N"), 10}))
               .constant(int64s({1}, {3}))
               .outputs(2)
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float[N,3]");
  EXPECT_EQ((*r)[1].to_string(), "int64[N,3]");
}

// ---- NonZero -----------------------------------------------------------------

TEST(NonZero, FloatBoolAndString) {
  OpTest t("NonZero", 13);
  t.input("x", floats({2, 2}, {1, 0, 1, 1}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 3}, {0, 1, 1, 0, 0, 1});
  OpTest s("NonZero", 13);
  s.input("x", strings({3}, {"", "a", ""}));
  auto so = s.run();
  ASSERT_TRUE(so.is_ok()) << so.status().to_string();
  expect_near((*so)[0], {1, 1}, {1});
  OpTest e("NonZero", 13);
  e.input("x", bools({2, 0}, {}));
  auto eo = e.run();
  ASSERT_TRUE(eo.is_ok()) << eo.status().to_string();
  EXPECT_EQ(dims_to_string((*eo)[0].dims()), "[2,0]");
}

// ---- Unique ------------------------------------------------------------------

TEST(Unique, SortedAndUnsorted) {
  // Reference: x = [2,1,1,3,4,3].
  OpTest t("Unique", 11);
  t.input("x", floats({6}, {2, 1, 1, 3, 4, 3})).outputs(4);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {4}, {1, 2, 3, 4});
  expect_near((*out)[1], {4}, {1, 0, 3, 4});
  expect_near((*out)[2], {6}, {1, 0, 0, 2, 3, 2});
  expect_near((*out)[3], {4}, {2, 1, 2, 1});

  OpTest u("Unique", 11);
  u.input("x", floats({6}, {2, 1, 1, 3, 4, 3})).attr(Attribute::make_int("sorted", 0)).outputs(4);
  auto uo = u.run();
  ASSERT_TRUE(uo.is_ok()) << uo.status().to_string();
  expect_near((*uo)[0], {4}, {2, 1, 3, 4});
  expect_near((*uo)[1], {4}, {0, 1, 3, 4});
  expect_near((*uo)[2], {6}, {0, 1, 1, 2, 3, 2});
  expect_near((*uo)[3], {4}, {1, 2, 2, 1});
}

TEST(Unique, AxisAndStrings) {
  OpTest t("Unique", 11);
  t.input("x", floats({3, 3}, {1, 0, 0, 1, 0, 0, 2, 3, 4})).attr(Attribute::make_int("axis", 0)).outputs(4);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 3}, {1, 0, 0, 2, 3, 4});
  expect_near((*out)[1], {2}, {0, 2});
  expect_near((*out)[2], {3}, {0, 0, 1});
  expect_near((*out)[3], {2}, {2, 1});

  OpTest s("Unique", 11);
  s.input("x", strings({4}, {"b", "a", "b", "c"})).outputs(1);
  auto so = s.run();
  ASSERT_TRUE(so.is_ok()) << so.status().to_string();
  EXPECT_EQ(string_values((*so)[0]), (std::vector<std::string>{"a", "b", "c"}));

  OpTest bad("Unique", 11);
  bad.input("x", floats({2}, {1, 2})).attr(Attribute::make_int("axis", 1));
  expect_error(bad.run(), "out of range");
}

// ---- OneHot ------------------------------------------------------------------

TEST(OneHot, AxisNegativeAndOutOfRangeIndices) {
  OpTest t("OneHot", 11);
  t.input("i", int64s({3}, {1, -1, 5})).input("d", int64s({}, {3})).input("v", floats({2}, {0, 1}))
      .attr(Attribute::make_int("axis", 0));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3, 3}, {0, 0, 0, 1, 0, 0, 0, 1, 0});

  OpTest s("OneHot", 11);
  s.input("i", floats({2}, {0, 1.7f})).input("d", floats({}, {2})).input("v", strings({2}, {"off", "on"}));
  auto so = s.run();
  ASSERT_TRUE(so.is_ok()) << so.status().to_string();
  EXPECT_EQ(string_values((*so)[0]), (std::vector<std::string>{"on", "off", "off", "on"}));
}

TEST(OneHot, Errors) {
  OpTest depth("OneHot", 11);
  depth.input("i", int64s({1}, {0})).input("d", int64s({}, {0})).input("v", floats({2}, {0, 1}));
  expect_error(depth.run(), "depth");
  OpTest values("OneHot", 11);
  values.input("i", int64s({1}, {0})).input("d", int64s({}, {2})).input("v", floats({3}, {0, 1, 2}));
  expect_error(values.run(), "off_value");
  OpTest axis("OneHot", 11);
  axis.input("i", int64s({1}, {0})).input("d", int64s({}, {2})).input("v", floats({2}, {0, 1}))
      .attr(Attribute::make_int("axis", 2));
  expect_error(axis.run(), "out of range");
}

// ---- CumSum ------------------------------------------------------------------

TEST(CumSum, Variants) {
  OpTest t("CumSum", 14);
  t.input("x", floats({4}, {1, 2, 3, 4})).input("a", int64s({}, {0}));
  t.attr(Attribute::make_int("exclusive", 1)).attr(Attribute::make_int("reverse", 1));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {4}, {9, 7, 4, 0});

  OpTest ax("CumSum", 14);
  ax.input("x", make_tensor(DataType::kFloat64, {2, 3}, iota_floats(6))).input("a", int32s({}, {-1}));
  auto ao = ax.run();
  ASSERT_TRUE(ao.is_ok()) << ao.status().to_string();
  expect_near((*ao)[0], {2, 3}, {0, 1, 3, 3, 7, 12});

  OpTest i("CumSum", 14);
  i.input("x", int32s({3}, {1, 2, 3})).input("a", int64s({}, {0})).attr(Attribute::make_int("exclusive", 1));
  auto io = i.run();
  ASSERT_TRUE(io.is_ok()) << io.status().to_string();
  expect_near((*io)[0], {3}, {0, 1, 3});

  OpTest bad("CumSum", 14);
  bad.input("x", floats({3}, {1, 2, 3})).input("a", int64s({}, {1}));
  expect_error(bad.run(), "out of range");
}

// ---- Trilu -------------------------------------------------------------------

TEST(Trilu, UpperAndLowerWithK) {
  OpTest t("Trilu", 14);
  t.input("x", floats({3, 4}, iota_floats(12))).input("k", int64s({}, {1}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3, 4}, {0, 1, 2, 3, 0, 0, 6, 7, 0, 0, 0, 11});

  OpTest l("Trilu", 14);
  l.input("x", floats({3, 4}, iota_floats(12))).input("k", int64s({}, {-1})).attr(Attribute::make_int("upper", 0));
  auto lo = l.run();
  ASSERT_TRUE(lo.is_ok()) << lo.status().to_string();
  expect_near((*lo)[0], {3, 4}, {0, 0, 0, 0, 4, 0, 0, 0, 8, 9, 0, 0});
}

TEST(Trilu, BatchedStringsAndErrors) {
  OpTest t("Trilu", 14);
  t.input("x", strings({2, 2, 2}, {"a", "b", "c", "d", "e", "f", "g", "h"})).attr(Attribute::make_int("upper", 0));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(string_values((*out)[0]), (std::vector<std::string>{"a", "", "c", "d", "e", "", "g", "h"}));
  OpTest bad("Trilu", 14);
  bad.input("x", floats({3}, {1, 2, 3}));
  expect_error(bad.run(), "rank >= 2");
}

// ---- EyeLike -----------------------------------------------------------------

TEST(EyeLike, KAndDtype) {
  OpTest t("EyeLike", 9);
  t.input("x", floats({3, 4}, std::vector<float>(12, 5))).attr(Attribute::make_int("k", 1));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3, 4}, {0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1});

  OpTest d("EyeLike", 9);
  d.input("x", floats({2, 2}, {0, 0, 0, 0})).attr(Attribute::make_int("dtype", 9));
  auto dout = d.run();
  ASSERT_TRUE(dout.is_ok()) << dout.status().to_string();
  EXPECT_EQ((*dout)[0].dtype(), DataType::kBool);
  expect_near((*dout)[0], {2, 2}, {1, 0, 0, 1});

  OpTest bad("EyeLike", 9);
  bad.input("x", floats({2}, {0, 0}));
  expect_error(bad.run(), "2-D");
  OpTest bad_dt("EyeLike", 9);
  bad_dt.input("x", floats({1, 1}, {0})).attr(Attribute::make_int("dtype", 99));
  expect_error(bad_dt.run(), "dtype 99");
}

// ---- DepthToSpace / SpaceToDepth ---------------------------------------------

TEST(DepthToSpace, DcrAndCrd) {
  // Reference: x = arange(16).reshape(1,8,1,2), blocksize 2.
  OpTest dcr("DepthToSpace", 13);
  dcr.input("x", floats({1, 8, 1, 2}, iota_floats(16))).attr(Attribute::make_int("blocksize", 2));
  auto d = dcr.run();
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  expect_near((*d)[0], {1, 2, 2, 4}, {0, 4, 1, 5, 8, 12, 9, 13, 2, 6, 3, 7, 10, 14, 11, 15});

  OpTest crd("DepthToSpace", 13);
  crd.input("x", floats({1, 8, 1, 2}, iota_floats(16))).attr(Attribute::make_int("blocksize", 2))
      .attr(Attribute::make_string("mode", "CRD"));
  auto c = crd.run();
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  expect_near((*c)[0], {1, 2, 2, 4}, {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15});
}

TEST(SpaceToDepth, BlocksIntoChannels) {
  // Reference: x = arange(16).reshape(1,1,4,4), blocksize 2.
  OpTest t("SpaceToDepth", 13);
  t.input("x", floats({1, 1, 4, 4}, iota_floats(16))).attr(Attribute::make_int("blocksize", 2));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 4, 2, 2}, {0, 2, 8, 10, 1, 3, 9, 11, 4, 6, 12, 14, 5, 7, 13, 15});
}

TEST(DepthToSpace, ErrorsAndInfer) {
  OpTest ch("DepthToSpace", 13);
  ch.input("x", floats({1, 3, 1, 1}, {1, 2, 3})).attr(Attribute::make_int("blocksize", 2));
  expect_error(ch.run(), "divisible");
  OpTest bs("SpaceToDepth", 13);
  bs.input("x", floats({1, 1, 2, 2}, {1, 2, 3, 4})).attr(Attribute::make_int("blocksize", 0));
  expect_error(bs.run(), "blocksize");
  OpTest mode("DepthToSpace", 13);
  mode.input("x", floats({1, 4, 1, 1}, {1, 2, 3, 4})).attr(Attribute::make_int("blocksize", 2))
      .attr(Attribute::make_string("mode", "XYZ"));
  expect_error(mode.run(), "mode");
  auto r = InferTest("DepthToSpace", 13)
               .input(tensor_type(DataType::kFloat32, {Dim::sym("N"), 8, 3, 5}))
               .attr(Attribute::make_int("blocksize", 2))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "float[N,2,6,10]");
}

// ---- Einsum ------------------------------------------------------------------

TEST(Einsum, MatMulExplicitAndImplicit) {
  for (const char* eq : {"ij,jk->ik", "ij, jk"}) {
    OpTest t("Einsum", 12);
    t.input("a", floats({2, 3}, iota_floats(6))).input("b", floats({3, 4}, iota_floats(12)))
        .attr(Attribute::make_string("equation", eq));
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_near((*out)[0], {2, 4}, {20, 23, 26, 29, 56, 68, 80, 92});
  }
}

TEST(Einsum, DiagonalTraceAndTranspose) {
  OpTest diag("Einsum", 12);
  diag.input("a", floats({3, 3}, iota_floats(9))).attr(Attribute::make_string("equation", "ii->i"));
  auto d = diag.run();
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  expect_near((*d)[0], {3}, {0, 4, 8});

  OpTest trace("Einsum", 12);
  trace.input("a", floats({3, 3}, iota_floats(9))).attr(Attribute::make_string("equation", "ii"));
  auto tr = trace.run();
  ASSERT_TRUE(tr.is_ok()) << tr.status().to_string();
  expect_near((*tr)[0], {}, {12});

  OpTest part("Einsum", 12);
  part.input("a", floats({3, 2, 2}, iota_floats(12))).attr(Attribute::make_string("equation", "ijj->ij"));
  auto p = part.run();
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  expect_near((*p)[0], {3, 2}, {0, 3, 4, 7, 8, 11});

  // Implicit output orders labels alphabetically ("ba" -> "ab": a transpose).
  OpTest tp("Einsum", 12);
  tp.input("a", floats({2, 3}, iota_floats(6))).attr(Attribute::make_string("equation", "ba"));
  auto to = tp.run();
  ASSERT_TRUE(to.is_ok()) << to.status().to_string();
  expect_near((*to)[0], {3, 2}, {0, 3, 1, 4, 2, 5});
}

TEST(Einsum, EllipsisBroadcastAndThreeInputs) {
  OpTest bmm("Einsum", 12);
  bmm.input("a", floats({2, 3, 4}, iota_floats(24))).input("b", floats({2, 4, 1}, iota_floats(8)))
      .attr(Attribute::make_string("equation", "...ij,...jk->...ik"));
  auto b = bmm.run();
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  expect_near((*b)[0], {2, 3, 1}, {14, 38, 62, 302, 390, 478});

  OpTest bc("Einsum", 12);
  bc.input("a", floats({2, 3}, iota_floats(6))).input("b", floats({1, 3}, {0, 1, 2}))
      .attr(Attribute::make_string("equation", "...j,...j->..."));
  auto bo = bc.run();
  ASSERT_TRUE(bo.is_ok()) << bo.status().to_string();
  expect_near((*bo)[0], {2}, {5, 14});

  OpTest three("Einsum", 12);
  three.input("a", int64s({2, 2}, {0, 1, 2, 3})).input("b", int64s({2, 2}, {0, 1, 2, 3})).input("c", int64s({2}, {0, 1}))
      .attr(Attribute::make_string("equation", "ij,jk,k->i"));
  auto t3 = three.run();
  ASSERT_TRUE(t3.is_ok()) << t3.status().to_string();
  EXPECT_EQ((*t3)[0].dtype(), DataType::kInt64);
  expect_near((*t3)[0], {2}, {3, 11});

  OpTest outer("Einsum", 12);
  outer.input("a", floats({3}, {0, 1, 2})).input("b", floats({4}, {0, 1, 2, 3}))
      .attr(Attribute::make_string("equation", "i,j->"));
  auto oo = outer.run();
  ASSERT_TRUE(oo.is_ok()) << oo.status().to_string();
  expect_near((*oo)[0], {}, {18});

  OpTest empty("Einsum", 12);
  empty.input("a", floats({2, 0}, {})).input("b", floats({0, 3}, {}))
      .attr(Attribute::make_string("equation", "ij,jk->ik"));
  auto eo = empty.run();
  ASSERT_TRUE(eo.is_ok()) << eo.status().to_string();
  expect_near((*eo)[0], {2, 3}, {0, 0, 0, 0, 0, 0});
}

TEST(Einsum, Errors) {
  struct Case {
    const char* eq;
    const char* needle;
  } cases[] = {
      {"ij->ik,", "invalid character"}, {"ij->ik", "does not appear"}, {"ij->ii", "repeats"},
      {"ijk->i", "does not fit"},          {"i.j->i", "bad '...'"},       {"ij,jk", "2 terms for 1 inputs"},
  };
  for (const auto& c : cases) {
    OpTest t("Einsum", 12);
    t.input("a", floats({2, 3}, iota_floats(6))).attr(Attribute::make_string("equation", c.eq));
    expect_error(t.run(), c.needle);
  }
  OpTest size("Einsum", 12);
  size.input("a", floats({2, 3}, iota_floats(6))).input("b", floats({2, 3}, iota_floats(6)))
      .attr(Attribute::make_string("equation", "ij,ji->"));
  expect_error(size.run(), "sizes");
  OpTest missing("Einsum", 12);
  missing.input("a", floats({1}, {1}));
  expect_error(missing.run(), "equation");
}

}  // namespace
}  // namespace kiln::test

namespace kiln::test {
namespace {

TEST(Einsum, InferKeepsElementType) {
  auto r = InferTest("Einsum", 12)
               .input(tensor_type(DataType::kFloat64, {2, 3}))
               .attr(ir::Attribute::make_string("equation", "ij->ji"))
               .run();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].to_string(), "double*");
}

}  // namespace
}  // namespace kiln::test
