#include "server/types.h"

#include <array>
#include <utility>

namespace kiln::server {
namespace {

struct TypeRow {
  DataType dtype;
  std::string_view protocol;
  inference::DataType config;
  size_t wire_size;
};

constexpr std::array<TypeRow, 14> kTypes = {{
    {DataType::kBool, "BOOL", inference::TYPE_BOOL, 1},
    {DataType::kUInt8, "UINT8", inference::TYPE_UINT8, 1},
    {DataType::kUInt16, "UINT16", inference::TYPE_UINT16, 2},
    {DataType::kUInt32, "UINT32", inference::TYPE_UINT32, 4},
    {DataType::kUInt64, "UINT64", inference::TYPE_UINT64, 8},
    {DataType::kInt8, "INT8", inference::TYPE_INT8, 1},
    {DataType::kInt16, "INT16", inference::TYPE_INT16, 2},
    {DataType::kInt32, "INT32", inference::TYPE_INT32, 4},
    {DataType::kInt64, "INT64", inference::TYPE_INT64, 8},
    {DataType::kFloat16, "FP16", inference::TYPE_FP16, 2},
    {DataType::kFloat32, "FP32", inference::TYPE_FP32, 4},
    {DataType::kFloat64, "FP64", inference::TYPE_FP64, 8},
    {DataType::kString, "BYTES", inference::TYPE_STRING, 0},
    {DataType::kBFloat16, "BF16", inference::TYPE_BF16, 2},
}};

const TypeRow* find_row(DataType dtype) {
  for (const TypeRow& row : kTypes) {
    if (row.dtype == dtype) return &row;
  }
  return nullptr;
}

}  // namespace

std::optional<DataType> dtype_from_protocol(std::string_view name) {
  for (const TypeRow& row : kTypes) {
    if (row.protocol == name) return row.dtype;
  }
  return std::nullopt;
}

std::string_view protocol_dtype_name(DataType dtype) {
  const TypeRow* row = find_row(dtype);
  return row ? row->protocol : std::string_view();
}

std::optional<DataType> dtype_from_config(inference::DataType dtype) {
  for (const TypeRow& row : kTypes) {
    if (row.config == dtype) return row.dtype;
  }
  return std::nullopt;
}

inference::DataType config_dtype(DataType dtype) {
  const TypeRow* row = find_row(dtype);
  return row ? row->config : inference::TYPE_INVALID;
}

size_t wire_element_size(DataType dtype) {
  const TypeRow* row = find_row(dtype);
  return row ? row->wire_size : 0;
}

std::string shape_string(const std::vector<int64_t>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) out += ",";
    out += std::to_string(dims[i]);
  }
  return out + "]";
}

}  // namespace kiln::server
