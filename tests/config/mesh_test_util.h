// Shared helpers for the mesh loader tests: fixture paths, located messages,
// inline documents.
#pragma once

#include <string>
#include <vector>

#include "config/mesh/mesh_loader.h"

namespace meshgate::config::testing {

using Lines = std::vector<std::string>;

inline const std::vector<SniRewrite> kDefaultRewrites = {{".global", ".svc.cluster.local"}};

// What every load without an exporting Gateway warns, last among the warnings.
inline const std::string kNoGatewayWarning =
    "no Gateway exports hosts on port 15443 (a server with tls.mode AUTO_PASSTHROUGH): every "
    "host loaded is served";

inline std::string Data(const std::string& relative) {
  return std::string(MESHGATE_TESTDATA) + "/" + relative;
}

// "<testdata>/<file>:<line>:<column>: <rest>", the shape of every located message.
inline std::string At(const std::string& file, int line, int column, const std::string& rest) {
  return Data(file) + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + rest;
}

inline MeshLoadResult Load(const std::vector<std::string>& relative_paths,
                           const std::vector<SniRewrite>& rewrites = kDefaultRewrites,
                           const MeshLoadOptions& options = {}) {
  std::vector<std::string> paths;
  for (const std::string& p : relative_paths) paths.push_back(Data(p));
  return LoadMesh(paths, rewrites, options);
}

// Inline YAML as "t.yaml" with the default rewrites.
inline MeshLoadResult LoadYaml(const std::string& yaml, const MeshLoadOptions& options = {}) {
  return LoadMeshFromString(yaml, "t.yaml", kDefaultRewrites, options);
}

}  // namespace meshgate::config::testing
