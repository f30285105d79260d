// What the HTTP fuzz targets (http_fuzz, admin_http_fuzz, serve_http_fuzz)
// assert of the server's side: raw bytes become a request exactly as the
// server reads them (io::ParseHttpRequest, the code Connection::OnRead runs),
// and every answer has a status a client can read and never echoes an
// unbounded part of the request (issue 15, item 6: io::EchoForBody's 256 bytes).
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "base/io/http_server.h"

namespace meshgate::fuzz {

// An error page holds fixed text, at most one bounded echo (256 bytes of the
// request plus "...(N bytes)") and names from the fixture's config.
constexpr size_t kMaxErrorBody = 2048;

[[noreturn]] inline void Fail(const char* target, const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", target, what.c_str());
  std::abort();
}

inline bool HasLineBreak(std::string_view text) { return text.find_first_of("\r\n") != std::string_view::npos; }

// RFC 9110 section 15: a three-digit status, 1xx to 5xx. A header field that
// holds CR or LF would split the response (RFC 9112 section 2.2).
inline void CheckResponse(const char* target, const io::HttpResponse& response) {
  if (response.status < 100 || response.status > 599) Fail(target, "status " + std::to_string(response.status));
  if (response.content_type.empty() || HasLineBreak(response.content_type)) Fail(target, "bad content type");
  for (const auto& [name, value] : response.headers) {
    if (name.empty() || HasLineBreak(name) || HasLineBreak(value)) Fail(target, "bad header \"" + name + "\"");
  }
  if (response.status >= 400 && response.body.size() > kMaxErrorBody) {
    Fail(target, "error " + std::to_string(response.status) + " with a " + std::to_string(response.body.size()) +
                     "-byte body (an unbounded echo?)");
  }
}

// MESHGATE_FUZZ_TRACE=1: each answer's status and first body line on
// stderr, to see what a replayed seed reaches.
inline void Trace(const char* target, const io::HttpRequest& request, const io::HttpResponse& response) {
  static const bool on = std::getenv("MESHGATE_FUZZ_TRACE") != nullptr;
  if (!on) return;
  const std::string head = response.body.substr(0, std::min<size_t>(response.body.find('\n'), 100));
  std::fprintf(stderr, "%s: %s %s?%s -> %d %s\n", target, request.method.c_str(), request.path.c_str(),
               request.query.substr(0, 100).c_str(), response.status, head.c_str());
}

// The request the server would hand its handler; nullopt when it would
// answer 400 itself (checked here) or wait for more bytes.
inline std::optional<io::HttpRequest> RequestFrom(const char* target, std::string_view raw) {
  io::HttpRequestParse parsed = io::ParseHttpRequest(raw);
  switch (parsed.state) {
    case io::HttpRequestParse::State::kRequest:
      return std::move(parsed.request);
    case io::HttpRequestParse::State::kRefused:
      if (parsed.refusal.status != 400) Fail(target, "refused with " + std::to_string(parsed.refusal.status));
      CheckResponse(target, parsed.refusal);
      return std::nullopt;
    case io::HttpRequestParse::State::kIncomplete:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace meshgate::fuzz
