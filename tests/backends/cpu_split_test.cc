// own.split against the reference Split: bit for bit, every way the sizes
// are given (attribute, input, equal parts, num_outputs), negative and inner
// axes, empty outputs, several element types, 1 and 2 threads; and the
// errors the reference reports reach the caller.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/tactics.h"
#include "core/thread_pool.h"
#include "cpu_test_util.h"
#include "ops/registry.h"

namespace kiln::backends::cpu {
namespace {

using ir::Attribute;

struct SplitCase {
  DataType dtype;
  Dims x;
  int64_t axis;
  int outputs;
  int64_t opset;
  std::vector<int64_t> split;  // empty: not given
  bool split_as_input;         // opset >= 13
  bool num_outputs_attr;       // opset >= 18
};

Tensor random_bytes(DataType dtype, const Dims& dims, uint32_t seed) {
  Tensor t = Tensor::empty(dtype, dims);
  std::mt19937 gen(seed);
  auto* p = static_cast<uint8_t*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(gen());
  if (dtype == DataType::kBool) {
    for (size_t i = 0; i < t.nbytes(); ++i) p[i] &= 1;
  }
  return t;
}

class SplitNode {
 public:
  explicit SplitNode(const SplitCase& c) : graph_(std::make_shared<ir::Graph>("g")), c_(c) {
    graph_->set_opset_imports({{"", c.opset}});
    x_ = random_bytes(c.dtype, c.x, 3);
    ir::Value* x = *graph_->add_value("x", ir::ValueType::tensor(c.dtype, Shape::of(c.x)));
    graph_->add_input(x);
    std::vector<ir::Value*> in = {x};
    if (c.split_as_input) {
      Tensor s = Tensor::empty(DataType::kInt64, {static_cast<int64_t>(c.split.size())});
      for (size_t i = 0; i < c.split.size(); ++i) s.data<int64_t>()[i] = c.split[i];
      in.push_back(*graph_->add_constant("split", s));
      feeds_ = {x_, s};
    } else {
      feeds_ = {x_};
    }
    std::vector<ir::Value*> outs;
    for (int i = 0; i < c.outputs; ++i) outs.push_back(*graph_->add_value("y" + std::to_string(i)));
    node_ = graph_->add_node("Split", in, outs, "split");
    node_->set_opset(c.opset);
    node_->set_attr(Attribute::make_int("axis", c.axis));
    if (!c.split.empty() && !c.split_as_input) node_->set_attr(Attribute::make_ints("split", c.split));
    if (c.num_outputs_attr) node_->set_attr(Attribute::make_int("num_outputs", c.outputs));
  }

  ir::Node& node() { return *node_; }

  Result<std::vector<Datum>> run(const Kernel* kernel, ThreadPool* pool) {
    std::vector<Datum> outs(static_cast<size_t>(c_.outputs));
    ops::KernelContext ctx(*node_, feeds_, outs, pool, nullptr);
    test::PoisonedOutputs poisoned;
    Status st;
    if (kernel != nullptr) {
      if (kernel->fills_outputs()) ctx.set_allocator(&poisoned);
      st = kernel->run(ctx);
    } else {
      st = ops::Registry::global().find("", "Split", c_.opset)->kernel(ctx);
    }
    if (!st.is_ok()) return st;
    return outs;
  }

 private:
  std::shared_ptr<ir::Graph> graph_;
  SplitCase c_;
  Tensor x_;
  std::vector<Datum> feeds_;
  ir::Node* node_ = nullptr;
};

std::string describe(const SplitCase& c) {
  return std::string(data_type_name(c.dtype)) + " x" + dims_to_string(c.x) + " axis " + std::to_string(c.axis) +
         " outputs " + std::to_string(c.outputs) + " opset " + std::to_string(c.opset) + " split " +
         dims_to_string(c.split);
}

TEST(CpuSplit, MatchesTheReferenceBitForBit) {
  const std::vector<SplitCase> cases = {
      {DataType::kFloat32, {1, 128, 2304}, -1, 3, 13, {}, false, false},           // BERT's Q/K/V
      {DataType::kFloat32, {4, 6, 5}, 1, 3, 11, {1, 3, 2}, false, false},            // attribute
      {DataType::kFloat32, {4, 6, 5}, 0, 2, 13, {3, 1}, true, false},                // input
      {DataType::kInt64, {3, 7, 2}, 1, 3, 13, {0, 5, 2}, true, false},               // an empty output
      {DataType::kUInt8, {2, 9, 33}, -2, 3, 13, {}, false, false},                   // equal parts
      {DataType::kFloat16, {10, 3}, 0, 4, 18, {}, false, true},                      // 3,3,3,1
      {DataType::kBool, {5, 4, 3, 2}, 3, 2, 11, {}, false, false},
      {DataType::kFloat64, {64, 300}, 1, 2, 13, {100, 200}, true, false},
      {DataType::kFloat32, {8, 256, 64}, 0, 8, 13, {}, false, false},                // outer 1
  };
  for (const SplitCase& c : cases) {
    SplitNode g(c);
    auto tactic = make_split_tactic();
    ASSERT_TRUE(tactic->supports(g.node())) << describe(c);
    auto kernel = tactic->prepare(g.node());
    ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
    auto want = g.run(nullptr, nullptr);
    ASSERT_TRUE(want.is_ok()) << describe(c) << ": " << want.status().to_string();
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      auto got = g.run(kernel->get(), &pool);
      ASSERT_TRUE(got.is_ok()) << describe(c) << ": " << got.status().to_string();
      ASSERT_EQ(got->size(), want->size());
      for (size_t i = 0; i < got->size(); ++i) {
        const Tensor& a = (*got)[i].tensor();
        const Tensor& b = (*want)[i].tensor();
        ASSERT_EQ(a.dims(), b.dims()) << describe(c) << " output " << i;
        EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << describe(c) << " output " << i;
      }
    }
  }
}

TEST(CpuSplit, BadSizesReportTheReferenceError) {
  // The sizes sum to 5 on an axis of 6: the reference's message, not a crash.
  SplitNode g({DataType::kFloat32, {4, 6}, 1, 2, 13, {2, 3}, true, false});
  auto kernel = make_split_tactic()->prepare(g.node());
  ASSERT_TRUE(kernel.is_ok());
  ThreadPool pool(2);
  auto got = g.run(kernel->get(), &pool);
  ASSERT_FALSE(got.is_ok());
  EXPECT_NE(got.status().message().find("sums to 5"), std::string::npos) << got.status().message();
}

}  // namespace
}  // namespace kiln::backends::cpu
