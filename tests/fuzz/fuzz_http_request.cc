// libFuzzer target for the request side of meshgate's one HTTP stack
// (base/io/http_server.cc), which serves metrics (15090), readiness (15021),
// admin (15000) and meshgatectl serve: raw bytes go through
// io::ParseHttpRequest, the very code Connection::OnRead runs on what it read
// (Beast's parser with the server's limits, 16 KiB of header, 64 KiB of
// body), and the query is read with io::QueryValue as the handlers read
// ?cluster=, ?watch=, ?version=, ?timeout= and ?level=. The handlers
// themselves are admin_http_fuzz's and serve_http_fuzz's.
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "tests/fuzz/http_fuzz_check.h"

namespace {

using meshgate::fuzz::Fail;
constexpr char kTarget[] = "http_fuzz";

void CheckQuery(const std::string& query) {
  for (const char* key : {"cluster", "watch", "version", "timeout", "level", ""}) {
    const std::string value = meshgate::io::QueryValue(query, key);
    if (value.size() > query.size()) Fail(kTarget, "query value longer than the query");
    if (!value.empty() && query.find(value) == std::string::npos) Fail(kTarget, "query value not from the query");
    if (value.find('&') != std::string::npos) Fail(kTarget, "query value spans a '&'");
  }
}

void CheckHeaders(const meshgate::io::HttpHeaders& headers) {
  size_t header_bytes = 0;
  for (const auto& field : headers) {
    header_bytes += field.first.size() + field.second.size();
    // HeaderValue answers the first field of that name, in any case.
    std::string first;
    for (const auto& other : headers) {
      if (absl::EqualsIgnoreCase(other.first, field.first)) {
        first = other.second;
        break;
      }
    }
    if (meshgate::io::HeaderValue(headers, field.first) != first) Fail(kTarget, "HeaderValue misses " + field.first);
  }
  if (header_bytes > meshgate::io::kMaxRequestHeader) Fail(kTarget, "headers past the limit accepted");
}

void CheckRequest(std::string_view raw) {
  const auto request = meshgate::fuzz::RequestFrom(kTarget, raw);
  if (!request) return;
  if (request->body.size() > meshgate::io::kMaxRequestBody) Fail(kTarget, "body past the limit accepted");
  if (request->method.empty()) Fail(kTarget, "request without a method");
  if (request->path.find('?') != std::string::npos) Fail(kTarget, "path keeps a '?'");
  // The request line is "METHOD SP TARGET SP VERSION" (RFC 9112 section 3), so
  // the target, path?query, is in the bytes read.
  const std::string target = request->path + (request->query.empty() ? "" : "?" + request->query);
  if (raw.find(request->path) == std::string_view::npos) Fail(kTarget, "path not from the request");
  if (raw.find(target) == std::string_view::npos && raw.find(request->path + "?") == std::string_view::npos) {
    Fail(kTarget, "target not path?query");
  }
  CheckHeaders(request->headers);
  CheckQuery(request->query);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 128 * 1024) return 0;
  CheckRequest(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
