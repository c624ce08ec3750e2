// The HTTP inference request and response bodies of the KServe v2 protocol:
// JSON, with the binary tensor extension (Inference-Header-Content-Length:
// a JSON header followed by the tensors' bytes in the order of the JSON).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/status.h"
#include "server/inference.h"

namespace kiln::server {

struct HttpInferRequest {
  InferRequest request;
  bool binary_output_default = false;     // request parameter binary_data_output
  std::map<std::string, bool> binary_output;  // per requested output: parameters.binary_data
};

// Decodes `body` (already decompressed). `header_length` is the
// Inference-Header-Content-Length value when the header was sent (> 0).
Result<HttpInferRequest> decode_infer_request(std::string_view body, std::optional<size_t> header_length);

struct HttpInferBody {
  std::string body;
  size_t json_length = 0;
  bool has_binary = false;
};

HttpInferBody encode_infer_response(const InferResponse& response, const HttpInferRequest& request);

// {"error": "<message>"}
std::string error_json(const std::string& message);

}  // namespace kiln::server
