// meshgate: command line, config loading, and the gateway's life cycle.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "config/settings/gateway_config.h"
#include "base/address.h"
#include "base/duration.h"
#include "config/mesh/mesh_loader.h"
#include "proxy/runtime/gateway.h"
#include "proxy/runtime/runtime.h"
#include "base/io/http_server.h"
#include "base/logging.h"
#include "spdlog/spdlog.h"

namespace po = boost::program_options;
using namespace meshgate;

namespace {

constexpr const char* kUsage =
    "Usage: meshgate [--config FILE] [--mesh PATH]... [options]\n"
    "       meshgate --check [--config FILE] [--mesh PATH]...\n"
    "       meshgate --probe [--config FILE] [--readiness IP:PORT]\n\n"
    "An SNI-aware L4 gateway: routes TLS by the ClientHello's server name to\n"
    "the endpoints of Istio ServiceEntries, without terminating TLS.\n\n"
    "Flags override the config file.\n";

void RaiseFdLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

po::options_description Options() {
  po::options_description opts("Options");
  // clang-format off
  opts.add_options()
      ("help,h", "print this help and exit")
      ("version", "print the version and exit")
      ("config,c", po::value<std::string>()->value_name("FILE"), "meshgate's own YAML config")
      ("mesh,m", po::value<std::vector<std::string>>()->value_name("PATH")->composing(),
       "Istio/Kubernetes YAML file or directory (repeatable; replaces the config's list)")
      ("listen,l", po::value<std::string>()->value_name("IP:PORT"), "listener address (default 0.0.0.0:15443)")
      ("threads,t", po::value<int>()->value_name("N"), "worker threads (default: one per core)")
      ("log-level", po::value<std::string>()->value_name("LEVEL"), "trace|debug|info|warn|error|off")
      ("locality", po::value<std::string>()->value_name("REGION/ZONE/SUBZONE"),
       "the gateway's own locality, for localityLbSetting (overrides the config file)")
      ("dns-server", po::value<std::vector<std::string>>()->value_name("IP[:PORT]")->composing(),
       "DNS server for resolution: DNS clusters (repeatable; default /etc/resolv.conf)")
      ("dns-min-ttl", po::value<std::string>()->value_name("DURATION"),
       "re-resolve no more often than this, whatever the TTL (default 1s)")
      ("admin", po::value<std::string>()->value_name("IP:PORT|off"), "admin API (default 127.0.0.1:15000)")
      ("metrics", po::value<std::string>()->value_name("IP:PORT|off"),
       "Prometheus /stats/prometheus (default 0.0.0.0:15090)")
      ("readiness", po::value<std::string>()->value_name("IP:PORT|off"),
       "readiness /healthz/ready (default 0.0.0.0:15021)")
      ("drain-delay", po::value<std::string>()->value_name("DURATION"),
       "after SIGTERM, keep accepting this long before closing listeners (default 5s)")
      ("drain-time", po::value<std::string>()->value_name("DURATION"),
       "then give open sessions this long to finish (default 30s)")
      ("access-log", po::value<std::string>()->value_name("PATH|stdout|off"),
       "one JSON line per connection (default stdout)")
      ("control", po::value<std::string>()->value_name("URL"),
       "follow a control component (meshgatectl serve): http[s]://HOST:PORT (overrides the config's control.url)")
      ("control-ca", po::value<std::string>()->value_name("FILE"), "CA file that signed the control component's certificate")
      ("control-cluster", po::value<std::string>()->value_name("NAME"), "the cluster to ask for (default: clusterId)")
      ("kubeconfig", po::value<std::string>()->value_name("PATH"),
       "follow the Kubernetes API server of this kubeconfig (overrides the config's kubernetes:)")
      ("kube-context", po::value<std::string>()->value_name("NAME"), "the kubeconfig context (default: current-context)")
      ("in-cluster", "follow the Kubernetes API server with the pod's service account")
      ("probe", "GET the config's readiness endpoint (--config, --readiness), exit 0 on 200, 1 otherwise "
       "(container HEALTHCHECK)")
      ("takeover", po::value<std::string>()->value_name("PATH"),
       "take the listening sockets of the meshgate serving them at this unix socket, then it drains "
       "(README \"Upgrades\"); missing or stale: a normal start")
      ("check", "validate config and mesh, print the route table, exit 0 (ok) or 1 (errors)");
  // clang-format on
  return opts;
}

absl::Status FlagError(const std::string& text) { return absl::InvalidArgumentError(text); }

// --admin, --metrics, --readiness: IP:PORT or "off".
absl::Status ApplyEndpointFlags(const po::variables_map& vm, config::GatewayConfig& cfg) {
  for (const auto& [flag, out] : {std::pair<const char*, std::string*>{"admin", &cfg.admin},
                                  {"metrics", &cfg.metrics}, {"readiness", &cfg.readiness}}) {
    if (!vm.count(flag)) continue;
    const std::string value = vm[flag].as<std::string>();
    if (value == "off") {
      out->clear();
      continue;
    }
    if (auto parsed = base::ParseListenAddress(value); !parsed.ok()) {
      return FlagError(fmt::format("--{} {}", flag, std::string(parsed.status().message())));
    }
    *out = value;
  }
  return absl::OkStatus();
}

absl::Status ApplyDurationFlags(const po::variables_map& vm, config::GatewayConfig& cfg) {
  for (const auto& [flag, out] : {std::pair<const char*, std::chrono::milliseconds*>{"drain-delay", &cfg.drain.delay},
                                  {"drain-time", &cfg.drain.time},
                                  {"dns-min-ttl", &cfg.dns.min_ttl}}) {
    if (!vm.count(flag)) continue;
    auto d = base::ParseDuration(vm[flag].as<std::string>());
    if (!d.ok()) return FlagError(fmt::format("--{}: {}", flag, std::string(d.status().message())));
    *out = *d;
  }
  return absl::OkStatus();
}

absl::Status ApplyListenerFlags(const po::variables_map& vm, config::GatewayConfig& cfg) {
  if (vm.count("listen")) {
    cfg.listen = vm["listen"].as<std::string>();
    if (auto parsed = base::ParseListenAddress(cfg.listen); !parsed.ok()) {
      return FlagError(fmt::format("--listen {}", std::string(parsed.status().message())));
    }
  }
  if (vm.count("threads")) {
    cfg.threads = vm["threads"].as<int>();
    if (cfg.threads < 0 || cfg.threads > 256) return FlagError("--threads must be 0..256 (0 = one per core)");
  }
  if (vm.count("access-log")) {
    const std::string value = vm["access-log"].as<std::string>();
    cfg.access_log.path = value == "off" ? "" : value;
  }
  return absl::OkStatus();
}

// --kubeconfig PATH [--kube-context NAME] or --in-cluster replace meshgate.yaml's kubernetes:.
absl::Status ApplyKubeFlags(const po::variables_map& vm, config::GatewayConfig& cfg) {
  if (vm.count("kubeconfig") && vm.count("in-cluster")) return FlagError("pass --kubeconfig or --in-cluster, not both");
  if (vm.count("kube-context") && !vm.count("kubeconfig") && cfg.kubernetes.kubeconfig.empty()) {
    return FlagError("--kube-context needs a kubeconfig (--kubeconfig PATH)");
  }
  if (vm.count("kubeconfig")) {
    cfg.kubernetes = {};
    cfg.kubernetes.kubeconfig = vm["kubeconfig"].as<std::string>();
  }
  if (vm.count("in-cluster")) cfg.kubernetes = {.in_cluster = true};
  if (vm.count("kube-context")) cfg.kubernetes.context = vm["kube-context"].as<std::string>();
  return absl::OkStatus();
}

absl::Status ApplyMeshFlags(const po::variables_map& vm, config::GatewayConfig& cfg) {
  if (vm.count("mesh")) cfg.mesh_paths = vm["mesh"].as<std::vector<std::string>>();
  if (vm.count("log-level")) cfg.log_level = vm["log-level"].as<std::string>();
  if (vm.count("dns-server")) cfg.dns.servers = vm["dns-server"].as<std::vector<std::string>>();
  if (vm.count("locality")) {
    cfg.locality = vm["locality"].as<std::string>();
    if (auto problem = config::GatewayLocalityProblem(cfg.locality)) {
      return FlagError(fmt::format("--locality \"{}\" {}", cfg.locality, *problem));
    }
  }
  if (vm.count("control")) {
    cfg.control.url = vm["control"].as<std::string>();
    if (auto parsed = config::ParseControlUrl(cfg.control.url); !parsed.ok()) {
      return FlagError(fmt::format("--control {}", std::string(parsed.status().message())));
    }
  }
  if (vm.count("control-ca")) cfg.control.ca_file = vm["control-ca"].as<std::string>();
  if (vm.count("control-cluster")) cfg.control.cluster = vm["control-cluster"].as<std::string>();
  return ApplyKubeFlags(vm, cfg);
}

// Flags override the config file, at startup and on every reload.
absl::Status ApplyFlags(const po::variables_map& vm, config::GatewayConfig& cfg) {
  for (auto* apply : {&ApplyEndpointFlags, &ApplyDurationFlags, &ApplyListenerFlags, &ApplyMeshFlags}) {
    if (auto status = apply(vm, cfg); !status.ok()) return status;
  }
  if (!base::ParseLogLevel(cfg.log_level)) return FlagError(fmt::format("unknown log level \"{}\"", cfg.log_level));
  if (cfg.mesh_paths.empty() && cfg.control.url.empty() && !cfg.kubernetes.enabled()) {
    return FlagError("no mesh resources: pass --mesh PATH, --control URL, --kubeconfig PATH or --in-cluster, or "
                     "list them under 'mesh:' or set 'control:' or 'kubernetes:' in --config");
  }
  return absl::OkStatus();
}

// meshgate.yaml (when given) with the flags applied; `file_error` tells a
// file problem (exit 1) from a flag problem (exit 2).
absl::StatusOr<config::GatewayConfig> LoadSettings(const po::variables_map& vm, bool* file_error = nullptr) {
  config::GatewayConfig cfg;
  if (vm.count("config")) {
    auto loaded = config::LoadGatewayConfig(vm["config"].as<std::string>());
    if (!loaded.ok()) {
      if (file_error != nullptr) *file_error = true;
      return loaded.status();
    }
    cfg = *std::move(loaded);
  }
  if (auto status = ApplyFlags(vm, cfg); !status.ok()) return status;
  return cfg;
}

// Where a local client reaches a listener bound to `listen`: a wildcard
// address means this host's loopback of the same family.
absl::StatusOr<std::string> LocalAddressOf(const std::string& listen) {
  auto parsed = base::ParseListenAddress(listen);
  if (!parsed.ok()) return parsed.status();
  if (parsed->port == 0) return FlagError("port 0 (picked by the kernel) cannot be probed");
  std::string ip = parsed->ip;
  if (ip == "0.0.0.0") ip = "127.0.0.1";
  if (ip == "::") ip = "::1";
  return base::FormatIpPort(ip, parsed->port);
}

// `meshgate --probe`, the container HEALTHCHECK. The readiness address comes
// from the config the gateway itself reads (--config, then --readiness), so
// the check follows `readiness:` wherever it moves instead of hard-coding a
// port. Exit codes as Docker's HEALTHCHECK defines them: 0 healthy, 1
// unhealthy, 2 reserved (https://docs.docker.com/reference/dockerfile/#healthcheck),
// so every failure, a config problem included, is 1.
int Probe(const po::variables_map& vm) {
  auto fail = [](const std::string& why) {
    std::cerr << "meshgate: probe: " << why << "\n";
    return 1;
  };
  config::GatewayConfig cfg;
  if (vm.count("config")) {
    auto loaded = config::LoadGatewayConfig(vm["config"].as<std::string>());
    if (!loaded.ok()) return fail(std::string(loaded.status().message()));
    cfg = *std::move(loaded);
  }
  if (auto status = ApplyEndpointFlags(vm, cfg); !status.ok()) return fail(std::string(status.message()));
  if (cfg.readiness.empty()) return fail("readiness is off (readiness: off or --readiness off): nothing to probe");
  auto address = LocalAddressOf(cfg.readiness);
  if (!address.ok()) return fail(fmt::format("readiness {}: {}", cfg.readiness, std::string(address.status().message())));
  const std::string url = fmt::format("http://{}/healthz/ready", *address);
  const io::HttpResult result = io::HttpCall(*address, "GET", "/healthz/ready", 2000);
  if (result.status < 0) return fail(fmt::format("{}: no answer ({})", url, result.error));
  // The body says why (starting, draining, ...); one bounded line of it.
  std::string why = result.body.substr(0, std::min(result.body.find('\n'), size_t{200}));
  if (result.status != 200) return fail(fmt::format("{}: HTTP {} {}", url, result.status, why));
  std::cout << "meshgate: probe: " << url << ": HTTP 200 " << why << "\n";
  return 0;
}

// How this gateway identifies itself and what it accepts, for --check.
std::string DescribeGateway(const config::GatewayConfig& cfg) {
  std::string labels;
  for (const auto& [key, value] : cfg.labels) labels += fmt::format("{}{}={}", labels.empty() ? "" : ",", key, value);
  const std::vector<std::string> view = config::RequestedNetworkView(cfg);
  return fmt::format(
      "gateway: namespace {}, labels {{{}}}{}\n"
      "  network {}, requested network view [{}]\n"
      "  ALPN: {}; SNI: {}\n",
      config::GatewayNamespace(cfg), labels,
      cfg.pod_info_file.empty() ? "" : fmt::format(" (with {})", cfg.pod_info_file),
      config::GatewayNetwork(cfg).empty() ? "(unset)" : config::GatewayNetwork(cfg), fmt::join(view, ","),
      cfg.require_istio_alpn ? "Istio mTLS ALPNs only (istio-peer-exchange, istio, istio-http/1.0, "
                               "istio-http/1.1, istio-h2)"
                             : "any (requireIstioAlpn: false)",
      cfg.plain_host_sni ? "outbound_ form and plain host (plainHostSni: true)" : "outbound_ form only");
}

// Looser than Istio's gateway: said once at startup, loudly.
void WarnLooserThanIstio(const config::GatewayConfig& cfg) {
  if (!cfg.require_istio_alpn) {
    spdlog::warn("requireIstioAlpn: false: connections with any ALPN are relayed; Istio's gateway accepts only "
                 "its mTLS ALPNs (istio-peer-exchange, istio, istio-http/1.0, istio-http/1.1, istio-h2)");
  }
  if (cfg.plain_host_sni) {
    spdlog::warn("plainHostSni: true: plain-host SNI is routed; Istio's gateway matches only the outbound_ form");
  }
}

// The first load, printed for a person (and for --check); null on errors.
std::shared_ptr<const config::RouteTable> LoadFirstTable(const config::GatewayConfig& cfg, bool check,
                                                         size_t* resources = nullptr) {
  const config::MeshLoadResult mesh = proxy::LoadMeshFor(cfg, "");
  // With only a control component there is nothing to warn about yet.
  if (!cfg.mesh_paths.empty()) {
    for (const auto& w : mesh.warnings) std::cerr << "warning: " << w << "\n";
  }
  for (const auto& e : mesh.errors) std::cerr << "error: " << e << "\n";
  if (!mesh.errors.empty() || !mesh.table) {
    std::cerr << "meshgate: configuration has " << mesh.errors.size() << " error(s)\n";
    return nullptr;
  }
  if (check) {
    std::cout << DescribeGateway(cfg) << mesh.table->Describe();
    // Fail closed, like Istio: no Gateway selecting this gateway means
    // nothing is served. With only a control component the routes come later.
    if (const std::string& closed = mesh.table->view().closed_reason;
        !closed.empty() && (!cfg.mesh_paths.empty() || (cfg.control.url.empty() && !cfg.kubernetes.enabled()))) {
      std::cerr << "error: " << closed << "\n";
      return nullptr;
    }
    std::cout << "configuration OK: " << mesh.resources_loaded << " resource(s), " << mesh.table->clusters().size()
              << " cluster(s)\n";
  }
  if (resources != nullptr) *resources = mesh.resources_loaded;
  return mesh.table;
}

int Serve(const po::variables_map& vm, config::GatewayConfig cfg, std::shared_ptr<const config::RouteTable> table,
          size_t resources) {
  RaiseFdLimit();
  WarnLooserThanIstio(cfg);
  if (auto status = kubemesh::CheckKubeCredentials(cfg.kubernetes); !status.ok()) {
    spdlog::critical("kubernetes: {}", std::string(status.message()));
    return 1;
  }
  if (const std::string& closed = table->view().closed_reason; !closed.empty() && !cfg.mesh_paths.empty()) {
    spdlog::error("{}", closed);
  }
  const size_t clusters = table->clusters().size();
  proxy::Gateway::Options options;
  options.settings = std::move(cfg);
  options.table = std::move(table);
  if (vm.count("config")) options.settings_path = vm["config"].as<std::string>();
  if (vm.count("takeover")) options.takeover_from = vm["takeover"].as<std::string>();
  // Reloads re-read meshgate.yaml with the same flags; the listener, threads
  // and ops endpoints need a restart.
  options.load_settings = [vm] { return LoadSettings(vm); };
  proxy::Gateway gateway(std::move(options));
  if (auto status = gateway.Bind(); !status.ok()) {
    spdlog::critical("{}", std::string(status.message()));
    return 1;
  }
  spdlog::info("meshgate {} serving {} cluster(s) from {} resource(s)", MESHGATE_VERSION, clusters, resources);
  gateway.Run(/*handle_signals=*/true);
  spdlog::info("stats: {}", gateway.StatsSummary());
  spdlog::info("shutdown complete");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const po::options_description opts = Options();
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "meshgate: " << e.what() << "\nTry 'meshgate --help'.\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << kUsage << "\n" << opts;
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "meshgate " << MESHGATE_VERSION << "\n";
    return 0;
  }
  if (vm.count("probe")) return Probe(vm);
  bool file_error = false;
  auto cfg = LoadSettings(vm, &file_error);
  if (!cfg.ok()) {
    std::cerr << "meshgate: " << cfg.status().message() << "\n";
    return file_error ? 1 : 2;
  }
  base::SetupLogging("meshgate", *base::ParseLogLevel(cfg->log_level));
  size_t resources = 0;
  auto table = LoadFirstTable(*cfg, vm.count("check") > 0, &resources);
  if (!table) return 1;
  if (vm.count("check")) return 0;
  return Serve(vm, *std::move(cfg), std::move(table), resources);
}
