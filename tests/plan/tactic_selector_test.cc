#include "plan/tactic_selector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/thread_pool.h"
#include "ops/registry.h"
#include "passes/pipeline.h"
#include "plan/builder.h"
#include "plan_test_util.h"

namespace kiln::plan {
namespace {

// The reference Relu, slowed down by `delay_us` per run.
class DelayKernel final : public backends::Kernel {
 public:
  explicit DelayKernel(int delay_us) : delay_us_(delay_us) {}
  Status run(ops::KernelContext& ctx) const override {
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us_));
    return ops::Registry::global().find("", "Relu", ctx.opset())->kernel(ctx);
  }
  std::vector<uint8_t> serialize() const override { return {static_cast<uint8_t>(delay_us_ / 100)}; }

 private:
  int delay_us_;
};

class DelayTactic final : public backends::Tactic {
 public:
  DelayTactic(std::string name, int delay_us) : name_(std::move(name)), delay_us_(delay_us) {}
  std::string_view name() const override { return name_; }
  std::string_view source() const override { return "own"; }
  bool supports(const ir::Node& node) const override { return node.op_type() == "Relu"; }
  Result<std::unique_ptr<backends::Kernel>> prepare(const ir::Node&) const override {
    return std::unique_ptr<backends::Kernel>(new DelayKernel(delay_us_));
  }

 private:
  std::string name_;
  int delay_us_;
};

backends::TacticRegistry& test_registry() {
  static backends::TacticRegistry* r = [] {
    auto* reg = new backends::TacticRegistry();
    reg->add("", "Relu", std::make_unique<DelayTactic>("own.slow_relu", 3000));
    reg->add("", "Relu", std::make_unique<DelayTactic>("own.fast_relu", 0));
    return reg;
  }();
  return *r;
}

TEST(TacticSelector, TimesCandidatesAndKeepsTheFastest) {
  ir::Model m = test::relu_chain(2);
  ThreadPool pool(1);
  SelectOptions o;
  o.registry = &test_registry();
  o.repeats = 3;
  o.warmup = 1;
  TimingCache cache;
  auto sel = select_tactics(*m.graph, static_shapes(*m.graph), pool, o, &cache);
  ASSERT_TRUE(sel.is_ok()) << sel.status().to_string();
  ASSERT_EQ(sel->layers.size(), 3u);  // relu0, relu1, neg
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(sel->layers[static_cast<size_t>(i)].candidates, 3);
    EXPECT_NE(sel->layers[static_cast<size_t>(i)].tactic, "own.slow_relu");
    EXPECT_GE(sel->layers[static_cast<size_t>(i)].time_ms, 0.0);
  }
  EXPECT_EQ(sel->layers[2].tactic, "reference");  // Neg: one candidate, not timed
  EXPECT_LT(sel->layers[2].time_ms, 0.0);
  EXPECT_EQ(sel->timed_nodes, 2);
  // The relus share one signature: the second is answered by the cache, as is a second selection.
  EXPECT_EQ(sel->cache_misses, 3);
  EXPECT_EQ(sel->cache_hits, 3);
  auto again = select_tactics(*m.graph, static_shapes(*m.graph), pool, o, &cache);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->cache_misses, 0);
  EXPECT_EQ(again->cache_hits, 6);
  EXPECT_EQ(again->layers[0].tactic, sel->layers[0].tactic);
}

// The reference Relu, after a first run of 30 ms that sets it up (as oneDNN
// creates and compiles its primitive on its first run).
class LazyKernel final : public backends::Kernel {
 public:
  Status run(ops::KernelContext& ctx) const override {
    if (first_.exchange(false)) std::this_thread::sleep_for(std::chrono::milliseconds(30));
    return ops::Registry::global().find("", "Relu", ctx.opset())->kernel(ctx);
  }

 private:
  mutable std::atomic<bool> first_{true};
};

class LazyTactic final : public backends::Tactic {
 public:
  std::string_view name() const override { return "own.lazy_relu"; }
  std::string_view source() const override { return "own"; }
  bool supports(const ir::Node& node) const override { return node.op_type() == "Relu"; }
  Result<std::unique_ptr<backends::Kernel>> prepare(const ir::Node&) const override {
    return std::unique_ptr<backends::Kernel>(new LazyKernel());
  }
};

// A first run far slower than the best so far ends a candidate's timing,
// but only after a second run: set-up on the first run is no verdict.
TEST(TacticSelector, SlowFirstRunGetsASecondChance) {
  backends::TacticRegistry registry;
  registry.add("", "Relu", std::make_unique<DelayTactic>("own.steady_relu", 2000));
  registry.add("", "Relu", std::make_unique<LazyTactic>());
  ir::Model m = test::relu_chain(1);
  ThreadPool pool(1);
  SelectOptions o;
  o.registry = &registry;
  o.sources = {"own"};
  o.repeats = 3;
  o.warmup = 1;
  auto sel = select_tactics(*m.graph, static_shapes(*m.graph), pool, o, nullptr);
  ASSERT_TRUE(sel.is_ok()) << sel.status().to_string();
  EXPECT_EQ(sel->layers[0].tactic, "own.lazy_relu");
  EXPECT_LT(sel->layers[0].time_ms, 2.0);
}

TEST(TacticSelector, SourcesRestrictTheCandidates) {
  ir::Model m = test::relu_chain(1);
  ThreadPool pool(1);
  SelectOptions o;
  o.registry = &test_registry();
  o.sources = {"reference"};
  auto sel = select_tactics(*m.graph, static_shapes(*m.graph), pool, o, nullptr);
  ASSERT_TRUE(sel.is_ok());
  EXPECT_EQ(sel->layers[0].tactic, "reference");
  o.sources = {"own"};
  o.time = false;
  sel = select_tactics(*m.graph, static_shapes(*m.graph), pool, o, nullptr);
  ASSERT_TRUE(sel.is_ok());
  EXPECT_EQ(sel->layers[0].tactic, "own.slow_relu");  // untimed: the first candidate
  EXPECT_EQ(sel->layers[1].tactic, "reference");      // Neg: no "own" tactic, the reference runs it
  o.sources = {"nvidia"};
  sel = select_tactics(*m.graph, static_shapes(*m.graph), pool, o, nullptr);
  ASSERT_FALSE(sel.is_ok());
  EXPECT_NE(sel.status().message().find("'nvidia'"), std::string::npos);
}

// A Relu tactic for the layout weighing: runs on the nodes named, keeps
// `layout` between kernels, and reports `reorder_ms` per layout change.
class LayoutTactic final : public backends::Tactic {
 public:
  LayoutTactic(std::string name, std::vector<std::string> nodes, std::string layout, double reorder_ms)
      : name_(std::move(name)), nodes_(std::move(nodes)), layout_(std::move(layout)), reorder_ms_(reorder_ms) {}
  std::string_view name() const override { return name_; }
  std::string_view source() const override { return "own"; }
  bool supports(const ir::Node& node) const override {
    return node.op_type() == "Relu" && std::find(nodes_.begin(), nodes_.end(), node.name()) != nodes_.end();
  }
  Result<std::unique_ptr<backends::Kernel>> prepare(const ir::Node&) const override {
    return std::unique_ptr<backends::Kernel>(new DelayKernel(0));
  }
  std::string blocked_layout(const ir::Node& node) const override { return supports(node) ? layout_ : ""; }
  std::optional<double> time_layout_change(const Dims&, ThreadPool&) const override {
    if (layout_.empty()) return std::nullopt;
    return reorder_ms_;
  }

 private:
  std::string name_;
  std::vector<std::string> nodes_;
  std::string layout_;
  double reorder_ms_;
};

// relu0 -> relu1 -> relu2: a blocked tactic runs each in 1 ms; relu1 alone
// has an NCHW tactic of 0.9 ms (relu0 and relu2 one of 2 ms). Alone, relu1
// takes the NCHW one; with a reorder on each side costing more than the
// 0.1 ms it saves, it stays in the chain.
TEST(TacticSelector, WeighsTheReordersAChoiceAdds) {
  for (double reorder_ms : {0.5, 0.01}) {
    backends::TacticRegistry registry;
    registry.add("", "Relu", std::make_unique<LayoutTactic>("own.blocked", std::vector<std::string>{"relu0", "relu1", "relu2"},
                                                            "nChw16c", reorder_ms));
    registry.add("", "Relu", std::make_unique<LayoutTactic>("own.plain_fast", std::vector<std::string>{"relu1"}, "", 0));
    registry.add("", "Relu",
                 std::make_unique<LayoutTactic>("own.plain_slow", std::vector<std::string>{"relu0", "relu2"}, "", 0));
    ir::Model m = test::relu_chain(3);
    const ValueDims dims = static_shapes(*m.graph);
    ThreadPool pool(1);
    TimingCache cache;  // the times, so that nothing is measured
    const ir::Node& relu = *m.graph->nodes().front();
    for (auto [tactic, ms] : {std::pair<const char*, double>{"own.blocked", 1.0}, {"own.plain_fast", 0.9},
                              {"own.plain_slow", 2.0}, {"reference", 5.0}}) {
      cache.put(TimingCache::key(relu, dims, pool.threads(), tactic), ms);
    }
    SelectOptions o;
    o.registry = &registry;
    auto sel = select_tactics(*m.graph, dims, pool, o, &cache);
    ASSERT_TRUE(sel.is_ok()) << sel.status().to_string();
    EXPECT_EQ(sel->cache_misses, 0);
    EXPECT_EQ(sel->layers[0].tactic, "own.blocked");
    EXPECT_EQ(sel->layers[2].tactic, "own.blocked");
    EXPECT_EQ(sel->layers[1].tactic, reorder_ms > 0.1 ? "own.blocked" : "own.plain_fast") << reorder_ms;
    EXPECT_DOUBLE_EQ(sel->layers[1].time_ms, reorder_ms > 0.1 ? 1.0 : 0.9);
    // Without blocked layouts between kernels every blocked end pays its reorders: relu0 and
    // relu2 still win (1 + 0.5 + 0.5 < 2), relu1 saves both of its own.
    o.blocked_layouts = false;
    sel = select_tactics(*m.graph, dims, pool, o, &cache);
    ASSERT_TRUE(sel.is_ok());
    if (reorder_ms > 0.1) {
      EXPECT_EQ(sel->layers[1].tactic, "own.plain_fast");
    }
  }
}

TEST(TacticSelector, LayerTacticsPinAChoiceAndNameTheirErrors) {
  ir::Model m = test::relu_chain(2);
  ThreadPool pool(1);
  SelectOptions o;
  o.registry = &test_registry();
  o.forced = {{"relu1", "own.slow_relu"}};
  auto sel = select_tactics(*m.graph, static_shapes(*m.graph), pool, o, nullptr);
  ASSERT_TRUE(sel.is_ok()) << sel.status().to_string();
  EXPECT_EQ(sel->layers[1].tactic, "own.slow_relu");
  EXPECT_EQ(sel->layers[1].candidates, 1);
  EXPECT_NE(sel->layers[0].tactic, "own.slow_relu");
  o.forced = {{"relu1", "onednn.matmul"}};
  sel = select_tactics(*m.graph, static_shapes(*m.graph), pool, o, nullptr);
  ASSERT_FALSE(sel.is_ok());
  EXPECT_NE(sel.status().message().find("'onednn.matmul' is not one of its candidates"), std::string::npos)
      << sel.status().message();
  o.forced = {{"relu7", "own.slow_relu"}};
  sel = select_tactics(*m.graph, static_shapes(*m.graph), pool, o, nullptr);
  ASSERT_FALSE(sel.is_ok());
  EXPECT_NE(sel.status().message().find("no layer named 'relu7'"), std::string::npos);
}

TEST(TimingCache, KeyLeavesOutFusedFromAndABuildWithoutAFileStillShares) {
  ir::Model m = test::relu_chain(2);
  std::vector<ir::Node*> nodes;
  for (const auto& n : m.graph->nodes()) nodes.push_back(n.get());
  auto fused_from = [](std::string source) {
    ir::Attribute a;
    a.name = "fused_from";
    a.kind = ir::Attribute::Kind::kStrings;
    a.strings = {std::move(source)};
    return a;
  };
  nodes[0]->set_attr(fused_from("block0.relu"));
  nodes[1]->set_attr(fused_from("block1.relu"));
  const ValueDims dims = static_shapes(*m.graph);
  EXPECT_EQ(TimingCache::key(*nodes[0], dims, 2, "own.fast_relu"),
            TimingCache::key(*nodes[1], dims, 2, "own.fast_relu"));
  nodes[1]->set_attr(ir::Attribute::make_float("alpha", 0.5f));  // any other attribute still tells them apart
  EXPECT_NE(TimingCache::key(*nodes[0], dims, 2, "own.fast_relu"),
            TimingCache::key(*nodes[1], dims, 2, "own.fast_relu"));

  BuildOptions o;
  o.registry = &test_registry();
  o.threads = 1;
  o.passes.disabled = passes::pipeline_pass_names();
  BuildReport report;
  auto plan = build(test::relu_chain(2), o, &report);  // no timing_cache file
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_EQ(report.cache_misses, 3);  // the first Relu's three candidates
  EXPECT_EQ(report.cache_hits, 3);    // the second Relu re-uses them
  EXPECT_EQ(plan->layers[0].tactic, plan->layers[1].tactic);
}

TEST(TimingCache, FileRoundTripAndRebuild) {
  auto path = (std::filesystem::temp_directory_path() / "kiln_timing_cache_test.txt").string();
  std::filesystem::remove(path);
  BuildOptions o;
  o.registry = &test_registry();
  o.timing_cache = path;
  o.threads = 1;
  o.passes.disabled = passes::pipeline_pass_names();  // keep the two Relus (pointwise fusion would merge them)
  BuildReport first;
  auto p1 = build(test::relu_chain(2), o, &first);
  ASSERT_TRUE(p1.is_ok()) << p1.status().to_string();
  EXPECT_GT(first.cache_misses, 0);
  auto cache = TimingCache::load(path);
  ASSERT_TRUE(cache.is_ok());
  EXPECT_EQ(cache->size(), 3u);  // one Relu signature x three tactics
  BuildReport second;
  auto p2 = build(test::relu_chain(2), o, &second);
  ASSERT_TRUE(p2.is_ok());
  EXPECT_EQ(second.cache_misses, 0);
  EXPECT_EQ(second.cache_hits, 6);
  EXPECT_EQ(p2->layers[0].tactic, p1->layers[0].tactic);
  // A file that is not a timing cache is an error, not silently replaced.
  {
    std::ofstream f(path);
    f << "hello\n";
  }
  auto bad = build(test::relu_chain(2), o);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("timing cache"), std::string::npos);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace kiln::plan
