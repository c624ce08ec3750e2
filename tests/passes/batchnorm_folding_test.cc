#include <gtest/gtest.h>

#include "passes/pass_test_util.h"

namespace kiln::test {
namespace {

using passes::make_batchnorm_folding;

void add_bn(GraphBuilder& b, const std::string& x, const std::string& y, int64_t c, uint32_t seed) {
  b.constant(y + "_scale", random_floats({c}, seed, 0.5f, 1.5f));
  b.constant(y + "_bias", random_floats({c}, seed + 1));
  b.constant(y + "_mean", random_floats({c}, seed + 2));
  b.constant(y + "_var", random_floats({c}, seed + 3, 0.5f, 2.0f));
  b.node("BatchNormalization", {x, y + "_scale", y + "_bias", y + "_mean", y + "_var"}, {y},
         {ir::Attribute::make_float("epsilon", 1e-3f)});
}

TEST(BatchNormFolding, FoldsIntoConvWithAndWithoutBias) {
  for (bool bias : {false, true}) {
    GraphBuilder b("g", nullptr, 17);
    b.input("x", f32({Dim::sym("n"), 3, 6, 6}));
    b.constant("w", random_floats({4, 3, 3, 3}, 10));
    b.constant("cb", random_floats({4}, 11));
    b.node("Conv", {"x", "w", bias ? "cb" : ""}, {"c"}, {ir::Attribute::make_ints("pads", {1, 1, 1, 1})});
    add_bn(b, "c", "y", 4, 20);
    b.output("y");
    expect_preserved(b.graph(), {random_floats({2, 3, 6, 6}, 1)}, pass_list(make_batchnorm_folding()));
    EXPECT_EQ(count_ops(b.graph(), "BatchNormalization"), 0);
    const ir::Node* conv = find_op(b.graph(), "Conv");
    ASSERT_NE(conv, nullptr);
    EXPECT_EQ(conv->attr_strings("fused_from").size(), 2u);
  }
}

TEST(BatchNormFolding, FoldsIntoGroupedConvTranspose) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({1, 4, 5, 5}));
  b.constant("w", random_floats({4, 3, 3, 3}, 12));  // [C_in, M/group, k, k], group 2 -> 6 channels
  b.node("ConvTranspose", {"x", "w"}, {"c"}, {ir::Attribute::make_int("group", 2)});
  add_bn(b, "c", "y", 6, 30);
  b.output("y");
  expect_preserved(b.graph(), {random_floats({1, 4, 5, 5}, 2)}, pass_list(make_batchnorm_folding()));
  EXPECT_EQ(count_ops(b.graph(), "BatchNormalization"), 0);
}

TEST(BatchNormFolding, FoldsIntoGemm) {
  for (int trans_b : {0, 1}) {
    GraphBuilder b("g", nullptr, 17);
    b.input("x", f32({3, 8}));
    b.constant("w", random_floats(trans_b ? Dims{5, 8} : Dims{8, 5}, 13));
    b.constant("c", random_floats({5}, 14));
    b.node("Gemm", {"x", "w", "c"}, {"g"},
           {ir::Attribute::make_int("transB", trans_b), ir::Attribute::make_float("beta", 0.5f),
            ir::Attribute::make_float("alpha", 2.0f)});
    add_bn(b, "g", "y", 5, 40);
    b.output("y");
    expect_preserved(b.graph(), {random_floats({3, 8}, 3)}, pass_list(make_batchnorm_folding()));
    EXPECT_EQ(count_ops(b.graph(), "BatchNormalization"), 0);
  }
}

TEST(BatchNormFolding, FoldsPerChannelMulIntoConv) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({Dim::sym("n"), 3, 4, 4}));
  b.constant("w", random_floats({2, 3, 3, 3}, 16));
  b.constant("cb", random_floats({2}, 17));
  b.constant("scale", random_floats({2, 1, 1}, 18));
  b.constant("row", random_floats({2}, 19));  // varies along W: not per channel
  b.node("Conv", {"x", "w", "cb"}, {"c"});
  b.node("Mul", {"scale", "c"}, {"y"});
  b.node("Conv", {"x", "w"}, {"c2"});
  b.node("Mul", {"c2", "row"}, {"z"});
  b.output("y");
  b.output("z");
  expect_preserved(b.graph(), {random_floats({1, 3, 4, 4}, 7)}, pass_list(make_batchnorm_folding()));
  EXPECT_EQ(count_ops(b.graph(), "Mul"), 1);
}

TEST(BatchNormFolding, SkipsWhenTheConvOutputHasOtherReaders) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({1, 3, 4, 4}));
  b.constant("w", random_floats({2, 3, 1, 1}, 15));
  b.node("Conv", {"x", "w"}, {"c"});
  add_bn(b, "c", "y", 2, 50);
  b.node("Relu", {"c"}, {"z"});
  b.output("y");
  b.output("z");
  expect_preserved(b.graph(), {random_floats({1, 3, 4, 4}, 4)}, pass_list(make_batchnorm_folding()), false);
}

TEST(BatchNormFolding, SkipsNonConstantWeights) {
  GraphBuilder b("g", nullptr, 17);
  b.input("x", f32({1, 3, 4, 4}));
  b.input("w", f32({2, 3, 1, 1}));
  b.node("Conv", {"x", "w"}, {"c"});
  add_bn(b, "c", "y", 2, 60);
  b.output("y");
  expect_preserved(b.graph(), {random_floats({1, 3, 4, 4}, 5), random_floats({2, 3, 1, 1}, 6)},
                   pass_list(make_batchnorm_folding()), false);
}

}  // namespace
}  // namespace kiln::test
