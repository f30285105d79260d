// JSON bodies of the admin API (Boost.JSON stays inside admin_json.cc).
#pragma once

#include <string>
#include <vector>

#include "config/model/route_table.h"
#include "config/settings/gateway_config.h"
#include "lb/cluster_state.h"
#include "proxy/runtime/control_source.h"
#include "config/kube/kube_source.h"

namespace meshgate::proxy {

// GET /config_dump: the live route table with sources, the version serving,
// and the last reload's error ("" when it succeeded or none happened).
struct ConfigDumpInfo {
  uint64_t version = 0;          // the config version published
  uint64_t workers_version = 0;  // the config version every worker installed
  uint64_t snapshot = 0;          // the snapshot sequence published (DNS answers too)
  uint64_t workers_snapshot = 0;  // the snapshot sequence every worker installed
  std::string last_reload_error;
  double last_reload_time = 0;
  const config::GatewayConfig* settings = nullptr;  // the reloadable part is shown
};
std::string ConfigDumpJson(const config::RouteTable& table, const ConfigDumpInfo& info);

// GET /clusters: every cluster's endpoints with health and connections.
std::string ClustersJson(const std::vector<lb::ClusterView>& clusters);

// GET /control: how following the control component goes.
std::string ControlStatusJson(const ControlStatus& status);

// GET /kubernetes: KubeStatusJson (config/kube/kube_source.h), shared with serve.
using kubemesh::KubeStatus;
using kubemesh::KubeStatusJson;

}  // namespace meshgate::proxy
