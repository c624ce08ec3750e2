// Placeholder until the importer lands.
#include "onnx/importer.h"

#include "core/error.h"

namespace kiln::onnx {

Result<ir::Model> import_model_file(const std::string& path, const ImportOptions&) {
  return unimplemented("{}: ONNX import is not implemented yet", path);
}

Result<ir::Model> import_model_bytes(std::string_view, const std::string&, const std::string& source_name,
                                     const ImportOptions&) {
  return unimplemented("{}: ONNX import is not implemented yet", source_name);
}

}  // namespace kiln::onnx
