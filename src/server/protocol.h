// The protocol's read-only answers built once as the gRPC protos, so HTTP
// (rendered as JSON) and gRPC return the same data: server and model
// metadata, model statistics, repository index.
#pragma once

#include <cstdint>
#include <string>

#include "grpc_service.pb.h"
#include "kiln/status.h"
#include "server/server_core.h"

namespace kiln::server {

// Parses a request's version string: "" -> 0 (the highest ready), else a
// positive integer.
Result<int64_t> parse_version(const std::string& text);

inference::ServerMetadataResponse server_metadata(const ServerCore& core);
Result<inference::ModelMetadataResponse> model_metadata(ServerCore& core, const std::string& name,
                                                        const std::string& version);
Result<inference::ModelConfigResponse> model_config(ServerCore& core, const std::string& name,
                                                    const std::string& version);
// Empty name: every loaded model.
Result<inference::ModelStatisticsResponse> model_statistics(ServerCore& core, const std::string& name,
                                                            const std::string& version);
inference::RepositoryIndexResponse repository_index(ServerCore& core, bool ready_only);
// True if the model (version) is loaded and serving.
bool model_ready(ServerCore& core, const std::string& name, const std::string& version);

}  // namespace kiln::server
