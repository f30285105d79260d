// Services + DestinationRules + Gateways -> clusters.
//
// DestinationRules for the same host in the same namespace merge as in Istio
// (pilot/pkg/model/destination_rule.go mergeDestinationRule): the first rule's
// top-level trafficPolicy applies (or the first one written), subsets are
// concatenated, and a subset name already present keeps its first definition.
// What Istio drops silently (a later top-level policy, a repeated subset) is a
// warning naming both rules. "First" is load order; Istio orders by creation time.
//
// Which rule a service gets follows Istio's lookup for a gateway proxy: the
// rules of the gateway's own namespace first, then those of the service's
// namespace, then those of the config root namespace; in each, the rule for the
// exact host, else the most specific wildcard. A rule counts only when its
// exportTo lets the gateway's namespace see it. (When the gateway runs in the
// root namespace, its first tier is the root namespace's private rules.)
#include "config/mesh/cluster_builder.h"

#include <algorithm>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/names.h"
#include "config/mesh/service_registry.h"
#include "config/mesh/traffic_policy_reader.h"

namespace meshgate::config::internal {

namespace {

struct MergedRule {
  std::string group;  // namespace, or kRootPrivate
  std::string host;
  const DestinationRule* first = nullptr;
  const WrittenTrafficPolicy* policy = nullptr;
  const DestinationRule* policy_from = nullptr;
  struct Subset {
    const DestinationRule::Subset* subset;
    const DestinationRule* from;
  };
  std::vector<Subset> subsets;
  bool used = false;
};

constexpr std::string_view kRootPrivate = "<root namespace, exportTo .>";

class RuleIndex {
 public:
  RuleIndex(const std::vector<DestinationRule>& rules, const ClusterBuildOptions& options,
            Reporter& report);
  // The rule for a service, marked used; nullptr when none applies.
  MergedRule* For(const std::string& host, const std::string& service_ns);
  void WarnUnused(const std::vector<MeshService>& services, Reporter& report) const;

 private:
  struct Group {
    absl::flat_hash_map<std::string, size_t> exact;
    std::vector<size_t> wildcards;  // most specific (longest) first
  };
  // The group a rule is looked up in, or "" when the gateway can't see it.
  std::string GroupOf(const DestinationRule& rule) const;
  MergedRule* Match(std::string_view group, const std::string& host);
  void Merge(const DestinationRule& rule, MergedRule& merged, Reporter& report);

  std::string gateway_ns_;
  std::string root_ns_;
  std::vector<MergedRule> rules_;
  absl::flat_hash_map<std::string, Group> groups_;
};

bool ExportedTo(const std::vector<std::string>& export_to, const std::string& rule_ns,
                const std::string& ns) {
  if (export_to.empty()) return true;  // Istio's default: "*"
  for (const std::string& to : export_to) {
    if (to == "*" || to == ns || (to == "." && rule_ns == ns)) return true;
  }
  return false;
}

std::string RuleIndex::GroupOf(const DestinationRule& rule) const {
  const std::string& ns = rule.meta.ns;
  if (gateway_ns_ != root_ns_ && ns == gateway_ns_) return ns;  // all of its own namespace's
  if (!ExportedTo(rule.export_to, ns, gateway_ns_)) return "";
  const bool root_private = ns == root_ns_ && gateway_ns_ == root_ns_ &&
                            !ExportedTo(rule.export_to, ns, "<another namespace>");
  return root_private ? std::string(kRootPrivate) : ns;
}

RuleIndex::RuleIndex(const std::vector<DestinationRule>& rules, const ClusterBuildOptions& options,
                     Reporter& report)
    : gateway_ns_(options.gateway_namespace), root_ns_(options.root_namespace) {
  for (const DestinationRule& rule : rules) {
    if (rule.workload_selector || rule.host.empty()) continue;
    const std::string group_name = GroupOf(rule);
    if (group_name.empty()) {
      report.Warn(rule.meta, rule.export_to_ref,
                  absl::StrCat("not exported to the gateway's namespace \"", gateway_ns_,
                               "\", so Istio's gateway would not apply it either; ignored"));
      continue;
    }
    Group& group = groups_[group_name];
    auto [it, added] = group.exact.emplace(rule.host, rules_.size());
    if (added) {
      MergedRule& merged = rules_.emplace_back();
      merged.group = group_name;
      merged.host = rule.host;
      merged.first = &rule;
      if (rule.host.starts_with("*")) group.wildcards.push_back(it->second);
    }
    Merge(rule, rules_[it->second], report);
  }
  for (auto& [name, group] : groups_) {
    std::stable_sort(group.wildcards.begin(), group.wildcards.end(), [this](size_t a, size_t b) {
      return rules_[a].host.size() > rules_[b].host.size();
    });
  }
}

void RuleIndex::Merge(const DestinationRule& rule, MergedRule& merged, Reporter& report) {
  if (rule.policy) {
    if (merged.policy != nullptr) {
      report.Warn(rule.meta, rule.policy_ref,
                  absl::StrCat("host \"", rule.host, "\" already has a trafficPolicy from ",
                               merged.policy_from->meta.Source(),
                               ": that one applies and this one is ignored, as in Istio"));
    } else {
      merged.policy = &*rule.policy;
      merged.policy_from = &rule;
    }
  }
  for (const DestinationRule::Subset& subset : rule.subsets) {
    const auto same = std::find_if(merged.subsets.begin(), merged.subsets.end(),
                                   [&](const auto& s) { return s.subset->name == subset.name; });
    if (same != merged.subsets.end()) {
      report.Warn(rule.meta, subset.ref,
                  absl::StrCat("subset \"", subset.name, "\" of host \"", rule.host,
                               "\" is already defined by ", same->from->meta.Source(),
                               ": that one applies and this one is ignored, as in Istio"));
      continue;
    }
    merged.subsets.push_back({&subset, &rule});
  }
}

MergedRule* RuleIndex::Match(std::string_view group_name, const std::string& host) {
  const auto group = groups_.find(AbslView(group_name));
  if (group == groups_.end()) return nullptr;
  if (auto it = group->second.exact.find(host); it != group->second.exact.end()) {
    return &rules_[it->second];
  }
  for (size_t index : group->second.wildcards) {
    if (HostMatches(rules_[index].host, host)) return &rules_[index];
  }
  return nullptr;
}

MergedRule* RuleIndex::For(const std::string& host, const std::string& service_ns) {
  const std::string_view first = gateway_ns_ == root_ns_ ? kRootPrivate : gateway_ns_;
  for (std::string_view group : {first, std::string_view(service_ns), std::string_view(root_ns_)}) {
    if (MergedRule* rule = Match(group, host)) {
      rule->used = true;
      return rule;
    }
  }
  return nullptr;
}

void RuleIndex::WarnUnused(const std::vector<MeshService>& services, Reporter& report) const {
  for (const MergedRule& rule : rules_) {
    if (rule.used) continue;
    const auto service = std::find_if(services.begin(), services.end(), [&](const MeshService& s) {
      return HostMatches(rule.host, s.host);
    });
    if (service == services.end()) {
      report.Warn(rule.first->meta, rule.first->host_ref,
                  absl::StrCat("no service loaded has host \"", rule.host,
                               "\": the rule has no effect"));
    } else if (rule.group == service->ns || rule.group == root_ns_ ||
               rule.group == (gateway_ns_ == root_ns_ ? kRootPrivate : gateway_ns_)) {
      report.Warn(rule.first->meta, rule.first->host_ref,
                  absl::StrCat("no effect: every service it matches (such as \"", service->host,
                               "\") takes a more specific or higher-priority rule"));
    } else {
      report.Warn(rule.first->meta, rule.first->host_ref,
                  absl::StrCat("no effect on \"", service->host,
                               "\": Istio's gateway takes rules only from its own namespace (",
                               gateway_ns_, "), the service's (", service->ns,
                               ") and the root namespace (", root_ns_, "), not from \"",
                               rule.first->meta.ns, "\""));
    }
  }
}

// --- Gateway exports ---------------------------------------------------------------------
//
// As Istio (master, Aug 2026) builds an AUTO_PASSTHROUGH listener for a gateway:
//   - a Gateway applies when its selector is empty or a subset of the gateway's
//     labels (pilot/pkg/model/push_context.go mergeGateways);
//   - only its tls.mode AUTO_PASSTHROUGH servers on the listener port export
//     anything, and their hosts lose their "ns/" part (GetSNIHostsForServer in
//     pilot/pkg/model/gateway.go), so "./*.local" exports every namespace's;
//   - the services considered are those the gateway's SidecarScope sees
//     (exportTo from the gateway's namespace), minus MESH_EXTERNAL ones and UDP
//     ports (builtAutoPassthroughFilterChains in pilot/pkg/networking/core/gateway.go);
//   - with no such server there is no filter chain: nothing is served.

struct Exports {
  std::vector<std::string> hosts;     // server hosts without their namespace part
  std::vector<std::string> gateways;  // "ns/name" of the Gateways that select us
};

std::string FormatLabels(const Labels& labels) {
  if (labels.empty()) return "none";
  std::vector<std::string> parts;
  for (const auto& [key, value] : labels) parts.push_back(absl::StrCat(key, "=", value));
  return absl::StrJoin(parts, ",");
}

void CollectServers(const IstioGateway& gateway, uint16_t listener_port, Reporter& report,
                    Exports& exports) {
  for (const GatewayServer& server : gateway.servers) {
    if (server.port != listener_port) {
      report.Warn(gateway.meta, server.ref,
                  absl::StrCat("port ", server.port, " is not meshgate's listener port ",
                               listener_port, ": server ignored"));
      continue;
    }
    if (server.tls_mode != "AUTO_PASSTHROUGH") {
      report.Warn(gateway.meta, server.ref,
                  absl::StrCat("tls.mode ", server.tls_mode.empty() ? "unset" : server.tls_mode,
                               ": only AUTO_PASSTHROUGH servers export hosts through meshgate "
                               "(it neither terminates TLS nor reads VirtualServices); server "
                               "ignored"));
      continue;
    }
    for (const GatewayServer::Host& host : server.hosts) exports.hosts.push_back(host.name);
  }
}

Exports CollectExports(const std::vector<IstioGateway>& gateways, const ClusterBuildOptions& options,
                       Reporter& report) {
  static const Labels kNoLabels;
  const Labels& ours = options.gateway_labels != nullptr ? *options.gateway_labels : kNoLabels;
  Exports exports;
  for (const IstioGateway& gateway : gateways) {
    if (!SelectorMatches(gateway.selector, ours)) {
      report.Warn(gateway.meta, gateway.selector_ref,
                  absl::StrCat("selector ", FormatLabels(gateway.selector),
                               " does not select this gateway (labels: ", FormatLabels(ours),
                               "): Gateway ignored"));
      continue;
    }
    exports.gateways.push_back(absl::StrCat(gateway.meta.ns, "/", gateway.meta.name));
    CollectServers(gateway, options.listener_port, report, exports);
  }
  return exports;
}

// exportTo as Istio reads it, for a consumer (the gateway proxy) in namespace `ns`.
bool VisibleIn(const MeshService& service, std::string_view ns) {
  for (const std::string& to : service.export_to) {
    if (to == "*" || to == ns || (to == "." && service.ns == ns)) return true;
  }
  return false;
}

// The host and the names clients may use for it: a Gateway written for the
// clients' ".global" names ("*.global") exports the local service it maps to.
std::vector<std::string> ClientNames(const std::string& host,
                                     const std::vector<SniRewrite>* rewrites) {
  std::vector<std::string> names = {host};
  if (rewrites == nullptr) return names;
  for (const SniRewrite& rewrite : *rewrites) {
    const std::string to = AsciiLower(rewrite.to);
    if (to.empty() || HasLabelSuffix(host, to)) {
      names.push_back(
          absl::StrCat(host.substr(0, host.size() - to.size()), AsciiLower(rewrite.from)));
    }
  }
  return names;
}

// Why the service is not exported; empty when it is (its UDP ports aside).
std::string ExportDetail(const MeshService& service, const Exports& exports,
                         const ClusterBuildOptions& options) {
  if (exports.hosts.empty()) {
    return absl::StrCat("no Gateway selecting this gateway has an AUTO_PASSTHROUGH server on port ",
                        options.listener_port);
  }
  if (service.mesh_external) {
    return "MESH_EXTERNAL: Istio's gateway never exports a mesh-external ServiceEntry";
  }
  if (!VisibleIn(service, options.gateway_namespace)) {
    return absl::StrCat("exportTo does not make it visible in the gateway's namespace \"",
                        AbslView(options.gateway_namespace), "\"");
  }
  for (const std::string& name : ClientNames(service.host, options.rewrites)) {
    for (const std::string& host : exports.hosts) {
      if (HostMatches(host, name)) return "";
    }
  }
  return "no Gateway host matches";
}

std::string ClosedReason(const Exports& exports, const ClusterBuildOptions& options) {
  if (!exports.hosts.empty()) return "";
  static const Labels kNoLabels;
  const Labels& ours = options.gateway_labels != nullptr ? *options.gateway_labels : kNoLabels;
  return absl::StrCat("no Gateway selecting this gateway (labels: ", FormatLabels(ours),
                      ") has a tls.mode AUTO_PASSTHROUGH server on port ", options.listener_port,
                      ": nothing is served");
}

// --- Network view ----------------------------------------------------------------------
//
// An endpoint's network: its own (ServiceEntry endpoint or WorkloadEntry
// `network`), else its topology.istio.io/network label (Pod or workload), else
// its namespace's label (issue 13 names the namespace label as a source;
// Istio's controller reads only the system namespace's, so meshgate reads
// both, its own namespace first), else the system namespace's label, the
// cluster's default network (pilot
// kube/controller/controller.go Controller.Network, network.go
// networkFromSystemNamespace). The gateway sees its own network, the requested
// ones and endpoints of no network (pilot/pkg/model/proxy_view.go adds
// identifier.Undefined; Istio's gateway chart puts the gateway's own network in
// ISTIO_META_REQUESTED_NETWORK_VIEW); with neither, every endpoint (ProxyViewAll).

constexpr std::string_view kNetworkLabel = "topology.istio.io/network";

std::string NamespaceNetwork(const MeshResources& resources, std::string_view ns) {
  for (const KubeNamespace& space : resources.namespaces) {
    if (space.meta.name != ns) continue;
    const auto it = space.meta.labels.find(std::string(kNetworkLabel));
    return it == space.meta.labels.end() ? "" : it->second;
  }
  return "";
}

struct NetworkView {
  std::string default_network;
  std::map<std::string, std::string, std::less<>> namespace_networks;  // labelled namespaces
  bool all = true;
  std::vector<std::string> networks;  // sorted; "" (no network) is always in view
  bool Sees(std::string_view network) const {
    return all || network.empty() ||
           std::binary_search(networks.begin(), networks.end(), network);
  }
};

NetworkView MakeView(const MeshResources& resources, const ClusterBuildOptions& options,
                     GatewayView& view) {
  NetworkView out;
  out.default_network = NamespaceNetwork(resources, options.root_namespace);
  for (const KubeNamespace& space : resources.namespaces) {
    const auto it = space.meta.labels.find(std::string(kNetworkLabel));
    if (it != space.meta.labels.end()) out.namespace_networks[space.meta.name] = it->second;
  }
  view.network = options.network.empty() ? out.default_network : std::string(options.network);
  if (!view.network.empty()) out.networks.push_back(view.network);
  if (options.requested_network_view != nullptr) {
    for (const std::string& network : *options.requested_network_view) {
      if (!network.empty()) out.networks.push_back(network);
    }
  }
  std::sort(out.networks.begin(), out.networks.end());
  out.networks.erase(std::unique(out.networks.begin(), out.networks.end()), out.networks.end());
  out.all = out.networks.empty();
  view.network_view = out.networks;
  return out;
}

void ApplyView(const NetworkView& view, std::vector<Endpoint>& endpoints,
               std::vector<Endpoint>& out_of_view) {
  std::vector<Endpoint> kept;
  kept.reserve(endpoints.size());
  for (Endpoint& endpoint : endpoints) {
    if (endpoint.network().empty()) {
      const auto label = endpoint.labels.find(kNetworkLabel);
      const auto space =
          view.namespace_networks.find(endpoint.details.Get(EndpointDetails::kWorkloadNamespace));
      endpoint.set_network(label != endpoint.labels.end()             ? label->second
                           : space != view.namespace_networks.end() ? space->second
                                                                    : view.default_network);
    }
    (view.Sees(endpoint.network()) ? kept : out_of_view).push_back(std::move(endpoint));
  }
  endpoints = std::move(kept);
}

// --- Clusters ------------------------------------------------------------------------

std::vector<Endpoint> Select(const std::vector<Endpoint>& endpoints, const Labels& selector) {
  std::vector<Endpoint> out;
  for (const Endpoint& endpoint : endpoints) {
    if (endpoint.labels.Matches(selector)) out.push_back(endpoint);
  }
  return out;
}

void SetPolicy(const MergedRule* rule, const MergedRule::Subset* subset, uint16_t port,
               Cluster& cluster) {
  if (rule == nullptr) return;
  const WrittenTrafficPolicy* subset_policy =
      subset != nullptr && subset->subset->policy ? &*subset->subset->policy : nullptr;
  cluster.policy = EffectivePolicy(rule->policy, subset_policy, port);
  if (cluster.policy.empty()) return;
  std::vector<std::string> sources;
  if (rule->policy != nullptr) sources.push_back(rule->policy_from->meta.Source());
  if (subset_policy != nullptr && subset->from != rule->policy_from) {
    sources.push_back(subset->from->meta.Source());
  }
  cluster.policy_source = absl::StrJoin(sources, "; ");
}

Cluster SubsetCluster(const Cluster& base, const MeshService::Port& port,
                      const MergedRule& rule, const MergedRule::Subset& subset) {
  Cluster cluster = base;
  cluster.subset = subset.subset->name;
  cluster.name = absl::StrCat("outbound|", base.port, "|", cluster.subset, "|", base.host);
  cluster.source = absl::StrCat(base.source, "; ", subset.from->meta.Source());
  cluster.subset_labels = subset.subset->labels;
  cluster.endpoints = Select(port.endpoints, subset.subset->labels);
  cluster.dns_endpoints = Select(port.dns_endpoints, subset.subset->labels);
  SetPolicy(&rule, &subset, base.port, cluster);
  return cluster;
}

// The whole-service cluster first, then one per subset; the whole one takes
// the endpoints by move once the subsets have copied theirs.
void AddClusters(MeshService& service, const MergedRule* rule, const std::string& detail,
                 std::vector<std::unique_ptr<Cluster>>& clusters) {
  Cluster base;
  base.host = service.host;
  base.source = service.source;
  base.service_namespace = service.ns;
  base.resolution = service.resolution;
  for (MeshService::Port& port : service.ports) {
    base.port = port.port.number;
    base.export_detail = detail;
    if (detail.empty() && port.port.protocol == "UDP") {
      base.export_detail = "UDP port: Istio's gateway never exports UDP";
    }
    base.exported = base.export_detail.empty();
    base.name = absl::StrCat("outbound|", base.port, "||", service.host);
    Cluster& whole = *clusters.emplace_back(std::make_unique<Cluster>(base));
    SetPolicy(rule, nullptr, base.port, whole);
    if (rule != nullptr) {
      for (const MergedRule::Subset& subset : rule->subsets) {
        clusters.push_back(std::make_unique<Cluster>(SubsetCluster(base, port, *rule, subset)));
      }
    }
    whole.endpoints = std::move(port.endpoints);
    whole.dns_endpoints = std::move(port.dns_endpoints);
  }
}

void WarnUnexported(const std::vector<MeshService>& services,
                    const std::vector<std::string>& details, uint16_t listener_port,
                    std::vector<std::string>& warnings) {
  std::vector<std::string> hosts;
  for (size_t i = 0; i < services.size(); ++i) {
    if (!details[i].empty()) hosts.push_back(absl::StrCat(services[i].host, " (", details[i], ")"));
  }
  if (hosts.empty()) return;
  const size_t total = hosts.size();
  if (hosts.size() > 3) hosts.resize(3);
  warnings.push_back(absl::StrCat(
      total, total == 1 ? " host is" : " hosts are",
      " not exported by any Gateway on port ", listener_port,
      " and will be refused (not_exported): ", absl::StrJoin(hosts, ", "),
      total > 3 ? ", ..." : ""));
}

void ApplyView(const NetworkView& view, std::vector<std::unique_ptr<Cluster>>& clusters) {
  for (const std::unique_ptr<Cluster>& cluster : clusters) {
    ApplyView(view, cluster->endpoints, cluster->out_of_view);
    ApplyView(view, cluster->dns_endpoints, cluster->out_of_view);
  }
}

}  // namespace

std::vector<std::unique_ptr<Cluster>> BuildClusters(MeshResources& resources,
                                   const ClusterBuildOptions& options,
                                   std::vector<std::string>& errors,
                                   std::vector<std::string>& warnings, GatewayView& view) {
  Reporter report(errors, warnings);
  std::vector<MeshService> services = CollectServices(
      resources, {options.cluster_domain, options.rewrites, options.trust_domain}, report);
  // Read for the last time: freed before the clusters are built beside them.
  std::deque<ServiceEntry>().swap(resources.service_entries);
  std::deque<WorkloadEntry>().swap(resources.workload_entries);
  std::deque<KubeService>().swap(resources.services);
  std::deque<EndpointGroup>().swap(resources.endpoint_groups);
  std::deque<Pod>().swap(resources.pods);
  RuleIndex rules(resources.destination_rules, options, report);
  const Exports exports = CollectExports(resources.gateways, options, report);
  view.gateways = exports.gateways;
  view.closed_reason = ClosedReason(exports, options);

  // Reserved: growing the vector by doubling briefly holds both copies.
  std::vector<const MergedRule*> rule_of(services.size());
  size_t count = 0;
  for (size_t i = 0; i < services.size(); ++i) {
    rule_of[i] = rules.For(services[i].host, services[i].ns);
    count += services[i].ports.size() * (1 + (rule_of[i] != nullptr ? rule_of[i]->subsets.size() : 0));
  }
  std::vector<std::unique_ptr<Cluster>> clusters;
  clusters.reserve(count);
  std::vector<std::string> details(services.size());
  for (size_t i = 0; i < services.size(); ++i) {
    details[i] = ExportDetail(services[i], exports, options);
    AddClusters(services[i], rule_of[i], details[i], clusters);
  }
  rules.WarnUnused(services, report);
  if (!view.closed_reason.empty()) {
    if (!services.empty()) warnings.push_back(view.closed_reason);
  } else {
    WarnUnexported(services, details, options.listener_port, warnings);
  }
  ApplyView(MakeView(resources, options, view), clusters);
  return clusters;
}

}  // namespace meshgate::config::internal
