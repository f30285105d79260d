// Outlier detection's re-check: puts ejected endpoints back when their time
// is up, cluster by cluster on each one's outlierDetection.interval, as in
// Envoy. The caller ticks it (the control loop's timer) and passes the time
// in, so it is a plain class, tested without clocks.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "config/model/route_table.h"
#include "lb/cluster_state.h"

namespace meshgate::lb {

class OutlierSweep {
 public:
  // One endpoint back in rotation: its cluster, its index, its ejections so far.
  using OnReturn = absl::FunctionRef<void(const config::Cluster&, size_t endpoint, uint32_t ejections)>;

  // Sweeps every cluster of `table` with outlier detection whose interval has
  // passed since its last sweep; `health` is the same table version's.
  void Run(const config::RouteTable& table, HealthTable& health, int64_t now_ns, OnReturn on_return);
  // A new table version: cluster ids mean other clusters now, so every
  // cluster is due at the next Run.
  void Reset() { next_ns_.clear(); }

 private:
  std::vector<int64_t> next_ns_;  // by Cluster::id
};

}  // namespace meshgate::lb
