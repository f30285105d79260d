// Active health checks' verdicts, without the I/O: which cluster endpoints a
// check covers, one target per address:port however many clusters (subsets,
// ports) list it, and consecutive probe results against the thresholds. The
// runtime (proxy/runtime/health_checker) connects to each target on its own
// timer and feeds the outcome here; a verdict reaches the data path through
// ClusterState::SetCheckFailed and carries over to new table versions.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "base/stats.h"
#include "config/model/route_table.h"
#include "lb/cluster_state.h"

namespace meshgate::lb {

// One configured check (meshgate.yaml's healthChecks entry, as lb sees it).
struct HealthCheckSpec {
  std::string host;   // a cluster host: exact, or "*.suffix"
  uint16_t port = 0;  // 0: every port of the host
  std::chrono::milliseconds interval{5000};
  std::chrono::milliseconds timeout{1000};
  std::chrono::milliseconds jitter{0};  // each check waits interval + [0, jitter)
  uint32_t healthy_threshold = 1;
  uint32_t unhealthy_threshold = 3;
};

#define MESHGATE_HEALTH_CHECK_STATS(COUNTER, GAUGE)                                        \
  COUNTER(probes, "Active health-check connects started.")                                 \
  COUNTER(failures, "Active health-check connects that failed or timed out.")              \
  COUNTER(transitions, "Checked address:ports that went from healthy to unhealthy or back.")
MESHGATE_DEFINE_STATS(HealthCheckStats, MESHGATE_HEALTH_CHECK_STATS);

enum class CheckTransition { kNone, kFailed, kPassed };

// One address:port under checks and every cluster endpoint it stands for.
class HealthCheckTarget {
 public:
  const std::string& address() const { return address_; }
  uint16_t port() const { return port_; }
  const HealthCheckSpec& spec() const { return spec_; }
  const std::string& clusters() const { return clusters_; }  // names, for logs
  bool failed() const { return failed_; }

 private:
  friend class ActiveHealthChecks;

  std::string address_;
  uint16_t port_ = 0;
  HealthCheckSpec spec_;  // a copy: a target may outlive its checker's config
  std::string clusters_;
  std::vector<std::pair<ClusterState*, uint32_t>> endpoints_;
  std::shared_ptr<HealthTable> health_;  // keeps `endpoints_` alive
  uint32_t successes_ = 0;  // in a row, while failed
  uint32_t failures_ = 0;   // in a row, while not failed
  bool failed_ = false;
};

// One thread (the control loop).
class ActiveHealthChecks {
 public:
  explicit ActiveHealthChecks(std::vector<HealthCheckSpec> specs) : specs_(std::move(specs)) {}
  // Takes its verdicts back: checks reconfigured or removed leave nothing out
  // of rotation with no one left to bring it back.
  ~ActiveHealthChecks();
  ActiveHealthChecks(const ActiveHealthChecks&) = delete;
  ActiveHealthChecks& operator=(const ActiveHealthChecks&) = delete;

  // New checks (a reload): every verdict is taken back from the health table
  // now and applied again by the next SetTable to the addresses the new
  // checks still cover, with their streaks; stats carry on.
  void SetSpecs(std::vector<HealthCheckSpec> specs);

  // The first check whose host matches the cluster's and whose port is 0 or
  // the cluster's; null when none covers it.
  const HealthCheckSpec* SpecFor(const config::Cluster& cluster) const;
  // Targets for a new table version and its health table. An address:port
  // already checked keeps its verdict and streaks, applied to `health` here.
  void SetTable(const config::RouteTable& table, std::shared_ptr<HealthTable> health);
  const std::vector<std::shared_ptr<HealthCheckTarget>>& targets() const { return targets_; }

  void OnProbeStarted() { stats_.probes.Inc(); }
  // A probe of `target` finished. After unhealthy_threshold failures in a row
  // its endpoints stop taking new connections, after healthy_threshold
  // successes in a row they take them again; returns which, once per change.
  CheckTransition OnProbeResult(HealthCheckTarget& target, bool ok);

  const HealthCheckStats& stats() const { return stats_; }

 private:
  void Apply(HealthCheckTarget& target, bool failed);
  void ReleaseVerdicts();

  std::vector<HealthCheckSpec> specs_;
  std::vector<std::shared_ptr<HealthCheckTarget>> targets_;
  absl::flat_hash_map<std::string, std::shared_ptr<HealthCheckTarget>> by_key_;  // "address:port"
  HealthCheckStats stats_;
};

}  // namespace meshgate::lb
