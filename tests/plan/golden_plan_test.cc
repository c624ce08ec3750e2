// Plans written by earlier versions of the format must keep loading: one
// golden file per released format version (tests/data/plans/), each run and
// compared with the ONNX model it was built from.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "kiln/session.h"
#include "plan/plan_file.h"
#include "plan_test_util.h"

namespace kiln::plan {
namespace {

std::string data_dir() {
  const char* d = std::getenv("KILN_TEST_DATA");
  return d ? d : "tests/data";
}

// Loads a golden plan, checks its ONNX node count and runs it against the model.
void check_golden(const std::string& file) {
  const std::string plan_path = data_dir() + "/plans/" + file;
  const std::string onnx_path = data_dir() + "/../../examples/models/tiny_mlp.onnx";
  auto plan = load_plan(plan_path);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_EQ(plan->onnx_nodes, 6);
  auto from_plan = Session::open(plan_path, {.threads = 1});
  ASSERT_TRUE(from_plan.is_ok()) << from_plan.status().to_string();
  auto from_onnx = Session::open(onnx_path, {.threads = 1, .build = false});
  ASSERT_TRUE(from_onnx.is_ok()) << from_onnx.status().to_string();
  NamedTensors feeds = {{"input", test::random_tensor({2, 64}, 11)}};
  auto got = (*from_plan)->run(feeds);
  auto want = (*from_onnx)->run(feeds);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  ASSERT_TRUE(want.is_ok()) << want.status().to_string();
  ASSERT_EQ(got->size(), want->size());
  for (size_t i = 0; i < got->size(); ++i) test::expect_near((*got)[i].second, (*want)[i].second);
}

// tiny_mlp_v1.plan: `kiln build examples/models/tiny_mlp.onnx -o tiny_mlp_v1.plan --shapes input:2x64
// --skip-timing`, format 1 (kernel state inline in the metadata).
TEST(GoldenPlans, FormatVersion1LoadsAndMatchesTheModel) { check_golden("tiny_mlp_v1.plan"); }

// tiny_mlp_v2.plan: the same command, format 2 (kernel state in the weight section).
TEST(GoldenPlans, FormatVersion2LoadsAndMatchesTheModel) {
  check_golden("tiny_mlp_v2.plan");
  auto plan = load_plan(data_dir() + "/plans/tiny_mlp_v2.plan");
  ASSERT_TRUE(plan.is_ok());
  size_t with_state = 0;
  for (const Layer& l : plan->layers) with_state += l.state.empty() ? 0 : 1;
  EXPECT_GT(with_state, 0u) << "the golden plan should carry packed weights";
}

}  // namespace
}  // namespace kiln::plan
