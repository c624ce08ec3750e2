// DataType: the element types of Kiln tensors.
//
// The numeric values equal ONNX's TensorProto.DataType so that the importer,
// the plan file and the Python binding convert by value. Storage: every type
// occupies element_size() bytes per element; the 4-bit and 2-bit types (int4,
// uint4, float4e2m1, int2, uint2) are stored unpacked, one element per byte
// (as ml_dtypes does in numpy), and packed only at the ONNX boundary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kiln {

enum class DataType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kComplex64 = 14,
  kComplex128 = 15,
  kBFloat16 = 16,
  kFloat8E4M3FN = 17,
  kFloat8E4M3FNUZ = 18,
  kFloat8E5M2 = 19,
  kFloat8E5M2FNUZ = 20,
  kUInt4 = 21,
  kInt4 = 22,
  kFloat4E2M1 = 23,
  kFloat8E8M0 = 24,
  kUInt2 = 25,
  kInt2 = 26,
};

inline constexpr int kMaxDataTypeValue = 26;

// Bytes per element in a Kiln tensor (strings: sizeof(std::string)); 0 for kUndefined.
size_t element_size(DataType t);
// ONNX's spelling: "float", "int64", "float16", "bfloat16", "float8e4m3fn", "string", ...
std::string_view data_type_name(DataType t);
// Inverse of data_type_name; also accepts "float32" and "fp32"-style aliases.
std::optional<DataType> data_type_from_name(std::string_view name);
// Valid if value names one of the enumerators above (kUndefined excluded).
std::optional<DataType> data_type_from_int(int64_t value);

bool is_floating(DataType t);  // fp16/bf16/fp32/fp64 and the float8/float4 types
bool is_integer(DataType t);   // signed and unsigned ints, int4/uint4/int2/uint2 (not bool)
bool is_signed(DataType t);
// Types stored with fewer than 8 bits per element in ONNX (packed at the boundary).
int bits_per_element(DataType t);

}  // namespace kiln
