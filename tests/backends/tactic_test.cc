#include "backends/tactic.h"

#include <gtest/gtest.h>

#include "ops/graph_builder.h"

namespace kiln::backends {
namespace {

TEST(TacticRegistry, ReferenceTacticRunsEveryRegisteredOp) {
  test::GraphBuilder b("main", nullptr, 17);
  b.input("x", ir::ValueType::tensor(DataType::kFloat32));
  ir::Node* relu = b.node("Relu", {"x"}, {"y"});
  b.output("y");
  const TacticRegistry& reg = TacticRegistry::global();
  std::vector<const Tactic*> c = reg.candidates(*relu);
  ASSERT_FALSE(c.empty());
  EXPECT_EQ(c.back()->name(), "reference");
  EXPECT_EQ(reg.find("reference"), &reg.reference());
  EXPECT_EQ(reg.find("no.such.tactic"), nullptr);
  auto kernel = c.back()->prepare(*relu);
  ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
}

TEST(TacticRegistry, UnknownOpHasNoCandidates) {
  test::GraphBuilder b("main", nullptr, 17);
  b.input("x", ir::ValueType::tensor(DataType::kFloat32));
  ir::Node* n = b.node("NoSuchOp", {"x"}, {"y"});
  b.output("y");
  EXPECT_TRUE(TacticRegistry::global().candidates(*n).empty());
  EXPECT_FALSE(TacticRegistry::global().reference().prepare(*n).is_ok());
}

}  // namespace
}  // namespace kiln::backends
