// Validates Istio DestinationRule documents: host, subsets and traffic policies.
#pragma once

#include <string_view>

#include "config/mesh/mesh_model.h"
#include "base/yaml/yaml_fields.h"
#include "base/yaml/yaml_tree.h"

namespace meshgate::config::internal {

// Reads a document whose kind is DestinationRule; `meta` already names it. A
// short host is resolved in the rule's namespace under `cluster_domain`. The rule
// is valid only if no error was added to `sink`.
DestinationRule ReadDestinationRule(const yaml::Node& doc, ResourceMeta meta,
                                    std::string_view cluster_domain, ErrorSink& sink);

}  // namespace meshgate::config::internal
