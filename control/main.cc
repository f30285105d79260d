// meshgatectl: the control component: CA material, cross-cluster
// ServiceEntries, the CoreDNS stanza, and `serve`, which publishes them.
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "base/logging.h"
#include "control/ca.h"
#include "control/serve.h"
#include "control/serviceentries.h"
#include "spdlog/spdlog.h"

namespace po = boost::program_options;
using meshgate::control::CaOptions;
using meshgate::control::KeyType;

namespace {

constexpr char kUsage[] = R"(Usage: meshgatectl ca root --out DIR
       meshgatectl ca intermediate --root DIR --cluster NAME --out DIR
       meshgatectl ca secret --dir DIR
       meshgatectl ca workload --dir DIR --spiffe spiffe://TRUST/ns/NS/sa/SA --out DIR
       meshgatectl ca verify --dir DIR
       meshgatectl ca server --dir DIR (--dns NAME | --ip ADDRESS)... --out DIR
       meshgatectl serviceentries --services PATH --gateway HOST_OR_IP[:PORT] --network NAME
                   [--suffix global] [--namespace istio-system] [--allocations FILE]
       meshgatectl coredns --server ADDR [--suffix global]
       meshgatectl serve --config FILE [--listen IP:PORT] [--log-level info]
Common options for root/intermediate/workload: --key-type rsa|ecdsa (default rsa, 4096 bits;
workload keys are ECDSA P-256 like istiod's), --days N, --hours N, --force (overwrite keys).)";

int Fail(const std::string& message) {
  std::cerr << "meshgatectl: " << message << "\n";
  return 1;
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
    std::cerr << "meshgatectl " << command << ": " << e.what() << "\n" << kUsage << "\n";
    return false;
  }
}

int Ca(const std::string& command, const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("out", po::value<std::string>())("root", po::value<std::string>())(
      "dir", po::value<std::string>())("cluster", po::value<std::string>())(
      "spiffe", po::value<std::string>())("key-type", po::value<std::string>()->default_value("rsa"))(
      "days", po::value<int>())("hours", po::value<int>())("force", po::bool_switch())(
      "dns", po::value<std::vector<std::string>>()->composing())(
      "ip", po::value<std::vector<std::string>>()->composing());
  po::variables_map vm;
  if (!ParseArgs("ca " + command, args, opts, vm)) return 2;
  auto need = [&](const char* name) -> std::string {
    if (!vm.count(name)) throw std::invalid_argument(std::string("--") + name + " is required");
    return vm[name].as<std::string>();
  };
  CaOptions options;
  options.force = vm["force"].as<bool>();
  const std::string key_type = vm["key-type"].as<std::string>();
  if (key_type == "ecdsa") {
    options.key_type = KeyType::kEcdsaP256;
  } else if (key_type != "rsa") {
    return Fail("--key-type must be rsa or ecdsa, got \"" + key_type + "\"");
  }
  if (vm.count("days")) options.validity = std::chrono::hours(24 * vm["days"].as<int>());
  if (vm.count("hours")) options.validity = std::chrono::hours(vm["hours"].as<int>());
  if ((vm.count("days") || vm.count("hours")) && options.validity.count() <= 0) {
    return Fail("the validity must be positive");
  }
  try {
    absl::Status status;
    if (command == "root") {
      status = meshgate::control::CreateRoot(need("out"), options);
    } else if (command == "intermediate") {
      const std::string root = need("root"), cluster = need("cluster"), out = need("out");
      status = meshgate::control::CreateIntermediate(root, cluster, out, options);
    } else if (command == "workload") {
      const std::string dir = need("dir"), spiffe = need("spiffe"), out = need("out");
      status = meshgate::control::CreateWorkload(dir, spiffe, out, options);
    } else if (command == "server") {
      const std::string dir = need("dir"), out = need("out");
      std::vector<std::string> names;
      for (const char* flag : {"dns", "ip"}) {
        if (vm.count(flag)) {
          for (const auto& n : vm[flag].as<std::vector<std::string>>()) names.push_back(n);
        }
      }
      status = meshgate::control::CreateServer(dir, names, out, options);
    } else if (command == "secret") {
      auto yaml = meshgate::control::CacertsSecret(need("dir"));
      if (!yaml.ok()) return Fail(std::string(yaml.status().message()));
      std::cout << *yaml;
      return 0;
    } else if (command == "verify") {
      bool ok = true;
      for (const auto& check : meshgate::control::Verify(need("dir"))) {
        std::cout << (check.ok ? "ok   " : "FAIL ") << check.name
                  << (check.ok ? "" : ": " + check.detail) << "\n";
        ok = ok && check.ok;
      }
      return ok ? 0 : 1;
    } else {
      std::cerr << "meshgatectl: unknown command \"ca " << command << "\"\n" << kUsage << "\n";
      return 2;
    }
    if (!status.ok()) return Fail(std::string(status.message()));
    return 0;
  } catch (const std::invalid_argument& e) {
    std::cerr << "meshgatectl ca " << command << ": " << e.what() << "\n" << kUsage << "\n";
    return 2;
  }
}

int ServiceEntriesCommand(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("services", po::value<std::vector<std::string>>()->composing())(
      "gateway", po::value<std::string>())("network", po::value<std::string>()->default_value(""))(
      "suffix", po::value<std::string>()->default_value("global"))(
      "namespace", po::value<std::string>()->default_value("istio-system"))(
      "allocations", po::value<std::string>());
  po::variables_map vm;
  if (!ParseArgs("serviceentries", args, opts, vm)) return 2;
  if (!vm.count("services") || !vm.count("gateway")) {
    std::cerr << "meshgatectl serviceentries: --services and --gateway are required\n" << kUsage << "\n";
    return 2;
  }
  meshgate::control::ServiceEntryOptions options;
  if (absl::Status s = meshgate::control::ParseGateway(vm["gateway"].as<std::string>(), options); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  options.network = vm["network"].as<std::string>();
  options.suffix = vm["suffix"].as<std::string>();
  options.ns = vm["namespace"].as<std::string>();
  const auto services = meshgate::config::LoadServices(vm["services"].as<std::vector<std::string>>());
  for (const auto& w : services.warnings) std::cerr << "warning: " << w << "\n";
  if (!services.errors.empty()) {
    for (const auto& e : services.errors) std::cerr << "error: " << e << "\n";
    return 1;
  }
  const std::string allocations = vm.count("allocations") ? vm["allocations"].as<std::string>() : "";
  auto vips = allocations.empty() ? absl::StatusOr<meshgate::control::VipAllocations>(meshgate::control::VipAllocations())
                                  : meshgate::control::VipAllocations::Load(allocations);
  if (!vips.ok()) return Fail(std::string(vips.status().message()));
  std::cout << meshgate::control::ServiceEntries(services.services, options, *vips);
  if (!allocations.empty()) {
    if (absl::Status s = vips->Save(allocations); !s.ok()) return Fail(std::string(s.message()));
  }
  return 0;
}

int CorednsCommand(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("server", po::value<std::string>())("suffix", po::value<std::string>()->default_value("global"));
  po::variables_map vm;
  if (!ParseArgs("coredns", args, opts, vm)) return 2;
  if (!vm.count("server")) {
    std::cerr << "meshgatectl coredns: --server is required (the DNS server that answers for ."
              << vm["suffix"].as<std::string>() << ")\n";
    return 2;
  }
  std::cout << meshgate::control::CorednsStanza(vm["server"].as<std::string>(), vm["suffix"].as<std::string>());
  return 0;
}

}  // namespace

int ServeCommand(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("config", po::value<std::string>())("listen", po::value<std::string>()->default_value(""))(
      "log-level", po::value<std::string>()->default_value("info"));
  po::variables_map vm;
  if (!ParseArgs("serve", args, opts, vm)) return 2;
  if (!vm.count("config")) {
    std::cerr << "meshgatectl serve: --config is required\n" << kUsage << "\n";
    return 2;
  }
  const std::string level_name = vm["log-level"].as<std::string>();
  const auto level = meshgate::base::ParseLogLevel(level_name);
  if (!level) return Fail("unknown log level \"" + level_name + "\"");
  meshgate::base::SetupLogging("meshgatectl", *level);
  return meshgate::control::RunServe(vm["config"].as<std::string>(), vm["listen"].as<std::string>());
}

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage << "\n";
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "serviceentries") return ServiceEntriesCommand({args.begin() + 1, args.end()});
  if (args[0] == "coredns") return CorednsCommand({args.begin() + 1, args.end()});
  if (args[0] == "serve") return ServeCommand({args.begin() + 1, args.end()});
  if (args[0] == "ca" && args.size() >= 2) {
    return Ca(args[1], std::vector<std::string>(args.begin() + 2, args.end()));
  }
  std::cerr << "meshgatectl: unknown command \"" << args[0] << "\"\n" << kUsage << "\n";
  return 2;
}
