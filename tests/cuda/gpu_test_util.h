// Shared helpers of the CUDA backend tests: random tensors, the CPU
// reference run, and the comparison of GPU outputs against it.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/engine.h"
#include "core/datum.h"
#include "core/float_types.h"
#include "core/thread_pool.h"
#include "exec/program.h"
#include "ops/graph_builder.h"
#include "plan_emulator.h"

// Skips the current test where no GPU is present, saying why.
#define KILN_REQUIRE_GPU()                                     \
  do {                                                         \
    if (::kiln::backends::cuda::device_count() == 0) {         \
      GTEST_SKIP() << ::kiln::backends::cuda::no_gpu_reason(); \
    }                                                          \
  } while (0)

// At the end of a test whose checks also ran on the plan emulator: without a
// GPU the test reports itself skipped (its emulator checks still count).
#define KILN_SKIP_REST_WITHOUT_GPU()                                                                         \
  do {                                                                                                       \
    if (::kiln::backends::cuda::device_count() == 0) {                                                       \
      GTEST_SKIP() << ::kiln::backends::cuda::no_gpu_reason() << " (fp32 plan checked on the CPU emulator)"; \
    }                                                                                                        \
  } while (0)

namespace kiln::backends::cuda::test {

inline Tensor random_tensor(Dims dims, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor t = Tensor::empty(DataType::kFloat32, std::move(dims));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (float& v : t.span<float>()) v = dist(rng);
  return t;
}

// Tolerances per precision: |gpu - ref| <= atol + rtol * |ref|.
struct Tolerance {
  double atol;
  double rtol;
};
inline Tolerance tolerance(Precision p) {
  switch (p) {
    case Precision::kFp32:
      return {1e-4, 1e-4};
    case Precision::kTf32:
      return {2e-2, 2e-2};
    case Precision::kFp16:
      return {3e-2, 3e-2};
    case Precision::kBf16:
      return {1.5e-1, 6e-2};
  }
  return {0, 0};
}

inline double element(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DataType::kFloat32:
      return t.data<float>()[i];
    case DataType::kInt64:
      return static_cast<double>(t.data<int64_t>()[i]);
    case DataType::kInt32:
      return t.data<int32_t>()[i];
    case DataType::kFloat16:
      return static_cast<float>(t.data<Float16>()[i]);
    case DataType::kBool:
      return t.data<uint8_t>()[i];
    default:
      return NAN;
  }
}

// Runs `graph` on the reference interpreter.
inline std::vector<Tensor> run_reference(const ir::Graph& graph, const std::vector<Tensor>& inputs) {
  auto program = exec::Program::compile(graph);
  EXPECT_TRUE(program.is_ok()) << program.status().to_string();
  if (!program.is_ok()) return {};
  std::vector<Datum> feeds(inputs.begin(), inputs.end());
  static ThreadPool pool(ThreadPool::hardware_threads());
  auto out = exec::execute(**program, feeds, &pool);
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  std::vector<Tensor> r;
  if (out.is_ok()) {
    for (const Datum& d : *out) r.push_back(d.tensor());
  }
  return r;
}

// Checks outputs against reference outputs element by element.
inline void expect_close(const std::vector<Tensor>& got, const std::vector<Tensor>& ref, Tolerance tol,
                         const std::string& what, const std::string& plan) {
  const std::vector<Tensor>* out = &got;
  ASSERT_EQ(out->size(), ref.size());
  for (size_t j = 0; j < ref.size(); ++j) {
    const Tensor& g = (*out)[j];
    const Tensor& r = ref[j];
    ASSERT_EQ(g.dims(), r.dims()) << "output " << j;
    ASSERT_EQ(g.dtype(), r.dtype()) << "output " << j;
    double worst = 0.0;
    int64_t worst_i = -1;
    for (int64_t i = 0; i < r.numel(); ++i) {
      double a = element(g, i), b = element(r, i);
      double excess = std::fabs(a - b) - (tol.atol + tol.rtol * std::fabs(b));
      if (!(excess <= worst)) {  // also catches NaN
        worst = std::isnan(excess) ? INFINITY : excess;
        worst_i = i;
      }
    }
    EXPECT_LT(worst_i, 0) << "output " << j << " (" << what << "): element " << worst_i << " got "
                          << (worst_i >= 0 ? element(g, worst_i) : 0.0) << " reference "
                          << (worst_i >= 0 ? element(r, worst_i) : 0.0) << "\n"
                          << plan;
  }
}

// expect_close for threads: "" when every output is within `tol`, else what differs.
inline std::string compare_outputs(const std::vector<Tensor>& got, const std::vector<Tensor>& ref, Tolerance tol) {
  if (got.size() != ref.size())
    return "output count " + std::to_string(got.size()) + " != " + std::to_string(ref.size());
  for (size_t j = 0; j < ref.size(); ++j) {
    if (got[j].dims() != ref[j].dims()) return "output " + std::to_string(j) + ": dims differ";
    for (int64_t i = 0; i < ref[j].numel(); ++i) {
      double a = element(got[j], i), b = element(ref[j], i);
      if (!(std::fabs(a - b) <= tol.atol + tol.rtol * std::fabs(b))) {
        return "output " + std::to_string(j) + " element " + std::to_string(i) + ": got " + std::to_string(a) +
               ", reference " + std::to_string(b);
      }
    }
  }
  return "";
}

// The fp32 plan of `graph` run on the CPU emulator against the reference.
inline void expect_plan_matches_reference(const ir::Graph& graph, const std::vector<Tensor>& inputs,
                                          const std::vector<Tensor>& ref, bool channels_last) {
  std::vector<Dims> dims;
  std::vector<DataType> types;
  for (const Tensor& t : inputs) {
    dims.push_back(t.dims());
    types.push_back(t.dtype());
  }
  PlanOptions po;
  po.channels_last = channels_last;
  auto plan = build_plan(graph, dims, types, po);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  auto out = emulate_plan(*plan, inputs);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_close(*out, ref, tolerance(Precision::kFp32), "emulated fp32 plan", plan->to_string());
}

// Compares every output of `graph` on the GPU (at `p`) with the reference;
// at fp32 the plan also runs on the emulator (with or without a GPU).
inline void expect_matches_reference(const ir::Graph& graph, const std::vector<Tensor>& inputs, Precision p,
                                     Tolerance tol, bool channels_last = true) {
  std::vector<Tensor> ref = run_reference(graph, inputs);
  if (p == Precision::kFp32) expect_plan_matches_reference(graph, inputs, ref, channels_last);
  if (device_count() == 0) return;
  GpuOptions o;
  o.precision = p;
  o.channels_last = channels_last;
  auto engine = GpuEngine::create(graph, o);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  auto out = (*engine)->run(inputs);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_close(*out, ref, tol, std::string(precision_name(p)), (*engine)->plan_summary());
}

inline void expect_matches_reference_all(const ir::Graph& graph, const std::vector<Tensor>& inputs) {
  for (Precision p : {Precision::kFp32, Precision::kTf32, Precision::kFp16, Precision::kBf16}) {
    SCOPED_TRACE(std::string(precision_name(p)));
    expect_matches_reference(graph, inputs, p, tolerance(p));
  }
}

inline ir::ValueType f32(Dims d) { return ir::ValueType::tensor(DataType::kFloat32, Shape::of(d)); }

}  // namespace kiln::backends::cuda::test
