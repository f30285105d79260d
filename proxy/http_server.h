// A small HTTP/1.1 server for the operations endpoints (metrics, readiness,
// admin), on the control loop: never on a worker. Boost.Beast stays inside
// http_server.cc. One request per connection, bounded in size and time.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace boost::asio {
class io_context;
}

namespace meshgate::proxy {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query
  std::string query;   // after '?', or ""
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  // Binds `address` ("IP:PORT", port 0 for any) at once; the error names it.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(boost::asio::io_context& io,
                                                           const std::string& address,
                                                           HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::string bound_address() const;
  bool loopback() const;

 private:
  struct Impl;
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// "a=1&b=two" -> the value of `key`, or "" (no percent-decoding: the admin
// API's values are plain words).
std::string QueryValue(const std::string& query, const std::string& key);

// One request to an HTTP server at "IP:PORT", for `meshgate --probe` and
// tests. status is -1 when it could not connect or parse the answer.
struct HttpResult {
  int status = -1;
  std::string content_type;
  std::string body;
};
HttpResult HttpCall(const std::string& address, const std::string& method, const std::string& target,
                    int timeout_ms);

}  // namespace meshgate::proxy
