// Shared between the balancers and the locality layer that groups endpoints.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "lb/balancer.h"

namespace meshgate::lb {

// The cluster's policy balancer over a subset of its endpoints (indices into
// cluster.endpoints); picks return those indices.
std::unique_ptr<Balancer> MakeMemberBalancer(const config::Cluster& cluster,
                                             std::vector<uint32_t> index);

// Null when locality doesn't apply to this cluster (see MakeBalancer).
std::unique_ptr<Balancer> MakeLocalityBalancer(const config::Cluster& cluster,
                                               const BalancerOptions& options);

}  // namespace meshgate::lb
