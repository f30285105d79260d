// Services + DestinationRules + Gateways -> clusters.
//
// DestinationRules for the same host merge as in Istio: subsets are
// concatenated and the first top-level trafficPolicy applies. Where Istio
// would silently drop something (a second top-level policy, a subset name
// defined twice) that is an error naming both rules. A service takes the rule
// for its exact host, else the most specific wildcard rule that matches it.
#include "config/cluster_builder.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config/names.h"
#include "config/service_registry.h"
#include "config/traffic_policy_reader.h"

namespace meshgate::config::internal {

namespace {

struct MergedRule {
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

class RuleIndex {
 public:
  RuleIndex(const std::vector<DestinationRule>& rules, Reporter& report);
  // The rule for a service host, marked used; nullptr when none applies.
  MergedRule* For(const std::string& host);
  void WarnUnused(Reporter& report) const;

 private:
  void Merge(const DestinationRule& rule, MergedRule& merged, Reporter& report);

  std::vector<MergedRule> rules_;
  absl::flat_hash_map<std::string, size_t> exact_;
  std::vector<size_t> wildcards_;  // most specific (longest) first
};

RuleIndex::RuleIndex(const std::vector<DestinationRule>& rules, Reporter& report) {
  for (const DestinationRule& rule : rules) {
    if (rule.workload_selector || rule.host.empty()) continue;
    auto [it, added] = exact_.emplace(rule.host, rules_.size());
    if (added) {
      MergedRule& merged = rules_.emplace_back();
      merged.host = rule.host;
      merged.first = &rule;
      if (rule.host.starts_with("*")) wildcards_.push_back(it->second);
    }
    Merge(rule, rules_[it->second], report);
  }
  std::stable_sort(wildcards_.begin(), wildcards_.end(), [this](size_t a, size_t b) {
    return rules_[a].host.size() > rules_[b].host.size();
  });
}

void RuleIndex::Merge(const DestinationRule& rule, MergedRule& merged, Reporter& report) {
  if (rule.policy) {
    if (merged.policy != nullptr) {
      report.Error(rule.meta, rule.policy_ref,
                   absl::StrCat("host \"", rule.host, "\" already has a trafficPolicy from ",
                                merged.policy_from->meta.Source(),
                                " (Istio would keep that one and ignore this)"));
    } else {
      merged.policy = &*rule.policy;
      merged.policy_from = &rule;
    }
  }
  for (const DestinationRule::Subset& subset : rule.subsets) {
    const auto same = std::find_if(merged.subsets.begin(), merged.subsets.end(),
                                   [&](const auto& s) { return s.subset->name == subset.name; });
    if (same != merged.subsets.end()) {
      report.Error(rule.meta, subset.ref,
                   absl::StrCat("subset \"", subset.name, "\" of host \"", rule.host,
                                "\" is already defined by ", same->from->meta.Source()));
      continue;
    }
    merged.subsets.push_back({&subset, &rule});
  }
}

MergedRule* RuleIndex::For(const std::string& host) {
  MergedRule* rule = nullptr;
  if (auto it = exact_.find(host); it != exact_.end()) {
    rule = &rules_[it->second];
  } else {
    for (size_t index : wildcards_) {
      if (HostMatches(rules_[index].host, host)) {
        rule = &rules_[index];
        break;
      }
    }
  }
  if (rule != nullptr) rule->used = true;
  return rule;
}

void RuleIndex::WarnUnused(Reporter& report) const {
  for (const MergedRule& rule : rules_) {
    if (rule.used) continue;
    report.Warn(rule.first->meta, rule.first->host_ref,
                absl::StrCat("no service loaded has host \"", rule.host,
                             "\": the rule has no effect"));
  }
}

// --- Gateway exports ---------------------------------------------------------------------

struct ExportRule {
  std::string gateway_ns;
  GatewayServer::Host host;
};

std::vector<ExportRule> CollectExports(const std::vector<IstioGateway>& gateways,
                                       uint16_t listener_port, Reporter& report) {
  std::vector<ExportRule> exports;
  for (const IstioGateway& gateway : gateways) {
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
      for (const GatewayServer::Host& host : server.hosts) {
        exports.push_back({gateway.meta.ns, host});
      }
    }
  }
  return exports;
}

// exportTo as Istio reads it, for a consumer (the Gateway) in namespace `ns`.
bool VisibleIn(const MeshService& service, const std::string& ns) {
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

bool Exported(const MeshService& service, const std::vector<ExportRule>& exports,
              const std::vector<SniRewrite>* rewrites) {
  const std::vector<std::string> names = ClientNames(service.host, rewrites);
  for (const ExportRule& rule : exports) {
    if (rule.host.ns != "*" && rule.host.ns != service.ns) continue;
    if (!VisibleIn(service, rule.gateway_ns)) continue;
    for (const std::string& name : names) {
      if (HostMatches(rule.host.name, name)) return true;
    }
  }
  return false;
}

// --- Clusters ------------------------------------------------------------------------

std::vector<Endpoint> Select(const std::vector<Endpoint>& endpoints, const Labels& selector) {
  std::vector<Endpoint> out;
  for (const Endpoint& endpoint : endpoints) {
    if (SelectorMatches(selector, endpoint.labels)) out.push_back(endpoint);
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
void AddClusters(MeshService& service, const MergedRule* rule, bool exported,
                 std::vector<Cluster>& clusters) {
  std::vector<std::string> sources;
  for (const ResourceMeta* meta : service.defined_by) sources.push_back(meta->Source());
  Cluster base;
  base.host = service.host;
  base.source = absl::StrJoin(sources, "; ");
  base.service_namespace = service.ns;
  base.resolution = service.resolution;
  base.exported = exported;
  for (MeshService::Port& port : service.ports) {
    base.port = port.port.number;
    base.name = absl::StrCat("outbound|", base.port, "||", service.host);
    const size_t whole = clusters.size();
    clusters.push_back(base);
    SetPolicy(rule, nullptr, base.port, clusters[whole]);
    if (rule != nullptr) {
      for (const MergedRule::Subset& subset : rule->subsets) {
        clusters.push_back(SubsetCluster(base, port, *rule, subset));
      }
    }
    clusters[whole].endpoints = std::move(port.endpoints);
    clusters[whole].dns_endpoints = std::move(port.dns_endpoints);
  }
}

void WarnUnexported(const std::vector<MeshService>& services, const std::vector<bool>& exported,
                    uint16_t listener_port, std::vector<std::string>& warnings) {
  std::vector<std::string> hosts;
  for (size_t i = 0; i < services.size(); ++i) {
    if (!exported[i]) hosts.push_back(services[i].host);
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

}  // namespace

std::vector<Cluster> BuildClusters(MeshResources& resources,
                                   const ClusterBuildOptions& options,
                                   std::vector<std::string>& errors,
                                   std::vector<std::string>& warnings) {
  Reporter report(errors, warnings);
  std::vector<MeshService> services = CollectServices(
      resources, {options.cluster_domain, options.rewrites}, report);
  RuleIndex rules(resources.destination_rules, report);
  const std::vector<ExportRule> exports =
      CollectExports(resources.gateways, options.listener_port, report);

  std::vector<Cluster> clusters;
  std::vector<bool> exported(services.size(), true);
  for (size_t i = 0; i < services.size(); ++i) {
    if (!exports.empty()) exported[i] = Exported(services[i], exports, options.rewrites);
    AddClusters(services[i], rules.For(services[i].host), exported[i], clusters);
  }
  rules.WarnUnused(report);
  if (exports.empty() && !services.empty()) {
    warnings.push_back(absl::StrCat(
        "no Gateway exports hosts on port ", options.listener_port,
        " (a server with tls.mode AUTO_PASSTHROUGH): every host loaded is served"));
  }
  WarnUnexported(services, exported, options.listener_port, warnings);
  return clusters;
}

}  // namespace meshgate::config::internal
