// Reads and validates a DestinationRule trafficPolicy (top level or a subset's)
// with Istio's rules, and merges the levels the way Istio does.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "config/mesh/mesh_model.h"
#include "base/yaml/yaml_fields.h"
#include "base/yaml/yaml_tree.h"

namespace meshgate::config::internal {

// `node` is the trafficPolicy map. Problems are added to `sink`; the result is
// usable only when none was.
WrittenTrafficPolicy ReadTrafficPolicy(const yaml::Node& node, const std::string& path,
                                       ErrorSink& sink);

// Istio's MergeTrafficPolicy for one port: the top level, replaced part by part
// by its portLevelSettings entry for `port`, then by the subset's parts, then by
// the subset's entry for `port`. A port-level entry replaces all parts, unset
// ones becoming defaults, as Istio documents.
TrafficPolicy EffectivePolicy(const WrittenTrafficPolicy* top, const WrittenTrafficPolicy* subset,
                              uint16_t port);

// loadBalancer.localityLbSetting (locality_lb.cc).
LocalityLbSetting ReadLocalityLbSetting(const yaml::Node& node, const std::string& path,
                                        ErrorSink& sink);

// A Go/Istio duration of at least 1ms, as Istio's ValidateDuration wants.
std::optional<std::chrono::milliseconds> ReadDuration(const yaml::Node& node,
                                                      std::string_view path, ErrorSink& sink);

}  // namespace meshgate::config::internal
