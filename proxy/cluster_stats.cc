#include "proxy/cluster_stats.h"

#include <algorithm>

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

}  // namespace

ClusterStats::ClusterStats(const config::Cluster& cluster)
    : name(cluster.name),
      host(cluster.host),
      connect_seconds({0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
      session_seconds({0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 14400}) {
  ServiceLabels(cluster, service_name, service_namespace);
}

std::vector<std::shared_ptr<ClusterStats>> ClusterStatsRegistry::ForTable(
    const config::RouteTable& table) {
  std::vector<std::shared_ptr<ClusterStats>> out;
  absl::flat_hash_map<std::string, std::shared_ptr<ClusterStats>> next;
  for (const config::Cluster& cluster : table.clusters()) {
    auto it = by_name_.find(cluster.name);
    auto stats = it != by_name_.end() ? it->second : std::make_shared<ClusterStats>(cluster);
    next[cluster.name] = stats;
    out.push_back(std::move(stats));
  }
  // Keep a removed cluster's series while it still has sessions.
  for (auto& [name, stats] : by_name_) {
    if (!next.contains(name) && stats->counters.cx_active.value() > 0) {
      next[name] = stats;
    }
  }
  by_name_ = std::move(next);
  return out;
}

std::vector<std::shared_ptr<ClusterStats>> ClusterStatsRegistry::All() const {
  std::vector<std::shared_ptr<ClusterStats>> out;
  for (const auto& [name, stats] : by_name_) out.push_back(stats);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->name < b->name; });
  return out;
}

}  // namespace meshgate::proxy
