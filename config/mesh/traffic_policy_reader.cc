// trafficPolicy: loadBalancer, connectionPool, outlierDetection, portLevelSettings.
// Rules and messages follow Istio's validation webhook; the merge follows its
// MergeTrafficPolicy.
#include "config/mesh/traffic_policy_reader.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/duration.h"
#include "base/names.h"

namespace meshgate::config::internal {

namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kUint32Max = std::numeric_limits<uint32_t>::max();

bool IsPrime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

// The keys of `map` among `names`, for "only one of" checks.
std::vector<std::string> PresentKeys(const yaml::Node& map,
                                     std::initializer_list<std::string_view> names) {
  std::vector<std::string> present;
  for (std::string_view name : names) {
    if (const MapEntry e = Lookup(map, name); e.present() && !e.value.IsNull()) {
      present.emplace_back(name);
    }
  }
  return present;
}

bool OnlyOneOf(const yaml::Node& map, const std::string& path,
               std::initializer_list<std::string_view> names, ErrorSink& sink) {
  const std::vector<std::string> present = PresentKeys(map, names);
  if (present.size() <= 1) return true;
  std::vector<std::string> all(names.begin(), names.end());
  sink.Add(map, path,
           absl::StrCat("only one of ", absl::StrJoin(all, ", "), " may be set (got ",
                        absl::StrJoin(present, " and "), ")"));
  return false;
}

std::optional<uint32_t> ReadU32(const yaml::Node& map, std::string_view key,
                                const std::string& path, int64_t max, ErrorSink& sink) {
  std::optional<uint32_t> out;
  IfPresent(map, key, [&](const yaml::Node& n) {
    if (auto v = ReadInt(n, FieldPath(path, key), 0, max, sink)) out = static_cast<uint32_t>(*v);
  });
  return out;
}

std::optional<std::chrono::milliseconds> ReadDurationField(const yaml::Node& map,
                                                           std::string_view key,
                                                           const std::string& path,
                                                           ErrorSink& sink) {
  std::optional<std::chrono::milliseconds> out;
  IfPresent(map, key, [&](const yaml::Node& n) { out = ReadDuration(n, FieldPath(path, key), sink); });
  return out;
}

// --- loadBalancer ----------------------------------------------------------------------

std::optional<LoadBalancerPolicy::Simple> ParseSimple(std::string_view text) {
  using Simple = LoadBalancerPolicy::Simple;
  if (text == "UNSPECIFIED") return Simple::kUnspecified;
  if (text == "ROUND_ROBIN") return Simple::kRoundRobin;
  if (text == "LEAST_REQUEST" || text == "LEAST_CONN") return Simple::kLeastRequest;
  if (text == "RANDOM") return Simple::kRandom;
  if (text == "PASSTHROUGH") return Simple::kPassthrough;
  return std::nullopt;
}

void ReadHashKey(const yaml::Node& node, const std::string& path, ErrorSink& sink,
                 ConsistentHashLb& hash) {
  using Key = ConsistentHashLb::Key;
  const std::vector<std::string> keys = PresentKeys(
      node, {"httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"});
  if (!OnlyOneOf(node, path,
                 {"httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"},
                 sink)) {
    return;
  }
  if (keys.empty()) {
    sink.Add(node, path,
             "must set a hash key: useSourceIp (the only one a passthrough gateway can use), "
             "httpHeaderName, httpCookie or httpQueryParameterName");
    return;
  }
  const std::string field = FieldPath(path, keys[0]);
  const yaml::Node value = Lookup(node, keys[0]).value;
  if (keys[0] == "useSourceIp") {
    if (auto on = ReadBool(value, field, sink); on && !*on) {
      sink.Add(value, field, "false sets no hash key: set it to true, or drop consistentHash");
    }
    hash.key = Key::kSourceIp;
    return;
  }
  if (keys[0] == "httpCookie") {
    if (!ExpectMap(value, field, sink)) return;
    CheckFields(value, field, {"name", "path", "ttl", "attributes"}, sink);
    const MapEntry name = Lookup(value, "name");
    if (Require(name, value, FieldPath(field, "name"), sink)) {
      if (auto text = ReadString(name.value, FieldPath(field, "name"), sink)) hash.key_name = *text;
    }
    IfPresent(value, "ttl", [&](const yaml::Node& n) {
      auto text = ReadString(n, FieldPath(field, "ttl"), sink);
      if (!text) return;
      if (auto ttl = ParseDuration(*text); !ttl.ok()) {
        sink.Add(n, FieldPath(field, "ttl"), StdView(ttl.status().message()));
      }
    });
    hash.key = Key::kHttpCookie;
  } else {
    if (auto text = ReadString(value, field, sink)) hash.key_name = *text;
    hash.key = keys[0] == "httpHeaderName" ? Key::kHttpHeader : Key::kHttpQueryParameter;
  }
  sink.Warn(value, field,
            "a passthrough gateway sees no HTTP requests, so this hash key can't be applied "
            "(useSourceIp can)");
}

void ReadHashAlgorithm(const yaml::Node& node, const std::string& path, ErrorSink& sink,
                       ConsistentHashLb& hash) {
  if (!OnlyOneOf(node, path, {"ringHash", "maglev"}, sink) ||
      !OnlyOneOf(node, path, {"minimumRingSize", "maglev"}, sink) ||
      !OnlyOneOf(node, path, {"minimumRingSize", "ringHash"}, sink)) {
    return;
  }
  constexpr int64_t kMaxRing = 8 * 1024 * 1024;  // Envoy's maximum_ring_size
  IfPresent(node, "minimumRingSize", [&](const yaml::Node& n) {
    if (auto v = ReadInt(n, FieldPath(path, "minimumRingSize"), 1, kMaxRing, sink)) {
      hash.minimum_ring_size = static_cast<uint64_t>(*v);
    }
  });
  IfPresent(node, "ringHash", [&](const yaml::Node& n) {
    const std::string field = FieldPath(path, "ringHash");
    if (!ExpectMap(n, field, sink)) return;
    CheckFields(n, field, {"minimumRingSize"}, sink);
    IfPresent(n, "minimumRingSize", [&](const yaml::Node& v) {
      if (auto size = ReadInt(v, FieldPath(field, "minimumRingSize"), 1, kMaxRing, sink)) {
        hash.minimum_ring_size = static_cast<uint64_t>(*size);
      }
    });
  });
  IfPresent(node, "maglev", [&](const yaml::Node& n) {
    const std::string field = FieldPath(path, "maglev");
    hash.algorithm = ConsistentHashLb::Algorithm::kMaglev;
    if (!ExpectMap(n, field, sink)) return;
    CheckFields(n, field, {"tableSize"}, sink);
    IfPresent(n, "tableSize", [&](const yaml::Node& v) {
      const std::string size_path = FieldPath(field, "tableSize");
      auto size = ReadInt(v, size_path, 1, 5000011, sink);  // Envoy's maximum
      if (!size) return;
      if (!IsPrime(static_cast<uint64_t>(*size))) {
        sink.Add(v, size_path, absl::StrCat("must be a prime number, got ", *size));
        return;
      }
      hash.maglev_table_size = static_cast<uint64_t>(*size);
    });
  });
}

ConsistentHashLb ReadConsistentHash(const yaml::Node& node, const std::string& path,
                                    ErrorSink& sink) {
  ConsistentHashLb hash;
  if (!ExpectMap(node, path, sink)) return hash;
  CheckFields(node, path,
              {"httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName", "ringHash",
               "maglev", "minimumRingSize"},
              sink);
  ReadHashKey(node, path, sink, hash);
  ReadHashAlgorithm(node, path, sink, hash);
  return hash;
}

LoadBalancerPolicy ReadLoadBalancer(const yaml::Node& node, const std::string& path,
                                    ErrorSink& sink) {
  LoadBalancerPolicy lb;
  if (!ExpectMap(node, path, sink)) return lb;
  CheckFields(node, path,
              {"simple", "consistentHash", "localityLbSetting", "warmupDurationSecs", "warmup"},
              sink);
  OnlyOneOf(node, path, {"simple", "consistentHash"}, sink);
  OnlyOneOf(node, path, {"warmupDurationSecs", "warmup"}, sink);
  IfPresent(node, "simple", [&](const yaml::Node& n) {
    const std::string field = FieldPath(path, "simple");
    auto text = ReadString(n, field, sink);
    if (!text) return;
    if (auto simple = ParseSimple(*text)) {
      lb.simple = *simple;
    } else {
      sink.Add(n, field,
               absl::StrCat("unknown load balancer \"", *text,
                            "\" (one of: UNSPECIFIED, ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN, "
                            "RANDOM, PASSTHROUGH)"));
    }
  });
  IfPresent(node, "consistentHash", [&](const yaml::Node& n) {
    lb.consistent_hash = ReadConsistentHash(n, FieldPath(path, "consistentHash"), sink);
  });
  IfPresent(node, "localityLbSetting", [&](const yaml::Node& n) {
    lb.locality = ReadLocalityLbSetting(n, FieldPath(path, "localityLbSetting"), sink);
  });
  lb.warmup = ReadDurationField(node, "warmupDurationSecs", path, sink);
  IfPresent(node, "warmup", [&](const yaml::Node& n) {
    const std::string field = FieldPath(path, "warmup");
    if (!ExpectMap(n, field, sink)) return;
    CheckFields(n, field, {"duration", "minimumPercent", "aggression"}, sink);
    const MapEntry duration = Lookup(n, "duration");
    if (Require(duration, n, FieldPath(field, "duration"), sink)) {
      lb.warmup = ReadDuration(duration.value, FieldPath(field, "duration"), sink);
    }
  });
  return lb;
}

// --- connectionPool ----------------------------------------------------------------------

TcpKeepalive ReadKeepalive(const yaml::Node& node, const std::string& path, ErrorSink& sink) {
  TcpKeepalive keepalive;
  if (!ExpectMap(node, path, sink)) return keepalive;
  CheckFields(node, path, {"probes", "time", "interval"}, sink);
  keepalive.probes = ReadU32(node, "probes", path, kUint32Max, sink);
  keepalive.time = ReadDurationField(node, "time", path, sink);
  keepalive.interval = ReadDurationField(node, "interval", path, sink);
  return keepalive;
}

TcpConnectionPool ReadTcpPool(const yaml::Node& node, const std::string& path, ErrorSink& sink) {
  TcpConnectionPool tcp;
  if (!ExpectMap(node, path, sink)) return tcp;
  CheckFields(node, path,
              {"maxConnections", "connectTimeout", "tcpKeepalive", "maxConnectionDuration",
               "idleTimeout"},
              sink);
  tcp.max_connections = ReadU32(node, "maxConnections", path, kInt32Max, sink);
  if (tcp.max_connections == 0u) tcp.max_connections.reset();  // proto3: 0 is unset
  tcp.connect_timeout = ReadDurationField(node, "connectTimeout", path, sink);
  tcp.idle_timeout = ReadDurationField(node, "idleTimeout", path, sink);
  tcp.max_connection_duration = ReadDurationField(node, "maxConnectionDuration", path, sink);
  IfPresent(node, "tcpKeepalive", [&](const yaml::Node& n) {
    tcp.keepalive = ReadKeepalive(n, FieldPath(path, "tcpKeepalive"), sink);
  });
  return tcp;
}

// Nothing to limit at L4: validated so mistakes still show, not stored.
void CheckHttpPool(const yaml::Node& node, const std::string& path, ErrorSink& sink) {
  if (!ExpectMap(node, path, sink)) return;
  CheckFields(node, path,
              {"http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection",
               "maxRetries", "idleTimeout", "h2UpgradePolicy", "useClientProtocol",
               "maxConcurrentStreams"},
              sink);
  for (std::string_view key : {"http1MaxPendingRequests", "http2MaxRequests",
                               "maxRequestsPerConnection", "maxRetries", "maxConcurrentStreams"}) {
    ReadU32(node, key, path, kInt32Max, sink);
  }
  ReadDurationField(node, "idleTimeout", path, sink);
  IfPresent(node, "useClientProtocol",
            [&](const yaml::Node& n) { ReadBool(n, FieldPath(path, "useClientProtocol"), sink); });
  IfPresent(node, "h2UpgradePolicy", [&](const yaml::Node& n) {
    const std::string field = FieldPath(path, "h2UpgradePolicy");
    auto text = ReadString(n, field, sink);
    if (text && *text != "DEFAULT" && *text != "DO_NOT_UPGRADE" && *text != "UPGRADE") {
      sink.Add(n, field,
               absl::StrCat("unknown policy \"", *text, "\" (one of: DEFAULT, DO_NOT_UPGRADE, "
                                                        "UPGRADE)"));
    }
  });
}

std::optional<TcpConnectionPool> ReadConnectionPool(const yaml::Node& node,
                                                    const std::string& path, ErrorSink& sink) {
  if (!ExpectMap(node, path, sink)) return std::nullopt;
  CheckFields(node, path, {"tcp", "http"}, sink);
  IfPresent(node, "http", [&](const yaml::Node& n) { CheckHttpPool(n, FieldPath(path, "http"), sink); });
  TcpConnectionPool tcp;
  IfPresent(node, "tcp", [&](const yaml::Node& n) { tcp = ReadTcpPool(n, FieldPath(path, "tcp"), sink); });
  return tcp;
}

// --- outlierDetection --------------------------------------------------------------------

OutlierDetection ReadOutlierDetection(const yaml::Node& node, const std::string& path,
                                      ErrorSink& sink) {
  OutlierDetection od;
  if (!ExpectMap(node, path, sink)) return od;
  CheckFields(node, path,
              {"consecutiveErrors", "consecutiveGatewayErrors", "consecutive5xxErrors",
               "splitExternalLocalOriginErrors", "consecutiveLocalOriginFailures", "interval",
               "baseEjectionTime", "maxEjectionPercent", "minHealthPercent"},
              sink);
  // Deprecated; Istio applies it to gateway errors (502, 503, 504 and, for TCP,
  // connect failures), as consecutiveGatewayErrors.
  if (auto v = ReadU32(node, "consecutiveErrors", path, kInt32Max, sink)) {
    od.consecutive_gateway_errors = *v;
    sink.Warn(Lookup(node, "consecutiveErrors").key, FieldPath(path, "consecutiveErrors"),
              "deprecated: use consecutiveGatewayErrors or consecutive5xxErrors");
  }
  if (auto v = ReadU32(node, "consecutiveGatewayErrors", path, kUint32Max, sink)) {
    od.consecutive_gateway_errors = *v;
  }
  if (auto v = ReadU32(node, "consecutive5xxErrors", path, kUint32Max, sink)) {
    od.consecutive_5xx_errors = *v;
  }
  od.consecutive_local_origin_failures =
      ReadU32(node, "consecutiveLocalOriginFailures", path, kUint32Max, sink);
  IfPresent(node, "splitExternalLocalOriginErrors", [&](const yaml::Node& n) {
    od.split_external_local_origin_errors =
        ReadBool(n, FieldPath(path, "splitExternalLocalOriginErrors"), sink).value_or(false);
  });
  if (od.consecutive_local_origin_failures && !od.split_external_local_origin_errors) {
    sink.Add(Lookup(node, "consecutiveLocalOriginFailures").key,
             FieldPath(path, "consecutiveLocalOriginFailures"),
             "takes effect only with splitExternalLocalOriginErrors: true");
  }
  if (auto d = ReadDurationField(node, "interval", path, sink)) od.interval = *d;
  if (auto d = ReadDurationField(node, "baseEjectionTime", path, sink)) od.base_ejection_time = *d;
  if (auto v = ReadU32(node, "maxEjectionPercent", path, 100, sink)) od.max_ejection_percent = *v;
  if (auto v = ReadU32(node, "minHealthPercent", path, 100, sink)) od.min_health_percent = *v;
  return od;
}

// --- the policy and its levels -----------------------------------------------------------

// The parts shared by trafficPolicy and portLevelSettings entries.
void ReadParts(const yaml::Node& node, const std::string& path, ErrorSink& sink,
               TrafficPolicy& policy) {
  IfPresent(node, "loadBalancer", [&](const yaml::Node& n) {
    policy.load_balancer = ReadLoadBalancer(n, FieldPath(path, "loadBalancer"), sink);
  });
  IfPresent(node, "connectionPool", [&](const yaml::Node& n) {
    policy.connection_pool = ReadConnectionPool(n, FieldPath(path, "connectionPool"), sink);
  });
  IfPresent(node, "outlierDetection", [&](const yaml::Node& n) {
    policy.outlier_detection = ReadOutlierDetection(n, FieldPath(path, "outlierDetection"), sink);
  });
  // Client TLS is the sidecar's business; meshgate relays TLS untouched.
  IfPresent(node, "tls", [&](const yaml::Node& n) { ExpectMap(n, FieldPath(path, "tls"), sink); });
  const bool failover = policy.load_balancer && policy.load_balancer->locality &&
                        (!policy.load_balancer->locality->failover.empty() ||
                         !policy.load_balancer->locality->failover_priority.empty());
  if (failover && !policy.outlier_detection) {
    sink.Warn(Lookup(Lookup(node, "loadBalancer").value, "localityLbSetting").key,
              FieldPath(path, "loadBalancer.localityLbSetting"),
              "failover takes effect only with outlierDetection set in the same policy");
  }
}

void ReadPortLevel(const yaml::Node& list, const std::string& path, ErrorSink& sink,
                   WrittenTrafficPolicy& out) {
  if (!ExpectList(list, path, sink)) return;
  for (size_t i = 0; i < list.size(); ++i) {
    const yaml::Node node = list[i];
    const std::string item = IndexPath(path, i);
    if (!ExpectMap(node, item, sink)) continue;
    CheckFields(node, item, {"port", "loadBalancer", "connectionPool", "outlierDetection", "tls"},
                sink);
    PortTrafficPolicy entry;
    const MapEntry port = Lookup(node, "port");
    const std::string port_path = FieldPath(item, "port");
    if (!Require(port, node, port_path, sink) || !ExpectMap(port.value, port_path, sink)) continue;
    CheckFields(port.value, port_path, {"number"}, sink);
    const MapEntry number = Lookup(port.value, "number");
    if (!Require(number, port.value, FieldPath(port_path, "number"), sink)) continue;
    auto value = ReadInt(number.value, FieldPath(port_path, "number"), 1, 65535, sink);
    if (!value) continue;
    entry.port = static_cast<uint16_t>(*value);
    ReadParts(node, item, sink, entry.policy);
    if (entry.policy.empty() && !Lookup(node, "tls").present()) {
      sink.Add(node, item, "must set at least one of loadBalancer, connectionPool, "
                           "outlierDetection or tls");
    }
    bool duplicate = false;
    for (size_t j = 0; j < out.port_level.size() && !duplicate; ++j) {
      duplicate = out.port_level[j].port == entry.port;
    }
    if (duplicate) {
      sink.Warn(number.value, FieldPath(port_path, "number"),
                absl::StrCat("port ", entry.port,
                             " already has settings earlier in the list; this entry is ignored "
                             "(the first wins, as in Istio)"));
      continue;
    }
    out.port_level.push_back(std::move(entry));
  }
}

}  // namespace

std::optional<std::chrono::milliseconds> ReadDuration(const yaml::Node& node,
                                                      std::string_view path, ErrorSink& sink) {
  auto text = ReadString(node, path, sink);
  if (!text) return std::nullopt;
  auto duration = ParseDuration(*text);
  if (!duration.ok()) {
    sink.Add(node, path, StdView(duration.status().message()));
    return std::nullopt;
  }
  if (duration->count() < 1) {
    sink.Add(node, path, "must be at least 1ms");
    return std::nullopt;
  }
  return *duration;
}

WrittenTrafficPolicy ReadTrafficPolicy(const yaml::Node& node, const std::string& path,
                                       ErrorSink& sink) {
  WrittenTrafficPolicy out;
  if (!ExpectMap(node, path, sink)) return out;
  CheckFields(node, path,
              {"loadBalancer", "connectionPool", "outlierDetection", "tls", "portLevelSettings",
               "tunnel", "proxyProtocol", "retryBudget"},
              sink);
  if (node.size() == 0) {
    sink.Add(node, path, "must set at least one field");
    return out;
  }
  ReadParts(node, path, sink, out.policy);
  IfPresent(node, "portLevelSettings", [&](const yaml::Node& n) {
    ReadPortLevel(n, FieldPath(path, "portLevelSettings"), sink, out);
  });
  return out;
}

namespace {

// One level's parts override what came before; a matching port entry replaces all.
void Apply(const WrittenTrafficPolicy& level, uint16_t port, TrafficPolicy& merged) {
  if (level.policy.load_balancer) merged.load_balancer = level.policy.load_balancer;
  if (level.policy.connection_pool) merged.connection_pool = level.policy.connection_pool;
  if (level.policy.outlier_detection) merged.outlier_detection = level.policy.outlier_detection;
  for (const PortTrafficPolicy& entry : level.port_level) {
    if (entry.port == port) {
      merged = entry.policy;
      return;
    }
  }
}

}  // namespace

TrafficPolicy EffectivePolicy(const WrittenTrafficPolicy* top, const WrittenTrafficPolicy* subset,
                              uint16_t port) {
  TrafficPolicy merged;
  if (top != nullptr) Apply(*top, port, merged);
  if (subset != nullptr) Apply(*subset, port, merged);
  return merged;
}

}  // namespace meshgate::config::internal
