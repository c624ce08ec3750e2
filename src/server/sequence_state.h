// The tensors a sequence batcher adds to a stateful model's inputs: control
// inputs (Triton's CONTROL_SEQUENCE_START / READY / END / CORRID) and
// implicit state (a model output carried into an input of the sequence's
// next request). Parsed and checked against the model once, at load time.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"
#include "model_config.pb.h"
#include "server/backend.h"
#include "server/inference.h"

namespace kiln::server {

struct ControlSpec {
  enum class Kind { kStart, kReady, kEnd, kCorrId };
  std::string input;  // the model input it feeds
  Kind kind = Kind::kStart;
  DataType dtype = DataType::kUndefined;
  // START / READY / END: the values for false and true (one element each).
  Tensor false_value, true_value;
};

struct StateSpec {
  std::string input;   // model input fed with the state
  std::string output;  // model output that becomes the next state
  DataType dtype = DataType::kUndefined;
  // The state of a new sequence, without the batch dimension.
  Tensor initial;
};

// Per-row flags of one execution, in batch order.
struct ControlRow {
  bool start = false;
  bool end = false;
  CorrelationId id;
};

class SequenceSpecs {
 public:
  // Reads the config's sequence_batching control inputs and states and
  // checks them against the model's inputs and outputs. `model_dir` holds
  // the initial_state/ files.
  static Result<SequenceSpecs> parse(const inference::ModelConfig& config, const ModelBackend& backend,
                                     const std::string& model_dir);

  const std::vector<ControlSpec>& controls() const { return controls_; }
  const std::vector<StateSpec>& states() const { return states_; }

  // The control tensors of one execution: shape [rows, 1] when `batched`,
  // else [1]. Fails when a correlation id does not fit the CORRID type.
  Result<NamedTensors> control_tensors(const std::vector<ControlRow>& rows, bool batched) const;
  // The initial state of a new sequence: [1, dims...] when `batched`.
  std::vector<Tensor> initial_states(bool batched) const;

 private:
  std::vector<ControlSpec> controls_;
  std::vector<StateSpec> states_;
};

// Model inputs the sequence batcher fills (control and state inputs) and
// outputs it consumes (state outputs): they are not part of the config's
// input / output lists.
std::set<std::string> sequence_internal_inputs(const inference::ModelConfig& config);
std::set<std::string> sequence_internal_outputs(const inference::ModelConfig& config);

// Checks the sequence_batching section on its own (kinds, names, strategy).
Status check_sequence_config(const inference::ModelConfig& config);

}  // namespace kiln::server
