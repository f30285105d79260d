// ServiceEntry and WorkloadEntry validation. Field names and rules follow Istio's
// API and its validation webhook; what a passthrough gateway can't serve is
// rejected with a reason, not ignored.
#include "config/mesh/service_entry.h"

#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/names.h"
#include "config/mesh/workload.h"

namespace meshgate::config::internal {

namespace {

// Istio's protocol.Parse accepts these, case-insensitively.
constexpr absl::string_view kProtocols[] = {"HTTP",  "HTTPS",      "GRPC",  "GRPC-WEB",
                                            "HTTP2", "HTTP_PROXY", "MONGO", "MYSQL",
                                            "REDIS", "TCP",        "TLS",   "UDP"};

constexpr std::string_view kNoneAdvice =
    "can't be served by a passthrough gateway: it has no endpoints to dial; use STATIC with IP "
    "endpoints, or DNS";

// Everything read from one ServiceEntry, threaded through the spec readers.
struct Reader {
  ErrorSink& sink;
  ServiceEntry& entry;
  LabelInterner& labels;
  yaml::Node spec_key;  // where a missing spec field is reported: the "spec:" line
  bool resolution_valid = false;  // written and known: rules that depend on it apply
};

void ReadHosts(const yaml::Node& spec, Reader& r) {
  const MapEntry hosts = Lookup(spec, "hosts");
  if (!Require(hosts, r.spec_key, "spec.hosts", r.sink) ||
      !ExpectList(hosts.value, "spec.hosts", r.sink)) {
    return;
  }
  if (hosts.value.size() == 0) r.sink.Add(hosts.key, "spec.hosts", "must list at least one host");
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < hosts.value.size(); ++i) {
    const yaml::Node node = hosts.value[i];
    const std::string field = IndexPath("spec.hosts", i);
    auto text = ReadString(node, field, r.sink);
    if (!text) continue;
    std::string host = AsciiLower(*text);
    if (host.ends_with('.')) host.pop_back();  // "a.b." is the same FQDN as "a.b"
    if (host == "*") {  // Istio refuses it too: the gateway would route any SNI
      r.sink.Add(node, field, "\"*\" would match every host; name a domain, as in \"*.example.com\"");
      continue;
    }
    if (auto problem = WildcardHostProblem(host)) {
      r.sink.Add(node, field, absl::StrCat("\"", *text, "\" is not a valid host name: ", *problem));
      continue;
    }
    if (!seen.insert(host).second) {
      r.sink.Add(node, field, absl::StrCat("duplicate host \"", host, "\""));
      continue;
    }
    r.entry.hosts.push_back({std::move(host), {field, PositionOf(node)}});
  }
}

void ReadPortName(const yaml::Node& node, const std::string& path, Reader& r, ServicePort& port) {
  const MapEntry name = Lookup(node, "name");
  const std::string name_path = FieldPath(path, "name");
  if (!Require(name, node, name_path, r.sink)) return;
  auto value = ReadString(name.value, name_path, r.sink);
  if (!value) return;
  if (!IsDns1123Label(*value)) {
    r.sink.Add(name.value, name_path,
               absl::StrCat("\"", *value,
                            "\" is not a valid port name (lowercase letters, digits and '-', "
                            "at most 63 characters)"));
    return;
  }
  port.name = *value;
}

bool ReadPort(const yaml::Node& node, const std::string& path, Reader& r, ServicePort& port) {
  if (!ExpectMap(node, path, r.sink)) return false;
  const size_t errors = r.sink.count();
  port.ref = {path, PositionOf(node)};
  CheckFields(node, path, {"number", "protocol", "name", "targetPort"}, r.sink);

  const MapEntry number = Lookup(node, "number");
  const std::string number_path = FieldPath(path, "number");
  if (Require(number, node, number_path, r.sink)) {
    if (auto value = ReadInt(number.value, number_path, 1, 65535, r.sink)) {
      port.number = static_cast<uint16_t>(*value);
    }
  }
  ReadPortName(node, path, r, port);
  // Unset is allowed: Istio then sniffs the protocol.
  IfPresent(node, "protocol", [&](const yaml::Node& n) {
    const std::string protocol_path = FieldPath(path, "protocol");
    auto value = ReadString(n, protocol_path, r.sink);
    if (!value) return;
    port.protocol = absl::AsciiStrToUpper(AbslView(*value));
    bool known = false;
    for (absl::string_view p : kProtocols) known = known || p == port.protocol;
    if (!known) {
      r.sink.Add(n, protocol_path,
                 absl::StrCat("unknown protocol \"", *value,
                              "\" (one of: ", absl::StrJoin(kProtocols, ", "), ")"));
    }
  });
  IfPresent(node, "targetPort", [&](const yaml::Node& n) {
    if (auto value = ReadInt(n, FieldPath(path, "targetPort"), 1, 65535, r.sink)) {
      port.target_port = static_cast<uint16_t>(*value);
    }
  });
  return r.sink.count() == errors;
}

// Returns false when some port is broken, so endpoint port names aren't checked
// against a partial list.
bool ReadPorts(const yaml::Node& spec, Reader& r) {
  const MapEntry ports = Lookup(spec, "ports");
  if (!Require(ports, r.spec_key, "spec.ports", r.sink) ||
      !ExpectList(ports.value, "spec.ports", r.sink)) {
    return false;
  }
  if (ports.value.size() == 0) {
    r.sink.Add(ports.key, "spec.ports", "must list at least one port");
    return false;
  }
  bool ok = true;
  absl::flat_hash_map<std::string, size_t> names;
  absl::flat_hash_map<uint16_t, size_t> numbers;
  for (size_t i = 0; i < ports.value.size(); ++i) {
    const yaml::Node node = ports.value[i];
    const std::string path = IndexPath("spec.ports", i);
    ServicePort port;
    if (!ReadPort(node, path, r, port)) {
      ok = false;
      continue;
    }
    if (auto [it, added] = names.emplace(port.name, i); !added) {
      r.sink.Add(Lookup(node, "name").value, FieldPath(path, "name"),
                 absl::StrCat("port name \"", port.name, "\" is already used by spec.ports[",
                              it->second, "]"));
      ok = false;
      continue;
    }
    if (auto [it, added] = numbers.emplace(port.number, i); !added) {
      r.sink.Add(Lookup(node, "number").value, FieldPath(path, "number"),
                 absl::StrCat("port ", port.number, " is already defined by spec.ports[",
                              it->second, "]"));
      ok = false;
      continue;
    }
    r.entry.ports.push_back(std::move(port));
  }
  return ok;
}

SeResolution ReadResolution(const yaml::Node& spec, Reader& r) {
  const MapEntry resolution = Lookup(spec, "resolution");
  if (!resolution.present() || resolution.value.IsNull()) {
    const yaml::Node& at = resolution.present() ? resolution.key : r.spec_key;
    r.entry.resolution_ref = {"spec.resolution", PositionOf(at)};
    r.sink.Add(at, "spec.resolution",
               absl::StrCat("resolution NONE (the default when unset) ", AbslView(kNoneAdvice)));
    return SeResolution::kNone;
  }
  r.entry.resolution_ref = {"spec.resolution", PositionOf(resolution.value)};
  auto value = ReadString(resolution.value, "spec.resolution", r.sink);
  if (!value) return SeResolution::kNone;
  r.resolution_valid = true;
  if (*value == "STATIC") return SeResolution::kStatic;
  if (*value == "DNS") return SeResolution::kDns;
  if (*value == "DNS_ROUND_ROBIN") return SeResolution::kDnsRoundRobin;
  if (*value == "NONE") {
    r.sink.Add(resolution.value, "spec.resolution",
               absl::StrCat("resolution NONE ", AbslView(kNoneAdvice)));
  } else {
    r.resolution_valid = false;
    r.sink.Add(resolution.value, "spec.resolution",
               absl::StrCat("unknown resolution \"", *value,
                            "\" (one of: NONE, STATIC, DNS, DNS_ROUND_ROBIN)"));
  }
  return SeResolution::kNone;
}

void ReadEndpoints(const yaml::Node& spec, bool check_port_names, Reader& r) {
  const MapEntry endpoints = Lookup(spec, "endpoints");
  if (!endpoints.present() || endpoints.value.IsNull()) return;
  if (!ExpectList(endpoints.value, "spec.endpoints", r.sink)) return;
  const SeResolution resolution = r.entry.resolution;
  AddressRule rule = AddressRule::kUnchecked;
  std::string_view what;
  if (resolution == SeResolution::kStatic) {
    rule = AddressRule::kIp;
    what = "resolution STATIC needs IP endpoints";
  } else if (resolution != SeResolution::kNone) {
    rule = AddressRule::kIpOrHost;
  }
  r.entry.endpoints.reserve(endpoints.value.size());
  for (size_t i = 0; i < endpoints.value.size(); ++i) {
    const yaml::Node node = endpoints.value[i];
    const std::string path = IndexPath("spec.endpoints", i);
    if (!ExpectMap(node, path, r.sink)) continue;
    WorkloadEndpoint endpoint;
    ReadWorkload(node, path, rule, what, check_port_names ? &r.entry.ports : nullptr, r.sink, r.labels,
                 endpoint);
    r.entry.endpoints.push_back(std::move(endpoint));
  }
  uint64_t total = 0;
  for (const WorkloadEndpoint& endpoint : r.entry.endpoints) total += endpoint.fields.weight;
  if (total > std::numeric_limits<uint32_t>::max()) {
    r.sink.Add(
        endpoints.key, "spec.endpoints",
        absl::StrCat("total weight ", total, " exceeds ", std::numeric_limits<uint32_t>::max()));
  }
}

// IPs or CIDR blocks; CIDRs only where Istio allows them.
void ReadAddresses(const yaml::Node& node, Reader& r) {
  if (!CheckStringList(node, "spec.addresses", r.sink)) return;
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string text = node[i].Scalar();
    const std::string field = IndexPath("spec.addresses", i);
    const size_t slash = text.find('/');
    const std::string ip = text.substr(0, slash);
    bool ok = CanonicalIp(ip).has_value();
    if (ok && slash != std::string::npos) {
      uint16_t bits = 0;
      const int max_bits = ip.find(':') == std::string::npos ? 32 : 128;
      const std::string prefix = text.substr(slash + 1);
      ok = (prefix == "0" || ParsePortNumber(prefix, bits)) && bits <= max_bits;
      if (ok && r.entry.resolution != SeResolution::kStatic &&
          r.entry.resolution != SeResolution::kNone) {
        r.sink.Add(node[i], field,
                   absl::StrCat("CIDR \"", text,
                                "\" is allowed only with resolution STATIC or NONE"));
        continue;
      }
    }
    if (!ok) {
      r.sink.Add(node[i], field,
                 absl::StrCat("\"", text, "\" is not an IP address or CIDR block"));
    }
  }
}

void ReadWorkloadSelector(const MapEntry& selector, Reader& r) {
  const std::string path = "spec.workloadSelector";
  r.entry.selector_ref = {path, PositionOf(selector.key)};
  if (!ExpectMap(selector.value, path, r.sink)) return;
  CheckFields(selector.value, path, {"labels"}, r.sink);
  Labels labels;
  bool read = true;
  IfPresent(selector.value, "labels", [&](const yaml::Node& node) {
    auto value = ReadLabels(node, FieldPath(path, "labels"), r.sink);
    read = value.has_value();
    if (value) labels = *value;
  });
  if (read && labels.empty()) {
    r.sink.Add(selector.key, path,
               "must select by at least one label (an empty selector would select every "
               "workload in the namespace)");
  }
  r.entry.workload_selector = std::move(labels);
}

void ReadLocation(const yaml::Node& node, Reader& r) {
  auto value = ReadString(node, "spec.location", r.sink);
  if (value && *value != "MESH_EXTERNAL" && *value != "MESH_INTERNAL") {
    r.sink.Add(node, "spec.location",
               absl::StrCat("unknown location \"", *value,
                            "\" (one of: MESH_EXTERNAL, MESH_INTERNAL)"));
  }
  r.entry.mesh_external = value && *value == "MESH_EXTERNAL";
}

// Istio: with several hosts, only HTTP (Host header) and TLS (SNI) ports can
// tell them apart; plain TCP can't.
void CheckHostsAgainstPorts(const yaml::Node& spec, Reader& r) {
  if (r.entry.hosts.size() < 2) return;
  for (size_t i = 0; i < r.entry.ports.size(); ++i) {
    const ServicePort& port = r.entry.ports[i];
    const std::string& p = port.protocol;
    const bool http = p == "HTTP" || p == "HTTP2" || p == "GRPC" || p == "GRPC-WEB" ||
                      p == "HTTP_PROXY";
    if (http || p == "HTTPS" || p == "TLS") continue;
    r.sink.Add(Lookup(spec, "hosts").key, "spec.hosts",
               absl::StrCat("several hosts need HTTP or TLS ports to tell them apart (Istio "
                            "rejects this): port \"",
                            port.name, "\" is ", p.empty() ? "of unset protocol" : p));
    return;
  }
}

void CheckEndpointRules(const yaml::Node& spec, Reader& r) {
  const MapEntry endpoints = Lookup(spec, "endpoints");
  const bool listed = endpoints.present() && !endpoints.value.IsNull() &&
                      !(endpoints.value.IsSequence() && endpoints.value.size() == 0);
  const yaml::Node at = endpoints.present() ? endpoints.key : r.spec_key;
  const bool selector = r.entry.workload_selector.has_value();
  if (listed && selector) {
    r.sink.AddAt(r.entry.selector_ref.at, "spec.workloadSelector",
                 "only one of workloadSelector or endpoints is allowed");
  }
  if (!r.resolution_valid) return;  // already reported; more would be noise
  switch (r.entry.resolution) {
    case SeResolution::kNone:
      if (listed) r.sink.Add(at, "spec.endpoints", "not allowed with resolution NONE");
      break;
    case SeResolution::kStatic:
      if (!listed && !selector) {
        r.sink.Add(at, "spec.endpoints",
                   "required for resolution STATIC (at least one IP endpoint, or a "
                   "workloadSelector)");
      }
      break;
    case SeResolution::kDnsRoundRobin:
      if (listed && endpoints.value.IsSequence() && endpoints.value.size() > 1) {
        r.sink.Add(at, "spec.endpoints",
                   absl::StrCat("resolution DNS_ROUND_ROBIN allows at most one endpoint, got ",
                                endpoints.value.size()));
      }
      break;
    case SeResolution::kDns:
      break;
  }
  // Without endpoints the hosts themselves are resolved, so they must be names.
  const bool dns = r.entry.resolution == SeResolution::kDns ||
                   r.entry.resolution == SeResolution::kDnsRoundRobin;
  if (dns && !listed && !selector) {
    for (const ServiceEntry::Host& host : r.entry.hosts) {
      if (!host.name.starts_with("*")) continue;
      r.sink.AddAt(host.ref.at, host.ref.path,
                   absl::StrCat("wildcard host \"", host.name, "\" needs endpoints: with resolution ",
                                r.entry.resolution == SeResolution::kDns ? "DNS" : "DNS_ROUND_ROBIN",
                                " and no endpoints the hosts themselves are resolved"));
    }
  }
}

void ReadSpec(const yaml::Node& spec, Reader& r) {
  CheckFields(spec, "spec",
              {"hosts", "addresses", "ports", "location", "resolution", "endpoints",
               "workloadSelector", "exportTo", "subjectAltNames"},
              r.sink);
  ReadHosts(spec, r);
  const bool ports_ok = ReadPorts(spec, r);
  r.entry.resolution = ReadResolution(spec, r);
  IfPresent(spec, "addresses", [&](const yaml::Node& n) { ReadAddresses(n, r); });
  IfPresent(spec, "location", [&](const yaml::Node& n) { ReadLocation(n, r); });
  IfPresent(spec, "exportTo", [&](const yaml::Node& n) {
    r.entry.export_to = ReadExportTo(n, "spec.exportTo", r.sink);
  });
  IfPresent(spec, "subjectAltNames",
            [&](const yaml::Node& n) { CheckStringList(n, "spec.subjectAltNames", r.sink); });
  if (const MapEntry selector = Lookup(spec, "workloadSelector");
      selector.present() && !selector.value.IsNull()) {
    ReadWorkloadSelector(selector, r);
  }
  ReadEndpoints(spec, ports_ok, r);
  CheckEndpointRules(spec, r);
  CheckHostsAgainstPorts(spec, r);
}

}  // namespace

ServiceEntry ReadServiceEntry(const yaml::Node& doc, ResourceMeta meta, LabelInterner& labels, ErrorSink& sink) {
  ServiceEntry entry;
  ReadEnvelope(doc, kIstioNetworkingVersions, {"apiVersion", "kind", "metadata", "spec", "status"},
               sink, meta);
  entry.meta = std::move(meta);
  if (const MapEntry spec = RequireSpec(doc, sink); spec.present()) {
    Reader r{sink, entry, labels, spec.key};
    ReadSpec(spec.value, r);
  }
  return entry;
}

WorkloadEntry ReadWorkloadEntry(const yaml::Node& doc, ResourceMeta meta, LabelInterner& labels, ErrorSink& sink) {
  WorkloadEntry entry;
  ReadEnvelope(doc, kIstioNetworkingVersions, {"apiVersion", "kind", "metadata", "spec", "status"},
               sink, meta);
  entry.meta = std::move(meta);
  if (const MapEntry spec = RequireSpec(doc, sink); spec.present()) {
    ReadWorkload(spec.value, "spec", AddressRule::kIpOrHost, "", nullptr, sink, labels, entry.endpoint);
  }
  return entry;
}

}  // namespace meshgate::config::internal
