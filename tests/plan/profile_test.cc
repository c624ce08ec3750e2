#include "plan/profile.h"

#include <gtest/gtest.h>

#include "plan/builder.h"
#include "plan_test_util.h"
#include "runtime/engine.h"

namespace kiln::plan {
namespace {

TEST(ShapeSpec, ParsesTrtexecSyntax) {
  auto s = parse_shape_spec("input_ids:8x128, attention_mask:8x128,scalar:");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->at("input_ids"), (Dims{8, 128}));
  EXPECT_EQ(s->at("attention_mask"), (Dims{8, 128}));
  EXPECT_EQ(s->at("scalar"), Dims{});
  auto colon = parse_shape_spec("ns:x:1x3");
  ASSERT_TRUE(colon.is_ok());
  EXPECT_EQ(colon->at("ns:x"), (Dims{1, 3}));
  EXPECT_TRUE(parse_shape_spec("").value().empty());
}

TEST(ShapeSpec, RejectsMalformedSpecs) {
  for (const char* bad : {"x:8xa", "x8x128", "x:8x", "x:-1x3", "x:1,x:2", ":1x2"}) {
    EXPECT_FALSE(parse_shape_spec(bad).is_ok()) << bad;
  }
  EXPECT_NE(parse_shape_spec("x:8xa").status().message().find("'a'"), std::string::npos);
}

TEST(Profiles, CheckNamesRanksAndOrder) {
  ir::Model m = test::conv_model();
  const ir::Graph& g = *m.graph;
  auto ok = make_profiles(g, {}, {{"x", {1, 8, 16, 16}}}, {{"x", {2, 8, 16, 16}}}, {{"x", {4, 8, 16, 16}}});
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_EQ(ok->front().max, (Dims{4, 8, 16, 16}));
  auto unknown = make_profiles(g, {{"nope", {1}}}, {}, {}, {});
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find("'nope'"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("'x'"), std::string::npos);  // lists the real inputs
  auto rank = make_profiles(g, {{"x", {1, 8, 16}}}, {}, {}, {});
  ASSERT_FALSE(rank.is_ok());
  EXPECT_NE(rank.status().message().find("rank"), std::string::npos);
  auto fixed = make_profiles(g, {{"x", {1, 4, 16, 16}}}, {}, {}, {});
  ASSERT_FALSE(fixed.is_ok());
  EXPECT_NE(fixed.status().message().find("dim 1"), std::string::npos);
  auto order = make_profiles(g, {}, {{"x", {4, 8, 16, 16}}}, {}, {{"x", {2, 8, 16, 16}}});
  ASSERT_FALSE(order.is_ok());
  EXPECT_NE(order.status().message().find("min <= opt <= max"), std::string::npos);
}

TEST(Profiles, DynamicPlanRunsInsideAndRefusesOutside) {
  BuildOptions o;
  o.min_shapes = {{"x", {1, 8, 16, 16}}};
  o.opt_shapes = {{"x", {2, 8, 16, 16}}};
  o.max_shapes = {{"x", {4, 8, 16, 16}}};
  o.threads = 1;
  auto plan = build(test::conv_model(), o);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  // Planned for the max shapes: the arena holds at least the [4,8,16,16] conv output.
  EXPECT_GE(plan->memory.arena_bytes, 4 * 8 * 16 * 16 * 4);
  auto engine = runtime::Engine::create_from_plan(std::move(plan).value(), {.threads = 1});
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  for (int64_t n : {1, 3, 4}) {
    runtime::NamedTensors feeds = {{"x", test::random_tensor({n, 8, 16, 16}, static_cast<uint32_t>(n))}};
    auto want = test::reference_run(test::conv_model(), feeds);
    auto got = (*engine)->run(feeds);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    for (size_t i = 0; i < want.size(); ++i) test::expect_near((*got)[i].second, want[i].second);
  }
  auto outside = (*engine)->run({{"x", test::random_tensor({5, 8, 16, 16}, 1)}});
  ASSERT_FALSE(outside.is_ok());
  const std::string& msg = outside.status().message();
  EXPECT_NE(msg.find("input 'x'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dim 0 is 5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1, 4]"), std::string::npos) << msg;
}

TEST(Profiles, StaticShapesAreEnforced) {
  BuildOptions o;
  o.shapes = {{"x", {2, 8, 16, 16}}};
  auto plan = build(test::conv_model(), o);
  ASSERT_TRUE(plan.is_ok());
  auto engine = runtime::Engine::create_from_plan(std::move(plan).value(), {.threads = 1});
  ASSERT_TRUE(engine.is_ok());
  auto bad = (*engine)->run({{"x", test::random_tensor({3, 8, 16, 16}, 1)}});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("'x'"), std::string::npos);
}

}  // namespace
}  // namespace kiln::plan
