// Prometheus exposition of everything meshgate counts, built at scrape time
// from the workers' counters and the shared cluster statistics (nothing on
// the data path knows about Prometheus). prometheus-cpp provides the metric
// model, a registry for the static series and the text serializer.
//
// Cardinality is bounded by configuration: label values are listener
// addresses, fixed reason names and configured cluster names, never client
// input such as the SNI.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/model/route_table.h"
#include "lb/cluster_state.h"
#include "proxy/runtime/control_source.h"
#include "proxy/runtime/dns_resolver.h"
#include "proxy/runtime/health_checker.h"
#include "proxy/cluster_stats.h"
#include "proxy/stats.h"

namespace meshgate::proxy {

struct MetricsSnapshot {
  std::string listener;  // "0.0.0.0:15443"
  std::vector<const ProxyStats*> workers;
  std::vector<std::shared_ptr<ClusterStats>> clusters;
  std::vector<lb::ClusterView> endpoints;  // health per cluster
  std::string istio_cluster_id;            // destination_cluster
  uint64_t config_version = 0;
  uint64_t workers_version = 0;  // the config version every worker installed
  uint64_t reloads_ok = 0;
  uint64_t reloads_failed = 0;
  double last_reload_seconds = 0;  // Unix time; 0: never reloaded
  uint64_t access_log_written = 0;
  uint64_t access_log_dropped = 0;
  bool draining = false;
  const ControlStatus* control = nullptr;  // null: no control component configured
  const DnsStats* dns = nullptr;            // null: no resolver
  const lb::HealthCheckStats* health_checks = nullptr;  // null: no checks configured
};

// The text exposition format (version 0.0.4).
std::string RenderMetrics(const MetricsSnapshot& snapshot);

}  // namespace meshgate::proxy
