// The immutable route table: (host, port, subset) -> cluster of endpoints,
// and the one place that maps a client's SNI to a cluster.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace meshgate::config {

struct Endpoint {
  std::string address;  // IP literal (v4 or v6, no brackets)
  uint16_t port = 0;
  uint32_t weight = 1;
  std::map<std::string, std::string> labels;  // ordered so dumps are stable
};

struct Cluster {
  uint32_t id = 0;      // dense index into RouteTable::clusters()
  std::string name;     // Envoy style: outbound|8000|v1|httpbin.bar.svc.cluster.local
  std::string host;     // FQDN, lowercase
  uint16_t port = 0;    // service port (the one in the SNI)
  std::string subset;   // empty for the whole service
  std::vector<Endpoint> endpoints;
  std::string source;   // "file.yaml:12 ServiceEntry ns/name"
};

// Suffix rewrite applied to the SNI host before lookup; first match wins.
struct SniRewrite {
  std::string from;  // e.g. ".global"
  std::string to;    // e.g. ".svc.cluster.local"
};

#define MESHGATE_ROUTE_MISSES(X)                                        \
  X(kNoSni, "no_sni")                 /* hello carried no server_name */ \
  X(kBadSni, "bad_sni")               /* outbound_ form that won't parse */ \
  X(kUnknownHost, "unknown_host")                                       \
  X(kUnknownPort, "unknown_port")                                       \
  X(kUnknownSubset, "unknown_subset")                                   \
  X(kAmbiguousPort, "ambiguous_port") /* plain host with several ports */

enum class RouteMiss : uint8_t {
  kNone,
#define MESHGATE_ROUTE_ENUM(name, str) name,
  MESHGATE_ROUTE_MISSES(MESHGATE_ROUTE_ENUM)
#undef MESHGATE_ROUTE_ENUM
};
inline constexpr size_t kRouteMissCount = static_cast<size_t>(RouteMiss::kAmbiguousPort) + 1;
std::string_view ToString(RouteMiss miss);

struct RouteResult {
  const Cluster* cluster = nullptr;  // set iff miss == kNone
  RouteMiss miss = RouteMiss::kNone;
  std::string host;                  // the host looked up, after rewriting
};

// Parsed SNI in either of its two forms.
struct SniTarget {
  std::string host;
  uint16_t port = 0;       // 0 for the plain-host form
  std::string subset;      // empty for no subset ("_" in Istio's form)
};
// "outbound_.8000_.v1_.reviews.default.global" or a plain host.
// Returns false when the outbound_ form is malformed (bad port, empty host...).
bool ParseSni(std::string_view sni, SniTarget& out);

class RouteTable {
 public:
  RouteTable(std::vector<Cluster> clusters, std::vector<SniRewrite> rewrites);

  // SNI -> cluster: parse, rewrite the host suffix, look up. Never allocates
  // more than the returned host string.
  RouteResult Route(std::string_view sni) const;

  const Cluster* Find(std::string_view host, uint16_t port, std::string_view subset) const;
  std::span<const Cluster> clusters() const { return clusters_; }
  std::span<const SniRewrite> rewrites() const { return rewrites_; }

  // Human-readable listing, one cluster and its endpoints per block, for --check.
  std::string Describe() const;

 private:
  std::string RewriteHost(std::string_view host) const;

  std::vector<Cluster> clusters_;
  std::vector<SniRewrite> rewrites_;
  // host -> (port, subset) -> cluster index. Hosts are few; ports per host fewer.
  struct PortSubset {
    uint16_t port;
    std::string subset;
    uint32_t index;
  };
  absl::flat_hash_map<std::string, std::vector<PortSubset>> by_host_;
};

}  // namespace meshgate::config
