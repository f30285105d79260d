// serve.yaml, the configuration of `meshgatectl serve`: where it listens, and
// for each cluster its gateway and where its mesh resources come from
// (files, its Kubernetes API server, or both).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "config/settings/kubernetes_config.h"
#include "base/read_file.h"

namespace meshgate::config {

// A cluster's east-west gateway as the other clusters reach it.
struct GatewayAddress {
  std::string host;  // an IP address or a host name
  uint16_t port = 15443;
};

// "HOST_OR_IP[:PORT]" (the port defaults to 15443). The messages name the
// --gateway flag, which reads the same syntax.
absl::StatusOr<GatewayAddress> ParseGatewayAddress(std::string_view text);

struct ServeConfig {
  std::string listen = "0.0.0.0:15180";
  // TLS when set: the server's chain (leaf first; `meshgatectl ca server`) and key.
  std::string tls_cert_chain;
  std::string tls_key;
  std::string suffix = "global";           // ServiceEntry hosts: <name>.<ns>.<suffix>
  std::string ns = "istio-system";         // where the ServiceEntries are applied
  std::string allocations_dir;             // "<dir>/<cluster>.vips"; "": kept in memory
  std::chrono::milliseconds max_watch{60000};  // the longest long poll
  struct Cluster {
    std::string name;
    std::string network;
    std::string gateway;  // HOST_OR_IP[:PORT], as the other clusters reach it (as written)
    GatewayAddress gateway_address;  // `gateway`, parsed
    std::vector<std::string> mesh;  // this cluster's Services, EndpointSlices, DestinationRules...
    // `kubernetes: {inCluster: true}` or `{kubeconfig: PATH, context: NAME}`:
    // the cluster's API server, whose objects are mesh resources beside
    // `mesh` (at least one of the two is set). Off when !enabled().
    KubernetesConfig kubernetes;
    std::string ca_dir;   // its intermediate (`meshgatectl ca intermediate`); "": none published
  };
  std::vector<Cluster> clusters;
  // limits.maxConfigFileBytes / limits.maxConfigBytes: the mesh files' size caps.
  base::ConfigReadLimits config_read_limits;
  // `dns: {listen: ADDR, zone: global, cluster: NAME}`: an authoritative DNS
  // server for the ServiceEntry hosts (replaces istiocoredns). `zone` must be
  // `suffix` (the names it answers); `cluster` picks the consuming cluster
  // whose VIPs are answered ("": every cluster's). Restart to change.
  struct Dns {
    std::string listen;  // ip:port; port 0 picks one (logged)
    std::string zone;
    std::string cluster;
  };
  std::optional<Dns> dns;
};

// Errors read "path:line:column: field.path: what is wrong", one a line.
// Relative paths in the file are resolved against the file's directory.
absl::StatusOr<ServeConfig> LoadServeConfig(const std::string& path);
// The same for text already read: `name` prefixes the messages, `base_dir`
// resolves relative paths ("": left as they are).
absl::StatusOr<ServeConfig> ParseServeConfig(const std::string& text, const std::string& name,
                                             const std::string& base_dir);

}  // namespace meshgate::config
