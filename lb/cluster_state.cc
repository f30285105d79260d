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

// The word moves by compare-and-swap, and unhealthy_ moves only on its edges
// between "no flags" and "some flags": up before the swap that leaves 0 (and
// back down if that swap loses), down after the swap that returns to 0. Two
// writers setting or clearing different flags at once thus count the endpoint
// exactly once, and the count never drops below the number of unhealthy
// ready endpoints, so it cannot wrap.
bool ClusterState::ChangeFlag(size_t i, uint8_t flag, bool on) {
  std::atomic<uint8_t>& word = endpoints_[i].health;
  uint8_t old = word.load(std::memory_order_relaxed);
  uint8_t next;
  for (;;) {
    next = on ? static_cast<uint8_t>(old | flag) : static_cast<uint8_t>(old & ~flag);
    if (next == old) return false;
    const bool leaves_zero = ready_[i] && old == 0;
    if (leaves_zero) unhealthy_.fetch_add(1, std::memory_order_relaxed);
    if (word.compare_exchange_weak(old, next, std::memory_order_acq_rel, std::memory_order_relaxed)) break;
    if (leaves_zero) unhealthy_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (ready_[i] && next == 0) unhealthy_.fetch_sub(1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  return true;
}

bool ClusterState::ReserveEjection(uint32_t max_percent) {
  // maxEjectionPercent: Envoy ejects only while the ejected share is below it.
  uint32_t current = ejected_.load(std::memory_order_relaxed);
  do {
    if (endpoints_.empty() || uint64_t{current} * 100 >= uint64_t{max_percent} * endpoints_.size()) {
      return false;
    }
  } while (!ejected_.compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
  return true;
}

HealthChange ClusterState::OnConnectFailure(size_t i, const config::OutlierDetection& od,
                                            int64_t now_ns) {
  EndpointState& e = endpoints_[i];
  const uint32_t threshold = od.consecutive_gateway_errors.value_or(od.consecutive_5xx_errors);
  const uint32_t failures = e.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (threshold == 0 || failures < threshold) return HealthChange::kNone;
  if (e.ejected_until_ns.load(std::memory_order_relaxed) != 0) return HealthChange::kNone;
  if (!ReserveEjection(od.max_ejection_percent)) return HealthChange::kNone;
  const uint32_t times = e.ejections.load(std::memory_order_relaxed) + 1;
  const int64_t base = Ns(od.base_ejection_time);
  const int64_t duration = std::min<int64_t>(base * times, std::max(base, kMaxEjectionNs));
  int64_t free = 0;
  if (!e.ejected_until_ns.compare_exchange_strong(free, std::max<int64_t>(now_ns + duration, 1),
                                                  std::memory_order_relaxed)) {
    ejected_.fetch_sub(1, std::memory_order_relaxed);
    return HealthChange::kNone;  // another worker got there first and logged it
  }
  e.ejections.fetch_add(1, std::memory_order_relaxed);
  ChangeFlag(i, kEjected, true);  // release: a sweep that sees the flag sees the deadline
  return HealthChange::kEjected;
}

bool ClusterState::TryReturn(size_t i, int64_t now_ns) {
  EndpointState& e = endpoints_[i];
  if (!e.ejected()) return false;
  int64_t until = e.ejected_until_ns.load(std::memory_order_relaxed);
  if (until == EndpointState::kReturning || until > now_ns) return false;
  if (!e.ejected_until_ns.compare_exchange_strong(until, EndpointState::kReturning,
                                                  std::memory_order_relaxed)) {
    return false;
  }
  e.consecutive_failures.store(0, std::memory_order_relaxed);
  ChangeFlag(i, kEjected, false);
  ejected_.fetch_sub(1, std::memory_order_relaxed);
  e.ejected_until_ns.store(0, std::memory_order_release);  // free to be ejected again
  return true;
}

void ClusterState::InheritOutlierState(size_t i, const ClusterState& old, size_t from) {
  const EndpointState& o = old.endpoints_[from];
  EndpointState& e = endpoints_[i];
  e.consecutive_failures.store(o.consecutive_failures.load(std::memory_order_relaxed),
                               std::memory_order_relaxed);
  e.ejections.store(o.ejections.load(std::memory_order_relaxed), std::memory_order_relaxed);
  if (!o.ejected() || e.ejected()) return;
  const int64_t until = o.ejected_until_ns.load(std::memory_order_relaxed);
  if (until <= 0) return;  // a sweep is returning it right now
  e.ejected_until_ns.store(until, std::memory_order_relaxed);
  ejected_.fetch_add(1, std::memory_order_relaxed);
  ChangeFlag(i, kEjected, true);
}

HealthTable::HealthTable(const config::RouteTable& table) {
  std::vector<std::shared_ptr<ClusterState>> states;
  states.reserve(table.clusters().size());
  for (const config::Cluster& cluster : table.clusters()) {
    states.push_back(std::make_shared<ClusterState>(cluster));
  }
  clusters_ = config::PersistentVector<ClusterState>(std::move(states));
}

std::shared_ptr<ClusterState> HealthTable::Successor(const config::Cluster& cluster, const config::Cluster& before,
                                                     const ClusterState& old) {
  auto state = std::make_shared<ClusterState>(cluster);
  absl::flat_hash_map<std::pair<std::string_view, uint16_t>, size_t> old_index;
  for (size_t i = 0; i < before.endpoints.size(); ++i) {
    old_index[{before.endpoints[i].address, before.endpoints[i].port}] = i;
  }
  for (size_t i = 0; i < cluster.endpoints.size(); ++i) {
    const auto it = old_index.find({cluster.endpoints[i].address, cluster.endpoints[i].port});
    if (it != old_index.end()) state->InheritOutlierState(i, old, it->second);
  }
  return state;
}

HealthTable::HealthTable(const config::RouteTable& table, const config::RouteTable& previous_table,
                         const HealthTable& previous) {
  std::vector<std::shared_ptr<ClusterState>> states;
  states.reserve(table.clusters().size());
  for (const auto& cluster : table.cluster_ptrs()) {
    const uint32_t id = cluster->id;
    if (id < previous_table.clusters().size() && previous_table.cluster_ptr(id) == cluster) {
      states.push_back(previous.clusters_[id]);  // the same cluster: the same state
      continue;
    }
    const config::Cluster* before = previous_table.FindByName(cluster->name);
    states.push_back(before == nullptr ? std::make_shared<ClusterState>(*cluster)
                                       : Successor(*cluster, *before, previous.cluster(before->id)));
  }
  clusters_ = config::PersistentVector<ClusterState>(std::move(states));
}

std::shared_ptr<HealthTable> HealthTable::WithCluster(const config::Cluster& next,
                                                      const config::Cluster& before) const {
  std::shared_ptr<HealthTable> out(new HealthTable());
  out->clusters_ = clusters_;
  out->clusters_.Set(next.id, Successor(next, before, cluster(before.id)));
  return out;
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
    view.exported = cluster.exported;
    view.export_detail = cluster.export_detail;
    for (size_t i = 0; i < cluster.endpoints.size(); ++i) {
      const config::Endpoint& e = cluster.endpoints[i];
      const EndpointState& s = state.endpoint(i);
      EndpointView& ev = view.endpoints.emplace_back();
      ev.address = e.address;
      ev.port = e.port;
      ev.weight = e.weight;
      ev.locality = e.locality();
      ev.network = e.network();
      const uint8_t flags = s.flags();
      ev.health = !e.ready                     ? "not_ready"
                  : (flags & kEjected) != 0     ? "ejected"
                  : (flags & kCheckFailed) != 0 ? "failed_check"
                                                : "healthy";
      ev.ejections = s.ejections.load(std::memory_order_relaxed);
      ev.active = s.active.load(std::memory_order_relaxed);
      ev.total = s.total.load(std::memory_order_relaxed);
    }
    for (const config::Endpoint& e : cluster.out_of_view) {  // listed, never dialled
      EndpointView& ev = view.endpoints.emplace_back();
      ev.address = e.address.empty() ? e.hostname() : std::string_view(e.address);
      ev.port = e.port;
      ev.weight = e.weight;
      ev.locality = e.locality();
      ev.network = e.network();
      ev.in_view = false;
      ev.health = "out_of_view";
    }
  }
  return out;
}

}  // namespace meshgate::lb
