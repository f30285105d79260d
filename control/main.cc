// meshgatectl: the control component: CA material, cross-cluster
// ServiceEntries, the CoreDNS stanza, and `serve`, which publishes them.
// Exit codes: 0 done, 1 failed, 2 a bad command line (with the usage).
#include <algorithm>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/program_options.hpp>

#include "base/address.h"
#include "base/logging.h"
#include "config/settings/serve_config.h"
#include "control/ca.h"
#include "control/serve.h"
#include "control/serviceentries.h"

namespace po = boost::program_options;

namespace meshgate::control {
namespace {

constexpr char kUsage[] = R"(Usage: meshgatectl ca root --out DIR
       meshgatectl ca intermediate --root DIR --cluster NAME --out DIR
       meshgatectl ca secret --dir DIR
       meshgatectl ca workload --dir DIR --spiffe spiffe://TRUST/ns/NS/sa/SA --out DIR
       meshgatectl ca verify --dir DIR
       meshgatectl ca server --dir DIR (--dns NAME | --ip ADDRESS)... --out DIR
       meshgatectl serviceentries --services PATH --gateway HOST_OR_IP[:PORT] --network NAME
                   [--suffix global] [--namespace istio-system] [--allocations FILE]
       meshgatectl coredns (--server IP[:PORT] [--suffix global] | --config SERVE_YAML [--server IP[:PORT]])
       meshgatectl serve --config FILE [--listen IP:PORT] [--log-level info] [--check]
Common options for root/intermediate/workload: --key-type rsa|ecdsa (default rsa, 4096 bits;
workload keys are ECDSA P-256 like istiod's), --days N, --hours N, --force (overwrite keys).)";

int Fail(const std::string& message) {
  std::cerr << "meshgatectl: " << message << "\n";
  return 1;
}

int Fail(const absl::Status& status) { return Fail(std::string(status.message())); }

// 0, or the failure reported.
int Done(const absl::Status& status) { return status.ok() ? 0 : Fail(status); }

// A bad command line: `line`, then the usage.
int Usage(const std::string& line) {
  std::cerr << line << "\n" << kUsage << "\n";
  return 2;
}

// Parses `args` against `opts` into `vm`; on a bad flag prints why, with the
// usage, and returns false.
bool ParseArgs(const std::string& command, const std::vector<std::string>& args,
               const po::options_description& opts, po::variables_map& vm) {
  try {
    po::store(po::command_line_parser(args).options(opts).run(), vm);
    po::notify(vm);
    return true;
  } catch (const po::error& e) {
    Usage("meshgatectl " + command + ": " + e.what());
    return false;
  }
}

std::string Get(const po::variables_map& vm, const char* name) { return vm[name].as<std::string>(); }

// --- ca ----------------------------------------------------------------------------------

// A flag the `ca` command needs and was not given.
struct MissingFlag : std::invalid_argument {
  explicit MissingFlag(const char* name) : std::invalid_argument(std::string("--") + name + " is required") {}
};

std::string Need(const po::variables_map& vm, const char* name) {
  if (!vm.count(name)) throw MissingFlag(name);
  return Get(vm, name);
}

po::options_description CaFlags() {
  po::options_description opts;
  opts.add_options()("out", po::value<std::string>())("root", po::value<std::string>())(
      "dir", po::value<std::string>())("cluster", po::value<std::string>())(
      "spiffe", po::value<std::string>())("key-type", po::value<std::string>()->default_value("rsa"))(
      "days", po::value<int>())("hours", po::value<int>())("force", po::bool_switch())(
      "dns", po::value<std::vector<std::string>>()->composing())(
      "ip", po::value<std::vector<std::string>>()->composing());
  return opts;
}

// --key-type, --days or --hours, and --force.
absl::StatusOr<CaOptions> CaOptionsFrom(const po::variables_map& vm) {
  CaOptions options;
  options.force = vm["force"].as<bool>();
  const std::string key_type = Get(vm, "key-type");
  if (key_type == "ecdsa") {
    options.key_type = KeyType::kEcdsaP256;
  } else if (key_type != "rsa") {
    return absl::InvalidArgumentError("--key-type must be rsa or ecdsa, got \"" + key_type + "\"");
  }
  if (vm.count("days")) options.validity = std::chrono::hours(24 * vm["days"].as<int>());
  if (vm.count("hours")) options.validity = std::chrono::hours(vm["hours"].as<int>());
  if ((vm.count("days") || vm.count("hours")) && options.validity.count() <= 0) {
    return absl::InvalidArgumentError("the validity must be positive");
  }
  return options;
}

int CaRoot(const po::variables_map& vm, const CaOptions& options) {
  return Done(CreateRoot(Need(vm, "out"), options));
}

int CaIntermediate(const po::variables_map& vm, const CaOptions& options) {
  const std::string root = Need(vm, "root"), cluster = Need(vm, "cluster"), out = Need(vm, "out");
  return Done(CreateIntermediate(root, cluster, out, options));
}

int CaWorkload(const po::variables_map& vm, const CaOptions& options) {
  const std::string dir = Need(vm, "dir"), spiffe = Need(vm, "spiffe"), out = Need(vm, "out");
  return Done(CreateWorkload(dir, spiffe, out, options));
}

int CaServer(const po::variables_map& vm, const CaOptions& options) {
  const std::string dir = Need(vm, "dir"), out = Need(vm, "out");
  std::vector<std::string> names;
  for (const char* flag : {"dns", "ip"}) {
    if (!vm.count(flag)) continue;
    for (const auto& name : vm[flag].as<std::vector<std::string>>()) names.push_back(name);
  }
  return Done(CreateServer(dir, names, out, options));
}

int CaSecret(const po::variables_map& vm, const CaOptions&) {
  auto yaml = CacertsSecret(Need(vm, "dir"));
  if (!yaml.ok()) return Fail(yaml.status());
  std::cout << *yaml;
  return 0;
}

// One line per check; fails when any check does.
int CaVerify(const po::variables_map& vm, const CaOptions&) {
  bool ok = true;
  for (const Check& check : Verify(Need(vm, "dir"))) {
    std::cout << (check.ok ? "ok   " : "FAIL ") << check.name << (check.ok ? "" : ": " + check.detail) << "\n";
    ok = ok && check.ok;
  }
  return ok ? 0 : 1;
}

struct CaCommand {
  std::string_view name;
  int (*run)(const po::variables_map&, const CaOptions&);
};
constexpr CaCommand kCaCommands[] = {
    {"root", CaRoot},     {"intermediate", CaIntermediate}, {"workload", CaWorkload},
    {"server", CaServer}, {"secret", CaSecret},             {"verify", CaVerify},
};

int Ca(const std::string& command, const std::vector<std::string>& args) {
  po::variables_map vm;
  if (!ParseArgs("ca " + command, args, CaFlags(), vm)) return 2;
  auto options = CaOptionsFrom(vm);
  if (!options.ok()) return Fail(options.status());
  const auto it = std::find_if(std::begin(kCaCommands), std::end(kCaCommands),
                               [&](const CaCommand& c) { return c.name == command; });
  if (it == std::end(kCaCommands)) return Usage("meshgatectl: unknown command \"ca " + command + "\"");
  try {
    return it->run(vm, *options);
  } catch (const MissingFlag& e) {
    return Usage("meshgatectl ca " + command + ": " + e.what());
  }
}

// --- serviceentries and coredns ------------------------------------------------------------

// The VIPs --allocations FILE has given so far ("": none, nothing kept).
absl::StatusOr<VipAllocations> LoadVips(const std::string& path) {
  return path.empty() ? absl::StatusOr<VipAllocations>(VipAllocations()) : VipAllocations::Load(path);
}

int ServiceEntriesCommand(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("services", po::value<std::vector<std::string>>()->composing())(
      "gateway", po::value<std::string>())("network", po::value<std::string>()->default_value(""))(
      "suffix", po::value<std::string>()->default_value("global"))(
      "namespace", po::value<std::string>()->default_value("istio-system"))(
      "allocations", po::value<std::string>()->default_value(""));
  po::variables_map vm;
  if (!ParseArgs("serviceentries", args, opts, vm)) return 2;
  if (!vm.count("services") || !vm.count("gateway")) {
    return Usage("meshgatectl serviceentries: --services and --gateway are required");
  }
  ServiceEntryOptions options;
  if (absl::Status s = ParseGateway(Get(vm, "gateway"), options); !s.ok()) return Fail(s);
  options.network = Get(vm, "network");
  options.suffix = Get(vm, "suffix");
  options.ns = Get(vm, "namespace");
  const auto services = config::LoadServices(vm["services"].as<std::vector<std::string>>());
  for (const auto& w : services.warnings) std::cerr << "warning: " << w << "\n";
  for (const auto& e : services.errors) std::cerr << "error: " << e << "\n";
  if (!services.errors.empty()) return 1;
  const std::string allocations = Get(vm, "allocations");
  auto vips = LoadVips(allocations);
  if (!vips.ok()) return Fail(vips.status());
  std::cout << ServiceEntries(services.services, options, *vips);
  return allocations.empty() ? 0 : Done(vips->Save(allocations));
}

// The server CoreDNS forwards to: --server, else serve.yaml's dns.listen
// (which must then be an address CoreDNS can reach, not 0.0.0.0).
absl::StatusOr<std::pair<std::string, std::string>> CorednsTarget(const po::variables_map& vm) {
  std::string server = vm.count("server") ? Get(vm, "server") : "";
  std::string zone = Get(vm, "suffix");
  if (vm.count("config")) {
    auto config = config::LoadServeConfig(Get(vm, "config"));
    if (!config.ok()) return config.status();
    if (!config->dns) return absl::InvalidArgumentError(Get(vm, "config") + ": has no dns: {listen: ADDR} to forward to");
    zone = config->dns->zone;
    if (server.empty()) {
      auto listen = base::ParseListenAddress(config->dns->listen);
      if (!listen.ok()) return listen.status();
      if (listen->ip == "0.0.0.0" || listen->ip == "::" || listen->port == 0) {
        return absl::InvalidArgumentError("dns.listen " + config->dns->listen +
                                          " is not an address CoreDNS can reach; pass --server (the Service's IP:PORT)");
      }
      server = config->dns->listen;
    }
  }
  if (server.empty()) {
    return absl::InvalidArgumentError("--server or --config is required (the DNS server that answers for ." + zone + ")");
  }
  return std::make_pair(server, zone);
}

int CorednsCommand(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("server", po::value<std::string>())("config", po::value<std::string>())(
      "suffix", po::value<std::string>()->default_value("global"));
  po::variables_map vm;
  if (!ParseArgs("coredns", args, opts, vm)) return 2;
  auto target = CorednsTarget(vm);
  if (!target.ok()) {
    std::cerr << "meshgatectl coredns: " << target.status().message() << "\n";
    return 2;
  }
  std::cout << CorednsStanza(target->first, target->second);
  return 0;
}

// --- serve ---------------------------------------------------------------------------------

// `serve --check`: serve.yaml read and checked as serve would read it (field
// paths, file:line:col), one line per cluster; no API server is contacted
// and no kubeconfig read, so a manifest's config can be checked anywhere.
int CheckServeConfig(const std::string& path) {
  auto config = config::LoadServeConfig(path);
  if (!config.ok()) {
    std::cerr << "error: " << config.status().message() << "\n";
    return 1;
  }
  for (const auto& c : config->clusters) {
    std::string sources = std::to_string(c.mesh.size()) + " mesh path(s)";
    if (c.kubernetes.in_cluster) sources += ", Kubernetes API server in-cluster";
    if (!c.kubernetes.kubeconfig.empty()) sources += ", Kubernetes API server from kubeconfig " + c.kubernetes.kubeconfig;
    std::cout << "cluster " << c.name << ": gateway " << c.gateway << ", " << sources << "\n";
  }
  if (config->dns) std::cout << "dns: zone " << config->dns->zone << " on " << config->dns->listen << "\n";
  std::cout << "ok: " << path << "\n";
  return 0;
}

int ServeCommand(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("config", po::value<std::string>())("listen", po::value<std::string>()->default_value(""))(
      "log-level", po::value<std::string>()->default_value("info"))("check", po::bool_switch());
  po::variables_map vm;
  if (!ParseArgs("serve", args, opts, vm)) return 2;
  if (!vm.count("config")) return Usage("meshgatectl serve: --config is required");
  if (vm["check"].as<bool>()) return CheckServeConfig(Get(vm, "config"));
  const std::string listen = Get(vm, "listen");  // "": the config's
  if (!listen.empty()) {
    auto address = base::ParseListenAddress(listen);
    if (!address.ok()) return Fail("--listen " + std::string(address.status().message()));
  }
  const std::string level_name = Get(vm, "log-level");
  const auto level = base::ParseLogLevel(level_name);
  if (!level) return Fail("unknown log level \"" + level_name + "\"");
  base::SetupLogging("meshgatectl", *level);
  return RunServe(Get(vm, "config"), listen);
}

int Main(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage << "\n";
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "serviceentries") return ServiceEntriesCommand(rest);
  if (args[0] == "coredns") return CorednsCommand(rest);
  if (args[0] == "serve") return ServeCommand(rest);
  if (args[0] == "ca" && args.size() >= 2) return Ca(args[1], {args.begin() + 2, args.end()});
  return Usage("meshgatectl: unknown command \"" + args[0] + "\"");
}

}  // namespace
}  // namespace meshgate::control

int main(int argc, char** argv) { return meshgate::control::Main({argv + 1, argv + argc}); }
