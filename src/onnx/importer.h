// ONNX import: ModelProto bytes or files to ir::Model.
//
// Handles opsets 7 to 28 of the default domain (plus ai.onnx.ml and the other
// domains the registry knows), initializers (raw and typed fields, sub-byte
// packing), external data files (resolved relative to the model's folder and
// confined to it), subgraphs (If/Loop/Scan bodies; outer-scope names become
// captures in every graph between the definition and the use), and static and
// symbolic shapes from value_info, followed by Kiln's own shape inference.
//
// Every malformed input returns an error naming the file and the node,
// initializer or input at fault; nothing aborts.
#pragma once

#include <string>
#include <string_view>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::onnx {

struct ImportOptions {
  bool infer_shapes = true;  // run ops' shape inference after import
  // Import nodes whose operator Kiln does not know (no kernel, no shape
  // inference) instead of failing; for tools that only inspect a model.
  // Program::compile still rejects such a graph.
  bool allow_unknown_ops = false;
};

inline constexpr int64_t kMinOpset = 1;  // ops older than opset 7 are served best-effort
inline constexpr int64_t kMaxOpset = 28;

// Reads and imports a .onnx file (at most 2 GiB; larger weights belong in
// external data files, which are looked up in the model's folder). A missing
// file is NotFound. The model's source_path is `path`.
Result<ir::Model> import_model_file(const std::string& path, const ImportOptions& options = {});
// Imports serialized ModelProto bytes. `base_dir` resolves external data
// ("" forbids external data); `source_name` names the model in messages and
// becomes the model's source_path.
//
// Every error message starts with "<source_name>: ".
Result<ir::Model> import_model_bytes(std::string_view bytes, const std::string& base_dir,
                                     const std::string& source_name, const ImportOptions& options = {});

}  // namespace kiln::onnx
