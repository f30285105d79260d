// Endpoint selection for one cluster, driven by its DestinationRule
// loadBalancer policy. Pure code: no sockets, no clocks.
//
// One Balancer per (worker, cluster): its rotation, tables and random state
// are the worker's own, so a pick takes no lock; what workers share (active
// connections, health) is in ClusterState, read with relaxed atomics. A pick
// neither allocates nor locks; building a balancer (a ring or Maglev table) is
// done once, on the worker's first pick for that cluster of a table version.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "config/model/route_table.h"
#include "lb/cluster_state.h"

namespace meshgate::lb {

inline constexpr int kNoEndpoint = -1;

struct PickContext {
  uint64_t hash = 0;                  // the client's source IP, for consistentHash
  std::span<const uint32_t> tried;    // endpoints this connection already failed to reach
};

class Balancer {
 public:
  virtual ~Balancer() = default;
  // Index into cluster.endpoints of a usable endpoint not in `tried`, or
  // kNoEndpoint when none is left. Usable means healthy, or only ready while
  // the cluster is in panic (too few healthy endpoints).
  virtual int Pick(const ClusterState& state, const PickContext& ctx) = 0;
};

// The balancer the cluster's policy asks for. ROUND_ROBIN (the default) is
// smooth weighted round robin; LEAST_REQUEST power-of-two-choices; RANDOM
// weighted random; consistentHash a ring hash or Maglev table over the
// endpoints' addresses. PASSTHROUGH has no meaning behind a gateway that picks
// the endpoint itself, and is served as ROUND_ROBIN.
//
// With the gateway's locality known, endpoints are also grouped by locality as
// Istio configures Envoy: `localityLbSetting.distribute` splits traffic across
// localities by weight; otherwise, when the cluster has outlierDetection (Istio
// enables failover only then), nearer localities are preferred and traffic
// fails over to farther ones as the nearer ones lose healthy endpoints, with
// `failover` naming the region to fail over to.
struct BalancerOptions {
  std::string locality;  // the gateway's own, "region/zone/subzone"; "" = unknown
};
std::unique_ptr<Balancer> MakeBalancer(const config::Cluster& cluster,
                                       const BalancerOptions& options = {});

// "ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV".
std::string_view PolicyName(const config::Cluster& cluster);

// Deterministic 64-bit hash (same in every process and on every worker), for
// endpoint positions on a ring and for the client's source address.
uint64_t Hash64(std::string_view bytes, uint64_t seed = 0);

}  // namespace meshgate::lb
