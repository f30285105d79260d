#include "lb/outlier_sweep.h"

#include <chrono>

namespace meshgate::lb {

void OutlierSweep::Run(const config::RouteTable& table, HealthTable& health, int64_t now_ns,
                       OnReturn on_return) {
  next_ns_.resize(table.clusters().size(), 0);
  for (const config::Cluster& cluster : table.clusters()) {
    const auto& od = cluster.policy.outlier_detection;
    if (!od) continue;
    int64_t& next = next_ns_[cluster.id];
    if (now_ns < next) continue;
    next = now_ns + std::chrono::duration_cast<std::chrono::nanoseconds>(od->interval).count();
    ClusterState& state = health.cluster(cluster.id);
    state.Sweep(now_ns, [&](size_t i) {
      on_return(cluster, i, state.endpoint(i).ejections.load(std::memory_order_relaxed));
    });
  }
}

}  // namespace meshgate::lb
