// One-line rendering of an effective traffic policy, in Istio's field names.
#include "config/model/traffic_policy.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace meshgate::config {

namespace {

// The largest whole unit, as written in Istio resources: "5m", "30s", "250ms".
std::string Ms(std::chrono::milliseconds d) {
  const int64_t ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return absl::StrCat(ms / 3'600'000, "h");
  if (ms != 0 && ms % 60'000 == 0) return absl::StrCat(ms / 60'000, "m");
  if (ms != 0 && ms % 1000 == 0) return absl::StrCat(ms / 1000, "s");
  return absl::StrCat(ms, "ms");
}

const char* SimpleName(LoadBalancerPolicy::Simple simple) {
  switch (simple) {
    case LoadBalancerPolicy::Simple::kUnspecified:
      return "UNSPECIFIED";
    case LoadBalancerPolicy::Simple::kRoundRobin:
      return "ROUND_ROBIN";
    case LoadBalancerPolicy::Simple::kLeastRequest:
      return "LEAST_REQUEST";
    case LoadBalancerPolicy::Simple::kRandom:
      return "RANDOM";
    case LoadBalancerPolicy::Simple::kPassthrough:
      return "PASSTHROUGH";
  }
  return "?";
}

std::string HashKey(const ConsistentHashLb& hash) {
  switch (hash.key) {
    case ConsistentHashLb::Key::kSourceIp:
      return "useSourceIp";
    case ConsistentHashLb::Key::kHttpHeader:
      return absl::StrCat("httpHeaderName=", hash.key_name);
    case ConsistentHashLb::Key::kHttpCookie:
      return absl::StrCat("httpCookie=", hash.key_name);
    case ConsistentHashLb::Key::kHttpQueryParameter:
      return absl::StrCat("httpQueryParameterName=", hash.key_name);
  }
  return "?";
}

void AppendLocality(std::vector<std::string>& parts, const LocalityLbSetting& locality) {
  if (locality.enabled) {
    parts.push_back(absl::StrCat("localityLbSetting.enabled=", *locality.enabled ? "true" : "false"));
  }
  for (const LocalityLbSetting::Distribute& d : locality.distribute) {
    std::vector<std::string> to;
    for (const auto& [where, weight] : d.to) to.push_back(absl::StrCat(where, ":", weight));
    parts.push_back(
        absl::StrCat("localityLbSetting.distribute(", d.from, " -> ", absl::StrJoin(to, ","), ")"));
  }
  for (const LocalityLbSetting::Failover& f : locality.failover) {
    parts.push_back(absl::StrCat("localityLbSetting.failover(", f.from, " -> ", f.to, ")"));
  }
  if (!locality.failover_priority.empty()) {
    parts.push_back(absl::StrCat("localityLbSetting.failoverPriority=",
                                 absl::StrJoin(locality.failover_priority, ",")));
  }
}

void AppendLoadBalancer(std::vector<std::string>& parts, const LoadBalancerPolicy& lb) {
  if (lb.consistent_hash) {
    const ConsistentHashLb& hash = *lb.consistent_hash;
    parts.push_back(absl::StrCat(
        "loadBalancer.consistentHash(", HashKey(hash), " ",
        hash.algorithm == ConsistentHashLb::Algorithm::kMaglev
            ? absl::StrCat("maglev.tableSize=", hash.maglev_table_size)
            : absl::StrCat("ringHash.minimumRingSize=", hash.minimum_ring_size),
        ")"));
  } else {
    parts.push_back(absl::StrCat("loadBalancer.simple=", SimpleName(lb.simple)));
  }
  if (lb.locality) AppendLocality(parts, *lb.locality);
  if (lb.warmup) parts.push_back(absl::StrCat("loadBalancer.warmup=", Ms(*lb.warmup)));
}

void AppendConnectionPool(std::vector<std::string>& parts, const TcpConnectionPool& tcp) {
  std::vector<std::string> fields;
  if (tcp.max_connections) fields.push_back(absl::StrCat("maxConnections=", *tcp.max_connections));
  if (tcp.connect_timeout) fields.push_back(absl::StrCat("connectTimeout=", Ms(*tcp.connect_timeout)));
  if (tcp.idle_timeout) fields.push_back(absl::StrCat("idleTimeout=", Ms(*tcp.idle_timeout)));
  if (tcp.max_connection_duration) {
    fields.push_back(absl::StrCat("maxConnectionDuration=", Ms(*tcp.max_connection_duration)));
  }
  if (tcp.keepalive) {
    std::vector<std::string> keepalive;
    if (tcp.keepalive->probes) keepalive.push_back(absl::StrCat("probes=", *tcp.keepalive->probes));
    if (tcp.keepalive->time) keepalive.push_back(absl::StrCat("time=", Ms(*tcp.keepalive->time)));
    if (tcp.keepalive->interval) {
      keepalive.push_back(absl::StrCat("interval=", Ms(*tcp.keepalive->interval)));
    }
    fields.push_back(absl::StrCat("tcpKeepalive(", absl::StrJoin(keepalive, " "), ")"));
  }
  if (fields.empty()) fields.push_back("defaults");
  parts.push_back(absl::StrCat("connectionPool.tcp(", absl::StrJoin(fields, " "), ")"));
}

void AppendOutlierDetection(std::vector<std::string>& parts, const OutlierDetection& od) {
  std::vector<std::string> fields = {
      absl::StrCat("consecutive5xxErrors=", od.consecutive_5xx_errors)};
  if (od.consecutive_gateway_errors) {
    fields.push_back(absl::StrCat("consecutiveGatewayErrors=", *od.consecutive_gateway_errors));
  }
  if (od.consecutive_local_origin_failures) {
    fields.push_back(
        absl::StrCat("consecutiveLocalOriginFailures=", *od.consecutive_local_origin_failures));
  }
  if (od.split_external_local_origin_errors) fields.push_back("splitExternalLocalOriginErrors");
  fields.push_back(absl::StrCat("interval=", Ms(od.interval)));
  fields.push_back(absl::StrCat("baseEjectionTime=", Ms(od.base_ejection_time)));
  fields.push_back(absl::StrCat("maxEjectionPercent=", od.max_ejection_percent));
  fields.push_back(absl::StrCat("minHealthPercent=", od.min_health_percent));
  parts.push_back(absl::StrCat("outlierDetection(", absl::StrJoin(fields, " "), ")"));
}

}  // namespace

std::string Describe(const TrafficPolicy& policy) {
  std::vector<std::string> parts;
  if (policy.load_balancer) AppendLoadBalancer(parts, *policy.load_balancer);
  if (policy.connection_pool) AppendConnectionPool(parts, *policy.connection_pool);
  if (policy.outlier_detection) AppendOutlierDetection(parts, *policy.outlier_detection);
  if (parts.empty()) return "(defaults)";
  return absl::StrJoin(parts, " ");
}

}  // namespace meshgate::config
