// Pick cost of every balancer at 3, 100 and 10,000 endpoints (issue 4 target:
// < 100 ns per pick at 10,000). Tables (ring, Maglev, EDF heap) are built
// before timing. "Weighted" runs give endpoints weights 1..4, which is what
// turns ROUND_ROBIN into the EDF schedule. Keys for the hash policies vary
// per pick, as client addresses do.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "lb/balancer.h"

namespace {

using namespace meshgate;
using Simple = config::LoadBalancerPolicy::Simple;
using Algorithm = config::ConsistentHashLb::Algorithm;

enum Policy {
  kRoundRobin,
  kWeightedRoundRobin,   // weights 1..4
  kDistinctWeights,      // every endpoint its own weight: the EDF heap's worst case
  kLeastRequest,
  kRandom,
  kRingHash,
  kMaglev,
  kLocalityFailover,     // round robin inside 5 locality priorities
};

config::Cluster MakeCluster(int n, Policy policy) {
  config::Cluster c;
  for (int i = 0; i < n; ++i) {
    config::Endpoint e;
    e.address = "10." + std::to_string(i >> 16 & 255) + "." + std::to_string(i >> 8 & 255) + "." +
                std::to_string(i & 255);
    e.port = 8080;
    e.weight = policy == kWeightedRoundRobin ? 1 + i % 4 : policy == kDistinctWeights ? 1 + i : 1;
    if (policy == kLocalityFailover) {
      static const char* const kLocalities[] = {"us-east/a/1", "us-east/a/2", "us-east/b/1",
                                                "eu-west/x/1", "ap-south/p/1"};
      e.set_locality(kLocalities[i % 5]);
    }
    c.endpoints.push_back(e);
  }
  auto& lb = c.policy.load_balancer.emplace();
  switch (policy) {
    case kLeastRequest:
      lb.simple = Simple::kLeastRequest;
      break;
    case kRandom:
      lb.simple = Simple::kRandom;
      break;
    case kRingHash:
    case kMaglev: {
      config::ConsistentHashLb hash;
      hash.algorithm = policy == kMaglev ? Algorithm::kMaglev : Algorithm::kRingHash;
      lb.consistent_hash = hash;
      break;
    }
    case kLocalityFailover:
      c.policy.outlier_detection.emplace();
      lb.simple = Simple::kRoundRobin;
      break;
    default:
      lb.simple = Simple::kRoundRobin;
  }
  return c;
}

void BM_Pick(benchmark::State& state, Policy policy) {
  const config::Cluster cluster = MakeCluster(static_cast<int>(state.range(0)), policy);
  lb::ClusterState health(cluster);
  auto balancer = lb::MakeBalancer(cluster, {policy == kLocalityFailover ? "us-east/a/1" : ""});
  std::vector<uint64_t> keys;
  for (int i = 0; i < 4096; ++i) keys.push_back(lb::Hash64("192.168." + std::to_string(i)));
  size_t k = 0;
  for (auto _ : state) {
    const int picked = balancer->Pick(health, {keys[k++ & 4095], {}});
    benchmark::DoNotOptimize(picked);
  }
}

#define MESHGATE_LB_BENCH(policy) \
  BENCHMARK_CAPTURE(BM_Pick, policy, policy)->Arg(3)->Arg(100)->Arg(10000)
MESHGATE_LB_BENCH(kRoundRobin);
MESHGATE_LB_BENCH(kWeightedRoundRobin);
MESHGATE_LB_BENCH(kDistinctWeights);
MESHGATE_LB_BENCH(kLeastRequest);
MESHGATE_LB_BENCH(kRandom);
MESHGATE_LB_BENCH(kRingHash);
MESHGATE_LB_BENCH(kMaglev);
MESHGATE_LB_BENCH(kLocalityFailover);

}  // namespace

BENCHMARK_MAIN();
