// Normalization ops. Expected values come from onnxruntime 1.32 or, where
// noted, onnx 1.23's reference evaluator, on the inputs below (hard-coded).
#include "ops/op_test_util.h"
#include "ops/registry.h"

namespace kiln::test {
namespace {

using ir::Attribute;

// rng = np.random.default_rng(1); x = round(uniform(-3, 3, (2, 3, 2, 2)), 2) as float32.
const std::vector<float> kX = {0.07f,  2.7f,  -2.14f, 2.69f,  -1.13f, -0.46f, 1.97f,  -0.54f,
                               0.3f,   -2.83f, 1.52f, 0.23f,  -1.02f, 1.73f,  -1.18f, -0.28f,
                               -2.2f,  -0.58f, -1.78f, -1.43f, 1.5f,  -1.32f, -0.09f, 2.88f};
const Dims kXDims = {2, 3, 2, 2};

Tensor x_tensor() { return floats(kXDims, kX); }

TEST(BatchNormalization, Inference) {
  // scale [0.5,1.5,-1], B [0.1,-0.2,0.3], mean [0.2,-0.1,0.4], var [1.5,0.7,2], epsilon 1e-3 (onnxruntime).
  for (int64_t opset : {7, 9, 14, 15}) {
    SCOPED_TRACE(opset);
    OpTest t("BatchNormalization", opset);
    t.input("x", x_tensor())
        .input("s", floats({3}, {0.5f, 1.5f, -1.0f}))
        .input("b", floats({3}, {0.1f, -0.2f, 0.3f}))
        .input("m", floats({3}, {0.2f, -0.1f, 0.4f}))
        .input("v", floats({3}, {1.5f, 0.7f, 2.0f}))
        .attr(Attribute::make_float("epsilon", 1e-3f));
    auto out = t.run();
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_near((*out)[0], kXDims,
                {0.04694541, 1.120281,   -0.8549827, 1.116199,  -2.04531,  -0.844963, 3.508537,  -0.9882881,
                 0.370693,   2.583384,   -0.4917617, 0.4201781, -0.3978969, 0.7244118, -0.4631949, -0.09589388,
                 -3.962284,  -1.059951,  -3.209827,  -2.58278,  -0.4776231, 1.51592,  0.6463957, -1.453187});
  }
}

TEST(BatchNormalization, TrainingModeOutputsRunningStats) {
  // training_mode=1, momentum 0.8 (onnx reference evaluator, opset 15).
  OpTest t("BatchNormalization", 15);
  t.input("x", x_tensor())
      .input("s", floats({3}, {0.5f, 1.5f, -1.0f}))
      .input("b", floats({3}, {0.1f, -0.2f, 0.3f}))
      .input("m", floats({3}, {0.2f, -0.1f, 0.4f}))
      .input("v", floats({3}, {1.5f, 0.7f, 2.0f}))
      .attr(Attribute::make_int("training_mode", 1))
      .attr(Attribute::make_float("momentum", 0.8f))
      .outputs(3);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], kXDims,
              {0.02714968, 0.7897222, -0.6136432, 0.7868227,  -0.6554744, 0.1892808,   3.253094,  0.08841448,
               0.2842271,  2.164961,  -0.4488384, 0.3262882,  -0.2888975, 0.5084692,   -0.3352897, -0.07433336,
               -2.004561,  0.03798138, -1.475013, -1.033723,  -0.436821,  1.257642,    0.5185677, -1.266026},
              1e-5, 1e-4);
  expect_near((*out)[1], {3}, {0.22425, -0.23375, 0.37475});
  expect_near((*out)[2], {3}, {1.794727, 0.8430722, 2.15394});
}

TEST(BatchNormalization, SpatialZeroBeforeOpset9) {
  // spatial=0: one set of statistics per element of [C, H, W]; here all equal per channel, so the
  // result must match the per-channel form.
  std::vector<float> s, b, m, v;
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 4; ++i) {
      s.push_back(c == 0 ? 0.5f : c == 1 ? 1.5f : -1.0f);
      b.push_back(c == 0 ? 0.1f : c == 1 ? -0.2f : 0.3f);
      m.push_back(c == 0 ? 0.2f : c == 1 ? -0.1f : 0.4f);
      v.push_back(c == 0 ? 1.5f : c == 1 ? 0.7f : 2.0f);
    }
  }
  OpTest t("BatchNormalization", 7);
  t.input("x", x_tensor()).input("s", floats({3, 2, 2}, s)).input("b", floats({3, 2, 2}, b));
  t.input("m", floats({3, 2, 2}, m)).input("v", floats({3, 2, 2}, v));
  t.attr(Attribute::make_int("spatial", 0)).attr(Attribute::make_float("epsilon", 1e-3f));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_NEAR(values_of((*out)[0])[0], 0.04694541, 1e-5);
  EXPECT_NEAR(values_of((*out)[0])[23], -1.453187, 1e-5);
}

TEST(BatchNormalization, Errors) {
  OpTest t("BatchNormalization", 15);
  t.input("x", x_tensor()).input("s", floats({2}, {1, 1})).input("b", floats({3}, {0, 0, 0}));
  t.input("m", floats({3}, {0, 0, 0})).input("v", floats({3}, {1, 1, 1}));
  Status s = t.run().status();
  EXPECT_NE(s.message().find("scale must have shape [3]"), std::string::npos) << s.message();
  OpTest u("BatchNormalization", 15);
  u.input("x", x_tensor()).input("s", floats({3}, {1, 1, 1})).input("b", floats({3}, {0, 0, 0}));
  u.input("m", floats({3}, {0, 0, 0})).input("v", floats({3}, {1, 1, 1})).outputs(3);
  s = u.run().status();
  EXPECT_NE(s.message().find("training_mode"), std::string::npos) << s.message();
}

TEST(InstanceNormalization, Values) {
  // epsilon 1e-2 (onnxruntime).
  OpTest t("InstanceNormalization", 6);
  t.input("x", x_tensor()).input("s", floats({3}, {0.5f, 1.5f, -1.0f})).input("b", floats({3}, {0.1f, -0.2f, 0.3f}));
  t.attr(Attribute::make_float("epsilon", 1e-2f));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], kXDims,
              {-0.08769722, 0.5618339, -0.633501,  0.5593643,  -1.570302,  -0.7280061, 2.326886,  -0.8285787,
               -0.007725075, 1.938092, -0.7661586, 0.03579161, -0.2581357, 0.9248952,  -0.3269666, 0.06020711,
               -1.944374,  2.078238,   -0.901474,  -0.03239107, -0.1760086, 1.596063,  0.8231383, -1.043193},
              1e-5, 1e-4);
  OpTest bad("InstanceNormalization", 6);
  bad.input("x", x_tensor()).input("s", floats({2}, {1, 1})).input("b", floats({3}, {0, 0, 0}));
  EXPECT_FALSE(bad.run().is_ok());
}

TEST(LRN, OddAndEvenSize) {
  // size 3, alpha 0.01, beta 0.6, bias 1.5 (onnxruntime).
  OpTest t("LRN", 13);
  t.input("x", x_tensor()).attr(Attribute::make_int("size", 3)).attr(Attribute::make_float("alpha", 0.01f));
  t.attr(Attribute::make_float("beta", 0.6f)).attr(Attribute::make_float("bias", 1.5f));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], kXDims,
              {0.0547901,  2.096047,   -1.659225, 2.088212,  -0.8843629, -0.3534052, 1.522818,   -0.4191659,
               0.2347882,  -2.194899,  1.182029,  0.1802493, -0.7935282, 1.350425,   -0.9196013, -0.2189156,
               -1.706483,  -0.4517029, -1.38718,  -1.105904, 1.165099,   -1.032092,  -0.07026755, 2.227504});
  // size 2 sums channels [c, c + 1]: computed with numpy from the spec's formula (onnxruntime rejects even
  // sizes, and onnx 1.23's reference evaluator loops over the batch instead of the channels).
  OpTest e("LRN", 13);
  e.input("x", x_tensor()).attr(Attribute::make_int("size", 2));
  auto oute = e.run();
  ASSERT_TRUE(oute.is_ok()) << oute.status().to_string();
  expect_near((*oute)[0], kXDims,
              {0.06999663, 2.699241,   -2.139321, 2.689241,  -1.129942, -0.4598582, 1.969543,    -0.539993,
               0.299999,   -2.82915,   1.519868,  0.2299995, -1.019775, 1.729784,   -1.179798,   -0.2799777,
               -2.199415,  -0.5799548, -1.779788, -1.429446, 1.499873,  -1.319914,  -0.08999997, 2.879105});
  OpTest bad("LRN", 13);
  bad.input("x", x_tensor());
  Status s = bad.run().status();
  EXPECT_NE(s.message().find("size"), std::string::npos) << s.message();
}

TEST(LpNormalization, L1AndL2) {
  OpTest t("LpNormalization", 1);  // p 2 along axis 1 (onnxruntime)
  t.input("x", x_tensor()).attr(Attribute::make_int("axis", 1)).attr(Attribute::make_int("p", 2));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], kXDims,
              {0.05976579, 0.6855686, -0.6520603, 0.9770133,  -0.9647906, -0.1168006, 0.6002612,  -0.1961291,
               0.2561391,  -0.7185774, 0.4631456, 0.08353645, -0.3577208, 0.7681912,  -0.5520472, -0.08675053,
               -0.7715547, -0.2575439, -0.8327491, -0.4430473, 0.52606,   -0.5861344, -0.0421053, 0.8922912});
  OpTest l1("LpNormalization", 1);  // p 1 along the last axis (onnxruntime)
  l1.input("x", x_tensor()).attr(Attribute::make_int("p", 1));
  auto out1 = l1.run();
  ASSERT_TRUE(out1.is_ok()) << out1.status().to_string();
  expect_near((*out1)[0], kXDims,
              {0.02527076, 0.9747292, -0.4430642, 0.5569358, -0.7106918, -0.2893082, 0.7848606, -0.2151394,
               0.09584665, -0.9041533, 0.8685714, 0.1314286, -0.3709091, 0.6290909, -0.8082192, -0.1917808,
               -0.7913669, -0.2086331, -0.5545171, -0.4454829, 0.5319149, -0.4680851, -0.03030303, 0.969697});
  OpTest zero("LpNormalization", 1);
  zero.input("x", floats({2, 2}, {0, 0, 3, 4}));
  auto outz = zero.run();
  ASSERT_TRUE(outz.is_ok());
  expect_near((*outz)[0], {2, 2}, {0, 0, 0.6, 0.8});
  OpTest bad("LpNormalization", 1);
  bad.input("x", x_tensor()).attr(Attribute::make_int("p", 3));
  EXPECT_FALSE(bad.run().is_ok());
}

TEST(MeanVarianceNormalization, DefaultAndCustomAxes) {
  OpTest t("MeanVarianceNormalization", 13);  // onnxruntime
  t.input("x", x_tensor());
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], kXDims,
              {-0.1457009, 1.379447,  -1.427289,  1.373648,   -0.3036507, 0.2595215, 2.302071,   0.192277,
               0.01577296, -1.864964, 0.7488398,  -0.02628826, -0.7777962, 0.8169398, -0.8705809, -0.3486673,
               -1.203045,  0.1586548, -0.8500118, -0.5558174, 0.7368223,  -0.9576437, -0.2185681, 1.566029},
              1e-5, 1e-4);
  OpTest a("MeanVarianceNormalization", 13);  // axes [1, -1] (onnxruntime)
  a.input("x", x_tensor()).attr(Attribute::make_ints("axes", {1, -1}));
  auto outa = a.run();
  ASSERT_TRUE(outa.is_ok()) << outa.status().to_string();
  expect_near((*outa)[0], kXDims,
              {0.1774697,  1.759658,   -1.689444,  1.265299,  -0.5444412, -0.1413742, 0.8248401, -0.7106472,
               0.315836,   -1.567148,  0.5495535,  -0.2396013, -0.4863659, 1.410806,  -0.5594789, 0.0215184,
               -1.300425,  -0.1828184, -0.9468104, -0.720867, 1.252134,   -0.6933302, 0.1441734, 2.061465},
              1e-5, 1e-4);
  OpTest bad("MeanVarianceNormalization", 13);
  bad.input("x", x_tensor()).attr(Attribute::make_ints("axes", {4}));
  EXPECT_FALSE(bad.run().is_ok());
}

TEST(LayerNormalization, AxisScaleBiasAndStats) {
  // axis 2, Scale [[1,2],[0.5,-1]], B [0.1,0.2] broadcast to [2,2] (onnxruntime).
  OpTest t("LayerNormalization", 17);
  t.input("x", x_tensor()).input("s", floats({2, 2}, {1, 2, 0.5f, -1})).input("b", floats({2}, {0.1f, 0.2f}));
  t.attr(Attribute::make_int("axis", 2)).outputs(3);
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], kXDims,
              {-0.2758528, 2.049591,  -0.6343966, -0.7198502,  -0.8167565, -0.5064913, 0.9452664,  0.6205305,
               0.4083209,  -3.082527, 0.6341114,  -0.06471993, -0.6189348, 3.51185,    -0.3285542, 0.2798817,
               -1.079168,  3.280105,  -0.1370925, 0.08669908,  0.5769503,  -2.397254,  -0.1620866, -1.14585});
  EXPECT_EQ((*out)[1].dtype(), DataType::kFloat32);
  expect_near((*out)[1], {2, 3, 1, 1}, {0.83, -0.04, -0.195, -0.1875, -1.4975, 0.7425});
  expect_near((*out)[2], {2, 3, 1, 1}, {0.4945431, 0.8410611, 0.6228704, 0.8635853, 1.678531, 0.6296374});

  OpTest d("LayerNormalization", 17);  // default axis -1, epsilon 0.1, scalar-like Scale [2] (onnxruntime)
  d.input("x", x_tensor()).input("s", floats({1}, {2})).attr(Attribute::make_float("epsilon", 0.1f));
  auto outd = d.run();
  ASSERT_TRUE(outd.is_ok()) << outd.status().to_string();
  expect_near((*outd)[0], kXDims,
              {-1.944564, 1.944564, -1.983071, 1.983071, -1.454375, 1.454375, 1.939381, -1.939381,
               1.96038,   -1.96038, 1.795785,  -1.795785, -1.949117, 1.949117, -1.636364, 1.636364,
               -1.863054, 1.863054, -0.9684003, 0.9684003, 1.951522, -1.951522, -1.956139, 1.956139});

  OpTest bad("LayerNormalization", 17);
  bad.input("x", x_tensor()).input("s", floats({3}, {1, 1, 1}));
  Status s = bad.run().status();
  EXPECT_NE(s.message().find("does not broadcast"), std::string::npos) << s.message();
  OpTest bad_axis("LayerNormalization", 17);
  bad_axis.input("x", x_tensor()).input("s", floats({1}, {1})).attr(Attribute::make_int("axis", 4));
  EXPECT_FALSE(bad_axis.run().is_ok());
}

// x6 = round(uniform(-3, 3, (1, 4, 3)), 2) continuing rng 1.
const std::vector<float> kX6 = {2.77f, 1.35f, 0.25f, -1.34f, -2.04f, 2.82f, 0.1f, -2.3f, 0.74f, 1.66f, 0.68f, 2.5f};

TEST(GroupNormalization, Opset18PerGroupAnd21PerChannel) {
  // onnx reference evaluator.
  OpTest t21("GroupNormalization", 21);
  t21.input("x", floats({1, 4, 3}, kX6)).input("s", floats({4}, {1, 2, 3, 4})).input("b", floats({4}, {0, 1, 0, -1}));
  t21.attr(Attribute::make_int("num_groups", 2));
  auto out = t21.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 4, 3},
              {1.139898, 0.3817457, -0.2055553, -1.108944, -1.856418, 3.333187, -0.9297159, -5.74551, 0.354496,
               1.934067, -0.6878651, 4.181438});
  OpTest t18("GroupNormalization", 18);
  t18.input("x", floats({1, 4, 3}, kX6)).input("s", floats({2}, {2, -1})).input("b", floats({2}, {0.5f, 1}));
  t18.attr(Attribute::make_int("num_groups", 2));
  auto out18 = t18.run();
  ASSERT_TRUE(out18.is_ok()) << out18.status().to_string();
  expect_near((*out18)[0], {1, 4, 3},
              {2.779796, 1.263491, 0.08888939, -1.608944, -2.356418, 2.833187, 1.309905, 2.91517, 0.8818347,
               0.2664832, 0.9219663, -0.2953595});
  OpTest bad("GroupNormalization", 21);
  bad.input("x", floats({1, 4, 3}, kX6)).input("s", floats({2}, {1, 1})).input("b", floats({2}, {0, 0}));
  bad.attr(Attribute::make_int("num_groups", 2));
  EXPECT_FALSE(bad.run().is_ok());  // opset 21 wants one scale per channel
  OpTest bad_groups("GroupNormalization", 21);
  bad_groups.input("x", floats({1, 4, 3}, kX6)).input("s", floats({4}, {1, 1, 1, 1})).input("b", floats({4}, {0, 0, 0, 0}));
  bad_groups.attr(Attribute::make_int("num_groups", 3));
  Status s = bad_groups.run().status();
  EXPECT_NE(s.message().find("num_groups"), std::string::npos) << s.message();
}

TEST(RMSNormalization, Values) {
  // onnx reference evaluator.
  OpTest t("RMSNormalization", 23);
  t.input("x", floats({1, 4, 3}, kX6)).input("s", floats({3}, {1, 2, 0.5f}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {1, 4, 3},
              {1.551881, 1.512664, 0.07003074, -0.6223112, -1.894798, 0.65482, 0.071626, -3.294796, 0.2650162,
               0.934413, 0.7655432, 0.7036242});
  OpTest a("RMSNormalization", 23);
  a.input("x", floats({1, 4, 3}, kX6)).input("s", floats({1}, {2}));
  a.attr(Attribute::make_int("axis", 1)).attr(Attribute::make_float("epsilon", 0.5f));
  auto outa = a.run();
  ASSERT_TRUE(outa.is_ok()) << outa.status().to_string();
  expect_near((*outa)[0], {1, 4, 3},
              {2.867763, 1.397646, 0.2588234, -1.387293, -2.111999, 2.919528, 0.1035294, -2.381175, 0.7661173,
               1.718587, 0.7039996, 2.588234});
}

TEST(Normalization, Float16KeepsType) {
  OpTest t("LayerNormalization", 17);
  t.input("x", make_tensor(DataType::kFloat16, {1, 2}, std::vector<float>{1, 3}));
  t.input("s", make_tensor(DataType::kFloat16, {2}, std::vector<float>{1, 1}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kFloat16);
  expect_near((*out)[0], {1, 2}, {-1, 1}, 1e-2, 0);
}

}  // namespace
}  // namespace kiln::test
