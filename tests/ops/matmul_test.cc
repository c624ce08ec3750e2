// Gemm, MatMul and MatMulInteger. Large cases are checked against naive
// triple loops written here; small ones against hand- or numpy-computed values.
#include <random>

#include "core/thread_pool.h"
#include "ops/op_test_util.h"
#include "ops/registry.h"

namespace kiln::test {
namespace {

using ir::Attribute;

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(gen);
  return v;
}

std::vector<float> iota(int64_t n, float start = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
  return v;
}

Result<Tensor> run1(OpTest& t) {
  KILN_ASSIGN_OR_RETURN(auto out, t.run());
  return out[0];
}

TEST(MatMul, TwoByTwo) {
  OpTest t("MatMul", 13);
  t.input("a", floats({2, 3}, {1, 2, 3, 4, 5, 6})).input("b", floats({3, 2}, {7, 8, 9, 10, 11, 12}));
  auto y = run1(t);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_near(*y, {2, 2}, {58, 64, 139, 154});
}

TEST(MatMul, OneDimensionalOperands) {
  {
    OpTest t("MatMul", 13);  // [3] x [3,2] -> [2]
    t.input("a", floats({3}, {1, 2, 3})).input("b", floats({3, 2}, {1, 2, 3, 4, 5, 6}));
    auto y = run1(t);
    ASSERT_TRUE(y.is_ok()) << y.status().to_string();
    expect_near(*y, {2}, {22, 28});
  }
  {
    OpTest t("MatMul", 13);  // [2,2,3] x [3] -> [2,2]
    t.input("a", floats({2, 2, 3}, iota(12))).input("b", floats({3}, {1, 0, -1}));
    auto y = run1(t);
    ASSERT_TRUE(y.is_ok()) << y.status().to_string();
    expect_near(*y, {2, 2}, {-2, -2, -2, -2});
  }
  {
    OpTest t("MatMul", 13);  // [3] x [3] -> []
    t.input("a", floats({3}, {1, 2, 3})).input("b", floats({3}, {4, 5, 6}));
    auto y = run1(t);
    ASSERT_TRUE(y.is_ok()) << y.status().to_string();
    expect_near(*y, {}, {32});
  }
}

// Naive batched matmul on broadcast batch dims, for the differential tests.
std::vector<double> naive_matmul(const Dims& ad, const std::vector<float>& a, const Dims& bd,
                                 const std::vector<float>& b, const Dims& out) {
  const int64_t m = ad[ad.size() - 2], k = ad.back(), n = bd.back();
  Dims batch(out.begin(), out.end() - 2);
  Dims ba(ad.begin(), ad.end() - 2), bb(bd.begin(), bd.end() - 2);
  std::vector<double> y;
  ops::BroadcastIterator it(batch, {ba, bb});
  int64_t batches = 1;
  for (int64_t d : batch) batches *= d;
  for (int64_t bi = 0; bi < batches; ++bi) {
    const int64_t ao = it.offset(0) * m * k, bo = it.offset(1) * k * n;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < k; ++p) {
          acc += static_cast<double>(a[static_cast<size_t>(ao + i * k + p)]) * b[static_cast<size_t>(bo + p * n + j)];
        }
        y.push_back(acc);
      }
    }
    if (bi + 1 < batches) it.next();
  }
  return y;
}

TEST(MatMul, BatchedBroadcastMatchesNaive) {
  struct Case {
    Dims a, b, out;
  };
  const std::vector<Case> cases = {
      {{2, 1, 2, 3}, {3, 3, 2}, {2, 3, 2, 2}},
      {{4, 5, 6}, {6, 7}, {4, 5, 7}},             // B shared: batches folded into rows
      {{5, 6}, {3, 6, 4}, {3, 5, 4}},             // A shared
      {{1, 70, 300}, {300, 130}, {1, 70, 130}},   // several GEMM tiles and K blocks
      {{3, 33, 17}, {3, 17, 290}, {3, 33, 290}},
  };
  uint32_t seed = 3;
  for (const auto& c : cases) {
    SCOPED_TRACE(dims_to_string(c.a) + " x " + dims_to_string(c.b));
    int64_t na = 1, nb = 1;
    for (int64_t d : c.a) na *= d;
    for (int64_t d : c.b) nb *= d;
    auto a = random_values(na, seed++);
    auto b = random_values(nb, seed++);
    auto expected = naive_matmul(c.a, a, c.b, b, c.out);
    OpTest t("MatMul", 13);
    t.input("a", floats(c.a, a)).input("b", floats(c.b, b));
    auto y = run1(t);
    ASSERT_TRUE(y.is_ok()) << y.status().to_string();
    expect_near(*y, c.out, expected, 1e-4, 1e-4);
    // Same node on a thread pool.
    ThreadPool pool(3);
    auto program = exec::Program::compile(t.graph());
    ASSERT_TRUE(program.is_ok());
    std::vector<Datum> feeds{Datum(floats(c.a, a)), Datum(floats(c.b, b))};
    auto par = exec::execute(**program, feeds, &pool);
    ASSERT_TRUE(par.is_ok()) << par.status().to_string();
    expect_near((*par)[0].tensor(), c.out, expected, 1e-4, 1e-4);
  }
}

TEST(MatMul, IntegerAndHalfTypes) {
  for (DataType dt : {DataType::kInt32, DataType::kInt64, DataType::kUInt32, DataType::kUInt64, DataType::kFloat64,
                      DataType::kFloat16, DataType::kBFloat16}) {
    SCOPED_TRACE(std::string(data_type_name(dt)));
    OpTest t("MatMul", 13);
    t.input("a", make_tensor(dt, {2, 3}, std::vector<int>{1, 2, 3, 4, 5, 6}));
    t.input("b", make_tensor(dt, {3, 2}, std::vector<int>{7, 8, 9, 10, 11, 12}));
    auto y = run1(t);
    ASSERT_TRUE(y.is_ok()) << y.status().to_string();
    EXPECT_EQ(y->dtype(), dt);
    expect_near(*y, {2, 2}, {58, 64, 139, 154}, 0.0, dt == DataType::kBFloat16 ? 1e-2 : 1e-3);
  }
}

TEST(MatMul, ZeroSizedDims) {
  OpTest t("MatMul", 13);
  t.input("a", floats({2, 0}, {})).input("b", floats({0, 3}, {}));
  auto y = run1(t);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_near(*y, {2, 3}, {0, 0, 0, 0, 0, 0});  // an empty sum is zero
  OpTest u("MatMul", 13);
  u.input("a", floats({0, 2, 3}, {})).input("b", floats({3, 4}, std::vector<float>(12, 1.0f)));
  auto z = run1(u);
  ASSERT_TRUE(z.is_ok()) << z.status().to_string();
  EXPECT_EQ(z->dims(), (Dims{0, 2, 4}));
}

TEST(MatMul, Errors) {
  auto status_of = [](Tensor a, Tensor b) {
    OpTest t("MatMul", 13);
    t.input("a", std::move(a)).input("b", std::move(b));
    return t.run().status();
  };
  Status s = status_of(floats({2, 3}, iota(6)), floats({2, 3}, iota(6)));
  EXPECT_NE(s.message().find("inner dimensions"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("MatMul"), std::string::npos) << s.message();
  s = status_of(floats({2, 2, 3}, iota(12)), floats({3, 3, 2}, iota(18)));
  EXPECT_NE(s.message().find("broadcast"), std::string::npos) << s.message();
  s = status_of(floats({}, {1}), floats({1}, {1}));
  EXPECT_NE(s.message().find("rank"), std::string::npos) << s.message();
  s = status_of(floats({2, 2}, iota(4)), int64s({2, 2}, {1, 2, 3, 4}));
  EXPECT_FALSE(s.is_ok());
}

TEST(MatMul, ShapeInference) {
  ir::Graph g("g");
  auto* a = g.add_value("a", ir::ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("B"), Dim(1), Dim(5), Dim(7)})))
                .value();
  auto* b = g.add_value("b", ir::ValueType::tensor(DataType::kFloat32, Shape({Dim(3), Dim(7), Dim()}))).value();
  auto* y = g.add_value("y").value();
  ir::Node* n = g.add_node("MatMul", {a, b}, {y}, "m");
  n->set_opset(13);
  ops::InferContext ctx(*n);
  ASSERT_TRUE(ops::Registry::global().find("", "MatMul", 13)->infer(ctx).is_ok());
  EXPECT_EQ(y->type().to_string(), "float[B,3,5,?]");
}

// ---- Gemm --------------------------------------------------------------------

TEST(Gemm, TransposesAlphaBetaAndBroadcastC) {
  // A^T where A is stored [3, 2]; B^T where B is stored [4, 3].
  const std::vector<float> a_stored = {1, 4, 2, 5, 3, 6};                      // A = [[1,2,3],[4,5,6]]
  const std::vector<float> b_stored = {1, 0, 2, 0, 1, 0, 3, 1, 0, 1, 1, 1};    // B^T rows
  // A x B = [[1*1+2*0+3*2, 2, 3+2, 1+2+3], [4+12, 5, 12+5, 15]] = [[7,2,5,6],[16,5,17,15]]
  struct Case {
    std::vector<Attribute> attrs;
    Tensor c;
    std::vector<double> expected;
  };
  std::vector<Case> cases;
  cases.push_back({{}, floats({1}, {10}), {17, 12, 15, 16, 26, 15, 27, 25}});
  cases.push_back({{Attribute::make_float("alpha", 2.0f), Attribute::make_float("beta", 0.5f)},
                   floats({4}, {2, 4, 6, 8}),
                   {15, 6, 13, 16, 33, 12, 37, 34}});
  cases.push_back({{Attribute::make_float("beta", -1.0f)}, floats({2, 1}, {1, 2}), {6, 1, 4, 5, 14, 3, 15, 13}});
  cases.push_back({{Attribute::make_float("beta", 0.0f)}, floats({2, 4}, iota(8)), {7, 2, 5, 6, 16, 5, 17, 15}});
  for (auto& c : cases) {
    OpTest t("Gemm", 13);
    t.input("a", floats({3, 2}, a_stored)).input("b", floats({4, 3}, b_stored)).input("c", c.c);
    t.attr(Attribute::make_int("transA", 1)).attr(Attribute::make_int("transB", 1));
    for (auto& a : c.attrs) t.attr(a);
    auto y = run1(t);
    ASSERT_TRUE(y.is_ok()) << y.status().to_string();
    expect_near(*y, {2, 4}, c.expected);
  }
}

TEST(Gemm, OptionalCSinceOpset11) {
  OpTest t("Gemm", 11);
  t.input("a", floats({1, 2}, {1, 2})).input("b", floats({2, 1}, {3, 4}));
  auto y = run1(t);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_near(*y, {1, 1}, {11});
  OpTest old("Gemm", 9);
  old.input("a", floats({1, 2}, {1, 2})).input("b", floats({2, 1}, {3, 4}));
  Status s = old.run().status();
  EXPECT_NE(s.message().find("C is required"), std::string::npos) << s.message();
}

TEST(Gemm, OtherTypes) {
  for (DataType dt : {DataType::kInt32, DataType::kInt64, DataType::kUInt64, DataType::kFloat16, DataType::kBFloat16,
                      DataType::kFloat64}) {
    SCOPED_TRACE(std::string(data_type_name(dt)));
    OpTest t("Gemm", 13);
    t.input("a", make_tensor(dt, {2, 2}, std::vector<int>{1, 2, 3, 4}))
        .input("b", make_tensor(dt, {2, 2}, std::vector<int>{5, 6, 7, 8}))
        .input("c", make_tensor(dt, {2}, std::vector<int>{1, 2}));
    auto y = run1(t);
    ASSERT_TRUE(y.is_ok()) << y.status().to_string();
    EXPECT_EQ(y->dtype(), dt);
    expect_near(*y, {2, 2}, {20, 24, 44, 52});
  }
}

TEST(Gemm, LargeMatchesNaive) {
  const int64_t m = 45, k = 260, n = 300;
  auto a = random_values(m * k, 5), b = random_values(n * k, 6);  // B given transposed
  OpTest t("Gemm", 13);
  t.input("a", floats({m, k}, a)).input("b", floats({n, k}, b)).attr(Attribute::make_int("transB", 1));
  auto y = run1(t);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  std::vector<double> expected;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) acc += static_cast<double>(a[static_cast<size_t>(i * k + p)]) * b[static_cast<size_t>(j * k + p)];
      expected.push_back(acc);
    }
  }
  expect_near(*y, {m, n}, expected, 1e-4, 1e-4);
}

TEST(Gemm, Errors) {
  auto status_of = [](Tensor a, Tensor b, Tensor c) {
    OpTest t("Gemm", 13);
    t.input("a", std::move(a)).input("b", std::move(b));
    if (c.defined()) t.input("c", std::move(c));
    return t.run().status();
  };
  Status s = status_of(floats({2, 3}, iota(6)), floats({2, 3}, iota(6)), Tensor());
  EXPECT_NE(s.message().find("inner dimensions"), std::string::npos) << s.message();
  s = status_of(floats({2, 3}, iota(6)), floats({3, 2}, iota(6)), floats({3}, iota(3)));
  EXPECT_NE(s.message().find("does not broadcast"), std::string::npos) << s.message();
  s = status_of(floats({6}, iota(6)), floats({3, 2}, iota(6)), Tensor());
  EXPECT_NE(s.message().find("2-D"), std::string::npos) << s.message();
}

// ---- MatMulInteger -------------------------------------------------------------

TEST(MatMulInteger, PerRowAndPerColumnZeroPoints) {
  // (A - [[1],[2]]) x (B - [3, 1]) computed with numpy.
  OpTest t("MatMulInteger", 10);
  t.input("a", make_tensor(DataType::kUInt8, {2, 3}, std::vector<int>{1, 2, 3, 4, 5, 6}))
      .input("b", make_tensor(DataType::kUInt8, {3, 2}, std::vector<int>{1, 2, 3, 4, 5, 6}))
      .input("az", make_tensor(DataType::kUInt8, {2}, std::vector<int>{1, 2}))
      .input("bz", make_tensor(DataType::kUInt8, {2}, std::vector<int>{3, 1}));
  auto y = run1(t);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(y->dtype(), DataType::kInt32);
  expect_near(*y, {2, 2}, {4, 13, 4, 31});
}

TEST(MatMulInteger, Int8ScalarZeroPoint) {
  // onnxruntime 1.32: A int8 [[1,-2,3],[4,5,-6]], B int8 [[1,2],[3,-4],[5,6]], a_zero_point -1.
  OpTest t("MatMulInteger", 10);
  t.input("a", make_tensor(DataType::kInt8, {2, 3}, std::vector<int>{1, -2, 3, 4, 5, -6}))
      .input("b", make_tensor(DataType::kInt8, {3, 2}, std::vector<int>{1, 2, 3, -4, 5, 6}))
      .input("az", make_tensor(DataType::kInt8, {}, std::vector<int>{-1}));
  auto y = run1(t);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  expect_near(*y, {2, 2}, {19, 32, -2, -44});
}

TEST(MatMulInteger, Errors) {
  OpTest t("MatMulInteger", 10);
  t.input("a", make_tensor(DataType::kUInt8, {2, 3}, std::vector<int>{1, 2, 3, 4, 5, 6}))
      .input("b", make_tensor(DataType::kUInt8, {3, 2}, std::vector<int>{1, 2, 3, 4, 5, 6}))
      .input("az", make_tensor(DataType::kUInt8, {3}, std::vector<int>{1, 2, 3}));
  Status s = t.run().status();
  EXPECT_NE(s.message().find("zero point"), std::string::npos) << s.message();
  OpTest f("MatMulInteger", 10);
  f.input("a", floats({1, 1}, {1})).input("b", floats({1, 1}, {1}));
  EXPECT_FALSE(f.run().is_ok());
}

}  // namespace
}  // namespace kiln::test
