#include "server/sequence_state.h"

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "server/batching.h"
#include "server/tensor_codec.h"
#include "server/types.h"

namespace kiln::server {
namespace {

using SB = inference::ModelSequenceBatching;

const TensorSpec* find(const std::vector<TensorSpec>& specs, const std::string& name) {
  for (const TensorSpec& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// The false/true pair of a START/READY/END control as two one-element tensors.
Status fill_flag_values(const SB::Control& c, const std::string& input, ControlSpec& spec) {
  int given = (c.int32_false_true_size() > 0) + (c.fp32_false_true_size() > 0) + (c.bool_false_true_size() > 0);
  if (given != 1) {
    return invalid_argument(
        "control input '{}': exactly one of int32_false_true, fp32_false_true, bool_false_true must be given", input);
  }
  auto pair = [&](auto& field, DataType dtype, auto tag) -> Status {
    using T = decltype(tag);
    if (field.size() != 2) {
      return invalid_argument("control input '{}': the false/true list must have 2 values, has {}", input, field.size());
    }
    spec.dtype = dtype;
    spec.false_value = Tensor::empty(dtype, {1});
    spec.true_value = Tensor::empty(dtype, {1});
    spec.false_value.data<T>()[0] = static_cast<T>(field.Get(0));
    spec.true_value.data<T>()[0] = static_cast<T>(field.Get(1));
    return Status::ok();
  };
  if (c.int32_false_true_size() > 0) return pair(c.int32_false_true(), DataType::kInt32, int32_t{});
  if (c.fp32_false_true_size() > 0) return pair(c.fp32_false_true(), DataType::kFloat32, float{});
  return pair(c.bool_false_true(), DataType::kBool, bool{});
}

Result<Tensor> read_initial_state(const SB::State& state, const std::string& model_dir) {
  DataType dtype = *dtype_from_config(state.data_type());
  const SB::InitialState* init = state.initial_state_size() > 0 ? &state.initial_state(0) : nullptr;
  std::vector<int64_t> dims(state.dims().begin(), state.dims().end());
  if (init != nullptr) {
    dims.assign(init->dims().begin(), init->dims().end());
    if (init->data_type() != state.data_type()) {
      return invalid_argument("state '{}': initial_state data_type differs from the state's", state.input_name());
    }
  }
  for (int64_t d : dims) {
    if (d < 0) {
      return invalid_argument("state '{}': dims {} must be fixed (or give initial_state with fixed dims)",
                              state.input_name(), shape_string(dims));
    }
  }
  KILN_ASSIGN_OR_RETURN(int64_t numel, checked_request_numel(state.input_name(), dims));
  (void)numel;
  if (init == nullptr || init->state_data_case() != SB::InitialState::kDataFile) {
    return Tensor::allocate(dtype, dims);  // zeros (empty strings for BYTES)
  }
  const std::string& file = init->data_file();
  if (file.empty() || file.find('/') != std::string::npos || file == "..") {
    return invalid_argument("state '{}': initial_state data_file '{}' must be a file name in initial_state/",
                            state.input_name(), file);
  }
  std::filesystem::path path = std::filesystem::path(model_dir) / "initial_state" / file;
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("state '{}': initial state file '{}' not found", state.input_name(), path.string());
  std::stringstream bytes;
  bytes << in.rdbuf();
  return tensor_from_raw(state.input_name(), dtype, dims, bytes.str());
}

}  // namespace

std::set<std::string> sequence_internal_inputs(const inference::ModelConfig& config) {
  std::set<std::string> out;
  if (!config.has_sequence_batching()) return out;
  for (const auto& ci : config.sequence_batching().control_input()) out.insert(ci.name());
  for (const auto& st : config.sequence_batching().state()) out.insert(st.input_name());
  return out;
}

std::set<std::string> sequence_internal_outputs(const inference::ModelConfig& config) {
  std::set<std::string> out;
  if (!config.has_sequence_batching()) return out;
  for (const auto& st : config.sequence_batching().state()) out.insert(st.output_name());
  return out;
}

Status check_sequence_config(const inference::ModelConfig& config) {
  const SB& sb = config.sequence_batching();
  std::set<std::string> names;
  for (const auto& ci : sb.control_input()) {
    if (ci.name().empty()) return invalid_argument("sequence_batching: a control_input has no name");
    if (!names.insert(ci.name()).second) {
      return invalid_argument("sequence_batching: control input '{}' is given twice", ci.name());
    }
    if (ci.control_size() != 1) {
      return invalid_argument("sequence_batching: control input '{}' must have exactly one control, has {}", ci.name(),
                              ci.control_size());
    }
  }
  for (const auto& st : sb.state()) {
    if (st.input_name().empty() || st.output_name().empty()) {
      return invalid_argument("sequence_batching: a state needs both input_name and output_name");
    }
    if (!names.insert(st.input_name()).second) {
      return invalid_argument("sequence_batching: input '{}' is used by two controls or states", st.input_name());
    }
    if (!dtype_from_config(st.data_type())) {
      return invalid_argument("sequence_batching: state '{}' has an unsupported data_type", st.input_name());
    }
    if (st.initial_state_size() > 1) {
      return invalid_argument("sequence_batching: state '{}' has more than one initial_state", st.input_name());
    }
  }
  for (const auto& in : config.input()) {
    if (names.count(in.name())) {
      return invalid_argument("sequence_batching: '{}' is filled by the sequence batcher and must not be a config input",
                              in.name());
    }
  }
  if (sb.has_oldest()) {
    for (int32_t p : sb.oldest().preferred_batch_size()) {
      if (p < 1 || p > std::max(1, config.max_batch_size())) {
        return invalid_argument("sequence_batching: preferred_batch_size {} must be in [1, max_batch_size {}]", p,
                                config.max_batch_size());
      }
    }
    if (sb.oldest().max_candidate_sequences() < 0) {
      return invalid_argument("sequence_batching: max_candidate_sequences must be >= 0");
    }
  }
  return Status::ok();
}

Result<SequenceSpecs> SequenceSpecs::parse(const inference::ModelConfig& config, const ModelBackend& backend,
                                           const std::string& model_dir) {
  SequenceSpecs specs;
  const SB& sb = config.sequence_batching();
  const bool batched = config.max_batch_size() > 0;
  for (const auto& ci : sb.control_input()) {
    const SB::Control& c = ci.control(0);
    const TensorSpec* model_in = find(backend.inputs(), ci.name());
    if (model_in == nullptr) {
      return invalid_argument("sequence_batching: control input '{}' is not an input of the model", ci.name());
    }
    ControlSpec spec;
    spec.input = ci.name();
    switch (c.kind()) {
      case SB::Control::CONTROL_SEQUENCE_START:
        spec.kind = ControlSpec::Kind::kStart;
        break;
      case SB::Control::CONTROL_SEQUENCE_READY:
        spec.kind = ControlSpec::Kind::kReady;
        break;
      case SB::Control::CONTROL_SEQUENCE_END:
        spec.kind = ControlSpec::Kind::kEnd;
        break;
      case SB::Control::CONTROL_SEQUENCE_CORRID:
        spec.kind = ControlSpec::Kind::kCorrId;
        break;
      default:
        return invalid_argument("control input '{}': unknown control kind {}", ci.name(), static_cast<int>(c.kind()));
    }
    if (spec.kind == ControlSpec::Kind::kCorrId) {
      std::optional<DataType> dt = dtype_from_config(c.data_type());
      if (!dt || (*dt != DataType::kUInt64 && *dt != DataType::kInt64 && *dt != DataType::kUInt32 &&
                  *dt != DataType::kInt32 && *dt != DataType::kString)) {
        return invalid_argument("control input '{}': CORRID data_type must be TYPE_UINT64, TYPE_INT64, TYPE_UINT32, "
                                "TYPE_INT32 or TYPE_STRING",
                                ci.name());
      }
      spec.dtype = *dt;
    } else {
      KILN_RETURN_IF_ERROR(fill_flag_values(c, ci.name(), spec));
    }
    if (model_in->dtype != spec.dtype) {
      return invalid_argument("control input '{}': the control gives {} but the model input is {}", ci.name(),
                              data_type_name(spec.dtype), data_type_name(model_in->dtype));
    }
    specs.controls_.push_back(std::move(spec));
  }
  for (const auto& st : sb.state()) {
    const TensorSpec* in = find(backend.inputs(), st.input_name());
    const TensorSpec* out = find(backend.outputs(), st.output_name());
    if (in == nullptr) return invalid_argument("state input '{}' is not an input of the model", st.input_name());
    if (out == nullptr) return invalid_argument("state output '{}' is not an output of the model", st.output_name());
    StateSpec spec;
    spec.input = st.input_name();
    spec.output = st.output_name();
    spec.dtype = *dtype_from_config(st.data_type());
    if (in->dtype != spec.dtype || out->dtype != spec.dtype) {
      return invalid_argument("state '{}' -> '{}': data_type {} does not match the model ({} / {})", st.input_name(),
                              st.output_name(), data_type_name(spec.dtype), data_type_name(in->dtype),
                              data_type_name(out->dtype));
    }
    KILN_ASSIGN_OR_RETURN(spec.initial, read_initial_state(st, model_dir));
    if (in->rank_known && static_cast<size_t>(spec.initial.rank() + (batched ? 1 : 0)) != in->dims.size()) {
      return invalid_argument("state '{}': dims {} (plus the batch dim: {}) do not match the model input's rank {}",
                              st.input_name(), shape_string({spec.initial.dims().begin(), spec.initial.dims().end()}),
                              batched ? "yes" : "no", in->dims.size());
    }
    specs.states_.push_back(std::move(spec));
  }
  return specs;
}

Result<NamedTensors> SequenceSpecs::control_tensors(const std::vector<ControlRow>& rows, bool batched) const {
  NamedTensors out;
  const int64_t n = static_cast<int64_t>(rows.size());
  Dims dims = batched ? Dims{n, 1} : Dims{1};
  for (const ControlSpec& c : controls_) {
    KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(c.dtype, dims));
    for (int64_t r = 0; r < (batched ? n : 1); ++r) {
      const ControlRow& row = rows[static_cast<size_t>(r)];
      if (c.kind == ControlSpec::Kind::kCorrId) {
        const CorrelationId& id = row.id;
        if (c.dtype == DataType::kString) {
          t.data<std::string>()[r] = id.is_string ? id.text : std::to_string(id.number);
          continue;
        }
        if (id.is_string) {
          return invalid_argument("sequence id {} is a string but control input '{}' takes an integer correlation id",
                                  id.str(), c.input);
        }
        switch (c.dtype) {
          case DataType::kUInt64:
            t.data<uint64_t>()[r] = id.number;
            break;
          case DataType::kInt64:
            t.data<int64_t>()[r] = static_cast<int64_t>(id.number);
            break;
          case DataType::kUInt32:
            if (id.number > UINT32_MAX) return invalid_argument("sequence id {} does not fit '{}' (UINT32)", id.str(), c.input);
            t.data<uint32_t>()[r] = static_cast<uint32_t>(id.number);
            break;
          default:
            if (id.number > INT32_MAX) return invalid_argument("sequence id {} does not fit '{}' (INT32)", id.str(), c.input);
            t.data<int32_t>()[r] = static_cast<int32_t>(id.number);
            break;
        }
        continue;
      }
      bool flag = c.kind == ControlSpec::Kind::kReady || (c.kind == ControlSpec::Kind::kStart ? row.start : row.end);
      const Tensor& v = flag ? c.true_value : c.false_value;
      std::memcpy(static_cast<char*>(t.raw_data()) + static_cast<size_t>(r) * element_size(c.dtype), v.raw_data(),
                  element_size(c.dtype));
    }
    out.emplace_back(c.input, std::move(t));
  }
  return out;
}

std::vector<Tensor> SequenceSpecs::initial_states(bool batched) const {
  std::vector<Tensor> out;
  for (const StateSpec& s : states_) {
    Tensor t = s.initial.clone();
    if (batched) {
      Dims dims = t.dims();
      dims.insert(dims.begin(), 1);
      t = t.reshaped(dims).value();
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace kiln::server
