#include "proxy/runtime/admin_json.h"

#include <boost/json.hpp>

#include "config/model/traffic_policy.h"

namespace meshgate::proxy {

namespace json = boost::json;

namespace {

// A cluster's subset selector (std::map) or an endpoint's config::LabelSet: both sorted by key.
template <typename LabelMap>
json::object Labels(const LabelMap& labels) {
  json::object out;
  for (const auto& [k, v] : labels) out[k] = v;
  return out;
}

}  // namespace

namespace {

// meshgate.yaml's reloadable settings as they are in force.
json::object SettingsJson(const config::GatewayConfig& s) {
  json::object out;
  out["log_level"] = s.log_level;
  out["hello_timeout_ms"] = s.hello_timeout.count();
  out["connect_timeout_ms"] = s.connect_timeout.count();
  out["idle_timeout_ms"] = s.idle_timeout.count();
  out["max_hello_bytes"] = s.max_hello_bytes;
  out["max_connect_attempts"] = s.max_connect_attempts;
  out["relay"] = s.relay == config::RelayMode::kSplice ? "splice" : "copy";
  out["locality"] = s.locality;
  out["drain_delay_ms"] = s.drain.delay.count();
  out["drain_time_ms"] = s.drain.time.count();
  return out;
}

}  // namespace

std::string ConfigDumpJson(const config::RouteTable& table, const ConfigDumpInfo& info) {
  json::object root;
  root["version"] = info.version;
  root["workers_version"] = info.workers_version;
  root["snapshot"] = info.snapshot;
  root["workers_snapshot"] = info.workers_snapshot;
  json::object reload;
  reload["last_attempt_unix_seconds"] = info.last_reload_time;
  reload["last_error"] = info.last_reload_error.empty() ? json::value(nullptr) : json::value(info.last_reload_error);
  root["reload"] = std::move(reload);
  if (info.settings != nullptr) root["settings"] = SettingsJson(*info.settings);
  json::array rewrites;
  for (const config::SniRewrite& r : table.rewrites()) rewrites.push_back(json::object{{"from", r.from}, {"to", r.to}});
  root["sni_rewrites"] = std::move(rewrites);
  json::array clusters;
  for (const config::Cluster& c : table.clusters()) {
    json::object cluster;
    cluster["name"] = c.name;
    cluster["host"] = c.host;
    cluster["port"] = c.port;
    cluster["subset"] = c.subset;
    cluster["subset_labels"] = Labels(c.subset_labels);
    cluster["source"] = c.source;
    cluster["resolution"] = std::string(config::ToString(c.resolution));
    cluster["exported"] = c.exported;
    cluster["policy"] = config::Describe(c.policy);
    cluster["policy_source"] = c.policy_source;
    json::array endpoints;
    for (const config::Endpoint& e : c.endpoints) {
      json::object ep;
      ep["address"] = e.address;
      ep["port"] = e.port;
      ep["weight"] = e.weight;
      ep["locality"] = e.locality();
      ep["network"] = e.network();
      ep["ready"] = e.ready;
      ep["labels"] = Labels(e.labels);
      if (!e.hostname().empty()) ep["hostname"] = e.hostname();
      endpoints.push_back(std::move(ep));
    }
    cluster["endpoints"] = std::move(endpoints);
    json::array names;
    for (const config::Endpoint& e : c.dns_endpoints) names.push_back(json::object{{"hostname", e.hostname()}, {"port", e.port}});
    cluster["dns_names"] = std::move(names);
    clusters.push_back(std::move(cluster));
  }
  root["clusters"] = std::move(clusters);
  return json::serialize(root) + "\n";
}

std::string ClustersJson(const std::vector<lb::ClusterView>& views) {
  json::array clusters;
  for (const lb::ClusterView& v : views) {
    json::object cluster;
    cluster["name"] = v.name;
    cluster["policy"] = v.policy;
    cluster["active_connections"] = v.active;
    cluster["max_connections"] = v.max_connections ? json::value(*v.max_connections) : json::value(nullptr);
    cluster["panic"] = v.panic;
    cluster["exported"] = v.exported;
    if (!v.exported) cluster["export_detail"] = v.export_detail;
    json::array endpoints;
    for (const lb::EndpointView& e : v.endpoints) {
      endpoints.push_back(json::object{{"address", e.address},
                                       {"port", e.port},
                                       {"weight", e.weight},
                                       {"locality", e.locality},
                                       {"network", e.network},
                                       {"in_view", e.in_view},
                                       {"health", e.health},
                                       {"ejections", e.ejections},
                                       {"active_connections", e.active},
                                       {"total_connections", e.total}});
    }
    cluster["endpoints"] = std::move(endpoints);
    clusters.push_back(std::move(cluster));
  }
  return json::serialize(json::object{{"clusters", std::move(clusters)}}) + "\n";
}

std::string ControlStatusJson(const ControlStatus& s) {
  auto text_or_null = [](const std::string& t) { return t.empty() ? json::value(nullptr) : json::value(t); };
  json::object root;
  root["url"] = s.url;
  root["cluster"] = s.cluster;
  root["state"] = s.state;
  root["synced"] = s.synced_once;
  root["applied_version"] = s.applied_version;
  root["seen_version"] = s.seen_version;
  root["applied_etag"] = text_or_null(s.applied_etag);
  root["last_applied_unix_seconds"] = s.last_applied_seconds;
  root["last_contact_unix_seconds"] = s.last_contact_seconds;
  root["last_error"] = text_or_null(s.last_error);
  root["updates_applied"] = s.updates_applied;
  root["updates_rejected"] = s.updates_rejected;
  root["fetch_errors"] = s.fetch_errors;
  root["consecutive_failures"] = s.consecutive_failures;
  root["next_retry_ms"] = s.next_retry_ms;
  return json::serialize(root) + "\n";
}

}  // namespace meshgate::proxy
