// Pad, Resize and Upsample. Expected values were computed with onnx 1.23's
// reference evaluator and/or onnxruntime 1.32 (noted per case) on the inputs
// shown, and hard-coded here.
#include "ops/op_test_util.h"
#include "ops/registry.h"

namespace kiln::test {
namespace {

using ir::Attribute;
using A = ir::Attribute;

const std::vector<float> kGrid = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};  // [3, 4]

Result<Tensor> pad(int64_t opset, const char* mode, std::vector<int64_t> pads, std::vector<int64_t> axes = {},
                   Tensor value = Tensor(), Tensor x = Tensor()) {
  OpTest t("Pad", opset);
  t.input("x", x.defined() ? x : floats({3, 4}, kGrid));
  t.input("pads", int64s({static_cast<int64_t>(pads.size())}, pads));
  if (value.defined()) {
    t.input("value", value);
  } else if (!axes.empty()) {
    t.none();
  }
  if (!axes.empty()) t.input("axes", int64s({static_cast<int64_t>(axes.size())}, axes));
  t.attr(Attribute::make_string("mode", mode));
  KILN_ASSIGN_OR_RETURN(auto out, t.run());
  return out[0];
}

TEST(Pad, Modes) {
  // onnxruntime 1.32.
  auto c = pad(13, "constant", {1, 0, 0, 2}, {}, floats({}, {9.5f}));
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  expect_near(*c, {4, 6}, {9.5, 9.5, 9.5, 9.5, 9.5, 9.5, 1, 2, 3, 4, 9.5, 9.5, 5, 6, 7, 8, 9.5, 9.5, 9, 10, 11, 12, 9.5, 9.5});
  auto r = pad(13, "reflect", {1, 2, 2, 3});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near(*r, {6, 9}, {7, 6, 5, 6,  7,  8,  7,  6,  5, 3, 2, 1, 2, 3, 4, 3, 2, 1, 7, 6, 5, 6, 7, 8, 7, 6, 5,
                           11, 10, 9, 10, 11, 12, 11, 10, 9, 7, 6, 5, 6, 7, 8, 7, 6, 5, 3, 2, 1, 2, 3, 4, 3, 2, 1});
  auto e = pad(13, "edge", {2, 1, 0, 2});
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  expect_near(*e, {5, 7}, {1, 1, 2, 3, 4, 4, 4, 1, 1, 2, 3, 4, 4, 4, 1, 1, 2, 3,  4,  4,  4,
                           5, 5, 6, 7, 8, 8, 8, 9, 9, 10, 11, 12, 12, 12});
  auto w = pad(19, "wrap", {1, 2, 2, 1});
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  expect_near(*w, {6, 7}, {11, 12, 9, 10, 11, 12, 9, 3, 4, 1, 2, 3, 4, 1, 7, 8, 5, 6, 7, 8, 5,
                           11, 12, 9, 10, 11, 12, 9, 3, 4, 1, 2, 3, 4, 1, 7, 8, 5, 6, 7, 8, 5});
}

TEST(Pad, PadsLargerThanTheAxisRepeat) {
  // numpy.pad(x, ((0, 0), (5, 6)), mode=...).
  auto r = pad(13, "reflect", {0, 5, 0, 6});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near(*r, {3, 15}, {2,  3,  4,  3,  2,  1,  2,  3,  4,  3,  2,  1,  2,  3,  4,  6,  7,  8,  7,  6,  5,  6,  7,
                            8,  7,  6,  5,  6,  7,  8,  10, 11, 12, 11, 10, 9,  10, 11, 12, 11, 10, 9,  10, 11, 12});
  auto w = pad(19, "wrap", {0, 5, 0, 6});
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  expect_near(*w, {3, 15}, {4,  1, 2,  3,  4,  1, 2,  3,  4,  1, 2,  3,  4,  1, 2,  8,  5, 6,  7,  8,  5, 6,  7,
                            8,  5, 6,  7,  8,  5, 6,  12, 9, 10, 11, 12, 9, 10, 11, 12, 9, 10, 11, 12, 9, 10});
}

TEST(Pad, NegativePadsCropFirst) {
  // onnxruntime 1.32.
  auto c = pad(13, "constant", {-1, 1, 0, -2});
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  expect_near(*c, {2, 3}, {0, 5, 6, 0, 9, 10});
  auto r = pad(13, "reflect", {0, -1, 0, 2});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_near(*r, {3, 5}, {2, 3, 4, 3, 2, 6, 7, 8, 7, 6, 10, 11, 12, 11, 10});
}

TEST(Pad, AxesInputSinceOpset18) {
  auto a = pad(18, "constant", {2, 1}, {-1});  // onnxruntime 1.32
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  expect_near(*a, {3, 7}, {0, 0, 1, 2, 3, 4, 0, 0, 0, 5, 6, 7, 8, 0, 0, 0, 9, 10, 11, 12, 0});
}

TEST(Pad, AttributesBeforeOpset11) {
  OpTest t("Pad", 2);
  t.input("x", floats({2}, {1, 2})).attr(Attribute::make_ints("pads", {1, 2}));
  t.attr(Attribute::make_float("value", -1.5f));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {5}, {-1.5, 1, 2, -1.5, -1.5});
  OpTest e("Pad", 2);
  e.input("x", floats({2}, {1, 2})).attr(Attribute::make_ints("pads", {1, 2})).attr(Attribute::make_string("mode", "edge"));
  auto oute = e.run();
  ASSERT_TRUE(oute.is_ok()) << oute.status().to_string();
  expect_near((*oute)[0], {5}, {1, 1, 2, 2, 2});
}

TEST(Pad, OtherElementTypes) {
  auto i = pad(13, "constant", {0, 1}, {}, make_tensor(DataType::kInt64, {}, std::vector<int64_t>{7}),
               make_tensor(DataType::kInt64, {2}, std::vector<int64_t>{int64_t{1} << 40, -3}));
  ASSERT_TRUE(i.is_ok()) << i.status().to_string();
  ASSERT_EQ(i->dtype(), DataType::kInt64);
  ASSERT_EQ(i->dims(), (Dims{3}));
  EXPECT_EQ(i->data<int64_t>()[0], int64_t{1} << 40);
  EXPECT_EQ(i->data<int64_t>()[2], 7);
  Tensor s = Tensor::empty(DataType::kString, {2});
  s.data<std::string>()[0] = "a";
  s.data<std::string>()[1] = "bc";
  auto st = pad(13, "reflect", {1, 1}, {}, Tensor(), s);
  ASSERT_TRUE(st.is_ok()) << st.status().to_string();
  ASSERT_EQ(st->dims(), (Dims{4}));
  EXPECT_EQ(st->data<std::string>()[0], "bc");
  EXPECT_EQ(st->data<std::string>()[3], "a");
  auto z = pad(13, "constant", {0, 2, 0, 0}, {}, Tensor(), floats({0, 3}, {}));
  ASSERT_TRUE(z.is_ok()) << z.status().to_string();
  EXPECT_EQ(z->dims(), (Dims{0, 5}));
  auto big = pad(13, "constant", {0, 0, 0, int64_t{1} << 34}, {}, Tensor(), floats({0, 3}, {}));  // empty: no work
  ASSERT_TRUE(big.is_ok()) << big.status().to_string();
  EXPECT_EQ(big->dims(), (Dims{0, (int64_t{1} << 34) + 3}));
}

TEST(Pad, Errors) {
  auto expect_error = [](const Result<Tensor>& r, const char* fragment) {
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
  };
  expect_error(pad(13, "constant", {1, 1}), "pads has 2 values");
  expect_error(pad(13, "constant", {-3, 0, -1, 0}), "crop more");
  expect_error(pad(18, "wrap", {1, 1, 1, 1}), "wrap");
  expect_error(pad(13, "mirror", {1, 1, 1, 1}), "unknown mode");
  expect_error(pad(13, "constant", {0, 0, 0, int64_t{1} << 40}), "out of range");
  expect_error(pad(13, "edge", {0, 1, 0, 0}, {}, Tensor(), floats({2, 0}, {})), "empty axis");
  expect_error(pad(18, "constant", {1, 1}, {2}), "axis 2");
  expect_error(pad(13, "constant", {0, 0, 0, 0}, {}, make_tensor(DataType::kInt32, {}, std::vector<int>{1})),
               "constant_value");
}

// ---- Resize ----------------------------------------------------------------------

// x = [[1,2,4,7],[3,5,8,6],[9,0,2,5]] as [1,1,3,4].
const std::vector<float> kImage = {1, 2, 4, 7, 3, 5, 8, 6, 9, 0, 2, 5};

struct ResizeCase {
  const char* name;
  int64_t opset;
  std::vector<Attribute> attrs;
  std::vector<float> roi, scales;
  std::vector<int64_t> sizes;
  Dims out;
  std::vector<double> expected;
};

std::vector<ResizeCase> resize_cases() {
  return {
      {"nearest half_pixel round_prefer_floor", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "half_pixel"), A::make_string("nearest_mode", "round_prefer_floor")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 1, 2, 2, 4, 7, 7, 1, 1, 2, 2, 4, 7, 7, 3, 3, 5, 5, 8, 6, 6, 9, 9, 0, 0, 2, 5, 5, 9, 9, 0, 0, 2, 5, 5}},  // reference and onnxruntime agree
      {"nearest half_pixel round_prefer_ceil", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "half_pixel"), A::make_string("nearest_mode", "round_prefer_ceil")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 1, 2, 4, 4, 7, 7, 1, 1, 2, 4, 4, 7, 7, 3, 3, 5, 8, 8, 6, 6, 9, 9, 0, 2, 2, 5, 5, 9, 9, 0, 2, 2, 5, 5}},  // reference and onnxruntime agree
      {"nearest half_pixel floor", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "half_pixel"), A::make_string("nearest_mode", "floor")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 1, 1, 2, 4, 4, 7, 1, 1, 1, 2, 4, 4, 7, 3, 3, 3, 5, 8, 8, 6, 3, 3, 3, 5, 8, 8, 6, 9, 9, 9, 0, 2, 2, 5}},  // reference and onnxruntime agree
      {"nearest half_pixel ceil", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "half_pixel"), A::make_string("nearest_mode", "ceil")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 2, 2, 4, 7, 7, 7, 3, 5, 5, 8, 6, 6, 6, 3, 5, 5, 8, 6, 6, 6, 9, 0, 0, 2, 5, 5, 5, 9, 0, 0, 2, 5, 5, 5}},  // reference and onnxruntime agree
      {"nearest asymmetric round_prefer_floor", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "asymmetric"), A::make_string("nearest_mode", "round_prefer_floor")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 2, 2, 4, 4, 7, 7, 3, 5, 5, 8, 8, 6, 6, 3, 5, 5, 8, 8, 6, 6, 9, 0, 0, 2, 2, 5, 5, 9, 0, 0, 2, 2, 5, 5}},  // reference and onnxruntime agree
      {"nearest asymmetric round_prefer_ceil", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "asymmetric"), A::make_string("nearest_mode", "round_prefer_ceil")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 2, 2, 4, 4, 7, 7, 3, 5, 5, 8, 8, 6, 6, 3, 5, 5, 8, 8, 6, 6, 9, 0, 0, 2, 2, 5, 5, 9, 0, 0, 2, 2, 5, 5}},  // reference and onnxruntime agree
      {"nearest asymmetric floor", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "asymmetric"), A::make_string("nearest_mode", "floor")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 1, 2, 2, 4, 4, 7, 1, 1, 2, 2, 4, 4, 7, 3, 3, 5, 5, 8, 8, 6, 3, 3, 5, 5, 8, 8, 6, 9, 9, 0, 0, 2, 2, 5}},  // reference and onnxruntime agree
      {"nearest asymmetric ceil", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "asymmetric"), A::make_string("nearest_mode", "ceil")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 2, 4, 4, 7, 7, 7, 3, 5, 8, 8, 6, 6, 6, 9, 0, 2, 2, 5, 5, 5, 9, 0, 2, 2, 5, 5, 5, 9, 0, 2, 2, 5, 5, 5}},  // reference and onnxruntime agree
      {"nearest align_corners round_prefer_floor", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "align_corners"), A::make_string("nearest_mode", "round_prefer_floor")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 1, 2, 2, 4, 4, 7, 1, 1, 2, 2, 4, 4, 7, 3, 3, 5, 5, 8, 8, 6, 3, 3, 5, 5, 8, 8, 6, 9, 9, 0, 0, 2, 2, 5}},  // reference and onnxruntime agree
      {"nearest align_corners round_prefer_ceil", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "align_corners"), A::make_string("nearest_mode", "round_prefer_ceil")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 2, 2, 4, 4, 7, 7, 3, 5, 5, 8, 8, 6, 6, 3, 5, 5, 8, 8, 6, 6, 9, 0, 0, 2, 2, 5, 5, 9, 0, 0, 2, 2, 5, 5}},  // reference and onnxruntime agree
      {"nearest align_corners floor", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "align_corners"), A::make_string("nearest_mode", "floor")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 1, 2, 2, 4, 4, 7, 1, 1, 2, 2, 4, 4, 7, 3, 3, 5, 5, 8, 8, 6, 3, 3, 5, 5, 8, 8, 6, 9, 9, 0, 0, 2, 2, 5}},  // reference and onnxruntime agree
      {"nearest align_corners ceil", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "align_corners"), A::make_string("nearest_mode", "ceil")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 2, 2, 4, 4, 7, 7, 3, 5, 5, 8, 8, 6, 6, 3, 5, 5, 8, 8, 6, 6, 9, 0, 0, 2, 2, 5, 5, 9, 0, 0, 2, 2, 5, 5}},  // reference and onnxruntime agree
      {"nearest pytorch_half_pixel round_prefer_floor", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "pytorch_half_pixel"), A::make_string("nearest_mode", "round_prefer_floor")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 1, 2, 2, 4, 7, 7, 1, 1, 2, 2, 4, 7, 7, 3, 3, 5, 5, 8, 6, 6, 9, 9, 0, 0, 2, 5, 5, 9, 9, 0, 0, 2, 5, 5}},  // reference and onnxruntime agree
      {"nearest pytorch_half_pixel round_prefer_ceil", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "pytorch_half_pixel"), A::make_string("nearest_mode", "round_prefer_ceil")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 1, 2, 4, 4, 7, 7, 1, 1, 2, 4, 4, 7, 7, 3, 3, 5, 8, 8, 6, 6, 9, 9, 0, 2, 2, 5, 5, 9, 9, 0, 2, 2, 5, 5}},  // reference and onnxruntime agree
      {"nearest pytorch_half_pixel floor", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "pytorch_half_pixel"), A::make_string("nearest_mode", "floor")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 1, 1, 2, 4, 4, 7, 1, 1, 1, 2, 4, 4, 7, 3, 3, 3, 5, 8, 8, 6, 3, 3, 3, 5, 8, 8, 6, 9, 9, 9, 0, 2, 2, 5}},  // reference and onnxruntime agree
      {"nearest pytorch_half_pixel ceil", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "pytorch_half_pixel"), A::make_string("nearest_mode", "ceil")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {1, 2, 2, 4, 7, 7, 7, 3, 5, 5, 8, 6, 6, 6, 3, 5, 5, 8, 6, 6, 6, 9, 0, 0, 2, 5, 5, 5, 9, 0, 0, 2, 5, 5, 5}},  // reference and onnxruntime agree
      {"linear half_pixel", 19, {A::make_string("mode", "linear"), A::make_string("coordinate_transformation_mode", "half_pixel")}, {}, {1, 1, 1.7, 0.6}, {}, {1, 1, 5, 2}, {1.333333, 4, 2.22549, 5.529411, 3.598039, 7.882352, 4.970588, 4.647059, 6, 2}},  // reference and onnxruntime agree
      {"linear asymmetric", 19, {A::make_string("mode", "linear"), A::make_string("coordinate_transformation_mode", "asymmetric")}, {}, {1, 1, 1.7, 0.6}, {}, {1, 1, 5, 2}, {1, 3.333333, 2.176471, 5.490196, 4.058823, 6, 7.588235, 2.666667, 9, 1.333333}},  // reference and onnxruntime agree
      {"linear pytorch_half_pixel", 19, {A::make_string("mode", "linear"), A::make_string("coordinate_transformation_mode", "pytorch_half_pixel")}, {}, {1, 1, 1.7, 0.6}, {}, {1, 1, 5, 2}, {1.333333, 4, 2.22549, 5.529411, 3.598039, 7.882352, 4.970588, 4.647059, 6, 2}},  // reference and onnxruntime agree
      {"linear half_pixel_symmetric", 19, {A::make_string("mode", "linear"), A::make_string("coordinate_transformation_mode", "half_pixel_symmetric")}, {}, {1, 1, 1.7, 0.6}, {}, {1, 1, 5, 2}, {1.666667, 5, 2.764706, 5.960784, 4.333333, 7.333333, 3.54902, 4.784314, 3, 3}},  // reference and onnxruntime agree
      {"linear align_corners", 19, {A::make_string("mode", "linear"), A::make_string("coordinate_transformation_mode", "align_corners")}, {}, {1, 1, 1.7, 0.6}, {}, {1, 1, 5, 2}, {1, 4.428571, 1.97561, 6.031359, 2.95122, 7.634147, 5.780488, 5.264809, 8.707316, 2.686411}},  // onnx reference evaluator; onnxruntime takes the integer output length instead of in*scale (1, 7, 2, 6.5, ...)
      {"cubic", 13, {A::make_string("mode", "cubic")}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {0.7183089, 0.9989395, 1.572328, 2.422501, 3.903061, 6.027306, 7.441275, 1.127706, 1.935532, 3.285636, 4.89275, 6.137681, 6.596762, 6.753449, 2.801567, 3.496991, 4.746992, 6.875, 8.024143, 6.865979, 5.801567, 7.278347, 5.076849, 2.308993, 2.883499, 4.769681, 5.228762, 5.385449, 10.57372, 6.032393, 0.007413174, -0.7969998, 1.711061, 3.835306, 5.249274}},  // reference and onnxruntime agree
      {"cubic a=-0.5 exclude_outside", 13, {A::make_string("mode", "cubic"), A::make_float("cubic_coeff_a", -0.5f), A::make_int("exclude_outside", 1)}, {}, {}, {1, 1, 5, 7}, {1, 1, 5, 7}, {0.7757161, 1.054834, 1.672611, 2.582546, 3.910112, 6.128808, 7.343388, 1.286613, 1.898143, 3.11909, 4.525187, 5.791514, 6.476676, 6.775133, 2.841346, 3.489565, 4.817306, 6.75, 8.001636, 6.718649, 5.841346, 7.389407, 5.354041, 2.045179, 2.703358, 4.403454, 5.088616, 5.387073, 10.23263, 6.410108, 0.008474607, -0.2405671, 1.759168, 3.977865, 5.192444}},  // reference and onnxruntime agree
      {"tf_crop_and_resize linear", 13, {A::make_string("mode", "linear"), A::make_string("coordinate_transformation_mode", "tf_crop_and_resize"), A::make_float("extrapolation_value", -1.0f)}, {0, 0, 0.2, 0.1, 1, 1, 0.9, 1.3}, {}, {1, 1, 3, 4}, {1, 1, 3, 4}, {2.22, 4.4, 6.3, -1, 3.87, 5.95, 6.35, -1, 5.76, 2.1, 4.6, -1}},  // onnx reference evaluator
      {"tf_crop_and_resize nearest", 13, {A::make_string("mode", "nearest"), A::make_string("coordinate_transformation_mode", "tf_crop_and_resize"), A::make_float("extrapolation_value", -1.0f)}, {0, 0, 0.2, 0.1, 1, 1, 0.9, 1.3}, {}, {1, 1, 3, 4}, {1, 1, 3, 4}, {1, 2, 7, -1, 3, 5, 6, -1, 9, 0, 5, -1}},  // onnx reference evaluator
      {"antialias linear", 18, {A::make_string("mode", "linear"), A::make_int("antialias", 1)}, {}, {}, {1, 1, 2, 3}, {1, 1, 2, 3}, {2.030303, 4.166667, 6.30303, 5.545455, 2.833333, 4.969697}},  // reference and onnxruntime agree
      {"antialias cubic", 18, {A::make_string("mode", "cubic"), A::make_int("antialias", 1)}, {}, {}, {1, 1, 2, 3}, {1, 1, 2, 3}, {1.534918, 4.59002, 6.698189, 5.714975, 2.647314, 5.21208}},  // reference and onnxruntime agree
      {"axes not_larger", 18, {A::make_string("mode", "linear"), A::make_ints("axes", {2, 3}), A::make_string("keep_aspect_ratio_policy", "not_larger")}, {}, {}, {6, 6}, {1, 1, 5, 6}, {1, 1.5, 2.333333, 3.666667, 5.5, 7, 2, 2.75, 3.916667, 5.583333, 6.25, 6.5, 4, 4.083333, 4.638889, 6.527778, 6.416667, 5.833333, 8, 4.416667, 1.194444, 2.638889, 4.083333, 5.166667, 9, 4.5, 0.3333333, 1.666667, 3.5, 5}},  // reference and onnxruntime agree
      {"axes not_smaller", 18, {A::make_string("mode", "nearest"), A::make_ints("axes", {3, 2}), A::make_string("keep_aspect_ratio_policy", "not_smaller")}, {}, {}, {6, 6}, {1, 1, 6, 8}, {1, 1, 2, 2, 4, 4, 7, 7, 1, 1, 2, 2, 4, 4, 7, 7, 3, 3, 5, 5, 8, 8, 6, 6, 3, 3, 5, 5, 8, 8, 6, 6, 9, 9, 0, 0, 2, 2, 5, 5, 9, 9, 0, 0, 2, 2, 5, 5}},  // reference and onnxruntime agree
      {"axes scales", 18, {A::make_string("mode", "linear"), A::make_ints("axes", {3})}, {}, {2}, {}, {1, 1, 3, 8}, {1, 1.25, 1.75, 2.5, 3.5, 4.75, 6.25, 7, 3, 3.5, 4.5, 5.75, 7.25, 7.5, 6.5, 6, 9, 6.75, 2.25, 0.5, 1.5, 2.75, 4.25, 5}},  // reference and onnxruntime agree
  };
}

TEST(Resize, MatchesReference) {
  for (const ResizeCase& c : resize_cases()) {
    SCOPED_TRACE(c.name);
    OpTest t("Resize", c.opset);
    t.input("x", floats({1, 1, 3, 4}, kImage));
    t.input("roi", floats({static_cast<int64_t>(c.roi.size())}, c.roi));
    if (c.scales.empty()) {
      t.none();
    } else {
      t.input("scales", floats({static_cast<int64_t>(c.scales.size())}, c.scales));
    }
    if (!c.sizes.empty()) t.input("sizes", int64s({static_cast<int64_t>(c.sizes.size())}, c.sizes));
    for (const auto& a : c.attrs) t.attr(a);
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_near((*out)[0], c.out, c.expected, 1e-5, 1e-5);
  }
}

TEST(Resize, TrilinearThreeAxes) {
  // x = arange(8)^2 as [1,1,2,2,2] -> sizes [1,1,3,3,3], half_pixel (reference and onnxruntime agree).
  OpTest t("Resize", 13);
  t.input("x", floats({1, 1, 2, 2, 2}, {0, 1, 4, 9, 16, 25, 36, 49})).input("roi", floats({0}, {})).none();
  t.input("sizes", int64s({5}, {1, 1, 3, 3, 3})).attr(Attribute::make_string("mode", "linear"));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 1, 3, 3, 3}, {0,  0.5,  1,  2,  3.5,  5,  4,  6.5,  9,  8,  10.5, 13, 14, 17.5,
                                           21, 20, 24.5, 29, 16, 20.5, 25, 26, 31.5, 37, 36, 42.5, 49});
}

TEST(Resize, IntegerLinearRoundsHalfToEven) {
  // The reference rounds (np.round) and saturates; onnxruntime truncates instead (123 and 227 below).
  OpTest t("Resize", 13);
  t.input("x", make_tensor(DataType::kUInt8, {1, 1, 2, 2}, std::vector<int>{10, 200, 30, 255}));
  t.input("roi", floats({0}, {})).none().input("sizes", int64s({4}, {1, 1, 3, 3}));
  t.attr(Attribute::make_string("mode", "linear")).attr(Attribute::make_string("coordinate_transformation_mode", "align_corners"));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kUInt8);
  expect_near((*out)[0], {1, 1, 3, 3}, {10, 105, 200, 20, 124, 228, 30, 142, 255}, 0, 0);
}

TEST(Resize, Opset10AndOpset11Inputs) {
  // Resize-10: (X, scales), asymmetric coordinates; nearest floors when upsampling (onnxruntime 1.32).
  OpTest t("Resize", 10);
  t.input("x", floats({1, 1, 3, 4}, kImage)).input("scales", floats({4}, {1, 1, 2, 1.5f}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 1, 6, 6}, {1, 1, 2, 4, 4, 7, 1, 1, 2, 4, 4, 7, 3, 3, 5, 8, 8, 6,
                                         3, 3, 5, 8, 8, 6, 9, 9, 0, 2, 2, 5, 9, 9, 0, 2, 2, 5});
  OpTest down("Resize", 10);  // ... and rounds up when downsampling (onnxruntime 1.32)
  down.input("x", floats({1, 1, 3, 4}, kImage)).input("scales", floats({4}, {1, 1, 0.5f, 0.6f}));
  auto outd = down.run();
  ASSERT_TRUE(outd.is_ok()) << outd.status().to_string();
  expect_near((*outd)[0], {1, 1, 1, 2}, {1, 4});
  OpTest lin("Resize", 10);  // onnxruntime 1.32
  lin.input("x", floats({1, 1, 3, 4}, kImage)).input("scales", floats({4}, {1, 1, 2, 1.5f}));
  lin.attr(Attribute::make_string("mode", "linear"));
  auto outl = lin.run();
  ASSERT_TRUE(outl.is_ok()) << outl.status().to_string();
  expect_near((*outl)[0], {1, 1, 6, 6},
              {1, 1.666667, 2.666667, 4, 6, 7, 2, 3, 4.333333, 6, 6.333333, 6.5, 3, 4.333333, 6, 8, 6.666667, 6,
               6, 3.666667, 3.333333, 5, 5.333333, 5.5, 9, 3, 0.6666667, 2, 4, 5, 9, 3, 0.6666667, 2, 4, 5});
  // Opset 11: scales is a required input that may be empty when sizes are given.
  OpTest s11("Resize", 11);
  s11.input("x", floats({1, 1, 3, 4}, kImage)).input("roi", floats({0}, {})).input("scales", floats({0}, {}));
  s11.input("sizes", int64s({4}, {1, 1, 6, 8}));
  auto out11 = s11.run();
  ASSERT_TRUE(out11.is_ok()) << out11.status().to_string();
  EXPECT_EQ((*out11)[0].dims(), (Dims{1, 1, 6, 8}));
}

TEST(Upsample, Opset7AttributeAndOpset9Input) {
  // Upsample-9 linear (onnxruntime 1.32).
  OpTest t("Upsample", 9);
  t.input("x", floats({1, 1, 3, 4}, kImage)).input("scales", floats({4}, {1, 1, 2, 2}));
  t.attr(Attribute::make_string("mode", "linear"));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 1, 6, 8},
              {1, 1.5,  2,   3,    4, 5.5,  7,   7,   2, 2.75, 3.5, 4.75, 6, 6.25, 6.5, 6.5,
               3, 4,    5,   6.5,  8, 7,    6,   6,   6, 4.25, 2.5, 3.75, 5, 5.25, 5.5, 5.5,
               9, 4.5,  0,   1,    2, 3.5,  5,   5,   9, 4.5,  0,   1,    2, 3.5,  5,   5});
  // Upsample-7 nearest with the scales attribute repeats elements.
  OpTest n("Upsample", 7);
  n.input("x", floats({1, 2}, {1, 2})).attr(Attribute::make_floats("scales", {2, 3}));
  auto outn = n.run();
  ASSERT_TRUE(outn.is_ok()) << outn.status().to_string();
  expect_near((*outn)[0], {2, 6}, {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2});
  OpTest bad("Upsample", 9);
  bad.input("x", floats({1, 2}, {1, 2})).input("scales", floats({2}, {1, 0.5f}));
  EXPECT_FALSE(bad.run().is_ok());
}

TEST(Resize, NearestKeepsExactIntegers) {
  Tensor x = Tensor::empty(DataType::kInt64, {2});
  x.data<int64_t>()[0] = (int64_t{1} << 53) + 1;  // not representable as a double
  x.data<int64_t>()[1] = -7;
  OpTest t("Resize", 13);
  t.input("x", x);
  t.input("roi", floats({0}, {})).input("scales", floats({1}, {2}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  ASSERT_EQ((*out)[0].dims(), (Dims{4}));
  EXPECT_EQ((*out)[0].data<int64_t>()[0], (int64_t{1} << 53) + 1);
  EXPECT_EQ((*out)[0].data<int64_t>()[3], -7);
}

TEST(Resize, Errors) {
  auto run_with = [](std::vector<Attribute> attrs, Tensor scales, Tensor sizes, int64_t opset = 19) {
    OpTest t("Resize", opset);
    t.input("x", floats({1, 1, 3, 4}, kImage)).input("roi", floats({0}, {}));
    if (scales.defined()) {
      t.input("scales", scales);
    } else {
      t.none();
    }
    if (sizes.defined()) t.input("sizes", sizes);
    for (auto& a : attrs) t.attr(a);
    return t.run().status();
  };
  auto expect_error = [](const Status& s, const char* fragment) {
    EXPECT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
  };
  expect_error(run_with({}, Tensor(), Tensor()), "exactly one");
  expect_error(run_with({}, floats({4}, {1, 1, 2, 2}), int64s({4}, {1, 1, 6, 8})), "exactly one");
  expect_error(run_with({}, floats({3}, {1, 2, 2}), Tensor()), "scales has 3 values");
  expect_error(run_with({}, floats({4}, {1, 1, 0, 2}), Tensor()), "positive");
  expect_error(run_with({}, Tensor(), int64s({4}, {1, 1, -1, 2})), "non-negative");
  expect_error(run_with({A::make_string("mode", "bicubic")}, floats({4}, {1, 1, 2, 2}), Tensor()), "mode");
  expect_error(run_with({A::make_string("coordinate_transformation_mode", "center")}, floats({4}, {1, 1, 2, 2}), Tensor()),
               "coordinate_transformation_mode");
  expect_error(run_with({A::make_string("mode", "linear"), A::make_string("coordinate_transformation_mode", "tf_crop_and_resize")},
                        floats({4}, {1, 1, 2, 2}), Tensor()),
               "roi");
  expect_error(run_with({A::make_ints("axes", {2, 2})}, floats({2}, {2, 2}), Tensor()), "twice");
  expect_error(run_with({A::make_string("keep_aspect_ratio_policy", "fit")}, Tensor(), int64s({4}, {1, 1, 6, 8})),
               "keep_aspect_ratio_policy");
  expect_error(run_with({A::make_string("mode", "cubic")}, Tensor(), Tensor(), 10), "mode");
}

TEST(Resize, ShapeInference) {
  ir::Graph g("g");
  auto* x = g.add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("N"), Dim(3), Dim(20), Dim(30)})))
                .value();
  auto* roi = g.add_constant("roi", floats({0}, {})).value();
  auto* scales = g.add_constant("scales", floats({4}, {1, 1, 2, 0.5f})).value();
  auto* y = g.add_value("y").value();
  ir::Node* n = g.add_node("Resize", {x, roi, scales}, {y}, "r");
  n->set_opset(13);
  ops::InferContext ctx(*n);
  ASSERT_TRUE(ops::Registry::global().find("", "Resize", 13)->infer(ctx).is_ok());
  EXPECT_EQ(y->type().to_string(), "float[?,3,40,15]");
}

}  // namespace
}  // namespace kiln::test
