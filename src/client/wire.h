// Tensors on the wire for the client: protocol datatype names, the binary
// layout shared by HTTP's binary tensor extension and gRPC's raw contents,
// and conversion to and from kiln::Tensor.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "kiln/client.h"

namespace kiln::client {

// "FP32" -> kFloat32, "BYTES" -> kString; nullopt for a name the protocol lacks.
std::optional<DataType> dtype_from_protocol(std::string_view name);
// kFloat32 -> "FP32"; "" for a type the protocol cannot carry.
std::string_view protocol_name(DataType dtype);
// Bytes per element on the wire; 0 for BYTES (variable) and unknown names.
size_t wire_element_size(std::string_view datatype);

// Checks that `data` is exactly what `datatype` and `shape` need (for BYTES:
// that the length prefixes cover the bytes and give numel elements).
Status check_wire_size(const std::string& what, const std::string& datatype, const Dims& shape, std::string_view data);

// Appends one BYTES element (4-byte little-endian length, then the bytes).
void append_bytes_element(std::string& out, std::string_view element);

}  // namespace kiln::client
