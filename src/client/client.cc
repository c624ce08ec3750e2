#include <algorithm>
#include <cctype>
#include <memory>

#include "client/client_impl.h"
#include "core/error.h"

namespace kiln::client {

Result<Protocol> protocol_from_name(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "http") return Protocol::kHttp;
  if (lower == "grpc") return Protocol::kGrpc;
  return invalid_argument("unknown protocol '{}' (expected http or grpc)", name);
}

Result<std::unique_ptr<Client>> Client::create(Protocol protocol, const std::string& url,
                                               const ClientOptions& options) {
  if (url.empty()) return invalid_argument("empty server URL (expected host:port)");
  return protocol == Protocol::kHttp ? make_http_client(url, options) : make_grpc_client(url, options);
}

Result<std::unique_ptr<Client>> Client::create(const std::string& protocol, const std::string& url,
                                               const ClientOptions& options) {
  KILN_ASSIGN_OR_RETURN(Protocol p, protocol_from_name(protocol));
  return create(p, url, options);
}

std::future<Result<InferResult>> Client::async_infer_future(const std::string& model, std::vector<InferInput> inputs,
                                                            InferOptions options) {
  auto promise = std::make_shared<std::promise<Result<InferResult>>>();
  std::future<Result<InferResult>> future = promise->get_future();
  async_infer(model, std::move(inputs), std::move(options),
              [promise](Result<InferResult> result) { promise->set_value(std::move(result)); });
  return future;
}

namespace {

void append_encoded(std::string& out, const std::string& segment) {
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : segment) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
}

}  // namespace

std::string model_path(const std::string& model, const std::string& version) {
  std::string out = "/v2/models/";
  append_encoded(out, model);
  if (!version.empty()) {
    out += "/versions/";
    append_encoded(out, version);
  }
  return out;
}

}  // namespace kiln::client
