#include "base/io/http_server.h"

#include <algorithm>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "base/address.h"
#include "base/log_interval.h"
#include "base/io/endpoint.h"

namespace meshgate::io {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(10);

using RequestParser = http::request_parser<http::string_body>;

void LimitRequestParser(RequestParser& parser) {
  parser.header_limit(kMaxRequestHeader);
  parser.body_limit(kMaxRequestBody);
}

// A finished read: `ec` from Beast's reader (or the parser fed from memory),
// `parser` the message it built. The handler's request, or the 400.
HttpRequestParse RequestOf(const error_code& ec, const RequestParser& parser) {
  HttpRequestParse out;
  if (ec) {
    out.state = HttpRequestParse::State::kRefused;
    out.refusal = {400, "text/plain", "bad request: " + ec.message() + "\n"};
    return out;
  }
  if (!parser.is_done()) return out;
  const auto& req = parser.get();
  HttpRequest& request = out.request;
  request.method = std::string(req.method_string());
  const std::string_view target(req.target().data(), req.target().size());
  const size_t q = target.find('?');
  request.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) request.query = std::string(target.substr(q + 1));
  for (const auto& field : req) request.headers.emplace_back(field.name_string(), field.value());
  request.body = req.body();
  out.state = HttpRequestParse::State::kRequest;
  return out;
}

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// The acceptor's backoff when accept(2) runs out of a resource: 10 ms,
// doubling to 1 s, back to none after a success (as Go's net/http Server.Serve
// does on a temporary accept error, with a higher ceiling).
constexpr auto kFirstBackoff = std::chrono::milliseconds(10);
constexpr auto kMaxBackoff = std::chrono::milliseconds(1000);

// The errno name for a counted accept failure; true when it is a resource
// running out (EMFILE, ENFILE, ENOBUFS, ENOMEM: accept(2)), where trying
// again at once can only fail again.
bool AcceptErrorReason(const error_code& ec, std::string& reason) {
  if (ec.category() == boost::system::system_category() || ec.category() == asio::error::get_system_category()) {
    switch (ec.value()) {
      case EMFILE: reason = "emfile"; return true;
      case ENFILE: reason = "enfile"; return true;
      case ENOBUFS: reason = "enobufs"; return true;
      case ENOMEM: reason = "enomem"; return true;
      default: break;
    }
  }
  reason = "other";
  return false;
}

// One open connection counted for as long as its Connection lives.
class OpenSlot {
 public:
  explicit OpenSlot(std::shared_ptr<HttpServerStats> stats) : stats_(std::move(stats)) { ++stats_->open; }
  ~OpenSlot() { --stats_->open; }
  OpenSlot(const OpenSlot&) = delete;
  OpenSlot& operator=(const OpenSlot&) = delete;

 private:
  std::shared_ptr<HttpServerStats> stats_;
};

// One request, one response, then close. Stream: beast::tcp_stream or TlsStream.
template <typename Stream>
class Connection : public std::enable_shared_from_this<Connection<Stream>> {
 public:
  Connection(Stream stream, std::shared_ptr<const AsyncHttpHandler> handler, std::shared_ptr<HttpServerStats> stats)
      : stream_(std::move(stream)), handler_(std::move(handler)), slot_(std::move(stats)) {}

  void Start() {
    beast::get_lowest_layer(stream_).expires_after(kRequestTimeout);
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      stream_.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](const error_code& ec) {
        if (!ec) self->DoRead();
      });
    } else {
      DoRead();
    }
  }

 private:
  void DoRead() {
    LimitRequestParser(parser_);
    http::async_read(stream_, buffer_, parser_,
                     [self = this->shared_from_this()](const error_code& ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(const error_code& ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout) return;
    HttpRequestParse parsed = RequestOf(ec, parser_);
    if (parsed.state != HttpRequestParse::State::kRequest) {
      return Respond(parsed.state == HttpRequestParse::State::kRefused
                         ? std::move(parsed.refusal)
                         : HttpResponse{400, "text/plain", "bad request: incomplete\n"});
    }
    // A long poll may hold the request past the read deadline; the handler bounds it.
    beast::get_lowest_layer(stream_).expires_never();
    (*handler_)(parsed.request, [self = this->shared_from_this()](HttpResponse response) {
      self->Respond(std::move(response));
    });
  }

  void Respond(HttpResponse response) {
    if (responded_) return;
    responded_ = true;
    res_.result(static_cast<http::status>(response.status));
    res_.set(http::field::server, "meshgate");
    res_.set(http::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) res_.set(name, value);
    res_.keep_alive(false);
    res_.body() = std::move(response.body);
    res_.prepare_payload();
    beast::get_lowest_layer(stream_).expires_after(kRequestTimeout);
    http::async_write(stream_, res_, [self = this->shared_from_this()](const error_code& ec, size_t) {
      if constexpr (std::is_same_v<Stream, TlsStream>) {
        if (!ec) self->stream_.async_shutdown([self](const error_code&) {});
      } else {
        error_code ignored;
        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      }
    });
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  RequestParser parser_;
  http::response<http::string_body> res_;
  std::shared_ptr<const AsyncHttpHandler> handler_;
  OpenSlot slot_;
  bool responded_ = false;
};

}  // namespace

// Fed as Beast's reader feeds it (http/impl/read.hpp: put what is buffered,
// again after each header or body part, until done or it needs more), from
// memory instead of a socket.
HttpRequestParse ParseHttpRequest(std::string_view raw) {
  RequestParser parser;
  LimitRequestParser(parser);
  error_code ec;
  size_t used = 0;
  while (!parser.is_done() && used < raw.size()) {
    const size_t n = parser.put(asio::buffer(raw.data() + used, raw.size() - used), ec);
    used += n;
    if (ec == http::error::need_more) {
      ec = {};
      if (n == 0) break;  // the rest is a part not complete yet
    } else if (ec || n == 0) {
      break;
    }
  }
  return RequestOf(ec, parser);
}

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  explicit Impl(asio::io_context& io) : acceptor(io), backoff(io) {}
  tcp::acceptor acceptor;
  asio::steady_timer backoff;
  std::chrono::milliseconds delay{0};  // the current backoff; 0 after a success
  std::shared_ptr<const AsyncHttpHandler> handler;
  std::unique_ptr<ssl::context> tls;  // null: plain HTTP
  tcp::endpoint bound;
  size_t max_connections = 0;
  std::shared_ptr<HttpServerStats> stats = std::make_shared<HttpServerStats>();
  base::LogInterval error_log;
  base::LogInterval refusal_log;

  void Accept() {
    acceptor.async_accept([self = shared_from_this()](const error_code& ec, tcp::socket socket) {
      self->OnAccept(ec, std::move(socket));
    });
  }

  void OnAccept(const error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) return OnAcceptError(ec);
    delay = std::chrono::milliseconds(0);
    ++stats->accepted;
    if (max_connections != 0 && stats->open >= max_connections) {
      ++stats->refused_max_connections;
      error_code ignored;
      socket.close(ignored);
      uint64_t suppressed = 0;
      if (refusal_log.Allow(suppressed)) {
        spdlog::warn("http {}: {} connections open (the cap); closing new ones ({} more since the last line)",
                     FormatEndpoint(bound), max_connections, suppressed);
      }
    } else {
      Serve(std::move(socket));
    }
    Accept();
  }

  // Counted by reason; out of descriptors (or buffers), waits before the
  // next accept instead of failing again at once in a loop.
  void OnAcceptError(const error_code& ec) {
    std::string reason;
    const bool exhausted = AcceptErrorReason(ec, reason);
    auto it = std::find_if(stats->accept_errors.begin(), stats->accept_errors.end(),
                           [&](const auto& entry) { return entry.first == reason; });
    if (it == stats->accept_errors.end()) it = stats->accept_errors.insert(it, {reason, 0});
    ++it->second;
    if (exhausted) delay = std::min(kMaxBackoff, delay.count() == 0 ? kFirstBackoff : delay * 2);
    uint64_t suppressed = 0;
    if (error_log.Allow(suppressed)) {
      spdlog::warn("http {}: accept failed: {}; retrying in {} ms ({} more since the last line)",
                   FormatEndpoint(bound), ec.message(), exhausted ? delay.count() : 0, suppressed);
    }
    if (!exhausted) return Accept();
    backoff.expires_after(delay);
    backoff.async_wait([self = shared_from_this()](const error_code& e) {
      if (!e && self->acceptor.is_open()) self->Accept();
    });
  }

  void Serve(tcp::socket socket) {
    if (tls) {
      std::make_shared<Connection<TlsStream>>(TlsStream(std::move(socket), *tls), handler, stats)->Start();
    } else {
      std::make_shared<Connection<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), handler, stats)
          ->Start();
    }
  }
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(asio::io_context& io,
                                                              const std::string& address,
                                                              HttpHandler handler) {
  auto async = [handler = std::move(handler)](const HttpRequest& request, HttpResponder respond) {
    respond(handler(request));
  };
  return Start(io, address, std::move(async), HttpServerOptions{});
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(asio::io_context& io,
                                                              const std::string& address,
                                                              AsyncHttpHandler handler,
                                                              const HttpServerOptions& options) {
  auto parsed = base::ParseListenAddress(address);
  if (!parsed.ok()) return parsed.status();
  error_code ec;
  const auto ip = asio::ip::make_address(parsed->ip, ec);
  if (ec) return absl::InvalidArgumentError(address + ": " + ec.message());
  auto impl = std::make_shared<Impl>(io);
  if (!options.tls_cert_chain_file.empty() || !options.tls_key_file.empty()) {
    impl->tls = std::make_unique<ssl::context>(ssl::context::tls_server);
    impl->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                           ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    impl->tls->use_certificate_chain_file(options.tls_cert_chain_file, ec);
    if (ec) return absl::InvalidArgumentError(options.tls_cert_chain_file + ": " + ec.message());
    impl->tls->use_private_key_file(options.tls_key_file, ssl::context::pem, ec);
    if (ec) return absl::InvalidArgumentError(options.tls_key_file + ": " + ec.message());
  }
  const tcp::endpoint endpoint(ip, parsed->port);
  if (options.adopt_fd >= 0) {
    // Already bound and listening in the process we replace: its queue stays.
    impl->acceptor.assign(endpoint.protocol(), options.adopt_fd, ec);
  } else {
    impl->acceptor.open(endpoint.protocol(), ec);
    if (!ec) impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) impl->acceptor.bind(endpoint, ec);
    if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) return absl::UnavailableError(address + ": " + ec.message());
  impl->bound = impl->acceptor.local_endpoint(ec);
  impl->handler = std::make_shared<const AsyncHttpHandler>(std::move(handler));
  impl->max_connections = options.max_connections;
  impl->Accept();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->backoff.cancel();
}

std::string HttpServer::bound_address() const { return FormatEndpoint(impl_->bound); }
bool HttpServer::loopback() const { return impl_->bound.address().is_loopback(); }
HttpServerStats HttpServer::stats() const { return *impl_->stats; }
int HttpServer::listener_fd() const { return impl_->acceptor.is_open() ? impl_->acceptor.native_handle() : -1; }

std::string EchoForBody(std::string_view text, size_t max_bytes) {
  std::string out;
  const size_t n = std::min(text.size(), max_bytes);
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (n < text.size()) out += fmt::format("...({} bytes)", text.size());
  return out;
}

std::string HeaderValue(const HttpHeaders& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, absl::string_view(name.data(), name.size()))) return value;
  }
  return "";
}

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

namespace {

// One client request: resolve, connect, (TLS handshake,) write, read. Owned
// by its handlers in flight; the deadline covers the whole exchange.
template <typename Stream>
class Fetch : public std::enable_shared_from_this<Fetch<Stream>> {
 public:
  Fetch(Stream stream, tcp::resolver resolver, HttpTarget target, http::verb method, std::string path,
        const HttpHeaders& headers, std::chrono::milliseconds timeout, size_t body_limit,
        std::function<void(HttpResult)> done)
      : stream_(std::move(stream)),
        resolver_(std::move(resolver)),
        target_(std::move(target)),
        done_(std::move(done)) {
    req_ = http::request<http::empty_body>(method, path, 11);
    req_.set(http::field::host, FormatHostPort(target_.host, target_.port));
    req_.set(http::field::user_agent, "meshgate");
    for (const auto& [name, value] : headers) req_.set(name, value);
    parser_.body_limit(body_limit);
    timeout_ = timeout;
  }

  void Start() {
    beast::get_lowest_layer(stream_).expires_after(timeout_);
    resolver_.async_resolve(target_.host, std::to_string(target_.port),
                            [self = this->shared_from_this()](const error_code& ec, tcp::resolver::results_type r) {
                              if (ec) return self->Finish("resolve " + self->target_.host + ": " + ec.message());
                              self->Connect(r);
                            });
  }

 private:
  void Connect(const tcp::resolver::results_type& results) {
    beast::get_lowest_layer(stream_).async_connect(
        results, [self = this->shared_from_this()](const error_code& ec, const tcp::endpoint&) {
          if (ec) return self->Finish("connect: " + ec.message());
          if constexpr (std::is_same_v<Stream, TlsStream>) {
            self->stream_.async_handshake(ssl::stream_base::client, [self](const error_code& ec2) {
              if (ec2) return self->Finish("TLS handshake: " + TlsError(ec2));
              self->Write();
            });
          } else {
            self->Write();
          }
        });
  }

  void Write() {
    http::async_write(stream_, req_, [self = this->shared_from_this()](const error_code& ec, size_t) {
      if (ec) return self->Finish("write: " + ec.message());
      http::async_read(self->stream_, self->buffer_, self->parser_, [self](const error_code& ec2, size_t) {
        if (ec2) return self->Finish("read: " + ec2.message());
        self->Finish("");
      });
    });
  }

  void Finish(const std::string& error) {
    HttpResult result;
    if (!error.empty()) {
      result.error = error;
    } else {
      const auto& res = parser_.get();
      result.status = static_cast<int>(res.result_int());
      result.content_type = std::string(res[http::field::content_type]);
      for (const auto& field : res) result.headers.emplace_back(field.name_string(), field.value());
      result.body = std::move(parser_.get().body());
    }
    error_code ignored;
    beast::get_lowest_layer(stream_).socket().close(ignored);
    auto done = std::move(done_);
    done(std::move(result));
  }

  static std::string TlsError(const error_code& ec) {
    std::string text = ec.message();
    if (ec.category() == asio::error::get_ssl_category()) {
      const long reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
      if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) text += " (the server's certificate is not trusted for this host)";
    }
    return text;
  }

  Stream stream_;
  tcp::resolver resolver_;
  HttpTarget target_;
  std::function<void(HttpResult)> done_;
  std::chrono::milliseconds timeout_{};
  http::request<http::empty_body> req_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
};

void StartFetch(asio::io_context& io, const HttpTarget& target, http::verb method, const std::string& path,
                const HttpHeaders& headers, std::chrono::milliseconds timeout, size_t body_limit, std::function<void(HttpResult)> done) {
  if (!target.tls) {
    std::make_shared<Fetch<beast::tcp_stream>>(beast::tcp_stream(io), tcp::resolver(io), target, method, path,
                                               headers, timeout, body_limit, std::move(done))
        ->Start();
    return;
  }
  // A context per request re-reads the CA file, so a rotated root is picked up.
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  error_code ec;
  ctx->set_verify_mode(ssl::verify_peer, ec);
  if (target.ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    ctx->load_verify_file(target.ca_file, ec);
  }
  if (ec) {
    HttpResult result;
    result.error = "CA file " + target.ca_file + ": " + ec.message();
    asio::post(io, [done = std::move(done), result = std::move(result)]() mutable { done(std::move(result)); });
    return;
  }
  ctx->set_verify_callback(ssl::host_name_verification(target.host));
  TlsStream stream(io, *ctx);
  error_code not_ip;
  asio::ip::make_address(target.host, not_ip);
  if (not_ip) SSL_set_tlsext_host_name(stream.native_handle(), target.host.c_str());  // SNI is for names only
  // The context must outlive the stream: it rides along in the callback.
  auto keep = [ctx, done = std::move(done)](HttpResult r) { done(std::move(r)); };
  std::make_shared<Fetch<TlsStream>>(std::move(stream), tcp::resolver(io), target, method, path, headers, timeout,
                                     body_limit, std::move(keep))
      ->Start();
}

}  // namespace

void HttpFetch(asio::io_context& io, const HttpTarget& target, const std::string& path_and_query,
               std::chrono::milliseconds timeout, size_t body_limit, std::function<void(HttpResult)> done) {
  StartFetch(io, target, http::verb::get, path_and_query, {}, timeout, body_limit, std::move(done));
}

HttpResult HttpCall(const std::string& address, const std::string& method, const std::string& target,
                    int timeout_ms, const HttpHeaders& headers) {
  HttpResult result;
  auto parsed = base::ParseListenAddress(address);
  if (!parsed.ok()) {
    result.error = std::string(parsed.status().message());
    return result;
  }
  asio::io_context io;
  HttpTarget where;
  where.host = parsed->ip;
  where.port = parsed->port;
  StartFetch(io, where, http::string_to_verb(method), target, headers, std::chrono::milliseconds(timeout_ms),
             64 * 1024 * 1024, [&](HttpResult r) { result = std::move(r); });
  io.run();
  return result;
}

}  // namespace meshgate::io
