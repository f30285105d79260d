// Per-cluster upstream statistics, shared by every worker and kept by cluster
// name across route table versions. Relaxed atomics: an update is one
// lock-free add; the metrics endpoint reads them at scrape time.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "base/stats.h"
#include "config/model/route_table.h"
#include "proxy/stats.h"

namespace meshgate::proxy {

// Fixed buckets; Observe is a few relaxed adds. The sum is kept in micro-units.
class AtomicHistogram {
 public:
  explicit AtomicHistogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]()) {}
  void Observe(double value) {
    size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_micros_.fetch_add(static_cast<uint64_t>(value * 1e6), std::memory_order_relaxed);
  }
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket counts (not cumulative); the last is +Inf.
  uint64_t bucket(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  double sum() const { return static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> sum_micros_{0};
};

// One cluster's counters, exported as meshgate_upstream_<name>{cluster=...}.
#define MESHGATE_CLUSTER_STATS(COUNTER, GAUGE)                                                   \
  COUNTER(cx_total, "Upstream connections established.")                                        \
  GAUGE(cx_active, "Upstream connections open.")                                                \
  COUNTER(connect_failures, "Upstream connects refused or failed.")                             \
  COUNTER(connect_timeouts, "Upstream connects that timed out.")                                \
  COUNTER(connect_retries, "Connects retried on another endpoint.")                             \
  COUNTER(cx_overflow, "Connections refused by connectionPool.tcp.maxConnections.")             \
  COUNTER(cx_none_healthy, "Connections refused: no usable endpoint.")                          \
  COUNTER(sent_bytes, "Bytes sent to the cluster's endpoints.")                                 \
  COUNTER(received_bytes, "Bytes received from the cluster's endpoints.")                       \
  COUNTER(sessions_closed, "Relayed sessions that ended.")
MESHGATE_DEFINE_SHARED_STATS(ClusterCounters, MESHGATE_CLUSTER_STATS);

// Envoy's %RESPONSE_FLAGS% short codes that a session of an Istio gateway can
// end with (Envoy docs: access log "Command operators", RESPONSE_FLAGS; set by
// source/common/tcp_proxy/tcp_proxy.cc). Several flags read as Envoy joins
// them: in flag order, separated by ",".
#define MESHGATE_RESPONSE_FLAGS(X)                                                              \
  X(kNone, "-")                /* no flag: a normal end, idle timeout, drain, RBAC denial */   \
  X(kNoRoute, "NR")            /* no filter chain matched (unknown SNI, not exported, ALPN) */ \
  X(kNoHealthyUpstream, "UH")  /* tcp_proxy: no host to connect to */                          \
  X(kUpstreamOverflow, "UO")   /* tcp_proxy: the cluster's connection limit */                 \
  X(kConnectFailed, "UF,URX")  /* every connect attempt failed (UF), attempts ran out (URX) */ \
  X(kDurationTimeout, "DT")    /* tcp_proxy max_downstream_connection_duration */

enum class ResponseFlag : uint8_t {
#define MESHGATE_RESPONSE_FLAG_ENUM(name, str) name,
  MESHGATE_RESPONSE_FLAGS(MESHGATE_RESPONSE_FLAG_ENUM)
#undef MESHGATE_RESPONSE_FLAG_ENUM
};
#define MESHGATE_RESPONSE_FLAG_COUNT(name, str) +1
inline constexpr size_t kResponseFlagCount = 0 MESHGATE_RESPONSE_FLAGS(MESHGATE_RESPONSE_FLAG_COUNT);
#undef MESHGATE_RESPONSE_FLAG_COUNT
std::string_view ToString(ResponseFlag flag);

// The response flag Istio's gateway would report for a session that ended
// `why`, or nullopt when it reports nothing per cluster: the hello never
// reached a filter chain (hello_*, not_tls: no istio_* series at all), or
// it matched none (no_route, alpn_not_istio: counted in the one NR series,
// from the workers' termination counters).
std::optional<ResponseFlag> IstioResponseFlag(Termination why);

// Istio's istio_tcp_* counters for one destination: a cluster and the
// workload identity of the endpoint a session used (`endpoint` false: the
// sessions that never got one). Every worker writes them.
struct IstioTcpStats {
  IstioTcpStats(const config::WorkloadIdentity& w, bool has_endpoint) : workload(w), endpoint(has_endpoint) {}
  uint64_t open() const;  // opened minus closed: sessions still counted open

  // Labels, fixed at creation from configuration (never from client input).
  const config::WorkloadIdentity workload;
  const bool endpoint;

  // By ResponseFlag: the flag a session had when it was counted (opened at
  // the upstream connect is always kNone; refused sessions open and close
  // with their flag).
  std::array<base::SharedCounter, kResponseFlagCount> opened;
  std::array<base::SharedCounter, kResponseFlagCount> closed;
  base::SharedCounter sent_bytes;      // to the client (Istio: "sent during response")
  base::SharedCounter received_bytes;  // from the client, the hello included
};

struct ClusterStats {
  explicit ClusterStats(const config::Cluster& cluster);

  // Labels, fixed at creation from configuration (never from client input).
  std::string name;               // "outbound|8000|v1|httpbin.bar.svc.cluster.local"
  std::string host;               // destination_service
  std::string service_name;       // destination_service_name
  std::string service_namespace;  // destination_service_namespace

  ClusterCounters counters;  // every worker writes them
  AtomicHistogram connect_seconds;
  AtomicHistogram session_seconds;

  // Istio series, one per distinct destination identity; the first is the
  // sessions without an endpoint. Control thread only (the registry and
  // the metrics page); workers reach them through the snapshot's index.
  std::vector<std::shared_ptr<IstioTcpStats>> istio;
};

// Per table: [Cluster::id][endpoint index] -> the Istio series that
// endpoint's sessions count in, plus one last entry per cluster for the
// sessions that never picked an endpoint. Persistent, like the table: a
// version shares every unchanged cluster's list with the previous one.
using EndpointSeries = std::vector<std::shared_ptr<IstioTcpStats>>;
using EndpointStats = config::PersistentVector<const EndpointSeries>;

struct TableStats {
  config::PersistentVector<ClusterStats> clusters;  // by Cluster::id
  EndpointStats endpoints;
};

// Control thread only: one ClusterStats per cluster name, reused across table
// versions; clusters gone from the table are dropped once idle.

class ClusterStatsRegistry {
 public:
  // By Cluster::id of `table`, with the Istio series of its endpoints.
  TableStats StatsFor(const config::RouteTable& table);
  // The same, sharing `previous`'s entries (built for `previous_table`) for
  // every cluster object both tables hold at the same id.
  TableStats StatsFor(const config::RouteTable& table, const config::RouteTable& previous_table,
                      const TableStats& previous);
  // `previous` with cluster `cluster.id` changed (a table built by
  // RouteTable::WithCluster): only that cluster's series are rebuilt.
  TableStats WithCluster(const TableStats& previous, const config::Cluster& cluster);
  // StatsFor(table).clusters.
  config::PersistentVector<ClusterStats> ForTable(const config::RouteTable& table);
  std::vector<std::shared_ptr<ClusterStats>> All() const;

 private:
  // The cluster's Istio series for `table`'s endpoints, reusing the ones
  // `stats` already has; series neither used nor open are dropped.
  static std::vector<std::shared_ptr<IstioTcpStats>> IstioFor(const config::Cluster& cluster, ClusterStats& stats);
  // Keeps a removed cluster's stats while it still has sessions; `next` is by name.
  void Replace(absl::flat_hash_map<std::string, std::shared_ptr<ClusterStats>> next);

  absl::flat_hash_map<std::string, std::shared_ptr<ClusterStats>> by_name_;
};

}  // namespace meshgate::proxy
