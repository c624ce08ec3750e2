// A small transformer block (self-attention with MatMul/Transpose/Softmax,
// residual Add, LayerNormalization, a GELU MLP with Dropout) built as an IR
// graph: the whole graph's parameter gradients against finite differences in
// fp64, then training through the public API from its ONNX export.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "kiln/train.h"
#include "train/onnx_export.h"
#include "train/tape.h"

namespace kiln::train {
namespace {

constexpr int64_t kSeq = 4, kDim = 6, kHidden = 8, kClasses = 3;

struct Block {
  ir::Model model;
  std::vector<const ir::Value*> params;
};

Block make_block(uint32_t seed) {
  Block b;
  b.model.graph = std::make_shared<ir::Graph>("block");
  b.model.ir_version = 8;
  ir::Graph& g = *b.model.graph;
  g.set_opset_imports({{"", 20}});
  std::mt19937 rng(seed);
  auto param = [&](const std::string& name, Dims dims, float scale, float fill = 0) {
    Tensor t = Tensor::empty(DataType::kFloat32, dims);
    std::normal_distribution<float> n(0.f, scale);
    for (float& v : t.span<float>()) v = scale > 0 ? n(rng) : fill;
    ir::Value* v = g.add_constant(name, t).value();
    b.params.push_back(v);
    return v;
  };
  int counter = 0;
  auto node = [&](const std::string& op, std::vector<ir::Value*> in, std::vector<ir::Attribute> attrs = {}) {
    std::string name = op + "_" + std::to_string(++counter);
    ir::Value* out = g.add_value(name + "_out").value();
    ir::Node* n = g.add_node(op, std::move(in), {out}, name);
    n->set_opset(20);
    for (auto& a : attrs) n->set_attr(std::move(a));
    return out;
  };
  std::vector<Dim> in_shape = {Dim::sym("N"), kSeq, kDim};
  ir::Value* x = g.add_value("input", ir::ValueType::tensor(DataType::kFloat32, Shape(in_shape))).value();
  g.add_input(x);
  float s = 1.0f / std::sqrt(static_cast<float>(kDim));
  ir::Value* q = node("MatMul", {x, param("wq", {kDim, kDim}, s)});
  ir::Value* k = node("MatMul", {x, param("wk", {kDim, kDim}, s)});
  ir::Value* v = node("MatMul", {x, param("wv", {kDim, kDim}, s)});
  ir::Value* kt = node("Transpose", {k}, {ir::Attribute::make_ints("perm", {0, 2, 1})});
  ir::Value* scores = node("Mul", {node("MatMul", {q, kt}), g.add_constant("scale", Tensor::scalar(DataType::kFloat32, s)).value()});
  ir::Value* attn = node("MatMul", {node("Softmax", {scores}, {ir::Attribute::make_int("axis", -1)}), v});
  ir::Value* h = node("LayerNormalization", {node("Add", {x, attn}), param("ln_s", {kDim}, 0, 1.f), param("ln_b", {kDim}, 0)});
  ir::Value* mlp = node("Gelu", {node("Add", {node("MatMul", {h, param("w1", {kDim, kHidden}, s)}), param("b1", {kHidden}, 0.1f)})});
  ir::Value* drop = node("Dropout", {mlp, g.add_constant("ratio", Tensor::scalar(DataType::kFloat32, 0.1f)).value()});
  ir::Value* out = node("Add", {h, node("MatMul", {drop, param("w2", {kHidden, kDim}, s)})});
  ir::Value* flat = node("Flatten", {out}, {ir::Attribute::make_int("axis", 1)});
  ir::Value* logits = node("Gemm", {flat, param("wc", {kClasses, kSeq * kDim}, 0.2f), param("bc", {kClasses}, 0)},
                           {ir::Attribute::make_int("transB", 1)});
  logits->set_type(ir::ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("N"), kClasses})));
  g.add_output(logits);
  EXPECT_TRUE(g.verify().is_ok());
  return b;
}

Tensor random_input(Dims dims, uint32_t seed) {
  Tensor t = Tensor::empty(DataType::kFloat32, dims);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  for (float& v : t.span<float>()) v = n(rng);
  return t;
}

TEST(Transformer, WholeGraphGradientsMatchFiniteDifferences) {
  Block b = make_block(1);
  Tape tape(*b.model.graph);
  tape.set_trainable(b.params);
  TapeOptions opt;
  opt.compute = DataType::kFloat64;
  opt.seed = 11;  // one fixed dropout mask for every evaluation
  opt.update_running_stats = false;
  Tensor x = random_input({2, kSeq, kDim}, 2);
  Tensor inputs[] = {x};
  Tensor r = Tensor::empty(DataType::kFloat64, {2, kClasses});
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> u(-1, 1);
  for (double& v : r.span<double>()) v = u(rng);
  auto objective = [&]() {
    Tensor y = tape.forward(inputs, opt).value()[0];
    double sum = 0;
    for (int64_t i = 0; i < y.numel(); ++i) sum += y.data<double>()[i] * r.data<double>()[i];
    return sum;
  };
  objective();
  Tensor seeds[] = {r};
  ASSERT_TRUE(tape.backward(seeds).is_ok());
  std::vector<Tensor> grads;
  for (const ir::Value* p : b.params) grads.push_back(tape.grad(p).clone());
  const double h = 1e-6;
  for (size_t i = 0; i < b.params.size(); ++i) {
    ASSERT_TRUE(grads[i].defined()) << b.params[i]->name();
    Tensor w = b.params[i]->constant();  // float32 storage, perturbed in place
    for (int64_t e = 0; e < w.numel(); e += 3) {
      float saved = w.data<float>()[e];
      // Perturb in float32 by a representable step and divide by the step actually taken.
      float up_w = saved + static_cast<float>(h * 64), down_w = saved - static_cast<float>(h * 64);
      w.data<float>()[e] = up_w;
      double up = objective();
      w.data<float>()[e] = down_w;
      double down = objective();
      w.data<float>()[e] = saved;
      double numeric = (up - down) / (static_cast<double>(up_w) - static_cast<double>(down_w));
      EXPECT_NEAR(grads[i].data<double>()[e], numeric, 1e-4 * std::max(1.0, std::abs(numeric)))
          << b.params[i]->name() << "[" << e << "]";
    }
  }
}

TEST(Transformer, TrainsFromItsOnnxExportWithAmp) {
  Block b = make_block(4);
  std::string path = (std::filesystem::temp_directory_path() / ("kiln_block_" + std::to_string(::getpid()) + ".onnx")).string();
  ASSERT_TRUE(export_onnx(b.model, path).is_ok());
  for (const char* level : {"O0", "O1", "O2-bf16"}) {
    SCOPED_TRACE(level);
    Model model = Model::load_onnx(path).value();
    EXPECT_EQ(model.parameter_names().size(), b.params.size());
    Optimizer opt = Optimizer::adamw(model, {.lr = 1e-2, .weight_decay = 1e-2}).value();
    opt.set_max_grad_norm(1.0);
    ASSERT_TRUE(amp::initialize(model, opt, level).is_ok());
    Tensor x = random_input({16, kSeq, kDim}, 5);
    Tensor y = Tensor::empty(DataType::kInt64, {16});
    for (int64_t i = 0; i < 16; ++i) y.data<int64_t>()[i] = x.data<float>()[i * kSeq * kDim] > 0 ? 1 : 0;
    double first = 0, last = 0;
    for (int step = 0; step < 40; ++step) {
      Loss l = cross_entropy(model.forward(x).value(), y).value();
      ASSERT_TRUE(amp::scaled_backward(model, opt, l).is_ok());
      ASSERT_TRUE(opt.step().is_ok());
      if (step == 0) first = l.value;
      last = l.value;
    }
    EXPECT_LT(last, 0.5 * first) << "first " << first << " last " << last;
    EXPECT_GT(opt.last_grad_norm(), 0.0);
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace kiln::train
