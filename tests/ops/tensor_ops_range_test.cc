// Range on float16/bfloat16 (opset 27): computed in the stash_type and
// rounded back once per element.
#include <gtest/gtest.h>

#include "ops/op_test_util.h"

namespace kiln::test {
namespace {

Result<std::vector<Tensor>> run_range(DataType dt, double start, double limit, double delta, int64_t stash = 0) {
  OpTest t("Range", 27);
  t.input("start", make_tensor(dt, {}, std::vector<double>{start}))
      .input("limit", make_tensor(dt, {}, std::vector<double>{limit}))
      .input("delta", make_tensor(dt, {}, std::vector<double>{delta}));
  if (stash != 0) t.attr(ir::Attribute::make_int("stash_type", stash));
  return t.run();
}

TEST(RangeHalf, Float16AndBFloat16) {
  auto out = run_range(DataType::kFloat16, 1, 2, 0.25);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kFloat16);
  expect_near((*out)[0], {4}, {1, 1.25, 1.5, 1.75});

  out = run_range(DataType::kBFloat16, 10, 4, -2, 11);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kBFloat16);
  expect_near((*out)[0], {3}, {10, 8, 6});

  out = run_range(DataType::kFloat16, 2, 1, 1);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].numel(), 0);
}

TEST(RangeHalf, LargeValuesDoNotAccumulateError) {
  // 2048 + i: float16 cannot add 1 to 2048 repeatedly, but each element is
  // computed as start + i * delta in float and rounded once (to even).
  auto out = run_range(DataType::kFloat16, 2048, 2054, 2);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {3}, {2048, 2050, 2052});
}

TEST(RangeHalf, Errors) {
  expect_error(run_range(DataType::kFloat16, 0, 1, 0), "delta must not be 0");
  expect_error(run_range(DataType::kFloat16, 0, 1, 1, 10), "stash_type");
}

}  // namespace
}  // namespace kiln::test
