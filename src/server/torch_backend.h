// The PyTorch backend: a TorchScript model (config platform
// "pytorch_libtorch" or backend "pytorch") in <version>/model.pt, served as
// Triton's PyTorch backend serves it.
//
// libtorch lives in a plugin (torch_plugin/, built when Debian's
// libtorch-dev is present) that this file dlopens on the first such model,
// so the server needs no libtorch for anything else.
//
// Triton's conventions, kept so that its model repositories load unchanged:
// - the config must list inputs and outputs (there is no auto-complete);
// - an input maps to forward()'s argument of the same name when every
//   config input names one; else to argument <index> when every name has
//   the form <name>__<index>; else by its place in the config. A forward()
//   taking one Dict[str, Tensor] gets every input under its config name;
// - an output <name>__<index> is element <index> of what forward() returns
//   (a Tensor, a List[str], or a tuple/list of them); else outputs follow
//   the config's order;
// - TYPE_STRING inputs reach forward() as List[str] (one dimension, batch
//   included), and a List[str] output returns as BYTES;
// - parameters DISABLE_OPTIMIZED_EXECUTION, INFERENCE_MODE (on by default),
//   INTRA_OP_THREAD_COUNT and INTER_OP_THREAD_COUNT (process-wide in
//   libtorch, as in Triton).
// Each instance loads its own copy of the module and runs one batch at a time.
#pragma once

#include <memory>
#include <string>

#include "kiln/status.h"
#include "model_config.pb.h"
#include "server/backend.h"

namespace kiln::server {

// Where the plugin is looked for: $KILN_TORCH_BACKEND_LIB, else
// <bin>/../lib/kiln/libkiln_torch_backend.so beside the running executable,
// else the build tree's copy ("" when kiln was built without libtorch).
std::string torch_plugin_path();

// Loads <version_dir>/model.pt (or default_model_filename).
Result<std::shared_ptr<const ModelBackend>> load_torch_backend(const std::string& version_dir,
                                                               const inference::ModelConfig& config);

}  // namespace kiln::server
