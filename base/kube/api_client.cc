// One HTTPS exchange per request. The life of a connection reads top to
// bottom: resolve, connect, handshake, write, read the header, then either the
// whole body (bounded) or the chunked watch stream, line by line (bounded).
#include "base/kube/api_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/strings/str_cat.h"

namespace meshgate::kube {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

bool IsIp(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

class Exchange : public Request, public std::enable_shared_from_this<Exchange> {
 public:
  struct Spec {
    std::string host;
    std::string port;
    std::string verify_name;
    bool verify = true;
    std::string authorization;  // "Bearer ..." or empty
    std::string target;
    std::optional<std::chrono::milliseconds> idle;  // set: a watch
    ClientOptions options;  // a copy: the exchange may outlive its ApiClient
  };

  Exchange(asio::any_io_executor ex, std::shared_ptr<ssl::context> tls, Spec spec, LineHandler on_line,
           ResponseHandler done)
      : tls_(std::move(tls)),
        spec_(std::move(spec)),
        resolver_(ex),
        stream_(ex, *tls_),
        on_line_(std::move(on_line)),
        done_(std::move(done)) {}

  void Start() {
    if (cancelled_) return Fail("cancelled");
    if (auto why = SetUpTls(); !why.empty()) return Fail(why);
    beast::get_lowest_layer(stream_).expires_after(spec_.options.connect_timeout);
    resolver_.async_resolve(spec_.host, spec_.port,
                            beast::bind_front_handler(&Exchange::OnResolve, shared_from_this()));
  }

  void Cancel() override {
    if (finished_) return;
    cancelled_ = true;
    resolver_.cancel();
    beast::get_lowest_layer(stream_).cancel();
  }

 private:
  // SNI only for names (RFC 6066 section 3: no IP literals); the peer must
  // match the name or the IP (RFC 6125; OpenSSL checks SANs).
  std::string SetUpTls() {
    SSL* ssl = stream_.native_handle();
    if (!spec_.verify) {
      SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
      return "";
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
    if (IsIp(spec_.verify_name)) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), spec_.verify_name.c_str()) != 1) {
        return "cannot verify IP " + spec_.verify_name;
      }
    } else {
      if (SSL_set_tlsext_host_name(ssl, spec_.verify_name.c_str()) != 1 ||
          SSL_set1_host(ssl, spec_.verify_name.c_str()) != 1) {
        return "cannot verify name " + spec_.verify_name;
      }
    }
    return "";
  }

  void OnResolve(error_code ec, tcp::resolver::results_type results) {
    if (ec) return Fail(Transport("resolve " + spec_.host, ec));
    beast::get_lowest_layer(stream_).async_connect(
        results, beast::bind_front_handler(&Exchange::OnConnect, shared_from_this()));
  }

  void OnConnect(error_code ec, const tcp::endpoint&) {
    if (ec) return Fail(Transport("connect to " + spec_.host + ":" + spec_.port, ec));
    stream_.async_handshake(ssl::stream_base::client,
                            beast::bind_front_handler(&Exchange::OnHandshake, shared_from_this()));
  }

  void OnHandshake(error_code ec) {
    if (ec) {
      std::string why = Transport("TLS handshake with " + spec_.host + ":" + spec_.port, ec);
      const long verify = SSL_get_verify_result(stream_.native_handle());
      if (verify != X509_V_OK) {
        absl::StrAppend(&why, ": server certificate refused: ", X509_verify_cert_error_string(verify));
      }
      return Fail(why);
    }
    request_.method(http::verb::get);
    request_.target(spec_.target);
    request_.version(11);
    request_.set(http::field::host, spec_.host);
    request_.set(http::field::accept, "application/json");
    request_.set(http::field::user_agent, "meshgate");
    if (!spec_.authorization.empty()) request_.set(http::field::authorization, spec_.authorization);
    http::async_write(stream_, request_, beast::bind_front_handler(&Exchange::OnWrite, shared_from_this()));
  }

  void OnWrite(error_code ec, size_t) {
    if (ec) return Fail(Transport("write", ec));
    http::async_read_header(stream_, buffer_, parser_,
                            beast::bind_front_handler(&Exchange::OnHeader, shared_from_this()));
  }

  void OnHeader(error_code ec, size_t) {
    if (ec) return Fail(Transport("read response header", ec));
    response_.status = parser_.get().result_int();
    const bool stream = spec_.idle && response_.status == 200 && parser_.chunked();
    if (!stream) {
      parser_.body_limit(response_.status == 200 ? spec_.options.max_response_bytes
                                                 : spec_.options.max_error_bytes);
      beast::get_lowest_layer(stream_).expires_after(spec_.options.request_timeout);
      return http::async_read(stream_, buffer_, parser_,
                              beast::bind_front_handler(&Exchange::OnBody, shared_from_this()));
    }
    parser_.body_limit(boost::none);
    // The parser keeps a reference to the callback: it lives in a member.
    on_chunk_ = [this](std::uint64_t, beast::string_view body, error_code& cec) -> std::size_t {
      pending_.append(body.data(), body.size());
      // Only the unfinished last line counts toward the limit.
      const size_t nl = pending_.rfind('\n');
      const size_t tail = nl == std::string::npos ? pending_.size() : pending_.size() - nl - 1;
      if (tail > spec_.options.max_line_bytes) {
        cec = http::error::body_limit;
      }
      return body.size();
    };
    parser_.on_chunk_body(on_chunk_);
    std::string why;
    if (!on_line_("", &why)) return Fail(why);
    DoStreamRead();
  }

  void OnBody(error_code ec, size_t) {
    if (ec == http::error::body_limit) return Fail("response larger than the limit");
    if (ec) return Fail(Transport("read response body", ec));
    response_.body = std::move(parser_.get().body());
    // A watch answered without chunking: its body is the whole stream.
    if (spec_.idle && response_.status == 200 && !DeliverLines(response_.body, true)) return;
    Finish();
  }

  void DoStreamRead() {
    beast::get_lowest_layer(stream_).expires_after(*spec_.idle);
    http::async_read_some(stream_, buffer_, parser_,
                          beast::bind_front_handler(&Exchange::OnStreamRead, shared_from_this()));
  }

  void OnStreamRead(error_code ec, size_t) {
    if (!DeliverLines(pending_, false)) return;
    if (ec == http::error::body_limit) {
      return Fail(absl::StrCat("watch event larger than ", spec_.options.max_line_bytes, " bytes"));
    }
    if (ec) return Fail(Transport("watch stream", ec));
    if (parser_.is_done()) return Finish();
    DoStreamRead();
  }

  // Hands complete lines to on_line_; false when the exchange has ended.
  bool DeliverLines(std::string& text, bool final) {
    size_t start = 0;
    for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(text.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      std::string why;
      if (cancelled_) break;
      if (!on_line_(line, &why)) {
        Fail(why);
        return false;
      }
    }
    text.erase(0, start);
    if (final && !text.empty() && !cancelled_) {
      std::string why;
      if (!on_line_(text, &why)) {
        Fail(why);
        return false;
      }
    }
    return !finished_;
  }

  std::string Transport(const std::string& what, error_code ec) {
    if (cancelled_) return "cancelled";
    if (ec == beast::error::timeout) {
      response_.timed_out = true;
      return what + ": timed out";
    }
    return what + ": " + ec.message();
  }

  void Fail(std::string why) {
    response_.error = cancelled_ ? "cancelled" : std::move(why);
    Finish();
  }

  void Finish() {
    if (finished_) return;
    finished_ = true;
    error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(stream_).close();
    if (cancelled_ && response_.error.empty()) response_.error = "cancelled";
    auto done = std::move(done_);
    on_line_ = nullptr;
    done(std::move(response_));
  }

  std::shared_ptr<ssl::context> tls_;
  Spec spec_;
  tcp::resolver resolver_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  http::request<http::empty_body> request_;
  http::response_parser<http::string_body> parser_;
  std::string pending_;
  std::function<std::size_t(std::uint64_t, beast::string_view, error_code&)> on_chunk_;
  LineHandler on_line_;
  ResponseHandler done_;
  Response response_;
  bool cancelled_ = false;
  bool finished_ = false;
};

}  // namespace

ApiClient::ApiClient(asio::any_io_executor executor, Credentials credentials, ClientOptions options)
    : executor_(std::move(executor)), credentials_(std::move(credentials)), options_(options) {}

ApiClient::~ApiClient() = default;

namespace {

absl::StatusOr<std::shared_ptr<ssl::context>> MakeTls(const Credentials& c, const std::string& ca_pem) {
  auto tls = std::make_shared<ssl::context>(ssl::context::tls_client);
  tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  error_code ec;
  if (ca_pem.empty()) {
    tls->set_default_verify_paths(ec);
  } else {
    tls->add_certificate_authority(asio::buffer(ca_pem), ec);
  }
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(c.source, ": CA certificates",
                                                   c.ca_file.empty() ? "" : " in " + c.ca_file, ": ", ec.message()));
  }
  if (!c.client_cert_pem.empty()) {
    tls->use_certificate_chain(asio::buffer(c.client_cert_pem), ec);
    if (!ec) tls->use_private_key(asio::buffer(c.client_key_pem), ssl::context::pem, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat(c.source, ": client certificate: ", ec.message()));
  }
  return tls;
}

}  // namespace

absl::StatusOr<std::shared_ptr<ApiClient>> ApiClient::Create(asio::any_io_executor executor,
                                                             Credentials credentials, ClientOptions options) {
  std::shared_ptr<ApiClient> client(new ApiClient(std::move(executor), std::move(credentials), options));
  const Credentials& c = client->credentials_;
  if (!c.ca_file.empty()) client->ca_file_.emplace(c.ca_file, 1 << 20);
  if (auto status = client->RefreshTls(); !status.ok()) return status;
  if (!c.token_file.empty()) client->token_file_.emplace(c.token_file);
  return client;
}

absl::Status ApiClient::RefreshTls() {
  if (tls_ != nullptr && !ca_file_) return absl::OkStatus();
  std::string ca_pem = credentials_.ca_pem;
  if (ca_file_) {
    bool changed = false;
    auto current = ca_file_->Current(&changed);
    if (!current.ok()) {
      return absl::Status(current.status().code(), absl::StrCat(credentials_.source, ": CA file ",
                                                                current.status().message()));
    }
    if (!changed && tls_ != nullptr) return absl::OkStatus();
    ca_pem = *current;
  }
  auto tls = MakeTls(credentials_, ca_pem);
  if (!tls.ok()) {
    if (ca_file_) ca_file_->Invalidate();  // not taken: read it again next time, and say why again
    return tls.status();
  }
  tls_ = std::move(*tls);
  return absl::OkStatus();
}

void ApiClient::FailSoon(ResponseHandler done, std::string why) {
  auto failed = std::make_shared<Response>();
  failed->error = std::move(why);
  asio::post(executor_, [done = std::move(done), failed] { done(std::move(*failed)); });
}

void ApiClient::TokenRejected() {
  if (token_file_) token_file_->Invalidate();
}

std::shared_ptr<Request> ApiClient::Get(const std::string& target, ResponseHandler done) {
  return Start(target, std::nullopt, nullptr, std::move(done));
}

std::shared_ptr<Request> ApiClient::Watch(const std::string& target, std::chrono::milliseconds idle,
                                          LineHandler on_line, ResponseHandler done) {
  return Start(target, idle, std::move(on_line), std::move(done));
}

std::shared_ptr<Request> ApiClient::Start(const std::string& target, std::optional<std::chrono::milliseconds> idle,
                                          LineHandler on_line, ResponseHandler done) {
  Exchange::Spec spec{credentials_.host,   std::to_string(credentials_.port),
                      credentials_.VerifyName(), !credentials_.insecure_skip_tls_verify,
                      "",                  target,
                      idle,                options_};
  std::string token = credentials_.token;
  if (token_file_) {
    auto current = token_file_->Current();
    if (!current.ok()) {
      FailSoon(std::move(done), std::string(current.status().message()));
      return nullptr;
    }
    token = *current;
  }
  if (auto status = RefreshTls(); !status.ok()) {
    FailSoon(std::move(done), std::string(status.message()));
    return nullptr;
  }
  if (!token.empty()) spec.authorization = "Bearer " + token;
  auto exchange = std::make_shared<Exchange>(executor_, tls_, std::move(spec), std::move(on_line), std::move(done));
  asio::post(executor_, [exchange] { exchange->Start(); });
  return exchange;
}

}  // namespace meshgate::kube
