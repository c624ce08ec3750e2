// Differential test harness for the CPU tactics: builds a one-node graph,
// runs a tactic's kernel and the reference kernel of the plain op on the
// same inputs, applies the fused epilogue to the reference result in the
// test, and compares with a tolerance scaled by the magnitude of the
// accumulation (the same op run on |inputs|).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/isa.h"
#include "backends/tactic.h"
#include "core/datum.h"
#include "core/float_types.h"
#include "core/thread_pool.h"
#include "ir/graph.h"
#include "ops/epilogue.h"
#include "ops/registry.h"

namespace kiln::backends::cpu::test {

inline Tensor random_tensor(const Dims& dims, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  Tensor t = Tensor::empty(DataType::kFloat32, dims);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (float& v : t.span<float>()) v = dist(gen);
  return t;
}

// Each element rounded to bfloat16 (what a --bf16 build's round trip holds).
inline Tensor round_bf16(const Tensor& t) {
  Tensor r = t.clone();
  for (float& v : r.span<float>()) v = static_cast<float>(BFloat16(v));
  return r;
}

// Each element rounded to IEEE half (what a --fp16 build's weights hold).
inline Tensor round_f16(const Tensor& t) {
  Tensor r = t.clone();
  for (float& v : r.span<float>()) v = static_cast<float>(Float16(v));
  return r;
}

// A float32 tensor of half values as a float16 tensor.
inline Tensor to_f16(const Tensor& t) {
  Tensor h = Tensor::empty(DataType::kFloat16, t.dims());
  for (int64_t i = 0; i < t.numel(); ++i) h.data<Float16>()[i] = Float16(t.data<float>()[i]);
  return h;
}

inline Tensor abs_tensor(const Tensor& t) {
  Tensor a = t.clone();
  for (float& v : a.span<float>()) v = std::fabs(v);
  return a;
}

// An input of a one-node graph: a constant (weights) or a run-time value.
struct NodeInput {
  Tensor value;
  bool constant = false;
  bool absent = false;
};

// Gives every output uninitialized-looking storage: all bytes 0xff.
class PoisonedOutputs final : public ops::OutputAllocator {
 public:
  Tensor allocate(const ir::Node&, size_t, DataType dtype, const Dims& dims) override {
    if (dtype == DataType::kString || dtype == DataType::kUndefined) return {};
    Tensor t = Tensor::empty(dtype, dims);
    if (t.nbytes() > 0) std::memset(t.raw_data(), 0xff, t.nbytes());
    return t;
  }
};

// Owns a graph with one node of (domain, op) over `inputs`.
class OneNode {
 public:
  OneNode(const std::string& domain, const std::string& op, const std::vector<NodeInput>& inputs,
          std::vector<ir::Attribute> attrs, int64_t opset = 17)
      : graph_(std::make_shared<ir::Graph>("g")) {
    graph_->set_opset_imports({{"", opset}, {"kiln", 1}});
    std::vector<ir::Value*> in;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const std::string name = "in" + std::to_string(i);
      if (inputs[i].absent) {
        in.push_back(nullptr);
      } else if (inputs[i].constant) {
        in.push_back(*graph_->add_constant(name, inputs[i].value));
      } else {
        ir::Value* v =
            *graph_->add_value(name, ir::ValueType::tensor(inputs[i].value.dtype(), Shape::of(inputs[i].value.dims())));
        graph_->add_input(v);
        in.push_back(v);
      }
      feeds_.push_back(inputs[i].absent ? Datum() : Datum(inputs[i].value));
    }
    ir::Value* out = *graph_->add_value("out");
    node_ = graph_->add_node(op, in, {out}, op + "_0", domain);
    node_->set_opset(domain.empty() ? opset : 1);
    for (auto& a : attrs) node_->set_attr(std::move(a));
  }

  ir::Node& node() { return *node_; }
  const std::vector<Datum>& feeds() const { return feeds_; }

  // Makes the node's input i the output of a Cast to `half` and straight
  // back to float32 of a new graph input: the round trip `--bf16`/`--fp16`
  // builds put before matrix layers. The kernel's feed stays the caller's
  // tensor, which should hold already rounded values.
  void round_trip_input(size_t i, DataType half) {
    const ir::Value* x = node_->input(i);
    const std::string name = "rt" + std::to_string(i);
    ir::Value* in = *graph_->add_value(name, x->type());
    graph_->add_input(in);
    ir::ValueType ht = x->type();
    ht.dtype = half;
    ir::Value* h = *graph_->add_value(name + "_half", ht);
    ir::Value* back = *graph_->add_value(name + "_f32", x->type());
    ir::Node* down = graph_->insert_node(node_, "Cast", {in}, {h}, name + "_down");
    down->set_attr(ir::Attribute::make_int("to", static_cast<int64_t>(half)));
    ir::Node* up = graph_->insert_node(node_, "Cast", {h}, {back}, name + "_up");
    up->set_attr(ir::Attribute::make_int("to", static_cast<int64_t>(DataType::kFloat32)));
    node_->set_input(i, back);
  }

  // Runs `kernel` on the node's inputs. A kernel that says it writes all of
  // its outputs (Kernel::fills_outputs, so the arena skips zero-filling them)
  // gets outputs full of 0xff bytes (NaN as float): what it leaves unwritten
  // shows in the comparison with the reference.
  Result<Tensor> run(const Kernel& kernel, ThreadPool* pool) {
    std::vector<Datum> outs(1);
    ops::KernelContext ctx(*node_, feeds_, outs, pool, nullptr);
    PoisonedOutputs poisoned;
    if (kernel.fills_outputs()) ctx.set_allocator(&poisoned);
    KILN_RETURN_IF_ERROR(kernel.run(ctx));
    return outs[0].tensor();
  }

  // Runs the op's reference kernel on `feeds` (the node's own by default).
  Result<Tensor> run_reference(const std::vector<Datum>& feeds) {
    const ops::OpDef* def = ops::Registry::global().find(node_->domain(), node_->op_type(), node_->opset());
    if (def == nullptr) return unimplemented_status();
    std::vector<Datum> outs(1);
    ops::KernelContext ctx(*node_, feeds, outs, nullptr, nullptr);
    KILN_RETURN_IF_ERROR(def->kernel(ctx));
    return outs[0].tensor();
  }

 private:
  static Status unimplemented_status() { return Status(StatusCode::kUnimplemented, "no reference kernel"); }
  std::shared_ptr<ir::Graph> graph_;
  ir::Node* node_ = nullptr;
  std::vector<Datum> feeds_;
};

// Compares got with want elementwise: |got - want| <= rel * mag + 1e-6.
inline void expect_close(const Tensor& got, const Tensor& want, const Tensor& mag, float rel, const std::string& what) {
  ASSERT_EQ(got.dims(), want.dims()) << what;
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  const float* m = mag.data<float>();
  int64_t bad = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float tol = rel * m[i] + 1e-6f;
    if (!(std::fabs(g[i] - w[i]) <= tol)) {
      if (bad++ < 3)
        ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", expected " << w[i] << " (tol " << tol << ")";
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << got.numel() << " elements differ";
}

// got == want elementwise, NaN matching NaN: what a fallback to the reference
// (or a kernel that must be exact) gives.
inline void expect_same(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.dims(), want.dims()) << what;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const float a = got.data<float>()[i], b = want.data<float>()[i];
    EXPECT_TRUE((std::isnan(a) && std::isnan(b)) || a == b) << what << " element " << i << ": " << a << " vs " << b;
  }
}

// A tactic that stores half-valued weights as halves (fp16) against the
// fp32 tactic of the same ISA on the node: the same products and sums in
// the same order, so the same bits, with 1 and 2 threads and after a plan
// round trip of the packed weights, which take about half the bytes.
inline void expect_same_as_fp32(const Tactic& fp16, const Tactic& fp32, OneNode& g, const std::string& what) {
  ASSERT_TRUE(fp16.supports(g.node())) << fp16.name() << " " << what;
  ASSERT_TRUE(fp32.supports(g.node())) << fp32.name() << " " << what;
  auto k16 = fp16.prepare(g.node());
  auto k32 = fp32.prepare(g.node());
  ASSERT_TRUE(k16.is_ok()) << k16.status().to_string();
  ASSERT_TRUE(k32.is_ok()) << k32.status().to_string();
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    auto want = g.run(**k32, &pool);
    auto got = g.run(**k16, &pool);
    ASSERT_TRUE(want.is_ok() && got.is_ok()) << what;
    ASSERT_EQ(std::memcmp(got->raw_data(), want->raw_data(), static_cast<size_t>(want->nbytes())), 0)
        << fp16.name() << " " << what << " threads=" << threads << ": not the fp32 tactic's bits";
  }
  const std::vector<uint8_t> s16 = (*k16)->serialize(), s32 = (*k32)->serialize();
  EXPECT_LT(static_cast<double>(s16.size()), 0.5 * static_cast<double>(s32.size()) + 1024.0) << what;
  auto loaded = fp16.load(g.node(), s16);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  ThreadPool pool(2);
  auto again = g.run(**loaded, &pool);
  auto want = g.run(**k32, &pool);
  ASSERT_TRUE(again.is_ok() && want.is_ok()) << what;
  EXPECT_EQ(std::memcmp(again->raw_data(), want->raw_data(), static_cast<size_t>(want->nbytes())), 0)
      << fp16.name() << " " << what << " after load";
}

// A fused node whose input 0 is float16 (a --fp16 plan stores the round
// trip before the layer so, plan/half_values.h), against the same node on
// the widened float32 values: the fp16 tactic gives the fp32 tactic's bits,
// the reference kernel its own bits, and the float32-only tactic declines.
// `make(x)` builds the node with input 0 = x.
template <typename Make>
void expect_half_input_widened(const Tactic& fp16, const Tactic& fp32, const Tensor& x32, const Make& make,
                               const std::string& what) {
  OneNode g16 = make(to_f16(x32));
  OneNode g32 = make(x32);
  EXPECT_FALSE(fp32.supports(g16.node())) << fp32.name() << " " << what;
  ASSERT_TRUE(fp16.supports(g16.node())) << fp16.name() << " " << what;
  auto k16 = fp16.prepare(g16.node());
  auto k32 = fp32.prepare(g32.node());
  ASSERT_TRUE(k16.is_ok() && k32.is_ok()) << what;
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    auto got = g16.run(**k16, &pool);
    auto want = g32.run(**k32, &pool);
    ASSERT_TRUE(got.is_ok() && want.is_ok()) << what << " " << got.status().to_string();
    ASSERT_EQ(got->dtype(), DataType::kFloat32) << what;
    ASSERT_EQ(std::memcmp(got->raw_data(), want->raw_data(), want->nbytes()), 0) << what << " threads=" << threads;
  }
  auto ref16 = g16.run_reference(g16.feeds());
  auto ref32 = g32.run_reference(g32.feeds());
  ASSERT_TRUE(ref16.is_ok()) << what << ": " << ref16.status().to_string();
  ASSERT_TRUE(ref32.is_ok()) << what;
  EXPECT_EQ(std::memcmp(ref16->raw_data(), ref32->raw_data(), ref32->nbytes()), 0) << what << " (reference)";
}

// Every activation of the fused-op contract with parameters.
inline std::vector<ops::Epilogue> all_epilogues() {
  std::vector<ops::Epilogue> out;
  using A = ops::Activation;
  for (A a : {A::kNone, A::kRelu, A::kClip, A::kSigmoid, A::kHardSigmoid, A::kHardSwish, A::kLeakyRelu, A::kTanh,
              A::kSilu, A::kGelu, A::kGeluTanh}) {
    ops::Epilogue e;
    e.activation = a;
    if (a == A::kClip) {
      e.alpha = -0.5f;
      e.beta = 0.75f;
    } else if (a == A::kLeakyRelu) {
      e.alpha = 0.1f;
    } else if (a == A::kHardSigmoid) {
      e.alpha = 0.2f;
      e.beta = 0.5f;
    }
    out.push_back(e);
  }
  return out;
}

// want = act(want + residual) or act(want) + residual, in place.
inline void apply_epilogue(Tensor& want, const ops::Epilogue& e, const Tensor* residual) {
  float* w = want.data<float>();
  for (int64_t i = 0; i < want.numel(); ++i) {
    float v = w[i];
    if (residual != nullptr && !e.residual_after_activation) v += residual->data<float>()[i];
    v = e.activate(v);
    if (residual != nullptr && e.residual_after_activation) v += residual->data<float>()[i];
    w[i] = v;
  }
}

inline std::string isa_label(Isa isa) { return std::string(isa_name(isa)); }

}  // namespace kiln::backends::cpu::test
