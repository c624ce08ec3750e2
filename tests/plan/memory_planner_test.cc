#include "plan/memory_planner.h"

#include <gtest/gtest.h>

#include "ops/shape_inference.h"
#include "plan/builder.h"
#include "runtime/engine.h"
#include "plan_test_util.h"

namespace kiln::plan {
namespace {

std::vector<std::string> reference_tactics(const ir::Graph& g) {
  return std::vector<std::string>(g.num_nodes(), "reference");
}

TEST(MemoryPlanner, ChainRunsInPlaceInOneBlock) {
  ir::Model m = test::relu_chain(8);
  ValueDims dims = static_shapes(*m.graph);
  const int64_t block = 4 * 256 * 4;
  MemoryPlan p = plan_memory(*m.graph, dims, reference_tactics(*m.graph));
  EXPECT_EQ(p.naive_bytes, 8 * block);  // t0..t7; y is a graph output
  EXPECT_EQ(p.arena_bytes, block);
  EXPECT_EQ(p.in_place, 7);
  MemoryPlanOptions no_reuse;
  no_reuse.in_place = false;
  MemoryPlan q = plan_memory(*m.graph, dims, reference_tactics(*m.graph), no_reuse);
  EXPECT_EQ(q.arena_bytes, 2 * block);  // ping-pong between two blocks
  EXPECT_EQ(q.in_place, 0);
}

TEST(MemoryPlanner, NoInPlaceForOtherTactics) {
  ir::Model m = test::relu_chain(4);
  std::vector<std::string> tactics(m.graph->num_nodes(), "own.relu.avx2");
  MemoryPlan p = plan_memory(*m.graph, static_shapes(*m.graph), tactics);
  EXPECT_EQ(p.in_place, 0);
  EXPECT_EQ(p.arena_bytes, 2 * 4 * 256 * 4);
}

// Blocks of values alive at the same time never overlap (checked over the conv model at batch 4).
TEST(MemoryPlanner, LiveValuesNeverShareBytes) {
  BuildOptions o;
  o.shapes = {{"x", {4, 8, 16, 16}}};
  auto plan = build(test::conv_model(), o);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  const ir::Graph& g = *plan->model.graph;
  std::map<std::string, std::pair<int64_t, int64_t>> life;
  int64_t i = 0;
  for (const auto& n : g.nodes()) {
    for (const ir::Value* v : n->outputs()) life[v->name()] = {i, i};
    for (const ir::Value* v : n->inputs()) {
      if (v && life.count(v->name())) life[v->name()].second = i;
    }
    ++i;
  }
  const auto& blocks = plan->memory.blocks;
  ASSERT_FALSE(blocks.empty());
  for (const auto& a : blocks) {
    for (const auto& b : blocks) {
      if (&a == &b || a.kind == BlockKind::kView || b.kind == BlockKind::kView) continue;
      auto la = life[a.value], lb = life[b.value];
      bool time = la.first <= lb.second && lb.first <= la.second;
      bool space = a.offset < b.offset + b.size && b.offset < a.offset + a.size;
      // In place: the output starts where its input dies.
      bool in_place = (b.kind == BlockKind::kInPlace && la.second == lb.first) ||
                      (a.kind == BlockKind::kInPlace && lb.second == la.first);
      EXPECT_FALSE(time && space && !in_place) << a.value << " and " << b.value;
    }
  }
  EXPECT_LE(plan->memory.arena_bytes, plan->memory.naive_bytes);
}

TEST(MemoryPlanner, UnknownShapesStayOnTheHeap) {
  ir::Model m = test::conv_model();  // x is [N, 8, 16, 16]: nothing is known without a profile
  auto plan = build(std::move(m));
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_EQ(plan->memory.arena_bytes, 0);
  EXPECT_TRUE(plan->memory.blocks.empty());
  auto engine = runtime::Engine::create_from_plan(std::move(plan).value(), {.threads = 1});
  ASSERT_TRUE(engine.is_ok());
  runtime::NamedTensors feeds = {{"x", test::random_tensor({3, 8, 16, 16}, 3)}};
  auto want = test::reference_run(test::conv_model(), feeds);
  auto got = (*engine)->run(feeds);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  for (size_t k = 0; k < want.size(); ++k) test::expect_near((*got)[k].second, want[k].second);
}

// Two branches concatenated on the channel axis at batch 1: the branches write
// straight into their slices and the Concat does nothing.
ir::Model concat_model() {
  auto g = std::make_shared<ir::Graph>("concat");
  g->set_opset_imports({{"", 17}});
  ir::Value* x = g->add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape::of({1, 4, 8, 8}))).value();
  g->add_input(x);
  ir::Value *a = test::value(*g, "a"), *b = test::value(*g, "b"), *c = test::value(*g, "c"),
            *y = test::value(*g, "y");
  g->add_node("Relu", {x}, {a}, "relu")->set_opset(17);
  g->add_node("Sigmoid", {x}, {b}, "sigmoid")->set_opset(17);
  ir::Node* cat = g->add_node("Concat", {a, b}, {c}, "cat");
  cat->set_opset(17);
  cat->set_attr(ir::Attribute::make_int("axis", 1));
  g->add_node("Neg", {c}, {y}, "neg")->set_opset(17);
  g->add_output(y);
  EXPECT_TRUE(ops::infer_shapes(*g).is_ok());
  ir::Model m;
  m.graph = g;
  return m;
}

TEST(MemoryPlanner, ConcatInputsAreWrittenIntoTheirSlices) {
  auto plan = build(concat_model());
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  const int64_t slice = 4 * 8 * 8 * 4;
  EXPECT_EQ(plan->memory.concats, 1);
  EXPECT_EQ(plan->memory.naive_bytes, 4 * slice);
  EXPECT_EQ(plan->memory.arena_bytes, 2 * slice);
  std::map<std::string, MemoryBlock> by_name;
  for (const auto& b : plan->memory.blocks) by_name[b.value] = b;
  EXPECT_EQ(by_name["b"].offset, by_name["a"].offset + slice);
  EXPECT_EQ(by_name["c"].offset, by_name["a"].offset);
  EXPECT_EQ(by_name["c"].kind, BlockKind::kConcat);
  auto engine = runtime::Engine::create_from_plan(std::move(plan).value(), {.threads = 1});
  ASSERT_TRUE(engine.is_ok());
  runtime::NamedTensors feeds = {{"x", test::random_tensor({1, 4, 8, 8}, 5)}};
  auto want = test::reference_run(concat_model(), feeds);
  for (int run = 0; run < 2; ++run) {
    auto got = (*engine)->run(feeds);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    test::expect_near((*got)[0].second, want[0].second);
  }
}

TEST(MemoryPlanner, ConcatAtBatchTwoIsNotEliminated) {
  ir::Model m = concat_model();
  ir::Value* x = m.graph->find_value("x");
  x->set_type(ir::ValueType::tensor(DataType::kFloat32, Shape::of({2, 4, 8, 8})));
  for (const char* n : {"a", "b", "c", "y"}) m.graph->find_value(n)->set_type({});
  ASSERT_TRUE(ops::infer_shapes(*m.graph).is_ok());
  MemoryPlan p = plan_memory(*m.graph, static_shapes(*m.graph), reference_tactics(*m.graph));
  EXPECT_EQ(p.concats, 0);
}

}  // namespace
}  // namespace kiln::plan
