// Pooling ops. Expected values come from onnxruntime 1.32 on the same inputs
// (the one-node model per case; see each comment), hard-coded here.
#include "ops/op_test_util.h"
#include "ops/registry.h"

namespace kiln::test {
namespace {

using ir::Attribute;

// rng = np.random.default_rng(0); x = round(uniform(-5, 5, (1, 2, 5, 6)), 2) as float32.
const std::vector<float> kX = {
    1.37f,  -2.3f,  -4.59f, -4.83f, 3.13f,  4.13f,  1.07f,  2.29f,  0.44f,  4.35f,  3.16f,  -4.97f,
    3.57f,  -4.66f, 2.3f,   -3.24f, 3.63f,  0.41f,  -2.0f,  -0.77f, -4.72f, -3.76f, 1.71f,  1.47f,
    1.15f,  -1.16f, 4.97f,  4.81f,  1.86f,  1.5f,   1.88f,  -1.11f, -3.65f, 2.21f,  0.25f,  -1.9f,
    -0.14f, 3.89f,  4.34f,  -1.42f, 0.72f,  -1.78f, 0.94f,  -1.62f, -1.08f, 3.9f,   -2.73f, 1.23f,
    -4.16f, 3.33f,  2.87f,  -2.61f, 3.76f,  -4.41f, -1.64f, -3.5f,  -0.5f,  2.96f,  -2.69f, -4.48f};

struct PoolCase {
  const char* name;
  const char* op;
  int64_t opset;
  std::vector<Attribute> attrs;
  Dims out;
  std::vector<double> values;
  std::vector<double> indices;  // empty: not requested
};

std::vector<PoolCase> cases() {
  using A = Attribute;
  return {
      {"max_pads", "MaxPool", 12,
       {A::make_ints("kernel_shape", {3, 3}), A::make_ints("strides", {2, 2}), A::make_ints("pads", {1, 1, 1, 1})},
       {1, 2, 3, 3},
       {2.29, 4.35, 4.35, 3.57, 4.35, 4.35, 1.15, 4.97, 4.81, 3.89, 4.34, 2.21, 3.89, 4.34, 3.9, 3.33, 3.33, 3.76},
       {7, 9, 9, 12, 9, 9, 24, 26, 27, 37, 38, 33, 37, 38, 45, 49, 49, 52}},
      {"max_column_major_indices", "MaxPool", 12,
       {A::make_ints("kernel_shape", {3, 3}), A::make_ints("strides", {2, 2}), A::make_ints("pads", {1, 1, 1, 1}),
        A::make_int("storage_order", 1)},
       {1, 2, 3, 3},
       {2.29, 4.35, 4.35, 3.57, 4.35, 4.35, 1.15, 4.97, 4.81, 3.89, 4.34, 2.21, 3.89, 4.34, 3.9, 3.33, 3.33, 3.76},
       {6, 16, 16, 2, 16, 16, 4, 14, 19, 36, 41, 45, 36, 41, 47, 38, 38, 53}},
      {"max_ceil_mode", "MaxPool", 12,
       {A::make_ints("kernel_shape", {2, 2}), A::make_ints("strides", {2, 2}), A::make_int("ceil_mode", 1)},
       {1, 2, 3, 3},
       {2.29, 4.35, 4.13, 3.57, 2.3, 3.63, 1.15, 4.97, 1.86, 3.89, 4.34, 0.72, 3.33, 3.9, 3.76, -1.64, 2.96, -2.69},
       {}},
      {"max_dilations", "MaxPool", 12,
       {A::make_ints("kernel_shape", {2, 2}), A::make_ints("dilations", {2, 2})},
       {1, 2, 3, 4},
       {3.57, -2.3, 3.63, 4.13, 1.07, 4.35, 3.16, 4.35, 4.97, 4.81, 4.97, 4.81,
        1.88, 3.9,  0.25, 3.9,  4.34, 3.89, 4.34, -1.42, 0.94, 3.9, -0.5, 3.9},
       {12, 1, 16, 5, 6, 9, 10, 9, 26, 27, 26, 27, 30, 45, 34, 45, 38, 37, 38, 39, 42, 45, 56, 45}},
      {"max_same_lower", "MaxPool", 12,
       {A::make_ints("kernel_shape", {3, 2}), A::make_ints("strides", {2, 2}), A::make_string("auto_pad", "SAME_LOWER")},
       {1, 2, 3, 3},
       {2.29, 4.35, 4.13, 3.57, 4.35, 3.63, 1.15, 4.97, 1.86, 3.89, 4.34, 0.72, 3.89, 4.34, 3.76, 3.33, 2.96, 3.76},
       {}},
      {"avg_exclude_pad", "AveragePool", 11,
       {A::make_ints("kernel_shape", {3, 3}), A::make_ints("strides", {2, 2}), A::make_ints("pads", {1, 1, 1, 1})},
       {1, 2, 3, 3},
       {0.6075, -0.7733333, 0.8283334, -0.08333334, -0.8633333, 0.3066667, -0.695, -0.105, 1.265, 1.13, 0.71, -0.32,
        0.3733333, 1.288889, -0.3711111, -1.4925, 0.425, -1.245},
       {}},
      {"avg_include_pad", "AveragePool", 11,
       {A::make_ints("kernel_shape", {3, 3}), A::make_ints("strides", {2, 2}), A::make_ints("pads", {1, 1, 1, 1}),
        A::make_int("count_include_pad", 1)},
       {1, 2, 3, 3},
       {0.27, -0.5155556, 0.5522223, -0.05555556, -0.8633333, 0.3066667, -0.3088889, -0.07, 0.8433334, 0.5022223,
        0.4733334, -0.2133333, 0.2488889, 1.288889, -0.3711111, -0.6633333, 0.2833333, -0.8299999},
       {}},
      {"avg_include_pad_ceil", "AveragePool", 11,
       {A::make_ints("kernel_shape", {3, 3}), A::make_ints("strides", {2, 2}), A::make_ints("pads", {1, 0, 1, 0}),
        A::make_int("count_include_pad", 1), A::make_int("ceil_mode", 1)},
       {1, 2, 3, 3},
       {-0.1911111, 0.1844445, 0.9083334, -0.2755555, 0.4300001, 0.9016668, -0.2811111, 0.5411112, 1.09, 0.5788889,
        0.2722223, -0.4516667, 0.93, 0.8611111, -0.535, -0.4, 0.4211111, -1.303333},
       {}},
      {"avg_same_upper", "AveragePool", 11,
       {A::make_ints("kernel_shape", {2, 3}), A::make_ints("strides", {2, 2}), A::make_string("auto_pad", "SAME_UPPER")},
       {1, 2, 3, 3},
       {-0.2866667, 0.2766666, 1.3625, -1.046667, -0.68, 1.805, 1.653333, 3.88, 1.68, 0.8683334, 0.4083334,
        -0.6774999, 0.04666666, 0.6849999, -0.5375, -1.88, -0.07666668, -3.585},
       {}},
      {"avg_dilations", "AveragePool", 19,
       {A::make_ints("kernel_shape", {2, 2}), A::make_ints("dilations", {2, 1}), A::make_ints("strides", {1, 2})},
       {1, 2, 3, 3},
       {-0.505, -2.59, 2.825, 0.1475, -0.9225, 0.3425001, -0.275, 2.21, 1.85, 0.02250001, 0.345, -0.7875, 0.73, 0.795,
        -0.4274999, -1.455, 1.32, -2.1675},
       {}},
      {"lp_p3", "LpPool", 18,
       {A::make_ints("kernel_shape", {2, 2}), A::make_ints("strides", {2, 2}), A::make_int("p", 3)},
       {1, 2, 2, 3},
       {3.03559, 6.632616, 6.344866, 5.373424, 5.891481, 3.827634, 4.0591, 5.241857, 2.34454, 4.8488, 4.672301,
        5.441595},
       {}},
      {"global_avg", "GlobalAveragePool", 11, {}, {1, 2, 1, 1}, {0.344, -0.2379999}, {}},
      {"global_max", "GlobalMaxPool", 11, {}, {1, 2, 1, 1}, {4.97, 4.34}, {}},
      {"global_lp", "GlobalLpPool", 11, {A::make_int("p", 2)}, {1, 2, 1, 1}, {17.45024, 14.94902}, {}},
  };
}

TEST(Pool, MatchesOnnxRuntime) {
  for (const PoolCase& c : cases()) {
    SCOPED_TRACE(c.name);
    OpTest t(c.op, c.opset);
    t.input("x", floats({1, 2, 5, 6}, kX));
    for (const auto& a : c.attrs) t.attr(a);
    if (!c.indices.empty()) t.outputs(2);
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_near((*out)[0], c.out, c.values, 1e-5, 1e-5);
    if (!c.indices.empty()) {
      EXPECT_EQ((*out)[1].dtype(), DataType::kInt64);
      expect_near((*out)[1], c.out, c.indices, 0, 0);
    }
  }
}

TEST(Pool, OneAndThreeDimensional) {
  // 1-D MaxPool indices; x = [3,1,4,1,5,9,2], kernel 3, stride 2, pads 1 (onnxruntime 1.32).
  OpTest t("MaxPool", 12);
  t.input("x", floats({1, 1, 7}, {3, 1, 4, 1, 5, 9, 2}));
  t.attr(Attribute::make_ints("kernel_shape", {3})).attr(Attribute::make_ints("strides", {2}));
  t.attr(Attribute::make_ints("pads", {1, 1})).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 1, 4}, {3, 4, 9, 9});
  expect_near((*out)[1], {1, 1, 4}, {0, 2, 5, 5}, 0, 0);

  // 3-D AveragePool with asymmetric pads (onnxruntime 1.32).
  const std::vector<float> x3 = {-1,   -3,  -4.1f, 0.8f, -2,   1.7f, -3,   4.4f, -1.3f, -3.9f, 1.3f, 4.3f,
                                 -0.6f, 4.5f, 0,    -0.7f, 1.2f, 5,    4.5f, -0.4f, 2.6f, 0,     0.3f, 2.9f,
                                 -0.9f, 2.3f, 2.1f, 4.3f, -3.9f, 2.3f, 4.3f, 4.7f, -4.9f, 3.6f, 4.8f, 4.6f,
                                 -3.5f, 4.7f, 3.9f, 3.2f, -0.2f, -2.7f, 3,    4.2f, -2.3f, 0.4f, -0.6f, 4.3f};
  OpTest a("AveragePool", 11);
  a.input("x", floats({1, 1, 3, 4, 4}, x3));
  a.attr(Attribute::make_ints("kernel_shape", {2, 2, 2})).attr(Attribute::make_ints("strides", {1, 2, 2}));
  a.attr(Attribute::make_ints("pads", {0, 1, 0, 1, 0, 1}));
  auto out3 = a.run();
  ASSERT_TRUE(out3.is_ok()) << out3.status().to_string();
  expect_near((*out3)[0], {1, 1, 3, 2, 2},
              {0.55, 0.2, -0.1875, 2.075, 1.225, 3.375, 0.2875, 2.9875, -0.6500001, 4.7, -0.4250001, 3.575});
}

TEST(Pool, Int8MaxPool) {
  // onnxruntime 1.32, opset 12.
  OpTest t("MaxPool", 12);
  t.input("x", make_tensor(DataType::kInt8, {1, 1, 3, 3}, std::vector<int>{-128, 5, 7, 127, -3, 0, 1, 2, 3}));
  t.attr(Attribute::make_ints("kernel_shape", {2, 2})).outputs(2);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kInt8);
  expect_near((*out)[0], {1, 1, 2, 2}, {127, 7, 127, 3});
  expect_near((*out)[1], {1, 1, 2, 2}, {3, 2, 3, 8}, 0, 0);
}

TEST(Pool, Float16) {
  OpTest t("AveragePool", 11);
  t.input("x", make_tensor(DataType::kFloat16, {1, 1, 2, 2}, std::vector<float>{1, 2, 3, 4}));
  t.attr(Attribute::make_ints("kernel_shape", {2, 2}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kFloat16);
  expect_near((*out)[0], {1, 1, 1, 1}, {2.5});
}

TEST(Pool, ZeroBatchAndChannels) {
  OpTest t("MaxPool", 12);
  t.input("x", floats({0, 3, 4, 4}, {})).attr(Attribute::make_ints("kernel_shape", {2, 2}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dims(), (Dims{0, 3, 3, 3}));
}

TEST(Pool, Errors) {
  auto status_of = [](const char* op, Dims xd, std::vector<Attribute> attrs) {
    OpTest t(op, 19);
    int64_t n = 1;
    for (int64_t d : xd) n *= d;
    t.input("x", floats(xd, std::vector<float>(static_cast<size_t>(n), 1.0f)));
    for (auto& a : attrs) t.attr(a);
    return t.run().status();
  };
  auto expect_error = [](const Status& s, const char* fragment) {
    EXPECT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
  };
  expect_error(status_of("MaxPool", {1, 1, 4, 4}, {}), "kernel_shape");
  expect_error(status_of("MaxPool", {1, 1, 4, 4}, {Attribute::make_ints("kernel_shape", {2})}), "kernel_shape");
  expect_error(status_of("AveragePool", {1, 1, 4, 4},
                         {Attribute::make_ints("kernel_shape", {2, 2}), Attribute::make_ints("strides", {0, 1})}),
               "strides");
  expect_error(status_of("MaxPool", {1, 1, 4, 4}, {Attribute::make_ints("kernel_shape", {5, 2})}),
               "larger than the padded input");
  expect_error(status_of("MaxPool", {1, 1, 4, 4},
                         {Attribute::make_ints("kernel_shape", {2, 2}), Attribute::make_int("storage_order", 2)}),
               "storage_order");
  expect_error(status_of("MaxPool", {4, 4}, {Attribute::make_ints("kernel_shape", {2, 2})}), "rank");
  expect_error(status_of("LpPool", {1, 1, 4, 4}, {Attribute::make_ints("kernel_shape", {2, 2}), Attribute::make_int("p", 0)}),
               "p must be positive");
  expect_error(status_of("GlobalMaxPool", {2}, {}), "rank");
}

TEST(MaxRoiPool, MatchesOnnxRuntime) {
  // x = arange(84) % 13 as [1,2,6,7]; pooled_shape [2,3], spatial_scale 0.9 (onnxruntime 1.32).
  std::vector<float> x(84);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 13);
  OpTest t("MaxRoiPool", 1);
  t.input("x", floats({1, 2, 6, 7}, x));
  t.input("rois", floats({3, 5}, {0, 1, 1, 5, 4, 0, 0, 0, 6, 5, 0, 2.4f, 1.6f, 3.2f, 2.2f}));
  t.attr(Attribute::make_ints("pooled_shape", {2, 3})).attr(Attribute::make_float("spatial_scale", 0.9f));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3, 2, 2, 3}, {9,  11, 12, 10, 12, 12, 12, 12, 9, 12, 9, 10, 8,  10, 12, 10, 12, 12,
                                        11, 12, 9,  12, 8,  10, 9,  10, 10, 3, 4, 4,  12, 12, 0,  6,  7,  7});
  OpTest bad("MaxRoiPool", 1);
  bad.input("x", floats({1, 2, 6, 7}, x)).input("rois", floats({1, 5}, {3, 0, 0, 1, 1}));
  bad.attr(Attribute::make_ints("pooled_shape", {2, 3}));
  Status s = bad.run().status();
  EXPECT_NE(s.message().find("batch index"), std::string::npos) << s.message();
}

TEST(Pool, ShapeInference) {
  ir::Graph g("g");
  auto* x = g.add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("N"), Dim(64), Dim(112), Dim()})))
                .value();
  auto* y = g.add_value("y").value();
  auto* i = g.add_value("i").value();
  ir::Node* n = g.add_node("MaxPool", {x}, {y, i}, "p");
  n->set_opset(12);
  n->set_attr(Attribute::make_ints("kernel_shape", {3, 3}));
  n->set_attr(Attribute::make_ints("strides", {2, 2}));
  n->set_attr(Attribute::make_ints("pads", {1, 1, 1, 1}));
  ops::InferContext ctx(*n);
  ASSERT_TRUE(ops::Registry::global().find("", "MaxPool", 12)->infer(ctx).is_ok());
  EXPECT_EQ(y->type().to_string(), "float[N,64,56,?]");
  EXPECT_EQ(i->type().to_string(), "int64[N,64,56,?]");
}

}  // namespace
}  // namespace kiln::test
