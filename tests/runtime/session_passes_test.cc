// SessionOptions::passes: the optimizer runs before the model is compiled,
// outputs stay equal, layers() shows the fused nodes.
#include <gtest/gtest.h>

#include <memory>

#include "ir/graph.h"
#include "kiln/session.h"

namespace kiln {
namespace {

// y = Relu(Conv(x, w) + b) with x [1, 2, 3, 3], w [2, 2, 1, 1].
ir::Model conv_relu_model() {
  auto g = std::make_shared<ir::Graph>("conv_relu");
  g->set_opset_imports({{"", 17}});
  auto f32 = [](Dims d) { return ir::ValueType::tensor(DataType::kFloat32, Shape::of(d)); };
  ir::Value* x = g->add_value("x", f32({1, 2, 3, 3})).value();
  g->add_input(x);
  Tensor wt = Tensor::empty(DataType::kFloat32, {2, 2, 1, 1});
  const float wv[] = {1, -1, 0.5f, 2};
  std::copy(wv, wv + 4, wt.data<float>());
  Tensor bt = Tensor::empty(DataType::kFloat32, {2, 1, 1});
  bt.data<float>()[0] = -0.5f;
  bt.data<float>()[1] = 0.25f;
  ir::Value* w = g->add_constant("w", wt).value();
  ir::Value* b = g->add_constant("b", bt).value();
  ir::Value* c = g->add_value("c", f32({1, 2, 3, 3})).value();
  ir::Value* a = g->add_value("a", f32({1, 2, 3, 3})).value();
  ir::Value* y = g->add_value("y", f32({1, 2, 3, 3})).value();
  g->add_node("Conv", {x, w}, {c}, "conv")->set_opset(17);
  g->add_node("Add", {c, b}, {a}, "add")->set_opset(17);
  g->add_node("Relu", {a}, {y}, "relu")->set_opset(17);
  g->add_output(y);
  ir::Model m;
  m.graph = g;
  m.ir_version = 8;
  return m;
}

TEST(SessionPasses, OptimizedSessionMatchesAndReportsFusedLayers) {
  auto plain = Session::from_model(conv_relu_model(), {.threads = 1, .build = false});  // as imported
  auto fused = Session::from_model(conv_relu_model(), {.threads = 1, .passes = {"all"}});
  ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
  ASSERT_TRUE(fused.is_ok()) << fused.status().to_string();
  EXPECT_EQ((*plain)->layers().size(), 3u);
  auto layers = (*fused)->layers();
  ASSERT_EQ(layers.size(), 1u);
  EXPECT_EQ(layers[0].op, "kiln.FusedConv");
  EXPECT_EQ(layers[0].fused_from, (std::vector<std::string>{"conv", "add", "relu"}));

  Tensor x = Tensor::empty(DataType::kFloat32, {1, 2, 3, 3});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(i % 5) - 2.0f;
  auto want = (*plain)->run({{"x", x}});
  auto got = (*fused)->run({{"x", x}});
  ASSERT_TRUE(want.is_ok() && got.is_ok());
  const Tensor& a = (*want)[0].second;
  const Tensor& b = (*got)[0].second;
  ASSERT_EQ(a.dims(), b.dims());
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_FLOAT_EQ(a.data<float>()[i], b.data<float>()[i]);
}

TEST(SessionPasses, TruncatedPipelineAndUnknownNames) {
  auto folded = Session::from_model(conv_relu_model(), {.threads = 1, .passes = {"batchnorm_folding"}});
  ASSERT_TRUE(folded.is_ok()) << folded.status().to_string();
  EXPECT_EQ((*folded)->layers().size(), 3u);  // vertical fusion comes later

  auto bad = Session::from_model(conv_relu_model(), {.threads = 1, .passes = {"fuse_everything"}});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("fuse_everything"), std::string::npos);
  EXPECT_FALSE(optimizer_pass_names().empty());
}

}  // namespace
}  // namespace kiln
