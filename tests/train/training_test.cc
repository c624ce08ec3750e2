// Optimizer update rules, data loading, checkpoints, ONNX export and an
// end-to-end training run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>

#include "exec/program.h"
#include "kiln/train.h"
#include "onnx/importer.h"
#include "train/checkpoint.h"
#include "train/data_loader.h"
#include "train/optimizer.h"

namespace kiln::train {
namespace {

Tensor floats(Dims dims, std::vector<float> v) {
  Tensor t = Tensor::empty(DataType::kFloat32, dims);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

Tensor random_input(Dims dims, uint32_t seed) {
  Tensor t = Tensor::empty(DataType::kFloat32, dims);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  for (float& v : t.span<float>()) v = n(rng);
  return t;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()))).string();
}

TEST(Optimizer, SgdMomentumNesterovWeightDecay) {
  // PyTorch's rule: d = g + wd*w; b = mu*b + d (b = d at the first step); w -= lr*(d + mu*b) with Nesterov.
  Param p{"w", floats({1}, {1.0f}), floats({1}, {0.5f})};
  auto sgd = OptimizerCore::sgd({.lr = 0.1, .momentum = 0.9, .dampening = 0, .weight_decay = 0.1, .nesterov = true});
  ASSERT_TRUE(sgd->step(std::span<Param>(&p, 1)).is_ok());
  double d = 0.5 + 0.1 * 1.0, b = d, w = 1.0 - 0.1 * (d + 0.9 * b);
  EXPECT_NEAR(p.value.data<float>()[0], w, 1e-6);
  ASSERT_TRUE(sgd->step(std::span<Param>(&p, 1)).is_ok());
  d = 0.5 + 0.1 * w;
  b = 0.9 * b + d;
  w = w - 0.1 * (d + 0.9 * b);
  EXPECT_NEAR(p.value.data<float>()[0], w, 1e-6);
}

TEST(Optimizer, AdamAndAdamW) {
  // First Adam step moves each weight by lr * sign(g) (bias-corrected m/sqrt(v) = g/|g|).
  Param p{"w", floats({2}, {1.0f, -1.0f}), floats({2}, {0.3f, -2.0f})};
  auto adam = OptimizerCore::adam({.lr = 0.01});
  ASSERT_TRUE(adam->step(std::span<Param>(&p, 1)).is_ok());
  EXPECT_NEAR(p.value.data<float>()[0], 0.99, 1e-6);
  EXPECT_NEAR(p.value.data<float>()[1], -0.99, 1e-6);
  // AdamW decays the weight directly: w -= lr*wd*w before the Adam update.
  Param q{"w", floats({1}, {2.0f}), floats({1}, {1.0f})};
  auto adamw = OptimizerCore::adam({.lr = 0.1, .weight_decay = 0.5, .decoupled = true});
  ASSERT_TRUE(adamw->step(std::span<Param>(&q, 1)).is_ok());
  EXPECT_NEAR(q.value.data<float>()[0], 2.0 - 0.1 * 0.5 * 2.0 - 0.1, 1e-5);
}

TEST(Optimizer, ClipGradNorm) {
  Param p{"w", floats({2}, {0, 0}), floats({2}, {3.0f, 4.0f})};
  EXPECT_NEAR(clip_grad_norm(std::span<Param>(&p, 1), 1.0), 5.0, 1e-9);
  EXPECT_NEAR(p.grad.data<float>()[0], 0.6, 1e-5);
  EXPECT_NEAR(p.grad.data<float>()[1], 0.8, 1e-5);
}

TEST(DataLoader, SeededShufflingAndBatching) {
  Tensor x = Tensor::empty(DataType::kFloat32, {10, 2});
  Tensor y = Tensor::empty(DataType::kInt64, {10});
  for (int64_t i = 0; i < 10; ++i) {
    x.data<float>()[2 * i] = static_cast<float>(i);
    x.data<float>()[2 * i + 1] = static_cast<float>(-i);
    y.data<int64_t>()[i] = i;
  }
  auto order = [&](uint64_t seed, int64_t epoch) {
    DataLoader d = DataLoader::create(x, y, 4, true, seed).value();
    d.set_epoch(epoch);
    EXPECT_EQ(d.num_batches(), 3);
    std::vector<int64_t> seen;
    for (int64_t b = 0; b < d.num_batches(); ++b) {
      Batch batch = d.batch(b).value();
      EXPECT_EQ(batch.x.dim(0), b < 2 ? 4 : 2);
      for (int64_t i = 0; i < batch.y.numel(); ++i) {
        int64_t label = batch.y.data<int64_t>()[i];
        EXPECT_EQ(batch.x.data<float>()[2 * i], static_cast<float>(label));  // rows stay paired
        seen.push_back(label);
      }
    }
    return seen;
  };
  std::vector<int64_t> a = order(7, 0);
  EXPECT_EQ(a, order(7, 0));  // reproducible
  EXPECT_NE(a, order(7, 1));  // a new order each epoch
  EXPECT_NE(a, order(8, 0));
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 10u);
  DataLoader in_order = DataLoader::create(x, y, 4, false, 0, true).value();
  EXPECT_EQ(in_order.num_batches(), 2);
  EXPECT_EQ(in_order.batch(1).value().y.data<int64_t>()[0], 4);
  EXPECT_FALSE(in_order.batch(2).is_ok());
  EXPECT_FALSE(DataLoader::create(x, Tensor::empty(DataType::kInt64, {9}), 4).is_ok());
}

TEST(Checkpoint, RejectsCorruptFiles) {
  std::string path = temp_path("kiln_bad_ckpt");
  TensorMap m = {{"a", floats({2}, {1, 2})}};
  ASSERT_TRUE(save_tensors(path, m).is_ok());
  EXPECT_EQ(load_tensors(path).value().at("a").data<float>()[1], 2.0f);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 3);
  auto bad = load_tensors(path);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("truncated"), std::string::npos);
  std::remove(path.c_str());
  EXPECT_FALSE(load_tensors(path).is_ok());
}

const std::vector<std::string> kCnn = {"conv:4:3:1:1", "bn", "relu", "maxpool:2", "conv:6:3:1:1", "relu", "gap",
                                       "flatten", "dropout:0.1", "linear:3"};

Tensor labels_of(const Tensor& x) {
  Tensor y = Tensor::empty(DataType::kInt64, {x.dim(0)});
  int64_t per = x.numel() / x.dim(0);
  for (int64_t i = 0; i < x.dim(0); ++i) {
    float s = 0;
    for (int64_t k = 0; k < per; ++k) s += x.data<float>()[i * per + k];
    y.data<int64_t>()[i] = s > 2 ? 2 : s > -2 ? 1 : 0;
  }
  return y;
}

void train_steps(Model& model, Optimizer& opt, int steps, uint32_t data_seed) {
  for (int s = 0; s < steps; ++s) {
    Tensor x = random_input({8, 1, 6, 6}, data_seed + static_cast<uint32_t>(s));
    Loss l = cross_entropy(model.forward(x).value(), labels_of(x)).value();
    ASSERT_TRUE(amp::scaled_backward(model, opt, l).is_ok());
    ASSERT_TRUE(opt.step().is_ok());
  }
}

TEST(Checkpoint, ResumesExactly) {
  Model model = Model::sequential({1, 6, 6}, kCnn, 3).value();
  Optimizer opt = Optimizer::adam(model, {.lr = 0.01}).value();
  ASSERT_TRUE(amp::initialize(model, opt, "O1").is_ok());
  train_steps(model, opt, 3, 100);
  std::string path = temp_path("kiln_ckpt");
  ASSERT_TRUE(opt.save_checkpoint(path).is_ok());

  Model twin = Model::sequential({1, 6, 6}, kCnn, 3).value();
  Optimizer twin_opt = Optimizer::adam(twin, {.lr = 0.01}).value();
  ASSERT_TRUE(amp::initialize(twin, twin_opt, "O1").is_ok());
  ASSERT_TRUE(twin_opt.load_checkpoint(path).is_ok());
  std::remove(path.c_str());
  EXPECT_EQ(twin_opt.steps(), 3);
  EXPECT_EQ(twin_opt.loss_scale(), opt.loss_scale());

  // Same further steps (dropout draws from the model's own step counter, so
  // compare in inference mode where dropout is off): identical predictions.
  Tensor probe = random_input({4, 1, 6, 6}, 999);
  Tensor a = model.predict(probe).value();
  Tensor b = twin.predict(probe).value();
  for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(a.data<float>()[i], b.data<float>()[i]);
}

TEST(Export, KilnRunsTheExportedInferenceGraph) {
  Model model = Model::sequential({1, 6, 6}, kCnn, 5).value();
  Optimizer opt = Optimizer::sgd(model, {.lr = 0.05, .momentum = 0.9}).value();
  train_steps(model, opt, 4, 200);  // running statistics move away from (0, 1)
  std::string bytes = model.onnx_bytes().value();
  auto imported = onnx::import_model_bytes(bytes, "", "exported.onnx");
  ASSERT_TRUE(imported.is_ok()) << imported.status().to_string();
  auto program = exec::Program::compile(*imported->graph);
  ASSERT_TRUE(program.is_ok()) << program.status().to_string();
  Tensor probe = random_input({5, 1, 6, 6}, 77);
  Datum in[] = {probe};
  auto out = exec::execute(*program.value(), in, nullptr);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  Tensor want = model.predict(probe).value();
  const Tensor& got = out.value()[0].tensor();
  ASSERT_EQ(got.dims(), want.dims());
  for (int64_t i = 0; i < got.numel(); ++i) EXPECT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-5);
}

TEST(Model, MlpWithGeluLayerNormDropoutTrains) {
  Model model = Model::sequential({4}, {"linear:16", "gelu", "layernorm", "dropout:0.1", "linear:2"}, 1).value();
  Optimizer opt = Optimizer::adam(model, {.lr = 1e-2}).value();
  ASSERT_TRUE(amp::initialize(model, opt, "O1").is_ok());
  Tensor x = random_input({32, 4}, 8);
  Tensor y = Tensor::empty(DataType::kInt64, {32});
  for (int64_t i = 0; i < 32; ++i) y.data<int64_t>()[i] = x.data<float>()[4 * i] + x.data<float>()[4 * i + 1] > 0 ? 1 : 0;
  double first = 0, last = 0;
  for (int s = 0; s < 60; ++s) {
    Loss l = cross_entropy(model.forward(x).value(), y).value();
    ASSERT_TRUE(amp::scaled_backward(model, opt, l).is_ok());
    ASSERT_TRUE(opt.step().is_ok());
    (s == 0 ? first : last) = l.value;
  }
  EXPECT_LT(last, 0.5 * first);
}

TEST(Model, ErrorsAreValues) {
  EXPECT_FALSE(Model::sequential({1, 6, 6}, {"conv:4"}, 0).is_ok());
  EXPECT_FALSE(Model::sequential({1, 6, 6}, {"linear:3"}, 0).is_ok());
  EXPECT_FALSE(Model::sequential({4}, {"frobnicate"}, 0).is_ok());
  Model model = Model::sequential({4}, {"linear:3"}, 0).value();
  EXPECT_FALSE(model.backward(floats({1, 3}, {1, 2, 3})).is_ok());  // no forward yet
  EXPECT_FALSE(model.forward(floats({2, 5}, std::vector<float>(10, 1.f))).is_ok());
  Tensor bytes = Tensor::empty(DataType::kUInt8, {2, 4});
  EXPECT_FALSE(model.forward(bytes).is_ok());  // integer data is rejected, not reinterpreted
  Optimizer opt = Optimizer::sgd(model).value();
  EXPECT_FALSE(opt.step().is_ok());  // no gradients yet
  EXPECT_FALSE(amp::initialize(model, opt, "O9").is_ok());
  EXPECT_FALSE(cross_entropy(floats({1, 3}, {1, 2, 3}), Tensor::scalar<int64_t>(DataType::kInt64, 5)).is_ok());
  Tensor bad_label = Tensor::empty(DataType::kInt64, {1});
  bad_label.data<int64_t>()[0] = 3;
  EXPECT_FALSE(cross_entropy(floats({1, 3}, {1, 2, 3}), bad_label).is_ok());
  EXPECT_FALSE(Optimizer::sgd(model, {.lr = -1}).is_ok());
}

}  // namespace
}  // namespace kiln::train
