// Incremental route updates at scale (issue 14, part 3): 10,000 services and
// 100,000 endpoints loaded into a real Runtime publishing to a real worker.
// Measures the control thread's CPU time (CLOCK_THREAD_CPUTIME_ID) of
// Runtime::SetEndpoints, which is the update plus the publish, for one change
// and for a burst, checks memory across 100,000 changes, and runs today's
// full rebuild (a new table, health table and stats for every cluster) as the
// baseline. Usage: incremental_bench [services] [endpoints_per_service] [changes]
//
// `incremental_bench kube [services] [endpoints_per_service] [changes]`: the
// Kubernetes shape instead. Each Service and EndpointSlice is its own mesh
// source of JSON text, as the kube source produces them (KubeObjectText),
// and a change is one EndpointSlice's text changed, then what the runtime
// does with the API server's object set: LoadMeshFor over every object and
// the install of the loaded table (Runtime::SetTable, what Rebuild installs).
#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "bench/proc_stats.h"
#include "proxy/cluster_stats.h"
#include "config/kube/kube_objects.h"
#include "proxy/runtime/runtime.h"
#include "proxy/worker_pool.h"

namespace {

using namespace meshgate;

double ThreadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

using meshgate::bench::RssKib;

std::vector<config::Cluster> Mesh(int services, int per_service) {
  std::vector<config::Cluster> out;
  out.reserve(services);
  for (int i = 0; i < services; ++i) {
    config::Cluster c;
    c.host = "svc" + std::to_string(i) + ".ns" + std::to_string(i % 100) + ".svc.cluster.local";
    c.port = 8080;
    c.source = "bench";
    for (int e = 0; e < per_service; ++e) {
      config::Endpoint ep;
      ep.address = "10." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256) + "." + std::to_string(e + 1);
      ep.port = 8080;
      ep.set_workload({.name = "svc" + std::to_string(i)});
      c.endpoints.push_back(std::move(ep));
    }
    out.push_back(std::move(c));
  }
  return out;
}

void WaitAcked(const proxy::WorkerPool& pool, uint64_t sequence) {
  while (pool.acked_sequence() < sequence) std::this_thread::yield();
}

// Change i: cluster (i * 7919) % services gets one endpoint's readiness flipped.
struct Changer {
  proxy::Runtime& runtime;
  const std::vector<config::Cluster>& mesh;
  std::vector<std::vector<config::Endpoint>> current;
  explicit Changer(proxy::Runtime& r, const std::vector<config::Cluster>& m) : runtime(r), mesh(m) {
    for (const auto& c : m) current.push_back(c.endpoints);
  }
  void operator()(uint64_t i) {
    const size_t c = (i * 7919) % mesh.size();
    auto& eps = current[c];
    eps[i % eps.size()].ready = !eps[i % eps.size()].ready;
    if (!runtime.SetEndpoints(mesh[c].name, eps).ok()) std::abort();
  }
};

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// Today's path for one change: every cluster copied into a new table, a new
// health table inheriting by name and address, and every cluster's stats.
double BaselineFullRebuildMs(const std::vector<config::Cluster>& mesh, int rounds) {
  auto table = std::make_shared<const config::RouteTable>(mesh, std::vector<config::SniRewrite>{});
  auto health = std::make_shared<lb::HealthTable>(*table);
  proxy::ClusterStatsRegistry registry;
  registry.StatsFor(*table);
  double total = 0;
  for (int r = 0; r < rounds; ++r) {
    std::vector<config::Cluster> copy = mesh;
    copy[r].endpoints[0].ready = !copy[r].endpoints[0].ready;
    const double t0 = ThreadCpuMs();
    auto next = std::make_shared<const config::RouteTable>(std::move(copy), std::vector<config::SniRewrite>{});
    health = std::make_shared<lb::HealthTable>(*next, *table, *health);
    registry.StatsFor(*next);
    table = std::move(next);
    total += ThreadCpuMs() - t0;
  }
  return total / rounds;
}

// The Kubernetes shape: Service svcI and its EndpointSlice, one mesh source
// each (discovery.k8s.io/v1 EndpointSlice, https://kubernetes.io/docs/reference/kubernetes-api/service-resources/endpoint-slice-v1/).
class KubeObjects {
 public:
  KubeObjects(int services, int per_service) : per_service_(per_service) {
    for (int i = 0; i < services; ++i) {
      sources_.push_back({"kubernetes Service " + Key(i), ServiceText(i), "", false});
      ready_.emplace_back(per_service, true);
      sources_.push_back({"kubernetes EndpointSlice " + Key(i) + "-abcde", SliceText(i), "", false});
    }
  }
  const std::vector<config::MeshSource>& sources() const { return sources_; }
  int size() const { return static_cast<int>(ready_.size()); }
  // Service i's slice with endpoint e's readiness flipped.
  void Flip(int i, int e) {
    ready_[i][e] = !ready_[i][e];
    sources_[2 * i + 1].text = SliceText(i);
  }

 public:  // the objects themselves too, for the fast path
  static boost::json::object Meta(int i, const std::string& name) {
    return {{"name", name}, {"namespace", "ns" + std::to_string(i % 100)}, {"resourceVersion", "1"}};
  }
  static std::string ServiceText(int i) { return kubemesh::KubeObjectText(ServiceObject(i), "v1", "Service"); }
  std::string SliceText(int i) const {
    return kubemesh::KubeObjectText(SliceObject(i), "discovery.k8s.io/v1", "EndpointSlice");
  }
  static std::string Key(int i) { return "ns" + std::to_string(i % 100) + "/svc" + std::to_string(i); }
  static boost::json::object ServiceObject(int i) {
    boost::json::object o;
    o["metadata"] = Meta(i, "svc" + std::to_string(i));
    o["spec"] = {{"clusterIP", "10.96." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256)},
                 {"ports", boost::json::array{{{"name", "tcp"}, {"port", 8080}, {"protocol", "TCP"}, {"targetPort", 8080}}}}};
    return o;
  }
  boost::json::object SliceObject(int i) const {
    boost::json::object o;
    boost::json::object meta = Meta(i, "svc" + std::to_string(i) + "-abcde");
    meta["labels"] = {{"kubernetes.io/service-name", "svc" + std::to_string(i)}};
    o["metadata"] = std::move(meta);
    o["addressType"] = "IPv4";
    o["ports"] = boost::json::array{{{"name", "tcp"}, {"port", 8080}, {"protocol", "TCP"}}};
    boost::json::array endpoints;
    for (int e = 0; e < per_service_; ++e) {
      const std::string ip = "10." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256) + "." +
                             std::to_string(e + 1);
      endpoints.push_back({{"addresses", boost::json::array{ip.c_str()}},
                           {"conditions", {{"ready", static_cast<bool>(ready_[i][e])}}}});
    }
    o["endpoints"] = std::move(endpoints);
    return o;
  }

  int per_service_;
  std::vector<config::MeshSource> sources_;
  std::vector<std::vector<bool>> ready_;
};

struct KubeCost {
  double load_ms = 0;     // LoadMeshFor over every object
  double install_ms = 0;  // Runtime::SetTable of the loaded table, with the publish
};

int KubeMain(int services, int per_service, int changes, bool cached) {
  config::MeshParseCache cache;  // what the runtime's Rebuild keeps
  KubeObjects objects(services, per_service);
  config::GatewayConfig settings;
  settings.listen = "127.0.0.1:0";
  settings.threads = 1;
  double t0 = ThreadCpuMs();
  config::MeshLoadResult first = proxy::LoadMeshFor(settings, "", objects.sources());
  if (!first.errors.empty() || !first.table) {
    std::fprintf(stderr, "kube mesh does not load: %s\n", first.errors.empty() ? "?" : first.errors[0].c_str());
    return 1;
  }
  std::printf("kube mesh: %zu objects, %zu clusters, %d endpoints; first load %.0f ms CPU\n",
              objects.sources().size(), first.table->clusters().size(), services * per_service, ThreadCpuMs() - t0);
  // Where a load's time goes: parsing and reading each object (what a parse
  // cache could skip for unchanged objects) against building the clusters.
  t0 = ThreadCpuMs();
  const config::MeshSources all{objects.sources(), {}};
  if (config::LoadServices(all).services.size() != static_cast<size_t>(services)) std::abort();
  std::printf("of a load: parsing + reading every object %.0f ms CPU (the rest builds the clusters)\n",
              ThreadCpuMs() - t0);
  boost::asio::io_context io;
  proxy::Runtime runtime(io, settings, first.table, "", nullptr);
  first.table.reset();
  proxy::WorkerPool pool(1, -1, runtime.snapshot());
  if (!pool.Bind("127.0.0.1:0").ok()) return 1;
  pool.Start();
  runtime.Start([&](std::shared_ptr<const proxy::Snapshot> s) { pool.Publish(std::move(s)); });
  auto apply = [&]() {
    KubeCost cost;
    const double l0 = ThreadCpuMs();
    config::MeshLoadResult mesh =
        cached ? config::LoadMeshSources({objects.sources(), {}}, {}, proxy::MeshLoadOptionsFor(settings), &cache)
               : proxy::LoadMeshFor(settings, "", objects.sources());
    const double l1 = ThreadCpuMs();
    if (!mesh.table) std::abort();
    runtime.SetTable(std::move(mesh.table));
    cost.load_ms = l1 - l0;
    cost.install_ms = ThreadCpuMs() - l1;
    WaitAcked(pool, runtime.snapshot()->sequence);
    return cost;
  };
  std::vector<double> load;
  std::vector<double> install;
  std::vector<double> total;
  for (int i = 0; i < changes; ++i) {
    objects.Flip((i * 7919) % services, i % per_service);
    const KubeCost c = apply();
    load.push_back(c.load_ms);
    install.push_back(c.install_ms);
    total.push_back(c.load_ms + c.install_ms);
  }
  std::printf("(a) one EndpointSlice changed, control-thread CPU: median %.1f ms (LoadMeshFor %.1f ms + install %.2f ms),"
              " max %.1f ms\n", Percentile(total, 0.5), Percentile(load, 0.5), Percentile(install, 0.5),
              Percentile(total, 1.0));
  for (int i = 0; i < 1000; ++i) objects.Flip((i * 104729 + 17) % services, i % per_service);
  const KubeCost burst = apply();
  std::printf("(b) 1000 EndpointSlices changed, one apply: %.1f ms CPU (LoadMeshFor %.1f + install %.2f)\n",
              burst.load_ms + burst.install_ms, burst.load_ms, burst.install_ms);
  const long rss0 = RssKib();
  const size_t heap0 = mallinfo2().uordblks;
  for (int i = 0; i < changes; ++i) {
    objects.Flip((i * 31 + 5) % services, i % per_service);
    apply();
  }
  std::printf("(c) %d more changes: RSS %ld -> %ld KiB, heap in use %zu -> %zu KiB\n", changes, rss0, RssKib(),
              heap0 / 1024, mallinfo2().uordblks / 1024);
  pool.Stop();
  pool.Join();
  return 0;
}


// The fast path (KubeSource's own state and batching, kubemesh::KubeObjects,
// without the network): each change is an EndpointSlice MODIFIED event
// (KubeObjects::Put: the object's text, checked alone, indexed), the batch's
// EndpointChange, and Runtime::ApplyKubeEndpoints installing the Service's
// cluster, published to a real worker. CPU is the control thread's, from
// the event to the runtime's install.
struct FastBench {
  KubeObjects& shape;
  kubemesh::KubeObjects& objects;
  proxy::Runtime& runtime;
  const proxy::WorkerPool& pool;
  double events_ms = 0;  // of the last batch: the Puts (text, check alone, index)
  // Flips (service, endpoint) for each pair and applies them as one batch.
  double Batch(const std::vector<std::pair<int, int>>& flips) {
    const double t0 = ThreadCpuMs();
    for (const auto& [i, e] : flips) {
      shape.Flip(i, e);
      objects.Put("EndpointSlice", "discovery.k8s.io/v1", KubeObjects::Key(i) + "-abcde", shape.SliceObject(i));
    }
    events_ms = ThreadCpuMs() - t0;
    std::optional<kubemesh::EndpointChange> change = objects.TakeEndpointChange();
    if (!change || !runtime.ApplyKubeEndpoints(*change, "bench")) std::abort();  // must be the fast path
    const double spent = ThreadCpuMs() - t0;
    WaitAcked(pool, runtime.snapshot()->sequence);
    return spent;
  }
};

int KubeFastMain(int services, int per_service, int changes, int batch) {
  KubeObjects shape(services, per_service);
  config::GatewayConfig settings;
  settings.listen = "127.0.0.1:0";
  settings.threads = 1;
  kubemesh::KubeObjects objects([&](const config::MeshSource& source) {
    config::MeshSources one;
    one.sources.push_back(source);
    return config::LoadMeshSources(one, settings.sni_rewrites, proxy::MeshLoadOptionsFor(settings)).errors;
  });
  double t0 = ThreadCpuMs();
  for (int i = 0; i < services; ++i) {
    objects.Put("Service", "v1", KubeObjects::Key(i), KubeObjects::ServiceObject(i));
    objects.Put("EndpointSlice", "discovery.k8s.io/v1", KubeObjects::Key(i) + "-abcde", shape.SliceObject(i));
  }
  std::printf("kube fast path: %zu objects taken in (each checked alone, indexed) in %.0f ms CPU\n", objects.accepted(),
              ThreadCpuMs() - t0);
  boost::asio::io_context io;
  proxy::Runtime runtime(io, settings,
                         std::make_shared<const config::RouteTable>(std::vector<config::Cluster>{},
                                                                    std::vector<config::SniRewrite>{}),
                         "", nullptr);
  proxy::WorkerPool pool(1, -1, runtime.snapshot());
  if (!pool.Bind("127.0.0.1:0").ok()) return 1;
  pool.Start();
  runtime.Start([&](std::shared_ptr<const proxy::Snapshot> s) { pool.Publish(std::move(s)); });
  t0 = ThreadCpuMs();
  objects.EndBatch();
  if (!runtime.ApplyKubeObjects(objects.Sources(), "first sync").empty()) return 1;
  std::printf("first sync, the full path: %zu clusters, %.0f ms CPU\n", runtime.snapshot()->table->clusters().size(),
              ThreadCpuMs() - t0);
  FastBench bench{shape, objects, runtime, pool};
  std::vector<double> one;
  for (int i = 0; i < 1000; ++i) one.push_back(bench.Batch({{(i * 7919) % services, i % per_service}}));
  std::printf("(a) one EndpointSlice changed, event -> installed, control-thread CPU: median %.3f ms, p99 %.3f ms, "
              "max %.3f ms\n", Percentile(one, 0.5), Percentile(one, 0.99), Percentile(one, 1.0));
  std::vector<std::pair<int, int>> burst;
  for (int i = 0; i < 1000; ++i) burst.push_back({(i * 104729 + 17) % services, i % per_service});
  const double burst_ms = bench.Batch(burst);
  std::printf("(b) 1000 EndpointSlices of 1000 Services in one batch: %.1f ms CPU (events %.1f + change and install %.1f)\n",
              burst_ms, bench.events_ms, burst_ms - bench.events_ms);
  const long rss0 = RssKib();
  const size_t heap0 = mallinfo2().uordblks;
  double total = 0;
  for (int i = 0; i < changes; i += batch) {
    std::vector<std::pair<int, int>> flips;
    for (int j = i; j < std::min(changes, i + batch); ++j) flips.push_back({(j * 31 + 5) % services, j % per_service});
    total += bench.Batch(flips);
  }
  std::printf("(c) %d slice changes in batches of %d (%.3f ms CPU per change): RSS %ld -> %ld KiB, heap in use %zu -> "
              "%zu KiB\n", changes, batch, total / changes, rss0, RssKib(), heap0 / 1024, mallinfo2().uordblks / 1024);
  pool.Stop();
  pool.Join();
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "kube-fast") {
    return KubeFastMain(argc > 2 ? std::atoi(argv[2]) : 10000, argc > 3 ? std::atoi(argv[3]) : 10,
                        argc > 4 ? std::atoi(argv[4]) : 100000, argc > 5 ? std::atoi(argv[5]) : 1);
  }
  if (argc > 1 && std::string(argv[1]) == "kube") {
    return KubeMain(argc > 2 ? std::atoi(argv[2]) : 10000, argc > 3 ? std::atoi(argv[3]) : 10,
                    argc > 4 ? std::atoi(argv[4]) : 20, argc > 5 && std::string(argv[5]) == "cache");
  }
  const int services = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int per_service = argc > 2 ? std::atoi(argv[2]) : 10;
  const int changes = argc > 3 ? std::atoi(argv[3]) : 100000;
  const std::vector<config::Cluster> mesh = [&] {
    auto m = Mesh(services, per_service);
    const config::RouteTable named(m, {});  // names as the table derives them
    for (size_t i = 0; i < m.size(); ++i) m[i].name = named.clusters()[i].name;
    return m;
  }();
  std::printf("mesh: %d services, %d endpoints\n", services, services * per_service);

  boost::asio::io_context io;
  config::GatewayConfig settings;
  settings.listen = "127.0.0.1:0";
  settings.threads = 1;
  auto table = std::make_shared<const config::RouteTable>(mesh, std::vector<config::SniRewrite>{});
  proxy::Runtime runtime(io, settings, table, "", nullptr);
  table.reset();  // the runtime owns it now; holding it here would pin every original cluster
  proxy::WorkerPool pool(1, -1, runtime.snapshot());
  if (!pool.Bind("127.0.0.1:0").ok()) return 1;
  pool.Start();
  runtime.Start([&](std::shared_ptr<const proxy::Snapshot> s) { pool.Publish(std::move(s)); });
  Changer change(runtime, mesh);

  // (a) one change at a time, each acknowledged by the worker before the next.
  std::vector<double> one;
  for (int i = 0; i < 1000; ++i) {
    const double t0 = ThreadCpuMs();
    change(i);
    one.push_back(ThreadCpuMs() - t0);
    WaitAcked(pool, runtime.snapshot()->sequence);
  }
  std::printf("(a) one change, control-thread CPU: median %.3f ms, p99 %.3f ms, max %.3f ms\n",
              Percentile(one, 0.5), Percentile(one, 0.99), Percentile(one, 1.0));

  // (b) a burst of 1,000 changes back to back.
  const double b0 = ThreadCpuMs();
  const auto w0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) change(1000 + i);
  const double burst = ThreadCpuMs() - b0;
  WaitAcked(pool, runtime.snapshot()->sequence);
  const double burst_wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w0).count();
  std::printf("(b) burst of 1000 changes: control-thread CPU %.1f ms; all installed by the worker after %.1f ms\n",
              burst, burst_wall);

  // (c) memory across `changes` changes (the worker drops old snapshots as it installs new ones).
  WaitAcked(pool, runtime.snapshot()->sequence);
  const long rss0 = RssKib();
  const size_t heap0 = mallinfo2().uordblks;
  const double c0 = ThreadCpuMs();
  for (int i = 0; i < changes; ++i) {
    change(2000 + i);
    if (i % 100 == 99) WaitAcked(pool, runtime.snapshot()->sequence);
  }
  const double all = ThreadCpuMs() - c0;
  WaitAcked(pool, runtime.snapshot()->sequence);
  std::printf("(c) %d changes (%.3f ms CPU each): RSS %ld -> %ld KiB, heap in use %zu -> %zu KiB\n", changes,
              all / changes, rss0, RssKib(), heap0 / 1024, mallinfo2().uordblks / 1024);

  // A full reload whose files changed one cluster: Reuse against the running table.
  std::vector<config::Cluster> reloaded = mesh;
  reloaded[5].endpoints.pop_back();
  auto loaded = std::make_shared<const config::RouteTable>(std::move(reloaded), std::vector<config::SniRewrite>{});
  const double r0 = ThreadCpuMs();
  runtime.SetTable(loaded);
  std::printf("full reload (table already loaded) diffed and published: %.1f ms CPU\n", ThreadCpuMs() - r0);

  std::printf("baseline, today's full rebuild per change: %.1f ms CPU\n", BaselineFullRebuildMs(mesh, 5));
  pool.Stop();
  pool.Join();
  return 0;
}
