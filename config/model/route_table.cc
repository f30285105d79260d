// SNI -> cluster. Route() runs once per connection on the data plane, so it never
// throws and allocates only the rewritten host it returns.
#include "config/model/route_table.h"

#include <stdexcept>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/names.h"

namespace meshgate::config {

std::string_view ToString(RouteMiss miss) {
  switch (miss) {
    case RouteMiss::kNone:
      return "none";
#define MESHGATE_ROUTE_STRING(name, str) \
  case RouteMiss::name:                  \
    return str;
      MESHGATE_ROUTE_MISSES(MESHGATE_ROUTE_STRING)
#undef MESHGATE_ROUTE_STRING
  }
  return "unknown";
}

std::string_view ToString(Resolution resolution) {
  switch (resolution) {
    case Resolution::kStatic:
      return "STATIC";
    case Resolution::kDns:
      return "DNS";
    case Resolution::kDnsRoundRobin:
      return "DNS_ROUND_ROBIN";
  }
  return "unknown";
}

namespace {

constexpr std::string_view kOutboundPrefix = "outbound_.";
constexpr std::string_view kSeparator = "_.";

// Views into the SNI: no allocation.
struct SniParts {
  std::string_view host;
  uint16_t port = 0;
  std::string_view subset;
};

// Istio builds "outbound_." + port + "_." + subset + "_." + host, with an empty
// subset for the whole service (which reads as "_._.").
bool SplitSni(std::string_view sni, SniParts& out) {
  out = {};
  if (!base::StartsWithIgnoreCase(sni, kOutboundPrefix)) {
    out.host = sni;
    return true;
  }
  std::string_view rest = sni.substr(kOutboundPrefix.size());
  const size_t port_end = rest.find(kSeparator);
  if (port_end == std::string_view::npos ||
      !base::ParsePortNumber(rest.substr(0, port_end), out.port)) {
    return false;
  }
  // Istio writes the port in plain decimal (model.BuildSubsetKey,
  // strconv.Itoa) and its gateway matches the SNI as an exact string, so
  // "outbound_.09000_..." is no route there: a bad SNI here too.
  if (port_end > 1 && rest[0] == '0') return false;
  rest.remove_prefix(port_end + kSeparator.size());
  const size_t subset_end = rest.find(kSeparator);
  if (subset_end == std::string_view::npos) return false;
  out.subset = rest.substr(0, subset_end);
  out.host = rest.substr(subset_end + kSeparator.size());
  return !out.host.empty();
}

std::string ClusterName(std::string_view host, uint16_t port, std::string_view subset) {
  return absl::StrCat("outbound|", port, "|", base::AbslView(subset), "|",
                      base::AbslView(host));
}

std::string HostPort(std::string_view host, uint16_t port) {
  if (host.find(':') != std::string::npos) {
    return absl::StrCat("[", base::AbslView(host), "]:", port);
  }
  return absl::StrCat(base::AbslView(host), ":", port);
}

// "  endpoint 10.0.0.1:80 weight 1 {app=x} network=n1 ... in view\n"
void DescribeEndpoint(std::string& out, std::string_view what, const Endpoint& endpoint,
                      bool in_view = true) {
  const std::string_view host = endpoint.address.empty() ? endpoint.hostname() : endpoint.address;
  absl::StrAppend(&out, "  ", base::AbslView(what), " ", HostPort(host, endpoint.port),
                  " weight ", endpoint.weight);
  const char* separator = " {";
  for (const auto& [key, value] : endpoint.labels) {
    absl::StrAppend(&out, separator, key, "=", value);
    separator = ", ";
  }
  if (!endpoint.labels.empty()) absl::StrAppend(&out, "}");
  using base::AbslView;
  if (!endpoint.address.empty() && !endpoint.hostname().empty()) {
    absl::StrAppend(&out, " from ", AbslView(endpoint.hostname()));
  }
  absl::StrAppend(&out, " network=", endpoint.network().empty() ? "(unset)" : AbslView(endpoint.network()));
  if (!endpoint.locality().empty()) absl::StrAppend(&out, " locality=", AbslView(endpoint.locality()));
  if (!endpoint.service_account().empty()) {
    absl::StrAppend(&out, " serviceAccount=", AbslView(endpoint.service_account()));
  }
  if (endpoint.HasWorkloadName()) {
    absl::StrAppend(&out, " workload=", AbslView(endpoint.details.Get(EndpointDetails::kWorkloadNamespace)), "/",
                    AbslView(endpoint.details.Get(EndpointDetails::kWorkloadName)));
  }
  if (!endpoint.ready) absl::StrAppend(&out, " NOT READY");
  absl::StrAppend(&out, in_view ? " in view\n" : " out of view\n");
}

void DescribeCluster(std::string& out, const Cluster& cluster) {
  absl::StrAppend(&out, "cluster ", cluster.id, ": ", cluster.name, "\n");
  absl::StrAppend(&out, "  source: ", cluster.source, "\n");
  if (!cluster.exported) {
    absl::StrAppend(&out, "  not exported: ",
                    cluster.export_detail.empty() ? "no Gateway host matches" : cluster.export_detail,
                    ": refused\n");
  }
  if (!cluster.subset.empty()) {
    absl::StrAppend(&out, "  subset ", cluster.subset, ":");
    for (const auto& [key, value] : cluster.subset_labels) {
      absl::StrAppend(&out, " ", key, "=", value);
    }
    absl::StrAppend(&out, cluster.subset_labels.empty() ? " (all endpoints)\n" : "\n");
  }
  if (cluster.resolution != Resolution::kStatic) {
    absl::StrAppend(&out, "  resolution: ", base::AbslView(ToString(cluster.resolution)),
                    "\n");
  }
  if (!cluster.policy_source.empty()) {
    absl::StrAppend(&out, "  policy: ", Describe(cluster.policy), "\n");
    absl::StrAppend(&out, "  policy source: ", cluster.policy_source, "\n");
  }
  if (cluster.endpoints.empty() && cluster.dns_endpoints.empty()) {
    absl::StrAppend(&out, "  (no endpoints)\n");
  }
  for (const Endpoint& endpoint : cluster.endpoints) DescribeEndpoint(out, "endpoint", endpoint);
  for (const Endpoint& endpoint : cluster.dns_endpoints) {
    DescribeEndpoint(out, "dns endpoint", endpoint);
  }
  for (const Endpoint& endpoint : cluster.out_of_view) {
    DescribeEndpoint(out, "endpoint", endpoint, false);
  }
}

void DescribeView(std::string& out, const GatewayView& view) {
  if (!view.closed_reason.empty()) absl::StrAppend(&out, "closed: ", view.closed_reason, "\n");
  absl::StrAppend(&out, "selected by Gateways: ",
                  view.gateways.empty() ? "none" : absl::StrJoin(view.gateways, ", "), "\n");
  absl::StrAppend(&out, "network: ", view.network.empty() ? "(unset)" : view.network, "\n");
  if (view.network_view.empty()) {
    absl::StrAppend(&out, "network view: all networks\n");
  } else {
    absl::StrAppend(&out, "network view: ", absl::StrJoin(view.network_view, ", "),
                    " and endpoints without a network\n");
  }
}

}  // namespace

bool ParseSni(std::string_view sni, SniTarget& out) {
  SniParts parts;
  if (!SplitSni(sni, parts)) return false;
  out.host = std::string(parts.host);
  out.port = parts.port;
  out.subset = std::string(parts.subset);
  return true;
}

// host -> (port, subset) -> cluster id, and name -> id. Hosts are few; ports
// per host fewer. Shared by every version with the same set of clusters.
struct RouteTable::Index {
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

  absl::flat_hash_map<std::string, HostEntry> by_host;
  // ".example.com" -> the entry of "*.example.com" in by_host (stable: the map
  // is complete before these are taken).
  absl::flat_hash_map<std::string, const HostEntry*> by_wildcard_suffix;
  absl::flat_hash_map<std::string, uint32_t> by_name;
};

bool SameContent(const Cluster& a, const Cluster& b) {
  auto fields = [](const Cluster& c) {
    return std::tie(c.name, c.host, c.port, c.subset, c.endpoints, c.source, c.service_namespace,
                    c.resolution, c.dns_endpoints, c.subset_labels, c.policy, c.policy_source,
                    c.exported, c.export_detail, c.out_of_view);
  };
  return fields(a) == fields(b);
}

RouteTable::RouteTable(std::vector<Cluster> clusters, std::vector<SniRewrite> rewrites,
                       GatewayView view, AuthorizationPolicies authorization) {
  std::vector<std::shared_ptr<const Cluster>> owned;
  owned.reserve(clusters.size());
  for (size_t i = 0; i < clusters.size(); ++i) {
    Prepare(clusters[i], i);
    owned.push_back(std::make_shared<const Cluster>(std::move(clusters[i])));
  }
  Init(std::move(owned), std::move(rewrites), std::move(view), std::move(authorization));
}

std::shared_ptr<const RouteTable> RouteTable::FromOwned(std::vector<std::unique_ptr<Cluster>> clusters,
                                                        std::vector<SniRewrite> rewrites, GatewayView view,
                                                        AuthorizationPolicies authorization) {
  std::vector<std::shared_ptr<const Cluster>> owned;
  owned.reserve(clusters.size());
  for (size_t i = 0; i < clusters.size(); ++i) {
    Prepare(*clusters[i], i);
    owned.emplace_back(std::move(clusters[i]));
  }
  std::shared_ptr<RouteTable> table(new RouteTable(PersistentVector<const Cluster>(), nullptr, nullptr));
  table->Init(std::move(owned), std::move(rewrites), std::move(view), std::move(authorization));
  return table;
}

void RouteTable::Prepare(Cluster& cluster, size_t id) {
  cluster.id = static_cast<uint32_t>(id);
  absl::AsciiStrToLower(&cluster.host);
  if (cluster.name.empty()) cluster.name = ClusterName(cluster.host, cluster.port, cluster.subset);
}

void RouteTable::Init(std::vector<std::shared_ptr<const Cluster>> owned, std::vector<SniRewrite> rewrites,
                      GatewayView view, AuthorizationPolicies authorization) {
  auto shared = std::make_shared<Shared>();
  shared->rewrites = std::move(rewrites);
  shared->view = std::move(view);
  shared->authorization = std::move(authorization);
  for (SniRewrite& rewrite : shared->rewrites) {
    absl::AsciiStrToLower(&rewrite.from);
    absl::AsciiStrToLower(&rewrite.to);
  }
  shared_ = std::move(shared);
  clusters_ = PersistentVector<const Cluster>(std::move(owned));
  index_ = BuildIndex(clusters_);
}

RouteTable::RouteTable(PersistentVector<const Cluster> clusters, std::shared_ptr<const Shared> shared,
                       std::shared_ptr<const Index> index)
    : clusters_(std::move(clusters)), shared_(std::move(shared)), index_(std::move(index)) {}

std::shared_ptr<const RouteTable::Index> RouteTable::BuildIndex(
    const PersistentVector<const Cluster>& clusters) {
  auto index = std::make_shared<Index>();
  for (const auto& ptr : clusters) {
    const Cluster& cluster = *ptr;
    Index::HostEntry& host = index->by_host[cluster.host];
    host.exported = host.exported || cluster.exported;
    for (const Index::PortSubset& entry : host.clusters) {
      if (entry.port == cluster.port && entry.subset == cluster.subset) {
        // The loader rejects duplicates with a proper message; reaching this is a bug.
        throw std::invalid_argument(absl::StrCat("RouteTable: duplicate cluster ", cluster.name,
                                                 " (", clusters[entry.index]->source, " and ",
                                                 cluster.source, ")"));
      }
    }
    host.clusters.push_back({cluster.port, cluster.subset, cluster.id});
    index->by_name.try_emplace(cluster.name, cluster.id);
  }
  for (const auto& [host, entry] : index->by_host) {
    if (host.starts_with("*.")) index->by_wildcard_suffix[host.substr(1)] = &entry;
  }
  return index;
}

std::shared_ptr<const RouteTable> RouteTable::WithCluster(Cluster cluster) const {
  std::vector<Cluster> one;
  one.push_back(std::move(cluster));
  return WithClusters(std::move(one));
}

std::shared_ptr<const RouteTable> RouteTable::WithCluster(std::shared_ptr<const Cluster> cluster) const {
  std::vector<std::shared_ptr<const Cluster>> one;
  one.push_back(std::move(cluster));
  return WithClusters(std::move(one));
}

std::shared_ptr<const RouteTable> RouteTable::WithClusters(std::vector<Cluster> clusters) const {
  std::vector<std::shared_ptr<const Cluster>> shared;
  shared.reserve(clusters.size());
  for (Cluster& cluster : clusters) {
    const auto it = index_->by_name.find(cluster.name);
    if (it == index_->by_name.end()) {
      throw std::invalid_argument(absl::StrCat("RouteTable: no cluster ", cluster.name, " to update"));
    }
    cluster.id = it->second;
    absl::AsciiStrToLower(&cluster.host);
    shared.push_back(std::make_shared<const Cluster>(std::move(cluster)));
  }
  return WithClusters(std::move(shared));
}

std::shared_ptr<const RouteTable> RouteTable::WithClusters(std::vector<std::shared_ptr<const Cluster>> clusters) const {
  std::vector<std::pair<size_t, std::shared_ptr<const Cluster>>> sets;
  sets.reserve(clusters.size());
  bool exported_changed = false;
  for (std::shared_ptr<const Cluster>& cluster : clusters) {
    const auto it = index_->by_name.find(cluster->name);
    if (it == index_->by_name.end()) {
      throw std::invalid_argument(absl::StrCat("RouteTable: no cluster ", cluster->name, " to update"));
    }
    const Cluster& before = *clusters_[it->second];
    if (cluster->id != before.id || cluster->host != before.host || cluster->port != before.port ||
        cluster->subset != before.subset) {
      throw std::invalid_argument(
          absl::StrCat("RouteTable: an update of ", cluster->name, " changes its id, host, port or subset"));
    }
    exported_changed = exported_changed || cluster->exported != before.exported;
    sets.emplace_back(before.id, std::move(cluster));
  }
  PersistentVector<const Cluster> next = clusters_;
  next.SetMany(std::move(sets));
  std::shared_ptr<const Index> index = exported_changed ? BuildIndex(next) : index_;
  return std::shared_ptr<const RouteTable>(new RouteTable(std::move(next), shared_, std::move(index)));
}

namespace {

// Ids for Reuse: each cluster of `next` keeps the id its name had in
// `previous` when that id is still in range; the rest take the free ids.
std::vector<uint32_t> StableIds(const RouteTable& previous, const RouteTable& next) {
  const size_t n = next.clusters().size();
  std::vector<uint32_t> ids(n, UINT32_MAX);
  std::vector<bool> taken(n, false);
  for (size_t j = 0; j < n; ++j) {
    const Cluster* before = previous.FindByName(next.clusters()[j].name);
    if (before == nullptr || before->id >= n || taken[before->id]) continue;
    ids[j] = before->id;
    taken[before->id] = true;
  }
  uint32_t free = 0;
  for (size_t j = 0; j < n; ++j) {
    if (ids[j] != UINT32_MAX) continue;
    while (taken[free]) ++free;
    ids[j] = free;
    taken[free] = true;
  }
  return ids;
}

}  // namespace

std::shared_ptr<const RouteTable> RouteTable::Reuse(const RouteTable& previous, const RouteTable& next) {
  const std::vector<uint32_t> ids = StableIds(previous, next);
  std::vector<std::shared_ptr<const Cluster>> slots(ids.size());
  for (size_t j = 0; j < ids.size(); ++j) {
    const std::shared_ptr<const Cluster>& cluster = next.clusters_[j];
    const Cluster* before = previous.FindByName(cluster->name);
    if (before != nullptr && before->id == ids[j] &&
        (previous.clusters_[before->id] == cluster || SameContent(*before, *cluster))) {
      slots[ids[j]] = previous.clusters_[before->id];
    } else if (cluster->id == ids[j]) {
      slots[ids[j]] = cluster;
    } else {
      auto moved = std::make_shared<Cluster>(*cluster);
      moved->id = ids[j];
      slots[ids[j]] = std::move(moved);
    }
  }
  PersistentVector<const Cluster> clusters(std::move(slots));
  auto index = BuildIndex(clusters);
  return std::shared_ptr<const RouteTable>(new RouteTable(std::move(clusters), next.shared_, std::move(index)));
}

const RouteTable::Index::HostEntry* RouteTable::Index::FindHost(std::string_view host) const {
  const auto it = by_host.find(base::AbslView(host));
  if (it != by_host.end()) return &it->second;
  if (by_wildcard_suffix.empty()) return nullptr;
  // Longest suffix first: "a.b.example.com" tries ".b.example.com", then ".example.com".
  // From the second byte: a wildcard covers at least one label, so ".example.com" is no match.
  for (size_t dot = host.find('.', 1); dot != std::string_view::npos; dot = host.find('.', dot + 1)) {
    const auto wild = by_wildcard_suffix.find(base::AbslView(host.substr(dot)));
    if (wild != by_wildcard_suffix.end()) return wild->second;
  }
  return nullptr;
}

std::string RouteTable::RewriteHost(std::string_view host) const {
  for (const SniRewrite& rewrite : shared_->rewrites) {
    if (!base::HasLabelSuffix(host, rewrite.from)) continue;
    const std::string_view stem = host.substr(0, host.size() - rewrite.from.size());
    std::string out;
    out.reserve(stem.size() + rewrite.to.size());
    out.append(stem);
    absl::AsciiStrToLower(&out);
    out.append(rewrite.to);
    return out;
  }
  return base::AsciiLower(host);
}

RouteResult RouteTable::Route(std::string_view sni, RouteOptions options) const {
  RouteResult result;
  if (sni.empty()) {
    result.miss = RouteMiss::kNoSni;
    return result;
  }
  SniParts parts;
  if (!SplitSni(sni, parts)) {
    result.miss = RouteMiss::kBadSni;
    return result;
  }
  if (parts.port == 0 && !options.allow_plain_host) {
    result.miss = RouteMiss::kPlainHostSni;
    return result;
  }
  result.host = RewriteHost(parts.host);
  const Index::HostEntry* host = index_->FindHost(result.host);
  if (host == nullptr) {
    result.miss = RouteMiss::kUnknownHost;
    return result;
  }
  if (!host->exported) {  // before the port and subset: nothing about it is served
    result.miss = RouteMiss::kNotExported;
    return result;
  }
  const std::vector<Index::PortSubset>& entries = host->clusters;
  uint16_t port = parts.port;
  if (port == 0) {
    // A plain host names a service, not a port: only unambiguous with one port.
    port = entries.front().port;
    for (const Index::PortSubset& entry : entries) {
      if (entry.port != port) {
        result.miss = RouteMiss::kAmbiguousPort;
        return result;
      }
    }
  }
  bool port_known = false;
  for (const Index::PortSubset& entry : entries) {
    if (entry.port != port) continue;
    port_known = true;
    if (base::EqualsIgnoreCase(entry.subset, parts.subset)) {
      const Cluster& cluster = *clusters_[entry.index];
      if (!cluster.exported) {  // e.g. a UDP port of an exported host
        result.miss = RouteMiss::kNotExported;
        return result;
      }
      result.cluster = &cluster;
      return result;
    }
  }
  result.miss = port_known ? RouteMiss::kUnknownSubset : RouteMiss::kUnknownPort;
  return result;
}

const Cluster* RouteTable::Find(std::string_view host, uint16_t port,
                                std::string_view subset) const {
  const auto it = index_->by_host.find(base::AbslView(host));
  if (it == index_->by_host.end()) return nullptr;
  for (const Index::PortSubset& entry : it->second.clusters) {
    if (entry.port == port && entry.subset == subset) return clusters_[entry.index].get();
  }
  return nullptr;
}

const Cluster* RouteTable::FindByName(std::string_view name) const {
  const auto it = index_->by_name.find(base::AbslView(name));
  return it == index_->by_name.end() ? nullptr : clusters_[it->second].get();
}

size_t RouteTable::ClustersOfHost(std::string_view host) const {
  const auto it = index_->by_host.find(base::AbslView(host));
  return it == index_->by_host.end() ? 0 : it->second.clusters.size();
}

std::string RouteTable::Describe() const {
  std::string out = absl::StrCat(
      "route table: ", clusters_.size(), clusters_.size() == 1 ? " cluster, " : " clusters, ",
      rewrites().size(), rewrites().size() == 1 ? " SNI rewrite\n" : " SNI rewrites\n");
  for (const SniRewrite& rewrite : rewrites()) {
    absl::StrAppend(&out, "sni rewrite: *", rewrite.from, " -> *", rewrite.to, "\n");
  }
  DescribeView(out, view());
  if (!authorization().empty()) {
    const std::string authorization = this->authorization().Describe();
    absl::StrAppend(&out, authorization, authorization.ends_with('\n') ? "" : "\n");
  }
  for (const Cluster& cluster : clusters()) DescribeCluster(out, cluster);
  return out;
}

}  // namespace meshgate::config
