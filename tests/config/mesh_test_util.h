// Shared helpers for the mesh loader tests: fixture paths, located messages,
// inline documents.
#pragma once

#include <string>
#include <vector>

#include "config/mesh/mesh_loader.h"

namespace meshgate::config::testing {

using Lines = std::vector<std::string>;

inline const std::vector<SniRewrite> kDefaultRewrites = {{".global", ".svc.cluster.local"}};

// What every load without an exporting Gateway warns, last among the warnings:
// nothing is served (fail closed, as Istio builds no filter chain then).
inline const std::string kNoGatewayWarning =
    "no Gateway selecting this gateway (labels: istio=eastwestgateway) has a tls.mode "
    "AUTO_PASSTHROUGH server on port 15443: nothing is served";

// The same, for a load with default options (no gateway labels).
inline const std::string kNoLabelsWarning =
    "no Gateway selecting this gateway (labels: none) has a tls.mode AUTO_PASSTHROUGH server on "
    "port 15443: nothing is served";

// The labels of Istio's east-west gateway (samples/multicluster/gen-eastwest-gateway.sh),
// which the tests' Gateways select.
inline MeshLoadOptions EastWest() {
  MeshLoadOptions options;
  options.gateway_labels = {{"istio", "eastwestgateway"}};
  return options;
}

// A Gateway istio-system/<name> selecting the east-west gateway, exporting
// every host ("*") on 15443 (AUTO_PASSTHROUGH), as a YAML document.
inline std::string ExportAll(const std::string& name = "eastwest") {
  return "---\napiVersion: networking.istio.io/v1\nkind: Gateway\n"
         "metadata: {name: " + name + ", namespace: istio-system}\n"
         "spec:\n  selector: {istio: eastwestgateway}\n  servers:\n"
         "  - port: {number: 15443, name: tls, protocol: TLS}\n"
         "    tls: {mode: AUTO_PASSTHROUGH}\n    hosts: [\"*/*\"]\n";
}

inline std::string Data(const std::string& relative) {
  return std::string(MESHGATE_TESTDATA) + "/" + relative;
}

// "<testdata>/<file>:<line>:<column>: <rest>", the shape of every located message.
inline std::string At(const std::string& file, int line, int column, const std::string& rest) {
  return Data(file) + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + rest;
}

inline MeshLoadResult Load(const std::vector<std::string>& relative_paths,
                           const std::vector<SniRewrite>& rewrites = kDefaultRewrites,
                           const MeshLoadOptions& options = EastWest()) {
  std::vector<std::string> paths;
  for (const std::string& p : relative_paths) paths.push_back(Data(p));
  return LoadMesh(paths, rewrites, options);
}

// Inline YAML as "t.yaml" with the default rewrites.
inline MeshLoadResult LoadYaml(const std::string& yaml,
                               const MeshLoadOptions& options = EastWest()) {
  return LoadMeshFromString(yaml, "t.yaml", kDefaultRewrites, options);
}

}  // namespace meshgate::config::testing
