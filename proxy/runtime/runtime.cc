#include "proxy/runtime/runtime.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "absl/container/flat_hash_map.h"
#include "base/io/config_watcher.h"
#include "base/logging.h"
#include "fmt/format.h"
#include "lb/outlier_sweep.h"
#include "proxy/cluster_stats.h"
#include "proxy/policy_stats.h"
#include "proxy/runtime/dns_routes.h"
#include "spdlog/spdlog.h"

namespace meshgate::proxy {
namespace asio = boost::asio;
using boost::system::error_code;
using RouteTablePtr = std::shared_ptr<const config::RouteTable>;

namespace {

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Settings that need a restart: the listener, the threads, the ops
// endpoints' addresses, the access log's destination, the control component
// and DNS (their sockets and channels are made once). A reload that
// changes one keeps the running value and says so.
std::vector<std::string> KeepRestartOnly(const config::GatewayConfig& running, config::GatewayConfig& next) {
  std::vector<std::string> changed;
  auto keep = [&](const char* name, auto& field, const auto& current) {
    if (!(field == current)) changed.push_back(name);
    field = current;
  };
  keep("listen", next.listen, running.listen);
  keep("threads", next.threads, running.threads);
  keep("admin", next.admin, running.admin);
  keep("metrics", next.metrics, running.metrics);
  keep("readiness", next.readiness, running.readiness);
  keep("accessLog.path", next.access_log.path, running.access_log.path);
  keep("control.url", next.control.url, running.control.url);
  keep("control.cluster", next.control.cluster, running.control.cluster);
  keep("control.caFile", next.control.ca_file, running.control.ca_file);
  keep("control.initialBackoff", next.control.initial_backoff, running.control.initial_backoff);
  keep("control.maxBackoff", next.control.max_backoff, running.control.max_backoff);
  keep("control.watchTimeout", next.control.watch_timeout, running.control.watch_timeout);
  // The control client asks for clusterId's routes when control.cluster is unset.
  if (!running.control.url.empty() && running.control.cluster.empty()) {
    keep("clusterId", next.cluster_id, running.cluster_id);
  }
  keep("kubernetes", next.kubernetes, running.kubernetes);
  keep("dns.servers", next.dns.servers, running.dns.servers);
  keep("dns.minTtl", next.dns.min_ttl, running.dns.min_ttl);
  keep("dns.maxTtl", next.dns.max_ttl, running.dns.max_ttl);
  return changed;
}

bool SameHealthChecks(const config::GatewayConfig& a, const config::GatewayConfig& b) {
  auto key = [](const config::GatewayConfig::HealthCheck& c) {
    return std::tie(c.host, c.port, c.interval, c.timeout, c.healthy_threshold, c.unhealthy_threshold, c.jitter);
  };
  return std::equal(a.health_checks.begin(), a.health_checks.end(), b.health_checks.begin(), b.health_checks.end(),
                    [&](const auto& x, const auto& y) { return key(x) == key(y); });
}

// The ids of the clusters `next` holds other objects for than `current`, when
// both have the same clusters (the same name at every id); nullopt when they
// do not. RouteTable::Reuse and WithCluster keep every unchanged cluster's
// very object (and chunk), so an object or chunk comparison finds the
// changes: shared chunks are skipped whole.
std::optional<std::vector<uint32_t>> ChangedClusters(const config::RouteTable& current,
                                                     const config::RouteTable& next) {
  const auto& a = current.cluster_ptrs();
  const auto& b = next.cluster_ptrs();
  if (a.size() != b.size()) return std::nullopt;
  std::vector<uint32_t> changed;
  for (size_t id = 0; id < a.size(); ++id) {
    if (id % config::PersistentVector<const config::Cluster>::kChunk == 0 && a.SharesChunk(id, b)) {
      id += config::PersistentVector<const config::Cluster>::kChunk - 1;
      continue;
    }
    if (a[id] == b[id]) continue;
    if (a[id]->name != b[id]->name) return std::nullopt;
    changed.push_back(static_cast<uint32_t>(id));
  }
  return changed;
}

}  // namespace

config::MeshLoadOptions MeshLoadOptionsFor(const config::GatewayConfig& settings) {
  // Gateways export hosts through servers on meshgate's own listener port.
  config::MeshLoadOptions options;
  options.gateway_namespace = config::GatewayNamespace(settings);
  options.root_namespace = settings.root_namespace;
  options.cluster_domain = settings.cluster_domain;
  options.gateway_labels = settings.labels;
  options.network = config::GatewayNetwork(settings);
  options.requested_network_view = config::RequestedNetworkView(settings);
  options.trust_domain = settings.trust_domain;
  if (auto listen = base::ParseListenAddress(settings.listen); listen.ok() && listen->port != 0) {
    options.listener_port = listen->port;
  }
  return options;
}

namespace {
// The mesh files plus the control component's resources, as one load reads them.
config::MeshSources ReadLocalSources(const config::GatewayConfig& settings, const std::string& control) {
  config::MeshSources sources = config::ReadMeshSources(settings.mesh_paths, settings.config_read_limits);
  if (!control.empty()) sources.sources.push_back({"control " + settings.control.url, control, ""});
  return sources;
}

// LoadMeshFor, with the runtime's parse cache: sources whose text did not
// change since the last load (most of the API server's objects) are not
// parsed again. `local`: ReadLocalSources.
config::MeshLoadResult LoadMeshCached(const config::GatewayConfig& settings, config::MeshSources sources,
                                      const std::vector<config::MeshSource>& kube, config::MeshParseCache* cache) {
  sources.sources.insert(sources.sources.end(), kube.begin(), kube.end());
  return config::LoadMeshSources(std::move(sources), settings.sni_rewrites, MeshLoadOptionsFor(settings), cache);
}

// Whether a ServiceEntry among these sources may select Pods (a text test:
// a false alarm only costs the full path).
bool MaySelectWorkloads(const config::MeshSources& sources) {
  return std::any_of(sources.sources.begin(), sources.sources.end(), [](const config::MeshSource& s) {
    return s.text.find("workloadSelector") != std::string::npos;
  });
}

// "ns/name" -> "name.ns.svc.<domain>", lowercase, as the loader names a Service's host.
std::string ServiceHost(const std::string& key, const std::string& cluster_domain) {
  const size_t slash = key.find('/');
  std::string host = key.substr(slash + 1) + "." + key.substr(0, slash) + ".svc." + cluster_domain;
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  return host;
}
}  // namespace

config::MeshLoadResult LoadMeshFor(const config::GatewayConfig& settings, const std::string& control,
                                   const std::vector<config::MeshSource>& kube) {
  return LoadMeshCached(settings, ReadLocalSources(settings, control), kube, nullptr);
}

DataPathSettings DataPathSettingsOf(const config::GatewayConfig& c) {
  DataPathSettings s;
  s.hello_timeout = c.hello_timeout;
  s.connect_timeout = c.connect_timeout;
  s.idle_timeout = c.idle_timeout;
  s.max_hello_bytes = c.max_hello_bytes;
  s.max_connect_attempts = c.max_connect_attempts;
  s.relay = c.relay == config::RelayMode::kSplice ? RelayMode::kSplice : RelayMode::kCopy;
  s.require_istio_alpn = c.require_istio_alpn;
  s.route.allow_plain_host = c.plain_host_sni;
  s.limits = {c.limits.max_connections, c.limits.per_source_connections, c.limits.accept_rate,
              c.limits.accept_burst, c.limits.memory_bytes};
  s.proxy_protocol.accept = c.proxy_protocol.accept;
  for (const auto& upstream : c.upstream_proxy_protocol) s.proxy_protocol.upstream_hosts.push_back(upstream.host);
  if (auto listen = base::ParseListenAddress(c.listen); listen.ok() && listen->port != 0) {
    s.gateway_port = listen->port;
  }
  return s;
}

struct Runtime::Impl {
  Impl(asio::io_context& io, config::GatewayConfig s, std::string path, SettingsLoader loader)
      : io(io), settings(std::move(s)), settings_path(std::move(path)), load_settings(std::move(loader)), sweep_timer(io) {}

  // Sources of change. Each calls back into this object, never into a
  // caller's stack frame; they are members declared last, so they go first.
  void StartDns();
  void StartHealthChecks();
  void StartWatcher();
  std::vector<io::WatchedPath> WatchedPaths() const;
  void StartControl();
  void StartKube();
  void ArmSweep();
  void SweepEjections();

  void Reload(const std::string& why);
  std::string OnControl(const std::string& resources, const std::string& why);
  std::string OnKube(const std::vector<config::MeshSource>& sources, const std::string& why);
  bool OnKubeEndpoints(const kubemesh::EndpointChange& change, const std::string& why);
  // The changed clusters of the change's Services, loaded alone; nullopt
  // when that would not equal a full load.
  std::optional<std::vector<config::Cluster>> KubeEndpointClusters(const kubemesh::EndpointChange& change);
  // Clusters of `base` replaced (same names), published as one snapshot.
  void InstallClusters(std::vector<config::Cluster> clusters);
  std::vector<config::MeshSource> KubeSourceList() const;
  // Loads the mesh with `next` settings, `control` and `kube`; installs them
  // when they load. Returns "" or the errors.
  std::string Rebuild(const config::GatewayConfig& next, const std::string& control,
                      const std::vector<config::MeshSource>& kube, const std::string& why);
  void ApplySettings(config::GatewayConfig next);
  void InstallBase(RouteTablePtr base);
  // `changed`: the ids of the only clusters `resolved` changed from `table`
  // (RouteTable::WithCluster); nullopt: any may have.
  void InstallResolved(RouteTablePtr resolved, std::optional<std::vector<uint32_t>> changed);
  void InstallChanged(RouteTablePtr resolved, const std::vector<uint32_t>& changed);
  absl::Status SetEndpoints(const std::string& name, std::vector<config::Endpoint> endpoints);
  void PublishSnapshot(bool same_tick = false);

  asio::io_context& io;
  config::GatewayConfig settings;
  const std::string settings_path;
  const SettingsLoader load_settings;
  RouteTablePtr base;   // from config, before DNS
  RouteTablePtr table;  // resolved: what the workers route with
  std::shared_ptr<lb::HealthTable> health;
  ClusterStatsRegistry cluster_stats;
  TableStats current_stats;  // by cluster id of `table`
  PolicyStatsRegistry policy_stats;
  std::shared_ptr<const Snapshot> snapshot;
  uint64_t sequence = 0;  // snapshots published
  ReloadStatus reload;
  std::string control_resources;  // the last version that loaded
  // The API server's objects: the last set that loaded, by source name
  // (which is also the order KubeSource hands them over in), and whether one has.
  std::map<std::string, config::MeshSource> kube_sources;
  bool kube_loaded = false;
  config::MeshSources local_sources;  // the files and control resources of the last good load
  config::MeshParseCache endpoint_cache;  // the fast path's small loads
  config::MeshParseCache parse_cache;  // what each source of the last load read to
  Publish publish;
  std::function<void(const config::GatewayConfig&)> on_settings;
  lb::OutlierSweep outlier_sweep;  // outlier re-check, on each cluster's interval
  asio::steady_timer sweep_timer;
  std::unique_ptr<DnsResolver> resolver;
  std::unique_ptr<DnsRoutes> dns;
  std::unique_ptr<HealthChecker> checker;
  std::unique_ptr<io::ConfigWatcher> watcher;
  std::unique_ptr<ControlSource> control;
  std::unique_ptr<KubeSource> kube;
};

Runtime::Runtime(asio::io_context& io, config::GatewayConfig settings, RouteTablePtr table, std::string settings_path,
                 SettingsLoader load_settings)
    : impl_(std::make_unique<Impl>(io, std::move(settings), std::move(settings_path), std::move(load_settings))) {
  impl_->base = table;
  impl_->table = std::move(table);
  impl_->health = std::make_shared<lb::HealthTable>(*impl_->table);
  impl_->current_stats = impl_->cluster_stats.StatsFor(*impl_->table);
  impl_->PublishSnapshot();
}

Runtime::~Runtime() = default;

std::shared_ptr<const Snapshot> Runtime::snapshot() const { return impl_->snapshot; }

void Runtime::Start(Publish publish, std::function<void(const config::GatewayConfig&)> on_settings) {
  impl_->publish = std::move(publish);
  impl_->on_settings = std::move(on_settings);
  impl_->StartHealthChecks();
  impl_->StartDns();  // every table goes through DNS resolution before the workers see it
  impl_->StartWatcher();
  impl_->StartControl();
  impl_->StartKube();
  impl_->ArmSweep();
}

void Runtime::Reload(const std::string& why) { impl_->Reload(why); }

void Runtime::Impl::StartDns() {
  DnsOptions options;
  options.servers = settings.dns.servers;
  options.min_ttl = settings.dns.min_ttl;
  options.max_ttl = settings.dns.max_ttl;
  auto created = DnsResolver::Create(io, options);
  if (!created.ok()) {
    spdlog::error("DNS resolver unavailable, DNS clusters get no endpoints: {}", std::string(created.status().message()));
    return;
  }
  resolver = *std::move(created);
  dns = std::make_unique<DnsRoutes>(io, *resolver, [this](RouteTablePtr t, std::optional<std::vector<uint32_t>> changed) {
    InstallResolved(std::move(t), std::move(changed));
  });
  dns->SetBase(base);
}

void Runtime::Impl::StartHealthChecks() {
  if (settings.health_checks.empty()) {
    checker.reset();  // gives its verdicts back
    return;
  }
  // Reconfigured in place: verdicts and counters carry over.
  if (checker) {
    checker->SetChecks(settings.health_checks);
  } else {
    checker = std::make_unique<HealthChecker>(io, settings.health_checks);
  }
  checker->SetTable(table, health);
}

// Exactly what is loaded: each named file, and in a mesh directory the names
// the loader reads (config::IsMeshFileName), so app.log or an editor's dot
// file beside the mesh does not reload it.
std::vector<io::WatchedPath> Runtime::Impl::WatchedPaths() const {
  std::vector<io::WatchedPath> paths;
  for (const std::string& mesh : settings.mesh_paths) paths.push_back({mesh, config::IsMeshFileName});
  if (!settings_path.empty()) paths.push_back({settings_path, nullptr});
  // The Downward API rewrites the labels file when the pod's labels change.
  if (!settings.pod_info_file.empty()) paths.push_back({settings.pod_info_file, nullptr});
  return paths;
}

void Runtime::Impl::StartWatcher() {
  watcher = std::make_unique<io::ConfigWatcher>(io, WatchedPaths(), std::chrono::milliseconds(100),
                                                [this](const std::string& why) { Reload(why); });
}

void Runtime::Impl::StartControl() {
  if (settings.control.url.empty()) return;
  const auto& options = settings.control;
  control = std::make_unique<ControlSource>(
      io, options, options.cluster.empty() ? settings.cluster_id : options.cluster,
      [this](const std::string& resources, const std::string& why) { return OnControl(resources, why); });
  control->Start();
}

// Follows the API server; meshgate does not start when its credentials do not
// load (main checks them first), so a failure here is only logged.
void Runtime::Impl::StartKube() {
  if (!settings.kubernetes.enabled()) return;
  auto validate = [this](const config::MeshSource& source) {
    config::MeshSources one;
    one.sources.push_back(source);
    return config::LoadMeshSources(one, settings.sni_rewrites, MeshLoadOptionsFor(settings)).errors;
  };
  auto created = KubeSource::Create(
      io, settings.kubernetes, validate,
      [this](const std::vector<config::MeshSource>& sources, const std::string& why) { return OnKube(sources, why); },
      [this](const kubemesh::EndpointChange& change, const std::string& why) { return OnKubeEndpoints(change, why); });
  if (!created.ok()) {
    spdlog::error("kubernetes: cannot follow the API server: {}", std::string(created.status().message()));
    return;
  }
  kube = *std::move(created);
  spdlog::info("kubernetes: following the API server ({})", kube->status().source);
  kube->Start();
}

// Outlier detection's re-check: the finest interval Istio accepts is 1 ms,
// but a 100 ms tick is plenty for ejections measured in seconds.
void Runtime::Impl::ArmSweep() {
  sweep_timer.expires_after(std::chrono::milliseconds(100));
  sweep_timer.async_wait([this](const error_code& ec) {
    if (ec) return;
    SweepEjections();
    ArmSweep();
  });
}

void Runtime::Impl::SweepEjections() {
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch()).count();
  outlier_sweep.Run(*table, *health, now, [](const config::Cluster& cluster, size_t i, uint32_t ejections) {
    spdlog::info("cluster {}: endpoint {}:{} back in rotation after ejection #{}", cluster.name,
                 cluster.endpoints[i].address, cluster.endpoints[i].port, ejections);
  });
}

void Runtime::Impl::Reload(const std::string& why) {
  config::GatewayConfig next = settings;
  if (load_settings) {
    auto loaded = load_settings();
    if (!loaded.ok()) {
      reload.last_time = UnixNow();
      reload.last_error = std::string(loaded.status().message());
      reload.failed++;
      spdlog::error("{}", reload.last_error);
      spdlog::error("config reload ({}) failed: still serving version {}", why, reload.version);
      return;
    }
    next = *std::move(loaded);
  }
  const std::vector<std::string> restart_only = KeepRestartOnly(settings, next);
  if (!Rebuild(next, control_resources, KubeSourceList(), why).empty()) return;
  for (const std::string& name : restart_only) {
    spdlog::warn("config reload ({}): {} changed; it takes effect on restart only", why, name);
  }
}

std::string Runtime::Impl::OnControl(const std::string& resources, const std::string& why) {
  std::string error = Rebuild(settings, resources, KubeSourceList(), why);
  if (!error.empty()) return error;
  control_resources = resources;
  return "";
}

std::string Runtime::Impl::OnKube(const std::vector<config::MeshSource>& sources, const std::string& why) {
  std::string error = Rebuild(settings, control_resources, sources, why);
  if (!error.empty()) return error;
  kube_sources.clear();
  for (const config::MeshSource& source : sources) kube_sources.insert_or_assign(kube_sources.end(), source.name, source);
  kube_loaded = true;
  return "";
}

std::vector<config::MeshSource> Runtime::Impl::KubeSourceList() const {
  std::vector<config::MeshSource> out;
  out.reserve(kube_sources.size());
  for (const auto& [name, source] : kube_sources) out.push_back(source);
  return out;
}

bool Runtime::Impl::OnKubeEndpoints(const kubemesh::EndpointChange& change, const std::string& why) {
  if (!kube_loaded) return false;
  std::optional<std::vector<config::Cluster>> clusters = KubeEndpointClusters(change);
  if (!clusters) {
    spdlog::info("kubernetes: endpoint change ({}) takes the full path", why);
    return false;
  }
  for (const std::string& name : change.removed) kube_sources.erase(name);
  for (const config::MeshSource& source : change.upserted) kube_sources.insert_or_assign(source.name, source);
  spdlog::debug("kubernetes: endpoints ({}): {} services, {} clusters changed", why, change.services.size(),
                clusters->size());
  InstallClusters(*std::move(clusters));
  return true;
}

std::optional<std::vector<config::Cluster>> Runtime::Impl::KubeEndpointClusters(const kubemesh::EndpointChange& change) {
  if (change.pods_changed && MaySelectWorkloads(local_sources)) return std::nullopt;
  absl::flat_hash_map<std::string, size_t> hosts;  // -> clusters the small load gives it
  for (const std::string& service : change.services) {
    std::string host = ServiceHost(service, settings.cluster_domain);
    // A ServiceEntry of the same host merges its endpoints with the Service's.
    if (change.service_entry_host && change.service_entry_host(host)) return std::nullopt;
    hosts.emplace(std::move(host), 0);
  }
  std::vector<config::Cluster> out;
  if (hosts.empty()) return out;
  config::MeshLoadResult mesh = LoadMeshCached(settings, local_sources, change.sources, &endpoint_cache);
  if (!mesh.errors.empty() || !mesh.table) return std::nullopt;
  for (const config::Cluster& cluster : mesh.table->clusters()) {
    auto host = hosts.find(cluster.host);
    if (host == hosts.end()) continue;
    const config::Cluster* running = base->FindByName(cluster.name);
    if (running == nullptr) return std::nullopt;  // a cluster the running table lacks
    ++host->second;
    if (!config::SameContent(cluster, *running)) out.push_back(cluster);
  }
  for (const auto& [host, count] : hosts) {
    if (base->ClustersOfHost(host) != count) return std::nullopt;  // a running cluster the load lacks
  }
  return out;
}

void Runtime::Impl::InstallClusters(std::vector<config::Cluster> clusters) {
  if (clusters.empty()) return;
  std::vector<std::string> names;
  names.reserve(clusters.size());
  for (const config::Cluster& cluster : clusters) names.push_back(cluster.name);
  // One version for the whole batch, hence one snapshot for the workers.
  base = base->WithClusters(std::move(clusters));
  if (dns) return dns->UpdateBase(base, names);
  std::vector<uint32_t> ids;
  ids.reserve(names.size());
  for (const std::string& name : names) ids.push_back(base->FindByName(name)->id);
  InstallChanged(base, ids);
}

std::string Runtime::Impl::Rebuild(const config::GatewayConfig& next, const std::string& control,
                                   const std::vector<config::MeshSource>& kube_objects, const std::string& why) {
  config::MeshSources local = ReadLocalSources(next, control);
  const config::MeshLoadResult mesh = LoadMeshCached(next, local, kube_objects, &parse_cache);
  for (const auto& w : mesh.warnings) spdlog::warn("{}", w);
  for (const auto& e : mesh.errors) spdlog::error("{}", e);
  reload.last_time = UnixNow();
  if (!mesh.errors.empty() || !mesh.table) {
    std::string error;
    for (const auto& e : mesh.errors) error += (error.empty() ? "" : "\n") + e;
    reload.last_error = error;
    reload.failed++;
    spdlog::error("config reload ({}) failed: still serving version {}", why, reload.version);
    return error.empty() ? std::string("rejected") : error;
  }
  reload.last_error.clear();
  local_sources = std::move(local);
  reload.ok++;
  reload.version++;
  ApplySettings(next);
  // Clusters the files did not change keep their objects, and with them
  // their health, stats and the workers' balancers.
  InstallBase(config::RouteTable::Reuse(*base, *mesh.table));
  spdlog::info("config reloaded ({}): version {}", why, reload.version);
  return "";
}

void Runtime::Impl::ApplySettings(config::GatewayConfig next) {
  const bool level_changed = next.log_level != settings.log_level;
  const bool checks_changed = !SameHealthChecks(next, settings);
  const bool paths_changed =
      next.mesh_paths != settings.mesh_paths || next.pod_info_file != settings.pod_info_file;
  settings = std::move(next);
  if (level_changed) {
    // A level set through POST /logging stays until the file changes it.
    if (auto level = base::ParseLogLevel(settings.log_level)) spdlog::set_level(*level);
    spdlog::info("log level set to {} by meshgate.yaml", settings.log_level);
  }
  if (checks_changed) StartHealthChecks();
  if (on_settings) on_settings(settings);
  // The same watcher, other directories: it is never torn down while it runs.
  if (paths_changed && watcher) watcher->SetPaths(WatchedPaths());
}

void Runtime::Impl::InstallBase(RouteTablePtr next) {
  base = next;
  if (dns) return dns->SetBase(std::move(next));
  InstallResolved(std::move(next), std::nullopt);
}

void Runtime::Impl::InstallResolved(RouteTablePtr resolved, std::optional<std::vector<uint32_t>> changed) {
  // A reload (files, control, the API server) that kept every cluster's name
  // and id changed only some clusters: it costs those clusters, as an
  // endpoint update does, and every other cluster's state carries on.
  if (!changed) changed = ChangedClusters(*table, *resolved);
  if (changed) return InstallChanged(std::move(resolved), *changed);
  // Ejections survive reloads and DNS updates; active-check verdicts are
  // carried by the checker itself. Unchanged clusters share their state.
  health = std::make_shared<lb::HealthTable>(*resolved, *table, *health);
  current_stats = cluster_stats.StatsFor(*resolved, *table, current_stats);
  table = std::move(resolved);
  outlier_sweep.Reset();
  if (checker) checker->SetTable(table, health);
  PublishSnapshot();
}

// O(changed clusters): ids, the index and every other cluster's state stand.
void Runtime::Impl::InstallChanged(RouteTablePtr resolved, const std::vector<uint32_t>& changed) {
  bool same_tick = true;
  for (const uint32_t id : changed) {
    const config::Cluster& before = table->clusters()[id];
    const config::Cluster& next = resolved->clusters()[id];
    health = health->WithCluster(next, before);
    current_stats = cluster_stats.WithCluster(current_stats, next);
    same_tick = same_tick && next.policy.connection_pool == before.policy.connection_pool;
  }
  table = std::move(resolved);
  if (checker) checker->SetTable(table, health);
  PublishSnapshot(same_tick);
}

absl::Status Runtime::Impl::SetEndpoints(const std::string& name, std::vector<config::Endpoint> endpoints) {
  const config::Cluster* current = base->FindByName(name);
  if (current == nullptr) return absl::NotFoundError("no cluster " + name);
  for (const config::Endpoint& e : endpoints) {
    if (e.address.empty() || e.port == 0) {
      return absl::InvalidArgumentError("cluster " + name + ": an endpoint needs an IP address and a port");
    }
  }
  auto next = std::make_shared<config::Cluster>(*current);  // workers read `current`: a copy
  next->endpoints = std::move(endpoints);
  base = base->WithCluster(std::shared_ptr<const config::Cluster>(std::move(next)));
  if (dns) {
    dns->UpdateBase(base, name);
  } else {
    InstallChanged(base, {current->id});
  }
  return absl::OkStatus();
}

void Runtime::Impl::PublishSnapshot(bool same_tick) {
  auto next = std::make_shared<Snapshot>();
  next->version = reload.version;
  next->sequence = ++sequence;
  next->table = table;
  next->health = health;
  next->cluster_stats = current_stats.clusters;
  next->endpoint_stats = current_stats.endpoints;
  next->policy_denied = policy_stats.ForTable(*table);
  next->settings = DataPathSettingsOf(settings);
  next->balancer = lb::BalancerOptions{settings.locality};
  // The tick depends on the idle timeout too, which a reload may change.
  same_tick = same_tick && snapshot && snapshot->settings.idle_timeout == next->settings.idle_timeout;
  next->sweep_tick = same_tick ? snapshot->sweep_tick : SweepTick(*table, next->settings);
  snapshot = next;
  if (publish) publish(std::move(next));
}

absl::Status Runtime::SetEndpoints(const std::string& cluster, std::vector<config::Endpoint> endpoints) {
  return impl_->SetEndpoints(cluster, std::move(endpoints));
}

std::string Runtime::ApplyKubeObjects(const std::vector<config::MeshSource>& sources, const std::string& why) {
  return impl_->OnKube(sources, why);
}

bool Runtime::ApplyKubeEndpoints(const kubemesh::EndpointChange& change, const std::string& why) {
  return impl_->OnKubeEndpoints(change, why);
}

void Runtime::SetTable(RouteTablePtr next) { impl_->InstallBase(config::RouteTable::Reuse(*impl_->base, *next)); }

const config::GatewayConfig& Runtime::settings() const { return impl_->settings; }
const ReloadStatus& Runtime::reload_status() const { return impl_->reload; }
const ControlStatus* Runtime::control_status() const { return impl_->control ? &impl_->control->status() : nullptr; }
const KubeStatus* Runtime::kube_status() const { return impl_->kube ? &impl_->kube->status() : nullptr; }
const DnsStats* Runtime::dns_stats() const { return impl_->resolver ? &impl_->resolver->stats() : nullptr; }
const lb::HealthCheckStats* Runtime::health_check_stats() const {
  return impl_->checker ? &impl_->checker->counters() : nullptr;
}
std::vector<std::shared_ptr<ClusterStats>> Runtime::cluster_stats() const { return impl_->cluster_stats.All(); }
std::vector<std::pair<std::string, uint64_t>> Runtime::policy_denied() const { return impl_->policy_stats.All(); }
std::vector<lb::ClusterView> Runtime::Clusters() const { return lb::Describe(*impl_->table, *impl_->health); }

}  // namespace meshgate::proxy
