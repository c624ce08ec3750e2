// The Python backend: a model (config backend "python") whose
// <version>/model.py defines Triton's TritonPythonModel (initialize,
// execute, finalize), written against triton_python_backend_utils.
//
// Each instance runs its own Python process (python_backend/
// kiln_python_stub.py), so the model runs outside the server: a crash there
// fails the requests in flight with a clear error and the instance starts a
// fresh process for the next request, while the server and the other
// instances keep serving.
//
// Business logic scripting: during execute() the model may send "bls"
// frames (InferenceRequest.exec); the instance runs each on the named model
// through the server and answers with a "bls_response" frame before reading
// on, so one socket still carries one exchange at a time.
//
// IPC: one Unix stream socket pair per instance, carrying length-prefixed
// frames (a JSON header, then the tensors' bytes). A socket pair needs no
// names, cleanup or second synchronization channel, a dead peer shows up at
// once as EOF / EPIPE (so a crash is noticed on the request it kills), and
// the tensors cross in one copy each way, which is small next to Python's own
// per-request overhead for the pre/post-processing models this backend is for.
#pragma once

#include <memory>
#include <string>

#include "kiln/status.h"
#include "model_config.pb.h"
#include "server/backend.h"

namespace kiln::server {

// Where the stub lives (env KILN_PYTHON_BACKEND_DIR, else the source folder
// baked in at build time) and which interpreter runs it (env KILN_PYTHON_EXE,
// else the build's KILN_PYTHON).
std::string python_backend_dir();
std::string python_executable();

// Loads <model_dir>/<version>/model.py (or default_model_filename). The
// config must list its inputs and outputs. `infer` runs the model's
// InferenceRequest.exec() calls (business logic scripting); empty, they fail.
Result<std::shared_ptr<const ModelBackend>> load_python_backend(const std::string& model_dir, int64_t version,
                                                                const inference::ModelConfig& config,
                                                                InferFn infer = {});

}  // namespace kiln::server
