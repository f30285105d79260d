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
#include "config/model/authorization.h"
#include "config/model/traffic_policy.h"

namespace meshgate::config {

// Who an endpoint is, for Istio's destination_* metric labels. Derived from
// the labels of its Pod or WorkloadEntry the way Istio derives them (see
// config/mesh/workload_identity.cc); empty means "unknown".
struct WorkloadIdentity {
  std::string name;                // destination_workload (Deployment name for a Pod)
  std::string ns;                  // destination_workload_namespace
  std::string app;                 // destination_app: label "app"
  std::string version;             // destination_version: label "version"
  std::string canonical_service;   // destination_canonical_service
  std::string canonical_revision;  // destination_canonical_revision
  std::string principal;           // destination_principal: spiffe://<td>/ns/<ns>/sa/<sa>
};

struct Endpoint {
  std::string address;  // IP literal (v4 or v6, no brackets); never empty in Cluster::endpoints
  uint16_t port = 0;
  uint32_t weight = 1;
  std::map<std::string, std::string> labels;  // ordered so dumps are stable
  // The DNS name to resolve, for an entry of Cluster::dns_endpoints (address
  // empty); or the name an IP endpoint was resolved from.
  std::string hostname;
  std::string network;          // Istio network, e.g. "network1"
  std::string locality;         // "region/zone/subzone"
  std::string service_account;  // Kubernetes service account of the workload
  // Kubernetes readiness. A not-ready endpoint keeps its index (sessions and
  // balancer state refer to it) but must not be picked for new connections.
  bool ready = true;
  WorkloadIdentity workload;
};

// How a cluster's endpoints are found (ServiceEntry resolution; Kubernetes
// Services are kStatic, ExternalName ones kDns).
enum class Resolution : uint8_t {
  kStatic,         // IP endpoints, as listed
  kDns,            // every address of every dns_endpoints name is an endpoint (Envoy STRICT_DNS)
  kDnsRoundRobin,  // one dns_endpoints name; connect to one of its addresses (Envoy LOGICAL_DNS)
};
std::string_view ToString(Resolution resolution);

struct Cluster {
  uint32_t id = 0;      // dense index into RouteTable::clusters()
  std::string name;     // Envoy style: outbound|8000|v1|httpbin.bar.svc.cluster.local
  std::string host;     // FQDN, lowercase
  uint16_t port = 0;    // service port (the one in the SNI)
  std::string subset;   // empty for the whole service
  // Dialable endpoints only: IP literals. Empty is valid: a DNS cluster before
  // its names resolve, or a subset that selects nothing (sessions then end as
  // no_endpoints).
  std::vector<Endpoint> endpoints;
  std::string source;   // "file.yaml:12 ServiceEntry ns/name" (several joined by "; ")

  std::string service_namespace;  // namespace of the resource(s) defining the host
  Resolution resolution = Resolution::kStatic;
  // Names still to resolve (address empty, hostname set); a resolver adds what
  // they resolve to as `endpoints` with `hostname` kept. Empty for kStatic.
  std::vector<Endpoint> dns_endpoints;
  std::map<std::string, std::string> subset_labels;  // the subset's selector
  TrafficPolicy policy;       // effective DestinationRule policy for this cluster
  std::string policy_source;  // the DestinationRule(s) it came from; empty if none
  // False when Gateways restrict what is served and none exports this host:
  // Route() then misses with kNotExported. The same for every cluster of a host.
  bool exported = true;
  // Why not exported, for --check and /clusters: "MESH_EXTERNAL", "UDP port",
  // "no Gateway host matches", "no Gateway selects this gateway". Empty when exported.
  std::string export_detail;
  // Endpoints on a network outside the gateway's view (Istio's network view):
  // never dialled, kept only to be shown by --check and /clusters.
  std::vector<Endpoint> out_of_view;
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
  X(kAmbiguousPort, "ambiguous_port") /* plain host with several ports */ \
  X(kNotExported, "not_exported")     /* known host no Gateway exports */ \
  X(kPlainHostSni, "plain_host_sni")  /* plain host SNI, plainHostSni off */

enum class RouteMiss : uint8_t {
  kNone,
#define MESHGATE_ROUTE_ENUM(name, str) name,
  MESHGATE_ROUTE_MISSES(MESHGATE_ROUTE_ENUM)
#undef MESHGATE_ROUTE_ENUM
};
#define MESHGATE_ROUTE_COUNT(name, str) +1
inline constexpr size_t kRouteMissCount = 1 MESHGATE_ROUTE_MISSES(MESHGATE_ROUTE_COUNT);
#undef MESHGATE_ROUTE_COUNT
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

// What the mesh decided about this gateway as a whole: which Gateways select
// it, its network view, and (when nothing is served) why.
struct GatewayView {
  // Non-empty when no Gateway selecting this gateway has an AUTO_PASSTHROUGH
  // server on its port: every connection then misses as not_exported, and
  // readiness reports this text.
  std::string closed_reason;
  std::vector<std::string> gateways;  // "ns/name" of the Gateways that select it
  std::string network;                // the gateway's network; empty: unset
  std::vector<std::string> network_view;  // networks in view; empty: all
};

struct RouteOptions {
  // Accept the plain-host SNI form ("httpbin.bar.svc.cluster.local"). Istio's
  // AUTO_PASSTHROUGH matches only the outbound_ form (pilot
  // builtAutoPassthroughFilterChains uses cluster names as SNI hosts).
  bool allow_plain_host = false;
};

class RouteTable {
 public:
  RouteTable(std::vector<Cluster> clusters, std::vector<SniRewrite> rewrites,
             GatewayView view = {}, AuthorizationPolicies authorization = {});

  // SNI -> cluster: parse, rewrite the host suffix, look up. Never allocates
  // more than the returned host string. A host with no exact entry matches the
  // most specific wildcard host ("*.example.com" covers "a.example.com" and
  // "a.b.example.com", as Istio matches hosts, but not "example.com").
  RouteResult Route(std::string_view sni, RouteOptions options = {}) const;

  const GatewayView& view() const { return view_; }
  const AuthorizationPolicies& authorization() const { return authorization_; }

  const Cluster* Find(std::string_view host, uint16_t port, std::string_view subset) const;
  std::span<const Cluster> clusters() const { return clusters_; }
  std::span<const SniRewrite> rewrites() const { return rewrites_; }

  // Human-readable listing, one cluster and its endpoints per block, for --check:
  // subsets, resolution, policy and export status included.
  std::string Describe() const;

 private:
  std::string RewriteHost(std::string_view host) const;

  std::vector<Cluster> clusters_;
  std::vector<SniRewrite> rewrites_;
  GatewayView view_;
  AuthorizationPolicies authorization_;
  // host -> (port, subset) -> cluster index. Hosts are few; ports per host fewer.
  struct PortSubset {
    uint16_t port;
    std::string subset;
    uint32_t index;
  };
  struct HostEntry {
    bool exported = false;  // any of its clusters exported
    std::vector<PortSubset> clusters;
  };
  const HostEntry* FindHost(std::string_view host) const;

  absl::flat_hash_map<std::string, HostEntry> by_host_;
  // ".example.com" -> the entry of "*.example.com" in by_host_ (stable: the map
  // is complete before these are taken).
  absl::flat_hash_map<std::string, const HostEntry*> by_wildcard_suffix_;
};

}  // namespace meshgate::config
