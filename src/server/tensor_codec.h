// Tensors on the wire: the binary layout shared by HTTP's binary tensor
// extension and gRPC's raw_input_contents / raw_output_contents
// (little-endian, row-major, packed; BOOL one byte; BYTES elements as a
// 4-byte little-endian length followed by the bytes).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::server {

// Checks a request shape (every dim >= 0, element count within limits).
Result<int64_t> checked_request_numel(const std::string& name, const std::vector<int64_t>& shape);

// Decodes `bytes` as input `name` of `dtype` and `shape`; the size must be exact.
Result<Tensor> tensor_from_raw(const std::string& name, DataType dtype, const std::vector<int64_t>& shape,
                               std::string_view bytes);

// Appends `t`'s wire bytes to `out`; returns how many were appended.
size_t append_raw(const Tensor& t, std::string& out);

}  // namespace kiln::server
