// Split's output sizes, shared by the reference kernel (tensor_ops.cc) and
// the CPU backend's own.split, so both read the node the same way.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/graph.h"
#include "kiln/tensor.h"
#include "kiln/status.h"

namespace kiln::ops {

// Split's explicit sizes at opset < 13: the attribute; false when absent.
bool split_from_attr(const ir::Node& node, std::vector<int64_t>& split);

// The sizes of Split's outputs along an axis of size `dim`. `split` holds the
// explicit sizes (attribute before 13, input from 13) when given; otherwise
// the axis is split into equal parts, the last one smaller under num_outputs
// (opset 18). Errors name what does not fit.
Result<std::vector<int64_t>> split_sizes(const ir::Node& node, int64_t dim, const std::vector<int64_t>* split);

// split_sizes with the explicit sizes read the way the kernels read them: the
// attribute before opset 13, else `split_input` (Split's input 1; nullptr when
// absent) at opset >= 13 or < 2.
Result<std::vector<int64_t>> split_sizes_for(const ir::Node& node, int64_t dim, const Tensor* split_input);

}  // namespace kiln::ops
