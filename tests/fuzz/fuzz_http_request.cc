// libFuzzer target for the request side of meshgate's one HTTP stack
// (base/io/http_server.cc), which serves metrics (15090), readiness (15021),
// admin (15000) and meshgatectl serve: raw bytes go through Beast's request
// parser with the server's limits (16 KiB of header, 64 KiB of body), become
// an io::HttpRequest the way Connection::OnRead builds one, and the query is
// read with io::QueryValue as the handlers read ?cluster=, ?watch=,
// ?version=, ?timeout= and ?level=. No sockets: the parser is fed from memory.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/beast/http.hpp>

#include "absl/strings/match.h"
#include "base/io/http_server.h"

namespace {

namespace http = boost::beast::http;

void Fail(const std::string& what) {
  std::fprintf(stderr, "http_fuzz: %s\n", what.c_str());
  std::abort();
}

// The server's limits (http_server.cc: DoRead).
constexpr size_t kHeaderLimit = 16 * 1024;
constexpr size_t kBodyLimit = 64 * 1024;

void CheckQuery(const std::string& query) {
  for (const char* key : {"cluster", "watch", "version", "timeout", "level", ""}) {
    const std::string value = meshgate::io::QueryValue(query, key);
    if (value.size() > query.size()) Fail("query value longer than the query");
    if (!value.empty() && query.find(value) == std::string::npos) Fail("query value not from the query");
    if (value.find('&') != std::string::npos) Fail("query value spans a '&'");
  }
}

void CheckRequest(std::string_view raw) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(kBodyLimit);
  parser.eager(true);
  boost::beast::error_code ec;
  const size_t used = parser.put(boost::asio::buffer(raw.data(), raw.size()), ec);
  if (used > raw.size()) Fail("parser used more than it was given");
  if (ec || !parser.is_done()) return;  // the server answers 400 or waits for more
  const auto& req = parser.get();
  meshgate::io::HttpRequest request;
  request.method = std::string(req.method_string());
  const std::string target(req.target());
  const size_t q = target.find('?');
  request.path = target.substr(0, q);
  if (q != std::string::npos) request.query = target.substr(q + 1);
  for (const auto& field : req) request.headers.emplace_back(field.name_string(), field.value());
  request.body = req.body();
  if (request.body.size() > kBodyLimit) Fail("body past the limit accepted");
  if (request.method.empty()) Fail("request without a method");
  if (request.path.find('?') != std::string::npos) Fail("path keeps a '?'");
  if (target != request.path + (q == std::string::npos ? "" : "?" + request.query)) Fail("target not path?query");
  size_t header_bytes = 0;
  for (const auto& [name, value] : request.headers) {
    header_bytes += name.size() + value.size();
    // HeaderValue answers the first field of that name, in any case.
    std::string first;
    for (const auto& [n2, v2] : request.headers) {
      if (absl::EqualsIgnoreCase(n2, name)) {
        first = v2;
        break;
      }
    }
    if (meshgate::io::HeaderValue(request.headers, name) != first) Fail("HeaderValue misses header " + name);
  }
  if (header_bytes > kHeaderLimit) Fail("headers past the limit accepted");
  CheckQuery(request.query);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 128 * 1024) return 0;
  CheckRequest(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
