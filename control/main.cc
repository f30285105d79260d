// meshgatectl: the control component. This build has the `ca` commands; the
// ServiceEntry generation and publishing are still to come.
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "control/ca.h"

namespace po = boost::program_options;
using meshgate::control::CaOptions;
using meshgate::control::KeyType;

namespace {

constexpr char kUsage[] = R"(Usage: meshgatectl ca root --out DIR
       meshgatectl ca intermediate --root DIR --cluster NAME --out DIR
       meshgatectl ca secret --dir DIR
       meshgatectl ca workload --dir DIR --spiffe spiffe://TRUST/ns/NS/sa/SA --out DIR
       meshgatectl ca verify --dir DIR
Common options for root/intermediate/workload: --key-type rsa|ecdsa (default rsa, 4096 bits;
workload keys are ECDSA P-256 like istiod's), --days N, --hours N, --force (overwrite keys).)";

int Fail(const std::string& message) {
  std::cerr << "meshgatectl: " << message << "\n";
  return 1;
}

int Ca(const std::string& command, const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("out", po::value<std::string>())("root", po::value<std::string>())(
      "dir", po::value<std::string>())("cluster", po::value<std::string>())(
      "spiffe", po::value<std::string>())("key-type", po::value<std::string>()->default_value("rsa"))(
      "days", po::value<int>())("hours", po::value<int>())("force", po::bool_switch());
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(opts).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "meshgatectl ca " << command << ": " << e.what() << "\n" << kUsage << "\n";
    return 2;
  }
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

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage << "\n";
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "ca" && args.size() >= 2) {
    return Ca(args[1], std::vector<std::string>(args.begin() + 2, args.end()));
  }
  std::cerr << "meshgatectl: unknown command \"" << args[0] << "\"\n" << kUsage << "\n";
  return 2;
}
