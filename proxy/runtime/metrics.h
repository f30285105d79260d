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

#include "base/io/http_server.h"
#include "config/model/route_table.h"
#include "config/settings/gateway_config.h"
#include "lb/cluster_state.h"
#include "proxy/runtime/control_source.h"
#include "proxy/runtime/dns_resolver.h"
#include "proxy/runtime/health_checker.h"
#include "proxy/runtime/takeover.h"
#include "proxy/cluster_stats.h"
#include "proxy/admission.h"
#include "proxy/stats.h"

namespace meshgate::proxy {

// The gateway as the source_* labels of Istio's metrics name it: what
// Istio's stats filter reads from the proxy's node metadata (istio/proxy
// istio_stats.cc, reporter "source": WORKLOAD_NAME, NAMESPACE, LABELS,
// CLUSTER_ID). Values are never empty: "unknown" stands in.
struct IstioSource {
  std::string workload = "unknown";
  std::string workload_namespace = "unknown";
  std::string principal = "unknown";
  std::string app = "unknown";
  std::string version = "unknown";
  std::string cluster = "unknown";
  std::string canonical_service = "unknown";
  std::string canonical_revision = "latest";
};
IstioSource IstioSourceOf(const config::GatewayConfig& settings);

struct MetricsSnapshot {
  std::string listener;  // "0.0.0.0:15443"
  std::vector<const ProxyStats*> workers;
  std::vector<std::shared_ptr<ClusterStats>> clusters;
  std::vector<lb::ClusterView> endpoints;  // health per cluster
  std::string istio_cluster_id;            // destination_cluster of known endpoints
  IstioSource istio_source;                // source_* of every istio_* series
  // Refusals by AuthorizationPolicy name ("none": no ALLOW policy matched).
  std::vector<std::pair<std::string, uint64_t>> policy_denied;
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
  const Admission* admission = nullptr;  // overload protection (null: none)
  const TakeoverCounters* takeover = nullptr;  // binary upgrades (null: not counted)
  // The ops HTTP ports (metrics, readiness, admin): the port number and its acceptor's counts.
  std::vector<std::pair<std::string, io::HttpServerStats>> http;
};

// The text exposition format (version 0.0.4).
std::string RenderMetrics(const MetricsSnapshot& snapshot);

}  // namespace meshgate::proxy
