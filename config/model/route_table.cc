// SNI -> cluster. Route() runs once per connection on the data plane, so it never
// throws and allocates only the rewritten host it returns.
#include "config/model/route_table.h"

#include <stdexcept>

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
  const std::string& host = endpoint.address.empty() ? endpoint.hostname : endpoint.address;
  absl::StrAppend(&out, "  ", base::AbslView(what), " ", HostPort(host, endpoint.port),
                  " weight ", endpoint.weight);
  const char* separator = " {";
  for (const auto& [key, value] : endpoint.labels) {
    absl::StrAppend(&out, separator, key, "=", value);
    separator = ", ";
  }
  if (!endpoint.labels.empty()) absl::StrAppend(&out, "}");
  if (!endpoint.address.empty() && !endpoint.hostname.empty()) {
    absl::StrAppend(&out, " from ", endpoint.hostname);
  }
  absl::StrAppend(&out, " network=", endpoint.network.empty() ? "(unset)" : endpoint.network);
  if (!endpoint.locality.empty()) absl::StrAppend(&out, " locality=", endpoint.locality);
  if (!endpoint.service_account.empty()) {
    absl::StrAppend(&out, " serviceAccount=", endpoint.service_account);
  }
  if (!endpoint.workload.name.empty()) {
    absl::StrAppend(&out, " workload=", endpoint.workload.ns, "/", endpoint.workload.name);
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

RouteTable::RouteTable(std::vector<Cluster> clusters, std::vector<SniRewrite> rewrites,
                       GatewayView view, AuthorizationPolicies authorization)
    : clusters_(std::move(clusters)),
      rewrites_(std::move(rewrites)),
      view_(std::move(view)),
      authorization_(std::move(authorization)) {
  for (SniRewrite& rewrite : rewrites_) {
    absl::AsciiStrToLower(&rewrite.from);
    absl::AsciiStrToLower(&rewrite.to);
  }
  for (size_t i = 0; i < clusters_.size(); ++i) {
    Cluster& cluster = clusters_[i];
    cluster.id = static_cast<uint32_t>(i);
    absl::AsciiStrToLower(&cluster.host);
    if (cluster.name.empty())
      cluster.name = ClusterName(cluster.host, cluster.port, cluster.subset);
    HostEntry& host = by_host_[cluster.host];
    host.exported = host.exported || cluster.exported;
    std::vector<PortSubset>& entries = host.clusters;
    for (const PortSubset& entry : entries) {
      if (entry.port == cluster.port && entry.subset == cluster.subset) {
        // The loader rejects duplicates with a proper message; reaching this is a bug.
        throw std::invalid_argument(absl::StrCat("RouteTable: duplicate cluster ", cluster.name,
                                                 " (", clusters_[entry.index].source, " and ",
                                                 cluster.source, ")"));
      }
    }
    entries.push_back({cluster.port, cluster.subset, cluster.id});
  }
  for (const auto& [host, entry] : by_host_) {
    if (host.starts_with("*.")) by_wildcard_suffix_[host.substr(1)] = &entry;
  }
}

const RouteTable::HostEntry* RouteTable::FindHost(std::string_view host) const {
  const auto it = by_host_.find(base::AbslView(host));
  if (it != by_host_.end()) return &it->second;
  if (by_wildcard_suffix_.empty()) return nullptr;
  // Longest suffix first: "a.b.example.com" tries ".b.example.com", then ".example.com".
  for (size_t dot = host.find('.'); dot != std::string_view::npos; dot = host.find('.', dot + 1)) {
    const auto wild = by_wildcard_suffix_.find(base::AbslView(host.substr(dot)));
    if (wild != by_wildcard_suffix_.end()) return wild->second;
  }
  return nullptr;
}

std::string RouteTable::RewriteHost(std::string_view host) const {
  for (const SniRewrite& rewrite : rewrites_) {
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
  const HostEntry* host = FindHost(result.host);
  if (host == nullptr) {
    result.miss = RouteMiss::kUnknownHost;
    return result;
  }
  if (!host->exported) {  // before the port and subset: nothing about it is served
    result.miss = RouteMiss::kNotExported;
    return result;
  }
  const std::vector<PortSubset>& entries = host->clusters;
  uint16_t port = parts.port;
  if (port == 0) {
    // A plain host names a service, not a port: only unambiguous with one port.
    port = entries.front().port;
    for (const PortSubset& entry : entries) {
      if (entry.port != port) {
        result.miss = RouteMiss::kAmbiguousPort;
        return result;
      }
    }
  }
  bool port_known = false;
  for (const PortSubset& entry : entries) {
    if (entry.port != port) continue;
    port_known = true;
    if (base::EqualsIgnoreCase(entry.subset, parts.subset)) {
      const Cluster& cluster = clusters_[entry.index];
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
  const auto it = by_host_.find(base::AbslView(host));
  if (it == by_host_.end()) return nullptr;
  for (const PortSubset& entry : it->second.clusters) {
    if (entry.port == port && entry.subset == subset) return &clusters_[entry.index];
  }
  return nullptr;
}

std::string RouteTable::Describe() const {
  std::string out = absl::StrCat(
      "route table: ", clusters_.size(), clusters_.size() == 1 ? " cluster, " : " clusters, ",
      rewrites_.size(), rewrites_.size() == 1 ? " SNI rewrite\n" : " SNI rewrites\n");
  for (const SniRewrite& rewrite : rewrites_) {
    absl::StrAppend(&out, "sni rewrite: *", rewrite.from, " -> *", rewrite.to, "\n");
  }
  DescribeView(out, view_);
  if (!authorization_.empty()) {
    const std::string authorization = authorization_.Describe();
    absl::StrAppend(&out, authorization, authorization.ends_with('\n') ? "" : "\n");
  }
  for (const Cluster& cluster : clusters_) DescribeCluster(out, cluster);
  return out;
}

}  // namespace meshgate::config
