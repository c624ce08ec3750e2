#include "ops/op_test_util.h"

namespace kiln::test {
namespace {

TEST(Identity, PassesTensorThrough) {
  OpTest t("Identity", 17);
  t.input("x", floats({2, 2}, {1, 2, 3, 4}));
  auto out = t.run();
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_near((*out)[0], {2, 2}, {1, 2, 3, 4});
}

TEST(Registry, UnknownOpIsAClearError) {
  OpTest t("NoSuchOp", 17);
  t.input("x", floats({1}, {1}));
  auto out = t.run();
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().message().find("unknown operator"), std::string::npos) << out.status().message();
  EXPECT_NE(out.status().message().find("NoSuchOp"), std::string::npos);
}

}  // namespace
}  // namespace kiln::test
