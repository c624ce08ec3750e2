// Many threads, each with its own ExecutionContext, running one shared Engine
// whose kernels also use the engine's intra-op thread pool. Results must equal
// a single-threaded run. This is the test the TSan build (make test-tsan) leans on.
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "ir/graph.h"
#include "runtime/engine.h"

namespace kiln::runtime {
namespace {

Tensor random_tensor(Dims dims, uint32_t seed) {
  Tensor t = Tensor::empty(DataType::kFloat32, std::move(dims));
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : t.span<float>()) v = dist(rng);
  return t;
}

// y = Relu(Conv(x, w, b)) + x, with a 3x3 same-padded convolution.
ir::Model conv_model() {
  auto g = std::make_shared<ir::Graph>("conv_relu_add");
  g->set_opset_imports({{"", 17}});
  ir::Value* x = g->add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("N"), 8, 16, 16})))
                     .value();
  g->add_input(x);
  ir::Value* w = g->add_constant("w", random_tensor({8, 8, 3, 3}, 1)).value();
  ir::Value* b = g->add_constant("b", random_tensor({8}, 2)).value();
  ir::Value* c = g->add_value("c").value();
  ir::Value* r = g->add_value("r").value();
  ir::Value* y = g->add_value("y").value();
  ir::Node* conv = g->add_node("Conv", {x, w, b}, {c}, "conv");
  conv->set_attr(ir::Attribute::make_ints("pads", {1, 1, 1, 1}));
  g->add_node("Relu", {c}, {r}, "relu");
  g->add_node("Add", {r, x}, {y}, "add");
  for (const auto& n : g->nodes()) n->set_opset(17);
  g->add_output(y);
  ir::Model m;
  m.graph = g;
  return m;
}

TEST(Concurrency, ContextsOnManyThreadsMatchASerialRun) {
  auto engine = Engine::create(conv_model(), {.threads = 2});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  std::vector<Tensor> inputs;
  std::vector<Tensor> expected;
  for (uint32_t k = 0; k < 4; ++k) {
    inputs.push_back(random_tensor({2, 8, 16, 16}, 100 + k));
    auto out = (*engine)->run({{"x", inputs.back()}});
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expected.push_back((*out)[0].second);
  }
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (size_t k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      auto ctx = (*engine)->create_context();
      for (int iter = 0; iter < 10; ++iter) {
        auto out = ctx->run({{"x", inputs[k]}});
        if (!out.is_ok()) {
          ++mismatches[k];
          continue;
        }
        const Tensor& got = (*out)[0].second;
        for (int64_t i = 0; i < got.numel(); ++i) {
          if (got.data<float>()[i] != expected[k].data<float>()[i]) {
            ++mismatches[k];
            break;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t k = 0; k < 4; ++k) EXPECT_EQ(mismatches[k], 0) << "thread " << k;
}

TEST(Concurrency, BadFeedsFailCleanlyWhileOthersRun) {
  auto engine = Engine::create(conv_model(), {.threads = 2});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  std::thread good([&] {
    for (int i = 0; i < 5; ++i) EXPECT_TRUE((*engine)->run({{"x", random_tensor({1, 8, 16, 16}, 7)}}).is_ok());
  });
  for (int i = 0; i < 5; ++i) {
    auto wrong_shape = (*engine)->run({{"x", random_tensor({1, 3, 16, 16}, 8)}});
    ASSERT_FALSE(wrong_shape.is_ok());
    EXPECT_NE(wrong_shape.status().message().find("'x'"), std::string::npos) << wrong_shape.status().message();
    auto wrong_name = (*engine)->run({{"nope", random_tensor({1, 8, 16, 16}, 9)}});
    ASSERT_FALSE(wrong_name.is_ok());
    EXPECT_NE(wrong_name.status().message().find("unknown input 'nope'"), std::string::npos);
  }
  good.join();
}

}  // namespace
}  // namespace kiln::runtime
