// Scale of the configuration path: generates a mesh of N services and M
// endpoints as Istio YAML, then reports load time, the load's peak memory,
// SNI lookup cost and the memory the route table keeps.
// Usage: mesh_scale_bench [services] [endpoints_per_service] [services_per_file]
// (services_per_file 0: one file; KEEP=1 leaves the generated YAML in $TMPDIR).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "bench/proc_stats.h"
#include "bench/scale_mesh.h"
#include "config/mesh/mesh_loader.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using meshgate::bench::PeakRssKib;
using meshgate::bench::RssKib;
using meshgate::bench::ScaleServiceHost;

// Lookups in Istio's SNI form, hitting random services, as a gateway sees them.
// Returns ns per lookup, or -1 when one did not route.
double LookupNs(const meshgate::config::RouteTable& table, int services) {
  std::vector<std::string> snis;
  std::mt19937 rng(42);
  for (int i = 0; i < 4096; ++i) {
    snis.push_back("outbound_.8000_._." + ScaleServiceHost(static_cast<int>(rng() % services)) + ".global");
  }
  size_t found = 0;
  const int kLookups = 2'000'000;
  const auto t1 = Clock::now();
  for (int i = 0; i < kLookups; ++i) found += table.Route(snis[i & 4095]).cluster != nullptr;
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t1).count() / kLookups;
  if (found != static_cast<size_t>(kLookups)) {
    std::fprintf(stderr, "only %zu of %d lookups routed\n", found, kLookups);
    return -1;
  }
  return ns;
}

}  // namespace

int main(int argc, char** argv) {
  const int services = argc > 1 ? std::stoi(argv[1]) : 10000;
  const int per_service = argc > 2 ? std::stoi(argv[2]) : 10;
  const int per_file = argc > 3 ? std::stoi(argv[3]) : 100;
  const fs::path dir = fs::temp_directory_path() / ("meshgate-scale-" + std::to_string(::getpid()));
  const uint64_t input = meshgate::bench::WriteScaleMesh(dir, services, per_service, per_file);

  // VmHWM is the process's peak so far: generating the files streams, so the
  // peak after the load is the load's, over the RSS it started from.
  const long rss_before = RssKib();
  const auto t0 = Clock::now();
  auto result = meshgate::config::LoadMesh({dir.string()}, {{".global", ".svc.cluster.local"}});
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const long peak_after = PeakRssKib();
  const long rss_after = RssKib();
  if (!getenv("KEEP")) fs::remove_all(dir);
  if (!result.table) {
    std::fprintf(stderr, "load failed: %s\n", result.errors.empty() ? "?" : result.errors[0].c_str());
    return 1;
  }
  const double lookup_ns = LookupNs(*result.table, services);
  if (lookup_ns < 0) return 1;

  const double input_mib = static_cast<double>(input) / (1024 * 1024);
  const double peak_mib = (peak_after - rss_before) / 1024.0;
  std::printf("| services | endpoints | files | input (MiB) | load (s) | load peak RSS (MiB) | peak / input "
              "| route table RSS (MiB) | lookup per SNI (ns) |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  std::printf("| %d | %d | %d | %.1f | %.2f | %.1f | %.1fx | %.1f | %.0f |\n", services, services * per_service,
              per_file > 0 ? (services + per_file - 1) / per_file + 1 : 2, input_mib, load_s, peak_mib,
              peak_mib / input_mib, (rss_after - rss_before) / 1024.0, lookup_ns);
  std::printf("targets: load < 2 s, lookup < 1000 ns, memory < 200 MiB, load peak <= 5x input\n");
  return 0;
}
