// Helpers for the optimizer's tests: build a graph with GraphBuilder, run it,
// apply passes, run it again and compare every output.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ops/graph_builder.h"
#include "ops/shape_inference.h"
#include "passes/pass.h"

namespace kiln::test {

inline Tensor random_floats(Dims dims, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor t = Tensor::empty(DataType::kFloat32, std::move(dims));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (float& v : t.span<float>()) v = dist(rng);
  return t;
}

inline ir::ValueType f32(std::vector<Dim> dims) { return ir::ValueType::tensor(DataType::kFloat32, Shape(dims)); }

// Nodes of `g` (top level) with this op type (domain-qualified for non-ONNX: "kiln.FusedConv").
inline int count_ops(const ir::Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes()) {
    const std::string name = node->domain().empty() ? node->op_type() : node->domain() + "." + node->op_type();
    n += name == op;
  }
  return n;
}

inline const ir::Node* find_op(const ir::Graph& g, const std::string& op) {
  for (const auto& node : g.nodes()) {
    const std::string name = node->domain().empty() ? node->op_type() : node->domain() + "." + node->op_type();
    if (name == op) return node.get();
  }
  return nullptr;
}

inline std::vector<Datum> run_graph(const ir::Graph& g, const std::vector<Datum>& feeds) {
  auto program = exec::Program::compile(g);
  EXPECT_TRUE(program.is_ok()) << program.status().to_string();
  if (!program.is_ok()) return {};
  auto out = exec::execute(**program, feeds, nullptr);
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  return out.is_ok() ? std::move(out).value() : std::vector<Datum>{};
}

inline void expect_close(const std::vector<Datum>& want, const std::vector<Datum>& got, double tol = 1e-4) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const Tensor& a = want[i].tensor();
    const Tensor& b = got[i].tensor();
    ASSERT_EQ(a.dtype(), b.dtype()) << "output " << i;
    ASSERT_EQ(a.dims(), b.dims()) << "output " << i;
    if (a.dtype() == DataType::kFloat32) {
      for (int64_t k = 0; k < a.numel(); ++k) {
        const double x = a.data<float>()[k], y = b.data<float>()[k];
        ASSERT_NEAR(x, y, tol * std::max(1.0, std::fabs(x))) << "output " << i << " element " << k;
      }
    } else if (a.dtype() == DataType::kInt64) {
      for (int64_t k = 0; k < a.numel(); ++k) ASSERT_EQ(a.data<int64_t>()[k], b.data<int64_t>()[k]);
    } else if (a.dtype() == DataType::kUInt8 || a.dtype() == DataType::kInt8) {
      ASSERT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << "output " << i;
    }
  }
}

// Infers shapes, runs the graph, applies `passes` (each must report
// `expect_changed`), verifies the graph and checks the outputs are unchanged.
inline void expect_preserved(ir::Graph& g, const std::vector<Datum>& feeds,
                             std::vector<std::unique_ptr<passes::Pass>> passes, bool expect_changed = true) {
  Status s = ops::infer_shapes(g);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  std::vector<Datum> before = run_graph(g, feeds);
  bool changed = false;
  for (auto& p : passes) {
    auto r = p->run(g);
    ASSERT_TRUE(r.is_ok()) << p->name() << ": " << r.status().to_string();
    changed = changed || *r;
    Status v = g.verify();
    ASSERT_TRUE(v.is_ok()) << p->name() << ": " << v.to_string() << "\n" << g.to_string();
  }
  EXPECT_EQ(changed, expect_changed) << g.to_string();
  std::vector<Datum> after = run_graph(g, feeds);
  expect_close(before, after);
}

template <class... P>
std::vector<std::unique_ptr<passes::Pass>> pass_list(P... p) {
  std::vector<std::unique_ptr<passes::Pass>> v;
  (v.push_back(std::move(p)), ...);
  return v;
}

}  // namespace kiln::test
