// libFuzzer target for meshgatectl serve's HTTP API, fed raw requests: the
// bytes become a request as the HTTP server reads them (io::ParseHttpRequest)
// and go to control::ServeHttp::Handle, as serve.cc's server hands them over,
// over the documents a Publisher renders from tests/data/fuzz-serve-state
// (two clusters, their meshes and CA certificates). Long polls never wait: a
// held one is answered at once by ExpireWatches, as its timeout would answer
// it. Each request must be answered exactly once, with a valid status and a
// bounded error body (tests/fuzz/http_fuzz_check.h).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "control/publisher.h"
#include "control/serve_http.h"
#include "tests/fuzz/http_fuzz_check.h"

namespace {

using meshgate::fuzz::Fail;
using meshgate::io::HttpRequest;
using meshgate::io::HttpResponse;
constexpr char kTarget[] = "serve_http_fuzz";

struct Serve {
  boost::asio::io_context io{1};
  std::unique_ptr<meshgate::control::Publisher> publisher;
  std::unique_ptr<meshgate::control::ServeHttp> api;
};

// Built once; never destroyed (the process ends with the fuzzer).
Serve& TheServe() {
  static Serve* serve = [] {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("fuzz"));
    auto* s = new Serve;
    s->publisher = std::make_unique<meshgate::control::Publisher>(MESHGATE_TESTDATA "/fuzz-serve-state/serve.yaml");
    s->publisher->Refresh();
    if (!s->publisher->problems().empty()) Fail(kTarget, "the fixture does not load: " + s->publisher->problems()[0]);
    for (const char* key : {"routes/cluster1", "serviceentries/cluster2", "root-cert/cluster1", "cert-chain/cluster2"}) {
      if (s->publisher->Find(key) == nullptr) Fail(kTarget, std::string("the fixture publishes no ") + key);
    }
    s->api = std::make_unique<meshgate::control::ServeHttp>(s->io, *s->publisher, nullptr);
    return s;
  }();
  return *serve;
}

// Handles `request`; every long poll still held is then expired. The answer,
// and whether it came only at the expiry (the poll was held).
struct Outcome {
  HttpResponse response;
  bool held = false;
};

Outcome Exchange(Serve& serve, const HttpRequest& request) {
  int answers = 0;
  Outcome outcome;
  serve.api->Handle(request, [&](HttpResponse response) {
    ++answers;
    outcome.response = std::move(response);
  });
  const int at_once = answers;
  serve.api->ExpireWatches();
  serve.io.poll();  // the cancelled timers' handlers run (and do nothing)
  serve.io.restart();
  if (answers != 1) Fail(kTarget, std::to_string(answers) + " answers to one request");
  if (serve.api->watchers() != 0) Fail(kTarget, "a watcher left after ExpireWatches");
  outcome.held = at_once == 0;
  meshgate::fuzz::CheckResponse(kTarget, outcome.response);
  meshgate::fuzz::Trace(kTarget, request, outcome.response);
  return outcome;
}

std::string HeaderOf(const HttpResponse& response, std::string_view name) {
  return meshgate::io::HeaderValue(response.headers, name);
}

// The same watch at the version just answered: now it must be held (a 304
// at the expiry) or refused for its timeout (400).
void WatchCurrent(Serve& serve, const HttpRequest& request, const std::string& version) {
  HttpRequest again = request;
  std::vector<std::string> parts = absl::StrSplit(request.query, '&');
  for (std::string& part : parts) {
    if (part.rfind("version=", 0) == 0) part = "version=" + version;
  }
  again.query = absl::StrJoin(parts, "&");
  const Outcome outcome = Exchange(serve, again);
  const bool ok = outcome.held ? outcome.response.status == 304 : outcome.response.status == 400;
  if (!ok) {
    Fail(kTarget, "a watch at the current version " + version + " answered " +
                      std::to_string(outcome.response.status) + (outcome.held ? " after holding" : " at once"));
  }
}

void CheckServe(Serve& serve, const HttpRequest& request) {
  const Outcome first = Exchange(serve, request);
  const std::string version = HeaderOf(first.response, "X-Meshgate-Version");
  if (first.held) {
    if (first.response.status != 304) Fail(kTarget, "a held watch expired with " + std::to_string(first.response.status));
    return;
  }
  // A 200 for a watch with another version: ask again at the version given.
  const std::string watch = meshgate::io::QueryValue(request.query, "watch");
  const bool watching = watch == "1" || watch == "true";
  if (watching && first.response.status == 200 && !version.empty() &&
      !meshgate::io::QueryValue(request.query, "version").empty()) {
    WatchCurrent(serve, request, version);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 128 * 1024) return 0;
  Serve& serve = TheServe();
  const auto request = meshgate::fuzz::RequestFrom(kTarget, std::string_view(reinterpret_cast<const char*>(data), size));
  if (request) CheckServe(serve, *request);
  return 0;
}
