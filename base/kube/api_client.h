// HTTPS to the Kubernetes API server: one TLS connection per request (a list
// page, a discovery document, or a watch stream), Boost.Beast over OpenSSL.
// The server is verified against the configured CA and by name (the IP SAN
// for an IP, the DNS SAN and SNI for a name); requests carry the bearer token
// (re-read from its file when it rotates) or present a client certificate.
// A CA file is re-read when it changes too: later requests verify against the
// new roots, requests in flight keep the context they started with.
// Everything runs on the caller's executor; there are no threads here.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/kube/credentials.h"

namespace boost::asio::ssl {
class context;
}

namespace meshgate::kube {

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{10'000};  // resolve, connect, TLS, response header
  std::chrono::milliseconds request_timeout{60'000};  // a whole non-watch response
  size_t max_response_bytes = 256u << 20;             // one list page
  size_t max_error_bytes = 1u << 20;                  // a non-200 body
  size_t max_line_bytes = 16u << 20;                  // one watch event
};

// A finished request: a transport failure (error set, status 0) or an HTTP
// status with its body (watch streams deliver lines instead of a body).
struct Response {
  unsigned status = 0;
  std::string body;
  std::string error;       // transport, TLS or framing problem, with the reason
  bool timed_out = false;  // the deadline passed (for a watch: silence past the idle timeout)
  bool ok() const { return error.empty() && status == 200; }
};

// Called for each newline-terminated line of a 200 watch stream, and once
// with an empty line when the stream opens; returning false ends the stream
// (the response then says why in `error`).
using LineHandler = std::function<bool(std::string_view line, std::string* why)>;
using ResponseHandler = std::function<void(Response)>;

// An in-flight request; Cancel() ends it with "cancelled" at the next turn.
class Request {
 public:
  virtual ~Request() = default;
  virtual void Cancel() = 0;
};

class ApiClient : public std::enable_shared_from_this<ApiClient> {
 public:
  // Fails when the CA or client certificate does not load.
  static absl::StatusOr<std::shared_ptr<ApiClient>> Create(boost::asio::any_io_executor executor,
                                                           Credentials credentials,
                                                           ClientOptions options = {});
  ~ApiClient();

  // GET `target` ("/api/v1/pods?limit=500") and read the whole response.
  std::shared_ptr<Request> Get(const std::string& target, ResponseHandler done);
  // GET a watch: lines of a 200 response go to on_line, each read waits at
  // most `idle` (the watch's own timeout plus slack); `done` runs once at the end.
  std::shared_ptr<Request> Watch(const std::string& target, std::chrono::milliseconds idle,
                                 LineHandler on_line, ResponseHandler done);

  // The server said 401: read the token file again before the next request.
  void TokenRejected();
  const Credentials& credentials() const { return credentials_; }
  const ClientOptions& options() const { return options_; }
  boost::asio::any_io_executor executor() const { return executor_; }
  uint64_t token_reads() const { return token_file_ ? token_file_->reads() : 0; }
  // Times the CA file was read (1 at creation, +1 per rotation seen).
  uint64_t ca_reads() const { return ca_file_ ? ca_file_->reads() : 0; }

 private:
  ApiClient(boost::asio::any_io_executor executor, Credentials credentials, ClientOptions options);
  std::shared_ptr<Request> Start(const std::string& target, std::optional<std::chrono::milliseconds> idle,
                                 LineHandler on_line, ResponseHandler done);
  // The TLS context for the next request: rebuilt when the CA file changed.
  absl::Status RefreshTls();
  // Reports `why` to `done` on the executor, never from inside the caller's call.
  void FailSoon(ResponseHandler done, std::string why);

  boost::asio::any_io_executor executor_;
  Credentials credentials_;
  ClientOptions options_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::optional<TokenFile> token_file_;
  std::optional<WatchedFile> ca_file_;
};

}  // namespace meshgate::kube
