// The `kubernetes:` block both meshgate.yaml and serve.yaml's clusters[]
// entries take: which Kubernetes API server to follow and with what
// credentials. One struct and one reader, so both files accept exactly the
// same keys with the same errors.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "base/yaml/yaml_fields.h"

namespace meshgate::config {

struct KubernetesConfig {
  bool in_cluster = false;      // the pod's service account
  std::string kubeconfig;       // or a kubeconfig file ("" and !in_cluster: off)
  std::string context;          // "": its current-context
  bool allow_insecure = false;  // accept insecure-skip-tls-verify in the kubeconfig
  bool enabled() const { return in_cluster || !kubeconfig.empty(); }
  bool operator==(const KubernetesConfig&) const = default;
};

// Reads `{inCluster: true}` or `{kubeconfig: PATH, context: NAME,
// allowInsecure: BOOL}` at `node`, whose field path is `path`
// ("kubernetes", "clusters[1].kubernetes"). `resolve` makes a relative
// kubeconfig path absolute (against the file's directory). Problems go to
// `sink`; `out` holds what was read.
void ReadKubernetesConfig(const yaml::Node& node, std::string_view path, yaml::ErrorSink& sink,
                          const std::function<std::string(const std::string&)>& resolve, KubernetesConfig& out);

}  // namespace meshgate::config
