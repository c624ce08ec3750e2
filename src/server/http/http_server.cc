#include "server/http/http_server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/version.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <optional>

#include "core/error.h"
#include "core/logging.h"

namespace kiln::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

const std::string* HttpRequest::header(const std::string& lower_name) const {
  for (const auto& [k, v] : headers) {
    if (k == lower_name) return &v;
  }
  return nullptr;
}

struct HttpServer::Impl {
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  const HttpServerOptions* options = nullptr;
  const HttpHandler* handler = nullptr;
  std::atomic<bool> accepting{false};

  explicit Impl(int threads_hint) : ioc(std::max(1, threads_hint)) {}
  void do_accept();
};

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(tcp::socket socket, HttpServer::Impl& server) : stream_(std::move(socket)), server_(server) {}

  void start() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->do_read(); });
  }

  void send(HttpResponse response) {
    asio::post(stream_.get_executor(),
               [self = shared_from_this(), r = std::move(response)]() mutable { self->do_write(std::move(r)); });
  }

 private:
  void do_read() {
    parser_.emplace();
    parser_->body_limit(server_.options->max_body_bytes);
    parser_->header_limit(64 * 1024);
    stream_.expires_after(std::chrono::seconds(server_.options->idle_timeout_s));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
        ec == beast::error::timeout || ec == asio::error::operation_aborted) {
      return close();
    }
    if (ec) {
      HttpResponse r;
      r.close = true;
      if (ec == http::error::body_limit) {
        r.status = 413;
        r.body = fmt::format(R"({{"error":"request body is larger than the server's limit of {} bytes"}})",
                             server_.options->max_body_bytes);
      } else if (ec == http::error::header_limit) {
        r.status = 431;
        r.body = R"({"error":"request headers are too large"})";
      } else {
        r.status = 400;
        r.body = fmt::format(R"({{"error":"malformed HTTP request: {}"}})", ec.message());
      }
      r.headers.emplace_back("Content-Type", "application/json");
      return do_write(std::move(r));
    }
    http::request<http::string_body> req = parser_->release();
    keep_alive_ = req.keep_alive();
    HttpRequest out;
    out.method = std::string(req.method_string());
    out.target = std::string(req.target());
    for (const auto& field : req) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      out.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    out.body = std::move(req.body());
    // No read while the handler runs: requests on one connection are answered in order.
    stream_.expires_never();
    (*server_.handler)(std::move(out), Responder(shared_from_this()));
  }

  void do_write(HttpResponse r) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->result(static_cast<unsigned>(r.status));
    res->version(11);
    res->set(http::field::server, "kiln");
    for (auto& [k, v] : r.headers) res->set(k, v);
    res->body() = std::move(r.body);
    res->prepare_payload();
    bool close_after = r.close || !keep_alive_;
    res->keep_alive(!close_after);
    stream_.expires_after(std::chrono::seconds(server_.options->idle_timeout_s));
    http::async_write(stream_, *res, [self = shared_from_this(), res, close_after](beast::error_code ec, size_t) {
      if (ec || close_after) return self->close();
      self->do_read();
    });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
};

void Responder::operator()(HttpResponse response) const { connection_->send(std::move(response)); }

void HttpServer::Impl::do_accept() {
  acceptor->async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (!accepting.load()) return;
    if (!ec) {
      beast::error_code opt_ec;
      socket.set_option(tcp::no_delay(true), opt_ec);
      std::make_shared<HttpConnection>(std::move(socket), *this)->start();
    }
    do_accept();
  });
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  impl_ = std::make_unique<Impl>(options_.threads);
  impl_->options = &options_;
  impl_->handler = &handler_;
  beast::error_code ec;
  auto address = asio::ip::make_address(options_.address, ec);
  if (ec) return invalid_argument("bad listen address '{}': {}", options_.address, ec.message());
  tcp::endpoint endpoint(address, static_cast<unsigned short>(options_.port));
  impl_->acceptor.emplace(impl_->ioc);
  impl_->acceptor->open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor->bind(endpoint, ec);
  if (!ec) impl_->acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return unavailable("cannot listen on {}:{}: {}", options_.address, options_.port, ec.message());
  bound_port_ = impl_->acceptor->local_endpoint().port();
  impl_->accepting.store(true);
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->do_accept();
  for (int i = 0; i < std::max(1, options_.threads); ++i) impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  return Status::ok();
}

void HttpServer::stop_accepting() {
  if (!impl_ || !impl_->accepting.exchange(false)) return;
  asio::post(impl_->ioc, [impl = impl_.get()] {
    beast::error_code ec;
    impl->acceptor->close(ec);
  });
}

void HttpServer::stop() {
  if (!impl_) return;
  stop_accepting();
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  impl_.reset();
}

}  // namespace kiln::server
