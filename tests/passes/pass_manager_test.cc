#include "passes/pass_manager.h"

#include <gtest/gtest.h>

#include <sstream>

#include "passes/pass_test_util.h"
#include "passes/pipeline.h"

namespace kiln::test {
namespace {

// x -> Identity -> Conv(w) -> BatchNormalization -> Relu -> y
void small_cnn(GraphBuilder& b) {
  b.input("x", f32({Dim::sym("n"), 2, 4, 4}));
  b.constant("w", random_floats({3, 2, 3, 3}, 1));
  b.constant("s", random_floats({3}, 2, 0.5f, 1.5f));
  b.constant("b", random_floats({3}, 3));
  b.constant("m", random_floats({3}, 4));
  b.constant("v", random_floats({3}, 5, 0.5f, 1.5f));
  b.node("Identity", {"x"}, {"xi"});
  b.node("Conv", {"xi", "w"}, {"c"}, {ir::Attribute::make_ints("pads", {1, 1, 1, 1})});
  b.node("BatchNormalization", {"c", "s", "b", "m", "v"}, {"bn"});
  b.node("Relu", {"bn"}, {"y"});
  b.output("y");
  ASSERT_TRUE(ops::infer_shapes(b.graph()).is_ok());
}

TEST(Pipeline, NamesThePassesInOrder) {
  const auto names = passes::pipeline_pass_names();
  ASSERT_GE(names.size(), 8u);
  EXPECT_EQ(names.front(), "qdq_lowering");  // before folding turns weight DequantizeLinear into floats
  EXPECT_EQ(names[1], "constant_folding");
  EXPECT_EQ(names.back(), "dead_code_elimination");
}

TEST(Pipeline, OptimizesAndReportsEveryPass) {
  GraphBuilder b("g", nullptr, 17);
  small_cnn(b);
  const std::vector<Datum> feeds = {random_floats({2, 2, 4, 4}, 9)};
  auto before = run_graph(b.graph(), feeds);
  passes::PipelineOptions options;
  options.verify = true;
  auto reports = passes::optimize(b.graph(), options);
  ASSERT_TRUE(reports.is_ok()) << reports.status().to_string();
  EXPECT_EQ(reports->size(), passes::pipeline_pass_names().size());
  EXPECT_EQ(reports->front().nodes_before, 4);
  EXPECT_EQ(reports->back().nodes_after, 1);
  EXPECT_EQ(count_ops(b.graph(), "kiln.FusedConv"), 1);
  expect_close(before, run_graph(b.graph(), feeds));
}

TEST(Pipeline, StopsAfterANamedPassAndDumps) {
  GraphBuilder b("g", nullptr, 17);
  small_cnn(b);
  std::ostringstream dump;
  passes::PipelineOptions options;
  options.stop_after = "batchnorm_folding";
  options.dump_after = "layer_elimination";
  options.dump = &dump;
  auto reports = passes::optimize(b.graph(), options);
  ASSERT_TRUE(reports.is_ok()) << reports.status().to_string();
  EXPECT_EQ(reports->back().name, "batchnorm_folding");
  EXPECT_EQ(count_ops(b.graph(), "BatchNormalization"), 0);
  EXPECT_EQ(count_ops(b.graph(), "Relu"), 1);  // vertical fusion did not run
  EXPECT_NE(dump.str().find("Conv"), std::string::npos);
  EXPECT_EQ(dump.str().find("Identity"), std::string::npos);
}

TEST(Pipeline, DisabledPassesDoNotRun) {
  GraphBuilder b("g", nullptr, 17);
  small_cnn(b);
  passes::PipelineOptions options;
  options.disabled = {"vertical_fusion"};
  ASSERT_TRUE(passes::optimize(b.graph(), options).is_ok());
  EXPECT_EQ(count_ops(b.graph(), "kiln.FusedConv"), 0);
}

TEST(Pipeline, UnknownPassNamesAreErrors) {
  GraphBuilder b("g", nullptr, 17);
  small_cnn(b);
  passes::PipelineOptions options;
  options.stop_after = "no_such_pass";
  auto r = passes::optimize(b.graph(), options);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("no_such_pass"), std::string::npos);
}

// A pass that breaks the graph: the manager's verifier names it.
class BreakingPass : public passes::Pass {
 public:
  std::string_view name() const override { return "breaker"; }
  Result<bool> run(ir::Graph& graph) override {
    graph.remove_node(graph.nodes().front().get());
    return true;
  }
};

TEST(PassManager, VerifiesAfterEachPass) {
  GraphBuilder b("g", nullptr, 17);
  small_cnn(b);
  passes::PipelineOptions options;
  options.verify = true;
  passes::PassManager manager(options);
  manager.add(std::make_unique<BreakingPass>());
  auto r = manager.run(b.graph());
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("breaker"), std::string::npos);
}

}  // namespace
}  // namespace kiln::test
