// HttpClient: the KServe v2 HTTP/REST client on Boost.Beast. One keep-alive
// connection, opened on first use and reopened once when the server has
// closed it between requests; calls are serialized by mu_.
#include <rapidjson/document.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <list>
#include <mutex>
#include <optional>
#include <thread>

#include "client/client_impl.h"
#include "client/http_infer.h"
#include "client/proto_convert.h"
#include "core/error.h"
#include "grpc_service.pb.h"

namespace kiln::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

int64_t ns_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
}

struct HttpReply {
  int status = 0;
  std::string body;
  std::optional<size_t> header_length;
  int64_t send_ns = 0;
};

// The error body of a failed request ({"error": "..."}) as a Status whose
// code follows the HTTP status (Triton's mapping, inverted).
Status http_error(int status, const std::string& body, const std::string& what) {
  std::string message;
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (!doc.HasParseError() && doc.IsObject()) {
    auto it = doc.FindMember("error");
    if (it != doc.MemberEnd() && it->value.IsString())
      message.assign(it->value.GetString(), it->value.GetStringLength());
  }
  if (message.empty()) message = body.empty() ? "(empty body)" : body.substr(0, 200);
  std::string text = fmt::format("{}: HTTP {}: {}", what, status, message);
  switch (status) {
    case 404:
      return Status(StatusCode::kNotFound, text);
    case 413:
      return Status(StatusCode::kResourceExhausted, text);
    case 501:
      return Status(StatusCode::kUnimplemented, text);
    case 503:
      return Status(StatusCode::kUnavailable, text);
    case 500:
      return Status(StatusCode::kInternal, text);
    default:
      return Status(status >= 500 ? StatusCode::kInternal : StatusCode::kInvalidArgument, text);
  }
}

class HttpClient final : public Client {
 public:
  HttpClient(std::string url, std::string host, std::string port, ClientOptions options)
      : url_(std::move(url)), host_(std::move(host)), port_(std::move(port)), options_(options) {}

  ~HttpClient() override {
    std::lock_guard<std::mutex> lock(async_mu_);
    for (auto& job : async_jobs_) job.thread.join();
  }

  Protocol protocol() const override { return Protocol::kHttp; }
  const std::string& url() const override { return url_; }

  Result<bool> server_live() override { return ok_status("/v2/health/live"); }
  Result<bool> server_ready() override { return ok_status("/v2/health/ready"); }
  Result<bool> model_ready(const std::string& model, const std::string& version) override {
    return ok_status(model_path(model, version) + "/ready");
  }

  Result<ModelMetadata> model_metadata(const std::string& model, const std::string& version) override {
    KILN_ASSIGN_OR_RETURN(std::string body, get_json(model_path(model, version), "model metadata"));
    inference::ModelMetadataResponse m;
    KILN_RETURN_IF_ERROR(parse_json_message("model metadata", body, m));
    return to_metadata(m);
  }

  Result<ModelConfig> model_config(const std::string& model, const std::string& version) override {
    KILN_ASSIGN_OR_RETURN(std::string body, get_json(model_path(model, version) + "/config", "model config"));
    inference::ModelConfig config;
    KILN_RETURN_IF_ERROR(parse_json_message("model config", body, config));
    return ModelConfig{config.max_batch_size(), std::move(body)};
  }

  Result<std::vector<ModelStatistics>> model_statistics(const std::string& model, const std::string& version) override {
    std::string path = model.empty() ? "/v2/models/stats" : model_path(model, version) + "/stats";
    KILN_ASSIGN_OR_RETURN(std::string body, get_json(path, "model statistics"));
    inference::ModelStatisticsResponse r;
    KILN_RETURN_IF_ERROR(parse_json_message("model statistics", body, r));
    return to_statistics(r);
  }

  Result<InferResult> infer(const std::string& model, const std::vector<InferInput>& inputs,
                            const InferOptions& options) override {
    Clock::time_point start = Clock::now();
    KILN_ASSIGN_OR_RETURN(HttpInferBody req, build_http_infer_body(inputs, options));
    std::vector<std::pair<std::string, std::string>> headers;
    if (req.header_length) headers.emplace_back("Inference-Header-Content-Length", std::to_string(*req.header_length));
    std::string what = fmt::format("infer '{}'", model);
    KILN_ASSIGN_OR_RETURN(HttpReply reply,
                          round_trip(http::verb::post, model_path(model, options.model_version) + "/infer",
                                     std::move(req.body), headers, options.client_timeout_ms, what));
    if (reply.status != 200) return http_error(reply.status, reply.body, what);
    Clock::time_point recv_start = Clock::now();
    KILN_ASSIGN_OR_RETURN(InferResult result, parse_http_infer_response(reply.body, reply.header_length));
    result.timing.send_ns = reply.send_ns;
    result.timing.recv_ns = ns_since(recv_start);
    result.timing.total_ns = ns_since(start);
    return result;
  }

  void async_infer(const std::string& model, std::vector<InferInput> inputs, InferOptions options,
                   InferCallback callback) override {
    std::lock_guard<std::mutex> lock(async_mu_);
    // Reap finished jobs so that a long-lived client does not collect threads.
    for (auto it = async_jobs_.begin(); it != async_jobs_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = async_jobs_.erase(it);
      } else {
        ++it;
      }
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    auto fresh = std::make_unique<HttpClient>(url_, host_, port_, options_);
    std::thread thread([fresh = std::move(fresh), model, inputs = std::move(inputs), options = std::move(options),
                        callback = std::move(callback), done] {
      callback(fresh->infer(model, inputs, options));
      done->store(true);
    });
    async_jobs_.push_back({std::move(thread), std::move(done)});
  }

 private:
  struct AsyncJob {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  // GET `path`: true on 200, false on any other status (as tritonclient).
  Result<bool> ok_status(const std::string& path) {
    KILN_ASSIGN_OR_RETURN(HttpReply reply, round_trip(http::verb::get, path, "", {}, 0, "GET " + path));
    return reply.status == 200;
  }

  Result<std::string> get_json(const std::string& path, const std::string& what) {
    KILN_ASSIGN_OR_RETURN(HttpReply reply, round_trip(http::verb::get, path, "", {}, 0, what));
    if (reply.status != 200) return http_error(reply.status, reply.body, what);
    return std::move(reply.body);
  }

  Status connect(const std::string& what) {
    stream_.reset();
    stream_.emplace(ioc_);
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    auto endpoints = resolver.resolve(host_, port_, ec);
    if (ec) return unavailable("{}: cannot resolve {}: {}", what, host_, ec.message());
    stream_->expires_after(std::chrono::milliseconds(options_.connect_timeout_ms));
    stream_->connect(endpoints, ec);
    if (ec) {
      stream_.reset();
      return unavailable("{}: cannot connect to http://{}:{}: {}", what, host_, port_, ec.message());
    }
    stream_->socket().set_option(tcp::no_delay(true), ec);
    return Status::ok();
  }

  Result<HttpReply> round_trip(http::verb verb, const std::string& target, std::string body,
                               const std::vector<std::pair<std::string, std::string>>& headers, int64_t timeout_ms,
                               const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    http::request<http::string_body> req(verb, target, 11);
    req.set(http::field::host, host_ + ":" + port_);
    req.set(http::field::user_agent, "kiln-client");
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = std::move(body);
    req.prepare_payload();
    req.keep_alive(true);
    // A reused connection may have been closed by the server while idle: retry once on a fresh one.
    for (int attempt = 0;; ++attempt) {
      bool reused = stream_.has_value();
      if (!reused) KILN_RETURN_IF_ERROR(connect(what));
      Clock::time_point start = Clock::now();
      if (timeout_ms > 0) {
        stream_->expires_after(std::chrono::milliseconds(timeout_ms));
      } else {
        stream_->expires_never();
      }
      beast::error_code ec;
      http::write(*stream_, req, ec);
      int64_t send_ns = ns_since(start);
      http::response_parser<http::string_body> parser;
      parser.body_limit(options_.max_response_bytes);
      parser.header_limit(64 * 1024);
      if (!ec) http::read(*stream_, buffer_, parser, ec);
      if (ec) {
        stream_.reset();
        buffer_.clear();
        bool stale = ec == http::error::end_of_stream || ec == asio::error::eof ||
                     ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
        if (reused && stale && attempt == 0) continue;
        if (ec == beast::error::timeout) return unavailable("{}: no answer within {} ms", what, timeout_ms);
        return unavailable("{}: http://{}:{}: {}", what, host_, port_, ec.message());
      }
      http::response<http::string_body> res = parser.release();
      HttpReply reply;
      reply.status = static_cast<int>(res.result_int());
      reply.send_ns = send_ns;
      auto hl = res.find("Inference-Header-Content-Length");
      if (hl != res.end()) {
        size_t n = 0;
        std::string_view v(hl->value().data(), hl->value().size());
        for (char c : v) {
          if (c < '0' || c > '9' || n > (size_t{1} << 40)) {
            return invalid_argument("{}: bad Inference-Header-Content-Length '{}'", what, std::string(v));
          }
          n = n * 10 + static_cast<size_t>(c - '0');
        }
        reply.header_length = n;
      }
      if (res.find(http::field::content_encoding) != res.end()) {
        return unimplemented("{}: the server sent a compressed body, which the client did not ask for", what);
      }
      if (!res.keep_alive()) stream_.reset();
      reply.body = std::move(res.body());
      return reply;
    }
  }

  const std::string url_, host_, port_;
  const ClientOptions options_;
  std::mutex mu_;  // guards ioc_, stream_, buffer_: one request at a time
  asio::io_context ioc_;
  std::optional<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::mutex async_mu_;  // guards async_jobs_
  std::list<AsyncJob> async_jobs_;
};

}  // namespace

Result<std::unique_ptr<Client>> make_http_client(const std::string& url, const ClientOptions& options) {
  std::string rest = url;
  if (rest.rfind("https://", 0) == 0) return unimplemented("'{}': HTTPS is not supported by the client", url);
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) return invalid_argument("'{}': expected host:port without a path", url);
  std::string host = rest, port = "8000";
  size_t colon = rest.rfind(':');
  if (!rest.empty() && rest[0] == '[') {  // [::1]:8000
    size_t close = rest.find(']');
    if (close == std::string::npos) return invalid_argument("'{}': unterminated [IPv6] host", url);
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return invalid_argument("'{}': expected ':' after ']'", url);
      port = rest.substr(close + 2);
    }
  } else if (colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return invalid_argument("'{}': no host (expected host:port)", url);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535) {
    return invalid_argument("'{}': bad port '{}'", url, port);
  }
  return std::unique_ptr<Client>(new HttpClient(url, host, port, options));
}

}  // namespace kiln::client
