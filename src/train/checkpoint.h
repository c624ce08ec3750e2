// Checkpoint files: named tensors (weights, running statistics, optimizer
// state, loss-scaler state) in one little-endian binary file.
//
//   "KILNCKPT" u32 version=1 u64 count
//   count x { u32 name_len, name, i32 dtype, u32 rank, i64 dims[rank], u64 nbytes, bytes }
//
// Loading validates every length against the file and the dtype/dims
// against nbytes; a truncated or corrupt file is an error naming the entry.
#pragma once

#include <map>
#include <string>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::train {

using TensorMap = std::map<std::string, Tensor>;

Status save_tensors(const std::string& path, const TensorMap& tensors);
Result<TensorMap> load_tensors(const std::string& path);

}  // namespace kiln::train
