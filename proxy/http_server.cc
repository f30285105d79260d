#include "proxy/http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "config/gateway_config.h"
#include "proxy/net.h"

namespace meshgate::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(10);
constexpr size_t kMaxBody = 64 * 1024;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, std::shared_ptr<const HttpHandler> handler)
      : stream_(std::move(socket)), handler_(std::move(handler)) {}

  void Start() {
    parser_.body_limit(kMaxBody);
    parser_.header_limit(16 * 1024);
    stream_.expires_after(kRequestTimeout);
    http::async_read(stream_, buffer_, parser_,
                     [self = shared_from_this()](const error_code& ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(const error_code& ec) {
    if (ec == http::error::end_of_stream) return;
    HttpResponse response;
    if (ec) {
      if (ec == beast::error::timeout) return;
      response.status = 400;
      response.body = "bad request: " + ec.message() + "\n";
    } else {
      const auto& req = parser_.get();
      HttpRequest request;
      request.method = std::string(req.method_string());
      const std::string target(req.target());
      const size_t q = target.find('?');
      request.path = target.substr(0, q);
      if (q != std::string::npos) request.query = target.substr(q + 1);
      request.body = req.body();
      response = (*handler_)(request);
    }
    res_.result(static_cast<http::status>(response.status));
    res_.set(http::field::server, "meshgate");
    res_.set(http::field::content_type, response.content_type);
    res_.keep_alive(false);
    res_.body() = std::move(response.body);
    res_.prepare_payload();
    http::async_write(stream_, res_, [self = shared_from_this()](const error_code&, size_t) {
      error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request_parser<http::string_body> parser_;
  http::response<http::string_body> res_;
  std::shared_ptr<const HttpHandler> handler_;
};

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  explicit Impl(asio::io_context& io) : acceptor(io) {}
  tcp::acceptor acceptor;
  std::shared_ptr<const HttpHandler> handler;
  tcp::endpoint bound;

  void Accept() {
    acceptor.async_accept([self = shared_from_this()](const error_code& ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
      if (!ec) std::make_shared<Connection>(std::move(socket), self->handler)->Start();
      self->Accept();
    });
  }
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(asio::io_context& io,
                                                              const std::string& address,
                                                              HttpHandler handler) {
  auto parsed = config::ParseListenAddress(address);
  if (!parsed.ok()) return parsed.status();
  error_code ec;
  const auto ip = asio::ip::make_address(parsed->ip, ec);
  if (ec) return absl::InvalidArgumentError(address + ": " + ec.message());
  auto impl = std::make_shared<Impl>(io);
  const tcp::endpoint endpoint(ip, parsed->port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(address + ": " + ec.message());
  impl->bound = impl->acceptor.local_endpoint(ec);
  impl->handler = std::make_shared<const HttpHandler>(std::move(handler));
  impl->Accept();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  error_code ignored;
  impl_->acceptor.close(ignored);
}

std::string HttpServer::bound_address() const { return FormatEndpoint(impl_->bound); }
bool HttpServer::loopback() const { return impl_->bound.address().is_loopback(); }

std::string QueryValue(const std::string& query, const std::string& key) {
  size_t start = 0;
  while (start <= query.size()) {
    const size_t end = std::min(query.find('&', start), query.size());
    const std::string pair = query.substr(start, end - start);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key) return eq == std::string::npos ? "" : pair.substr(eq + 1);
    start = end + 1;
  }
  return "";
}

HttpResult HttpCall(const std::string& address, const std::string& method, const std::string& target,
                    int timeout_ms) {
  HttpResult result;
  auto parsed = config::ParseListenAddress(address);
  if (!parsed.ok()) return result;
  asio::io_context io;
  error_code ec;
  const auto ip = asio::ip::make_address(parsed->ip, ec);
  if (ec) return result;
  beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::milliseconds(timeout_ms));
  http::request<http::empty_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, address);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  stream.async_connect(tcp::endpoint(ip, parsed->port), [&](const error_code& e) {
    if (e) return;
    http::async_write(stream, req, [&](const error_code& e2, size_t) {
      if (e2) return;
      http::async_read(stream, buffer, res, [&](const error_code& e3, size_t) {
        if (e3) return;
        result.status = static_cast<int>(res.result_int());
        result.content_type = std::string(res[http::field::content_type]);
        result.body = res.body();
      });
    });
  });
  io.run();
  return result;
}

}  // namespace meshgate::proxy
