// kiln::Session: load a model and run it. The small public C++ API.
//
//   auto session = kiln::Session::open("model.onnx");
//   if (!session.is_ok()) { ... session.status().message() ... }
//   auto out = (*session)->run({{"input", tensor}});
//
// A Session is thread-safe: concurrent run() calls are allowed and each uses
// its own execution state.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/data_type.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

class Datum;  // src/core/datum.h: a tensor, a sequence of tensors or an optional
namespace ir {
struct Model;  // src/ir/graph.h
}

struct SessionOptions {
  int threads = 0;  // intra-op threads; 0 uses every hardware thread
  // Optimizer passes run on the model before it is compiled: empty runs none,
  // {"all"} the default pipeline, {"NAME"} the default pipeline up to and
  // including the pass NAME (for comparing outputs after each pass).
  std::vector<std::string> passes = {};
  // An ONNX model is built into a plan when opened (optimizer passes, one
  // kernel per node, memory plan), with default build options; false runs it
  // on the reference interpreter as imported. Plan files always run as built.
  // Explicit `passes` (above) run the reference interpreter after them instead.
  // A model with dynamic input dims runs each new combination of input
  // shapes on a plan built (and timed) for exactly those shapes on its first
  // run, for the first eight combinations; later ones run on a plan built
  // for any shape without timing.
  bool build = true;
  // Time the candidate kernels of nodes that have several (the environment
  // variable KILN_SKIP_TIMING=1 also turns this off); false takes the first.
  bool time_tactics = true;
};

// The optimizer's default pipeline, in order (the names SessionOptions::passes takes).
std::vector<std::string> optimizer_pass_names();

// One node of the graph a session runs (after any optimizer passes).
struct LayerInfo {
  std::string name;
  std::string op;                       // "Conv", or "kiln.FusedConv" outside the default domain
  std::vector<std::string> fused_from;  // the source nodes a fused node replaced
};

// What kind of value an input or output carries.
enum class IoKind { kTensor, kSequence, kOptional, kMap, kUnknown };

// One model input or output. dims[i] is -1 when unknown; dim_names[i] holds the
// symbol of a named dynamic dim ("batch") and is empty otherwise. For a
// sequence or optional, dtype/dims describe the tensor inside (when known).
struct IoInfo {
  std::string name;
  IoKind kind = IoKind::kTensor;
  std::string type;  // ONNX Runtime's spelling: "tensor(float)", "seq(tensor(int64))", "optional(tensor(float))"
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> dims;
  std::vector<std::string> dim_names;
  bool rank_known = true;
  bool optional = false;  // an input with a default value
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using NamedData = std::vector<std::pair<std::string, Datum>>;

class Session {
 public:
  // Opens an ONNX model or a plan file (told apart by the plan's magic bytes).
  static Result<std::unique_ptr<Session>> open(const std::string& path, const SessionOptions& options = {});
  // From serialized ONNX bytes; `name` is used in messages.
  static Result<std::unique_ptr<Session>> from_bytes(std::string_view bytes, const SessionOptions& options = {},
                                                     const std::string& name = "<bytes>");
  // From an already-imported model (tests, tools that build graphs directly).
  static Result<std::unique_ptr<Session>> from_model(ir::Model model, const SessionOptions& options = {});
  ~Session();

  const std::vector<IoInfo>& inputs() const;
  const std::vector<IoInfo>& outputs() const;
  // The opset of the default ONNX domain the model imports.
  int64_t opset() const;
  // The top-level nodes of the graph this session runs, in execution order.
  std::vector<LayerInfo> layers() const;

  // Runs the model; `output_names` empty returns every output in model order.
  // Outputs never share storage with the feeds or the model's weights.
  Result<NamedTensors> run(const NamedTensors& feeds, const std::vector<std::string>& output_names = {}) const;
  // Like run() for inputs and outputs of any kind (sequences, optionals);
  // needs src/core/datum.h. An optional input may be fed its content or left out.
  Result<NamedData> run_data(const NamedData& feeds, const std::vector<std::string>& output_names = {}) const;

  struct Impl;

 private:
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
