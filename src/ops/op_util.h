// Helpers shared by reference kernels and shape inference: broadcasting,
// axes, integer inputs, element-type dispatch and tensor casts.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/float_types.h"
#include "core/shape.h"
#include "kiln/tensor.h"

namespace kiln::ops {

// Numpy-style (multidirectional) broadcasting of two or more shapes.
Result<Dims> broadcast_dims(const Dims& a, const Dims& b);
Result<Dims> broadcast_dims(std::span<const Dims> shapes);

// Row-major strides in elements.
std::vector<int64_t> strides_of(const Dims& dims);
// Strides for reading a tensor of dims `in` broadcast to dims `out` (0 on broadcast axes).
// Precondition: `in` broadcasts to `out`.
std::vector<int64_t> broadcast_strides(const Dims& in, const Dims& out);

// Walks the elements of an output shape in row-major order, keeping the
// element offset of each of several broadcast inputs.
class BroadcastIterator {
 public:
  BroadcastIterator(const Dims& out, const std::vector<Dims>& inputs);
  int64_t offset(size_t input) const { return offsets_[input]; }
  void next();  // advances to the next output element

 private:
  Dims out_;
  std::vector<std::vector<int64_t>> strides_;
  std::vector<int64_t> index_;
  std::vector<int64_t> offsets_;
};

// Maps a possibly negative axis into [0, rank); error if outside [-rank, rank).
Result<int64_t> normalize_axis(int64_t axis, int64_t rank);
// Normalizes a list of axes; error on a duplicate or out-of-range axis.
Result<std::vector<int64_t>> normalize_axes(const std::vector<int64_t>& axes, int64_t rank);

// Reads an int32 or int64 tensor (any shape) as int64 values.
Result<std::vector<int64_t>> to_int64_vector(const Tensor& t);
// Reads any numeric tensor with one element as a double.
Result<double> to_scalar_double(const Tensor& t);

// Converts every element to `to` with ONNX Cast semantics for the standard
// types (numeric, bool, float16, bfloat16, string). Float to int truncates
// toward zero; NaN/out-of-range float to int is undefined in ONNX, here it saturates.
Result<Tensor> cast_tensor(const Tensor& t, DataType to);
// Numeric tensor as float32 / float64 (copy unless it already is that type).
Result<Tensor> to_float32(const Tensor& t);
Result<Tensor> to_float64(const Tensor& t);

// Calls f(T{}) with the C++ type of `dtype` for the numeric types:
// float, double, Float16, BFloat16, int8..int64, uint8..uint64, and bool
// where `with_bool`. Other types: returns an Unimplemented error naming `what`.
template <class F>
Status visit_numeric(DataType dtype, const std::string& what, F&& f, bool with_bool = false) {
  switch (dtype) {
    case DataType::kFloat32: return f(float{});
    case DataType::kFloat64: return f(double{});
    case DataType::kFloat16: return f(Float16{});
    case DataType::kBFloat16: return f(BFloat16{});
    case DataType::kInt8: return f(int8_t{});
    case DataType::kInt16: return f(int16_t{});
    case DataType::kInt32: return f(int32_t{});
    case DataType::kInt64: return f(int64_t{});
    case DataType::kUInt8: return f(uint8_t{});
    case DataType::kUInt16: return f(uint16_t{});
    case DataType::kUInt32: return f(uint32_t{});
    case DataType::kUInt64: return f(uint64_t{});
    case DataType::kBool:
      if (with_bool) return f(bool{});
      break;
    default:
      break;
  }
  return unimplemented("{}: element type {} is not supported", what, data_type_name(dtype));
}

// The arithmetic type used to compute on T: float for the 16-bit floats, T otherwise.
template <class T>
using compute_type_t = std::conditional_t<std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>, float, T>;

// The DataType of a C++ element type.
template <class T>
constexpr DataType data_type_of() {
  if constexpr (std::is_same_v<T, float>) return DataType::kFloat32;
  else if constexpr (std::is_same_v<T, double>) return DataType::kFloat64;
  else if constexpr (std::is_same_v<T, Float16>) return DataType::kFloat16;
  else if constexpr (std::is_same_v<T, BFloat16>) return DataType::kBFloat16;
  else if constexpr (std::is_same_v<T, int8_t>) return DataType::kInt8;
  else if constexpr (std::is_same_v<T, int16_t>) return DataType::kInt16;
  else if constexpr (std::is_same_v<T, int32_t>) return DataType::kInt32;
  else if constexpr (std::is_same_v<T, int64_t>) return DataType::kInt64;
  else if constexpr (std::is_same_v<T, uint8_t>) return DataType::kUInt8;
  else if constexpr (std::is_same_v<T, uint16_t>) return DataType::kUInt16;
  else if constexpr (std::is_same_v<T, uint32_t>) return DataType::kUInt32;
  else if constexpr (std::is_same_v<T, uint64_t>) return DataType::kUInt64;
  else if constexpr (std::is_same_v<T, bool>) return DataType::kBool;
  else if constexpr (std::is_same_v<T, std::string>) return DataType::kString;
  else return DataType::kUndefined;
}

// Static (shape inference) counterpart of broadcast_dims: numpy broadcasting
// of possibly symbolic shapes. A dim is known where the inputs decide it (a
// known dim > 1 wins over an unknown one, equal symbols stay that symbol);
// the result has unknown rank if any input has. Fails only when two known
// dims differ and neither is 1.
Result<Shape> broadcast_shapes(const Shape& a, const Shape& b);
Result<Shape> broadcast_shapes(std::span<const Shape> shapes);

}  // namespace kiln::ops

namespace kiln::ops {

// Copies `count` consecutive elements from src (starting at element src_offset)
// to dst (starting at dst_offset). Works for every element type: strings are
// assigned, everything else is copied as element_size() bytes per element.
// Preconditions: same dtype, both ranges in bounds.
void copy_elements(const Tensor& src, int64_t src_offset, Tensor& dst, int64_t dst_offset, int64_t count);

// A new tensor of `dims` whose element i is src's element src_index[i]: the
// generic data-movement kernel behind Transpose, Expand, Tile, Slice, Gather...
// Precondition: every index is in [0, src.numel()) and src_index.size() == numel(dims).
Result<Tensor> take_elements(const Tensor& src, const std::vector<int64_t>& src_index, Dims dims);

// For each element of `dims` in row-major order: base + sum_i coord[i] * strides[i].
// Strides may be negative or zero (reversed or broadcast axes).
std::vector<int64_t> strided_indices(const Dims& dims, const std::vector<int64_t>& strides, int64_t base = 0);

// Reads a one-element int32/int64 tensor (any rank) as int64.
Result<int64_t> to_int64_scalar(const Tensor& t);

}  // namespace kiln::ops
