// ServiceEntry validation. Field names and rules follow Istio's API; what a
// passthrough gateway can't serve yet is rejected with a reason, not ignored.
#include "config/service_entry.h"

#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config/names.h"

namespace meshgate::config::internal {

namespace {

constexpr absl::string_view kApiVersions[] = {
    "networking.istio.io/v1alpha3", "networking.istio.io/v1beta1", "networking.istio.io/v1"};

// Istio's protocol.Parse accepts these, case-insensitively.
constexpr absl::string_view kProtocols[] = {"HTTP",  "HTTPS",      "GRPC",  "GRPC-WEB",
                                            "HTTP2", "HTTP_PROXY", "MONGO", "MYSQL",
                                            "REDIS", "TCP",        "TLS",   "UDP"};

enum class Resolution { kNone, kStatic, kDns, kDnsRoundRobin, kInvalid };

// Everything read from one ServiceEntry, threaded through the spec readers.
struct Reader {
  ErrorSink& sink;
  std::vector<std::string>& warnings;
  ServiceEntry& entry;
  YAML::Node spec_key;  // where a missing spec field is reported: the "spec:" line
};

void ReadMetadata(const YAML::Node& doc, Reader& r) {
  const MapEntry metadata = Lookup(doc, "metadata");
  if (!Require(metadata, doc, "metadata", r.sink) ||
      !ExpectMap(metadata.value, "metadata", r.sink)) {
    return;
  }
  const MapEntry name = Lookup(metadata.value, "name");
  if (Require(name, metadata.key, "metadata.name", r.sink)) {
    if (auto text = ReadString(name.value, "metadata.name", r.sink)) {
      if (text->empty()) r.sink.Add(name.key, "metadata.name", "required (is empty)");
    }
  }
  const MapEntry ns = Lookup(metadata.value, "namespace");
  if (ns.present() && !ns.value.IsNull()) ReadString(ns.value, "metadata.namespace", r.sink);
}

void ReadHosts(const YAML::Node& spec, Reader& r) {
  const MapEntry hosts = Lookup(spec, "hosts");
  if (!Require(hosts, r.spec_key, "spec.hosts", r.sink) ||
      !ExpectList(hosts.value, "spec.hosts", r.sink)) {
    return;
  }
  if (hosts.value.size() == 0) r.sink.Add(hosts.key, "spec.hosts", "must list at least one host");
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < hosts.value.size(); ++i) {
    const YAML::Node node = hosts.value[i];
    const std::string field = IndexPath("spec.hosts", i);
    auto text = ReadString(node, field, r.sink);
    if (!text) continue;
    std::string host = AsciiLower(*text);
    if (host.ends_with('.')) host.pop_back();  // "a.b." is the same FQDN as "a.b"
    if (host.find('*') != std::string::npos) {
      r.sink.Add(node, field,
                 absl::StrCat("wildcard host \"", *text,
                              "\" is not supported by the passthrough route table yet"));
      continue;
    }
    if (auto problem = FqdnProblem(host)) {
      r.sink.Add(node, field, absl::StrCat("\"", *text, "\" is not a valid host name: ", *problem));
      continue;
    }
    if (!seen.insert(host).second) {
      r.sink.Add(node, field, absl::StrCat("duplicate host \"", host, "\""));
      continue;
    }
    r.entry.hosts.push_back({std::move(host), LineOf(node), field});
  }
}

bool ReadPort(const YAML::Node& node, const std::string& path, Reader& r, ServicePort& port) {
  if (!ExpectMap(node, path, r.sink)) return false;
  const size_t errors = r.sink.count();
  CheckFields(node, path, {"number", "protocol", "name", "targetPort"}, r.sink);

  const MapEntry number = Lookup(node, "number");
  const std::string number_path = FieldPath(path, "number");
  if (Require(number, node, number_path, r.sink)) {
    if (auto value = ReadInt(number.value, number_path, 1, 65535, r.sink)) {
      port.number = static_cast<uint16_t>(*value);
    }
  }
  const MapEntry name = Lookup(node, "name");
  const std::string name_path = FieldPath(path, "name");
  if (Require(name, node, name_path, r.sink)) {
    if (auto value = ReadString(name.value, name_path, r.sink)) {
      if (IsDns1123Label(*value)) {
        port.name = *value;
      } else {
        r.sink.Add(name.value, name_path,
                   absl::StrCat("\"", *value,
                                "\" is not a valid port name (lowercase letters, digits and '-', "
                                "at most 63 characters)"));
      }
    }
  }
  const MapEntry protocol = Lookup(node, "protocol");
  const std::string protocol_path = FieldPath(path, "protocol");
  if (Require(protocol, node, protocol_path, r.sink)) {
    if (auto value = ReadString(protocol.value, protocol_path, r.sink)) {
      bool known = false;
      for (absl::string_view p : kProtocols) known = known || EqualsIgnoreCase(StdView(p), *value);
      if (!known) {
        r.sink.Add(protocol.value, protocol_path,
                   absl::StrCat("unknown protocol \"", *value,
                                "\" (one of: ", absl::StrJoin(kProtocols, ", "), ")"));
      }
    }
  }
  const MapEntry target = Lookup(node, "targetPort");
  if (target.present() && !target.value.IsNull()) {
    const std::string target_path = FieldPath(path, "targetPort");
    if (auto value = ReadInt(target.value, target_path, 1, 65535, r.sink)) {
      port.target_port = static_cast<uint16_t>(*value);
    }
  }
  return r.sink.count() == errors;
}

// Returns false when some port is broken, so endpoint port names aren't checked
// against a partial list.
bool ReadPorts(const YAML::Node& spec, Reader& r) {
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
    const YAML::Node node = ports.value[i];
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

Resolution ReadResolution(const YAML::Node& spec, Reader& r) {
  const MapEntry resolution = Lookup(spec, "resolution");
  if (!resolution.present() || resolution.value.IsNull()) {
    r.sink.Add(resolution.present() ? resolution.key : r.spec_key, "spec.resolution",
               "resolution NONE (the default when unset) can't be served by a passthrough "
               "gateway: it has no endpoints to dial; use STATIC with IP endpoints");
    return Resolution::kNone;
  }
  auto value = ReadString(resolution.value, "spec.resolution", r.sink);
  if (!value) return Resolution::kInvalid;
  const YAML::Node& at = resolution.value;
  if (*value == "STATIC") return Resolution::kStatic;
  if (*value == "NONE") {
    r.sink.Add(at, "spec.resolution",
               "resolution NONE can't be served by a passthrough gateway: it has no endpoints to "
               "dial; use STATIC with IP endpoints");
    return Resolution::kNone;
  }
  if (*value == "DNS" || *value == "DNS_ROUND_ROBIN") {
    r.sink.Add(at, "spec.resolution",
               absl::StrCat("resolution ", *value, " is not supported yet: use STATIC"));
    return *value == "DNS" ? Resolution::kDns : Resolution::kDnsRoundRobin;
  }
  r.sink.Add(at, "spec.resolution",
             absl::StrCat("unknown resolution \"", *value,
                          "\" (one of: NONE, STATIC, DNS, DNS_ROUND_ROBIN)"));
  return Resolution::kInvalid;
}

void ReadAddress(const MapEntry& address, const YAML::Node& node, const std::string& path,
                 Resolution resolution, Reader& r, WorkloadEndpoint& endpoint) {
  const std::string field = FieldPath(path, "address");
  if (!Require(address, node, field, r.sink)) return;
  auto text = ReadString(address.value, field, r.sink);
  if (!text) return;
  // Only STATIC endpoints must be IPs; other resolutions are already an error,
  // and their host-name endpoints would only add noise.
  if (resolution != Resolution::kStatic) {
    endpoint.address = *text;
    return;
  }
  if (text->starts_with("unix://")) {
    r.sink.Add(address.value, field,
               absl::StrCat("\"", *text,
                            "\": unix domain socket endpoints are not supported (meshgate dials "
                            "TCP to IP endpoints)"));
    return;
  }
  if (auto ip = CanonicalIp(*text)) {
    endpoint.address = *ip;
    return;
  }
  r.sink.Add(
      address.value, field,
      absl::StrCat("\"", *text, "\" is not an IP address (resolution STATIC needs IP endpoints)"));
}

void ReadEndpointPorts(const YAML::Node& ports, const std::string& path, bool check_names,
                       Reader& r, WorkloadEndpoint& endpoint) {
  if (!ExpectMap(ports, path, r.sink) || !CheckKeys(ports, path, r.sink)) return;
  for (const auto& pair : ports) {
    const std::string& name = pair.first.Scalar();
    const std::string field = FieldPath(path, name);
    auto number = ReadInt(pair.second, field, 1, 65535, r.sink);
    if (!number) continue;
    if (check_names) {
      bool declared = false;
      std::vector<std::string> names;
      for (const ServicePort& port : r.entry.ports) {
        declared = declared || port.name == name;
        names.push_back(port.name);
      }
      if (!declared) {
        r.sink.Add(pair.first, field,
                   absl::StrCat("no port named \"", name,
                                "\" in spec.ports (have: ", absl::StrJoin(names, ", "), ")"));
        continue;
      }
    }
    endpoint.ports[name] = static_cast<uint16_t>(*number);
  }
}

void ReadLabels(const YAML::Node& labels, const std::string& path, Reader& r,
                WorkloadEndpoint& endpoint) {
  if (!ExpectMap(labels, path, r.sink) || !CheckKeys(labels, path, r.sink)) return;
  for (const auto& pair : labels) {
    const std::string& key = pair.first.Scalar();
    if (auto value = ReadString(pair.second, FieldPath(path, key), r.sink)) {
      endpoint.labels[key] = *value;
    }
  }
}

void ReadEndpoint(const YAML::Node& node, const std::string& path, Resolution resolution,
                  bool check_port_names, Reader& r) {
  if (!ExpectMap(node, path, r.sink)) return;
  CheckFields(node, path,
              {"address", "ports", "labels", "network", "locality", "weight", "serviceAccount"},
              r.sink);
  WorkloadEndpoint endpoint;
  ReadAddress(Lookup(node, "address"), node, path, resolution, r, endpoint);
  if (const MapEntry ports = Lookup(node, "ports"); ports.present() && !ports.value.IsNull()) {
    ReadEndpointPorts(ports.value, FieldPath(path, "ports"), check_port_names, r, endpoint);
  }
  if (const MapEntry labels = Lookup(node, "labels"); labels.present() && !labels.value.IsNull()) {
    ReadLabels(labels.value, FieldPath(path, "labels"), r, endpoint);
  }
  if (const MapEntry weight = Lookup(node, "weight"); weight.present() && !weight.value.IsNull()) {
    const std::string field = FieldPath(path, "weight");
    if (auto value =
            ReadInt(weight.value, field, 0, std::numeric_limits<uint32_t>::max(), r.sink)) {
      endpoint.weight = static_cast<uint32_t>(*value);
      if (endpoint.weight == 0) {
        // Istio (proto3) can't tell 0 from unset and uses 1; so do we, but say so.
        endpoint.weight = 1;
        r.warnings.push_back(r.sink.Format(
            LineOf(weight.value), field,
            "weight 0 means the default weight 1 (as in Istio); remove the endpoint to stop "
            "sending it traffic"));
      }
    }
  }
  for (std::string_view key : {"network", "locality", "serviceAccount"}) {
    const MapEntry entry = Lookup(node, key);
    if (entry.present() && !entry.value.IsNull()) {
      ReadString(entry.value, FieldPath(path, key), r.sink);
    }
  }
  r.entry.endpoints.push_back(std::move(endpoint));
}

void ReadEndpoints(const YAML::Node& spec, Resolution resolution, bool check_port_names,
                   Reader& r) {
  const MapEntry endpoints = Lookup(spec, "endpoints");
  const bool absent = !endpoints.present() || endpoints.value.IsNull();
  if (absent || (endpoints.value.IsSequence() && endpoints.value.size() == 0)) {
    if (resolution == Resolution::kStatic) {
      r.sink.Add(absent ? r.spec_key : endpoints.key, "spec.endpoints",
                 "required for resolution STATIC (at least one IP endpoint)");
    }
    return;
  }
  if (!ExpectList(endpoints.value, "spec.endpoints", r.sink)) return;
  for (size_t i = 0; i < endpoints.value.size(); ++i) {
    ReadEndpoint(endpoints.value[i], IndexPath("spec.endpoints", i), resolution, check_port_names,
                 r);
  }
  uint64_t total = 0;
  for (const WorkloadEndpoint& endpoint : r.entry.endpoints) total += endpoint.weight;
  if (total > std::numeric_limits<uint32_t>::max()) {
    r.sink.Add(
        endpoints.key, "spec.endpoints",
        absl::StrCat("total weight ", total, " exceeds ", std::numeric_limits<uint32_t>::max()));
  }
}

// Accepted for compatibility, not used: only their types are checked.
void CheckIgnoredFields(const YAML::Node& spec, Reader& r) {
  for (std::string_view key : {"addresses", "exportTo", "subjectAltNames"}) {
    const MapEntry entry = Lookup(spec, key);
    if (entry.present() && !entry.value.IsNull()) {
      CheckStringList(entry.value, FieldPath("spec", key), r.sink);
    }
  }
  const MapEntry location = Lookup(spec, "location");
  if (location.present() && !location.value.IsNull()) {
    ReadString(location.value, "spec.location", r.sink);
  }
}

void ReadSpec(const YAML::Node& spec, Reader& r) {
  CheckFields(spec, "spec",
              {"hosts", "addresses", "ports", "location", "resolution", "endpoints",
               "workloadSelector", "exportTo", "subjectAltNames"},
              r.sink);
  ReadHosts(spec, r);
  const bool ports_ok = ReadPorts(spec, r);
  const Resolution resolution = ReadResolution(spec, r);
  CheckIgnoredFields(spec, r);
  if (const MapEntry selector = Lookup(spec, "workloadSelector"); selector.present()) {
    r.sink.Add(selector.key, "spec.workloadSelector",
               "not supported yet: list the endpoints in spec.endpoints (resolution STATIC)");
    return;  // "endpoints required" would only repeat the same advice
  }
  ReadEndpoints(spec, resolution, ports_ok, r);
}

}  // namespace

uint16_t EndpointPort(const WorkloadEndpoint& endpoint, const ServicePort& port) {
  if (auto it = endpoint.ports.find(port.name); it != endpoint.ports.end()) return it->second;
  return port.target_port.value_or(port.number);
}

ServiceEntry ReadServiceEntry(const YAML::Node& doc, ErrorSink& sink,
                              std::vector<std::string>& warnings) {
  ServiceEntry entry;
  Reader r{sink, warnings, entry, YAML::Node()};
  CheckFields(doc, "", {"apiVersion", "kind", "metadata", "spec", "status"}, sink);

  const MapEntry api = Lookup(doc, "apiVersion");
  if (Require(api, doc, "apiVersion", sink)) {
    if (auto version = ReadString(api.value, "apiVersion", sink)) {
      bool known = false;
      for (absl::string_view v : kApiVersions) known = known || v == *version;
      if (!known) {
        sink.Add(
            api.value, "apiVersion",
            absl::StrCat("unsupported apiVersion \"", *version,
                         "\" for ServiceEntry (one of: ", absl::StrJoin(kApiVersions, ", "), ")"));
      }
    }
  }
  ReadMetadata(doc, r);
  const MapEntry spec = Lookup(doc, "spec");
  if (Require(spec, doc, "spec", sink) && ExpectMap(spec.value, "spec", sink)) {
    r.spec_key = spec.key;
    ReadSpec(spec.value, r);
  }
  return entry;
}

}  // namespace meshgate::config::internal
