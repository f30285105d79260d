#include "lb/cluster_state.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "lb/balancer.h"

namespace meshgate::lb {

namespace {

constexpr int64_t kMaxEjectionNs = 300'000'000'000;  // Istio's maxEjectionTime default

int64_t Ns(std::chrono::milliseconds d) { return static_cast<int64_t>(d.count()) * 1'000'000; }

}  // namespace

ClusterState::ClusterState(const config::Cluster& cluster, uint32_t panic_percent)
    : endpoints_(cluster.endpoints.size()), panic_percent_(panic_percent) {
  ready_.reserve(cluster.endpoints.size());
  for (const config::Endpoint& e : cluster.endpoints) {
    ready_.push_back(e.ready);
    ready_count_ += e.ready ? 1 : 0;
  }
}

bool ClusterState::TryAcquire(uint32_t max) {
  uint32_t current = active_.load(std::memory_order_relaxed);
  do {
    if (current >= max) return false;
  } while (!active_.compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
  return true;
}

HealthChange ClusterState::OnConnectFailure(size_t i, const config::OutlierDetection& od,
                                            int64_t now_ns) {
  EndpointState& e = endpoints_[i];
  const uint32_t threshold = od.consecutive_gateway_errors.value_or(od.consecutive_5xx_errors);
  const uint32_t failures = e.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (threshold == 0 || failures < threshold) return HealthChange::kNone;
  if (e.ejected.load(std::memory_order_relaxed)) return HealthChange::kNone;
  // maxEjectionPercent: Envoy ejects only while the ejected share is below it.
  const uint64_t ejected = ejected_.load(std::memory_order_relaxed);
  if (endpoints_.empty() || ejected * 100 >= uint64_t{od.max_ejection_percent} * endpoints_.size()) {
    return HealthChange::kNone;
  }
  bool was = false;
  if (!e.ejected.compare_exchange_strong(was, true, std::memory_order_relaxed)) {
    return HealthChange::kNone;  // another worker got there first and logged it
  }
  const uint32_t times = e.ejections.fetch_add(1, std::memory_order_relaxed) + 1;
  const int64_t base = Ns(od.base_ejection_time);
  const int64_t duration = std::min<int64_t>(base * times, std::max(base, kMaxEjectionNs));
  e.ejected_until_ns.store(now_ns + duration, std::memory_order_relaxed);
  ejected_.fetch_add(1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_relaxed);
  if (ready_[i] && !e.check_failed.load(std::memory_order_relaxed)) {
    unhealthy_.fetch_add(1, std::memory_order_relaxed);
  }
  return HealthChange::kEjected;
}

void ClusterState::InheritOutlierState(size_t i, const ClusterState& old, size_t from) {
  const EndpointState& o = old.endpoints_[from];
  EndpointState& e = endpoints_[i];
  e.consecutive_failures.store(o.consecutive_failures.load(std::memory_order_relaxed),
                               std::memory_order_relaxed);
  e.ejections.store(o.ejections.load(std::memory_order_relaxed), std::memory_order_relaxed);
  if (!o.ejected.load(std::memory_order_relaxed) || e.ejected.load(std::memory_order_relaxed)) return;
  e.ejected_until_ns.store(o.ejected_until_ns.load(std::memory_order_relaxed),
                           std::memory_order_relaxed);
  e.ejected.store(true, std::memory_order_relaxed);
  ejected_.fetch_add(1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_relaxed);
  if (ready_[i] && !e.check_failed.load(std::memory_order_relaxed)) {
    unhealthy_.fetch_add(1, std::memory_order_relaxed);
  }
}

bool ClusterState::SetCheckFailed(size_t i, bool failed) {
  EndpointState& e = endpoints_[i];
  bool was = !failed;
  if (!e.check_failed.compare_exchange_strong(was, failed, std::memory_order_relaxed)) return false;
  generation_.fetch_add(1, std::memory_order_relaxed);
  if (ready_[i] && !e.ejected.load(std::memory_order_relaxed)) {
    if (failed) {
      unhealthy_.fetch_add(1, std::memory_order_relaxed);
    } else {
      unhealthy_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  return true;
}

HealthTable::HealthTable(const config::RouteTable& table) {
  clusters_.reserve(table.clusters().size());
  for (const config::Cluster& cluster : table.clusters()) {
    clusters_.push_back(std::make_unique<ClusterState>(cluster));
  }
}

HealthTable::HealthTable(const config::RouteTable& table, const config::RouteTable& previous_table,
                         const HealthTable& previous)
    : HealthTable(table) {
  absl::flat_hash_map<std::string_view, const config::Cluster*> old_by_name;
  for (const config::Cluster& c : previous_table.clusters()) old_by_name[c.name] = &c;
  for (const config::Cluster& cluster : table.clusters()) {
    const auto old = old_by_name.find(cluster.name);
    if (old == old_by_name.end()) continue;
    const config::Cluster& before = *old->second;
    absl::flat_hash_map<std::pair<std::string_view, uint16_t>, size_t> old_index;
    for (size_t i = 0; i < before.endpoints.size(); ++i) {
      old_index[{before.endpoints[i].address, before.endpoints[i].port}] = i;
    }
    for (size_t i = 0; i < cluster.endpoints.size(); ++i) {
      const auto it = old_index.find({cluster.endpoints[i].address, cluster.endpoints[i].port});
      if (it == old_index.end()) continue;
      clusters_[cluster.id]->InheritOutlierState(i, previous.cluster(before.id), it->second);
    }
  }
}

std::vector<ClusterView> Describe(const config::RouteTable& table, const HealthTable& health) {
  std::vector<ClusterView> out;
  for (const config::Cluster& cluster : table.clusters()) {
    const ClusterState& state = health.cluster(cluster.id);
    ClusterView& view = out.emplace_back();
    view.name = cluster.name;
    view.policy = std::string(PolicyName(cluster));
    view.active = state.active();
    if (cluster.policy.connection_pool) view.max_connections = cluster.policy.connection_pool->max_connections;
    view.panic = state.Panic();
    for (size_t i = 0; i < cluster.endpoints.size(); ++i) {
      const config::Endpoint& e = cluster.endpoints[i];
      const EndpointState& s = state.endpoint(i);
      EndpointView& ev = view.endpoints.emplace_back();
      ev.address = e.address;
      ev.port = e.port;
      ev.weight = e.weight;
      ev.locality = e.locality;
      ev.health = !e.ready                                           ? "not_ready"
                  : s.ejected.load(std::memory_order_relaxed)        ? "ejected"
                  : s.check_failed.load(std::memory_order_relaxed)   ? "failed_check"
                                                                     : "healthy";
      ev.ejections = s.ejections.load(std::memory_order_relaxed);
      ev.active = s.active.load(std::memory_order_relaxed);
      ev.total = s.total.load(std::memory_order_relaxed);
    }
  }
  return out;
}

}  // namespace meshgate::lb
