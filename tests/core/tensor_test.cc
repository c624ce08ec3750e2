#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/float_types.h"
#include "core/shape.h"
#include "core/thread_pool.h"
#include "kiln/tensor.h"

namespace kiln {
namespace {

TEST(Tensor, AllocateIsZeroedAndAligned) {
  auto t = Tensor::allocate(DataType::kFloat32, {2, 3});
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(t->numel(), 6);
  EXPECT_EQ(t->nbytes(), 24u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->raw_data()) % 64, 0u);
  for (float v : t->span<float>()) EXPECT_EQ(v, 0.0f);
}

TEST(Tensor, AbsurdSizesAreErrors) {
  auto huge = Tensor::allocate(DataType::kFloat32, {1 << 20, 1 << 20, 1 << 10});
  ASSERT_FALSE(huge.is_ok());
  EXPECT_EQ(huge.status().code(), StatusCode::kOutOfRange);
  auto neg = Tensor::allocate(DataType::kFloat32, {2, -1});
  ASSERT_FALSE(neg.is_ok());
  EXPECT_EQ(neg.status().code(), StatusCode::kInvalidArgument);
}

TEST(Tensor, CopiesShareCloneDoesNot) {
  Tensor a = Tensor::empty(DataType::kInt32, {3});
  Tensor b = a;
  Tensor c = a.clone();
  a.data<int32_t>()[0] = 7;
  EXPECT_EQ(b.data<int32_t>()[0], 7);
  EXPECT_EQ(c.data<int32_t>()[0], 0);
}

TEST(Tensor, StringsOwnTheirElements) {
  Tensor s = Tensor::empty(DataType::kString, {2});
  s.data<std::string>()[1] = "hello";
  Tensor c = s.clone();
  EXPECT_EQ(c.data<std::string>()[1], "hello");
}

TEST(DataType, NamesRoundTrip) {
  for (int i = 1; i <= kMaxDataTypeValue; ++i) {
    auto t = data_type_from_int(i);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(data_type_from_name(data_type_name(*t)), t);
  }
  EXPECT_FALSE(data_type_from_int(0).has_value());
  EXPECT_FALSE(data_type_from_int(99).has_value());
}

TEST(Float16, RoundTripsAndRounds) {
  EXPECT_EQ(Float16(1.0f).bits, 0x3c00);
  EXPECT_EQ(Float16(-2.0f).bits, 0xc000);
  EXPECT_EQ(Float16(65504.0f).bits, 0x7bff);
  EXPECT_EQ(Float16(65520.0f).bits, 0x7c00);               // rounds to inf
  EXPECT_EQ(Float16(5.960464477539063e-08f).bits, 0x0001);  // smallest subnormal
  EXPECT_EQ(Float16(2.98e-08f).bits, 0x0000);               // below half of it
  EXPECT_TRUE(std::isnan(static_cast<float>(Float16(std::numeric_limits<float>::quiet_NaN()))));
  for (uint32_t b = 0; b < 0x7c00; ++b) {  // every finite positive half survives a round trip
    Float16 h = Float16::from_bits(static_cast<uint16_t>(b));
    ASSERT_EQ(Float16(static_cast<float>(h)).bits, b);
  }
}

TEST(BFloat16, RoundsToNearestEven) {
  EXPECT_EQ(BFloat16(1.0f).bits, 0x3f80);
  EXPECT_EQ(static_cast<float>(BFloat16(3.140625f)), 3.140625f);
  EXPECT_TRUE(std::isnan(static_cast<float>(BFloat16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(Shape, SymbolicMatching) {
  Shape s({Dim::sym("batch"), Dim(3)});
  EXPECT_TRUE(s.matches({8, 3}));
  EXPECT_FALSE(s.matches({8, 4}));
  EXPECT_FALSE(s.matches({8}));
  EXPECT_EQ(s.to_string(), "[batch,3]");
  EXPECT_EQ(Shape().to_string(), "*");
}

TEST(ThreadPool, CoversTheRangeOnce) {
  ThreadPool pool(3);
  std::vector<int> hits(1000, 0);
  pool.parallel_for(1000, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
  });
  for (int h : hits) EXPECT_EQ(h, 1);
}

}  // namespace
}  // namespace kiln
