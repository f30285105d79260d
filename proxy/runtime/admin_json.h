// JSON bodies of the admin API (Boost.JSON stays inside admin_json.cc).
#pragma once

#include <string>
#include <vector>

#include "config/model/route_table.h"
#include "lb/cluster_state.h"
#include "proxy/runtime/control_source.h"

namespace meshgate::proxy {

// GET /config_dump: the live route table with sources, the version serving,
// and the last reload's error ("" when it succeeded or none happened).
std::string ConfigDumpJson(const config::RouteTable& table, uint64_t version,
                           const std::string& last_reload_error, double last_reload_time);

// GET /clusters: every cluster's endpoints with health and connections.
std::string ClustersJson(const std::vector<lb::ClusterView>& clusters);

// GET /control: how following the control component goes.
std::string ControlStatusJson(const ControlStatus& status);

}  // namespace meshgate::proxy
