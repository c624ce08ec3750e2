// bf16/fp16 conversion: weights and layer inputs rounded to 16 bits, the
// rest fp32, overrides; outputs close to fp32 (relative 2e-2 for bf16's
// 8-bit mantissa, 2e-3 for fp16).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/float_types.h"
#include "exec/program.h"
#include "quant/half_precision.h"

namespace kiln::quant {
namespace {

Tensor random_tensor(const Dims& dims, uint32_t seed) {
  Tensor t = Tensor::empty(DataType::kFloat32, dims);
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, 0.5f);
  for (float& v : t.span<float>()) v = dist(gen);
  return t;
}

// x[4, 12] -> MatMul(w1) -> Softmax -> Gemm(w2, transB) -> y
std::shared_ptr<ir::Graph> make_graph() {
  auto g = std::make_shared<ir::Graph>("g");
  g->set_opset_imports({{"", 17}});
  ir::Value* x = *g->add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape({Dim(4), Dim(12)})));
  g->add_input(x);
  ir::Value* w1 = *g->add_constant("w1", random_tensor({12, 10}, 1));
  ir::Value* w2 = *g->add_constant("w2", random_tensor({6, 10}, 2));
  ir::Value* h = *g->add_value("h", ir::ValueType::tensor(DataType::kFloat32));
  ir::Value* s = *g->add_value("s", ir::ValueType::tensor(DataType::kFloat32));
  ir::Value* y = *g->add_value("y", ir::ValueType::tensor(DataType::kFloat32));
  for (ir::Node* n : {g->add_node("MatMul", {x, w1}, {h}, "mm1"), g->add_node("Softmax", {h}, {s}, "softmax"),
                      g->add_node("Gemm", {s, w2}, {y}, "fc2")}) {
    n->set_opset(17);
    if (n->op_type() == "Gemm") n->set_attr(ir::Attribute::make_int("transB", 1));
  }
  g->add_output(y);
  return g;
}

Tensor run(const ir::Graph& g, const Tensor& x) {
  auto program = exec::Program::compile(g);
  EXPECT_TRUE(program.is_ok()) << program.status().to_string();
  std::vector<Datum> in = {Datum(x)};
  auto out = exec::execute(**program, in, nullptr);
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  return (*out)[0].tensor();
}

TEST(HalfPrecision, RoundsMatrixLayersOnlyAndStaysClose) {
  const Tensor x = random_tensor({4, 12}, 9);
  for (const char* p : {"bf16", "fp16"}) {
    auto g = make_graph();
    const Tensor want = run(*g, x);
    auto layers = apply_half_precision(*g, p, {});
    ASSERT_TRUE(layers.is_ok()) << layers.status().to_string();
    ASSERT_EQ(layers->size(), 2u);
    EXPECT_EQ((*layers)[0].precision, p);
    ASSERT_TRUE(g->verify().is_ok());
    int casts = 0;
    for (const auto& n : g->nodes()) {
      casts += n->op_type() == "Cast" ? 1 : 0;
      if (n->op_type() == "Softmax") {
        EXPECT_EQ(n->input(0)->type().dtype, DataType::kFloat32);  // stays fp32
      }
      if (n->op_type() == "MatMul") {
        for (float v : n->input(1)->constant().span<float>()) {
          const float r = std::string(p) == "bf16" ? static_cast<float>(BFloat16(v)) : static_cast<float>(Float16(v));
          ASSERT_EQ(v, r);
        }
      }
    }
    EXPECT_EQ(casts, 4);  // a round trip before each of the two layers
    const Tensor got = run(*g, x);
    const float rel = std::string(p) == "bf16" ? 2e-2f : 2e-3f;
    for (int64_t i = 0; i < got.numel(); ++i) {
      EXPECT_NEAR(got.data<float>()[i], want.data<float>()[i], rel * (1.0f + std::fabs(want.data<float>()[i]))) << p;
    }
  }
}

TEST(HalfPrecision, OverridesAndErrors) {
  auto g = make_graph();
  auto layers = apply_half_precision(*g, "bf16", {"fc2"});
  ASSERT_TRUE(layers.is_ok());
  EXPECT_EQ((*layers)[1].layer, "fc2");
  EXPECT_EQ((*layers)[1].precision, "fp32");
  auto g2 = make_graph();
  auto bad = apply_half_precision(*g2, "bf16", {"nope"});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("nope"), std::string::npos);
  EXPECT_FALSE(apply_half_precision(*g2, "fp8", {}).is_ok());
  auto o = parse_layer_overrides({"a:fp32", "b:bf16"}, {"bf16"});
  ASSERT_TRUE(o.is_ok());
  EXPECT_EQ(*o, (std::set<std::string>{"a"}));
  EXPECT_FALSE(parse_layer_overrides({"a:int4"}, {"bf16"}).is_ok());
  EXPECT_FALSE(parse_layer_overrides({"nocolon"}, {}).is_ok());
}

}  // namespace
}  // namespace kiln::quant
