#include "kiln/data_type.h"

#include <array>
#include <string>


namespace kiln {
namespace {

struct TypeInfo {
  DataType type;
  std::string_view name;
  size_t size;
  int bits;
};

constexpr std::array<TypeInfo, kMaxDataTypeValue + 1> kTypes = {{
    {DataType::kUndefined, "undefined", 0, 0},
    {DataType::kFloat32, "float", 4, 32},
    {DataType::kUInt8, "uint8", 1, 8},
    {DataType::kInt8, "int8", 1, 8},
    {DataType::kUInt16, "uint16", 2, 16},
    {DataType::kInt16, "int16", 2, 16},
    {DataType::kInt32, "int32", 4, 32},
    {DataType::kInt64, "int64", 8, 64},
    {DataType::kString, "string", sizeof(std::string), 0},
    {DataType::kBool, "bool", 1, 8},
    {DataType::kFloat16, "float16", 2, 16},
    {DataType::kFloat64, "double", 8, 64},
    {DataType::kUInt32, "uint32", 4, 32},
    {DataType::kUInt64, "uint64", 8, 64},
    {DataType::kComplex64, "complex64", 8, 64},
    {DataType::kComplex128, "complex128", 16, 128},
    {DataType::kBFloat16, "bfloat16", 2, 16},
    {DataType::kFloat8E4M3FN, "float8e4m3fn", 1, 8},
    {DataType::kFloat8E4M3FNUZ, "float8e4m3fnuz", 1, 8},
    {DataType::kFloat8E5M2, "float8e5m2", 1, 8},
    {DataType::kFloat8E5M2FNUZ, "float8e5m2fnuz", 1, 8},
    {DataType::kUInt4, "uint4", 1, 4},
    {DataType::kInt4, "int4", 1, 4},
    {DataType::kFloat4E2M1, "float4e2m1", 1, 4},
    {DataType::kFloat8E8M0, "float8e8m0", 1, 8},
    {DataType::kUInt2, "uint2", 1, 2},
    {DataType::kInt2, "int2", 1, 2},
}};

static_assert([] {
  for (size_t i = 0; i < kTypes.size(); ++i) {
    if (static_cast<size_t>(kTypes[i].type) != i) return false;
  }
  return true;
}(), "kTypes must be indexed by DataType value");

const TypeInfo& info(DataType t) {
  auto i = static_cast<size_t>(t);
  return i < kTypes.size() ? kTypes[i] : kTypes[0];
}

}  // namespace

size_t element_size(DataType t) { return info(t).size; }
std::string_view data_type_name(DataType t) { return info(t).name; }
int bits_per_element(DataType t) { return info(t).bits; }

std::optional<DataType> data_type_from_name(std::string_view name) {
  for (const auto& ti : kTypes) {
    if (ti.type != DataType::kUndefined && ti.name == name) return ti.type;
  }
  struct Alias {
    std::string_view name;
    DataType type;
  };
  static constexpr Alias kAliases[] = {
      {"float32", DataType::kFloat32}, {"fp32", DataType::kFloat32},
      {"float64", DataType::kFloat64}, {"fp64", DataType::kFloat64},
      {"fp16", DataType::kFloat16},    {"half", DataType::kFloat16},
      {"bf16", DataType::kBFloat16},   {"boolean", DataType::kBool},
  };
  for (const auto& a : kAliases) {
    if (a.name == name) return a.type;
  }
  return std::nullopt;
}

std::optional<DataType> data_type_from_int(int64_t value) {
  if (value <= 0 || value > kMaxDataTypeValue) return std::nullopt;
  return static_cast<DataType>(value);
}

bool is_floating(DataType t) {
  switch (t) {
    case DataType::kFloat16:
    case DataType::kBFloat16:
    case DataType::kFloat32:
    case DataType::kFloat64:
    case DataType::kFloat8E4M3FN:
    case DataType::kFloat8E4M3FNUZ:
    case DataType::kFloat8E5M2:
    case DataType::kFloat8E5M2FNUZ:
    case DataType::kFloat8E8M0:
    case DataType::kFloat4E2M1:
      return true;
    default:
      return false;
  }
}

bool is_integer(DataType t) {
  switch (t) {
    case DataType::kInt8:
    case DataType::kInt16:
    case DataType::kInt32:
    case DataType::kInt64:
    case DataType::kUInt8:
    case DataType::kUInt16:
    case DataType::kUInt32:
    case DataType::kUInt64:
    case DataType::kInt4:
    case DataType::kUInt4:
    case DataType::kInt2:
    case DataType::kUInt2:
      return true;
    default:
      return false;
  }
}

bool is_signed(DataType t) {
  switch (t) {
    case DataType::kInt8:
    case DataType::kInt16:
    case DataType::kInt32:
    case DataType::kInt64:
    case DataType::kInt4:
    case DataType::kInt2:
      return true;
    default:
      return is_floating(t);
  }
}

}  // namespace kiln
