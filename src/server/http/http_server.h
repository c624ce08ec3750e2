// HttpServer: an asynchronous HTTP/1.1 server on Boost.Beast. A few I/O
// threads serve every connection (no thread per connection); keep-alive and
// sequential pipelining are supported. Each parsed request goes to the
// handler with a Responder that may be called from any thread, once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kiln/status.h"

namespace kiln::server {

// A parsed request, decoupled from Beast so that handlers need no Boost headers.
struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  const std::string* header(const std::string& lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // close the connection after sending
};

class HttpConnection;
// Sends the response for one request; callable from any thread, exactly once.
class Responder {
 public:
  explicit Responder(std::shared_ptr<HttpConnection> connection) : connection_(std::move(connection)) {}
  void operator()(HttpResponse response) const;

 private:
  std::shared_ptr<HttpConnection> connection_;
};

using HttpHandler = std::function<void(HttpRequest request, Responder respond)>;

struct HttpServerOptions {
  std::string address = "0.0.0.0";
  int port = 8000;
  int threads = 2;
  size_t max_body_bytes = size_t{64} << 20;
  int idle_timeout_s = 300;  // a connection silent this long mid-request or between requests is closed
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts the I/O threads. Port 0 picks a free port (see port()).
  Status start();
  int port() const { return bound_port_; }
  // Closes the listening socket; open connections keep being served.
  void stop_accepting();
  // Stops the I/O threads (closing every connection) and joins them.
  void stop();

  struct Impl;

 private:
  HttpServerOptions options_;
  HttpHandler handler_;
  std::unique_ptr<Impl> impl_;
  int bound_port_ = 0;
};

}  // namespace kiln::server
