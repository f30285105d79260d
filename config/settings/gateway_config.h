// meshgate's own configuration file (not an Istio resource).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/address.h"
#include "base/read_file.h"
#include "config/model/authorization.h"
#include "config/model/route_table.h"
#include "config/settings/kubernetes_config.h"

namespace meshgate::config {

enum class RelayMode { kSplice, kCopy };

struct GatewayConfig {
  std::string listen = "0.0.0.0:15443";      // host:port, [v6]:port
  int threads = 0;                           // 0 = one per core
  std::chrono::milliseconds hello_timeout{5000};
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds idle_timeout{3600 * 1000};
  size_t max_hello_bytes = 16 * 1024;
  int max_connect_attempts = 3;
  RelayMode relay = RelayMode::kSplice;
  // Pipes for splice, over all workers (shared evenly); -1: no limit but the
  // kernel's. Each pins up to 64 KiB of kernel memory while it holds bytes.
  // A flow that finds none copies through a buffer instead (HAProxy's maxpipes).
  int64_t max_pipes = -1;
  std::vector<SniRewrite> sni_rewrites = {{".global", ".svc.cluster.local"}};
  std::vector<std::string> mesh_paths;       // relative paths resolved against the file's dir
  // limits.maxConfigFileBytes / limits.maxConfigBytes: the mesh files' size caps.
  base::ConfigReadLimits config_read_limits;
  std::string log_level = "info";
  // Where the gateway runs, for DestinationRule visibility. Empty: $POD_NAMESPACE
  // (Kubernetes' downward API), else "istio-system". See GatewayNamespace().
  std::string gateway_namespace;
  std::string root_namespace = "istio-system";  // Istio's configRootNamespace
  std::string cluster_domain = "cluster.local";
  // The gateway's own "region/zone/subzone", for locality-aware balancing
  // (localityLbSetting); empty: unknown, balancing ignores locality.
  std::string locality;
  // DNS for resolution: DNS clusters. The command line's --dns-* flags override.
  struct Dns {
    std::vector<std::string> servers;  // "ip", "ip:port" or "[v6]:port"; empty: /etc/resolv.conf
    std::chrono::milliseconds min_ttl{1000};
    std::chrono::milliseconds max_ttl{300000};
  } dns;
  // Active TCP health checks, per cluster host (exact, or "*.suffix"): an
  // endpoint that fails `unhealthy_threshold` connects in a row takes no new
  // connections until it passes `healthy_threshold` in a row.
  struct HealthCheck {
    std::string host;
    uint16_t port = 0;  // 0: every port of the host
    std::chrono::milliseconds interval{5000};
    std::chrono::milliseconds timeout{1000};
    uint32_t healthy_threshold = 1;
    uint32_t unhealthy_threshold = 3;
    std::chrono::milliseconds jitter{0};  // each check waits interval + [0, jitter)
  };
  std::vector<HealthCheck> health_checks;
  // Operations endpoints, each "IP:PORT" or "" (off). Admin defaults to
  // loopback: it can drain the gateway and change its log level.
  std::string admin = "127.0.0.1:15000";
  std::string metrics = "0.0.0.0:15090";    // /stats/prometheus, /metrics
  std::string readiness = "0.0.0.0:15021";  // /healthz/ready
  // Graceful drain on SIGTERM or POST /drain: listeners keep accepting for
  // `delay` (load balancers deregister meanwhile), then close; open sessions
  // get up to `time` to finish, then are closed as "drained".
  struct Drain {
    std::chrono::milliseconds delay{5000};
    std::chrono::milliseconds time{30000};
  } drain;
  // Binary upgrades (README "Upgrades"): the unix socket (mode 0600) where
  // this process hands its listening sockets to a successor started with
  // --takeover. "": none, unless --takeover gave one. Restart-only.
  struct Upgrade {
    std::string socket;
  } upgrade;
  // One JSON line per connection. path: a file, "stdout", or "" (off).
  struct AccessLog {
    std::string path = "stdout";
    double sample_rate = 1.0;  // 0..1
  } access_log;
  // The gateway's own labels, matched by Gateway and AuthorizationPolicy
  // selectors and used for the source_* labels of istio_* metrics. After
  // loading this holds the effective set: the podInfoFile's labels (the
  // Downward API file Kubernetes writes, key="value" per line) overlaid by
  // `labels:` from this file.
  std::map<std::string, std::string> labels;
  std::string pod_info_file;  // "": none
  // Istio's AUTO_PASSTHROUGH accepts only its mTLS ALPNs; false: any ALPN.
  bool require_istio_alpn = true;
  // Accept plain-host SNI ("httpbin.bar.svc.cluster.local") beside Istio's
  // outbound_ form, which is all Istio's gateway matches.
  bool plain_host_sni = false;
  // The gateway's network (network:, else $ISTIO_META_NETWORK, else the
  // topology.istio.io/network label) and the networks it may also dial
  // (requestedNetworkView:, else $ISTIO_META_REQUESTED_NETWORK_VIEW).
  std::string network;
  std::vector<std::string> requested_network_view;
  std::string trust_domain = "cluster.local";
  // Istio's cluster ID (CLUSTER_ID), for destination_cluster in istio_* metrics.
  std::string cluster_id = "Kubernetes";
  // A control component (meshgatectl serve) to follow: its /v1/routes for
  // `cluster` are this gateway's mesh resources, on top of `mesh_paths`.
  struct Control {
    std::string url;      // "" (off), "http://host[:port]" or "https://host[:port]"
    std::string cluster;  // "": cluster_id
    std::string ca_file;  // https: the CA that signed the server; "": system CAs
    bool required = true;  // not ready until the first sync
    std::chrono::milliseconds initial_backoff{250};
    std::chrono::milliseconds max_backoff{30000};
    std::chrono::milliseconds watch_timeout{30000};  // one long poll
  } control;
  // The Kubernetes API server to follow directly (no control component):
  // its Services, Pods, EndpointSlices, Namespaces and Istio resources are
  // mesh resources beside `mesh_paths`. Restart-only.
  using Kubernetes = KubernetesConfig;  // config/settings/kubernetes_config.h, shared with serve.yaml
  Kubernetes kubernetes;
  // limits: overload protection at accept (README "Overload protection").
  // Reloadable; 0 in any field: that check is off (the default).
  struct Limits {
    uint64_t max_connections = 0;         // maxConnections
    uint32_t per_source_connections = 0;  // perSourceConnections
    double accept_rate = 0;               // acceptRate (per second)
    uint32_t accept_burst = 0;            // acceptRate.burst (0: = rate)
    uint64_t memory_bytes = 0;            // memory: RSS, "512Mi"
  } limits;
  // proxyProtocol: {accept: [CIDR...]}: the load balancers whose connections
  // start with a PROXY protocol header (v1 or v2), which is then required;
  // every other source's header is refused (README "PROXY protocol").
  // Reloadable; empty: no header is accepted from anyone.
  struct ProxyProtocol {
    std::vector<IpPrefix> accept;
    std::vector<std::string> accept_text;  // as written, for logs
  } proxy_protocol;
  // upstreamProxyProtocol: [{host, version}]: clusters (by host, exact or
  // "*.suffix") whose endpoints get a PROXY protocol v2 header carrying the
  // client's address before the ClientHello. The first matching entry wins.
  struct UpstreamProxyProtocol {
    std::string host;
    int version = 2;
  };
  std::vector<UpstreamProxyProtocol> upstream_proxy_protocol;
};

// A byte size as Kubernetes writes a quantity: "536870912", "512Mi", "1Gi",
// "500M" (binary Ki Mi Gi Ti, decimal k M G T); nullopt when malformed.
std::optional<uint64_t> ParseByteSize(std::string_view text);

// A control URL split: "https://meshgatectl.istio-system.svc:15180".
using ControlUrl = base::HttpUrl;
absl::StatusOr<ControlUrl> ParseControlUrl(std::string_view url);

// Why a gateway locality ("region[/zone[/subzone]]") is invalid, or nullopt.
std::optional<std::string> GatewayLocalityProblem(std::string_view locality);

// config.network, else $ISTIO_META_NETWORK, else the topology.istio.io/network label.
std::string GatewayNetwork(const GatewayConfig& config);
// config.requested_network_view, else $ISTIO_META_REQUESTED_NETWORK_VIEW
// (comma-separated, as Istio's proxy metadata REQUESTED_NETWORK_VIEW).
std::vector<std::string> RequestedNetworkView(const GatewayConfig& config);

// config.gateway_namespace, else $POD_NAMESPACE, else "istio-system".
std::string GatewayNamespace(const GatewayConfig& config);

// A DNS server address: "ip" (port 53), "ip:port" or "[v6]:port".
absl::Status CheckDnsServer(std::string_view text);

// Parses the YAML file; errors read "path:line: field.path: what is wrong".
absl::StatusOr<GatewayConfig> LoadGatewayConfig(const std::string& path);
absl::StatusOr<GatewayConfig> ParseGatewayConfig(const std::string& yaml, const std::string& name,
                                                 const std::string& base_dir);

}  // namespace meshgate::config
