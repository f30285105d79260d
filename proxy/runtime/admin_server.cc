#include "proxy/runtime/admin_server.h"

#include <algorithm>

#include "base/logging.h"
#include "fmt/format.h"
#include "proxy/access_log.h"
#include "proxy/runtime/admin_json.h"
#include "proxy/runtime/metrics.h"
#include "spdlog/spdlog.h"

namespace meshgate::proxy {

using io::HttpRequest;
using io::HttpResponse;

AdminServer::AdminServer(const Runtime& runtime, const WorkerPool& workers, Lifecycle& lifecycle,
                         const AccessLog* access_log)
    : runtime_(runtime), workers_(workers), lifecycle_(lifecycle), access_log_(access_log) {}

absl::Status AdminServer::Start(boost::asio::io_context& io, const config::GatewayConfig& settings,
                               const AdoptListener& adopt) {
  const std::tuple<const std::string&, const char*, AdminPort> endpoints[] = {
      {settings.metrics, "metrics", AdminPort::kMetrics},
      {settings.readiness, "readiness", AdminPort::kReadiness},
      {settings.admin, "admin", AdminPort::kAdmin},
  };
  for (const auto& [address, what, port] : endpoints) {
    if (address.empty()) continue;
    const AdminPort kind = port;  // a lambda may not capture a structured binding (clang 14)
    io::HttpServerOptions options;
    options.adopt_fd = adopt ? adopt(what, address) : -1;
    auto async = [this, kind](const HttpRequest& r, io::HttpResponder respond) { respond(Handle(kind, r)); };
    auto server = io::HttpServer::Start(io, address, std::move(async), options);
    if (!server.ok()) {
      return absl::UnavailableError(
          fmt::format("cannot serve {} on {}: {}", what, address, std::string(server.status().message())));
    }
    spdlog::info("{} serving on {}{}", what, (*server)->bound_address(),
                 options.adopt_fd >= 0 ? " (taken over)" : "");
    if (std::string_view(what) == "admin" && !(*server)->loopback()) {
      spdlog::warn("ADMIN API ON A NON-LOOPBACK ADDRESS ({}): anyone who can reach it can drain this "
                   "gateway and change its log level",
                   (*server)->bound_address());
    }
    servers_.push_back(*std::move(server));
    roles_.push_back(what);
  }
  return absl::OkStatus();
}

HttpResponse AdminServer::Handle(AdminPort port, const HttpRequest& request) {
  switch (port) {
    case AdminPort::kMetrics: return ServeMetrics(request);
    case AdminPort::kReadiness: return ServeReadiness(request);
    case AdminPort::kAdmin: return ServeAdmin(request);
  }
  return {500, "text/plain", "no such port\n"};
}

std::vector<std::tuple<std::string, std::string, int>> AdminServer::Listeners() const {
  std::vector<std::tuple<std::string, std::string, int>> out;
  for (size_t i = 0; i < servers_.size(); ++i) {
    const int fd = servers_[i]->listener_fd();
    if (fd >= 0) out.emplace_back(roles_[i], servers_[i]->bound_address(), fd);
  }
  return out;
}

// Destroying a server closes its acceptor; its connections in flight own
// what they use and finish.
void AdminServer::CloseListeners() {
  servers_.clear();
  roles_.clear();
}

HttpResponse AdminServer::ServeMetrics(const HttpRequest& request) const {
  if (request.path != "/stats/prometheus" && request.path != "/metrics") return {404, "text/plain", "not found\n"};
  if (request.method != "GET") return {405, "text/plain", "use GET\n"};
  MetricsSnapshot snapshot;
  snapshot.listener = workers_.bound_address();
  snapshot.workers = workers_.stats();
  snapshot.clusters = runtime_.cluster_stats();
  snapshot.endpoints = runtime_.Clusters();
  snapshot.istio_cluster_id = runtime_.settings().cluster_id;
  snapshot.policy_denied = runtime_.policy_denied();
  snapshot.istio_source = IstioSourceOf(runtime_.settings());
  const ReloadStatus& reload = runtime_.reload_status();
  snapshot.config_version = reload.version;
  snapshot.workers_version = workers_.acked_version();
  snapshot.reloads_ok = reload.ok;
  snapshot.reloads_failed = reload.failed;
  snapshot.last_reload_seconds = reload.last_time;
  if (access_log_ != nullptr) {
    snapshot.access_log_written = access_log_->written();
    snapshot.access_log_dropped = access_log_->dropped();
  }
  snapshot.draining = lifecycle_.draining.load();
  snapshot.control = runtime_.control_status();
  snapshot.dns = runtime_.dns_stats();
  snapshot.health_checks = runtime_.health_check_stats();
  snapshot.admission = &workers_.admission();
  snapshot.takeover = &lifecycle_.takeover;
  for (const auto& server : servers_) {
    const std::string address = server->bound_address();
    snapshot.http.emplace_back(address.substr(address.rfind(':') + 1), server->stats());
  }
  return {200, "text/plain; version=0.0.4; charset=utf-8", RenderMetrics(snapshot)};
}

HttpResponse AdminServer::ServeReadiness(const HttpRequest& request) const {
  if (request.path != "/healthz/ready") return {404, "text/plain", "not found\n"};
  return Readiness();
}

HttpResponse AdminServer::Readiness() const {
  if (lifecycle_.draining) return {503, "text/plain", "draining\n"};
  if (!lifecycle_.ready) return {503, "text/plain", "starting\n"};
  // Over limits.memory new connections are refused at accept; not ready, so
  // the Service sends them to another replica meanwhile.
  if (const MemoryState memory = workers_.admission().memory(); memory.over()) {
    return {503, "text/plain",
            fmt::format("overloaded: memory: RSS {} bytes over limits.memory {} bytes; new connections are refused\n",
                        memory.rss_bytes, memory.limit_bytes)};
  }
  const ControlStatus* c = runtime_.control_status();
  if (c != nullptr && runtime_.settings().control.required && !c->synced_once) {
    return {503, "text/plain",
            fmt::format("waiting for the first sync from control component {} (cluster {}){}{}\n", c->url, c->cluster,
                        c->last_error.empty() ? "" : ": ", c->last_error)};
  }
  // The API server's state is applied only once every resource has listed.
  if (const KubeStatus* k = runtime_.kube_status(); k != nullptr && !k->ready()) {
    return {503, "text/plain",
            fmt::format("waiting for the first Kubernetes sync: {}\n", k->synced ? "applying it" : k->Pending())};
  }
  // Fail closed as Istio's AUTO_PASSTHROUGH gateway: with no Gateway that
  // selects it, nothing is served, so the gateway is not ready and says why.
  if (const std::string& closed = runtime_.snapshot()->table->view().closed_reason; !closed.empty()) {
    return {503, "text/plain", closed + "\n"};
  }
  return {200, "text/plain", "ready\n"};
}

std::string AdminServer::ConfigDump() const {
  ConfigDumpInfo info;
  const ReloadStatus& reload = runtime_.reload_status();
  info.version = reload.version;
  info.workers_version = workers_.acked_version();
  info.snapshot = runtime_.snapshot()->sequence;
  info.workers_snapshot = workers_.acked_sequence();
  info.last_reload_error = reload.last_error;
  info.last_reload_time = reload.last_time;
  info.settings = &runtime_.settings();
  return ConfigDumpJson(*runtime_.snapshot()->table, info);
}

std::string AdminServer::StatsText() const {
  std::string text = StatsSummary(runtime_, workers_);
  std::replace(text.begin(), text.end(), ' ', '\n');
  return text + "\n";
}

HttpResponse AdminServer::ServeAdmin(const HttpRequest& request) {
  const bool get = request.method == "GET";
  const bool post = request.method == "POST";
  if (request.path == "/config_dump" && get) return {200, "application/json", ConfigDump()};
  if (request.path == "/clusters" && get) return {200, "application/json", ClustersJson(runtime_.Clusters())};
  if (request.path == "/stats" && get) return {200, "text/plain", StatsText()};
  if (request.path == "/ready" && get) return Readiness();
  if (request.path == "/control" && get) {
    const ControlStatus* control = runtime_.control_status();
    if (control == nullptr) return {404, "text/plain", "no control component configured\n"};
    return {200, "application/json", ControlStatusJson(*control)};
  }
  if (request.path == "/kubernetes" && get) {
    const KubeStatus* kube = runtime_.kube_status();
    if (kube == nullptr) return {404, "text/plain", "not following a Kubernetes API server\n"};
    return {200, "application/json", KubeStatusJson(*kube)};
  }
  if (request.path == "/drain" && post) {
    lifecycle_.begin_drain("POST /drain");
    return {200, "text/plain", "draining\n"};
  }
  if (request.path == "/logging" && post) {
    const std::string level = io::QueryValue(request.query, "level");
    const auto parsed = base::ParseLogLevel(level);
    if (!parsed) {
      return {400, "text/plain",
              "unknown level \"" + io::EchoForBody(level) + "\" (trace, debug, info, warn, error, off)\n"};
    }
    spdlog::set_level(*parsed);
    spdlog::info("admin: log level set to {}", level);
    return {200, "text/plain", "log level " + level + "\n"};
  }
  for (const char* known : {"/config_dump", "/clusters", "/stats", "/ready", "/control", "/kubernetes", "/drain",
                            "/logging"}) {
    if (request.path == known) return {405, "text/plain", "method not allowed\n"};
  }
  return {404, "text/plain",
          "not found; try GET /config_dump, /clusters, /stats, /ready, /control, /kubernetes; POST /drain, "
          "/logging?level=\n"};
}

std::string StatsSummary(const Runtime& runtime, const WorkerPool& workers) {
  const std::vector<const ProxyStats*> all = workers.stats();
  const ReloadStatus& reload = runtime.reload_status();
  std::string out = fmt::format("{} config_version={} config_reloads_ok={} config_reloads_failed={}",
                                FormatStats(all.data(), all.size()), reload.version, reload.ok, reload.failed);
  if (const DnsStats* dns = runtime.dns_stats()) {
    const std::string text = FormatStats(*dns);
    if (!text.empty()) out += " " + text;
  }
  if (const lb::HealthCheckStats* hc = runtime.health_check_stats()) {
    base::AppendSummary(out, "health_check_", &hc, 1, /*skip_zero=*/false);
  }
  return out;
}

}  // namespace meshgate::proxy
