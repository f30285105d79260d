// meshgate's one HTTP/1.1 stack (Boost.Beast stays inside http_server.cc):
// the server behind the operations endpoints (metrics, readiness, admin) and
// meshgatectl serve, and the client that follows a control component. Runs
// on a control loop, never on a worker. One request per connection, bounded
// in size and time; TLS optional on both sides.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace boost::asio {
class io_context;
}

namespace meshgate::io {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// The value of header `name` (case-insensitive), or "".
std::string HeaderValue(const HttpHeaders& headers, std::string_view name);

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query
  std::string query;   // after '?', or ""
  HttpHeaders headers;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  HttpHeaders headers = {};  // extra ones (ETag, ...)
};

// What the server makes of the bytes a client sent (one request per
// connection): the request for the handler, bytes still to come, or the
// answer it refuses them with. Connection::OnRead and the fuzz target
// (tests/fuzz/fuzz_http_request.cc) share this, so no socket is needed to
// test it.
struct HttpRequestParse {
  enum class State { kRequest, kIncomplete, kRefused };
  State state = State::kIncomplete;
  HttpRequest request;   // kRequest
  HttpResponse refusal;  // kRefused: 400 and why
};

// The server's limits on one request; past either it answers 400 and says
// which limit (Beast's "header limit exceeded", "body limit exceeded").
inline constexpr size_t kMaxRequestHeader = 16 * 1024;
inline constexpr size_t kMaxRequestBody = 64 * 1024;

// `raw`: what a client sent, parsed exactly as the server parses it (its
// limits, its error answer). Bytes past the first request are ignored.
HttpRequestParse ParseHttpRequest(std::string_view raw);

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
// Answers later (a long poll): call `respond` once, on the server's io_context.
using HttpResponder = std::function<void(HttpResponse)>;
using AsyncHttpHandler = std::function<void(const HttpRequest&, HttpResponder respond)>;

struct HttpServerOptions {
  // TLS when both are set: PEM files, the chain leaf first.
  std::string tls_cert_chain_file;
  std::string tls_key_file;
  // Connections open at once; past it a connection is accepted and closed at
  // once, and counted (HAProxy's maxconn, per port). 0: no cap.
  size_t max_connections = 256;
  // >= 0: serve on this listening socket, handed over by the process this
  // one replaces (README "Upgrades"), instead of binding `address`. The
  // server owns it from then on.
  int adopt_fd = -1;
};

// What one HTTP port's acceptor saw. Read on the server's io_context.
struct HttpServerStats {
  // accept(2) failures by reason: "emfile", "enfile", "enobufs", "enomem"
  // (backed off: the acceptor waits before trying again) and "other".
  std::vector<std::pair<std::string, uint64_t>> accept_errors;
  uint64_t refused_max_connections = 0;  // closed at once: max_connections were open
  uint64_t accepted = 0;
  uint64_t open = 0;
};

class HttpServer {
 public:
  // Binds `address` ("IP:PORT", port 0 for any) at once; the error names it.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(boost::asio::io_context& io,
                                                           const std::string& address,
                                                           HttpHandler handler);
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(boost::asio::io_context& io,
                                                           const std::string& address,
                                                           AsyncHttpHandler handler,
                                                           const HttpServerOptions& options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::string bound_address() const;
  bool loopback() const;
  HttpServerStats stats() const;
  // The listening socket, to hand over on an upgrade (valid while this lives;
  // -1 once closed).
  int listener_fd() const;

 private:
  struct Impl;
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// Request text for a response body: at most `max_bytes` of it, printable
// ASCII kept, anything else as \xNN, and "...(N bytes)" when cut, so an
// error page never echoes a large or binary request back.
std::string EchoForBody(std::string_view text, size_t max_bytes = 256);

// "a=1&b=two" -> the value of `key`, or "" (no percent-decoding: the values
// meshgate reads are plain words and numbers).
std::string QueryValue(const std::string& query, const std::string& key);

struct HttpResult {
  int status = -1;  // -1: no answer; `error` says why
  std::string content_type;
  std::string body;
  HttpHeaders headers;
  std::string error;
};

// Where a client request goes.
struct HttpTarget {
  bool tls = false;
  std::string host;  // a name or an IP: connect, Host header, SNI and certificate check
  uint16_t port = 0;
  std::string ca_file;  // tls: the CAs to trust; "" = the system's
};

// One GET on `io`; `done` runs there exactly once (unless `io` stops first).
// A TLS server must present a certificate for `host` that chains to ca_file.
void HttpFetch(boost::asio::io_context& io, const HttpTarget& target, const std::string& path_and_query,
               std::chrono::milliseconds timeout, size_t body_limit, std::function<void(HttpResult)> done);

// One request to a plain-HTTP server at "IP:PORT", blocking, for
// `meshgate --probe` and tests.
HttpResult HttpCall(const std::string& address, const std::string& method, const std::string& target,
                    int timeout_ms, const HttpHeaders& headers = {});

}  // namespace meshgate::io
