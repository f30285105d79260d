// DestinationRule: host (short names resolved like Istio), subsets, policies.
#include "config/mesh/destination_rule.h"

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "base/names.h"
#include "config/mesh/traffic_policy_reader.h"
#include "config/mesh/workload.h"

namespace meshgate::config::internal {

namespace {

void ReadHost(const yaml::Node& spec, const yaml::Node& spec_key, std::string_view cluster_domain,
              ErrorSink& sink, DestinationRule& rule) {
  const MapEntry host = Lookup(spec, "host");
  if (!Require(host, spec_key, "spec.host", sink)) return;
  auto text = ReadString(host.value, "spec.host", sink);
  if (!text) return;
  rule.host_ref = {"spec.host", PositionOf(host.value)};
  std::string name = AsciiLower(*text);
  if (name.ends_with('.')) name.pop_back();
  if (auto problem = WildcardHostProblem(name)) {
    sink.Add(host.value, "spec.host",
             absl::StrCat("\"", *text, "\" is not a valid host: ", *problem));
    return;
  }
  rule.host = ResolveShortName(name, rule.meta.ns, cluster_domain);
}

void ReadSubset(const yaml::Node& node, const std::string& path, ErrorSink& sink,
                DestinationRule::Subset& subset) {
  subset.ref = {path, PositionOf(node)};
  CheckFields(node, path, {"name", "labels", "trafficPolicy"}, sink);
  const MapEntry name = Lookup(node, "name");
  const std::string name_path = FieldPath(path, "name");
  if (Require(name, node, name_path, sink)) {
    if (auto text = ReadString(name.value, name_path, sink)) {
      if (IsDns1123Label(*text)) {
        subset.name = *text;
      } else {
        sink.Add(name.value, name_path,
                 absl::StrCat("\"", *text,
                              "\" is not a valid subset name (lowercase letters, digits and '-', "
                              "at most 63 characters)"));
      }
    }
  }
  IfPresent(node, "labels", [&](const yaml::Node& n) {
    if (auto labels = ReadLabels(n, FieldPath(path, "labels"), sink)) subset.labels = *labels;
  });
  IfPresent(node, "trafficPolicy", [&](const yaml::Node& n) {
    subset.policy = ReadTrafficPolicy(n, FieldPath(path, "trafficPolicy"), sink);
  });
}

void ReadSubsets(const yaml::Node& list, ErrorSink& sink, DestinationRule& rule) {
  absl::flat_hash_map<std::string, size_t> names;
  ForEachMap(list, "spec.subsets", sink, [&](const yaml::Node& node, const std::string& path, size_t i) {
    DestinationRule::Subset subset;
    ReadSubset(node, path, sink, subset);
    if (subset.name.empty()) return;
    if (auto [it, added] = names.emplace(subset.name, i); !added) {
      sink.Add(Lookup(node, "name").value, FieldPath(path, "name"),
               absl::StrCat("subset name \"", subset.name, "\" is already used by spec.subsets[",
                            it->second, "]"));
      return;
    }
    rule.subsets.push_back(std::move(subset));
  });
}

}  // namespace

DestinationRule ReadDestinationRule(const yaml::Node& doc, ResourceMeta meta,
                                    std::string_view cluster_domain, ErrorSink& sink) {
  DestinationRule rule;
  ReadEnvelope(doc, kIstioNetworkingVersions, {"apiVersion", "kind", "metadata", "spec", "status"},
               sink, meta);
  rule.meta = std::move(meta);
  const MapEntry spec = RequireSpec(doc, sink);
  if (!spec.present()) return rule;
  CheckFields(spec.value, "spec",
              {"host", "trafficPolicy", "subsets", "exportTo", "workloadSelector"}, sink);
  ReadHost(spec.value, spec.key, cluster_domain, sink, rule);
  IfPresent(spec.value, "trafficPolicy", [&](const yaml::Node& n) {
    rule.policy_ref = {"spec.trafficPolicy", PositionOf(Lookup(spec.value, "trafficPolicy").key)};
    rule.policy = ReadTrafficPolicy(n, "spec.trafficPolicy", sink);
  });
  IfPresent(spec.value, "subsets", [&](const yaml::Node& n) { ReadSubsets(n, sink, rule); });
  IfPresent(spec.value, "exportTo", [&](const yaml::Node& n) {
    rule.export_to_ref = {"spec.exportTo", PositionOf(Lookup(spec.value, "exportTo").key)};
    rule.export_to = ReadExportTo(n, "spec.exportTo", sink);
  });
  IfPresent(spec.value, "workloadSelector", [&](const yaml::Node& n) {
    if (ExpectMap(n, "spec.workloadSelector", sink)) {
      CheckFields(n, "spec.workloadSelector", {"matchLabels"}, sink);
    }
    rule.workload_selector = true;
    sink.Warn(Lookup(spec.value, "workloadSelector").key, "spec.workloadSelector",
              "a rule with a workloadSelector applies only to the workloads it selects; meshgate "
              "is not one of them, so the rule is ignored");
  });
  return rule;
}

}  // namespace meshgate::config::internal
