// Validates Istio Gateway documents (networking.istio.io). meshgate uses their
// AUTO_PASSTHROUGH servers on its listener port to learn which hosts it exports.
#pragma once

#include "config/mesh/mesh_model.h"
#include "base/yaml/yaml_fields.h"
#include "base/yaml/yaml_tree.h"

namespace meshgate::config::internal {

// Reads a document whose kind is Gateway; `meta` already names it. Every valid
// server is kept; which ones apply is decided when the mesh is built.
IstioGateway ReadIstioGateway(const yaml::Node& doc, ResourceMeta meta, ErrorSink& sink);

}  // namespace meshgate::config::internal
