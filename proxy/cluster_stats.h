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

struct ClusterStats {
  explicit ClusterStats(const config::Cluster& cluster);

  // Labels, fixed at creation from configuration (never from client input).
  std::string name;               // "outbound|8000|v1|httpbin.bar.svc.cluster.local"
  std::string host;               // destination_service
  std::string service_name;       // destination_service_name
  std::string service_namespace;  // destination_service_namespace

  std::atomic<uint64_t> cx_total{0};
  std::atomic<int64_t> cx_active{0};
  std::atomic<uint64_t> connect_failures{0};
  std::atomic<uint64_t> connect_timeouts{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> overflow{0};
  std::atomic<uint64_t> none_healthy{0};
  std::atomic<uint64_t> bytes_sent{0};      // to the upstream
  std::atomic<uint64_t> bytes_received{0};  // from the upstream
  std::atomic<uint64_t> sessions_closed{0};
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
