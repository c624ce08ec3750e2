// ModelInferRequest / ModelInferResponse <-> InferRequest / InferResponse.
// Inputs come from raw_input_contents (what tritonclient sends) or typed
// contents; every output goes into raw_output_contents, in the order of
// `outputs`, as tritonclient reads them.
#pragma once

#include <grpcpp/support/status.h>

#include "grpc_service.pb.h"
#include "kiln/status.h"
#include "server/inference.h"

namespace kiln::server {

Result<InferRequest> decode_grpc_request(const inference::ModelInferRequest& request);
void encode_grpc_response(const InferResponse& response, inference::ModelInferResponse* out);
grpc::Status to_grpc_status(const Status& status);

}  // namespace kiln::server
