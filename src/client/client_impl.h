// Factories of the two Client implementations (http_client.cc,
// grpc_client.cc), kept apart so that only their own files see Beast and gRPC.
#pragma once

#include <memory>
#include <string>

#include "kiln/client.h"

namespace kiln::client {

Result<std::unique_ptr<Client>> make_http_client(const std::string& url, const ClientOptions& options);
Result<std::unique_ptr<Client>> make_grpc_client(const std::string& url, const ClientOptions& options);

// "/v2/models/<m>[/versions/<v>]" with the name percent-encoded.
std::string model_path(const std::string& model, const std::string& version);

}  // namespace kiln::client
