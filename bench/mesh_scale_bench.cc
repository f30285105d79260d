// Scale of the configuration path: generates a mesh of N services and M
// endpoints as Istio YAML, then reports load time, SNI lookup cost and the
// memory the route table takes. Usage: mesh_scale_bench [services] [endpoints_per_service]
// (KEEP=1 leaves the generated YAML in $TMPDIR for other tools to read).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench/proc_stats.h"
#include "config/mesh/mesh_loader.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using meshgate::bench::RssKib;

std::string ServiceHost(int i) { return "svc" + std::to_string(i) + ".ns" + std::to_string(i % 100); }

// 100 services per file, like a namespace's worth of `kubectl get -o yaml`.
void WriteMesh(const fs::path& dir, int services, int endpoints_per_service) {
  fs::create_directories(dir);
  // The east-west Gateway that exports them all (meshgate fails closed without one).
  std::ofstream(dir / "gateway.yaml")
      << "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: eastwest, namespace: istio-system}\n"
         "spec:\n  servers:\n  - port: {number: 15443, name: tls, protocol: TLS}\n"
         "    tls: {mode: AUTO_PASSTHROUGH}\n    hosts: [\"*.local\"]\n";
  std::ofstream out;
  for (int i = 0; i < services; ++i) {
    if (i % 100 == 0) out = std::ofstream(dir / ("mesh-" + std::to_string(i / 100) + ".yaml"));
    out << "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: svc" << i
        << "\n  namespace: ns" << i % 100 << "\nspec:\n  hosts: [" << ServiceHost(i)
        << ".svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n"
        << "  - {number: 8000, name: http, protocol: HTTP, targetPort: 8080}\n  endpoints:\n";
    for (int e = 0; e < endpoints_per_service; ++e) {
      const int n = i * endpoints_per_service + e;
      out << "  - address: 10." << (n >> 16) % 256 << "." << (n >> 8) % 256 << "." << n % 256
          << "\n    labels: {version: v" << e % 3 << "}\n";
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int services = argc > 1 ? std::stoi(argv[1]) : 10000;
  const int per_service = argc > 2 ? std::stoi(argv[2]) : 10;
  const fs::path dir = fs::temp_directory_path() / ("meshgate-scale-" + std::to_string(::getpid()));
  WriteMesh(dir, services, per_service);

  const long rss_before = RssKib();
  const auto t0 = Clock::now();
  auto result = meshgate::config::LoadMesh({dir.string()}, {{".global", ".svc.cluster.local"}});
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const long rss_after = RssKib();
  if (!getenv("KEEP")) fs::remove_all(dir);
  if (!result.table) {
    std::fprintf(stderr, "load failed: %s\n", result.errors.empty() ? "?" : result.errors[0].c_str());
    return 1;
  }

  // Lookups in Istio's SNI form, hitting random services, as a gateway sees them.
  std::vector<std::string> snis;
  std::mt19937 rng(42);
  for (int i = 0; i < 4096; ++i) {
    snis.push_back("outbound_.8000_._." + ServiceHost(static_cast<int>(rng() % services)) + ".global");
  }
  size_t found = 0;
  const int kLookups = 2'000'000;
  const auto t1 = Clock::now();
  for (int i = 0; i < kLookups; ++i) found += result.table->Route(snis[i & 4095]).cluster != nullptr;
  const double lookup_ns = std::chrono::duration<double, std::nano>(Clock::now() - t1).count() / kLookups;
  if (found != static_cast<size_t>(kLookups)) {
    std::fprintf(stderr, "only %zu of %d lookups routed\n", found, kLookups);
    return 1;
  }

  std::printf("| services | endpoints | load (s) | lookup per SNI (ns) | route table RSS (MiB) |\n");
  std::printf("|---|---|---|---|---|\n");
  std::printf("| %d | %d | %.2f | %.0f | %.1f |\n", services, services * per_service, load_s, lookup_ns,
              (rss_after - rss_before) / 1024.0);
  std::printf("targets: load < 2 s, lookup < 1000 ns, memory < 200 MiB\n");
  return 0;
}
