#include "ops/epilogue.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ops/graph_builder.h"

namespace kiln::ops {
namespace {

TEST(Epilogue, RoundTripsThroughNodeAttributes) {
  test::GraphBuilder b("main", nullptr, 17);
  b.input("x", ir::ValueType::tensor(DataType::kFloat32));
  ir::Node* n = b.node("Relu", {"x"}, {"y"});
  Epilogue e;
  e.activation = Activation::kClip;
  e.alpha = 0.0f;
  e.beta = 6.0f;
  e.residual_after_activation = true;
  e.to_node(*n);
  auto back = Epilogue::from_node(*n);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->activation, Activation::kClip);
  EXPECT_EQ(back->beta, 6.0f);
  EXPECT_TRUE(back->residual_after_activation);
  EXPECT_EQ(back->activate(7.5f), 6.0f);
  EXPECT_EQ(back->activate(-1.0f), 0.0f);
}

TEST(Epilogue, RejectsUnknownActivationAndWrongParamCount) {
  test::GraphBuilder b("main", nullptr, 17);
  b.input("x", ir::ValueType::tensor(DataType::kFloat32));
  ir::Node* n = b.node("Relu", {"x"}, {"y"});
  n->set_attr(ir::Attribute::make_string("activation", "Swishy"));
  EXPECT_FALSE(Epilogue::from_node(*n).is_ok());
  n->set_attr(ir::Attribute::make_string("activation", "LeakyRelu"));
  auto r = Epilogue::from_node(*n);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().to_string().find("activation_params"), std::string::npos);
}

TEST(Epilogue, ActivationsMatchTheirDefinitions) {
  Epilogue e;
  e.activation = Activation::kSilu;
  EXPECT_NEAR(e.activate(1.0f), 1.0f / (1.0f + std::exp(-1.0f)), 1e-6);
  e.activation = Activation::kGelu;
  EXPECT_NEAR(e.activate(1.0f), 0.8413447f, 1e-6);
  e.activation = Activation::kGeluTanh;
  EXPECT_NEAR(e.activate(1.0f), 0.8411920f, 1e-6);
  e.activation = Activation::kHardSwish;
  EXPECT_NEAR(e.activate(1.0f), 1.0f * (1.0f / 6.0f + 0.5f), 1e-6);
  e.activation = Activation::kLeakyRelu;
  e.alpha = 0.1f;
  EXPECT_NEAR(e.activate(-2.0f), -0.2f, 1e-6);
}

}  // namespace
}  // namespace kiln::ops
