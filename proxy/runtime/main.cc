// meshgate: command line, config loading, and the gateway's life cycle.
#include <sys/resource.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "base/duration.h"
#include "config/settings/gateway_config.h"
#include "config/mesh/mesh_loader.h"
#include "proxy/runtime/gateway.h"
#include "base/io/http_server.h"
#include "base/logging.h"
#include "spdlog/spdlog.h"

namespace po = boost::program_options;
using namespace meshgate;

namespace {

constexpr const char* kUsage =
    "Usage: meshgate [--config FILE] [--mesh PATH]... [options]\n"
    "       meshgate --check [--config FILE] [--mesh PATH]...\n\n"
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

}  // namespace

int main(int argc, char** argv) {
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
      ("probe", po::value<std::string>()->value_name("IP:PORT"),
       "GET /healthz/ready there and exit 0 if it answers 200 (container HEALTHCHECK)")
      ("check", "validate config and mesh, print the route table, exit 0 (ok) or 1 (errors)");
  // clang-format on
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

  if (vm.count("probe")) {
    const int status = io::HttpCall(vm["probe"].as<std::string>(), "GET", "/healthz/ready", 2000).status;
    if (status != 200) std::cerr << "meshgate: probe: " << (status < 0 ? std::string("no answer") : std::to_string(status)) << "\n";
    return status == 200 ? 0 : 1;
  }
  config::GatewayConfig cfg;
  if (vm.count("config")) {
    auto loaded = config::LoadGatewayConfig(vm["config"].as<std::string>());
    if (!loaded.ok()) {
      std::cerr << "meshgate: " << loaded.status().message() << "\n";
      return 1;
    }
    cfg = *std::move(loaded);
  }
  if (vm.count("mesh")) cfg.mesh_paths = vm["mesh"].as<std::vector<std::string>>();
  for (const auto& [flag, out] : {std::pair<const char*, std::string*>{"admin", &cfg.admin},
                                  {"metrics", &cfg.metrics}, {"readiness", &cfg.readiness}}) {
    if (!vm.count(flag)) continue;
    const std::string value = vm[flag].as<std::string>();
    if (value == "off") {
      out->clear();
      continue;
    }
    if (auto parsed = base::ParseListenAddress(value); !parsed.ok()) {
      std::cerr << "meshgate: --" << flag << " " << parsed.status().message() << "\n";
      return 2;
    }
    *out = value;
  }
  for (const auto& [flag, out] :
       {std::pair<const char*, std::chrono::milliseconds*>{"drain-delay", &cfg.drain.delay},
        {"drain-time", &cfg.drain.time}}) {
    if (!vm.count(flag)) continue;
    auto d = base::ParseDuration(vm[flag].as<std::string>());
    if (!d.ok()) {
      std::cerr << "meshgate: --" << flag << ": " << d.status().message() << "\n";
      return 2;
    }
    *out = *d;
  }
  if (vm.count("access-log")) {
    const std::string value = vm["access-log"].as<std::string>();
    cfg.access_log.path = value == "off" ? "" : value;
  }
  if (vm.count("listen")) {
    cfg.listen = vm["listen"].as<std::string>();
    if (auto parsed = base::ParseListenAddress(cfg.listen); !parsed.ok()) {
      std::cerr << "meshgate: --listen " << parsed.status().message() << "\n";
      return 2;
    }
  }
  if (vm.count("threads")) {
    cfg.threads = vm["threads"].as<int>();
    if (cfg.threads < 0 || cfg.threads > 256) {
      std::cerr << "meshgate: --threads must be 0..256 (0 = one per core)\n";
      return 2;
    }
  }
  if (vm.count("log-level")) cfg.log_level = vm["log-level"].as<std::string>();
  if (vm.count("locality")) {
    cfg.locality = vm["locality"].as<std::string>();
    if (auto problem = config::GatewayLocalityProblem(cfg.locality)) {
      std::cerr << "meshgate: --locality \"" << cfg.locality << "\" " << *problem << "\n";
      return 2;
    }
  }
  if (vm.count("control")) {
    cfg.control.url = vm["control"].as<std::string>();
    if (auto parsed = config::ParseControlUrl(cfg.control.url); !parsed.ok()) {
      std::cerr << "meshgate: --control " << parsed.status().message() << "\n";
      return 2;
    }
  }
  if (vm.count("control-ca")) cfg.control.ca_file = vm["control-ca"].as<std::string>();
  if (vm.count("control-cluster")) cfg.control.cluster = vm["control-cluster"].as<std::string>();
  const auto log_level = base::ParseLogLevel(cfg.log_level);
  if (log_level) base::SetupLogging("meshgate", *log_level);
  if (!log_level) {
    std::cerr << "meshgate: unknown log level \"" << cfg.log_level << "\"\n";
    return 2;
  }
  if (cfg.mesh_paths.empty() && cfg.control.url.empty()) {
    std::cerr << "meshgate: no mesh resources: pass --mesh PATH or --control URL, or list them under "
                 "'mesh:' or set 'control:' in --config\n";
    return 2;
  }

  // Gateways export hosts through servers on meshgate's own listener port.
  config::MeshLoadOptions load_options;
  load_options.gateway_namespace = config::GatewayNamespace(cfg);
  load_options.root_namespace = cfg.root_namespace;
  load_options.cluster_domain = cfg.cluster_domain;
  if (auto listen = base::ParseListenAddress(cfg.listen); listen.ok() && listen->port != 0) {
    load_options.listener_port = listen->port;
  }
  // The mesh files, plus the control component's resources once it answers.
  auto load_mesh = [&cfg, &load_options](const std::string& control) {
    config::MeshSources sources = config::ReadMeshSources(cfg.mesh_paths);
    if (!control.empty()) sources.sources.push_back({"control " + cfg.control.url, control, ""});
    return config::LoadMeshSources(sources, cfg.sni_rewrites, load_options);
  };
  const config::MeshLoadResult mesh = load_mesh("");
  // With only a control component there is nothing to warn about yet.
  if (!cfg.mesh_paths.empty()) {
    for (const auto& w : mesh.warnings) std::cerr << "warning: " << w << "\n";
  }
  for (const auto& e : mesh.errors) std::cerr << "error: " << e << "\n";
  if (!mesh.errors.empty() || !mesh.table) {
    std::cerr << "meshgate: configuration has " << mesh.errors.size() << " error(s)\n";
    return 1;
  }
  if (vm.count("check")) {
    std::cout << mesh.table->Describe();
    std::cout << "configuration OK: " << mesh.resources_loaded << " resource(s), "
              << mesh.table->clusters().size() << " cluster(s)\n";
    return 0;
  }

  RaiseFdLimit();
  proxy::Gateway gateway(cfg, mesh.table);
  if (auto status = gateway.Bind(); !status.ok()) {
    spdlog::critical("{}", std::string(status.message()));
    return 1;
  }
  spdlog::info("meshgate {} serving {} cluster(s) from {} resource(s)", MESHGATE_VERSION,
               mesh.table->clusters().size(), mesh.resources_loaded);
  // Reloads re-read the same mesh paths with the same rewrite rules; listener
  // and thread settings need a restart.
  proxy::Gateway::Reloader reloader;
  reloader.watch_paths = cfg.mesh_paths;
  reloader.load = [&load_mesh](const std::string& why, const std::string& control,
                               std::string& error) -> std::shared_ptr<const config::RouteTable> {
    const config::MeshLoadResult next = load_mesh(control);
    for (const auto& w : next.warnings) spdlog::warn("{}", w);
    for (const auto& e : next.errors) spdlog::error("{}", e);
    if (!next.errors.empty()) {
      for (const auto& e : next.errors) error += (error.empty() ? "" : "\n") + e;
      return nullptr;
    }
    return next.table;
  };
  proxy::DnsSettings dns;
  dns.servers = cfg.dns.servers;
  dns.min_ttl = cfg.dns.min_ttl;
  dns.max_ttl = cfg.dns.max_ttl;
  if (vm.count("dns-server")) dns.servers = vm["dns-server"].as<std::vector<std::string>>();
  if (vm.count("dns-min-ttl")) {
    auto ttl = base::ParseDuration(vm["dns-min-ttl"].as<std::string>());
    if (!ttl.ok()) {
      spdlog::critical("--dns-min-ttl: {}", std::string(ttl.status().message()));
      return 2;
    }
    dns.min_ttl = *ttl;
  }
  gateway.Run(/*handle_signals=*/true, &reloader, dns);
  spdlog::info("stats: {}", gateway.StatsSummary());
  spdlog::info("shutdown complete");
  return 0;
}
