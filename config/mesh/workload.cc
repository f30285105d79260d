// Workload fields (ServiceEntry endpoints, WorkloadEntry), labels and exportTo.
#include "config/mesh/workload.h"

#include <algorithm>
#include <limits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/names.h"

namespace meshgate::config::internal {

namespace {

void ReadAddress(const MapEntry& address, const yaml::Node& node, const std::string& path,
                 AddressRule rule, std::string_view what, ErrorSink& sink,
                 WorkloadEndpoint& out) {
  const std::string field = FieldPath(path, "address");
  if (!Require(address, node, field, sink)) return;
  auto text = ReadString(address.value, field, sink);
  if (!text) return;
  if (rule == AddressRule::kUnchecked) {
    out.fields.address = *text;
    return;
  }
  if (text->starts_with("unix://")) {
    sink.Add(address.value, field,
             absl::StrCat("\"", *text,
                          "\": unix domain socket endpoints are not supported (meshgate dials "
                          "TCP to IP endpoints)"));
    return;
  }
  if (auto ip = CanonicalIp(*text)) {
    out.fields.address = *ip;
    return;
  }
  if (rule == AddressRule::kIp) {
    sink.Add(address.value, field,
             absl::StrCat("\"", *text, "\" is not an IP address (", AbslView(what), ")"));
    return;
  }
  std::string host = AsciiLower(*text);
  if (host.ends_with('.')) host.pop_back();
  if (auto problem = FqdnProblem(host)) {
    sink.Add(address.value, field,
             absl::StrCat("\"", *text, "\" is neither an IP address nor a valid host name: ",
                          *problem));
    return;
  }
  out.fields.set_hostname(host);
}

void ReadPortsMap(const yaml::Node& map, const std::string& path,
                  const std::vector<ServicePort>* ports, ErrorSink& sink, WorkloadEndpoint& out) {
  if (!ExpectMap(map, path, sink) || !CheckKeys(map, path, sink)) return;
  for (const auto& pair : map) {
    const std::string& name = pair.first.Scalar();
    const std::string field = FieldPath(path, name);
    auto number = ReadInt(pair.second, field, 1, 65535, sink);
    if (!number) continue;
    if (ports != nullptr) {
      std::vector<std::string> names;
      for (const ServicePort& port : *ports) names.push_back(port.name);
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        sink.Add(pair.first, field,
                 absl::StrCat("no port named \"", name,
                              "\" in spec.ports (have: ", absl::StrJoin(names, ", "), ")"));
        continue;
      }
    }
    out.ports[name] = static_cast<uint16_t>(*number);
  }
}

void ReadWeight(const yaml::Node& node, const std::string& field, ErrorSink& sink,
                WorkloadEndpoint& out) {
  auto value = ReadInt(node, field, 0, std::numeric_limits<uint32_t>::max(), sink);
  if (!value) return;
  out.fields.weight = static_cast<uint32_t>(*value);
  if (out.fields.weight == 0) {
    // Istio (proto3) can't tell 0 from unset and uses 1; so do we, but say so.
    out.fields.weight = 1;
    sink.Warn(node, field,
              "weight 0 means the default weight 1 (as in Istio); remove the endpoint to stop "
              "sending it traffic");
  }
}

}  // namespace

void ReadWorkload(const yaml::Node& node, const std::string& path, AddressRule rule,
                  std::string_view what, const std::vector<ServicePort>* ports, ErrorSink& sink,
                  LabelInterner& interner, WorkloadEndpoint& out) {
  out.at = PositionOf(node);
  CheckFields(node, path,
              {"address", "ports", "labels", "network", "locality", "weight", "serviceAccount"},
              sink);
  ReadAddress(Lookup(node, "address"), node, path, rule, what, sink, out);
  IfPresent(node, "ports", [&](const yaml::Node& map) {
    ReadPortsMap(map, FieldPath(path, "ports"), ports, sink, out);
  });
  IfPresent(node, "labels", [&](const yaml::Node& map) {
    if (auto labels = ReadLabels(map, FieldPath(path, "labels"), sink)) {
      out.fields.labels = interner.Intern(*labels);
    }
  });
  IfPresent(node, "weight",
            [&](const yaml::Node& n) { ReadWeight(n, FieldPath(path, "weight"), sink, out); });
  IfPresent(node, "network", [&](const yaml::Node& n) {
    if (auto text = ReadString(n, FieldPath(path, "network"), sink)) out.fields.set_network(*text);
  });
  IfPresent(node, "locality", [&](const yaml::Node& n) {
    if (auto text = ReadString(n, FieldPath(path, "locality"), sink)) out.fields.set_locality(*text);
  });
  IfPresent(node, "serviceAccount", [&](const yaml::Node& n) {
    if (auto text = ReadString(n, FieldPath(path, "serviceAccount"), sink)) {
      out.fields.set_service_account(*text);
    }
  });
}

std::optional<Labels> ReadLabels(const yaml::Node& node, const std::string& path,
                                 ErrorSink& sink) {
  auto labels = ReadStringMap(node, path, sink);
  if (!labels) return std::nullopt;
  bool ok = true;
  for (const auto& pair : node) {
    const std::string& key = pair.first.Scalar();
    const std::string field = FieldPath(path, key);
    if (auto problem = LabelKeyProblem(key)) {
      sink.Add(pair.first, field, *problem);
      ok = false;
    } else if (auto problem = LabelValueProblem(labels->at(key))) {
      sink.Add(pair.second, field, *problem);
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return labels;
}

std::vector<std::string> ReadExportTo(const yaml::Node& node, const std::string& path,
                                      ErrorSink& sink) {
  std::vector<std::string> out;
  if (!CheckStringList(node, path, sink)) return out;
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string value = node[i].Scalar();
    const std::string field = IndexPath(path, i);
    if (value != "." && value != "*" && value != "~" && !IsDns1123Label(value)) {
      sink.Add(node[i], field,
               absl::StrCat("\"", value,
                            "\" is not \".\", \"*\", \"~\" or a namespace name"));
      continue;
    }
    if (!seen.insert(value).second) {
      sink.Add(node[i], field, absl::StrCat("duplicate entry \"", value, "\""));
      continue;
    }
    out.push_back(value);
  }
  if (out.size() > 1 && (seen.contains("*") || seen.contains("~"))) {
    sink.Add(node, path, "\"*\" and \"~\" can't be combined with other entries");
  }
  return out;
}

uint16_t EndpointPort(const WorkloadEndpoint& endpoint, const ServicePort& port) {
  if (auto it = endpoint.ports.find(port.name); it != endpoint.ports.end()) return it->second;
  return port.target_port.value_or(port.number);
}

}  // namespace meshgate::config::internal
