#include "client/proto_convert.h"

#include <google/protobuf/util/json_util.h>

#include "core/error.h"

namespace kiln::client {
namespace {

TensorMetadata to_tensor_metadata(const inference::ModelMetadataResponse::TensorMetadata& t) {
  return {t.name(), t.datatype(), Dims(t.shape().begin(), t.shape().end())};
}

Duration to_duration(const inference::StatisticDuration& d) { return {d.count(), d.ns()}; }

}  // namespace

Status parse_json_message(std::string_view what, std::string_view json, google::protobuf::Message& message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(std::string(json), &message, options);
  if (!status.ok()) {
    return invalid_argument("{}: the server's JSON does not parse as {}: {}", what, message.GetTypeName(),
                            std::string(status.message()));
  }
  return Status::ok();
}

ModelMetadata to_metadata(const inference::ModelMetadataResponse& m) {
  ModelMetadata out;
  out.name = m.name();
  out.versions.assign(m.versions().begin(), m.versions().end());
  out.platform = m.platform();
  for (const auto& t : m.inputs()) out.inputs.push_back(to_tensor_metadata(t));
  for (const auto& t : m.outputs()) out.outputs.push_back(to_tensor_metadata(t));
  return out;
}

Result<ModelConfig> to_config(const inference::ModelConfig& config) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  ModelConfig out;
  out.max_batch_size = config.max_batch_size();
  auto status = google::protobuf::util::MessageToJsonString(config, &out.json, options);
  if (!status.ok()) return internal_error("model config as JSON: {}", std::string(status.message()));
  return out;
}

std::vector<ModelStatistics> to_statistics(const inference::ModelStatisticsResponse& r) {
  std::vector<ModelStatistics> out;
  for (const auto& s : r.model_stats()) {
    ModelStatistics m;
    m.name = s.name();
    m.version = s.version();
    m.last_inference_ms = s.last_inference();
    m.inference_count = s.inference_count();
    m.execution_count = s.execution_count();
    const auto& i = s.inference_stats();
    m.success = to_duration(i.success());
    m.fail = to_duration(i.fail());
    m.queue = to_duration(i.queue());
    m.compute_input = to_duration(i.compute_input());
    m.compute_infer = to_duration(i.compute_infer());
    m.compute_output = to_duration(i.compute_output());
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace kiln::client
