// Endpoint selection for one cluster. Pure code: no sockets, no clocks.
// One instance per worker thread, so picks need no lock.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "config/route_table.h"

namespace meshgate::lb {

inline constexpr int kNoEndpoint = -1;

class Balancer {
 public:
  virtual ~Balancer() = default;
  // Index into cluster.endpoints, skipping not-ready endpoints and indices in
  // `tried` (endpoints this connection already failed to reach), or
  // kNoEndpoint when none is left.
  virtual int Pick(const config::Cluster& cluster, std::span<const uint32_t> tried) = 0;
};

// Plain round robin per cluster. Weighted and health-aware balancers replace
// it behind the same interface.
class RoundRobin final : public Balancer {
 public:
  int Pick(const config::Cluster& cluster, std::span<const uint32_t> tried) override;

 private:
  std::vector<uint32_t> next_;  // indexed by Cluster::id
};

std::unique_ptr<Balancer> MakeRoundRobin();

}  // namespace meshgate::lb
