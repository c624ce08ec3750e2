// Tests of the ai.onnx.ml ops: LabelEncoder (1, 2, 4), ArrayFeatureExtractor,
// Binarizer and TreeEnsemble (5).
#include <gtest/gtest.h>

#include <cmath>

#include "ops/op_test_util.h"

namespace kiln::test {
namespace {

using ir::Attribute;
constexpr const char* kMl = "ai.onnx.ml";

Attribute strings_attr(const std::string& name, std::vector<std::string> v) {
  Attribute a;
  a.name = name;
  a.kind = Attribute::Kind::kStrings;
  a.strings = std::move(v);
  return a;
}

Tensor run1(OpTest& t) {
  auto r = t.run();
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? (*r)[0] : Tensor();
}

// Shape inference of one ai.onnx.ml node with the given input types.
Result<ir::ValueType> infer_ml(const std::string& op, int64_t opset, std::vector<ir::ValueType> inputs,
                               std::vector<Attribute> attrs) {
  ir::Graph g("infer");
  std::vector<ir::Value*> ins;
  for (size_t i = 0; i < inputs.size(); ++i) ins.push_back(g.add_value("in" + std::to_string(i), inputs[i]).value());
  ir::Value* out = g.add_value("out").value();
  ir::Node* node = g.add_node(op, ins, {out}, op, kMl);
  node->set_opset(opset);
  for (auto& a : attrs) node->set_attr(a);
  const ops::OpDef* def = ops::Registry::global().find(kMl, op, opset);
  if (def == nullptr || def->infer == nullptr) return not_found("no shape inference for {}", op);
  ops::InferContext ctx(*node);
  KILN_RETURN_IF_ERROR(def->infer(ctx));
  return out->type();
}

// ---- LabelEncoder -------------------------------------------------------------------

TEST(LabelEncoder, StringsToIntsWithDefault) {
  OpTest t("LabelEncoder", 2, kMl);
  t.input("x", strings({2, 3}, {"a", "b", "zz", "c", "a", ""}))
      .attr(strings_attr("keys_strings", {"a", "b", "c", "a"}))
      .attr(Attribute::make_ints("values_int64s", {1, 2, 3, 7}))
      .attr(Attribute::make_int("default_int64", -5));
  Tensor y = run1(t);
  EXPECT_EQ(y.dtype(), DataType::kInt64);
  expect_near(y, {2, 3}, {7, 2, -5, 3, 7, -5});  // a repeated key: the last one wins
}

TEST(LabelEncoder, FloatsToStringsWithNaNKeyAndDefaultString) {
  OpTest t("LabelEncoder", 2, kMl);
  t.input("x", floats({4}, {1.5f, NAN, -0.0f, 3}))
      .attr(Attribute::make_floats("keys_floats", {1.5f, NAN, 0.0f}))
      .attr(strings_attr("values_strings", {"one", "nan", "zero"}));
  Tensor y = run1(t);
  EXPECT_EQ(string_values(y), (std::vector<std::string>{"one", "nan", "zero", "_Unused"}));
}

TEST(LabelEncoder, Opset4Tensors) {
  OpTest t("LabelEncoder", 4, kMl);
  t.input("x", int32s({3}, {10, 20, 30}))
      .attr(Attribute::make_tensor("keys_tensor", int64s({2}, {10, 30})))
      .attr(Attribute::make_tensor("values_tensor", make_tensor(DataType::kInt16, {2}, std::vector<int>{-1, 3})))
      .attr(Attribute::make_tensor("default_tensor", make_tensor(DataType::kInt16, {1}, std::vector<int>{42})));
  Tensor y = run1(t);
  EXPECT_EQ(y.dtype(), DataType::kInt16);
  expect_near(y, {3}, {-1, 42, 3});

  // values_tensor without default_tensor: -0.0 for floats.
  OpTest u("LabelEncoder", 4, kMl);
  u.input("x", strings({2}, {"x", "q"}))
      .attr(strings_attr("keys_strings", {"x"}))
      .attr(Attribute::make_tensor("values_tensor", doubles({1}, {2.5})));
  Tensor z = run1(u);
  EXPECT_EQ(z.dtype(), DataType::kFloat64);
  ASSERT_EQ(z.numel(), 2);
  EXPECT_EQ(z.data<double>()[0], 2.5);
  EXPECT_TRUE(z.data<double>()[1] == 0.0 && std::signbit(z.data<double>()[1]));
}

TEST(LabelEncoder, Opset1ClassesBothWays) {
  OpTest t("LabelEncoder", 1, kMl);
  t.input("x", strings({3}, {"b", "a", "q"})).attr(strings_attr("classes_strings", {"a", "b"}));
  expect_near(run1(t), {3}, {1, 0, -1});
  OpTest u("LabelEncoder", 1, kMl);
  u.input("x", int64s({3}, {1, 0, 9}))
      .attr(strings_attr("classes_strings", {"a", "b"}))
      .attr(Attribute::make_string("default_string", "?"));
  EXPECT_EQ(string_values(run1(u)), (std::vector<std::string>{"b", "a", "?"}));
}

TEST(LabelEncoder, Errors) {
  OpTest t("LabelEncoder", 2, kMl);
  t.input("x", strings({1}, {"a"}))
      .attr(strings_attr("keys_strings", {"a", "b"}))
      .attr(Attribute::make_ints("values_int64s", {1}));
  expect_error(t.run(), "2 keys but 1 values");
  OpTest u("LabelEncoder", 2, kMl);
  u.input("x", floats({1}, {1})).attr(strings_attr("keys_strings", {"a"})).attr(Attribute::make_ints("values_int64s", {1}));
  expect_error(u.run(), "input X is float but the keys are string");
  OpTest v("LabelEncoder", 2, kMl);
  v.input("x", strings({1}, {"a"})).attr(strings_attr("keys_strings", {"a"}));
  expect_error(v.run(), "exactly one keys_* and one values_*");
  OpTest w("LabelEncoder", 4, kMl);
  w.input("x", strings({1}, {"a"}))
      .attr(strings_attr("keys_strings", {"a"}))
      .attr(Attribute::make_ints("values_int64s", {1}))
      .attr(Attribute::make_tensor("default_tensor", floats({1}, {0})));
  expect_error(w.run(), "default_tensor must hold one int64");
}

TEST(LabelEncoder, Infer) {
  auto t = infer_ml("LabelEncoder", 2, {tensor_type(DataType::kString, {Dim::sym("N"), 2})},
                    {strings_attr("keys_strings", {"a"}), Attribute::make_floats("values_floats", {1})});
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->to_string(), "float[N,2]");
}

// ---- ArrayFeatureExtractor -------------------------------------------------------------

TEST(ArrayFeatureExtractor, SelectsLastAxis) {
  OpTest t("ArrayFeatureExtractor", 1, kMl);
  t.input("x", floats({2, 3}, {1, 2, 3, 4, 5, 6})).input("i", int64s({1, 2}, {2, 0}));
  expect_near(run1(t), {2, 2}, {3, 1, 6, 4});
  OpTest u("ArrayFeatureExtractor", 1, kMl);
  u.input("x", strings({3}, {"a", "b", "c"})).input("i", int64s({3}, {1, 1, 2}));
  Tensor y = run1(u);
  EXPECT_EQ(dims_to_string(y.dims()), "[1,3]");  // a 1-D X gives one row
  EXPECT_EQ(string_values(y), (std::vector<std::string>{"b", "b", "c"}));
  OpTest v("ArrayFeatureExtractor", 1, kMl);
  v.input("x", floats({0, 3}, {})).input("i", int64s({1}, {1}));
  expect_near(run1(v), {0, 1}, {});
}

TEST(ArrayFeatureExtractor, Errors) {
  OpTest t("ArrayFeatureExtractor", 1, kMl);
  t.input("x", floats({2, 3}, {1, 2, 3, 4, 5, 6})).input("i", int64s({1}, {3}));
  expect_error(t.run(), "index 3 is out of range");
  OpTest u("ArrayFeatureExtractor", 1, kMl);
  u.input("x", floats({2}, {1, 2})).input("i", int64s({1}, {-1}));
  expect_error(u.run(), "out of range");
  OpTest v("ArrayFeatureExtractor", 1, kMl);
  v.input("x", floats({2}, {1, 2})).input("i", int32s({1}, {0}));
  expect_error(v.run(), "must be int64");
  auto ty = infer_ml("ArrayFeatureExtractor", 1,
                     {tensor_type(DataType::kFloat32, {Dim::sym("N"), 5}), tensor_type(DataType::kInt64, {1, 2})}, {});
  ASSERT_TRUE(ty.is_ok()) << ty.status().to_string();
  EXPECT_EQ(ty->to_string(), "float[N,2]");
}

// ---- Binarizer -------------------------------------------------------------------------

TEST(Binarizer, ThresholdAndTypes) {
  OpTest t("Binarizer", 1, kMl);
  t.input("x", floats({2, 2}, {-1, 0.5f, 0.6f, NAN})).attr(Attribute::make_float("threshold", 0.5f));
  expect_near(run1(t), {2, 2}, {0, 0, 1, 0});
  OpTest u("Binarizer", 1, kMl);
  u.input("x", int64s({3}, {-2, 0, 5}));
  Tensor y = run1(u);
  EXPECT_EQ(y.dtype(), DataType::kInt64);
  expect_near(y, {3}, {0, 0, 1});
  OpTest v("Binarizer", 1, kMl);
  v.input("x", strings({1}, {"a"}));
  expect_error(v.run(), "must be float, double, int64 or int32");
}

// ---- TreeEnsemble ----------------------------------------------------------------------

// Two trees over 2 features and 2 targets:
//   tree 0: node 0 (x0 <= 1.5) ? leaf 0 (t0, 1.0) : node 1 (x1 in {2, 5}) ? leaf 1 (t1, 10) : leaf 2 (t0, 3.0)
//   tree 1: node 2 (x1 > 0, NaN goes true) ? leaf 3 (t0, 0.5) : leaf 4 (t1, -2)
OpTest tree(Tensor x, int64_t aggregate = 1, int64_t post = 0) {
  OpTest t("TreeEnsemble", 5, kMl);
  t.input("x", std::move(x))
      .attr(Attribute::make_tensor("nodes_splits", floats({3}, {1.5f, 0, 0})))
      .attr(Attribute::make_ints("nodes_featureids", {0, 1, 1}))
      .attr(Attribute::make_tensor("nodes_modes", make_tensor(DataType::kUInt8, {3}, std::vector<int>{0, 6, 3})))
      .attr(Attribute::make_ints("nodes_truenodeids", {0, 1, 3}))
      .attr(Attribute::make_ints("nodes_trueleafs", {1, 1, 1}))
      .attr(Attribute::make_ints("nodes_falsenodeids", {1, 2, 4}))
      .attr(Attribute::make_ints("nodes_falseleafs", {0, 1, 1}))
      .attr(Attribute::make_ints("nodes_missing_value_tracks_true", {0, 0, 1}))
      .attr(Attribute::make_tensor("membership_values", floats({3}, {2, 5, NAN})))
      .attr(Attribute::make_ints("leaf_targetids", {0, 1, 0, 0, 1}))
      .attr(Attribute::make_tensor("leaf_weights", floats({5}, {1, 10, 3, 0.5f, -2})))
      .attr(Attribute::make_ints("tree_roots", {0, 2}))
      .attr(Attribute::make_int("n_targets", 2))
      .attr(Attribute::make_int("aggregate_function", aggregate))
      .attr(Attribute::make_int("post_transform", post));
  return t;
}

Tensor tree_input() { return floats({4, 2}, {1, 1, 2, 5, 2, 7, 2, NAN}); }

TEST(TreeEnsemble, SumAverageMinMax) {
  // Leaves per row: {0, 3}, {1, 3}, {2, 3}, {2, 3} (row 3: NaN takes the true branch of node 2).
  OpTest sum = tree(tree_input());
  expect_near(run1(sum), {4, 2}, {1.5, 0, 0.5, 10, 3.5, 0, 3.5, 0});
  OpTest avg = tree(tree_input(), 0);
  expect_near(run1(avg), {4, 2}, {0.75, 0, 0.25, 5, 1.75, 0, 1.75, 0});
  OpTest mn = tree(tree_input(), 2);
  const double fmax = std::numeric_limits<float>::max();
  expect_near(run1(mn), {4, 2}, {0.5, fmax, 0.5, 10, 0.5, fmax, 0.5, fmax}, 1e-5, 1e-6);
  OpTest mx = tree(doubles({1, 2}, {0, -1}), 3);
  Tensor y = run1(mx);
  EXPECT_EQ(y.dtype(), DataType::kFloat64);
  expect_near(y, {1, 2}, {1, -2});
}

TEST(TreeEnsemble, PostTransforms) {
  OpTest logistic = tree(floats({1, 2}, {0, -1}), 1, 2);  // scores {1, -2}
  expect_near(run1(logistic), {1, 2}, {1 / (1 + std::exp(-1.0)), 1 / (1 + std::exp(2.0))});
  OpTest softmax = tree(floats({1, 2}, {0, -1}), 1, 1);
  const double e = std::exp(3.0);
  expect_near(run1(softmax), {1, 2}, {e / (e + 1), 1 / (e + 1)});
  OpTest softmax_zero = tree(floats({1, 2}, {2, 7}), 1, 3);  // scores {3.5, 0}
  expect_near(run1(softmax_zero), {1, 2}, {1, 0});
  // Probit of p = sqrt(2) * erfinv(2p - 1): scores {0.5, 10} -> {0, inf}; use AVERAGE {0.25, 5}.
  OpTest probit = tree(floats({1, 2}, {2, 5}), 0, 4);
  Tensor p = run1(probit);
  ASSERT_EQ(p.numel(), 2);
  EXPECT_NEAR(p.data<float>()[0], -0.6744897501960817, 1e-5);  // scipy.stats.norm.ppf(0.25)
  EXPECT_TRUE(std::isnan(p.data<float>()[1]));                  // p = 5 is outside [0, 1]
}

TEST(TreeEnsemble, Errors) {
  OpTest wide = tree(floats({1, 1}, {0}));
  expect_error(wide.run(), "reads feature 1 but X has 1 features");
  OpTest rank = tree(floats({2}, {0, 1}));
  expect_error(rank.run(), "must be 2-D");

  OpTest bad_leaf = tree(tree_input());
  bad_leaf.attr(Attribute::make_ints("nodes_falsenodeids", {1, 2, 9}));
  expect_error(bad_leaf.run(), "branches to leaf 9");
  OpTest bad_target = tree(tree_input());
  bad_target.attr(Attribute::make_ints("leaf_targetids", {0, 1, 0, 0, 2}));
  expect_error(bad_target.run(), "leaf_targetids has 2");
  OpTest no_members = tree(tree_input());
  no_members.attr(Attribute::make_tensor("membership_values", floats({2}, {2, 5})));
  expect_error(no_members.run(), "NaN-terminated");
  OpTest bad_mode = tree(tree_input());
  bad_mode.attr(Attribute::make_tensor("nodes_modes", make_tensor(DataType::kUInt8, {3}, std::vector<int>{0, 6, 9})));
  expect_error(bad_mode.run(), "not a mode");
  OpTest short_arrays = tree(tree_input());
  short_arrays.attr(Attribute::make_ints("nodes_truenodeids", {0, 1}));
  expect_error(short_arrays.run(), "must all have 3 entries");
  OpTest bad_agg = tree(tree_input(), 7);
  expect_error(bad_agg.run(), "aggregate_function");

  // Node 1 branches back to node 0: a cycle must be reported, not followed forever.
  OpTest cycle = tree(floats({1, 2}, {2, 0}));
  cycle.attr(Attribute::make_ints("nodes_falsenodeids", {1, 0, 4}))
      .attr(Attribute::make_ints("nodes_falseleafs", {0, 0, 1}));
  expect_error(cycle.run(), "cycle");
}

TEST(TreeEnsemble, SingleLeafTreeAndInfer) {
  OpTest t("TreeEnsemble", 5, kMl);
  t.input("x", floats({2, 1}, {0, 1}))
      .attr(Attribute::make_tensor("nodes_splits", floats({1}, {0})))
      .attr(Attribute::make_ints("nodes_featureids", {7}))  // never read: the tree is one leaf
      .attr(Attribute::make_tensor("nodes_modes", make_tensor(DataType::kUInt8, {1}, std::vector<int>{0})))
      .attr(Attribute::make_ints("nodes_truenodeids", {0}))
      .attr(Attribute::make_ints("nodes_trueleafs", {1}))
      .attr(Attribute::make_ints("nodes_falsenodeids", {0}))
      .attr(Attribute::make_ints("nodes_falseleafs", {1}))
      .attr(Attribute::make_ints("leaf_targetids", {0}))
      .attr(Attribute::make_tensor("leaf_weights", floats({1}, {4})))
      .attr(Attribute::make_ints("tree_roots", {0}));
  expect_near(run1(t), {2, 1}, {4, 4});

  auto ty = infer_ml("TreeEnsemble", 5, {tensor_type(DataType::kFloat32, {Dim::sym("N"), 2})},
                     {Attribute::make_tensor("nodes_splits", floats({1}, {0})),
                      Attribute::make_ints("nodes_featureids", {0}),
                      Attribute::make_tensor("nodes_modes", make_tensor(DataType::kUInt8, {1}, std::vector<int>{0})),
                      Attribute::make_ints("nodes_truenodeids", {0}), Attribute::make_ints("nodes_trueleafs", {1}),
                      Attribute::make_ints("nodes_falsenodeids", {1}), Attribute::make_ints("nodes_falseleafs", {1}),
                      Attribute::make_ints("leaf_targetids", {0, 2}),
                      Attribute::make_tensor("leaf_weights", floats({2}, {1, 2})),
                      Attribute::make_ints("tree_roots", {0})});
  ASSERT_TRUE(ty.is_ok()) << ty.status().to_string();
  EXPECT_EQ(ty->to_string(), "float[N,3]");  // n_targets defaults to max(leaf_targetids) + 1
}

}  // namespace
}  // namespace kiln::test
