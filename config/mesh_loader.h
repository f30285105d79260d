// Loads Istio/Kubernetes resources from YAML files or directories and builds
// the route table. For now: networking.istio.io ServiceEntry, STATIC.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/route_table.h"

namespace meshgate::config {

struct MeshLoadResult {
  // Null when any error was found: a half-valid mesh is never served.
  std::shared_ptr<const RouteTable> table;
  // Each: "path:line: ServiceEntry ns/name: spec.endpoints[0].address: <what is wrong>"
  std::vector<std::string> errors;
  // Non-fatal notes, e.g. "path:line: ignoring kind Deployment (not used by meshgate)".
  std::vector<std::string> warnings;
  size_t resources_loaded = 0;
};

// paths: files (.yaml/.yml/.json) or directories (read non-recursively, sorted).
MeshLoadResult LoadMesh(const std::vector<std::string>& paths,
                        const std::vector<SniRewrite>& rewrites);

// Same, from in-memory text; `name` stands for the file name in messages.
MeshLoadResult LoadMeshFromString(const std::string& yaml, const std::string& name,
                                  const std::vector<SniRewrite>& rewrites);

}  // namespace meshgate::config
