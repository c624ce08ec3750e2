// A small, strict reader and writer of numpy's .npy files.
//
// Reads format versions 1, 2 and 3 with fortran_order False, little-endian
// (or byte-order-free) dtypes: bool, int8..int64, uint8..uint64, float16,
// float32, float64, complex64, complex128, fixed-width unicode ('<U') and
// bytes ('|S') strings (to DataType::kString). Object arrays (pickled),
// Fortran order, big-endian data, truncated files and trailing bytes are
// errors naming the file. Writes version 1 headers (2 when the header is
// long); strings are written as '<U' when valid UTF-8, '|S' otherwise.
#pragma once

#include <string>
#include <string_view>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::cli {

// Parses .npy bytes; `name` is used in messages.
Result<Tensor> parse_npy(std::string_view bytes, const std::string& name);
Result<Tensor> read_npy(const std::string& path);

// Serializes a tensor of a type .npy can hold (everything parse_npy reads).
Result<std::string> format_npy(const Tensor& tensor);
Status write_npy(const std::string& path, const Tensor& tensor);

}  // namespace kiln::cli
