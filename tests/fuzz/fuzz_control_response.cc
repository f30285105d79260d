// libFuzzer target for the control client's handling of what `meshgatectl
// serve` answers on /v1/routes: the input is a sequence of raw HTTP/1.1
// responses (status line, ETag and X-Meshgate-Version headers, a YAML body),
// each read by Beast's response parser with the client's body limit, as
// io::HttpFetch reads them, then taken by HandleControlAnswer with the mesh
// loader applying the body, as the gateway does. The status it keeps must
// stay consistent from answer to answer.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/str_join.h"
#include "config/mesh/mesh_loader.h"
#include "proxy/runtime/control_source.h"

namespace {

namespace http = boost::beast::http;
using meshgate::proxy::ControlStatus;

void Fail(const std::string& what) {
  std::fprintf(stderr, "control_fuzz: %s\n", what.c_str());
  std::abort();
}

// One response from the front of `in` (consumed), as HttpFetch's Finish()
// turns it into an HttpResult; a parse error is a failed read.
meshgate::io::HttpResult NextResponse(std::string_view& in) {
  http::response_parser<http::string_body> parser;
  parser.eager(true);
  parser.body_limit(64 * 1024);  // the client's real cap is 256 MiB; inputs stay small
  boost::beast::error_code ec;
  const size_t used = parser.put(boost::asio::buffer(in.data(), in.size()), ec);
  in.remove_prefix(std::min(used, in.size()));
  if (ec == http::error::need_more || (!ec && !parser.is_done())) {
    parser.put_eof(ec);
    in = {};
  }
  meshgate::io::HttpResult result;
  if (ec || !parser.is_done()) {
    result.error = "read: " + (ec ? ec.message() : std::string("partial message"));
    if (in.size() == 0 || ec) in = {};
    return result;
  }
  const auto& res = parser.get();
  result.status = static_cast<int>(res.result_int());
  result.content_type = std::string(res[http::field::content_type]);
  for (const auto& field : res) result.headers.emplace_back(field.name_string(), field.value());
  result.body = res.body();
  return result;
}

std::string Apply(const std::string& resources, const std::string&) {
  const auto loaded = meshgate::config::LoadMeshFromString(resources, "control", {{".global", ".svc.cluster.local"}});
  return absl::StrJoin(loaded.errors, "; ");
}

void CheckStep(const ControlStatus& before, const ControlStatus& after, const meshgate::io::HttpResult& r,
               const meshgate::proxy::ControlAnswer& answer) {
  if (after.state != "connecting" && after.state != "synced" && after.state != "unreachable" &&
      after.state != "rejected") {
    Fail("unknown state " + after.state);
  }
  if (!answer.ok) {
    if (after.fetch_errors != before.fetch_errors + 1) Fail("failure not counted once");
    if (after.consecutive_failures != before.consecutive_failures + 1) Fail("failures in a row not counted");
    if (after.last_error.empty() || after.last_error.size() > 300 + r.error.size()) Fail("failure without a bounded error");
    if (after.applied_version != before.applied_version || after.synced_once != before.synced_once) {
      Fail("a failure changed what is serving");
    }
    return;
  }
  if (r.status != 200 && r.status != 304) Fail("status " + std::to_string(r.status) + " taken as an answer");
  if (after.consecutive_failures != 0) Fail("answer did not reset the failures");
  const uint64_t changes = (after.updates_applied - before.updates_applied) + (after.updates_rejected - before.updates_rejected);
  if (changes > 1 || (r.status == 304 && changes != 0)) Fail("one answer applied more than once");
  if (after.updates_applied != before.updates_applied && after.applied_etag != meshgate::io::HeaderValue(r.headers, "ETag")) {
    Fail("applied without its ETag");
  }
  if (after.state == "synced" && !after.synced_once) Fail("synced without a version applied");
  if (after.state == "rejected" && after.last_error.empty()) Fail("rejected without a reason");
  if (after.state != "rejected" && !after.last_error.empty()) Fail("error kept after a good answer");
  if (r.status == 200 && after.state == "synced" && after.applied_version != after.seen_version) {
    Fail("synced to a version other than the one seen");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  if (size > 256 * 1024) return 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ControlStatus status;
  status.url = "http://meshgatectl:15180";
  status.cluster = "cluster1";
  for (int step = 0; step < 16 && !in.empty(); ++step) {
    const meshgate::io::HttpResult result = NextResponse(in);
    const ControlStatus before = status;
    const auto answer = meshgate::proxy::HandleControlAnswer(status, result, Apply, 1000.0 + step);
    CheckStep(before, status, result, answer);
  }
  return 0;
}
