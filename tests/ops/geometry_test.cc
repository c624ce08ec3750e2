// Tests of the geometry family: GridSample, AffineGrid, RoiAlign, Col2Im,
// DeformConv, NonMaxSuppression, CenterCropPad. Expected values come from
// ONNX's reference evaluator (onnx 1.23.2, onnx.reference.ReferenceEvaluator)
// unless a comment derives them by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "op_test_util.h"

namespace kiln::test {
namespace {

using ir::Attribute;

std::vector<Tensor> run_ok(OpTest& t) {
  auto r = t.run();
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : std::vector<Tensor>{Tensor()};
}

std::vector<float> iota(int n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i);
  return v;
}

// ---- GridSample --------------------------------------------------------------

// X = arange(12) as [1, 1, 3, 4]; six grid points, some outside [-1, 1].
Tensor grid_x() { return floats({1, 1, 3, 4}, iota(12)); }
Tensor grid_points() { return floats({1, 2, 3, 2}, {-1.2f, -1, 0.3f, 0.1f, 0.9f, 1.3f, 0, 0, -0.6f, 0.7f, 1.5f, -1.6f}); }

TEST(GridSample, EveryModePaddingAndAlignment) {
  struct Case {
    const char* mode;  // opset 20 name
    const char* padding;
    int align;
    std::vector<double> expected;
  } cases[] = {
      {"linear", "zeros", 0, {0.0, 6.700001, 0.385002, 5.5, 7.884999, 0.0}},
      {"linear", "zeros", 1, {0.0, 6.35, 7.595, 5.5, 7.4, 0.3}},
      {"linear", "border", 0, {0.0, 6.700001, 11.0, 5.5, 8.3, 3.0}},
      {"linear", "border", 1, {0.0, 6.35, 10.849999, 5.5, 7.4, 3.0}},
      {"linear", "reflection", 0, {0.0, 6.700001, 11.0, 5.5, 8.3, 4.1}},
      {"linear", "reflection", 1, {0.3, 6.35, 9.65, 5.5, 7.4, 4.65}},
      {"nearest", "zeros", 0, {0.0, 6.0, 0.0, 6.0, 8.0, 0.0}},
      {"nearest", "zeros", 1, {0.0, 6.0, 11.0, 6.0, 9.0, 0.0}},
      {"nearest", "border", 0, {0.0, 6.0, 11.0, 6.0, 8.0, 3.0}},
      {"nearest", "border", 1, {0.0, 6.0, 11.0, 6.0, 9.0, 3.0}},
      {"nearest", "reflection", 0, {0.0, 6.0, 11.0, 6.0, 8.0, 3.0}},
      {"nearest", "reflection", 1, {0.0, 6.0, 11.0, 6.0, 9.0, 6.0}},
      {"cubic", "zeros", 0, {-0.034125, 7.178068, 0.321259, 5.5, 8.905766, 0.030375}},
      {"cubic", "zeros", 1, {-0.11025, 6.566641, 8.970771, 5.5, 9.087323, 0.212109}},
      {"cubic", "border", 0, {-0.375, 6.978628, 11.110252, 5.5, 8.367126, 3.0}},
      {"cubic", "border", 1, {0.0, 6.499624, 10.886657, 5.5, 7.576999, 3.0}},
      {"cubic", "reflection", 0, {-0.8175, 6.978628, 11.300002, 5.5, 8.374252, 3.85775}},
      {"cubic", "reflection", 1, {0.121499, 6.526624, 10.48194, 5.5, 7.945999, 4.095186}},
  };
  for (const Case& c : cases) {
    for (int opset : {16, 20, 22}) {
      std::string mode = c.mode;
      if (opset == 16 && mode != "nearest") mode = mode == "linear" ? "bilinear" : "bicubic";
      SCOPED_TRACE(mode + " " + c.padding + " align_corners=" + std::to_string(c.align) + " opset " +
                   std::to_string(opset));
      OpTest t("GridSample", opset);
      t.input("x", grid_x()).input("grid", grid_points());
      t.attr(Attribute::make_string("mode", mode)).attr(Attribute::make_string("padding_mode", c.padding));
      t.attr(Attribute::make_int("align_corners", c.align));
      expect_near(run_ok(t)[0], {1, 1, 2, 3}, c.expected, 1e-5, 1e-5);
    }
  }
}

TEST(GridSample, VolumetricOpset20) {
  Tensor x = floats({1, 1, 2, 2, 2}, iota(8));
  Tensor grid = floats({1, 1, 1, 2, 3}, {0.1f, -0.5f, 0.7f, -1, 1, 0.2f});
  OpTest lin("GridSample", 20);
  lin.input("x", x).input("grid", grid);
  expect_near(run_ok(lin)[0], {1, 1, 1, 1, 2}, {3.68, 1.2});
  OpTest near("GridSample", 20);
  near.input("x", x).input("grid", grid).attr(Attribute::make_string("mode", "nearest"));
  expect_near(run_ok(near)[0], {1, 1, 1, 1, 2}, {5, 0});
  OpTest cubic("GridSample", 20);
  cubic.input("x", x).input("grid", grid).attr(Attribute::make_string("mode", "cubic"));
  expect_near(run_ok(cubic)[0], {1, 1, 1, 1, 2}, {4.93568, 1.464258});
  OpTest reflect("GridSample", 20);
  reflect.input("x", x).input("grid", grid).attr(Attribute::make_string("mode", "cubic"));
  reflect.attr(Attribute::make_string("padding_mode", "reflection")).attr(Attribute::make_int("align_corners", 1));
  expect_near(run_ok(reflect)[0], {1, 1, 1, 1, 2}, {4.64425, 4.591999});
}

TEST(GridSample, OneSpatialDim) {
  OpTest t("GridSample", 20);
  t.input("x", floats({1, 1, 4}, {1, 4, 2, 8})).input("grid", floats({1, 3, 1}, {-0.9f, 0.25f, 1.2f}));
  t.attr(Attribute::make_string("padding_mode", "border"));
  expect_near(run_ok(t)[0], {1, 1, 3}, {1, 2, 8});
}

TEST(GridSample, IntegerInputAndEmptyGrid) {
  // The grid point (0, 0) is the centre of a 2x2 image: the mean 1.5, truncated.
  OpTest t("GridSample", 20);
  t.input("x", int32s({1, 1, 2, 2}, {0, 1, 2, 3})).input("grid", floats({1, 1, 1, 2}, {0, 0}));
  auto out = run_ok(t);
  EXPECT_EQ(out[0].dtype(), DataType::kInt32);
  expect_near(out[0], {1, 1, 1, 1}, {1});
  OpTest empty("GridSample", 20);
  empty.input("x", grid_x()).input("grid", floats({1, 0, 3, 2}, {}));
  EXPECT_EQ(dims_to_string(run_ok(empty)[0].dims()), "[1,1,0,3]");
}

TEST(GridSample, Errors) {
  OpTest mode16("GridSample", 16);
  mode16.input("x", grid_x()).input("grid", grid_points()).attr(Attribute::make_string("mode", "linear"));
  expect_error(mode16.run(), "mode 'linear'");
  OpTest mode20("GridSample", 20);
  mode20.input("x", grid_x()).input("grid", grid_points()).attr(Attribute::make_string("mode", "bilinear"));
  expect_error(mode20.run(), "mode 'bilinear'");
  OpTest padding("GridSample", 20);
  padding.input("x", grid_x()).input("grid", grid_points()).attr(Attribute::make_string("padding_mode", "wrap"));
  expect_error(padding.run(), "padding_mode 'wrap'");
  OpTest rank16("GridSample", 16);
  rank16.input("x", floats({1, 1, 2, 2, 2}, iota(8))).input("grid", floats({1, 1, 1, 1, 3}, {0, 0, 0}));
  expect_error(rank16.run(), "4-D");
  OpTest grid_last("GridSample", 20);
  grid_last.input("x", grid_x()).input("grid", floats({1, 1, 1, 3}, {0, 0, 0}));
  expect_error(grid_last.run(), "grid");
  OpTest batch("GridSample", 20);
  batch.input("x", grid_x()).input("grid", floats({2, 1, 1, 2}, {0, 0, 0, 0}));
  expect_error(batch.run(), "grid");
  OpTest rank2("GridSample", 20);
  rank2.input("x", floats({1, 4}, iota(4))).input("grid", floats({1, 2}, {0, 0}));
  expect_error(rank2.run(), "[N, C, D1, ..., Dr]");
}

TEST(GridSample, NonFiniteAndFarCoordinates) {
  // NaN gives NaN; infinite or huge coordinates read padding (or the border).
  float inf = std::numeric_limits<float>::infinity();
  Tensor grid = floats({1, 1, 3, 2}, {std::nanf(""), 0, inf, 0, 1e30f, -1e30f});
  OpTest zeros("GridSample", 20);
  zeros.input("x", grid_x()).input("grid", grid);
  expect_near(run_ok(zeros)[0], {1, 1, 1, 3}, {std::nan(""), 0, 0});
  OpTest border("GridSample", 20);
  border.input("x", grid_x()).input("grid", grid).attr(Attribute::make_string("padding_mode", "border"));
  border.attr(Attribute::make_string("mode", "cubic"));
  expect_near(run_ok(border)[0], {1, 1, 1, 3}, {std::nan(""), 7, 3}, 1e-4);
  OpTest reflect("GridSample", 20);
  reflect.input("x", grid_x()).input("grid", grid).attr(Attribute::make_string("padding_mode", "reflection"));
  reflect.attr(Attribute::make_string("mode", "nearest"));
  EXPECT_TRUE(reflect.run().is_ok());
}

TEST(GridSample, Infer) {
  EXPECT_EQ(InferTest("GridSample", 20)
                .tensor(DataType::kFloat32, Shape({Dim::sym("N"), Dim(3), Dim(8), Dim(8)}))
                .tensor(DataType::kFloat32, Shape({Dim::sym("N"), Dim(5), Dim(6), Dim(2)}))
                .str(),
            "float[N,3,5,6]");
  EXPECT_EQ(InferTest("GridSample", 20)
                .tensor(DataType::kFloat32, Shape())
                .tensor(DataType::kFloat32, Shape::of({1, 2, 3, 4, 3}))
                .str(),
            "float[1,?,2,3,4]");
}

// ---- AffineGrid --------------------------------------------------------------

TEST(AffineGrid, TwoAndThreeDims) {
  Tensor theta = floats({1, 2, 3}, {1, 0.5f, 0.1f, -0.2f, 1, 0.3f});
  OpTest t("AffineGrid", 20);
  t.input("theta", theta).input("size", int64s({4}, {1, 1, 2, 3}));
  expect_near(run_ok(t)[0], {1, 2, 3, 2},
              {-0.816667, -0.066667, -0.15, -0.2, 0.516667, -0.333333, -0.316667, 0.933333, 0.35, 0.8, 1.016667,
               0.666667});
  OpTest aligned("AffineGrid", 20);
  aligned.input("theta", theta).input("size", int64s({4}, {1, 1, 2, 3})).attr(Attribute::make_int("align_corners", 1));
  expect_near(run_ok(aligned)[0], {1, 2, 3, 2}, {-1.4, -0.5, -0.4, -0.7, 0.6, -0.9, -0.4, 1.5, 0.6, 1.3, 1.6, 1.1});
  OpTest vol("AffineGrid", 20);
  vol.input("theta", floats({1, 3, 4}, {1, 0, 0.1f, 0, 0, 1, 0, 0.2f, 0.3f, 0, 1, 0}));
  vol.input("size", int64s({5}, {1, 1, 2, 1, 2}));
  expect_near(run_ok(vol)[0], {1, 2, 1, 2, 3},
              {-0.55, 0.2, -0.65, 0.45, 0.2, -0.35, -0.45, 0.2, 0.35, 0.55, 0.2, 0.65});
}

TEST(AffineGrid, ErrorsAndInfer) {
  OpTest size_len("AffineGrid", 20);
  size_len.input("theta", floats({1, 2, 3}, {1, 0, 0, 0, 1, 0})).input("size", int64s({3}, {1, 2, 3}));
  expect_error(size_len.run(), "size [1,2,3]");
  OpTest theta_shape("AffineGrid", 20);
  theta_shape.input("theta", floats({1, 2, 3}, {1, 0, 0, 0, 1, 0})).input("size", int64s({5}, {1, 1, 2, 2, 2}));
  expect_error(theta_shape.run(), "theta");
  OpTest batch("AffineGrid", 20);
  batch.input("theta", floats({1, 2, 3}, {1, 0, 0, 0, 1, 0})).input("size", int64s({4}, {2, 1, 2, 2}));
  expect_error(batch.run(), "theta");
  EXPECT_EQ(InferTest("AffineGrid", 20)
                .tensor(DataType::kFloat32, Shape::of({2, 2, 3}))
                .constant(int64s({4}, {2, 3, 5, 7}))
                .str(),
            "float[2,5,7,2]");
  EXPECT_EQ(InferTest("AffineGrid", 20)
                .tensor(DataType::kFloat32, Shape::of({2, 3, 4}))
                .tensor(DataType::kInt64, Shape::of({5}))
                .str(),
            "float[?,?,?,?,3]");
}

// ---- RoiAlign ----------------------------------------------------------------

Tensor roi_x() { return floats({2, 1, 4, 4}, iota(32)); }
Tensor rois() { return floats({2, 4}, {0, 0, 3, 3, 1, 0.5f, 2.5f, 3.2f}); }

TEST(RoiAlign, ModesAndCoordinateTransforms) {
  struct Case {
    const char* ctm;
    const char* mode;
    std::vector<double> expected;
  } cases[] = {
      {"half_pixel", "avg", {17.5625, 19.0, 23.3125, 24.75, 3.575, 4.325, 8.975, 9.725}},
      {"half_pixel", "max", {16.0, 15.75, 21.0, 19.90625, 4.320312, 3.703125, 5.414062, 4.296875}},
      {"output_half_pixel", "avg", {19.75, 21.25, 25.75, 27.25, 6.075, 6.825001, 11.475, 12.225}},
      {"output_half_pixel", "max", {16.078125, 16.84375, 19.140625, 19.90625, 2.882813, 4.484375, 7.007814, 10.565627}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.ctm) + " " + c.mode);
    OpTest t("RoiAlign", 16);
    t.input("x", roi_x()).input("rois", rois()).input("b", int64s({2}, {1, 0}));
    t.attr(Attribute::make_string("coordinate_transformation_mode", c.ctm));
    t.attr(Attribute::make_string("mode", c.mode));
    t.attr(Attribute::make_int("output_height", 2)).attr(Attribute::make_int("output_width", 2));
    expect_near(run_ok(t)[0], {2, 1, 2, 2}, c.expected, 1e-5);
  }
}

TEST(RoiAlign, Opset10IsOutputHalfPixel) {
  // Expected values from onnxruntime 1.32 at opset 10 (ONNX's reference
  // evaluator ignores the opset and applies half_pixel here).
  OpTest t("RoiAlign", 10);
  t.input("x", roi_x()).input("rois", rois()).input("b", int64s({2}, {1, 0}));
  t.attr(Attribute::make_int("output_height", 1)).attr(Attribute::make_int("output_width", 2));
  t.attr(Attribute::make_int("sampling_ratio", 2)).attr(Attribute::make_float("spatial_scale", 0.5f));
  expect_near(run_ok(t)[0], {2, 1, 1, 2}, {19.375, 20.125, 4.45, 4.95});
}

TEST(RoiAlign, ErrorsAndInfer) {
  OpTest batch("RoiAlign", 16);
  batch.input("x", roi_x()).input("rois", rois()).input("b", int64s({2}, {0, 2}));
  expect_error(batch.run(), "batch index 2");
  OpTest roi_shape("RoiAlign", 16);
  roi_shape.input("x", roi_x()).input("rois", floats({1, 3}, {0, 0, 1})).input("b", int64s({1}, {0}));
  expect_error(roi_shape.run(), "rois");
  OpTest mode("RoiAlign", 16);
  mode.input("x", roi_x()).input("rois", rois()).input("b", int64s({2}, {0, 0}));
  mode.attr(Attribute::make_string("mode", "min"));
  expect_error(mode.run(), "mode 'min'");
  OpTest size("RoiAlign", 16);
  size.input("x", roi_x()).input("rois", rois()).input("b", int64s({2}, {0, 0}));
  size.attr(Attribute::make_int("output_height", 0));
  expect_error(size.run(), "output_height 0");
  OpTest rank("RoiAlign", 16);
  rank.input("x", floats({1, 4, 4}, iota(16))).input("rois", rois()).input("b", int64s({2}, {0, 0}));
  expect_error(rank.run(), "4-D");
  OpTest nan("RoiAlign", 16);
  nan.input("x", roi_x()).input("rois", floats({1, 4}, {0, std::nanf(""), 1, 1})).input("b", int64s({1}, {0}));
  expect_error(nan.run(), "non-finite");
  OpTest huge("RoiAlign", 16);
  huge.input("x", roi_x()).input("rois", floats({1, 4}, {0, 0, 1e20f, 1e20f})).input("b", int64s({1}, {0}));
  expect_error(huge.run(), "too many samples");
  OpTest none("RoiAlign", 16);
  none.input("x", roi_x()).input("rois", floats({0, 4}, {})).input("b", int64s({0}, {}));
  EXPECT_EQ(dims_to_string(run_ok(none)[0].dims()), "[0,1,1,1]");
  EXPECT_EQ(InferTest("RoiAlign", 16)
                .tensor(DataType::kFloat32, Shape::of({2, 3, 8, 8}))
                .tensor(DataType::kFloat32, Shape::of({5, 4}))
                .tensor(DataType::kInt64, Shape::of({5}))
                .attr(Attribute::make_int("output_height", 7))
                .str(),
            "float[5,3,7,1]");
}

// ---- Col2Im ------------------------------------------------------------------

TEST(Col2Im, OneDimWithStridePadDilation) {
  std::vector<float> data(18);
  for (int i = 0; i < 18; ++i) data[static_cast<size_t>(i)] = static_cast<float>(i + 1);
  OpTest t("Col2Im", 18);
  t.input("x", floats({1, 6, 3}, data)).input("image", int64s({1}, {7})).input("block", int64s({1}, {3}));
  t.attr(Attribute::make_ints("strides", {2})).attr(Attribute::make_ints("pads", {1, 2}));
  t.attr(Attribute::make_ints("dilations", {2}));
  expect_near(run_ok(t)[0], {1, 2, 7}, {0, 6, 0, 15, 0, 14, 0, 0, 24, 0, 42, 0, 32, 0});
}

TEST(Col2Im, TwoDimOverlapsSumInInt) {
  // 2x2 blocks over a 3x3 image, stride 1: block (bh, bw) covers rows bh..bh+1,
  // cols bw..bw+1; with every column entry 1 each pixel counts its covering blocks.
  OpTest t("Col2Im", 18);
  t.input("x", int64s({1, 4, 4}, std::vector<int64_t>(16, 1))).input("image", int64s({2}, {3, 3}));
  t.input("block", int64s({2}, {2, 2}));
  auto out = run_ok(t);
  EXPECT_EQ(out[0].dtype(), DataType::kInt64);
  expect_near(out[0], {1, 1, 3, 3}, {1, 2, 1, 2, 4, 2, 1, 2, 1});
}

TEST(Col2Im, ErrorsAndInfer) {
  OpTest blocks("Col2Im", 18);
  blocks.input("x", floats({1, 4, 3}, iota(12))).input("image", int64s({2}, {3, 3}));
  blocks.input("block", int64s({2}, {2, 2}));
  expect_error(blocks.run(), "must have shape [N, C * 4, 4]");
  OpTest lens("Col2Im", 18);
  lens.input("x", floats({1, 4, 4}, iota(16))).input("image", int64s({2}, {3, 3})).input("block", int64s({1}, {2}));
  expect_error(lens.run(), "same, non-zero length");
  OpTest stride("Col2Im", 18);
  stride.input("x", floats({1, 4, 4}, iota(16))).input("image", int64s({2}, {3, 3}));
  stride.input("block", int64s({2}, {2, 2})).attr(Attribute::make_ints("strides", {0, 1}));
  expect_error(stride.run(), "strides");
  OpTest fit("Col2Im", 18);
  fit.input("x", floats({1, 16, 1}, iota(16))).input("image", int64s({2}, {3, 3}));
  fit.input("block", int64s({2}, {4, 4}));
  expect_error(fit.run(), "does not fit");
  EXPECT_EQ(InferTest("Col2Im", 18)
                .tensor(DataType::kFloat32, Shape::of({2, 12, 9}))
                .constant(int64s({2}, {5, 5}))
                .constant(int64s({2}, {2, 2}))
                .str(),
            "float[2,3,5,5]");
}

// ---- DeformConv --------------------------------------------------------------

Tensor deform_x() {
  return floats({1, 2, 3, 3}, {0.27f, -0.46f, -0.92f, -0.97f, 0.63f, 0.83f, 0.21f, 0.46f, 0.09f, 0.87f, 0.63f, -0.99f,
                               0.71f, -0.93f, 0.46f, -0.65f, 0.73f, 0.08f});
}

TEST(DeformConv, OffsetGroupsMaskAndBias) {
  Tensor w = floats({2, 2, 2, 2}, {-0.4f, -0.15f, -0.94f, -0.75f, 0.34f, 0.29f, 0.23f, -0.23f, 0.99f, 0.96f, 0.37f,
                                   0.3f, 0.38f, -0.22f, -0.73f, 0.44f});
  Tensor off = floats(
      {1, 16, 2, 2},
      {0.05f,  -0.38f, -0.03f, 0.78f,  0.87f,  -0.28f, 0.14f,  -0.36f, 0.19f,  -0.32f, -0.22f, 0.78f,  -0.55f,
       0.25f,  -0.83f, 0.67f,  0.57f,  -0.52f, 0.75f,  -0.88f, -0.33f, -0.7f,  -0.1f,  0.59f,  -0.54f, -0.9f,
       -0.19f, -0.6f,  -0.82f, 0.16f,  -0.4f,  0.34f,  -0.6f,  0.88f,  -0.27f, -0.79f, 0.26f,  0.85f,  -0.12f,
       0.91f,  0,      -0.15f, 0.24f,  0.99f,  0.9f,   -0.08f, 0.52f,  -0.01f, 0.06f,  0.57f,  -0.17f, 0.47f,
       0.42f,  0.86f,  -0.77f, 0.46f,  0.85f,  0.94f,  -0.97f, 0.73f,  0.96f,  0.91f,  -0.7f,  0.95f});
  Tensor mask = floats({1, 8, 2, 2}, {0.89f, 0.82f, 0.48f, 0.23f, 0.8f,  0.92f, 0.27f, 0.54f, 0.44f, 0.93f, 0.04f,
                                      0.73f, 0.61f, 0.03f, 0.72f, 0.02f, 0.76f, 0.51f, 0.93f, 0.07f, 0.84f, 0.07f,
                                      0.34f, 0.43f, 0.97f, 0.56f, 0.26f, 0.24f, 0.89f, 0.23f, 0.12f, 0.29f});
  OpTest t("DeformConv", 19);
  t.input("x", deform_x()).input("w", w).input("off", off).input("b", floats({2}, {0.5f, -1})).input("mask", mask);
  t.attr(Attribute::make_int("offset_group", 2));
  expect_near(run_ok(t)[0], {1, 2, 2, 2},
              {0.673466, 0.847988, 0.692435, -0.001701, -1.141813, -1.669264, -1.142942, -0.76487}, 1e-5);
}

TEST(DeformConv, GroupsStridesPads) {
  Tensor w = floats({2, 1, 2, 2}, {-0.4f, -0.15f, -0.94f, -0.75f, 0.99f, 0.96f, 0.37f, 0.3f});
  auto attrs = [](OpTest& t) {
    t.attr(Attribute::make_int("group", 2)).attr(Attribute::make_ints("pads", {1, 0, 0, 1}));
    t.attr(Attribute::make_ints("strides", {2, 1}));
  };
  OpTest zero("DeformConv", 19);
  zero.input("x", deform_x()).input("w", w).input("off", floats({1, 8, 2, 3}, std::vector<float>(48, 0)));
  attrs(zero);
  expect_near(run_ok(zero)[0], {1, 2, 2, 3},
              {0.0912, 1.1224, 0.8648, -0.2489, -0.8764, -0.4166, 0.5109, -0.0639, -0.3663, -0.2114, -0.185, 0.485},
              1e-5);
  OpTest shift("DeformConv", 22);
  shift.input("x", deform_x()).input("w", w).input("off", floats({1, 8, 2, 3}, std::vector<float>(48, 0.5f)));
  attrs(shift);
  expect_near(run_ok(shift)[0], {1, 2, 2, 3},
              {0.1803, 0.170575, 0.11315, -0.36895, -0.381625, -0.11315, 0.341, -0.443225, -0.29405, 0.1151,
               0.294675, 0.14105},
              1e-5);
}

TEST(DeformConv, ErrorsAndInfer) {
  Tensor w = floats({2, 2, 2, 2}, std::vector<float>(16, 1));
  OpTest off_shape("DeformConv", 19);
  off_shape.input("x", deform_x()).input("w", w).input("off", floats({1, 8, 3, 3}, std::vector<float>(72, 0)));
  expect_error(off_shape.run(), "offset");
  OpTest group("DeformConv", 19);
  group.input("x", deform_x()).input("w", w).input("off", floats({1, 8, 2, 2}, std::vector<float>(32, 0)));
  group.attr(Attribute::make_int("group", 2));
  expect_error(group.run(), "group 2");
  OpTest mask("DeformConv", 19);
  mask.input("x", deform_x()).input("w", w).input("off", floats({1, 8, 2, 2}, std::vector<float>(32, 0)));
  mask.none().input("mask", floats({1, 2, 2, 2}, std::vector<float>(8, 1)));
  expect_error(mask.run(), "mask");
  OpTest kernel("DeformConv", 19);
  kernel.input("x", deform_x()).input("w", w).input("off", floats({1, 8, 2, 2}, std::vector<float>(32, 0)));
  kernel.attr(Attribute::make_ints("kernel_shape", {3, 3}));
  expect_error(kernel.run(), "kernel_shape");
  EXPECT_EQ(InferTest("DeformConv", 19)
                .tensor(DataType::kFloat32, Shape::of({1, 2, 3, 3}))
                .tensor(DataType::kFloat32, Shape::of({4, 2, 2, 2}))
                .tensor(DataType::kFloat32, Shape::of({1, 8, 2, 2}))
                .str(),
            "float[1,4,2,2]");
}

// ---- NonMaxSuppression -------------------------------------------------------

Tensor nms_boxes() {
  return floats({1, 6, 4}, {0, 0, 1, 1, 0, 0.1f, 1, 1.1f, 0, -0.1f, 1, 0.9f, 0, 10, 1, 11, 0, 10.1f, 1, 11.1f, 0, 100,
                            1, 101});
}
Tensor nms_scores() {
  return floats({1, 2, 6}, {0.9f, 0.75f, 0.6f, 0.95f, 0.5f, 0.3f, 0.1f, 0.2f, 0.9f, 0.9f, 0.3f, 0.3f});
}

TEST(NonMaxSuppression, PerClassWithThresholds) {
  // Class 1 has tied scores 0.9 (boxes 2 and 3): the lower index comes first.
  OpTest t("NonMaxSuppression", 11);
  t.input("b", nms_boxes()).input("s", nms_scores()).input("m", int64s({1}, {3}));
  t.input("i", floats({1}, {0.5f})).input("t", floats({1}, {0.25f}));
  auto out = run_ok(t);
  EXPECT_EQ(out[0].dtype(), DataType::kInt64);
  expect_near(out[0], {6, 3}, {0, 0, 3, 0, 0, 0, 0, 0, 5, 0, 1, 2, 0, 1, 3, 0, 1, 5});
}

TEST(NonMaxSuppression, CenterPointBoxAndDefaults) {
  // Centre boxes [x, y, w, h]: box 1 overlaps box 0 with IoU 0.8 / 1.2 > 0.5.
  Tensor boxes = floats({1, 3, 4}, {0.5f, 0.5f, 1, 1, 0.7f, 0.5f, 1, 1, 5, 5, 1, 1});
  Tensor scores = floats({1, 1, 3}, {0.9f, 0.8f, 0.7f});
  OpTest t("NonMaxSuppression", 10);
  t.input("b", boxes).input("s", scores).input("m", int64s({1}, {10})).input("i", floats({}, {0.5f}));
  t.attr(Attribute::make_int("center_point_box", 1));
  expect_near(run_ok(t)[0], {2, 3}, {0, 0, 0, 0, 0, 2});
  // Without max_output_boxes_per_class nothing is selected.
  OpTest none("NonMaxSuppression", 11);
  none.input("b", boxes).input("s", scores);
  EXPECT_EQ(dims_to_string(run_ok(none)[0].dims()), "[0,3]");
}

TEST(NonMaxSuppression, ErrorsAndInfer) {
  OpTest shape("NonMaxSuppression", 11);
  shape.input("b", nms_boxes()).input("s", floats({1, 2, 5}, iota(10)));
  expect_error(shape.run(), "scores");
  OpTest iou("NonMaxSuppression", 11);
  iou.input("b", nms_boxes()).input("s", nms_scores()).input("m", int64s({1}, {3})).input("i", floats({1}, {1.5f}));
  expect_error(iou.run(), "iou_threshold 1.5");
  OpTest negative("NonMaxSuppression", 11);
  negative.input("b", nms_boxes()).input("s", nms_scores()).input("m", int64s({1}, {-5}));
  EXPECT_EQ(dims_to_string(run_ok(negative)[0].dims()), "[0,3]");
  OpTest cpb("NonMaxSuppression", 11);
  cpb.input("b", nms_boxes()).input("s", nms_scores()).attr(Attribute::make_int("center_point_box", 2));
  expect_error(cpb.run(), "center_point_box 2");
  EXPECT_EQ(InferTest("NonMaxSuppression", 11)
                .tensor(DataType::kFloat32, Shape::of({1, 6, 4}))
                .tensor(DataType::kFloat32, Shape::of({1, 2, 6}))
                .str(),
            "int64[?,3]");
}

// ---- CenterCropPad -----------------------------------------------------------

TEST(CenterCropPad, CropAndPadCentre) {
  OpTest t("CenterCropPad", 18);
  t.input("x", floats({3, 4}, iota(12))).input("s", int64s({2}, {5, 1}));
  expect_near(run_ok(t)[0], {5, 1}, {0, 1, 5, 9, 0});
  OpTest axes("CenterCropPad", 18);
  axes.input("x", floats({3, 4}, iota(12))).input("s", int32s({1}, {7})).attr(Attribute::make_ints("axes", {-1}));
  expect_near(run_ok(axes)[0], {3, 7}, {0, 0, 1, 2, 3, 0, 0, 0, 4, 5, 6, 7, 0, 0, 0, 8, 9, 10, 11, 0, 0});
}

TEST(CenterCropPad, StringsAndZeroSize) {
  OpTest t("CenterCropPad", 18);
  t.input("x", strings({3}, {"a", "b", "c"})).input("s", int64s({1}, {4}));
  auto out = run_ok(t);
  // Padding 3 to 4 puts the odd extra element at the end.
  EXPECT_EQ(string_values(out[0]), (std::vector<std::string>{"a", "b", "c", ""}));
  OpTest empty("CenterCropPad", 18);
  empty.input("x", floats({2, 3}, iota(6))).input("s", int64s({2}, {0, 3}));
  EXPECT_EQ(dims_to_string(run_ok(empty)[0].dims()), "[0,3]");
}

TEST(CenterCropPad, ErrorsAndInfer) {
  OpTest count("CenterCropPad", 18);
  count.input("x", floats({3, 4}, iota(12))).input("s", int64s({1}, {2}));
  expect_error(count.run(), "1 entries for 2 axes");
  OpTest neg("CenterCropPad", 18);
  neg.input("x", floats({3, 4}, iota(12))).input("s", int64s({2}, {-1, 2}));
  expect_error(neg.run(), "negative");
  OpTest huge("CenterCropPad", 18);
  huge.input("x", floats({3, 4}, iota(12))).input("s", int64s({2}, {int64_t{1} << 40, 1 << 20}));
  EXPECT_FALSE(huge.run().is_ok());
  OpTest axis("CenterCropPad", 18);
  axis.input("x", floats({3, 4}, iota(12))).input("s", int64s({1}, {2})).attr(Attribute::make_ints("axes", {2}));
  EXPECT_FALSE(axis.run().is_ok());
  EXPECT_EQ(InferTest("CenterCropPad", 18)
                .tensor(DataType::kFloat32, Shape::of({3, 4, 5}))
                .constant(int64s({2}, {6, 2}))
                .attr(Attribute::make_ints("axes", {0, 2}))
                .str(),
            "float[6,4,2]");
  EXPECT_EQ(InferTest("CenterCropPad", 18)
                .tensor(DataType::kFloat32, Shape::of({3, 4}))
                .tensor(DataType::kInt64, Shape::of({2}))
                .str(),
            "float[?,?]");
}

}  // namespace
}  // namespace kiln::test
