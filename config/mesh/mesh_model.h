// The resources meshgate reads, validated and typed, before they are merged into
// clusters. Each keeps its ResourceMeta and the positions that later
// cross-resource checks (merging, conflicts) point at.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/mesh/resource.h"
#include "config/model/route_table.h"
#include "config/model/traffic_policy.h"
#include "base/yaml/yaml_fields.h"

namespace meshgate::config::internal {

using Labels = std::map<std::string, std::string>;

// A location inside a resource, for messages: "spec.endpoints[2]" at 14:5.
struct FieldRef {
  std::string path;
  Position at;
};

// --- networking.istio.io -------------------------------------------------------------

struct ServicePort {
  std::string name;
  uint16_t number = 0;
  std::optional<uint16_t> target_port;
  std::string protocol;     // uppercase; empty when unset
  std::string target_name;  // Kubernetes named targetPort (a container port name)
  FieldRef ref;
};

// A ServiceEntry endpoint or a WorkloadEntry spec: one workload.
struct WorkloadEndpoint {
  // As written, in the route table's own compact form (its port unset):
  // address (canonical IP literal, empty when hostname is set), weight, labels
  // (interned by the load, so endpoints written alike share one set), and the
  // hostname (lowercase DNS name, resolution DNS only), network, locality and
  // service account. Endpoints are copied or moved from it.
  Endpoint fields;
  std::map<std::string, uint16_t> ports;  // port name -> endpoint port
  Position at;  // the endpoint (or WorkloadEntry spec)
};

enum class SeResolution { kNone, kStatic, kDns, kDnsRoundRobin };

struct ServiceEntry {
  ResourceMeta meta;
  struct Host {
    std::string name;  // lowercase
    FieldRef ref;
  };
  std::vector<Host> hosts;
  std::vector<ServicePort> ports;
  SeResolution resolution = SeResolution::kNone;
  FieldRef resolution_ref;
  std::vector<WorkloadEndpoint> endpoints;
  std::optional<Labels> workload_selector;  // selects WorkloadEntries and Pods
  FieldRef selector_ref;
  std::vector<std::string> export_to;
  bool mesh_external = false;  // location MESH_EXTERNAL: never exported by a gateway
};

struct WorkloadEntry {
  ResourceMeta meta;
  WorkloadEndpoint endpoint;
};

// A trafficPolicy as written, before merging.
struct PortTrafficPolicy {
  uint16_t port = 0;
  TrafficPolicy policy;
};
struct WrittenTrafficPolicy {
  TrafficPolicy policy;
  std::vector<PortTrafficPolicy> port_level;
};

struct DestinationRule {
  ResourceMeta meta;
  std::string host;  // FQDN or wildcard, short names resolved in meta.ns
  FieldRef host_ref;
  std::optional<WrittenTrafficPolicy> policy;
  FieldRef policy_ref;
  struct Subset {
    std::string name;
    Labels labels;
    std::optional<WrittenTrafficPolicy> policy;
    FieldRef ref;
  };
  std::vector<Subset> subsets;
  bool workload_selector = false;  // applies to selected proxies only: not to meshgate
  std::vector<std::string> export_to;  // as written; empty means "*"
  FieldRef export_to_ref;
};

struct GatewayServer {
  uint16_t port = 0;
  std::string tls_mode;  // as written, e.g. "AUTO_PASSTHROUGH"; empty without tls
  struct Host {
    std::string ns;    // "*" any namespace, else a namespace name ("." already resolved)
    std::string name;  // "*", "*.suffix" or an exact host, lowercase
  };
  std::vector<Host> hosts;
  FieldRef ref;
};

struct IstioGateway {
  ResourceMeta meta;
  Labels selector;  // spec.selector; empty selects every gateway (Istio)
  FieldRef selector_ref;
  std::vector<GatewayServer> servers;
};

// --- security.istio.io ---------------------------------------------------------------

struct AuthorizationPolicyResource {
  ResourceMeta meta;
  std::optional<Labels> selector;  // spec.selector.matchLabels; nullopt: every workload
  FieldRef selector_ref;
  bool has_target_ref = false;     // spec.targetRef(s): for waypoints/Gateway API, not meshgate
  bool custom = false;             // action CUSTOM: refused when it applies to meshgate
  FieldRef action_ref;
  AuthorizationPolicy policy;      // name, source, action and rules
};

// core/v1 Namespace: its labels (topology.istio.io/network).
struct KubeNamespace {
  ResourceMeta meta;
};

// --- Kubernetes ----------------------------------------------------------------------

struct KubeService {
  ResourceMeta meta;
  std::vector<ServicePort> ports;  // TCP ports only
  std::optional<Labels> selector;
  std::string external_name;       // type ExternalName: a DNS name, no endpoints
  bool publish_not_ready = false;
  std::vector<std::string> export_to;  // networking.istio.io/exportTo annotation
};

// An EndpointSlice, or one subset of a legacy Endpoints.
struct EndpointGroup {
  ResourceMeta meta;
  std::string service;  // the Service's name, same namespace
  struct Port {
    std::string name;
    std::optional<uint16_t> number;
  };
  std::vector<Port> ports;
  struct Address {
    std::string ip;  // canonical
    bool ready = true;
    std::string pod;  // targetRef name of kind Pod, in the same namespace; may be empty
    FieldRef ref;
  };
  std::vector<Address> addresses;
  bool legacy = false;  // from v1 Endpoints
};

struct Pod {
  ResourceMeta meta;
  std::string ip;  // canonical; empty when not scheduled
  bool ready = false;
  std::string service_account;
  std::map<std::string, uint16_t> container_ports;  // name -> port
  // metadata.generateName set, and the ownerReference with controller: true
  // (kind and name): what Istio derives the workload name from.
  bool generated_name = false;
  std::string controller_kind;
  std::string controller_name;
};

// The kinds a large mesh has thousands of are deques: growing one never
// holds two copies (a vector of 10,000 ServiceEntries briefly held 8 MB
// twice), and what the builder points at (ResourceMeta) never moves.
struct MeshResources {
  std::deque<ServiceEntry> service_entries;
  std::deque<WorkloadEntry> workload_entries;
  std::vector<DestinationRule> destination_rules;
  std::vector<IstioGateway> gateways;
  std::deque<KubeService> services;
  std::deque<EndpointGroup> endpoint_groups;
  std::deque<Pod> pods;
  std::vector<KubeNamespace> namespaces;
  std::vector<AuthorizationPolicyResource> authorization_policies;
};

}  // namespace meshgate::config::internal
