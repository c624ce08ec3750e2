// Conv, ConvTranspose and ConvInteger: differential tests against direct
// (naive) convolution loops written here, plus values from onnxruntime 1.32
// (hard-coded; computed with the one-node model and the inputs shown).
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

int64_t prod(const Dims& d) {
  int64_t p = 1;
  for (int64_t x : d) p *= x;
  return p;
}

// Calls f(index) for every multi-index of `dims` in row-major order.
template <class F>
void for_each_index(const Dims& dims, F&& f) {
  Dims idx(dims.size(), 0);
  for (int64_t i = 0; i < prod(dims); ++i) {
    f(idx);
    for (size_t d = dims.size(); d-- > 0;) {
      if (++idx[d] < dims[d]) break;
      idx[d] = 0;
    }
  }
}

struct ConvCase {
  Dims x;  // [N, C, spatial...]
  Dims w;  // [M, C/group, kernel...]
  int64_t group = 1;
  std::vector<int64_t> strides, dilations, pads;  // empty: defaults
  bool bias = false;
};

// Direct convolution straight from the definition.
std::vector<double> naive_conv(const ConvCase& c, const std::vector<float>& x, const std::vector<float>& w,
                               const std::vector<float>& b, Dims& out_dims) {
  const size_t nd = c.x.size() - 2;
  std::vector<int64_t> s = c.strides.empty() ? std::vector<int64_t>(nd, 1) : c.strides;
  std::vector<int64_t> d = c.dilations.empty() ? std::vector<int64_t>(nd, 1) : c.dilations;
  std::vector<int64_t> p = c.pads.empty() ? std::vector<int64_t>(2 * nd, 0) : c.pads;
  out_dims = {c.x[0], c.w[0]};
  for (size_t i = 0; i < nd; ++i) {
    out_dims.push_back((c.x[i + 2] + p[i] + p[nd + i] - ((c.w[i + 2] - 1) * d[i] + 1)) / s[i] + 1);
  }
  const int64_t cg = c.w[1], mg = c.w[0] / c.group;
  Dims kernel(c.w.begin() + 2, c.w.end());
  std::vector<double> y;
  for_each_index(out_dims, [&](const Dims& o) {
    const int64_t g = o[1] / mg;
    double acc = c.bias ? b[static_cast<size_t>(o[1])] : 0.0;
    for (int64_t ci = 0; ci < cg; ++ci) {
      for_each_index(kernel, [&](const Dims& k) {
        int64_t xoff = o[0] * c.x[1] + g * cg + ci;
        int64_t woff = o[1] * cg + ci;
        for (size_t i = 0; i < nd; ++i) {
          const int64_t ix = o[i + 2] * s[i] - p[i] + k[i] * d[i];
          if (ix < 0 || ix >= c.x[i + 2]) return;
          xoff = xoff * c.x[i + 2] + ix;
          woff = woff * kernel[i] + k[i];
        }
        acc += static_cast<double>(x[static_cast<size_t>(xoff)]) * w[static_cast<size_t>(woff)];
      });
    }
    y.push_back(acc);
  });
  return y;
}

OpTest conv_op(const ConvCase& c, const std::vector<float>& x, const std::vector<float>& w,
               const std::vector<float>& b) {
  OpTest t("Conv", 22);
  t.input("x", floats(c.x, x)).input("w", floats(c.w, w));
  if (c.bias) t.input("b", floats({c.w[0]}, b));
  if (c.group != 1) t.attr(Attribute::make_int("group", c.group));
  if (!c.strides.empty()) t.attr(Attribute::make_ints("strides", c.strides));
  if (!c.dilations.empty()) t.attr(Attribute::make_ints("dilations", c.dilations));
  if (!c.pads.empty()) t.attr(Attribute::make_ints("pads", c.pads));
  return t;
}

// Runs the built node of `t` again on a pool of `threads`, feeding `feeds`.
Result<std::vector<Tensor>> run_on_pool(OpTest& t, const std::vector<Tensor>& feeds, int threads) {
  ThreadPool pool(threads);
  KILN_ASSIGN_OR_RETURN(auto program, exec::Program::compile(t.graph()));
  std::vector<Datum> in(feeds.begin(), feeds.end());
  KILN_ASSIGN_OR_RETURN(std::vector<Datum> out, exec::execute(*program, in, &pool));
  std::vector<Tensor> tensors;
  for (auto& dt : out) tensors.push_back(dt.tensor());
  return tensors;
}

TEST(Conv, MatchesDirectConvolution) {
  const std::vector<ConvCase> cases = {
      {{1, 1, 5, 5}, {1, 1, 3, 3}, 1, {}, {}, {}, false},
      {{2, 3, 7, 6}, {4, 3, 3, 2}, 1, {2, 1}, {}, {1, 0, 2, 1}, true},        // strides, asymmetric pads
      {{1, 2, 9, 9}, {3, 2, 3, 3}, 1, {1, 2}, {2, 3}, {2, 2, 2, 2}, true},    // dilations
      {{1, 4, 6, 5}, {6, 2, 3, 3}, 2, {}, {}, {1, 1, 1, 1}, true},            // groups
      {{2, 6, 8, 8}, {6, 1, 3, 3}, 6, {2, 2}, {}, {1, 1, 1, 1}, true},        // depthwise
      {{1, 8, 5, 7}, {5, 8, 1, 1}, 1, {}, {}, {}, true},                      // pointwise (no im2col)
      {{1, 8, 5, 7}, {5, 8, 1, 1}, 1, {2, 2}, {}, {}, false},                 // strided 1x1
      {{2, 3, 11}, {4, 3, 4}, 1, {3}, {2}, {2, 1}, true},                     // 1-D
      {{1, 2, 5, 4, 6}, {3, 2, 2, 3, 2}, 1, {1, 2, 2}, {2, 1, 1}, {1, 0, 1, 0, 1, 1}, true},  // 3-D
      {{1, 3, 40, 37}, {70, 3, 3, 3}, 1, {1, 1}, {}, {1, 1, 1, 1}, true},     // spans several GEMM tiles
  };
  uint32_t seed = 1;
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(dims_to_string(c.x) + " * " + dims_to_string(c.w));
    auto x = random_values(prod(c.x), seed++);
    auto w = random_values(prod(c.w), seed++);
    auto b = random_values(c.w[0], seed++);
    Dims out_dims;
    std::vector<double> expected = naive_conv(c, x, w, b, out_dims);
    OpTest t = conv_op(c, x, w, b);
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_near((*out)[0], out_dims, expected, 1e-4, 1e-4);
    std::vector<Tensor> feeds = {floats(c.x, x), floats(c.w, w)};
    if (c.bias) feeds.push_back(floats({c.w[0]}, b));
    auto par = run_on_pool(t, feeds, 3);
    ASSERT_TRUE(par.is_ok()) << par.status().to_string();
    expect_near((*par)[0], out_dims, expected, 1e-4, 1e-4);
  }
}

TEST(Conv, MatchesOnnxRuntime) {
  // x = 1..25 as [1,1,5,5]; w = 0.5 * [[1,0,-1],[2,0,-2],[1,0,-1]]; b = 0.25;
  // strides [2,1], pads [1,0,0,2] (onnxruntime 1.32).
  std::vector<float> x(25);
  for (int i = 0; i < 25; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i + 1);
  OpTest t("Conv", 11);
  t.input("x", floats({1, 1, 5, 5}, x))
      .input("w", floats({1, 1, 3, 3}, {0.5f, 0, -0.5f, 1, 0, -1, 0.5f, 0, -0.5f}))
      .input("b", floats({1}, {0.25f}))
      .attr(Attribute::make_ints("strides", {2, 1}))
      .attr(Attribute::make_ints("pads", {1, 0, 0, 2}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 1, 2, 5}, {-2.75, -2.75, -2.75, 8.75, 10.25, -3.75, -3.75, -3.75, 28.25, 30.25});
}

TEST(Conv, AutoPadShapesAndValues) {
  auto x = random_values(1 * 2 * 7 * 6, 7);
  auto w = random_values(3 * 2 * 3 * 4, 8);
  struct Case {
    const char* auto_pad;
    Dims out;
    std::vector<int64_t> pads;  // the explicit pads that auto_pad must equal
  };
  // Strides [2, 3], kernel [3, 4]: SAME gives ceil(in / stride) = [4, 2] with total pads 2 on H
  // (split 1 + 1) and 1 on W (at the end for SAME_UPPER, the beginning for SAME_LOWER).
  const std::vector<Case> cases = {
      {"SAME_UPPER", {1, 3, 4, 2}, {1, 0, 1, 1}},
      {"SAME_LOWER", {1, 3, 4, 2}, {1, 1, 1, 0}},
      {"VALID", {1, 3, 3, 1}, {0, 0, 0, 0}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.auto_pad);
    OpTest t("Conv", 22);
    t.input("x", floats({1, 2, 7, 6}, x)).input("w", floats({3, 2, 3, 4}, w));
    t.attr(Attribute::make_ints("strides", {2, 3})).attr(Attribute::make_string("auto_pad", c.auto_pad));
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    Dims od;
    ConvCase cc{{1, 2, 7, 6}, {3, 2, 3, 4}, 1, {2, 3}, {}, c.pads, false};
    auto expected = naive_conv(cc, x, w, {}, od);
    ASSERT_EQ(od, c.out);
    expect_near((*out)[0], c.out, expected, 1e-5, 1e-5);
  }
}

TEST(Conv, Float16AndDouble) {
  OpTest t("Conv", 22);
  t.input("x", make_tensor(DataType::kFloat16, {1, 1, 2, 2}, std::vector<float>{1, 2, 3, 4}))
      .input("w", make_tensor(DataType::kFloat16, {1, 1, 1, 1}, std::vector<float>{0.5f}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kFloat16);
  expect_near((*out)[0], {1, 1, 2, 2}, {0.5, 1, 1.5, 2});

  OpTest d("Conv", 22);
  d.input("x", make_tensor(DataType::kFloat64, {1, 1, 3}, std::vector<double>{1, 2, 3}))
      .input("w", make_tensor(DataType::kFloat64, {1, 1, 2}, std::vector<double>{1, -1}));
  auto outd = d.run();
  ASSERT_TRUE(outd.is_ok()) << outd.status().to_string();
  EXPECT_EQ((*outd)[0].dtype(), DataType::kFloat64);
  expect_near((*outd)[0], {1, 1, 2}, {-1, -1});
}

TEST(Conv, ZeroBatch) {
  OpTest t("Conv", 22);
  t.input("x", floats({0, 2, 3, 3}, {})).input("w", floats({4, 2, 2, 2}, std::vector<float>(32, 1.0f)));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dims(), (Dims{0, 4, 2, 2}));
}

Status conv_error(Dims xd, Dims wd, std::vector<Attribute> attrs, Dims bd = {}) {
  OpTest t("Conv", 22);
  t.input("x", floats(xd, std::vector<float>(static_cast<size_t>(prod(xd)), 1.0f)));
  t.input("w", floats(wd, std::vector<float>(static_cast<size_t>(prod(wd)), 1.0f)));
  if (!bd.empty()) t.input("b", floats(bd, std::vector<float>(static_cast<size_t>(prod(bd)), 1.0f)));
  for (auto& a : attrs) t.attr(a);
  auto out = t.run();
  return out.status();
}

TEST(Conv, ErrorsAreClear) {
  auto expect_error = [](const Status& s, const char* fragment) {
    EXPECT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("Conv"), std::string::npos) << s.message();
  };
  expect_error(conv_error({1, 4, 5, 5}, {2, 3, 3, 3}, {}), "channels");
  expect_error(conv_error({1, 4, 5, 5}, {2, 1, 3, 3}, {Attribute::make_int("group", 2)}), "channels");
  expect_error(conv_error({1, 4, 5, 5}, {3, 2, 3, 3}, {Attribute::make_int("group", 2)}), "divisible");
  expect_error(conv_error({1, 4, 5, 5}, {2, 4, 3, 3}, {Attribute::make_ints("kernel_shape", {3, 2})}),
               "kernel_shape");
  expect_error(conv_error({1, 4, 5, 5}, {2, 4, 3, 3}, {Attribute::make_ints("strides", {1, 0})}), "strides");
  expect_error(conv_error({1, 4, 5, 5}, {2, 4, 3, 3}, {Attribute::make_ints("strides", {1})}), "strides");
  expect_error(conv_error({1, 4, 5, 5}, {2, 4, 3, 3}, {Attribute::make_ints("dilations", {0, 1})}), "dilations");
  expect_error(conv_error({1, 4, 5, 5}, {2, 4, 3, 3}, {Attribute::make_ints("pads", {-1, 0, 0, 0})}), "pads");
  expect_error(conv_error({1, 4, 2, 5}, {2, 4, 3, 3}, {}), "larger than the padded input");
  expect_error(conv_error({1, 4, 5, 5}, {2, 4, 3}, {}), "rank");
  expect_error(conv_error({4, 5}, {4, 5}, {}), "rank");
  expect_error(conv_error({1, 4, 5, 5}, {2, 4, 3, 3}, {}, {3}), "B must have shape");
  expect_error(conv_error({1, 4, 5, 5}, {2, 4, 3, 3}, {Attribute::make_string("auto_pad", "SAME")}), "auto_pad");
  expect_error(conv_error({1, 4, 5, 5}, {2, 4, 3, 3}, {Attribute::make_int("group", 0)}), "group");
  expect_error(conv_error({1, 4, 5, 5}, {2, 4, 3, 3}, {Attribute::make_ints("strides", {int64_t{1} << 62, 1}),
                                                      Attribute::make_string("auto_pad", "SAME_UPPER")}),
               "out of range");
}

TEST(Conv, ShapeInference) {
  ir::Graph g("g");
  ir::Value* x = g.add_value("x", ir::ValueType::tensor(DataType::kFloat32,
                                                         Shape({Dim::sym("N"), Dim(3), Dim(224), Dim()}))).value();
  ir::Value* w = g.add_value("w", ir::ValueType::tensor(DataType::kFloat32, Shape::of({64, 3, 7, 7}))).value();
  ir::Value* y = g.add_value("y").value();
  ir::Node* n = g.add_node("Conv", {x, w}, {y}, "c");
  n->set_opset(22);
  n->set_attr(Attribute::make_ints("strides", {2, 2}));
  n->set_attr(Attribute::make_ints("pads", {3, 3, 3, 3}));
  const ops::OpDef* def = ops::Registry::global().find("", "Conv", 22);
  ASSERT_NE(def, nullptr);
  ops::InferContext ctx(*n);
  ASSERT_TRUE(def->infer(ctx).is_ok());
  EXPECT_EQ(y->type().to_string(), "float[N,64,112,?]");
}

// ---- ConvTranspose ---------------------------------------------------------------

// x = 1..9 as [1,1,3,3]; w = 1..8 as [1,2,2,2]; expected values from onnxruntime 1.32.
OpTest transpose_op(std::vector<Attribute> attrs) {
  std::vector<float> x(9), w(8);
  for (int i = 0; i < 9; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i + 1);
  for (int i = 0; i < 8; ++i) w[static_cast<size_t>(i)] = static_cast<float>(i + 1);
  OpTest t("ConvTranspose", 22);
  t.input("x", floats({1, 1, 3, 3}, x)).input("w", floats({1, 2, 2, 2}, w));
  for (auto& a : attrs) t.attr(a);
  return t;
}

const std::vector<double> kTransposeStride2 = {
    1,  2,  2,  4,  3,  6,  3,  4,  6,  8,  9,  12, 4,  8,  5,  10, 6,  12, 12, 16, 15, 20, 18, 24,
    7,  14, 8,  16, 9,  18, 21, 28, 24, 32, 27, 36, 5,  6,  10, 12, 15, 18, 7,  8,  14, 16, 21, 24,
    20, 24, 25, 30, 30, 36, 28, 32, 35, 40, 42, 48, 35, 42, 40, 48, 45, 54, 49, 56, 56, 64, 63, 72};

TEST(ConvTranspose, Strides) {
  auto t = transpose_op({Attribute::make_ints("strides", {2, 2})});
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 2, 6, 6}, kTransposeStride2);
}

TEST(ConvTranspose, OutputPaddingAddsRowsAndColumns) {
  auto t = transpose_op({Attribute::make_ints("strides", {2, 2}), Attribute::make_ints("output_padding", {1, 1})});
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  std::vector<double> expected;
  for (int c = 0; c < 2; ++c) {
    for (int r = 0; r < 7; ++r) {
      for (int col = 0; col < 7; ++col) {
        expected.push_back(r < 6 && col < 6 ? kTransposeStride2[static_cast<size_t>(c * 36 + r * 6 + col)] : 0.0);
      }
    }
  }
  expect_near((*out)[0], {1, 2, 7, 7}, expected);
}

TEST(ConvTranspose, OutputShapeComputesPads) {
  // Full output is 6x6; output_shape [5, 6] needs total padding 1 on H. NOTSET puts it at the beginning.
  auto t = transpose_op({Attribute::make_ints("strides", {2, 2}), Attribute::make_ints("output_shape", {5, 6})});
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 2, 5, 6},
              {3,  4,  6,  8,  9,  12, 4,  8,  5,  10, 6,  12, 12, 16, 15, 20, 18, 24, 7,  14,
               8,  16, 9,  18, 21, 28, 24, 32, 27, 36, 7,  8,  14, 16, 21, 24, 20, 24, 25, 30,
               30, 36, 28, 32, 35, 40, 42, 48, 35, 42, 40, 48, 45, 54, 49, 56, 56, 64, 63, 72});
  // SAME_UPPER puts it at the end.
  auto u = transpose_op({Attribute::make_ints("strides", {2, 2}), Attribute::make_ints("output_shape", {5, 6}),
                         Attribute::make_string("auto_pad", "SAME_UPPER")});
  auto outu = u.run();
  ASSERT_TRUE(outu.is_ok()) << outu.status().to_string();
  std::vector<double> expected;
  for (int c = 0; c < 2; ++c) {
    for (int i = 0; i < 30; ++i) expected.push_back(kTransposeStride2[static_cast<size_t>(c * 36 + i)]);
  }
  expect_near((*outu)[0], {1, 2, 5, 6}, expected);
}

TEST(ConvTranspose, AutoPadSame1D) {
  // x = [1,2,3], w = [1,2,3], stride 2: full output [1,2,5,4,9,6,9]; SAME keeps in * stride = 6 (onnxruntime 1.32).
  for (auto [mode, expected] : {std::pair<const char*, std::vector<double>>{"SAME_UPPER", {1, 2, 5, 4, 9, 6}},
                                {"SAME_LOWER", {2, 5, 4, 9, 6, 9}}}) {
    OpTest t("ConvTranspose", 22);
    t.input("x", floats({1, 1, 3}, {1, 2, 3})).input("w", floats({1, 1, 3}, {1, 2, 3}));
    t.attr(Attribute::make_ints("strides", {2})).attr(Attribute::make_string("auto_pad", mode));
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_near((*out)[0], {1, 1, 6}, expected);
  }
}

TEST(ConvTranspose, PadsAndDilations) {
  // strides [3,2], pads [1,0,0,1], dilations [1,2] (onnxruntime 1.32).
  auto t = transpose_op({Attribute::make_ints("strides", {3, 2}), Attribute::make_ints("pads", {1, 0, 0, 1}),
                         Attribute::make_ints("dilations", {1, 2})});
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 2, 7, 6},
              {3,  0, 10, 0, 17, 0, 0,  0, 0,  0, 0,  0, 4,  0, 13, 0, 16, 0, 12, 0, 31, 0, 38, 0, 0,  0, 0,  0,
               0,  0, 7,  0, 22, 0, 25, 0, 21, 0, 52, 0, 59, 0, 7,  0, 22, 0, 37, 0, 0,  0, 0,  0, 0,  0, 20, 0,
               49, 0, 60, 0, 28, 0, 67, 0, 82, 0, 0,  0, 0,  0, 0,  0, 35, 0, 82, 0, 93, 0, 49, 0, 112, 0, 127, 0});
}

// ConvTranspose is the adjoint of Conv: <conv(x), y> == <x, conv_transpose(y)> for the same weights,
// strides, dilations, pads and groups (when the shapes line up).
TEST(ConvTranspose, IsTheAdjointOfConv) {
  const Dims xd{2, 4, 9, 8}, wd{6, 2, 3, 2};
  const std::vector<int64_t> strides{2, 3}, dil{1, 2}, pads{1, 0, 2, 1};
  auto x = random_values(prod(xd), 11);
  auto w = random_values(prod(wd), 12);
  ConvCase c{xd, wd, 2, strides, dil, pads, false};
  Dims yd;
  auto conv_y = naive_conv(c, x, w, {}, yd);
  auto y = random_values(prod(yd), 13);
  // output_padding so that the transpose reproduces X's spatial dims exactly.
  std::vector<int64_t> out_pad;
  for (size_t i = 0; i < 2; ++i) {
    const int64_t full = strides[i] * (yd[i + 2] - 1) + (wd[i + 2] - 1) * dil[i] + 1 - pads[i] - pads[2 + i];
    out_pad.push_back(xd[i + 2] - full);
  }
  OpTest t("ConvTranspose", 22);
  t.input("y", floats(yd, y)).input("w", floats(wd, w));
  t.attr(Attribute::make_int("group", 2)).attr(Attribute::make_ints("strides", strides));
  t.attr(Attribute::make_ints("dilations", dil)).attr(Attribute::make_ints("pads", pads));
  t.attr(Attribute::make_ints("output_padding", out_pad));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  ASSERT_EQ((*out)[0].dims(), (Dims{2, 4, 9, 8}));  // W[1] * group channels
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < conv_y.size(); ++i) lhs += conv_y[i] * y[i];
  auto xt = values_of((*out)[0]);
  for (size_t i = 0; i < xt.size(); ++i) rhs += xt[i] * x[i];
  EXPECT_NEAR(lhs, rhs, 1e-3);
}

TEST(ConvTranspose, BiasAndGroups) {
  // Two groups of 1 channel each, 1x1 kernels: y[c] = x[c] * w[c] + b[c].
  OpTest t("ConvTranspose", 22);
  t.input("x", floats({1, 2, 1, 2}, {1, 2, 3, 4})).input("w", floats({2, 1, 1, 1}, {10, 100}));
  t.input("b", floats({2}, {0.5f, -0.5f})).attr(Attribute::make_int("group", 2));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 2, 1, 2}, {10.5, 20.5, 299.5, 399.5});
}

TEST(ConvTranspose, Errors) {
  auto run_with = [](std::vector<Attribute> attrs, Dims wd = {1, 2, 2, 2}) {
    OpTest t("ConvTranspose", 22);
    t.input("x", floats({1, 1, 3, 3}, std::vector<float>(9, 1.0f)));
    t.input("w", floats(wd, std::vector<float>(static_cast<size_t>(prod(wd)), 1.0f)));
    for (auto& a : attrs) t.attr(a);
    return t.run().status();
  };
  EXPECT_FALSE(run_with({}, {2, 2, 2, 2}).is_ok());  // W[0] must equal C
  EXPECT_FALSE(run_with({Attribute::make_ints("output_padding", {2, 0})}).is_ok());
  EXPECT_FALSE(run_with({Attribute::make_ints("output_shape", {5})}).is_ok());
  EXPECT_FALSE(run_with({Attribute::make_ints("pads", {3, 3, 3, 3})}).is_ok());
  EXPECT_FALSE(run_with({Attribute::make_ints("strides", {0, 1})}).is_ok());
  Status s = run_with({Attribute::make_ints("kernel_shape", {3, 3})});
  EXPECT_NE(s.message().find("kernel_shape"), std::string::npos) << s.message();
}

// ---- ConvInteger -----------------------------------------------------------------

TEST(ConvInteger, ZeroPoints) {
  // x uint8 [1,1,3,3] = 2..10, x_zero_point 2; w uint8 [2,1,2,2], w_zero_point per channel [1, 3].
  // Shifted: x' = 0..8, w'[0] = [0,1,2,3] (w = 1..4), w'[1] = [-1,0,1,2] (w = 2..5); pads 1 on the end.
  OpTest t("ConvInteger", 10);
  t.input("x", make_tensor(DataType::kUInt8, {1, 1, 3, 3}, std::vector<int>{2, 3, 4, 5, 6, 7, 8, 9, 10}))
      .input("w", make_tensor(DataType::kUInt8, {2, 1, 2, 2}, std::vector<int>{1, 2, 3, 4, 2, 3, 4, 5}))
      .input("xz", make_tensor(DataType::kUInt8, {}, std::vector<int>{2}))
      .input("wz", make_tensor(DataType::kUInt8, {2}, std::vector<int>{1, 3}))
      .attr(Attribute::make_ints("pads", {0, 0, 1, 1}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kInt32);
  // Channel 0 at (0,0): 0*0 + 1*1 + 3*2 + 4*3 = 19; at (2,2): 8*0 = 0 (the rest is padding).
  // Values from onnx 1.23's reference evaluator (onnxruntime rejects per-channel w_zero_point).
  expect_near((*out)[0], {1, 2, 3, 3}, {19, 25, 10, 37, 43, 16, 7, 8, 0, 11, 13, 3, 17, 19, 3, -6, -7, -8});
}

}  // namespace
}  // namespace kiln::test
