// Per-cluster upstream statistics, shared by every worker and kept by cluster
// name across route table versions. Relaxed atomics: an update is one
// lock-free add; the metrics endpoint reads them at scrape time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "base/stats.h"
#include "config/model/route_table.h"

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
};

// Control thread only: one ClusterStats per cluster name, reused across table
// versions; clusters gone from the table are dropped once idle.

class ClusterStatsRegistry {
 public:
  // By Cluster::id of `table`.
  std::vector<std::shared_ptr<ClusterStats>> ForTable(const config::RouteTable& table);
  std::vector<std::shared_ptr<ClusterStats>> All() const;

 private:
  absl::flat_hash_map<std::string, std::shared_ptr<ClusterStats>> by_name_;
};

}  // namespace meshgate::proxy
