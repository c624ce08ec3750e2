// libFuzzer target: arbitrary bytes through the ONNX importer and, when the
// import succeeds, the interpreter's compile step. Any crash, sanitizer report
// or abort is a bug: malformed models must come back as error Statuses.
//
// Unknown operators are allowed so that the fuzzer reaches every part of the
// importer (subgraphs, functions, attributes) even on builds with few ops
// registered; Program::compile then rejects them as a user would see.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/logging.h"
#include "exec/program.h"
#include "onnx/importer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    kiln::set_log_level("off");
    return true;
  }();
  (void)quiet;
  kiln::onnx::ImportOptions options;
  options.allow_unknown_ops = true;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto model = kiln::onnx::import_model_bytes(bytes, "", "fuzz.onnx", options);
  if (!model.is_ok()) return 0;
  auto program = kiln::exec::Program::compile(*model->graph);
  (void)program;
  return 0;
}
