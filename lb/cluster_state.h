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

// Why an endpoint is out of rotation. Both writers (outlier detection on the
// workers and the sweep, active health checks on the control loop) change the
// one word with compare-and-swap, so a transition is decided on the whole set
// of reasons, never on one flag read after the other was written.
enum HealthFlag : uint8_t {
  kEjected = 1 << 0,      // by outlier detection
  kCheckFailed = 1 << 1,  // by active health checks
};

struct EndpointState {
  std::atomic<uint32_t> active{0};   // connections open or being opened
  std::atomic<uint64_t> total{0};    // connections opened
  std::atomic<uint32_t> consecutive_failures{0};
  std::atomic<uint8_t> health{0};    // HealthFlag bits; 0: nothing against it
  // When the ejection ends. Also who owns it: 0 when free; the worker that
  // swaps 0 for a deadline is the one that ejects, and writes the deadline
  // before the kEjected flag, so a sweep that sees the flag sees its deadline;
  // kReturning while a sweep puts the endpoint back.
  std::atomic<int64_t> ejected_until_ns{0};
  static constexpr int64_t kReturning = -1;
  std::atomic<uint32_t> ejections{0};

  uint8_t flags() const { return health.load(std::memory_order_acquire); }
  bool ejected() const { return (flags() & kEjected) != 0; }
  bool check_failed() const { return (flags() & kCheckFailed) != 0; }
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
    return ready_[i] && endpoints_[i].health.load(std::memory_order_relaxed) == 0;
  }
  bool Ready(size_t i) const { return ready_[i]; }
  // True when so few ready endpoints are healthy that health is ignored.
  bool Panic() const {
    return ready_count_ > 0 && uint64_t{healthy_count()} * 100 < uint64_t{panic_percent_} * ready_count_;
  }
  // What a pick may use: healthy, or merely ready when in panic.
  bool Usable(size_t i, bool panic) const { return panic ? ready_[i] : Healthy(i); }

  uint32_t ready_count() const { return ready_count_; }
  uint32_t healthy_count() const {
    const uint32_t unhealthy = unhealthy_.load(std::memory_order_relaxed);
    return ready_count_ > unhealthy ? ready_count_ - unhealthy : 0;
  }

  // Connections of the whole cluster, for connectionPool.tcp.maxConnections.
  // TryAcquire counts one unless `max` are already open. The data path takes
  // and gives these back through an UpstreamLease (lb/upstream_lease.h).
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
  // Returns endpoints whose ejection has run out (run every `interval`; see
  // OutlierSweep). Calls on_return(i) once per endpoint that came back.
  template <typename F>
  void Sweep(int64_t now_ns, F&& on_return) {
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      if (TryReturn(i, now_ns)) on_return(i);
    }
  }
  // Takes over endpoint `from` of `old`'s outlier state (a new table version of
  // the same cluster): an ejected endpoint stays ejected across a reload or a
  // DNS update. Connection counts stay with the version that made them.
  void InheritOutlierState(size_t i, const ClusterState& old, size_t from);
  // Active health checks' verdict. Returns whether it changed.
  bool SetCheckFailed(size_t i, bool failed) { return ChangeFlag(i, kCheckFailed, failed); }

  uint32_t ejected_count() const { return ejected_.load(std::memory_order_relaxed); }
  // Changes whenever an endpoint's health does, so per-worker views of health
  // (locality loads) are recomputed only then.
  uint64_t health_generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  // Sets (on) or clears one HealthFlag of endpoint i; false when it already was.
  bool ChangeFlag(size_t i, uint8_t flag, bool on);
  bool TryReturn(size_t i, int64_t now_ns);
  // Counts one more ejected endpoint unless `max_percent` of the cluster is out.
  bool ReserveEjection(uint32_t max_percent);

  std::vector<EndpointState> endpoints_;
  std::vector<bool> ready_;
  uint32_t ready_count_ = 0;
  uint32_t panic_percent_;
  // Ready endpoints whose health word is not 0. Raised before the word leaves
  // 0 and lowered after it returns to 0, so it is never below the true count
  // (and cannot wrap); it can be above it only while a writer is mid-swap.
  std::atomic<uint32_t> unhealthy_{0};
  std::atomic<uint32_t> ejected_{0};  // the same rule, for the kEjected flag
  std::atomic<uint32_t> active_{0};
  std::atomic<uint64_t> generation_{0};
};

// Every cluster of one route table version, by Cluster::id. A cluster's
// state is shared with the previous version when the cluster object is the
// same (RouteTable::WithCluster, RouteTable::Reuse): its ejections, checks and
// connection counts simply carry on, and building a version costs only the
// clusters that changed.
class HealthTable {
 public:
  explicit HealthTable(const config::RouteTable& table);
  // A new version: a cluster whose object `previous_table` also holds (at the
  // same id) keeps its state; others matched by name, and their endpoints by
  // address:port, inherit their outlier state from `previous`.
  HealthTable(const config::RouteTable& table, const config::RouteTable& previous_table,
              const HealthTable& previous);
  // This version with cluster `next.id` changed from `before` (a table built
  // by WithCluster): every other cluster's state is shared.
  std::shared_ptr<HealthTable> WithCluster(const config::Cluster& next, const config::Cluster& before) const;

  ClusterState& cluster(uint32_t id) { return *clusters_[id]; }
  const ClusterState& cluster(uint32_t id) const { return *clusters_[id]; }
  // The object behind cluster(id), to compare across versions.
  const ClusterState* state_ptr(uint32_t id) const { return clusters_[id].get(); }
  size_t size() const { return clusters_.size(); }

 private:
  HealthTable() = default;
  // A new state for `cluster`, inheriting `before`'s endpoints by address.
  static std::shared_ptr<ClusterState> Successor(const config::Cluster& cluster, const config::Cluster& before,
                                                 const ClusterState& old);

  config::PersistentVector<ClusterState> clusters_;
};

// For the admin API: one row per endpoint.
struct EndpointView {
  std::string address;
  uint16_t port = 0;
  uint32_t weight = 1;
  std::string locality;
  std::string health;  // "healthy", "not_ready", "ejected", "failed_check", "out_of_view"
  std::string network;   // Istio network; empty: unset
  bool in_view = true;   // false: another network, never dialled
  uint32_t ejections = 0;
  uint32_t active = 0;
  uint64_t total = 0;
};
struct ClusterView {
  std::string name;
  bool exported = true;
  std::string export_detail;  // why not exported
  std::string policy;  // "ROUND_ROBIN", "LEAST_REQUEST", "MAGLEV", ...
  uint32_t active = 0;
  std::optional<uint32_t> max_connections;
  bool panic = false;
  std::vector<EndpointView> endpoints;
};
std::vector<ClusterView> Describe(const config::RouteTable& table, const HealthTable& health);

}  // namespace meshgate::lb
