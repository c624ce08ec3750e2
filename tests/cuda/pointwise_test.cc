// kiln.Pointwise on the GPU: the generated CUDA source compiles with NVRTC
// (no GPU needed), the plan's kPointwise step (its program, evaluated by the
// emulator) matches the reference interpreter, the node-by-node fallback,
// and graphs the optimizer turns into Pointwise nodes. With a GPU the same
// graphs run on the engine at every precision.
#include <gtest/gtest.h>

#include <optional>

#include "backends/cuda/nvrtc_compile.h"
#include "backends/cuda/pointwise_codegen.h"
#include "gpu_test_util.h"
#include "ops/shape_inference.h"
#include "passes/pipeline.h"

namespace kiln::backends::cuda {
namespace {

using ir::Attribute;
using kiln::test::GraphBuilder;
using test::expect_matches_reference;
using test::expect_matches_reference_all;
using test::f32;
using test::random_tensor;

constexpr int64_t kOpset = 20;  // Gelu is opset 20

// One op of a body: `op` applied to the running value, with an optional
// constant second operand (first when `constant_first`) or constant extra
// inputs (Clip's bounds).
struct BodyOp {
  std::string op;
  std::vector<Attribute> attrs = {};
  std::optional<Tensor> operand = std::nullopt;
  bool constant_first = false;
  std::vector<Tensor> extra = {};
  std::string domain = "";
};

Tensor scalar(float v) { return Tensor::scalar<float>(DataType::kFloat32, v); }

// Continuous ops (compared at every precision), in chains that keep values finite.
std::vector<std::vector<BodyOp>> smooth_chains() {
  return {
      {{"Mul", {}, random_tensor({5}, 301, 0.5f, 1.5f)}, {"Add", {}, scalar(0.25f)}, {"Relu"}, {"Sigmoid"}, {"Tanh"}},
      {{"Exp"}, {"Log"}, {"Abs"}, {"Neg"}, {"Abs"}, {"Sqrt"}, {"Add", {}, scalar(1.0f)}, {"Reciprocal"}},
      {{"Erf"},
       {"LeakyRelu", {Attribute::make_float("alpha", 0.1f)}},
       {"Elu", {Attribute::make_float("alpha", 0.7f)}},
       {"Selu"},
       {"Celu", {Attribute::make_float("alpha", 1.5f)}}},
      {{"HardSigmoid", {Attribute::make_float("alpha", 0.3f)}},
       {"Sub", {}, scalar(0.5f)},
       {"HardSwish"},
       {"Softplus"},
       {"Softsign"}},
      {{"Sin"},
       {"Cos"},
       {"Gelu"},
       {"Gelu", {Attribute::make_string("approximate", "tanh")}, std::nullopt, false, {}, "kiln"},
       {"Mish"}},
      {{"Clip", {}, std::nullopt, false, {scalar(-0.5f), scalar(0.6f)}},
       {"Pow", {}, scalar(2.0f)},
       {"Max", {}, random_tensor({4, 1}, 302, 0.0f, 0.2f)},
       {"Min", {}, scalar(0.3f)},
       {"PRelu", {}, random_tensor({5}, 303)},
       {"Sub", {}, scalar(1.0f), true},
       {"Div", {}, random_tensor({3, 1, 5}, 304, 1.0f, 2.0f)},
       {"Cast", {Attribute::make_int("to", static_cast<int64_t>(DataType::kFloat32))}}},
  };
}

// Ops with jumps: fp32 only (a rounding at a lower precision can cross one).
std::vector<BodyOp> step_chain() {
  return {{"Mul", {}, scalar(3.0f)},
          {"Floor"},
          {"Add", {}, scalar(0.5f)},
          {"Ceil"},
          {"Mul", {}, scalar(0.3f)},
          {"Round"},
          {"Sign"},
          {"ThresholdedRelu", {Attribute::make_float("alpha", 0.5f)}}};
}

// Adds `ops` to `body`, from value `cur`; returns the last value's name.
std::string add_ops(GraphBuilder& body, std::string cur, const std::vector<BodyOp>& ops, int& k) {
  for (const BodyOp& o : ops) {
    std::vector<std::string> ins = {cur};
    if (o.operand) {
      std::string c = "c" + std::to_string(k);
      body.constant(c, *o.operand);
      ins = o.constant_first ? std::vector<std::string>{c, cur} : std::vector<std::string>{cur, c};
    }
    for (size_t e = 0; e < o.extra.size(); ++e) {
      std::string c = "e" + std::to_string(k) + "_" + std::to_string(e);
      body.constant(c, o.extra[e]);
      ins.push_back(c);
    }
    std::string out = "t" + std::to_string(k++);
    ir::Node* n = body.node(o.op, ins, {out}, o.attrs);
    if (!o.domain.empty()) {  // re-create in the kiln domain
      std::vector<ir::Value*> in;
      for (const auto& name : ins) in.push_back(body.graph().find_value(name));
      body.graph().remove_node(n);
      ir::Node* kn = body.graph().add_node(o.op, in, {body.graph().find_value(out)}, "kiln_" + out, o.domain);
      kn->set_opset(1);
      for (const Attribute& a : o.attrs) kn->set_attr(a);
    }
    cur = out;
  }
  return cur;
}

GraphBuilder top_builder() {
  GraphBuilder b("main", nullptr, kOpset);
  auto opsets = b.graph().opset_imports();
  opsets["kiln"] = 1;
  b.graph().set_opset_imports(opsets);
  return b;
}

// main(x) = kiln.Pointwise(x) with a body of `ops` (a leading Cast to float when `cast_first`).
std::shared_ptr<ir::Graph> pointwise_graph(const std::vector<BodyOp>& ops, ir::ValueType x_type,
                                           bool cast_first = false) {
  GraphBuilder b = top_builder();
  b.input("x", x_type);
  GraphBuilder body("body", &b.graph(), kOpset);
  body.input("bx", x_type);
  int k = 0;
  std::string cur = "bx";
  if (cast_first) {
    cur = add_ops(body, cur, {{"Cast", {Attribute::make_int("to", static_cast<int64_t>(DataType::kFloat32))}}}, k);
  }
  cur = add_ops(body, cur, ops, k);
  body.output(cur);
  ir::Node* n = b.graph().add_node("Pointwise", {b.graph().find_value("x")}, {b.value("y")}, "pw", "kiln");
  n->set_opset(1);
  n->set_attr(Attribute::make_graph("body", body.share()));
  b.output("y");
  return b.share();
}

int count_steps(const ir::Graph& g, const std::vector<Tensor>& in, StepKind kind) {
  std::vector<Dims> dims;
  std::vector<DataType> types;
  for (const Tensor& t : in) {
    dims.push_back(t.dims());
    types.push_back(t.dtype());
  }
  auto plan = build_plan(g, dims, types, PlanOptions{});
  EXPECT_TRUE(plan.is_ok()) << plan.status().to_string();
  if (!plan.is_ok()) return -1;
  int count = 0;
  for (const Step& s : plan->steps) count += s.kind == kind ? 1 : 0;
  return count;
}

TEST(GpuPointwise, GeneratedSourceCompilesWithNvrtc) {
  std::vector<BodyOp> all;
  for (const auto& chain : smooth_chains()) all.insert(all.end(), chain.begin(), chain.end());
  for (const BodyOp& o : step_chain()) all.push_back(o);
  auto g = pointwise_graph(all, f32({2, 3, 4, 5}), true);
  const ir::Graph* body = g->nodes().front()->attr_graph("body");
  ASSERT_NE(body, nullptr);
  struct Types {
    DataType x, y;
  };
  for (Types t : {Types{DataType::kFloat32, DataType::kFloat32}, Types{DataType::kFloat16, DataType::kFloat16},
                  Types{DataType::kBFloat16, DataType::kBFloat16}, Types{DataType::kInt64, DataType::kFloat16},
                  Types{DataType::kBool, DataType::kBFloat16}}) {
    SCOPED_TRACE(std::string(data_type_name(t.x)) + " -> " + std::string(data_type_name(t.y)));
    auto prog = translate_pointwise_body(*body, t.x);
    ASSERT_TRUE(prog.is_ok()) << prog.status().to_string();
    EXPECT_EQ(prog->tensors.size(), 4u);  // the first chain's Mul; Max, PRelu and Div
    std::string src = pointwise_cuda_source(*prog, t.x, t.y, 4);
    for (int arch : {80, 90}) {
      auto cubin = nvrtc_compile(src, arch);
      ASSERT_TRUE(cubin.is_ok()) << "sm_" << arch << ": " << cubin.status().to_string() << "\n" << src;
      EXPECT_GT(cubin->size(), 0u);
    }
  }
  // A compile error is reported with NVRTC's log.
  auto bad = nvrtc_compile("extern \"C\" __global__ void k() { undefined_name(); }", 80);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("undefined_name"), std::string::npos) << bad.status().to_string();
}

TEST(GpuPointwise, EveryOpMatchesReference) {
  int i = 0;
  for (const auto& chain : smooth_chains()) {
    SCOPED_TRACE("chain " + std::to_string(i++));
    auto g = pointwise_graph(chain, f32({2, 3, 4, 5}));
    std::vector<Tensor> in = {random_tensor({2, 3, 4, 5}, 310 + static_cast<uint32_t>(i))};
    EXPECT_EQ(count_steps(*g, in, StepKind::kPointwise), 1);
    expect_matches_reference_all(*g, in);
  }
  {
    SCOPED_TRACE("steps");
    auto g = pointwise_graph(step_chain(), f32({2, 3, 4, 5}));
    std::vector<Tensor> in = {random_tensor({2, 3, 4, 5}, 320)};
    EXPECT_EQ(count_steps(*g, in, StepKind::kPointwise), 1);
    expect_matches_reference(*g, in, Precision::kFp32, test::tolerance(Precision::kFp32));
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

// An int64 input cast to float (BERT's attention mask chain).
TEST(GpuPointwise, IntegerInputCastToFloat) {
  auto g = pointwise_graph({{"Sub", {}, scalar(1.0f), true}, {"Mul", {}, scalar(-10000.0f)}},
                           ir::ValueType::tensor(DataType::kInt64, Shape::of({2, 1, 1, 7})), true);
  Tensor mask = Tensor::empty(DataType::kInt64, {2, 1, 1, 7});
  for (int64_t i = 0; i < mask.numel(); ++i) mask.data<int64_t>()[i] = i % 7 < 5 ? 1 : 0;
  EXPECT_EQ(count_steps(*g, {mask}, StepKind::kPointwise), 1);
  expect_matches_reference_all(*g, {mask});
  KILN_SKIP_REST_WITHOUT_GPU();
}

// Channels-last input: the tensor constants' strides follow the NHWC memory.
TEST(GpuPointwise, AfterChannelsLastConv) {
  GraphBuilder b = top_builder();
  b.input("x", f32({2, 3, 6, 6}));
  b.constant("w", random_tensor({8, 3, 3, 3}, 330, -0.5f, 0.5f));
  b.node("Conv", {"x", "w"}, {"c"}, {Attribute::make_ints("pads", {1, 1, 1, 1})});
  GraphBuilder body("body", &b.graph(), kOpset);
  body.input("bx", f32({2, 8, 6, 6}));
  int k = 0;
  std::string out = add_ops(
      body, "bx", {{"Mul", {}, random_tensor({8, 1, 1}, 331)}, {"Add", {}, random_tensor({6}, 332)}, {"Tanh"}}, k);
  body.output(out);
  ir::Node* n = b.graph().add_node("Pointwise", {b.graph().find_value("c")}, {b.value("y")}, "pw", "kiln");
  n->set_opset(1);
  n->set_attr(Attribute::make_graph("body", body.share()));
  b.output("y");
  std::vector<Tensor> in = {random_tensor({2, 3, 6, 6}, 333)};
  for (bool cl : {true, false}) {
    SCOPED_TRACE(cl ? "channels last" : "channels first");
    std::vector<Tensor> ref = test::run_reference(b.graph(), in);
    test::expect_plan_matches_reference(b.graph(), in, ref, cl);
    expect_matches_reference(b.graph(), in, Precision::kFp16, test::tolerance(Precision::kFp16), cl);
  }
  KILN_SKIP_REST_WITHOUT_GPU();
}

// With generated kernels off (the engine's fallback where NVRTC cannot run)
// the bodies are lowered node by node, with the same results.
TEST(GpuPointwise, NodeByNodeWhenGeneratedKernelsAreOff) {
  Tensor mask = Tensor::empty(DataType::kInt64, {2, 1, 1, 7});
  for (int64_t i = 0; i < mask.numel(); ++i) mask.data<int64_t>()[i] = i % 7 < 5 ? 1 : 0;
  struct Case {
    std::shared_ptr<ir::Graph> graph;
    Tensor input;
  };
  std::vector<Case> cases = {{pointwise_graph(smooth_chains()[0], f32({2, 3, 4, 5})), random_tensor({2, 3, 4, 5}, 345)},
                             {pointwise_graph({{"Sub", {}, scalar(1.0f), true}, {"Mul", {}, scalar(-10000.0f)}},
                                              ir::ValueType::tensor(DataType::kInt64, Shape::of({2, 1, 1, 7})), true),
                              mask}};
  for (const Case& c : cases) {
    PlanOptions o;
    o.generated_kernels = false;
    auto plan = build_plan(*c.graph, {c.input.dims()}, {c.input.dtype()}, o);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    for (const Step& s : plan->steps) EXPECT_NE(s.kind, StepKind::kPointwise) << plan->to_string();
    auto out = test::emulate_plan(*plan, {c.input});
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    test::expect_close(*out, test::run_reference(*c.graph, {c.input}), test::tolerance(Precision::kFp32),
                       "node by node", plan->to_string());
  }
}

// On a GPU the engine runs the generated kernel (not the node-by-node fallback).
TEST(GpuPointwise, EngineUsesTheGeneratedKernel) {
  KILN_REQUIRE_GPU();
  auto g = pointwise_graph(smooth_chains()[0], f32({2, 3, 4, 5}));
  for (Precision p : {Precision::kFp32, Precision::kFp16, Precision::kBf16}) {
    GpuOptions o;
    o.precision = p;
    auto engine = GpuEngine::create(*g, o);
    ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
    std::vector<Tensor> in = {random_tensor({2, 3, 4, 5}, 346)};
    auto out = (*engine)->run(in);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    EXPECT_NE((*engine)->plan_summary().find("pointwise "), std::string::npos) << (*engine)->plan_summary();
    test::expect_close(*out, test::run_reference(*g, in), test::tolerance(p), std::string(precision_name(p)),
                       (*engine)->plan_summary());
  }
}

// A body the generator does not take (two outputs) is lowered node by node.
TEST(GpuPointwise, TwoOutputsFallBackToNodeByNode) {
  GraphBuilder b = top_builder();
  b.input("x", f32({3, 4}));
  GraphBuilder body("body", &b.graph(), kOpset);
  body.input("bx", f32({3, 4}));
  body.constant("two", scalar(2.0f));
  body.node("Relu", {"bx"}, {"r"});
  body.node("Mul", {"r", "two"}, {"m"});
  body.output("r");
  body.output("m");
  ir::Node* n =
      b.graph().add_node("Pointwise", {b.graph().find_value("x")}, {b.value("y0"), b.value("y1")}, "pw", "kiln");
  n->set_opset(1);
  n->set_attr(Attribute::make_graph("body", body.share()));
  b.output("y0");
  b.output("y1");
  std::vector<Tensor> in = {random_tensor({3, 4}, 340)};
  EXPECT_EQ(count_steps(b.graph(), in, StepKind::kPointwise), 0);
  EXPECT_EQ(count_steps(b.graph(), in, StepKind::kElementwise), 2);
  expect_matches_reference_all(b.graph(), in);
  KILN_SKIP_REST_WITHOUT_GPU();
}

// A Pointwise of a value known when the plan is built runs on the host.
TEST(GpuPointwise, OfShapeValueIsEvaluatedOnTheHost) {
  GraphBuilder b = top_builder();
  b.input("x", f32({2, 3, 4}));
  b.node("Shape", {"x"}, {"s"});
  GraphBuilder body("body", &b.graph(), kOpset);
  body.input("bx", ir::ValueType::tensor(DataType::kInt64));
  int k = 0;
  std::string out = add_ops(body, "bx",
                            {{"Cast", {Attribute::make_int("to", static_cast<int64_t>(DataType::kFloat32))}},
                             {"Mul", {}, scalar(0.5f)},
                             {"Sqrt"}},
                            k);
  body.output(out);
  ir::Node* n = b.graph().add_node("Pointwise", {b.graph().find_value("s")}, {b.value("y")}, "pw", "kiln");
  n->set_opset(1);
  n->set_attr(Attribute::make_graph("body", body.share()));
  b.output("y");
  std::vector<Tensor> in = {random_tensor({2, 3, 4}, 350)};
  EXPECT_EQ(count_steps(b.graph(), in, StepKind::kPointwise), 0);
  expect_matches_reference_all(b.graph(), in);
  KILN_SKIP_REST_WITHOUT_GPU();
}

// Chains the optimizer fuses into kiln.Pointwise, lowered from the optimized graph.
TEST(GpuPointwise, OptimizedGraphs) {
  GraphBuilder b("main", nullptr, 17);
  b.input("x", f32({2, 6, 8}));
  b.input("mask", ir::ValueType::tensor(DataType::kInt64, Shape::of({2, 8})));
  b.constant("w", random_tensor({8, 8}, 360));
  b.constant("scale", random_tensor({8}, 361, 0.5f, 1.5f));
  b.constant("half", scalar(0.5f));
  b.constant("one", scalar(1.0f));
  b.constant("big", scalar(-10000.0f));
  Tensor axes = Tensor::empty(DataType::kInt64, {1});
  axes.data<int64_t>()[0] = 1;
  b.constant("axes", axes);
  b.node("MatMul", {"x", "w"}, {"h"});
  b.node("Exp", {"h"}, {"e"});
  b.node("Mul", {"e", "scale"}, {"es"});
  b.node("Add", {"es", "half"}, {"y"});
  b.node("Unsqueeze", {"mask", "axes"}, {"mu"});
  b.node("Cast", {"mu"}, {"mf"}, {Attribute::make_int("to", static_cast<int64_t>(DataType::kFloat32))});
  b.node("Sub", {"one", "mf"}, {"inv"});
  b.node("Mul", {"inv", "big"}, {"madd"});
  b.output("y");
  b.output("madd");
  ASSERT_TRUE(ops::infer_shapes(b.graph()).is_ok());
  auto report = passes::optimize(b.graph());
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  int pointwise = 0;
  for (const auto& n : b.graph().nodes()) pointwise += n->op_type() == "Pointwise" ? 1 : 0;
  ASSERT_GE(pointwise, 2) << "the optimizer no longer fuses these chains";
  Tensor mask = Tensor::empty(DataType::kInt64, {2, 8});
  for (int64_t i = 0; i < mask.numel(); ++i) mask.data<int64_t>()[i] = i % 8 < 6 ? 1 : 0;
  std::vector<Tensor> in = {random_tensor({2, 6, 8}, 362), mask};
  EXPECT_EQ(count_steps(b.graph(), in, StepKind::kPointwise), pointwise);
  expect_matches_reference_all(b.graph(), in);
  KILN_SKIP_REST_WITHOUT_GPU();
}

}  // namespace
}  // namespace kiln::backends::cuda
