#include "proxy/cluster_stats.h"

#include <algorithm>
#include <tuple>

namespace meshgate::proxy {

namespace {

// Istio's SNI clusters name the service's host; its short name and namespace
// come from the Kubernetes form "<name>.<namespace>.svc.<domain>".
void ServiceLabels(const config::Cluster& cluster, std::string& name, std::string& ns) {
  const std::string& host = cluster.host;
  const size_t dot = host.find('.');
  name = host.substr(0, dot);
  if (!cluster.service_namespace.empty()) {
    ns = cluster.service_namespace;
  } else if (dot != std::string::npos) {
    const size_t next = host.find('.', dot + 1);
    ns = host.substr(dot + 1, next == std::string::npos ? std::string::npos : next - dot - 1);
  }
}

bool SameIdentity(const config::WorkloadIdentity& a, const config::WorkloadIdentity& b) {
  return std::tie(a.name, a.ns, a.app, a.version, a.canonical_service, a.canonical_revision, a.principal) ==
         std::tie(b.name, b.ns, b.app, b.version, b.canonical_service, b.canonical_revision, b.principal);
}

bool Matches(const IstioTcpStats& s, const config::WorkloadIdentity& identity, bool has_endpoint) {
  return s.endpoint == has_endpoint && SameIdentity(s.workload, identity);
}

}  // namespace

std::string_view ToString(ResponseFlag flag) {
  switch (flag) {
#define MESHGATE_RESPONSE_FLAG_CASE(name, str) \
  case ResponseFlag::name:                     \
    return str;
    MESHGATE_RESPONSE_FLAGS(MESHGATE_RESPONSE_FLAG_CASE)
#undef MESHGATE_RESPONSE_FLAG_CASE
  }
  return "-";
}

// What Envoy's filters set for each way a session ends here (Envoy
// source/common/tcp_proxy/tcp_proxy.cc unless noted):
// - no_route, alpn_not_istio: no filter chain matches the SNI and ALPN
//   (Istio builds one per exported cluster, pilot gateway.go
//   builtAutoPassthroughFilterChains). Envoy's NR also means "no matching
//   filter chain", but Istio's stats filter lives in the chain, so Istio
//   itself records nothing; we keep the one NR series (see metrics.cc).
// - no_endpoints: initializeUpstreamConnection finds no host: UH.
// - upstream_overflow: the cluster's connections resource is full: UO.
// - upstream_connect_failed: each failed attempt sets UF
//   (onUpstreamEvent while connecting, onConnectTimeout), the attempt past
//   max_connect_attempts URX (onConnectMaxAttempts).
// - max_duration: onMaxDownstreamConnectionDuration sets DT.
// - idle_timeout: onIdleTimeout only closes (no flag; SI is HTTP's).
// - rbac_denied: Envoy's network RBAC filter closes with termination
//   details "rbac_access_denied_matched_policy[...]" and no response flag.
// - closes and errors after the connect, and the drain: no flag (tcp_proxy
//   sets DC/UC nowhere; those are the HTTP connection manager's and router's).
std::optional<ResponseFlag> IstioResponseFlag(Termination why) {
  switch (why) {
    case Termination::kNoRoute:
    case Termination::kAlpnNotIstio:
    case Termination::kNotTls:
    case Termination::kHelloTooLarge:
    case Termination::kHelloMalformed:
    case Termination::kHelloTimeout:
    case Termination::kHelloClosed:
    case Termination::kRefused:  // before the ClientHello: no cluster yet
      return std::nullopt;
    case Termination::kNoEndpoints:
      return ResponseFlag::kNoHealthyUpstream;
    case Termination::kUpstreamOverflow:
      return ResponseFlag::kUpstreamOverflow;
    case Termination::kUpstreamConnectFailed:
      return ResponseFlag::kConnectFailed;
    case Termination::kMaxDuration:
      return ResponseFlag::kDurationTimeout;
    case Termination::kRbacDenied:
    case Termination::kIdleTimeout:
    case Termination::kDownstreamClose:
    case Termination::kUpstreamClose:
    case Termination::kDownstreamError:
    case Termination::kUpstreamError:
    case Termination::kDrained:
      return ResponseFlag::kNone;
  }
  return ResponseFlag::kNone;
}

uint64_t IstioTcpStats::open() const {
  uint64_t o = 0, c = 0;
  for (size_t i = 0; i < kResponseFlagCount; ++i) {
    o += opened[i].value();
    c += closed[i].value();
  }
  return o > c ? o - c : 0;
}

ClusterStats::ClusterStats(const config::Cluster& cluster)
    : name(cluster.name),
      host(cluster.host),
      connect_seconds({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
      session_seconds({0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 14400}) {
  ServiceLabels(cluster, service_name, service_namespace);
}

std::vector<std::shared_ptr<IstioTcpStats>> ClusterStatsRegistry::IstioFor(const config::Cluster& cluster,
                                                                          ClusterStats& stats) {
  std::vector<std::shared_ptr<IstioTcpStats>> kept;
  // Series still open stay (sessions on an older table count in them).
  for (const auto& s : stats.istio) {
    if (s->open() > 0) kept.push_back(s);
  }
  std::vector<std::shared_ptr<IstioTcpStats>> next;
  std::vector<std::shared_ptr<IstioTcpStats>> by_endpoint;
  by_endpoint.reserve(cluster.endpoints.size() + 1);
  // The series of (identity, has_endpoint) in `next`, else the one the
  // cluster had, else a new one.
  auto reuse = [&](const config::WorkloadIdentity& identity, bool has_endpoint) {
    for (const auto& s : next) {
      if (Matches(*s, identity, has_endpoint)) return s;
    }
    auto old = std::find_if(stats.istio.begin(), stats.istio.end(),
                            [&](const auto& s) { return Matches(*s, identity, has_endpoint); });
    next.push_back(old != stats.istio.end() ? *old : std::make_shared<IstioTcpStats>(identity, has_endpoint));
    return next.back();
  };
  const std::shared_ptr<IstioTcpStats> none = reuse({}, false);
  for (const config::Endpoint& ep : cluster.endpoints) by_endpoint.push_back(reuse(ep.workload(), true));
  by_endpoint.push_back(none);
  for (const auto& s : kept) {
    if (std::find(next.begin(), next.end(), s) == next.end()) next.push_back(s);
  }
  stats.istio = std::move(next);
  return by_endpoint;
}

config::PersistentVector<ClusterStats> ClusterStatsRegistry::ForTable(const config::RouteTable& table) {
  return StatsFor(table).clusters;
}

TableStats ClusterStatsRegistry::StatsFor(const config::RouteTable& table) {
  static const config::RouteTable kEmpty({}, {});
  return StatsFor(table, kEmpty, TableStats{});
}

TableStats ClusterStatsRegistry::StatsFor(const config::RouteTable& table, const config::RouteTable& previous_table,
                                          const TableStats& previous) {
  std::vector<std::shared_ptr<ClusterStats>> clusters;
  std::vector<std::shared_ptr<const EndpointSeries>> endpoints;
  clusters.reserve(table.clusters().size());
  endpoints.reserve(table.clusters().size());
  absl::flat_hash_map<std::string, std::shared_ptr<ClusterStats>> next;
  next.reserve(table.clusters().size());
  for (const auto& cluster : table.cluster_ptrs()) {
    const uint32_t id = cluster->id;
    if (id < previous.clusters.size() && previous_table.cluster_ptr(id) == cluster) {
      clusters.push_back(previous.clusters[id]);  // the same cluster: its series stand
      endpoints.push_back(previous.endpoints[id]);
    } else {
      auto it = by_name_.find(cluster->name);
      clusters.push_back(it != by_name_.end() ? it->second : std::make_shared<ClusterStats>(*cluster));
      endpoints.push_back(std::make_shared<const EndpointSeries>(IstioFor(*cluster, *clusters.back())));
    }
    next[cluster->name] = clusters.back();
  }
  Replace(std::move(next));
  return {config::PersistentVector<ClusterStats>(std::move(clusters)), EndpointStats(std::move(endpoints))};
}

TableStats ClusterStatsRegistry::WithCluster(const TableStats& previous, const config::Cluster& cluster) {
  TableStats out = previous;
  // Same name as before, so the registry already holds it.
  std::shared_ptr<ClusterStats>& stats = by_name_[cluster.name];
  if (!stats) stats = std::make_shared<ClusterStats>(cluster);
  out.clusters.Set(cluster.id, stats);
  out.endpoints.Set(cluster.id, std::make_shared<const EndpointSeries>(IstioFor(cluster, *stats)));
  return out;
}

void ClusterStatsRegistry::Replace(absl::flat_hash_map<std::string, std::shared_ptr<ClusterStats>> next) {
  for (auto& [name, stats] : by_name_) {
    if (!next.contains(name) && stats->counters.cx_active.value() > 0) {
      next[name] = stats;
    }
  }
  by_name_ = std::move(next);
}

std::vector<std::shared_ptr<ClusterStats>> ClusterStatsRegistry::All() const {
  std::vector<std::shared_ptr<ClusterStats>> out;
  for (const auto& [name, stats] : by_name_) out.push_back(stats);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->name < b->name; });
  return out;
}

}  // namespace meshgate::proxy
