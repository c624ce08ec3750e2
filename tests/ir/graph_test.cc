#include <gtest/gtest.h>

#include "ir/graph.h"

namespace kiln::ir {
namespace {

TEST(Graph, DuplicateNamesAreRejected) {
  Graph g("g");
  ASSERT_TRUE(g.add_value("x").is_ok());
  auto dup = g.add_value("x");
  ASSERT_FALSE(dup.is_ok());
  EXPECT_NE(dup.status().message().find("duplicate value name 'x'"), std::string::npos);
}

TEST(Graph, TopoSortOrdersAndDetectsCycles) {
  Graph g("g");
  Value* x = g.add_value("x").value();
  g.add_input(x);
  Value* a = g.add_value("a").value();
  Value* b = g.add_value("b").value();
  // Added in reverse order: b = Relu(a) before a = Relu(x).
  g.add_node("Relu", {a}, {b}, "second");
  g.add_node("Relu", {x}, {a}, "first");
  g.add_output(b);
  EXPECT_FALSE(g.verify().is_ok());
  ASSERT_TRUE(g.topo_sort().is_ok());
  EXPECT_EQ(g.nodes().front()->name(), "first");
  EXPECT_TRUE(g.verify().is_ok());

  Graph c("cyclic");
  Value* p = c.add_value("p").value();
  Value* q = c.add_value("q").value();
  c.add_node("Relu", {q}, {p}, "n1");
  c.add_node("Relu", {p}, {q}, "n2");
  Status s = c.topo_sort();
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("cycle"), std::string::npos) << s.message();
}

TEST(Graph, UseListsFollowRewiring) {
  Graph g("g");
  Value* x = g.add_value("x").value();
  Value* y = g.add_value("y").value();
  Value* z = g.add_value("z").value();
  g.add_input(x);
  g.add_input(y);
  Node* n = g.add_node("Add", {x, x}, {z});
  EXPECT_EQ(x->uses().size(), 2u);
  n->set_input(1, y);
  EXPECT_EQ(x->uses().size(), 1u);
  EXPECT_EQ(y->uses().size(), 1u);
  g.replace_all_uses(x, y);
  EXPECT_EQ(x->uses().size(), 0u);
  EXPECT_EQ(y->uses().size(), 2u);
  g.remove_node(n);
  EXPECT_EQ(y->uses().size(), 0u);
  EXPECT_EQ(z->producer(), nullptr);
}

}  // namespace
}  // namespace kiln::ir
