// Service, EndpointSlice, Endpoints and Pod: the fields a gateway needs, checked
// the way the Kubernetes API server checks them.
#include "config/mesh/kubernetes.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/names.h"
#include "config/mesh/workload.h"

namespace meshgate::config::internal {

namespace {

constexpr std::string_view kExportToAnnotation = "networking.istio.io/exportTo";
constexpr std::string_view kServiceNameLabel = "kubernetes.io/service-name";

// IANA_SVC_NAME, what a named targetPort must be: at most 15 lowercase letters,
// digits and single '-', with at least one letter.
bool IsPortName(std::string_view name) {
  if (!IsDns1123Label(name) || name.size() > 15 || name.find("--") != std::string_view::npos) {
    return false;
  }
  for (char c : name) {
    if (absl::ascii_isalpha(static_cast<unsigned char>(c))) return true;
  }
  return false;
}

// TCP unless said otherwise; false (with a warning) for what meshgate can't relay.
bool IsTcp(const yaml::Node& port, const std::string& path, ErrorSink& sink) {
  const MapEntry protocol = Lookup(port, "protocol");
  if (!protocol.present() || protocol.value.IsNull()) return true;
  auto text = ReadString(protocol.value, FieldPath(path, "protocol"), sink);
  if (!text) return false;
  if (*text == "TCP") return true;
  if (*text == "UDP" || *text == "SCTP") {
    sink.Warn(protocol.value, FieldPath(path, "protocol"),
              absl::StrCat("protocol ", *text,
                           ": meshgate relays TCP only, and Istio's gateway never exports a UDP "
                           "port (pilot builtAutoPassthroughFilterChains); port ignored"));
  } else {
    sink.Add(protocol.value, FieldPath(path, "protocol"),
             absl::StrCat("unknown protocol \"", *text, "\" (one of: TCP, UDP, SCTP)"));
  }
  return false;
}

// --- Service -------------------------------------------------------------------------

void ReadTargetPort(const yaml::Node& node, const std::string& path, ErrorSink& sink,
                    ServicePort& port) {
  const bool number = node.IsScalar() && !node.IsQuoted() && !node.Scalar().empty() &&
                      absl::ascii_isdigit(static_cast<unsigned char>(node.Scalar()[0]));
  if (number) {
    if (auto v = ReadInt(node, path, 1, 65535, sink)) port.target_port = static_cast<uint16_t>(*v);
    return;
  }
  auto name = ReadString(node, path, sink);
  if (!name) return;
  if (!IsPortName(*name)) {
    sink.Add(node, path,
             absl::StrCat("\"", *name,
                          "\" is neither a port number nor a port name (at most 15 lowercase "
                          "letters, digits and '-', with a letter)"));
    return;
  }
  port.target_name = *name;
}

bool ReadServicePort(const yaml::Node& node, const std::string& path, bool several,
                     ErrorSink& sink, ServicePort& port) {
  if (!ExpectMap(node, path, sink)) return false;
  const size_t errors = sink.count();
  port.ref = {path, PositionOf(node)};
  CheckFields(node, path, {"name", "port", "targetPort", "protocol", "appProtocol", "nodePort"},
              sink);
  const bool tcp = IsTcp(node, path, sink);
  const MapEntry number = Lookup(node, "port");
  if (Require(number, node, FieldPath(path, "port"), sink)) {
    if (auto v = ReadInt(number.value, FieldPath(path, "port"), 1, 65535, sink)) {
      port.number = static_cast<uint16_t>(*v);
    }
  }
  const MapEntry name = Lookup(node, "name");
  if (name.present() && !name.value.IsNull()) {
    if (auto text = ReadString(name.value, FieldPath(path, "name"), sink)) {
      if (!text->empty() && !IsDns1123Label(*text)) {
        sink.Add(name.value, FieldPath(path, "name"),
                 absl::StrCat("\"", *text,
                              "\" is not a valid port name (lowercase letters, digits and '-', "
                              "at most 63 characters)"));
      }
      port.name = *text;
    }
  }
  if (several && port.name.empty()) {
    sink.Add(name.present() ? name.key : node, FieldPath(path, "name"),
             "required when the Service has more than one port");
  }
  IfPresent(node, "targetPort",
            [&](const yaml::Node& n) { ReadTargetPort(n, FieldPath(path, "targetPort"), sink, port); });
  IfPresent(node, "appProtocol",
            [&](const yaml::Node& n) { ReadString(n, FieldPath(path, "appProtocol"), sink); });
  IfPresent(node, "nodePort", [&](const yaml::Node& n) {
    ReadInt(n, FieldPath(path, "nodePort"), 1, 65535, sink);
  });
  return tcp && sink.count() == errors;
}

void ReadServicePorts(const yaml::Node& list, ErrorSink& sink, KubeService& service) {
  if (!ExpectList(list, "spec.ports", sink)) return;
  absl::flat_hash_set<std::string> names;
  absl::flat_hash_set<uint16_t> numbers;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string path = IndexPath("spec.ports", i);
    ServicePort port;
    if (!ReadServicePort(list[i], path, list.size() > 1, sink, port)) continue;
    if (!names.insert(port.name).second) {
      sink.Add(Lookup(list[i], "name").value, FieldPath(path, "name"),
               absl::StrCat("duplicate port name \"", port.name, "\""));
      continue;
    }
    if (!numbers.insert(port.number).second) {
      sink.Add(Lookup(list[i], "port").value, FieldPath(path, "port"),
               absl::StrCat("duplicate port ", port.number, "/TCP"));
      continue;
    }
    service.ports.push_back(std::move(port));
  }
}

// metadata.<key>, or metadata.<key>.<sub>: for positions of fields the envelope read.
yaml::Node MetadataNode(const yaml::Node& doc, std::string_view key, std::string_view sub = "") {
  yaml::Node node = Lookup(Lookup(doc, "metadata").value, key).value;
  return sub.empty() ? node : Lookup(node, sub).value;
}

// The annotation Istio reads for a Service's exportTo: a comma-separated list.
void ReadExportToAnnotation(const yaml::Node& doc, ErrorSink& sink, KubeService& service) {
  const auto it = service.meta.annotations.find(std::string(kExportToAnnotation));
  if (it == service.meta.annotations.end()) return;
  const std::string field = absl::StrCat("metadata.annotations.", AbslView(kExportToAnnotation));
  const yaml::Node at = MetadataNode(doc, "annotations", kExportToAnnotation);
  for (absl::string_view part : absl::StrSplit(it->second, ',')) {
    const std::string value(absl::StripAsciiWhitespace(part));
    if (value != "." && value != "*" && value != "~" && !IsDns1123Label(value)) {
      sink.Add(at, field,
               absl::StrCat("\"", value, "\" is not \".\", \"*\", \"~\" or a namespace name"));
      continue;
    }
    service.export_to.push_back(value);
  }
}

void ReadServiceSpec(const MapEntry& spec, ErrorSink& sink, KubeService& service) {
  CheckFields(spec.value, "spec",
              {"allocateLoadBalancerNodePorts", "clusterIP", "clusterIPs", "externalIPs",
               "externalName", "externalTrafficPolicy", "healthCheckNodePort",
               "internalTrafficPolicy", "ipFamilies", "ipFamilyPolicy", "loadBalancerClass",
               "loadBalancerIP", "loadBalancerSourceRanges", "ports", "publishNotReadyAddresses",
               "selector", "sessionAffinity", "sessionAffinityConfig", "trafficDistribution",
               "type"},
              sink);
  std::string type = "ClusterIP";
  IfPresent(spec.value, "type", [&](const yaml::Node& n) {
    auto text = ReadString(n, "spec.type", sink);
    if (!text) return;
    if (*text != "ClusterIP" && *text != "NodePort" && *text != "LoadBalancer" &&
        *text != "ExternalName") {
      sink.Add(n, "spec.type",
               absl::StrCat("unknown type \"", *text,
                            "\" (one of: ClusterIP, NodePort, LoadBalancer, ExternalName)"));
      return;
    }
    type = *text;
  });
  IfPresent(spec.value, "ports", [&](const yaml::Node& n) { ReadServicePorts(n, sink, service); });
  IfPresent(spec.value, "selector", [&](const yaml::Node& n) {
    service.selector = ReadLabels(n, "spec.selector", sink);
  });
  IfPresent(spec.value, "publishNotReadyAddresses", [&](const yaml::Node& n) {
    service.publish_not_ready = ReadBool(n, "spec.publishNotReadyAddresses", sink).value_or(false);
  });
  if (type != "ExternalName") return;
  const MapEntry external = Lookup(spec.value, "externalName");
  if (!Require(external, spec.key, "spec.externalName", sink)) return;
  auto text = ReadString(external.value, "spec.externalName", sink);
  if (!text) return;
  std::string host = AsciiLower(*text);
  if (host.ends_with('.')) host.pop_back();
  if (auto problem = FqdnProblem(host)) {
    sink.Add(external.value, "spec.externalName",
             absl::StrCat("\"", *text, "\" is not a valid host name: ", *problem));
    return;
  }
  service.external_name = std::move(host);
}

// --- EndpointSlice and Endpoints -----------------------------------------------------

std::optional<std::string> ReadIp(const yaml::Node& node, const std::string& path,
                                  ErrorSink& sink) {
  auto text = ReadString(node, path, sink);
  if (!text) return std::nullopt;
  auto ip = CanonicalIp(*text);
  if (!ip) sink.Add(node, path, absl::StrCat("\"", *text, "\" is not an IP address"));
  return ip;
}

// targetRef: only Pods in the resource's own namespace name a workload we know.
std::string ReadPodRef(const yaml::Node& node, const std::string& path, const ResourceMeta& meta,
                       ErrorSink& sink) {
  if (!ExpectMap(node, path, sink)) return "";
  const yaml::Node kind = Lookup(node, "kind").value;
  const yaml::Node name = Lookup(node, "name").value;
  const yaml::Node ns = Lookup(node, "namespace").value;
  if (!kind.IsScalar() || kind.Scalar() != "Pod" || !name.IsScalar()) return "";
  if (ns.IsScalar() && ns.Scalar() != meta.ns) return "";
  return name.Scalar();
}

void ReadGroupPorts(const yaml::Node& list, const std::string& path, bool number_required,
                    ErrorSink& sink, EndpointGroup& group) {
  ForEachMap(list, path, sink, [&](const yaml::Node& node, const std::string& item, size_t) {
    CheckFields(node, item, {"name", "port", "protocol", "appProtocol"}, sink);
    if (!IsTcp(node, item, sink)) return;
    EndpointGroup::Port port;
    IfPresent(node, "name", [&](const yaml::Node& n) {
      if (auto text = ReadString(n, FieldPath(item, "name"), sink)) port.name = *text;
    });
    const MapEntry number = Lookup(node, "port");
    if (number_required && !Require(number, node, FieldPath(item, "port"), sink)) return;
    if (number.present() && !number.value.IsNull()) {
      auto v = ReadInt(number.value, FieldPath(item, "port"), 1, 65535, sink);
      if (!v) return;
      port.number = static_cast<uint16_t>(*v);
    }
    group.ports.push_back(std::move(port));
  });
}

void ReadSliceEndpoint(const yaml::Node& node, const std::string& path, ErrorSink& sink,
                       EndpointGroup& group) {
  if (!ExpectMap(node, path, sink)) return;
  CheckFields(node, path,
              {"addresses", "conditions", "hostname", "nodeName", "zone", "hints", "targetRef",
               "deprecatedTopology"},
              sink);
  EndpointGroup::Address address;
  address.ref = {path, PositionOf(node)};
  const MapEntry addresses = Lookup(node, "addresses");
  const std::string addresses_path = FieldPath(path, "addresses");
  if (!Require(addresses, node, addresses_path, sink) ||
      !ExpectList(addresses.value, addresses_path, sink)) {
    return;
  }
  if (addresses.value.size() == 0) {
    sink.Add(addresses.key, addresses_path, "must list at least one address");
    return;
  }
  // Kubernetes: consumers use the first address; the others are for future use.
  auto ip = ReadIp(addresses.value[0], IndexPath(addresses_path, 0), sink);
  if (!ip) return;
  address.ip = *ip;
  IfPresent(node, "conditions", [&](const yaml::Node& conditions) {
    const std::string field = FieldPath(path, "conditions");
    if (!ExpectMap(conditions, field, sink)) return;
    CheckFields(conditions, field, {"ready", "serving", "terminating"}, sink);
    // Unset readiness is "unknown", which consumers treat as ready.
    IfPresent(conditions, "ready", [&](const yaml::Node& n) {
      address.ready = ReadBool(n, FieldPath(field, "ready"), sink).value_or(true);
    });
  });
  IfPresent(node, "targetRef", [&](const yaml::Node& n) {
    address.pod = ReadPodRef(n, FieldPath(path, "targetRef"), group.meta, sink);
  });
  group.addresses.push_back(std::move(address));
}

void ReadLegacyAddresses(const yaml::Node& list, const std::string& path, bool ready,
                         ErrorSink& sink, EndpointGroup& group) {
  ForEachMap(list, path, sink, [&](const yaml::Node& node, const std::string& item, size_t) {
    CheckFields(node, item, {"ip", "hostname", "nodeName", "targetRef"}, sink);
    EndpointGroup::Address address;
    address.ref = {item, PositionOf(node)};
    address.ready = ready;
    const MapEntry ip = Lookup(node, "ip");
    if (!Require(ip, node, FieldPath(item, "ip"), sink)) return;
    auto canonical = ReadIp(ip.value, FieldPath(item, "ip"), sink);
    if (!canonical) return;
    address.ip = *canonical;
    IfPresent(node, "targetRef", [&](const yaml::Node& n) {
      address.pod = ReadPodRef(n, FieldPath(item, "targetRef"), group.meta, sink);
    });
    group.addresses.push_back(std::move(address));
  });
}

// --- Pod -------------------------------------------------------------------------------

void ReadContainerPorts(const yaml::Node& containers, ErrorSink& sink, Pod& pod) {
  if (!ExpectList(containers, "spec.containers", sink)) return;
  for (size_t c = 0; c < containers.size(); ++c) {
    const std::string path = FieldPath(IndexPath("spec.containers", c), "ports");
    const yaml::Node ports = Lookup(containers[c], "ports").value;
    if (IsMissing(ports) || !ExpectList(ports, path, sink)) continue;
    for (size_t p = 0; p < ports.size(); ++p) {
      const std::string item = IndexPath(path, p);
      const yaml::Node name = Lookup(ports[p], "name").value;
      const MapEntry number = Lookup(ports[p], "containerPort");
      if (!name.IsScalar() || !number.present()) continue;
      if (auto v = ReadInt(number.value, FieldPath(item, "containerPort"), 1, 65535, sink)) {
        pod.container_ports[name.Scalar()] = static_cast<uint16_t>(*v);
      }
    }
  }
}

void ReadPodStatus(const yaml::Node& status, ErrorSink& sink, Pod& pod) {
  if (!ExpectMap(status, "status", sink)) return;
  IfPresent(status, "podIP", [&](const yaml::Node& n) {
    if (auto ip = ReadIp(n, "status.podIP", sink)) pod.ip = *ip;
  });
  std::string phase;
  IfPresent(status, "phase", [&](const yaml::Node& n) {
    if (auto text = ReadString(n, "status.phase", sink)) phase = *text;
  });
  std::optional<bool> ready_condition;
  IfPresent(status, "conditions", [&](const yaml::Node& list) {
    if (!ExpectList(list, "status.conditions", sink)) return;
    for (const yaml::Node& condition : list) {
      const yaml::Node type = Lookup(condition, "type").value;
      const yaml::Node value = Lookup(condition, "status").value;
      if (type.IsScalar() && type.Scalar() == "Ready" && value.IsScalar()) {
        ready_condition = value.Scalar() == "True";
      }
    }
  });
  pod.ready = !pod.ip.empty() && ready_condition.value_or(phase == "Running");
}

// metadata.generateName and the controller ownerReference: Istio derives the
// workload name from them (pkg/kube/util.go GetDeployMetaFromPod).
void ReadPodOwner(const yaml::Node& metadata, ErrorSink& sink, Pod& pod) {
  if (!metadata.IsMap()) return;
  IfPresent(metadata, "generateName", [&](const yaml::Node& n) {
    if (auto text = ReadString(n, "metadata.generateName", sink)) pod.generated_name = !text->empty();
  });
  IfPresent(metadata, "ownerReferences", [&](const yaml::Node& list) {
    ForEachMap(list, "metadata.ownerReferences", sink,
               [&](const yaml::Node& ref, const std::string& path, size_t) {
      const yaml::Node controller = Lookup(ref, "controller").value;
      if (IsMissing(controller) || !ReadBool(controller, FieldPath(path, "controller"), sink).value_or(false)) {
        return;
      }
      const yaml::Node kind = Lookup(ref, "kind").value;
      const yaml::Node name = Lookup(ref, "name").value;
      if (kind.IsScalar() && name.IsScalar() && pod.controller_kind.empty()) {
        pod.controller_kind = kind.Scalar();  // Istio takes the first controller
        pod.controller_name = name.Scalar();
      }
    });
  });
}

}  // namespace

KubeService ReadKubeService(const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink) {
  KubeService service;
  ReadEnvelope(doc, kCoreVersions, {"apiVersion", "kind", "metadata", "spec", "status"}, sink,
               meta);
  service.meta = std::move(meta);
  const std::string& name = service.meta.name;
  if (!name.empty() && (!IsDns1123Label(name) || !absl::ascii_isalpha(name.front()))) {
    sink.Add(MetadataNode(doc, "name"), "metadata.name",
             absl::StrCat("\"", name,
                          "\" is not a valid Service name (a DNS label starting with a letter)"));
  }
  ReadExportToAnnotation(doc, sink, service);
  if (const MapEntry spec = RequireSpec(doc, sink); spec.present()) {
    ReadServiceSpec(spec, sink, service);
  }
  return service;
}

EndpointGroup ReadEndpointSlice(const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink) {
  EndpointGroup group;
  ReadEnvelope(doc, kDiscoveryVersions,
               {"apiVersion", "kind", "metadata", "addressType", "endpoints", "ports"}, sink, meta);
  group.meta = std::move(meta);
  const MapEntry type = Lookup(doc, "addressType");
  if (Require(type, doc, "addressType", sink)) {
    auto text = ReadString(type.value, "addressType", sink);
    if (text && *text == "FQDN") {
      sink.Warn(type.value, "addressType", "FQDN endpoints are deprecated and not used; ignored");
      return group;
    }
    if (text && *text != "IPv4" && *text != "IPv6") {
      sink.Add(type.value, "addressType",
               absl::StrCat("unknown address type \"", *text, "\" (one of: IPv4, IPv6, FQDN)"));
    }
  }
  IfPresent(doc, "ports",
            [&](const yaml::Node& n) { ReadGroupPorts(n, "ports", false, sink, group); });
  IfPresent(doc, "endpoints", [&](const yaml::Node& list) {
    if (!ExpectList(list, "endpoints", sink)) return;
    for (size_t i = 0; i < list.size(); ++i) {
      ReadSliceEndpoint(list[i], IndexPath("endpoints", i), sink, group);
    }
  });
  const auto service = group.meta.labels.find(std::string(kServiceNameLabel));
  if (service == group.meta.labels.end()) {
    sink.Warn(MetadataNode(doc, "name"), "metadata.labels",
              absl::StrCat("no ", AbslView(kServiceNameLabel),
                           " label: the slice belongs to no Service; ignored"));
  } else {
    group.service = service->second;
  }
  return group;
}

std::vector<EndpointGroup> ReadLegacyEndpoints(const yaml::Node& doc, ResourceMeta meta,
                                               ErrorSink& sink) {
  std::vector<EndpointGroup> groups;
  ReadEnvelope(doc, kCoreVersions, {"apiVersion", "kind", "metadata", "subsets"}, sink, meta);
  const yaml::Node subsets = Lookup(doc, "subsets").value;
  if (IsMissing(subsets) || !ExpectList(subsets, "subsets", sink)) return groups;
  for (size_t i = 0; i < subsets.size(); ++i) {
    const yaml::Node node = subsets[i];
    const std::string path = IndexPath("subsets", i);
    if (!ExpectMap(node, path, sink)) continue;
    CheckFields(node, path, {"addresses", "notReadyAddresses", "ports"}, sink);
    EndpointGroup group;
    group.meta = meta;
    group.service = meta.name;
    group.legacy = true;
    IfPresent(node, "ports", [&](const yaml::Node& n) {
      ReadGroupPorts(n, FieldPath(path, "ports"), true, sink, group);
    });
    IfPresent(node, "addresses", [&](const yaml::Node& n) {
      ReadLegacyAddresses(n, FieldPath(path, "addresses"), true, sink, group);
    });
    IfPresent(node, "notReadyAddresses", [&](const yaml::Node& n) {
      ReadLegacyAddresses(n, FieldPath(path, "notReadyAddresses"), false, sink, group);
    });
    groups.push_back(std::move(group));
  }
  return groups;
}

Pod ReadPod(const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink) {
  Pod pod;
  ReadEnvelope(doc, kCoreVersions, {"apiVersion", "kind", "metadata", "spec", "status"}, sink,
               meta);
  pod.meta = std::move(meta);
  // A Pod spec has far more than a gateway reads: only those fields are checked.
  const yaml::Node spec = Lookup(doc, "spec").value;
  if (spec.IsMap()) {
    for (std::string_view key : {"serviceAccountName", "serviceAccount"}) {
      IfPresent(spec, key, [&](const yaml::Node& n) {
        if (auto text = ReadString(n, FieldPath("spec", key), sink); text && pod.service_account.empty()) {
          pod.service_account = *text;
        }
      });
    }
    IfPresent(spec, "containers",
              [&](const yaml::Node& n) { ReadContainerPorts(n, sink, pod); });
  }
  IfPresent(doc, "status", [&](const yaml::Node& n) { ReadPodStatus(n, sink, pod); });
  ReadPodOwner(Lookup(doc, "metadata").value, sink, pod);
  return pod;
}

}  // namespace meshgate::config::internal

namespace meshgate::config::internal {

KubeNamespace ReadNamespace(const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink) {
  KubeNamespace ns;
  ReadEnvelope(doc, kCoreVersions, {"apiVersion", "kind", "metadata", "spec", "status"}, sink,
               meta);
  ns.meta = std::move(meta);
  return ns;
}

}  // namespace meshgate::config::internal
