// Differential tests of the Transpose tactic against the reference kernel:
// ranks 0 to 6 with random permutations and extents (size-1 axes included,
// so the axis merging is exercised), every element size (1, 2, 4, 8, 16
// bytes), the BERT head transposes and large 2-D planes on 1 and 2 threads.
// Tolerance: none, the outputs must be bit-identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include "backends/cpu/tactics.h"
#include "cpu_test_util.h"

namespace kiln::backends::cpu::test {
namespace {

using ir::Attribute;

// Random bytes (bool: 0 or 1) in a tensor of any fixed-size dtype.
Tensor random_bytes(DataType dtype, const Dims& dims, uint32_t seed) {
  Tensor t = Tensor::empty(dtype, dims);
  std::mt19937 gen(seed);
  auto* p = static_cast<uint8_t*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes(); ++i) {
    p[i] = static_cast<uint8_t>(dtype == DataType::kBool ? gen() & 1u : gen() & 0xffu);
  }
  return t;
}

std::string describe(const Tensor& x, const std::vector<int64_t>& perm, int threads) {
  return x.debug_string() + " perm " + dims_to_string(perm) + " threads " + std::to_string(threads);
}

// Runs own.transpose and the reference on x with `perm` (none: the default reversal).
void check(const Tensor& x, const std::vector<int64_t>* perm) {
  std::vector<Attribute> attrs;
  if (perm != nullptr) attrs.push_back(Attribute::make_ints("perm", *perm));
  OneNode g("", "Transpose", {{x}}, attrs, 17);
  auto tactic = make_transpose_tactic();
  ASSERT_TRUE(tactic->supports(g.node())) << x.debug_string();
  auto want = g.run_reference(g.feeds());
  ASSERT_TRUE(want.is_ok()) << want.status().to_string();
  auto kernel = tactic->prepare(g.node());
  ASSERT_TRUE(kernel.is_ok()) << kernel.status().to_string();
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    auto got = g.run(**kernel, &pool);
    const std::string what = describe(x, perm != nullptr ? *perm : std::vector<int64_t>{}, threads);
    ASSERT_TRUE(got.is_ok()) << what << ": " << got.status().to_string();
    ASSERT_EQ(got->dtype(), want->dtype()) << what;
    ASSERT_EQ(got->dims(), want->dims()) << what;
    EXPECT_EQ(std::memcmp(got->raw_data(), want->raw_data(), want->nbytes()), 0) << what;
  }
}

TEST(CpuTranspose, RandomPermutationsAllElementSizes) {
  const DataType dtypes[] = {DataType::kFloat32, DataType::kUInt8,      DataType::kFloat16, DataType::kInt64,
                             DataType::kFloat64, DataType::kComplex128, DataType::kBool,    DataType::kInt16};
  std::mt19937 gen(7);
  uint32_t seed = 100;
  int case_id = 0;
  for (int rank = 0; rank <= 6; ++rank) {
    for (int trial = 0; trial < 12; ++trial, ++case_id) {
      Dims dims;
      // Small extents at high rank keep the tensors small; 1s are frequent.
      const int max_extent = rank <= 2 ? 40 : rank <= 4 ? 9 : 5;
      for (int d = 0; d < rank; ++d) dims.push_back(1 + static_cast<int64_t>(gen() % max_extent));
      std::vector<int64_t> perm(static_cast<size_t>(rank));
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), gen);
      Tensor x = random_bytes(dtypes[case_id % 8], dims, seed++);
      check(x, &perm);
    }
  }
  // No perm attribute: the axes reversed.
  check(random_bytes(DataType::kFloat32, {3, 4, 5}, 1), nullptr);
}

TEST(CpuTranspose, BertHeadsAndLargePlanes) {
  struct Case {
    Dims dims;
    std::vector<int64_t> perm;
  };
  const std::vector<Case> cases = {
      {{1, 128, 12, 64}, {0, 2, 1, 3}},  // [B,S,H,D] -> [B,H,S,D]: contiguous rows
      {{1, 128, 12, 64}, {0, 2, 3, 1}},  // -> [B,H,D,S]: 2-D planes per head
      {{2, 12, 37, 20}, {0, 2, 1, 3}},
      {{257, 300}, {1, 0}},
      {{3, 65, 129}, {2, 1, 0}},
      {{2, 3, 100, 70}, {0, 3, 1, 2}},  // NCHW -> NHWC-like with a small plane edge
      {{4, 17, 1, 33, 1, 9}, {5, 3, 0, 2, 1, 4}},
  };
  uint32_t seed = 500;
  for (const Case& c : cases) {
    for (DataType t : {DataType::kFloat32, DataType::kUInt8, DataType::kFloat64, DataType::kBFloat16}) {
      check(random_bytes(t, c.dims, seed++), &c.perm);
    }
  }
}

TEST(CpuTranspose, EmptyTensorsAndStrings) {
  const std::vector<int64_t> perm = {2, 0, 1};
  check(random_bytes(DataType::kFloat32, {3, 0, 4}, 1), &perm);
  // String tensors are declined at build time and, at run time, go to the reference.
  Tensor s = Tensor::empty(DataType::kString, {2, 3});
  for (int i = 0; i < 6; ++i) s.data<std::string>()[i] = "s" + std::to_string(i);
  OneNode strings("", "Transpose", {{s}}, {}, 17);
  auto tactic = make_transpose_tactic();
  EXPECT_FALSE(tactic->supports(strings.node()));
  OneNode floats("", "Transpose", {{random_tensor({2, 3}, 1)}}, {}, 17);
  auto kernel = tactic->prepare(floats.node());
  ASSERT_TRUE(kernel.is_ok());
  auto got = strings.run(**kernel, nullptr);
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  ASSERT_EQ(got->dims(), (Dims{3, 2}));
  EXPECT_EQ(got->data<std::string>()[1], "s3");
  // A perm that is not a permutation: the reference reports the error.
  OneNode bad("", "Transpose", {{random_tensor({2, 3}, 1)}}, {Attribute::make_ints("perm", {0, 0})}, 17);
  EXPECT_FALSE(bad.run(**kernel, nullptr).is_ok());
}

}  // namespace
}  // namespace kiln::backends::cpu::test
