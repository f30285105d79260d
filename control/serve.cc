// `meshgatectl serve`: publishes the Publisher's documents over HTTP(S)
// (the answers, with versions, ETags and bounded long polls, are
// serve_http.cc's), and re-renders them when an input
// file changes or a cluster's Kubernetes API server (clusters[].kubernetes,
// one KubeSource each, shared with meshgate) reports a change. Reuses
// meshgate's HTTP stack, file watcher and API server follower.
#include "control/serve.h"

#include <algorithm>
#include <csignal>
#include <ctime>
#include <optional>
#include <set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/io/config_watcher.h"
#include "base/io/http_server.h"
#include "base/address.h"
#include "config/kube/kube_source.h"
#include "control/dns/dns_server.h"
#include "control/dns/dns_zone.h"
#include "control/publisher.h"
#include "control/serve_http.h"

namespace meshgate::control {

namespace asio = boost::asio;

namespace {

class Server : public ServeSources {
 public:
  Server(asio::io_context& io, std::string config_path)
      : io_(io), publisher_(std::move(config_path)), api_(io, publisher_, this) {}

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
        io_, listen, [this](const io::HttpRequest& r, io::HttpResponder respond) { api_.Handle(r, std::move(respond)); }, options);
    if (!server.ok()) return server.status();
    http_ = *std::move(server);
    spdlog::info("meshgatectl serve: {} cluster(s), serving {} on {}", config.clusters.size(),
                 config.tls_cert_chain.empty() ? "HTTP" : "HTTPS", http_->bound_address());
    return StartDns();
  }

 private:
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
      api_.Wake(key);
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

  // ServeSources: what serve's answers read of the API servers followed and DNS.
  std::map<std::string, const kubemesh::KubeStatus*> Followed() const override {
    std::map<std::string, const kubemesh::KubeStatus*> out;
    for (const auto& [name, k] : kube_) out.emplace(name, &k.source->status());
    return out;
  }
  const std::map<std::string, std::string>& FollowErrors() const override { return kube_errors_; }
  std::string DnsLine() const override {
    return dns_ ? absl::StrCat(dns_->bound_address(), " ", dns_->Summary()) : std::string();
  }

  struct ClusterKube {
    config::KubernetesConfig options;
    std::unique_ptr<kubemesh::KubeSource> source;
  };

  asio::io_context& io_;
  Publisher publisher_;
  ServeHttp api_;  // before http_, whose handler calls it
  std::unique_ptr<io::HttpServer> http_;
  std::unique_ptr<io::ConfigWatcher> watcher_;
  std::vector<std::string> watched_;
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
