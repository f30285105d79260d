#include "lb/balancer.h"

#include <algorithm>

namespace meshgate::lb {

int RoundRobin::Pick(const config::Cluster& cluster, std::span<const uint32_t> tried) {
  const auto n = static_cast<uint32_t>(cluster.endpoints.size());
  if (n == 0) return kNoEndpoint;
  // Grows once per new cluster id, never on the steady-state pick path.
  if (cluster.id >= next_.size()) next_.resize(cluster.id + 1, 0);
  uint32_t& next = next_[cluster.id];
  for (uint32_t step = 0; step < n; ++step) {
    const uint32_t candidate = (next + step) % n;
    // A not-ready endpoint keeps its index but takes no new connections.
    if (!cluster.endpoints[candidate].ready) continue;
    if (std::find(tried.begin(), tried.end(), candidate) == tried.end()) {
      // Only a connection's first pick advances the rotation: a retry must
      // not pull the next connection back onto the endpoint that just failed.
      if (tried.empty()) next = (candidate + 1) % n;
      return static_cast<int>(candidate);
    }
  }
  return kNoEndpoint;
}

std::unique_ptr<Balancer> MakeRoundRobin() { return std::make_unique<RoundRobin>(); }

}  // namespace meshgate::lb
