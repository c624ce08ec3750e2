// Builds multi-node graphs and subgraphs (If/Loop/Scan bodies) for op tests.
//
//   GraphBuilder top("main", nullptr, 17);
//   top.input("x", ir::ValueType::tensor(DataType::kFloat32));
//   GraphBuilder body("body", &top.graph(), 17);
//   body.input("i", ...); body.capture("x"); body.node("Identity", {"x"}, {"y"}); body.output("y");
//   top.node("Loop", {"M", "", "v0"}, {"v", "scan"}, {ir::Attribute::make_graph("body", body.share())});
//   auto out = top.run({m, v0});
//
// Node inputs and outputs are named; "" is an omitted optional. Output values
// are created as needed. Every node gets the builder's opset.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/datum.h"
#include "exec/program.h"
#include "ir/graph.h"
#include "ops/op_test_util.h"

namespace kiln::test {

class GraphBuilder {
 public:
  GraphBuilder(std::string name, ir::Graph* parent, int64_t opset)
      : graph_(std::make_shared<ir::Graph>(std::move(name), parent)), opset_(opset) {
    if (parent == nullptr) graph_->set_opset_imports({{"", opset}});
  }

  ir::Graph& graph() { return *graph_; }
  std::shared_ptr<ir::Graph> share() { return graph_; }

  ir::Value* input(const std::string& name, ir::ValueType type = {}) {
    ir::Value* v = value(name, std::move(type));
    graph_->add_input(v);
    return v;
  }
  ir::Value* capture(const std::string& name, ir::ValueType type = {}) {
    auto r = graph_->add_capture(name, std::move(type));
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : nullptr;
  }
  ir::Value* constant(const std::string& name, Tensor t) {
    auto r = graph_->add_constant(name, std::move(t));
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : nullptr;
  }
  // Declares the type of a value before (or after) the node producing it.
  ir::Value* value(const std::string& name, ir::ValueType type = {}) {
    if (ir::Value* v = graph_->find_value(name)) {
      if (type.kind != ir::ValueType::Kind::kUnknown) v->set_type(std::move(type));
      return v;
    }
    auto r = graph_->add_value(name, std::move(type));
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : nullptr;
  }
  ir::Node* node(const std::string& op, const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
                 std::vector<ir::Attribute> attrs = {}) {
    std::vector<ir::Value*> in;
    for (const auto& n : inputs) {
      ir::Value* v = n.empty() ? nullptr : graph_->find_value(n);
      EXPECT_TRUE(n.empty() || v != nullptr) << "GraphBuilder: no value '" << n << "' in graph " << graph_->name();
      in.push_back(v);
    }
    std::vector<ir::Value*> out;
    for (const auto& n : outputs) out.push_back(n.empty() ? nullptr : value(n));
    ir::Node* node = graph_->add_node(op, in, out, op + "_" + std::to_string(graph_->num_nodes()));
    node->set_opset(opset_);
    for (auto& a : attrs) node->set_attr(std::move(a));
    return node;
  }
  void output(const std::string& name) { graph_->add_output(value(name)); }

  // Compiles and runs the (top-level) graph.
  Result<std::vector<Datum>> run(const std::vector<Datum>& feeds) {
    KILN_ASSIGN_OR_RETURN(auto program, exec::Program::compile(*graph_));
    return exec::execute(*program, feeds, nullptr);
  }

 private:
  std::shared_ptr<ir::Graph> graph_;
  int64_t opset_;
};

inline Tensor bool_scalar(bool v) { return Tensor::scalar<bool>(DataType::kBool, v); }
inline Tensor int64_scalar(int64_t v) { return Tensor::scalar<int64_t>(DataType::kInt64, v); }

}  // namespace kiln::test
