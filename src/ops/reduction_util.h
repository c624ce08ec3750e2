// Internals of the reduction family: which dims a Reduce*/Arg* node reduces,
// the loop layout that follows, and the shared shape inference.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/op_def.h"
#include "ops/registry.h"

namespace kiln::ops {

struct ReducePlan {
  bool noop = false;        // noop_with_empty_axes with no axes: output = input
  Dims out_dims;            // the output shape (keepdims applied)
  Dims keep_dims;           // the input shape with reduced dims set to 1
  std::vector<bool> reduced;
  int64_t count = 1;        // elements folded into each output element
  // When the reduced dims (ignoring size-1 dims) form one block, the input is
  // [outer, count, inner] and the output [outer, inner].
  bool contiguous = false;
  int64_t outer = 1;
  int64_t inner = 1;
};

// Reads axes (attribute, or input 1 when `axes_from_input`), keepdims and
// noop_with_empty_axes; errors on a bad axis or axes tensor.
Result<ReducePlan> make_reduce_plan(KernelContext& ctx, const Tensor& x, bool axes_from_input);
// The plan of reducing exactly `axes` (already normalized) of dims.
ReducePlan plan_reduction(const Dims& dims, const std::vector<int64_t>& axes, bool keepdims);

// Output 0 of a reduction: `dtype` (input 0's when kUndefined) and the
// reduced shape where the axes are known.
Status infer_reduce(InferContext& ctx, bool axes_from_input, DataType dtype);

// reduction_arg.cc: ArgMax, ArgMin.
void register_arg_reductions(Registry& r);

}  // namespace kiln::ops
