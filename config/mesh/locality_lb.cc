// loadBalancer.localityLbSetting, with the locality syntax rules of Istio's
// validation webhook.
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/names.h"
#include "config/mesh/traffic_policy_reader.h"

namespace meshgate::config::internal {

namespace {

// "region", "region/zone" or "region/zone/subzone"; '*' only as the last segment.
std::optional<std::string> LocalityProblem(std::string_view locality) {
  const std::vector<absl::string_view> segments = absl::StrSplit(AbslView(locality), '/');
  if (segments.size() > 3) return "has more than 3 segments (region/zone/subzone)";
  for (size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].empty()) return "has an empty segment";
    if (segments[i].find('*') == absl::string_view::npos) continue;
    if (segments[i] != "*" || i + 1 != segments.size()) {
      return "may use '*' only as the whole last segment";
    }
  }
  return std::nullopt;
}

bool CheckLocality(const yaml::Node& at, const std::string& path, std::string_view locality,
                   ErrorSink& sink) {
  auto problem = LocalityProblem(locality);
  if (!problem) return true;
  sink.Add(at, path, absl::StrCat("locality \"", AbslView(locality), "\" ", *problem));
  return false;
}

LocalityLbSetting::Distribute ReadDistribute(const yaml::Node& node, const std::string& path,
                                             ErrorSink& sink) {
  LocalityLbSetting::Distribute out;
  if (!ExpectMap(node, path, sink)) return out;
  CheckFields(node, path, {"from", "to"}, sink);
  const MapEntry from = Lookup(node, "from");
  if (Require(from, node, FieldPath(path, "from"), sink)) {
    if (auto text = ReadString(from.value, FieldPath(path, "from"), sink)) {
      if (CheckLocality(from.value, FieldPath(path, "from"), *text, sink)) out.from = *text;
    }
  }
  const MapEntry to = Lookup(node, "to");
  const std::string to_path = FieldPath(path, "to");
  if (!Require(to, node, to_path, sink) || !ExpectMap(to.value, to_path, sink) ||
      !CheckKeys(to.value, to_path, sink)) {
    return out;
  }
  uint64_t total = 0;
  bool ok = true;
  for (const auto& pair : to.value) {
    const std::string& locality = pair.first.Scalar();
    const std::string field = FieldPath(to_path, locality);
    ok = CheckLocality(pair.first, field, locality, sink) && ok;
    auto weight = ReadInt(pair.second, field, 1, 100, sink);
    if (!weight) {
      ok = false;
      continue;
    }
    total += static_cast<uint64_t>(*weight);
    out.to[locality] = static_cast<uint32_t>(*weight);
  }
  if (ok && total != 100) {
    sink.Add(to.key, to_path, absl::StrCat("weights must total 100, got ", total));
  }
  return out;
}

LocalityLbSetting::Failover ReadFailover(const yaml::Node& node, const std::string& path,
                                         ErrorSink& sink) {
  LocalityLbSetting::Failover out;
  if (!ExpectMap(node, path, sink)) return out;
  CheckFields(node, path, {"from", "to"}, sink);
  for (std::string_view key : {"from", "to"}) {
    const MapEntry entry = Lookup(node, key);
    const std::string field = FieldPath(path, key);
    if (!Require(entry, node, field, sink)) continue;
    auto text = ReadString(entry.value, field, sink);
    if (!text) continue;
    if (text->find('/') != std::string::npos || text->find('*') != std::string::npos) {
      sink.Add(entry.value, field,
               absl::StrCat("\"", *text, "\": failover names regions only (no '/' or '*')"));
      continue;
    }
    (key == "from" ? out.from : out.to) = *text;
  }
  if (!out.from.empty() && out.from == out.to) {
    sink.Add(node, path, absl::StrCat("from and to must be different regions, both are \"",
                                      out.from, "\""));
  }
  return out;
}

}  // namespace

LocalityLbSetting ReadLocalityLbSetting(const yaml::Node& node, const std::string& path,
                                        ErrorSink& sink) {
  LocalityLbSetting out;
  if (!ExpectMap(node, path, sink)) return out;
  CheckFields(node, path, {"distribute", "failover", "failoverPriority", "enabled"}, sink);
  const bool both = Lookup(node, "distribute").present() && Lookup(node, "failover").present();
  if (both) sink.Add(node, path, "only one of distribute, failover may be set");
  IfPresent(node, "distribute", [&](const yaml::Node& list) {
    const std::string field = FieldPath(path, "distribute");
    if (!ExpectList(list, field, sink)) return;
    for (size_t i = 0; i < list.size(); ++i) {
      out.distribute.push_back(ReadDistribute(list[i], IndexPath(field, i), sink));
    }
  });
  IfPresent(node, "failover", [&](const yaml::Node& list) {
    const std::string field = FieldPath(path, "failover");
    if (!ExpectList(list, field, sink)) return;
    for (size_t i = 0; i < list.size(); ++i) {
      out.failover.push_back(ReadFailover(list[i], IndexPath(field, i), sink));
    }
  });
  IfPresent(node, "failoverPriority", [&](const yaml::Node& list) {
    const std::string field = FieldPath(path, "failoverPriority");
    if (!CheckStringList(list, field, sink)) return;
    for (size_t i = 0; i < list.size(); ++i) out.failover_priority.push_back(list[i].Scalar());
  });
  IfPresent(node, "enabled", [&](const yaml::Node& n) {
    out.enabled = ReadBool(n, FieldPath(path, "enabled"), sink);
  });
  return out;
}

}  // namespace meshgate::config::internal
