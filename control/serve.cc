// `meshgatectl serve`: publishes the Publisher's documents over HTTP(S), with
// versions, ETags and bounded long polls, and re-renders them when an input
// file changes or a cluster's Kubernetes API server (clusters[].kubernetes,
// one KubeSource each, shared with meshgate) reports a change. Reuses
// meshgate's HTTP stack, file watcher and API server follower.
#include "control/serve.h"

#include <algorithm>
#include <csignal>
#include <list>
#include <ctime>
#include <optional>
#include <set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/duration.h"
#include "base/io/config_watcher.h"
#include "base/io/http_server.h"
#include "base/address.h"
#include "config/kube/kube_source.h"
#include "control/dns/dns_server.h"
#include "control/dns/dns_zone.h"
#include "control/publisher.h"

namespace meshgate::control {

namespace asio = boost::asio;
using io::HttpRequest;
using io::HttpResponder;
using io::HttpResponse;
using io::QueryValue;

namespace {

constexpr auto kDefaultWatch = std::chrono::seconds(30);
constexpr size_t kMaxWaiters = 10000;
constexpr char kIndex[] =
    "GET /v1/routes?cluster=NAME, /v1/serviceentries?cluster=NAME, /v1/ca/root-cert.pem[?cluster=NAME], "
    "/v1/ca/cert-chain.pem?cluster=NAME, /v1/kubernetes, /healthz; add &watch=1&version=N[&timeout=SECONDS] to wait for a "
    "newer version\n";

io::HttpResponse Text(int status, std::string body) { return {status, "text/plain; charset=utf-8", std::move(body)}; }

// The kind of document a path asks for ("routes/", ...), "" for none.
std::string KindOf(const std::string& path) {
  if (path == "/v1/routes") return "routes/";
  if (path == "/v1/serviceentries") return "serviceentries/";
  if (path == "/v1/ca/root-cert.pem") return "root-cert/";
  if (path == "/v1/ca/cert-chain.pem") return "cert-chain/";
  return "";
}

class Server {
 public:
  Server(asio::io_context& io, std::string config_path) : io_(io), publisher_(std::move(config_path)) {}

  // Renders everything once, watches the inputs and binds; an error names
  // what is wrong. The "serving" line comes last: when it is logged, a
  // change to any input is seen.
  absl::Status Start(const std::string& listen_override) {
    publisher_.Refresh();
    for (const auto& p : publisher_.problems()) spdlog::error("{}", p);
    if (publisher_.config().clusters.empty()) {
      return absl::InvalidArgumentError(publisher_.problems().empty() ? "no clusters" : publisher_.problems()[0]);
    }
    if (absl::Status s = FollowClusters(/*starting=*/true); !s.ok()) return s;
    Watch();
    const config::ServeConfig& config = publisher_.config();
    io::HttpServerOptions options;
    options.tls_cert_chain_file = config.tls_cert_chain;
    options.tls_key_file = config.tls_key;
    const std::string listen = listen_override.empty() ? config.listen : listen_override;
    auto server = io::HttpServer::Start(
        io_, listen, [this](const io::HttpRequest& r, io::HttpResponder respond) { Handle(r, std::move(respond)); }, options);
    if (!server.ok()) return server.status();
    http_ = *std::move(server);
    spdlog::info("meshgatectl serve: {} cluster(s), serving {} on {}", config.clusters.size(),
                 config.tls_cert_chain.empty() ? "HTTP" : "HTTPS", http_->bound_address());
    return StartDns();
  }

 private:
  struct Waiter {
    std::string key;
    uint64_t version;
    io::HttpResponder respond;
    std::unique_ptr<asio::steady_timer> timer;
  };

  void Watch() {
    watched_ = publisher_.watch_paths();
    watcher_ = std::make_unique<io::ConfigWatcher>(io_, watched_, std::chrono::milliseconds(100),
                                                      [this](const std::string& why) { Refresh(why); });
  }

  void Refresh(const std::string& why) {
    std::vector<std::string> changed = publisher_.Refresh();
    const uint64_t stopped = kube_stopped_;
    FollowClusters(/*starting=*/false).IgnoreError();  // a failure is logged and shown in /healthz
    if (kube_stopped_ != stopped) {  // a cluster no longer followed: its objects leave its documents
      for (std::string& key : publisher_.Render()) {
        if (std::find(changed.begin(), changed.end(), key) == changed.end()) changed.push_back(std::move(key));
      }
    }
    for (const auto& p : publisher_.problems()) spdlog::error("{} (keeping the last good version)", p);
    Announce(changed, why);
    const auto& dns = publisher_.config().dns;
    if (dns_ && (!dns || dns->listen != dns_config_.listen || dns->cluster != dns_config_.cluster)) {
      spdlog::warn("meshgatectl serve: dns: changed in {}; keeping the running {} until a restart",
                   why, dns_config_.listen);
    }
    // A cluster or path added to the config: watch the new set, after this callback returns.
    if (publisher_.watch_paths() != watched_) asio::post(io_, [this] { Watch(); });
  }

  // New versions: logged, long polls woken, the DNS zone rebuilt when a
  // serviceentries/ document changed.
  void Announce(const std::vector<std::string>& changed, const std::string& why) {
    bool entries_changed = false;
    for (const std::string& key : changed) {
      spdlog::info("{}: version {} ({})", key, publisher_.Find(key)->version, why);
      Wake(key);
      entries_changed |= key.rfind("serviceentries/", 0) == 0;
    }
    if (dns_ && entries_changed) {
      auto zone = BuildZone();
      spdlog::info("DNS zone {}: serial {}, {} host(s)", zone->apex(), zone->serial(), zone->size());
      dns_->SetZone(std::move(zone));
    }
  }

  // One KubeSource per cluster with kubernetes:, (re)started when its
  // settings change and stopped when the cluster goes. Credentials that do
  // not load stop serve at start; on a reload the running source (if any)
  // keeps going and the error is shown in /healthz.
  absl::Status FollowClusters(bool starting) {
    std::set<std::string> wanted;
    for (const auto& cluster : publisher_.config().clusters) {
      if (!cluster.kubernetes.enabled()) continue;
      wanted.insert(cluster.name);
      auto it = kube_.find(cluster.name);
      if (it != kube_.end() && it->second.options == cluster.kubernetes) continue;
      const std::string name = cluster.name;
      auto source = kubemesh::KubeSource::Create(io_, cluster.kubernetes, &ValidateAlone,
                                                 [this, name](const std::vector<config::MeshSource>& objects,
                                                              const std::string& why) {
                                                   return OnKube(name, objects, why);
                                                 });
      if (!source.ok()) {
        std::string error = absl::StrCat("cluster ", name, ": kubernetes: ", source.status().message());
        if (starting) return absl::InvalidArgumentError(error);
        spdlog::error("{}{}", error, it != kube_.end() ? " (the running source keeps going)" : "");
        kube_errors_[name] = std::move(error);
        continue;
      }
      kube_errors_.erase(name);
      if (it != kube_.end()) spdlog::info("cluster {}: kubernetes: settings changed; following again", name);
      publisher_.ResetKubeObjects(name);  // nothing new from it until the new source's first sync
      ClusterKube& kube = kube_[name];
      kube.options = cluster.kubernetes;
      kube.source = *std::move(source);
      spdlog::info("cluster {}: following its Kubernetes API server ({})", name, kube.source->status().source);
      kube.source->Start();
    }
    for (auto it = kube_.begin(); it != kube_.end();) {
      if (wanted.count(it->first)) {
        ++it;
        continue;
      }
      spdlog::info("cluster {}: no longer following its Kubernetes API server", it->first);
      publisher_.ResetKubeObjects(it->first);
      ++kube_stopped_;
      it = kube_.erase(it);
    }
    for (auto it = kube_errors_.begin(); it != kube_errors_.end();) {
      it = wanted.count(it->first) ? std::next(it) : kube_errors_.erase(it);
    }
    return absl::OkStatus();
  }

  // Each object alone, exactly as routes/ are checked (ClusterMeshErrors).
  static std::vector<std::string> ValidateAlone(const config::MeshSource& source) {
    config::MeshSources one;
    one.sources.push_back(source);
    return ClusterMeshErrors(one);
  }

  // A cluster's synced objects (the bad ones already left out): re-renders
  // its routes/ and every consumer's serviceentries/. "" or why the set
  // does not load together (its last good routes/ keep serving).
  std::string OnKube(const std::string& cluster, const std::vector<config::MeshSource>& objects,
                     const std::string& why) {
    publisher_.SetKubeObjects(cluster, objects);
    const std::vector<std::string> changed = publisher_.Render();
    for (const auto& p : publisher_.problems()) spdlog::error("{} (keeping the last good version)", p);
    Announce(changed, absl::StrCat("cluster ", cluster, ": ", why));
    const std::string prefix = absl::StrCat("routes/", cluster, ": ");
    for (const std::string& p : publisher_.problems()) {
      if (p.rfind(prefix, 0) == 0) return p;
    }
    return "";
  }

  // After the HTTP line, so tests reading that line's address never take this one.
  absl::Status StartDns() {
    if (!publisher_.config().dns) return absl::OkStatus();
    dns_config_ = *publisher_.config().dns;
    dns_serial_ = static_cast<uint32_t>(std::time(nullptr));
    auto server = dns::DnsServer::Start(dns_config_.listen, BuildZone());
    if (!server.ok()) return server.status();
    dns_ = *std::move(server);
    spdlog::info("meshgatectl serve: DNS for zone {} ({}) on udp+tcp {}", dns_config_.zone,
                 dns_config_.cluster.empty() ? "every cluster's VIPs" : "cluster " + dns_config_.cluster + "'s VIPs",
                 dns_->bound_address());
    return absl::OkStatus();
  }

  // The zone from exactly the VIPs in the published ServiceEntries: one
  // consuming cluster's, or every cluster's (a host they number differently
  // then gets each VIP, and a warning).
  std::shared_ptr<const dns::Zone> BuildZone() {
    std::map<std::string, std::vector<std::string>> hosts;
    for (const auto& [consumer, vips] : publisher_.published_vips()) {
      if (!dns_config_.cluster.empty() && consumer != dns_config_.cluster) continue;
      for (const auto& [host, vip] : vips) {
        auto& list = hosts[host];
        if (std::find(list.begin(), list.end(), vip) == list.end()) list.push_back(vip);
      }
    }
    for (const auto& [host, vips] : hosts) {
      if (vips.size() > 1 && warned_.insert(host).second) {
        spdlog::warn("meshgatectl serve: DNS: {} has VIPs {} in different clusters; set dns.cluster to answer "
                     "one cluster's", host, absl::StrJoin(vips, ", "));
      }
    }
    std::optional<uint32_t> ns;
    if (auto a = base::ParseListenAddress(dns_config_.listen); a.ok()) {
      boost::system::error_code ec;
      const auto ip = asio::ip::make_address(a->ip, ec);
      if (!ec && ip.is_v4() && !ip.is_unspecified()) ns = ip.to_v4().to_uint();
    }
    return dns::Zone::Make(dns_config_.zone, hosts, dns_serial_++, ns);
  }

  void Wake(const std::string& key) {
    const Resource* r = publisher_.Find(key);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->key == key && r->version != it->version) {
        it->timer->cancel();
        it->respond(Answer(*r));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }

  static io::HttpResponse Answer(const Resource& r, int status = 200) {
    io::HttpResponse response{status, r.content_type, status == 200 ? r.body : ""};
    response.headers = {{"ETag", r.etag}, {"X-Meshgate-Version", std::to_string(r.version)}, {"Cache-Control", "no-cache"}};
    return response;
  }

  void Handle(const io::HttpRequest& request, io::HttpResponder respond) {
    if (request.method != "GET") return respond(Text(405, "use GET\n"));
    if (request.path == "/healthz") return respond(Health());
    if (request.path == "/v1/kubernetes") return respond(KubernetesJson());
    const std::string kind = KindOf(request.path);
    // Fixed names only: no part of a request ever becomes a file path.
    if (kind.empty()) return respond(Text(404, absl::StrCat("not found; ", kIndex)));
    std::string cluster = io::QueryValue(request.query, "cluster");
    if (auto refusal = CheckCluster(kind, cluster)) return respond(*std::move(refusal));
    const Resource* r = publisher_.Find(kind + cluster);
    if (r == nullptr && (kind == "routes/" || kind == "serviceentries/")) {
      if (auto syncing = SyncingAnswer(kind, cluster)) return respond(*std::move(syncing));
    }
    if (r == nullptr) {
      const bool ca = kind == "root-cert/" || kind == "cert-chain/";
      return respond(Text(ca ? 404 : 503, ca ? absl::StrCat("cluster ", cluster, " has no CA configured\n")
                                             : absl::StrCat(kind, cluster, " has no valid version yet; see /healthz\n")));
    }
    const std::string watch = io::QueryValue(request.query, "watch");
    if (watch != "1" && watch != "true") {
      const bool same = io::HeaderValue(request.headers, "If-None-Match") == r->etag;
      return respond(Answer(*r, same ? 304 : 200));
    }
    HandleWatch(request, kind + cluster, *r, std::move(respond));
  }

  // Nothing when `cluster` names a known cluster, else the answer. The root
  // is shared, so without ?cluster= any cluster's copy will do.
  std::optional<io::HttpResponse> CheckCluster(const std::string& kind, std::string& cluster) const {
    const auto names = publisher_.cluster_names();
    if (cluster.empty() && kind == "root-cert/") {
      for (const auto& name : names) {
        if (publisher_.Find(kind + name)) {
          cluster = name;
          break;
        }
      }
      if (cluster.empty()) return Text(404, "no cluster has a CA configured (clusters[].ca)\n");
    }
    if (cluster.empty()) return Text(400, "missing ?cluster=NAME\n");
    if (std::find(names.begin(), names.end(), cluster) == names.end()) {
      return Text(404, absl::StrCat("unknown cluster \"", io::EchoForBody(cluster), "\"; known: ",
                                    absl::StrJoin(names, ", "), "\n"));
    }
    return std::nullopt;
  }

  // watch=1&version=N: answered at once unless N is the current version;
  // then held until a change or the timeout.
  void HandleWatch(const io::HttpRequest& request, const std::string& key, const Resource& r,
                   io::HttpResponder respond) {
    uint64_t version = 0;
    if (!absl::SimpleAtoi(io::QueryValue(request.query, "version"), &version)) {
      return respond(Text(400, "watch=1 needs version=N (the X-Meshgate-Version you have)\n"));
    }
    if (version != r.version) return respond(Answer(r));
    auto timeout = WatchTimeout(io::QueryValue(request.query, "timeout"));
    if (!timeout.ok()) return respond(Text(400, std::string(timeout.status().message()) + "\n"));
    if (waiters_.size() >= kMaxWaiters) return respond(Text(503, "too many watchers; retry later\n"));
    Park(key, version, std::move(respond), *timeout);
  }

  absl::StatusOr<std::chrono::milliseconds> WatchTimeout(const std::string& text) const {
    std::chrono::milliseconds timeout = kDefaultWatch;
    if (!text.empty()) {
      int64_t seconds = 0;
      if (absl::SimpleAtoi(text, &seconds) && seconds > 0) {
        timeout = std::chrono::seconds(seconds);
      } else if (auto d = base::ParseDuration(text); d.ok() && d->count() > 0) {
        timeout = *d;
      } else {
        return absl::InvalidArgumentError("timeout must be seconds (30) or a duration (30s)");
      }
    }
    return std::min(timeout, publisher_.config().max_watch);
  }

  void Park(const std::string& key, uint64_t version, io::HttpResponder respond, std::chrono::milliseconds timeout) {
    waiters_.push_back({key, version, std::move(respond), std::make_unique<asio::steady_timer>(io_)});
    auto it = std::prev(waiters_.end());
    it->timer->expires_after(timeout);
    it->timer->async_wait([this, it](const boost::system::error_code& ec) {
      if (ec) return;  // woken by a change, and already answered
      it->respond(Answer(*publisher_.Find(it->key), 304));
      waiters_.erase(it);
    });
  }

  io::HttpResponse Health() const {
    std::vector<std::string> problems = publisher_.problems();
    const std::vector<std::string> kube = KubeProblems();
    problems.insert(problems.end(), kube.begin(), kube.end());
    std::string body = problems.empty() ? "ok\n" : "ok, serving the last good versions; problems:\n";
    for (const auto& p : problems) absl::StrAppend(&body, "  ", p, "\n");
    for (const auto& [name, k] : kube_) {
      const kubemesh::KubeStatus& s = k.source->status();
      if (!s.synced) {
        absl::StrAppend(&body, "cluster ", name, ": kubernetes syncing, nothing published from it yet; pending: ",
                        s.Pending(), "\n");
      } else {
        absl::StrAppend(&body, "cluster ", name, ": kubernetes synced, ", s.objects, " object(s), ",
                        s.rejected.size(), " rejected\n");
      }
    }
    for (const auto& name : publisher_.cluster_names()) {
      for (const char* kind : {"routes/", "serviceentries/", "root-cert/", "cert-chain/"}) {
        if (const Resource* r = publisher_.Find(kind + name)) {
          absl::StrAppend(&body, kind, name, " version ", r->version, " etag ", r->etag, "\n");
        }
      }
    }
    absl::StrAppend(&body, "watchers ", waiters_.size(), "\n");
    if (dns_) absl::StrAppend(&body, "dns ", dns_->bound_address(), " ", dns_->Summary(), "\n");
    return Text(200, std::move(body));
  }

  // The problems of the API servers followed: sources that could not start,
  // objects rejected alone ("Kind ns/name: field: what"), sets refused.
  std::vector<std::string> KubeProblems() const {
    std::vector<std::string> out;
    for (const auto& [name, error] : kube_errors_) out.push_back(error);
    for (const auto& [name, k] : kube_) {
      const kubemesh::KubeStatus& s = k.source->status();
      for (const kubemesh::KubeRejected& r : s.rejected) {
        for (const std::string& e : r.errors) out.push_back(absl::StrCat("cluster ", name, ": kubernetes: rejected ", e));
      }
      if (!s.last_error.empty()) out.push_back(absl::StrCat("cluster ", name, ": kubernetes: ", s.last_error));
    }
    return out;
  }

  // routes/ and serviceentries/ never published because a cluster they come
  // from is still in its first sync: 503 "syncing", with what is pending.
  std::optional<io::HttpResponse> SyncingAnswer(const std::string& kind, const std::string& cluster) const {
    std::string waiting;
    for (const auto& name : publisher_.cluster_names()) {
      const bool input = kind == "routes/" ? name == cluster : name != cluster;
      if (!input || !publisher_.Syncing(name)) continue;
      auto it = kube_.find(name);
      const std::string pending = it == kube_.end() ? "its source did not start" : it->second.source->status().Pending();
      absl::StrAppend(&waiting, waiting.empty() ? "" : "; ", "cluster ", name, " (pending: ", pending, ")");
    }
    if (waiting.empty()) return std::nullopt;
    return Text(503, absl::StrCat(kind, cluster, " is syncing: waiting for the first complete list of the "
                                  "Kubernetes API server of ", waiting, "; see /healthz\n"));
  }

  // GET /v1/kubernetes: per cluster followed, its KubeStatus exactly as
  // meshgate's admin GET /kubernetes shows it; "errors": sources that did not start.
  io::HttpResponse KubernetesJson() const {
    boost::json::object clusters;
    for (const auto& [name, k] : kube_) clusters[name] = boost::json::parse(kubemesh::KubeStatusJson(k.source->status()));
    boost::json::object errors;
    for (const auto& [name, error] : kube_errors_) errors[name] = error;
    boost::json::object root{{"clusters", std::move(clusters)}, {"errors", std::move(errors)}};
    return {200, "application/json", boost::json::serialize(root) + "\n"};
  }

  struct ClusterKube {
    config::KubernetesConfig options;
    std::unique_ptr<kubemesh::KubeSource> source;
  };

  asio::io_context& io_;
  Publisher publisher_;
  std::unique_ptr<io::HttpServer> http_;
  std::unique_ptr<io::ConfigWatcher> watcher_;
  std::vector<std::string> watched_;
  std::list<Waiter> waiters_;
  config::ServeConfig::Dns dns_config_;
  uint32_t dns_serial_ = 0;  // RFC 1982 serial arithmetic: seeded by the clock, one up per change
  std::set<std::string> warned_;
  std::map<std::string, ClusterKube> kube_;         // by cluster; after publisher_: stopped before it
  std::map<std::string, std::string> kube_errors_;  // by cluster: why its source did not (re)start
  uint64_t kube_stopped_ = 0;                       // sources stopped, ever
  std::unique_ptr<dns::DnsServer> dns_;  // last: stopped before what its zone came from
};

}  // namespace

int RunServe(const std::string& config_path, const std::string& listen_override) {
  asio::io_context io{1};
  Server server(io, config_path);
  if (absl::Status s = server.Start(listen_override); !s.ok()) {
    spdlog::critical("meshgatectl serve: {}", std::string(s.message()));
    return 1;
  }
  asio::signal_set stop(io, SIGINT, SIGTERM);
  stop.async_wait([&io](const boost::system::error_code& ec, int) {
    if (!ec) io.stop();
  });
  io.run();
  spdlog::info("meshgatectl serve: stopped");
  return 0;
}

}  // namespace meshgate::control
