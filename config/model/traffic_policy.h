// DestinationRule traffic policy as it applies to one cluster, after Istio's merge:
// top level, then its portLevelSettings for the port, then the subset's policy,
// then the subset's portLevelSettings. Stored now; the balancer consumes it later.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace meshgate::config {

struct ConsistentHashLb {
  // Only kSourceIp has something to hash at L4; the HTTP keys are kept as
  // written (with a load warning) so nothing is silently dropped.
  enum class Key : uint8_t { kSourceIp, kHttpHeader, kHttpCookie, kHttpQueryParameter };
  Key key = Key::kSourceIp;
  std::string key_name;  // header, cookie or query parameter name
  enum class Algorithm : uint8_t { kRingHash, kMaglev };
  Algorithm algorithm = Algorithm::kRingHash;
  uint64_t minimum_ring_size = 1024;  // ring hash; Envoy's default
  uint64_t maglev_table_size = 65537;  // maglev; a prime, Envoy's default
  bool operator==(const ConsistentHashLb&) const = default;
};

struct LocalityLbSetting {
  struct Distribute {
    std::string from;                     // "region/zone/subzone", '*' allowed last
    std::map<std::string, uint32_t> to;   // locality -> weight, weights sum to 100
    bool operator==(const Distribute&) const = default;
  };
  struct Failover {
    std::string from;  // region
    std::string to;    // region
    bool operator==(const Failover&) const = default;
  };
  std::vector<Distribute> distribute;
  std::vector<Failover> failover;
  std::vector<std::string> failover_priority;  // label keys, in priority order
  std::optional<bool> enabled;                 // unset: the mesh-wide default
  bool operator==(const LocalityLbSetting&) const = default;
};

struct LoadBalancerPolicy {
  // LEAST_CONN is Istio's deprecated spelling of LEAST_REQUEST and is stored as that.
  enum class Simple : uint8_t { kUnspecified, kRoundRobin, kLeastRequest, kRandom, kPassthrough };
  Simple simple = Simple::kUnspecified;
  std::optional<ConsistentHashLb> consistent_hash;  // set instead of `simple`
  std::optional<LocalityLbSetting> locality;
  std::optional<std::chrono::milliseconds> warmup;  // warmupDurationSecs / warmup.duration
  bool operator==(const LoadBalancerPolicy&) const = default;
};

struct TcpKeepalive {
  std::optional<uint32_t> probes;
  std::optional<std::chrono::milliseconds> time;
  std::optional<std::chrono::milliseconds> interval;
  bool operator==(const TcpKeepalive&) const = default;
};

// connectionPool.tcp; connectionPool.http has nothing to limit at L4 and is
// only validated.
struct TcpConnectionPool {
  std::optional<uint32_t> max_connections;                    // unset: unlimited (2^32-1)
  std::optional<std::chrono::milliseconds> connect_timeout;   // unset: Istio's 10s
  std::optional<std::chrono::milliseconds> idle_timeout;      // unset: Istio's 1h
  std::optional<std::chrono::milliseconds> max_connection_duration;
  std::optional<TcpKeepalive> keepalive;
  bool operator==(const TcpConnectionPool&) const = default;
};

// Istio's documented defaults where it has them; optional where unset means "off".
struct OutlierDetection {
  uint32_t consecutive_5xx_errors = 5;  // for TCP: connect failures and timeouts
  std::optional<uint32_t> consecutive_gateway_errors;
  std::optional<uint32_t> consecutive_local_origin_failures;
  bool split_external_local_origin_errors = false;
  std::chrono::milliseconds interval{10'000};
  std::chrono::milliseconds base_ejection_time{30'000};
  uint32_t max_ejection_percent = 10;
  uint32_t min_health_percent = 0;
  bool operator==(const OutlierDetection&) const = default;
};

// Each part is replaced whole by a more specific level, as in Istio: a subset's
// connectionPool doesn't inherit single fields from the top-level one.
struct TrafficPolicy {
  std::optional<LoadBalancerPolicy> load_balancer;
  std::optional<TcpConnectionPool> connection_pool;
  std::optional<OutlierDetection> outlier_detection;
  bool operator==(const TrafficPolicy&) const = default;

  bool empty() const { return !load_balancer && !connection_pool && !outlier_detection; }
};

// One line, for Describe(): "loadBalancer=ROUND_ROBIN connectionPool.tcp.maxConnections=100 ...".
std::string Describe(const TrafficPolicy& policy);

}  // namespace meshgate::config
