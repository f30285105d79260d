// What the runtime publishes and the data path reads: one immutable version of
// everything that changes while meshgate runs. Workers only swap a pointer to
// it; a session keeps the version it started with, so a reload never touches
// an open connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_set>
#include <vector>

#include "config/model/route_table.h"
#include "lb/balancer.h"
#include "lb/cluster_state.h"
#include "proxy/admission.h"
#include "proxy/cluster_stats.h"

namespace meshgate::proxy {

enum class RelayMode { kSplice, kCopy };

// The data path's settings (meshgate.yaml, reloadable): what a session reads.
struct DataPathSettings {
  std::chrono::milliseconds hello_timeout{5000};
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds idle_timeout{3600 * 1000};
  size_t max_hello_bytes = 16 * 1024;
  int max_connect_attempts = 3;
  RelayMode relay = RelayMode::kSplice;
  // Istio's AUTO_PASSTHROUGH matches only Istio's mTLS ALPNs (pilot
  // builtAutoPassthroughFilterChains, allIstioMtlsALPNs); off: any ALPN.
  bool require_istio_alpn = true;
  config::RouteOptions route;  // plainHostSni
  // The port AuthorizationPolicy `ports` and `destination.port` compare: the
  // listener's configured port, or 15443 when it listens on port 0, the same
  // port Gateway servers are matched against.
  uint16_t gateway_port = 15443;
  ConnectionLimits limits;  // meshgate.yaml limits:, checked at accept
  ProxyProtocolSettings proxy_protocol;  // proxyProtocol:, upstreamProxyProtocol:
};

struct Snapshot {
  uint64_t version = 0;   // the config version (reloads); DNS answers keep it
  uint64_t sequence = 0;  // every snapshot published, DNS answers included
  std::shared_ptr<const config::RouteTable> table;
  std::shared_ptr<lb::HealthTable> health;  // shared by every worker for `table`
  config::PersistentVector<ClusterStats> cluster_stats;  // by Cluster::id of `table`
  // Refusals by AuthorizationPolicy: by policy index of
  // table->authorization(), the last one for "no ALLOW policy matched".
  std::vector<std::shared_ptr<base::SharedCounter>> policy_denied;
  // Istio series by [Cluster::id][endpoint index], one more per cluster for
  // sessions without an endpoint (ClusterStatsRegistry::StatsFor). Empty:
  // no istio_* accounting.
  EndpointStats endpoint_stats;
  DataPathSettings settings;
  lb::BalancerOptions balancer;
  // SweepTick(*table, settings), computed once by whoever builds the snapshot
  // rather than by every worker.
  std::chrono::milliseconds sweep_tick{1000};
};

// How often a worker sweeps its sessions for `table` and `settings`: an
// eighth of the shortest idle timeout or maximum connection duration (the
// gateway's or any cluster's), within 10ms..1s. A session is closed within
// its limit plus one tick. (In session_sweep.cc, with the sweep.)
std::chrono::milliseconds SweepTick(const config::RouteTable& table, const DataPathSettings& settings);

// One snapshot as a worker uses it: the snapshot plus this worker's balancers
// for its clusters (built on first use, never shared between threads).
struct WorkerRoutes {
  // `previous`: this worker's routes for the snapshot before (null: none).
  // Balancers of clusters whose object and health state are the same in both
  // carry over (RouteTable::WithCluster and Reuse keep them), so an update
  // rebuilds only the balancers of what changed.
  explicit WorkerRoutes(std::shared_ptr<const Snapshot> s, const WorkerRoutes* previous = nullptr)
      : snapshot(std::move(s)),
        table(snapshot->table.get()),
        health(snapshot->health.get()),
        cluster_stats(snapshot->cluster_stats),
        endpoint_stats(snapshot->endpoint_stats),
        settings(snapshot->settings),
        sweep_tick(snapshot->sweep_tick),
        balancers(table->clusters().size()) {
    if (previous != nullptr) CarryOver(*previous);
  }
  lb::Balancer& BalancerFor(const config::Cluster& cluster) {
    auto& b = balancers[cluster.id];
    if (!b) b = lb::MakeBalancer(cluster, snapshot->balancer);
    return *b;
  }
  // The Istio series of `cluster`'s endpoint `endpoint` (-1: none picked);
  // null when the snapshot has none. An index, no lookup.
  IstioTcpStats* IstioStats(const config::Cluster& cluster, int endpoint) const {
    if (cluster.id >= endpoint_stats.size()) return nullptr;
    const auto& series = endpoint_stats[cluster.id];
    if (!series || series->empty()) return nullptr;
    const size_t i = endpoint >= 0 ? static_cast<size_t>(endpoint) : series->size() - 1;
    return i < series->size() ? (*series)[i].get() : nullptr;
  }
  std::shared_ptr<const Snapshot> snapshot;
  const config::RouteTable* table;
  lb::HealthTable* health;
  const config::PersistentVector<ClusterStats>& cluster_stats;
  const EndpointStats& endpoint_stats;
  const DataPathSettings& settings;
  std::chrono::milliseconds sweep_tick;
  // By Cluster::id; shared only with this worker's routes of other versions.
  std::vector<std::shared_ptr<lb::Balancer>> balancers;

 private:
  void CarryOver(const WorkerRoutes& previous) {
    if (previous.snapshot->balancer.locality != snapshot->balancer.locality) return;
    const size_t n = std::min(balancers.size(), previous.balancers.size());
    for (size_t id = 0; id < n; ++id) {
      if (!previous.balancers[id]) continue;
      const auto i = static_cast<uint32_t>(id);
      if (table->cluster_ptr(i) == previous.table->cluster_ptr(i) &&
          health->state_ptr(i) == previous.health->state_ptr(i)) {
        balancers[id] = previous.balancers[id];
      }
    }
  }
};

}  // namespace meshgate::proxy
