// Blocked layouts between oneDNN convolutions (plan/layouts.h): a chain of
// convolutions with a residual, a depthwise step and a branch that leaves the
// chain, built with only onednn.conv_blocked (and the reference) to choose
// from. The plan must mark exactly the values that stay between blocked
// kernels, and give the reference interpreter's answers (1e-5 of the largest output)
// built, saved and loaded, with the layouts on and off.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "backends/cpu/tactics.h"
#include "plan/builder.h"
#include "plan/layouts.h"
#include "plan/plan_file.h"
#include "plan/profile.h"
#include "plan_test_util.h"

namespace kiln::plan {
namespace {

ir::Node* conv(ir::Graph& g, ir::Value* x, Tensor w, const std::string& name, int64_t group = 1) {
  const int64_t k = w.dim(2);
  ir::Value* wv = g.add_constant(name + "_w", std::move(w)).value();
  ir::Value* y = test::value(g, name + "_y");
  ir::Node* n = g.add_node("Conv", {x, wv}, {y}, name);
  n->set_attr(ir::Attribute::make_ints("pads", {k / 2, k / 2, k / 2, k / 2}));
  if (group != 1) n->set_attr(ir::Attribute::make_int("group", group));
  n->set_opset(17);
  return n;
}

ir::Value* unary(ir::Graph& g, const std::string& op, ir::Value* x, const std::string& name) {
  ir::Value* y = test::value(g, name);
  g.add_node(op, {x}, {y}, name)->set_opset(17);
  return y;
}

// x [N, 3, 12, 12] -> conv a (16; reads NCHW as a network's first layer does) -> relu -> conv b (16) + a -> relu -> depthwise c -> conv d (16, 1x1) = y;
// also s = Sigmoid(b's sum): the sum leaves the chain.
ir::Model chain_model() {
  auto g = std::make_shared<ir::Graph>("chain");
  g->set_opset_imports({{"", 17}});
  ir::Value* x =
      g->add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("N"), 3, 12, 12}))).value();
  g->add_input(x);
  ir::Value* a = unary(*g, "Relu", conv(*g, x, test::random_tensor({16, 3, 3, 3}, 1), "a")->output(0), "a_relu");
  ir::Value* b = conv(*g, a, test::random_tensor({16, 16, 3, 3}, 2), "b")->output(0);
  ir::Value* sum = test::value(*g, "sum");
  g->add_node("Add", {b, a}, {sum}, "add")->set_opset(17);
  ir::Value* r = unary(*g, "Relu", sum, "sum_relu");
  ir::Value* c = conv(*g, r, test::random_tensor({16, 1, 3, 3}, 3), "c", 16)->output(0);
  ir::Value* d = conv(*g, c, test::random_tensor({16, 16, 1, 1}, 4), "d")->output(0);
  ir::Value* s = unary(*g, "Sigmoid", r, "s");
  g->add_output(d);
  g->add_output(s);
  ir::Model model;
  model.graph = g;
  return model;
}

runtime::NamedTensors feeds() { return {{"x", test::random_tensor({2, 3, 12, 12}, 9)}}; }

// A plan of `model` on 2 threads with each node's first candidate of `registry` (no timing:
// oneDNN for the convolutions, never the reference); `shapes` as kiln build's --shapes ("" for none).
Result<Plan> build_untimed(ir::Model model, const backends::TacticRegistry& registry, const std::string& shapes,
                           bool blocked = true) {
  BuildOptions o;
  if (!shapes.empty()) o.shapes = parse_shape_spec(shapes).value();
  o.threads = 2;
  o.blocked_layouts = blocked;
  o.registry = &registry;
  o.time_tactics = false;
  return build(std::move(model), o);
}

// The "kiln_blocked" marks of a plan's nodes, by node name.
std::map<std::string, std::vector<int64_t>> blocked_marks(const Plan& plan) {
  std::map<std::string, std::vector<int64_t>> marks;
  for (const auto& n : plan.model.graph->nodes()) {
    if (n->has_attr("kiln_blocked")) marks[n->name()] = n->attr_ints("kiln_blocked");
  }
  return marks;
}

Plan build_chain(bool blocked, const backends::TacticRegistry& registry) {
  auto p = build_untimed(chain_model(), registry, "x:2x3x12x12", blocked);
  EXPECT_TRUE(p.is_ok()) << p.status().to_string();
  return std::move(p).value();
}

runtime::NamedTensors run(Plan plan) {
  auto engine = runtime::Engine::create_from_plan(std::move(plan), {.threads = 2});
  EXPECT_TRUE(engine.is_ok()) << engine.status().to_string();
  if (!engine.is_ok()) return {};
  auto out = (*engine)->run(feeds());
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  return out.is_ok() ? *out : runtime::NamedTensors{};
}

// |got - want| <= 1e-5 * max(1, max |want|): float sums of up to 144 products, with cancellation.
void expect_outputs(const runtime::NamedTensors& got, const runtime::NamedTensors& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const Tensor& g = got[i].second;
    const Tensor& w = want[i].second;
    ASSERT_EQ(g.dims(), w.dims()) << got[i].first;
    float scale = 1.0f;
    for (int64_t j = 0; j < w.numel(); ++j) scale = std::max(scale, std::fabs(w.data<float>()[j]));
    int64_t bad = 0;
    for (int64_t j = 0; j < g.numel(); ++j) {
      bad += std::fabs(g.data<float>()[j] - w.data<float>()[j]) <= 1e-5f * scale ? 0 : 1;
    }
    EXPECT_EQ(bad, 0) << got[i].first << ": " << bad << " of " << g.numel() << " values differ";
  }
}

TEST(BlockedLayouts, ConvChainStaysBlockedAndMatchesTheReference) {
  backends::TacticRegistry registry;
  registry.add("", "Conv", backends::cpu::make_onednn_conv_tactic(true));
  registry.add("kiln", "FusedConv", backends::cpu::make_onednn_conv_tactic(true));
  const auto want = test::reference_run(chain_model(), feeds());

  Plan plan = build_chain(true, registry);
  // Which values stay blocked: by the fused node that writes them.
  auto marks = blocked_marks(plan);
  const int64_t block = backends::cpu::detect_isa() == backends::cpu::Isa::kAvx512 ? 16 : 8;
  // a (3 input channels: NCHW in, blocked out) -> b (src and residual): blocked; b's sum also feeds the Sigmoid: NCHW;
  // c (depthwise) -> d: blocked; d's output is a graph output: NCHW.
  EXPECT_EQ(marks["a"], (std::vector<int64_t>{0, 0, 1, block}));
  EXPECT_EQ(marks["b"], (std::vector<int64_t>{1, 1, 0, block}));
  EXPECT_EQ(marks["c"], (std::vector<int64_t>{0, 0, 1, block}));
  EXPECT_EQ(marks["d"], (std::vector<int64_t>{1, 0, 0, block}));
  // b's residual is also its input: its output cannot take that storage.
  EXPECT_EQ(plan.memory.in_place, 0);
  expect_outputs(run(std::move(plan)), want);

  // Saved and loaded, the marks travel with the nodes.
  auto bytes = serialize_plan(build_chain(true, registry));
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  auto loaded = load_plan_bytes(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size(), nullptr, "chain.plan");
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  expect_outputs(run(std::move(loaded).value()), want);

  Plan plain = build_chain(false, registry);
  for (const auto& n : plain.model.graph->nodes()) EXPECT_FALSE(n->has_attr("kiln_blocked")) << n->name();
  expect_outputs(run(std::move(plain)), want);
}

ir::Value* binary(ir::Graph& g, const std::string& op, ir::Value* x, Tensor c, const std::string& name) {
  ir::Value* cv = g.add_constant(name + "_c", std::move(c)).value();
  ir::Value* y = test::value(g, name);
  g.add_node(op, {x, cv}, {y}, name)->set_opset(17);
  return y;
}

// x -> conv a -> Relu -> Cast(float16) -> Cast(float) -> conv b -> Abs -> Sqrt -> conv c
// -> Sub(per channel) -> Abs -> conv d = y. The 16-bit round trip and the Abs/Sqrt chain
// (each one kiln.Pointwise) are layout-transparent: a blocked value passes through them; the
// per-channel Sub is not.
ir::Model transparent_model() {
  auto g = std::make_shared<ir::Graph>("transparent");
  g->set_opset_imports({{"", 17}});
  ir::Value* x = g->add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape({2, 3, 12, 12}))).value();
  g->add_input(x);
  ir::Value* a = unary(*g, "Relu", conv(*g, x, test::random_tensor({16, 3, 3, 3}, 1), "a")->output(0), "a_relu");
  ir::Value* h = test::value(*g, "h");
  ir::Node* down = g->add_node("Cast", {a}, {h}, "to_half");
  down->set_attr(ir::Attribute::make_int("to", static_cast<int64_t>(DataType::kFloat16)));
  down->set_opset(17);
  ir::Value* back = test::value(*g, "back");
  ir::Node* up = g->add_node("Cast", {h}, {back}, "to_float");
  up->set_attr(ir::Attribute::make_int("to", static_cast<int64_t>(DataType::kFloat32)));
  up->set_opset(17);
  ir::Value* b = conv(*g, back, test::random_tensor({16, 16, 3, 3}, 2), "b")->output(0);
  ir::Value* t = unary(*g, "Sqrt", unary(*g, "Abs", b, "abs"), "sqrt");
  ir::Value* c = conv(*g, t, test::random_tensor({16, 16, 1, 1}, 3), "c")->output(0);
  ir::Value* m = binary(*g, "Sub", c, test::random_tensor({1, 16, 1, 1}, 4), "per_channel");
  ir::Value* d = conv(*g, unary(*g, "Abs", m, "abs2"), test::random_tensor({16, 16, 1, 1}, 5), "d")->output(0);
  g->add_output(d);
  ir::Model model;
  model.graph = g;
  return model;
}

TEST(BlockedLayouts, BlockedValuesPassThroughTransparentPointwiseChains) {
  backends::TacticRegistry registry;
  registry.add("", "Conv", backends::cpu::make_onednn_conv_tactic(true));
  registry.add("kiln", "FusedConv", backends::cpu::make_onednn_conv_tactic(true));
  registry.add("kiln", "Pointwise", backends::cpu::make_pointwise_tactic());
  const auto want = test::reference_run(transparent_model(), feeds());
  auto plan = build_untimed(transparent_model(), registry, "x:2x3x12x12");
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  auto marks = blocked_marks(*plan);
  int64_t chains = 0;
  for (const auto& n : plan->model.graph->nodes()) chains += n->op_type() == "Pointwise" ? 1 : 0;
  ASSERT_EQ(chains, 3);
  const int64_t block = backends::cpu::detect_isa() == backends::cpu::Isa::kAvx512 ? 16 : 8;
  // a -> (round trip) -> b -> (abs, sqrt) -> c: blocked through both chains; c -> (per channel) -> d: NCHW.
  EXPECT_EQ(marks["a"], (std::vector<int64_t>{0, 0, 1, block}));
  EXPECT_EQ(marks["b"], (std::vector<int64_t>{1, 0, 1, block}));
  EXPECT_EQ(marks["c"], (std::vector<int64_t>{1, 0, 0, block}));
  EXPECT_EQ(marks.count("d"), 0u);
  expect_outputs(run(std::move(plan).value()), want);
}

// x -> conv a -> relu r -> conv b; b + a -> relu -> sigmoid: the sum fuses into b as its
// residual, and a dies there, so b's output takes a's storage (oneDNN's sum
// post-op reads the residual from the destination) instead of a copy.
TEST(BlockedLayouts, ResidualConvWritesOverItsResidual) {
  auto g = std::make_shared<ir::Graph>("residual");
  g->set_opset_imports({{"", 17}});
  ir::Value* x = g->add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape({2, 8, 12, 12}))).value();
  g->add_input(x);
  ir::Value* a = conv(*g, x, test::random_tensor({16, 8, 3, 3}, 1), "a")->output(0);
  ir::Value* r = unary(*g, "Relu", a, "r");
  ir::Value* b = conv(*g, r, test::random_tensor({16, 16, 3, 3}, 2), "b")->output(0);
  ir::Value* sum = test::value(*g, "sum");
  g->add_node("Add", {b, a}, {sum}, "add")->set_opset(17);
  g->add_output(unary(*g, "Sigmoid", unary(*g, "Relu", sum, "sum_relu"), "y"));  // the Sigmoid stays apart
  ir::Model model;
  model.graph = g;
  backends::TacticRegistry registry;
  registry.add("", "Conv", backends::cpu::make_onednn_conv_tactic(true));
  registry.add("kiln", "FusedConv", backends::cpu::make_onednn_conv_tactic(true));
  const runtime::NamedTensors in = {{"x", test::random_tensor({2, 8, 12, 12}, 9)}};
  const auto want = test::reference_run(model, in);
  for (bool blocked : {true, false}) {
    auto plan = build_untimed(model, registry, "", blocked);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    EXPECT_EQ(plan->memory.in_place, 1) << "blocked " << blocked;
    auto engine = runtime::Engine::create_from_plan(std::move(plan).value(), {.threads = 2});
    ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
    auto out = (*engine)->run(in);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_outputs(*out, want);
  }
}

// x [N, 3, 13, 13] -> conv a (16) -> MaxPool 3x3/2 (pads 1) -> conv b (16) -> AveragePool 2x2/2 (ceil_mode)
// -> conv c (16) -> GlobalAveragePool -> Flatten = y. With oneDNN's blocked pools the chain stays blocked
// from a to the global pool, whose [N, 16, 1, 1] output goes to the Flatten in NCHW.
ir::Model pool_chain_model() {
  auto g = std::make_shared<ir::Graph>("pools");
  g->set_opset_imports({{"", 17}});
  ir::Value* x =
      g->add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("N"), 3, 13, 13}))).value();
  g->add_input(x);
  auto pool = [&](const std::string& op, ir::Value* in, const std::string& name, std::vector<ir::Attribute> attrs) {
    ir::Value* y = test::value(*g, name);
    ir::Node* n = g->add_node(op, {in}, {y}, name);
    for (auto& a : attrs) n->set_attr(std::move(a));
    n->set_opset(17);
    return y;
  };
  ir::Value* a = conv(*g, x, test::random_tensor({16, 3, 3, 3}, 11), "a")->output(0);
  ir::Value* p = pool("MaxPool", a, "maxpool",
                      {ir::Attribute::make_ints("kernel_shape", {3, 3}), ir::Attribute::make_ints("strides", {2, 2}),
                       ir::Attribute::make_ints("pads", {1, 1, 1, 1})});
  ir::Value* b = conv(*g, p, test::random_tensor({16, 16, 3, 3}, 12), "b")->output(0);
  ir::Value* q = pool("AveragePool", b, "avgpool",
                      {ir::Attribute::make_ints("kernel_shape", {2, 2}), ir::Attribute::make_ints("strides", {2, 2}),
                       ir::Attribute::make_int("ceil_mode", 1)});
  ir::Value* c = conv(*g, q, test::random_tensor({16, 16, 1, 1}, 13), "c")->output(0);
  ir::Value* gap = pool("GlobalAveragePool", c, "gap", {});
  ir::Value* y = test::value(*g, "y");
  g->add_node("Flatten", {gap}, {y}, "flatten")->set_opset(17);
  g->add_output(y);
  ir::Model model;
  model.graph = g;
  return model;
}

TEST(BlockedLayouts, PoolsBetweenBlockedConvolutionsStayBlocked) {
  backends::TacticRegistry registry;
  registry.add("", "Conv", backends::cpu::make_onednn_conv_tactic(true));
  for (const char* op : {"MaxPool", "AveragePool", "GlobalAveragePool"}) {
    registry.add("", op, backends::cpu::make_onednn_pool_tactic(true));
  }
  const runtime::NamedTensors in = {{"x", test::random_tensor({2, 3, 13, 13}, 14)}};
  const auto want = test::reference_run(pool_chain_model(), in);
  for (bool blocked : {true, false}) {
    auto plan = build_untimed(pool_chain_model(), registry, "x:2x3x13x13", blocked);
    ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
    auto marks = blocked_marks(*plan);
    if (blocked) {
      const int64_t block = backends::cpu::detect_isa() == backends::cpu::Isa::kAvx512 ? 16 : 8;
      EXPECT_EQ(marks["a"], (std::vector<int64_t>{0, 0, 1, block}));
      EXPECT_EQ(marks["maxpool"], (std::vector<int64_t>{1, 0, 1, block}));
      EXPECT_EQ(marks["b"], (std::vector<int64_t>{1, 0, 1, block}));
      EXPECT_EQ(marks["avgpool"], (std::vector<int64_t>{1, 0, 1, block}));
      EXPECT_EQ(marks["c"], (std::vector<int64_t>{1, 0, 1, block}));
      EXPECT_EQ(marks["gap"], (std::vector<int64_t>{1, 0, 0, block}));
    } else {
      EXPECT_TRUE(marks.empty());
    }
    auto engine = runtime::Engine::create_from_plan(std::move(plan).value(), {.threads = 2});
    ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
    auto out = (*engine)->run(in);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_outputs(*out, want);
  }
  // A pool has no residual to keep blocked, and the NCHW tactic honours no mark.
  ir::Model m = pool_chain_model();
  ir::Node* maxpool = nullptr;
  for (const auto& n : m.graph->nodes()) {
    if (n->name() == "maxpool") maxpool = n.get();
  }
  ASSERT_NE(maxpool, nullptr);
  maxpool->input(0)->set_type(ir::ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("N"), 16, 7, 7})));
  maxpool->set_attr(ir::Attribute::make_ints("kiln_blocked", {1, 1, 1, 16}));
  EXPECT_FALSE(backends::cpu::make_onednn_pool_tactic(true)->prepare(*maxpool).is_ok());
  maxpool->set_attr(ir::Attribute::make_ints("kiln_blocked", {1, 0, 1, 16}));
  EXPECT_TRUE(backends::cpu::make_onednn_pool_tactic(true)->prepare(*maxpool).is_ok());
  EXPECT_FALSE(backends::cpu::make_onednn_pool_tactic(false)->prepare(*maxpool).is_ok());
  // 12 channels are no whole block of 16: the pool may read them padded, but only from a producer that
  // writes them padded (a's output is not marked), which the plan-load check enforces.
  maxpool->input(0)->set_type(ir::ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("N"), 12, 7, 7})));
  EXPECT_TRUE(backends::cpu::make_onednn_pool_tactic(true)->prepare(*maxpool).is_ok());
  const Status marks = check_blocked_marks(*m.graph);
  EXPECT_FALSE(marks.is_ok());
  EXPECT_NE(marks.message().find("padded"), std::string::npos) << marks.to_string();
}

// x [N, 3, 12, 12] -> conv a (24) -> conv b (24) + a -> conv c (16) = y. 24 channels are no whole block of
// 16: on AVX-512 a's and b's outputs stay blocked in padded blocks (32 channels' storage), planned and
// allocated at that size, and the answers match the reference.
ir::Model padded_model() {
  auto g = std::make_shared<ir::Graph>("padded");
  g->set_opset_imports({{"", 17}});
  ir::Value* x =
      g->add_value("x", ir::ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("N"), 3, 12, 12}))).value();
  g->add_input(x);
  ir::Value* a = conv(*g, x, test::random_tensor({24, 3, 3, 3}, 21), "a")->output(0);
  ir::Value* b = conv(*g, a, test::random_tensor({24, 24, 3, 3}, 22), "b")->output(0);
  ir::Value* sum = test::value(*g, "sum");
  g->add_node("Add", {b, a}, {sum}, "add")->set_opset(17);
  ir::Value* c = conv(*g, sum, test::random_tensor({16, 24, 1, 1}, 23), "c")->output(0);
  g->add_output(c);
  ir::Model model;
  model.graph = g;
  return model;
}

TEST(BlockedLayouts, ChannelsThatAreNoWholeBlockStayBlockedPadded) {
  backends::TacticRegistry registry;
  registry.add("", "Conv", backends::cpu::make_onednn_conv_tactic(true));
  registry.add("kiln", "FusedConv", backends::cpu::make_onednn_conv_tactic(true));
  const runtime::NamedTensors in = {{"x", test::random_tensor({2, 3, 12, 12}, 24)}};
  const auto want = test::reference_run(padded_model(), in);
  auto plan = build_untimed(padded_model(), registry, "x:2x3x12x12");
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  auto marks = blocked_marks(*plan);
  const int64_t block = backends::cpu::detect_isa() == backends::cpu::Isa::kAvx512 ? 16 : 8;
  EXPECT_EQ(marks["a"], (std::vector<int64_t>{0, 0, 1, block}));
  EXPECT_EQ(marks["b"], (std::vector<int64_t>{1, 1, 1, block}));
  EXPECT_EQ(marks["c"], (std::vector<int64_t>{1, 0, 0, block}));
  // a's output is planned at whole blocks of channels: 24 rounded up to the block.
  const int64_t padded_channels = (24 + block - 1) / block * block;
  bool found = false;
  for (const auto& blk : plan->memory.blocks) {
    if (blk.value != "a_y") continue;
    found = true;
    EXPECT_GE(blk.size, 2 * padded_channels * 12 * 12 * 4);
  }
  EXPECT_TRUE(found) << "a's output has no block in the memory plan";
  EXPECT_TRUE(check_blocked_marks(*plan->model.graph).is_ok());
  auto bytes = serialize_plan(std::move(plan).value());
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  auto loaded = load_plan_bytes(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size(), nullptr, "padded.plan");
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  auto engine = runtime::Engine::create_from_plan(std::move(loaded).value(), {.threads = 2});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  for (int run = 0; run < 2; ++run) {
    auto out = (*engine)->run(in);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    expect_outputs(*out, want);
  }
}

// A damaged plan: a's output loses its padded mark (a writes 24 NCHW channels) while the plan
// declares 32 channels for it, whole blocks, so the plan-load check lets b's padded read through.
// b's kernel sees 24 channels where 32 were declared and refuses to read past the tensor.
TEST(BlockedLayouts, PaddedReadOfAMisdeclaredValueIsRefused) {
  if (backends::cpu::detect_isa() != backends::cpu::Isa::kAvx512) GTEST_SKIP() << "24 channels are whole blocks of 8";
  backends::TacticRegistry registry;
  registry.add("", "Conv", backends::cpu::make_onednn_conv_tactic(true));
  registry.add("kiln", "FusedConv", backends::cpu::make_onednn_conv_tactic(true));
  auto plan = build_untimed(padded_model(), registry, "x:2x3x12x12");
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  for (const auto& n : plan->model.graph->nodes()) {
    if (n->name() != "a") continue;
    n->remove_attr("kiln_blocked");
    n->output(0)->set_type(ir::ValueType::tensor(DataType::kFloat32, Shape({Dim::sym("N"), 32, 12, 12})));
  }
  EXPECT_TRUE(check_blocked_marks(*plan->model.graph).is_ok()) << "32 declared channels are whole blocks";
  auto bytes = serialize_plan(std::move(plan).value());
  ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
  auto loaded = load_plan_bytes(reinterpret_cast<const uint8_t*>(bytes->data()), bytes->size(), nullptr, "bad.plan");
  if (!loaded.is_ok()) return;  // refused at load: fine too
  auto engine = runtime::Engine::create_from_plan(std::move(loaded).value(), {.threads = 2});
  if (!engine.is_ok()) return;
  auto out = (*engine)->run({{"x", test::random_tensor({2, 3, 12, 12}, 25)}});
  EXPECT_FALSE(out.is_ok()) << "a padded read of 24 declared-as-32 channels ran";
}

TEST(BlockedLayouts, BadMarksAreRejected) {
  ir::Model m = chain_model();
  ir::Node* first = m.graph->nodes().front().get();
  first->set_attr(ir::Attribute::make_ints("kiln_blocked", {1, 0, 1, 12}));
  EXPECT_FALSE(backends::cpu::make_onednn_conv_tactic(true)->prepare(*first).is_ok());
  // Its 3 input channels are no whole block: read blocked, they would be read past the graph input's
  // end (nothing writes them padded), which the plan-load check refuses.
  first->set_attr(ir::Attribute::make_ints("kiln_blocked", {1, 0, 1, 8}));
  EXPECT_FALSE(check_blocked_marks(*m.graph).is_ok());
  first->set_attr(ir::Attribute::make_ints("kiln_blocked", {0, 0, 1, 8}));
  EXPECT_TRUE(backends::cpu::make_onednn_conv_tactic(true)->prepare(*first).is_ok());
  EXPECT_FALSE(backends::cpu::make_onednn_conv_tactic(false)->prepare(*first).is_ok())
      << "the NCHW oneDNN tactic cannot honour a blocked mark";
}

}  // namespace
}  // namespace kiln::plan
