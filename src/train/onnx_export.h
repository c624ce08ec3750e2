// Export of a (trained) graph to an ONNX ModelProto: nodes as they are,
// every constant an initializer, graph inputs and outputs typed. The training
// graph is an inference graph (BatchNormalization reads its running
// statistics, Dropout is an identity at inference), so the export is the
// inference model Kiln and onnxruntime both load.
#pragma once

#include <string>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::train {

// Serialized ModelProto bytes. Fails on what ONNX cannot express (subgraph
// attributes, sequence-typed values).
Result<std::string> export_onnx_bytes(const ir::Model& model);
Status export_onnx(const ir::Model& model, const std::string& path);

}  // namespace kiln::train
