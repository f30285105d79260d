// Live state of one cluster's endpoints, shared by every worker: active and
// total connections, passive outlier detection (ejections) and the verdict of
// active health checks. Counters are relaxed atomics: a pick reads them without
// a lock, and a slightly stale count only shifts one pick.
//
// No clocks and no sockets: callers pass the time in (steady-clock
// nanoseconds), so ejection and recovery are plain functions, tested as such.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/model/route_table.h"

namespace meshgate::lb {

struct EndpointState {
  std::atomic<uint32_t> active{0};   // connections open or being opened
  std::atomic<uint64_t> total{0};    // connections opened
  std::atomic<uint32_t> consecutive_failures{0};
  std::atomic<bool> ejected{false};  // by outlier detection
  std::atomic<int64_t> ejected_until_ns{0};
  std::atomic<uint32_t> ejections{0};
  std::atomic<bool> check_failed{false};  // by active health checks
};

enum class HealthChange { kNone, kEjected, kReturned };

class ClusterState {
 public:
  // Panic threshold: below this share of healthy endpoints, balance across
  // all ready ones (Envoy's default, 50%).
  static constexpr uint32_t kDefaultPanicPercent = 50;

  explicit ClusterState(const config::Cluster& cluster, uint32_t panic_percent = kDefaultPanicPercent);
  ClusterState(const ClusterState&) = delete;
  ClusterState& operator=(const ClusterState&) = delete;

  size_t size() const { return endpoints_.size(); }
  EndpointState& endpoint(size_t i) { return endpoints_[i]; }
  const EndpointState& endpoint(size_t i) const { return endpoints_[i]; }

  // Takes new connections: ready in config, not ejected, not failing checks.
  bool Healthy(size_t i) const {
    return ready_[i] && !endpoints_[i].ejected.load(std::memory_order_relaxed) &&
           !endpoints_[i].check_failed.load(std::memory_order_relaxed);
  }
  bool Ready(size_t i) const { return ready_[i]; }
  // True when so few ready endpoints are healthy that health is ignored.
  bool Panic() const {
    const uint32_t unhealthy = unhealthy_.load(std::memory_order_relaxed);
    const uint32_t healthy = ready_count_ > unhealthy ? ready_count_ - unhealthy : 0;
    return ready_count_ > 0 && uint64_t{healthy} * 100 < uint64_t{panic_percent_} * ready_count_;
  }
  // What a pick may use: healthy, or merely ready when in panic.
  bool Usable(size_t i, bool panic) const { return panic ? ready_[i] : Healthy(i); }

  uint32_t ready_count() const { return ready_count_; }
  uint32_t healthy_count() const {
    const uint32_t unhealthy = unhealthy_.load(std::memory_order_relaxed);
    return ready_count_ > unhealthy ? ready_count_ - unhealthy : 0;
  }

  // Connections of the whole cluster, for connectionPool.tcp.maxConnections.
  // TryAcquire counts one unless `max` are already open.
  bool TryAcquire(uint32_t max);
  void Release() { active_.fetch_sub(1, std::memory_order_relaxed); }
  uint32_t active() const { return active_.load(std::memory_order_relaxed); }

  // Passive outlier detection. A connect failure or timeout counts towards
  // consecutive errors; reaching the threshold ejects the endpoint for
  // baseEjectionTime x times ejected (capped at max(base, 300 s), as Istio),
  // unless maxEjectionPercent of the cluster is already out.
  HealthChange OnConnectFailure(size_t i, const config::OutlierDetection& od, int64_t now_ns);
  void OnConnectSuccess(size_t i) {
    endpoints_[i].consecutive_failures.store(0, std::memory_order_relaxed);
  }
  // Returns endpoints whose ejection has run out (run every `interval`). Calls
  // on_return(i) once per endpoint that came back.
  template <typename F>
  void Sweep(int64_t now_ns, F&& on_return) {
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      EndpointState& e = endpoints_[i];
      if (!e.ejected.load(std::memory_order_relaxed)) continue;
      if (e.ejected_until_ns.load(std::memory_order_relaxed) > now_ns) continue;
      bool was = true;
      if (!e.ejected.compare_exchange_strong(was, false, std::memory_order_relaxed)) continue;
      e.consecutive_failures.store(0, std::memory_order_relaxed);
      ejected_.fetch_sub(1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_relaxed);
      if (ready_[i] && !e.check_failed.load(std::memory_order_relaxed)) {
        unhealthy_.fetch_sub(1, std::memory_order_relaxed);
      }
      on_return(i);
    }
  }
  // Takes over endpoint `from` of `old`'s outlier state (a new table version of
  // the same cluster): an ejected endpoint stays ejected across a reload or a
  // DNS update. Connection counts stay with the version that made them.
  void InheritOutlierState(size_t i, const ClusterState& old, size_t from);
  // Active health checks' verdict. Returns whether it changed.
  bool SetCheckFailed(size_t i, bool failed);

  uint32_t ejected_count() const { return ejected_.load(std::memory_order_relaxed); }
  // Changes whenever an endpoint's health does, so per-worker views of health
  // (locality loads) are recomputed only then.
  uint64_t health_generation() const { return generation_.load(std::memory_order_relaxed); }

 private:
  std::vector<EndpointState> endpoints_;
  std::vector<bool> ready_;
  uint32_t ready_count_ = 0;
  uint32_t panic_percent_;
  std::atomic<uint32_t> unhealthy_{0};  // ready but ejected or failing checks
  std::atomic<uint32_t> ejected_{0};
  std::atomic<uint32_t> active_{0};
  std::atomic<uint64_t> generation_{0};
};

// Every cluster of one route table version, by Cluster::id.
class HealthTable {
 public:
  explicit HealthTable(const config::RouteTable& table);
  // A new version: clusters matched by name and endpoints by address:port
  // inherit their outlier state from `previous` (the version `previous_table` had).
  HealthTable(const config::RouteTable& table, const config::RouteTable& previous_table,
              const HealthTable& previous);
  ClusterState& cluster(uint32_t id) { return *clusters_[id]; }
  const ClusterState& cluster(uint32_t id) const { return *clusters_[id]; }
  size_t size() const { return clusters_.size(); }

 private:
  std::vector<std::unique_ptr<ClusterState>> clusters_;
};

// For the admin API: one row per endpoint.
struct EndpointView {
  std::string address;
  uint16_t port = 0;
  uint32_t weight = 1;
  std::string locality;
  std::string health;  // "healthy", "not_ready", "ejected", "failed_check"
  uint32_t ejections = 0;
  uint32_t active = 0;
  uint64_t total = 0;
};
struct ClusterView {
  std::string name;
  std::string policy;  // "ROUND_ROBIN", "LEAST_REQUEST", "MAGLEV", ...
  uint32_t active = 0;
  std::optional<uint32_t> max_connections;
  bool panic = false;
  std::vector<EndpointView> endpoints;
};
std::vector<ClusterView> Describe(const config::RouteTable& table, const HealthTable& health);

}  // namespace meshgate::lb
