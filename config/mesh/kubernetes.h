// Validates the Kubernetes kinds meshgate reads: Service, EndpointSlice
// (discovery.k8s.io/v1), legacy Endpoints (v1) and Pod (for labels, readiness
// and, for Services without endpoint resources, the endpoints themselves).
#pragma once

#include <vector>

#include "config/mesh/mesh_model.h"
#include "base/yaml/yaml_fields.h"
#include "base/yaml/yaml_tree.h"

namespace meshgate::config::internal {

// Each reads a document of its kind; `meta` already names it. A resource is
// valid only if no error was added to `sink`. Endpoint groups that can't be
// used (no service label, FQDN addresses) come back empty with a warning.
KubeService ReadKubeService(const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink);
EndpointGroup ReadEndpointSlice(const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink);
std::vector<EndpointGroup> ReadLegacyEndpoints(const yaml::Node& doc, ResourceMeta meta,
                                               ErrorSink& sink);
Pod ReadPod(const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink);

// core/v1 Namespace: only metadata (its labels) is used.
KubeNamespace ReadNamespace(const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink);

}  // namespace meshgate::config::internal
