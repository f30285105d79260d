// The runtime: the one owner of every source of change. meshgate.yaml and the
// mesh files (inotify and SIGHUP), the control component, DNS answers, active
// health checks and the outlier sweep all end here, in one immutable Snapshot
// (route table, endpoint health, data-path settings) posted to the workers.
// Runs on the control loop only; nothing here ever runs on a worker.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/kube/kube_source.h"
#include "config/mesh/mesh_loader.h"
#include "config/settings/gateway_config.h"
#include "proxy/runtime/control_source.h"
#include "proxy/runtime/dns_resolver.h"
#include "proxy/runtime/health_checker.h"
#include "proxy/snapshot.h"

namespace boost::asio {
class io_context;
}

namespace meshgate::proxy {

// The API server follower lives in config/kube (meshgatectl serve runs it too).
using kubemesh::KubeSource;
using kubemesh::KubeStatus;

// meshgate.yaml plus the command line's overrides, read again on each reload.
using SettingsLoader = std::function<absl::StatusOr<config::GatewayConfig>()>;

// Reads the settings' mesh paths plus `control` (the control component's
// resources, "" when none) and `kube` (the API server's objects) with the
// settings' namespaces, rewrites and port.
config::MeshLoadResult LoadMeshFor(const config::GatewayConfig& settings, const std::string& control,
                                   const std::vector<config::MeshSource>& kube = {});
// The loader options the settings imply (namespaces, labels, network, port).
config::MeshLoadOptions MeshLoadOptionsFor(const config::GatewayConfig& settings);

// The data path's part of meshgate.yaml.
DataPathSettings DataPathSettingsOf(const config::GatewayConfig& settings);

// What the admin API reports about reloads.
struct ReloadStatus {
  uint64_t version = 1;  // the snapshot version published last
  uint64_t ok = 0;
  uint64_t failed = 0;
  std::string last_error;  // "" after a good reload
  double last_time = 0;    // Unix seconds; 0: none yet
};

class Runtime {
 public:
  using Publish = std::function<void(std::shared_ptr<const Snapshot>)>;

  // `settings_path`: meshgate.yaml ("" when there is none); `load_settings`
  // reads it again with the flags applied (null: settings never change).
  Runtime(boost::asio::io_context& io, config::GatewayConfig settings, std::shared_ptr<const config::RouteTable> table,
          std::string settings_path, SettingsLoader load_settings);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  std::shared_ptr<const Snapshot> snapshot() const;
  // Starts every source of change; from now on each new snapshot goes to
  // `publish`, and the settings of each good reload to `on_settings` (for
  // what lives outside the snapshot: the pipe cap, the access log's sampling).
  void Start(Publish publish, std::function<void(const config::GatewayConfig&)> on_settings = nullptr);
  // Re-reads meshgate.yaml and the mesh now (what SIGHUP does).
  void Reload(const std::string& why);

  // Incremental updates, for a source that knows what changed (a Kubernetes
  // EndpointSlice watch): cluster `cluster`'s endpoints are now `endpoints`.
  // Publishes a snapshot in which only that cluster differs: every other
  // cluster object, its health and outlier state, its stats and the workers'
  // balancers carry over; open sessions keep their snapshot. The work is the
  // cluster's size, not the table's. The snapshot's sequence moves, its
  // config version does not (like a DNS answer). A later reload of the
  // files replaces what this set. NotFound when no cluster has that name;
  // InvalidArgument for an endpoint without an IP literal.
  absl::Status SetEndpoints(const std::string& cluster, std::vector<config::Endpoint> endpoints);
  // The API server's objects (what KubeSource hands over; public for tests
  // and benches that drive kubemesh::KubeObjects themselves). The whole
  // set: loaded with the files and installed as a reload; "" or the errors.
  std::string ApplyKubeObjects(const std::vector<config::MeshSource>& sources, const std::string& why);
  // An EndpointSlice/Pod-only batch: the affected Services' clusters are
  // loaded alone (the same loader, from the change's few objects plus the
  // files and the control resources as last loaded) and each one whose
  // content moved is installed as SetEndpoints installs it. False, with
  // nothing changed, when that cannot be exact: a ServiceEntry shares a
  // host, a changed Pod may be selected by a workloadSelector, the small
  // load has errors or yields other clusters than the running ones, or no
  // whole set has loaded yet; the caller then applies the whole set.
  bool ApplyKubeEndpoints(const kubemesh::EndpointChange& change, const std::string& why);
  // A whole new table, as a reload would install it: clusters equal to the
  // running ones (by name and content) are reused, and with them their state.
  void SetTable(std::shared_ptr<const config::RouteTable> table);

  const config::GatewayConfig& settings() const;
  const ReloadStatus& reload_status() const;
  const ControlStatus* control_status() const;  // null: no control component
  const KubeStatus* kube_status() const;        // null: not following an API server
  const DnsStats* dns_stats() const;            // null: no resolver
  const lb::HealthCheckStats* health_check_stats() const;  // null: no checks configured
  std::vector<std::shared_ptr<ClusterStats>> cluster_stats() const;
  // Refusals by AuthorizationPolicy name ("none": no ALLOW policy matched).
  std::vector<std::pair<std::string, uint64_t>> policy_denied() const;
  std::vector<lb::ClusterView> Clusters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshgate::proxy
