// The server's protobuf answers (inference::ModelMetadataResponse,
// ModelConfig, ModelStatisticsResponse from src/server/proto) turned into
// the client's small structs. gRPC receives these protos directly; HTTP
// parses its JSON bodies into the same protos first (Triton renders them
// with proto field names), so both protocols share one conversion.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "grpc_service.pb.h"
#include "kiln/client.h"

namespace kiln::client {

// Parses a JSON body into `message`, ignoring fields it does not know.
Status parse_json_message(std::string_view what, std::string_view json, google::protobuf::Message& message);

ModelMetadata to_metadata(const inference::ModelMetadataResponse& m);
Result<ModelConfig> to_config(const inference::ModelConfig& config);
std::vector<ModelStatistics> to_statistics(const inference::ModelStatisticsResponse& r);

}  // namespace kiln::client
