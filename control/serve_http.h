// meshgatectl serve's HTTP API over the Publisher's documents: GET
// /v1/routes, /v1/serviceentries, /v1/ca/{root-cert,cert-chain}.pem,
// /v1/kubernetes and /healthz, with ETags and bounded long polls
// (?watch=1&version=N). No sockets: serve.cc's HTTP server hands each request
// over, and the fuzz target (tests/fuzz/fuzz_serve_http.cc) calls Handle alone.
#pragma once

#include <chrono>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/io/http_server.h"

namespace boost::asio {
class io_context;
}

namespace meshgate::kubemesh {
struct KubeStatus;
}

namespace meshgate::control {

class Publisher;
struct Resource;

// What /healthz, /v1/kubernetes and the "syncing" answers read besides the
// Publisher: the API servers serve follows, and its DNS server.
class ServeSources {
 public:
  virtual ~ServeSources() = default;
  // The API server followers by cluster name (each status non-null).
  virtual std::map<std::string, const kubemesh::KubeStatus*> Followed() const = 0;
  // By cluster name: why its follower did not (re)start.
  virtual const std::map<std::string, std::string>& FollowErrors() const = 0;
  // "ADDRESS SUMMARY" of the DNS server; "" when there is none.
  virtual std::string DnsLine() const = 0;
};

class ServeHttp {
 public:
  // `sources` null: no API server followed, no DNS. Both must outlive this.
  ServeHttp(boost::asio::io_context& io, const Publisher& publisher, const ServeSources* sources);
  ~ServeHttp();
  ServeHttp(const ServeHttp&) = delete;
  ServeHttp& operator=(const ServeHttp&) = delete;

  // One request. `respond` runs once: at once, or for a long poll on `io`
  // when the document changes (Wake) or the poll times out.
  void Handle(const io::HttpRequest& request, io::HttpResponder respond);
  // `key`'s document has a new version: its long polls are answered.
  void Wake(const std::string& key);
  // Every held long poll answered now with 304, as its timeout would
  // (the fuzz target's way to never wait).
  void ExpireWatches();
  size_t watchers() const { return waiters_.size(); }

 private:
  struct Waiter;

  std::optional<io::HttpResponse> CheckCluster(const std::string& kind, std::string& cluster) const;
  void HandleWatch(const io::HttpRequest& request, const std::string& key, const Resource& r,
                   io::HttpResponder respond);
  absl::StatusOr<std::chrono::milliseconds> WatchTimeout(const std::string& text) const;
  void Park(const std::string& key, uint64_t version, io::HttpResponder respond, std::chrono::milliseconds timeout);
  io::HttpResponse Health() const;
  std::vector<std::string> KubeProblems() const;
  std::optional<io::HttpResponse> SyncingAnswer(const std::string& kind, const std::string& cluster) const;
  io::HttpResponse KubernetesJson() const;

  boost::asio::io_context& io_;
  const Publisher& publisher_;
  const ServeSources* sources_;
  std::list<Waiter> waiters_;
};

}  // namespace meshgate::control
