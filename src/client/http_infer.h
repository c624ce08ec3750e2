// The KServe v2 HTTP inference body for the client: the JSON request (with
// inputs as binary tensors or JSON "data" arrays) and the response (JSON
// outputs, binary outputs after an Inference-Header-Content-Length header,
// or both).
#pragma once

#include <rapidjson/document.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/client.h"

namespace kiln::client {

struct HttpInferBody {
  std::string body;
  // The JSON header's length when binary tensors follow it (the value of
  // Inference-Header-Content-Length); nullopt for a pure JSON body.
  std::optional<size_t> header_length;
};

Result<HttpInferBody> build_http_infer_body(const std::vector<InferInput>& inputs, const InferOptions& options);

// `header_length`: the response's Inference-Header-Content-Length, if any.
Result<InferResult> parse_http_infer_response(std::string_view body, std::optional<size_t> header_length);

// Appends the values of a JSON "data" array (flat or nested, or a single
// value) of tensor `name` to `out` in wire form; fails on a value that does
// not fit `datatype`. Also reads perf_analyzer-style input data files.
Status append_json_data(const std::string& name, const std::string& datatype, const rapidjson::Value& value,
                        std::string& out, int depth = 0);

}  // namespace kiln::client
