// Helpers for the elementwise, reduction, softmax and cast op tests: string
// tensors, single-output runs and shape inference of one-node graphs.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ops/op_test_util.h"
#include "ops/registry.h"

namespace kiln::test {

// Runs the op and returns output 0; fails the test (and returns an empty
// tensor) if it errs.
inline Tensor run1(OpTest& t) {
  auto out = t.run();
  EXPECT_TRUE(out.is_ok()) << out.status().to_string();
  if (!out.is_ok() || out->empty()) return Tensor();
  return (*out)[0];
}

// Runs the op expecting an error whose message contains `needle`.
inline void expect_error(OpTest& t, const std::string& needle) {
  auto out = t.run();
  ASSERT_FALSE(out.is_ok()) << "expected an error containing '" << needle << "'";
  EXPECT_NE(out.status().message().find(needle), std::string::npos) << out.status().to_string();
}

// Exact comparison of an output's dtype, dims and values.
inline void expect_values(const Tensor& t, DataType dtype, const Dims& dims, const std::vector<double>& v) {
  EXPECT_EQ(data_type_name(t.dtype()), data_type_name(dtype));
  EXPECT_EQ(dims_to_string(t.dims()), dims_to_string(dims));
  std::vector<double> got = values_of(t);
  ASSERT_EQ(got.size(), v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << "element " << i;
    } else {
      EXPECT_EQ(got[i], v[i]) << "element " << i;
    }
  }
}

}  // namespace kiln::test
