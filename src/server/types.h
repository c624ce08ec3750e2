// Datatype names of the KServe v2 protocol ("FP32", "BYTES") and of Triton's
// model configuration (TYPE_FP32, TYPE_STRING), mapped to Kiln's DataType.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/data_type.h"
#include "model_config.pb.h"

namespace kiln::server {

// "FP32" -> kFloat32, "BYTES" -> kString; nullopt for an unknown name.
std::optional<DataType> dtype_from_protocol(std::string_view name);
// kFloat32 -> "FP32"; "" for a type the protocol cannot carry (complex, float8...).
std::string_view protocol_dtype_name(DataType dtype);

std::optional<DataType> dtype_from_config(inference::DataType dtype);
// TYPE_INVALID for a type the protocol cannot carry.
inference::DataType config_dtype(DataType dtype);

// Bytes per element on the wire (little-endian, packed); 0 for BYTES (variable).
size_t wire_element_size(DataType dtype);

// "[1,-1,3]"
std::string shape_string(const std::vector<int64_t>& dims);

}  // namespace kiln::server
