// One workload's fields as Istio writes them, shared by ServiceEntry endpoints
// and WorkloadEntry specs, plus the label and exportTo syntax several kinds share.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/mesh/mesh_model.h"
#include "base/yaml/yaml_fields.h"
#include "base/yaml/yaml_tree.h"

namespace meshgate::config::internal {

enum class AddressRule {
  kIp,        // resolution STATIC: an IP literal
  kIpOrHost,  // resolution DNS, WorkloadEntry: an IP literal or a DNS name
  kUnchecked  // the resource is already rejected for another reason
};

// Reads address, ports, labels, network, locality, weight and serviceAccount.
// Labels are interned with `interner`. `ports`, when given, are the names the ports map may use. `what` explains the
// address rule in messages ("resolution STATIC needs IP endpoints").
void ReadWorkload(const yaml::Node& node, const std::string& path, AddressRule rule,
                  std::string_view what, const std::vector<ServicePort>* ports, ErrorSink& sink,
                  LabelInterner& interner, WorkloadEndpoint& out);

// A label map (labels, selectors) with Kubernetes key and value syntax.
std::optional<Labels> ReadLabels(const yaml::Node& node, const std::string& path,
                                 ErrorSink& sink);

// exportTo: ".", "*", "~" or namespace names; "*" and "~" stand alone.
std::vector<std::string> ReadExportTo(const yaml::Node& node, const std::string& path,
                                      ErrorSink& sink);

// The port an endpoint listens on for `port`: its own ports map, else the
// service's targetPort, else the service port itself.
uint16_t EndpointPort(const WorkloadEndpoint& endpoint, const ServicePort& port);

}  // namespace meshgate::config::internal
