// ONNX export: an ir::Model back to a ModelProto file, for `kiln quantize`
// (the Q/DQ model it writes is meant for other runtimes to load).
//
// Writes the top-level graph: nodes (domain, name, attributes), constants as
// initializers (raw little-endian data; strings in string_data), graph inputs
// and outputs with their types, and the opset imports. Not exported (an error
// naming the node or value): subgraph attributes (If/Loop/Scan bodies),
// sequence/optional/map values, sub-byte tensor types.
#pragma once

#include <string>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::onnx {

Result<std::string> export_model_bytes(const ir::Model& model);
Status export_model_file(const ir::Model& model, const std::string& path);

}  // namespace kiln::onnx
