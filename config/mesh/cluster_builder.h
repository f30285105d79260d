// Turns validated resources into the route table's clusters: one per (host,
// port) and one per (host, port, DestinationRule subset), with the effective
// traffic policy and the Gateway export decision on each.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/mesh/mesh_model.h"
#include "config/model/route_table.h"

namespace meshgate::config::internal {

struct ClusterBuildOptions {
  uint16_t listener_port = 15443;
  std::string_view cluster_domain = "cluster.local";
  const std::vector<SniRewrite>* rewrites = nullptr;
  // Where the gateway runs, and Istio's config root namespace: they decide
  // which DestinationRules apply (see RuleIndex in cluster_builder.cc).
  std::string_view gateway_namespace = "istio-system";
  std::string_view root_namespace = "istio-system";
  // Matched by Gateway selectors; null: no labels (only selector-less Gateways apply).
  const std::map<std::string, std::string>* gateway_labels = nullptr;
  // The gateway's network (empty: the system namespace's) and the extra
  // networks it may dial; they decide which endpoints are in view.
  std::string_view network;
  const std::vector<std::string>* requested_network_view = nullptr;
  std::string_view trust_domain = "cluster.local";
};

// Cross-resource problems (merge conflicts, policies that collide...) are
// appended to `errors`, notes to `warnings`. Endpoint data is moved out of
// `resources`, which is left valid but unspecified. `view` gets the Gateways
// that select this gateway, why nothing is served (if so) and the network view.
// Each cluster is its own allocation, for RouteTable::FromOwned.
std::vector<std::unique_ptr<Cluster>> BuildClusters(MeshResources& resources,
                                   const ClusterBuildOptions& options,
                                   std::vector<std::string>& errors,
                                   std::vector<std::string>& warnings, GatewayView& view);

}  // namespace meshgate::config::internal
