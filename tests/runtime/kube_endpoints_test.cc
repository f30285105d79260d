// The Kubernetes fast path (issue 14, part 3): an EndpointSlice/Pod-only
// batch, as kubemesh::KubeObjects reports it, installed by
// Runtime::ApplyKubeEndpoints must leave exactly the table a full load of
// the same final object set gives. Random batches of endpoint readiness
// flips, endpoints added and removed, Pod readiness and label flips (which
// move endpoints between DestinationRule subsets), Pods deleted and re-added.
// Every cluster is compared with SameContent, endpoint order included: the
// loader's order is stable (slices in source-name order, then each slice's
// endpoint order), and the small load reads the same slices in the same order.
//
// Object shapes follow the API reference: EndpointSlice
// (https://kubernetes.io/docs/reference/kubernetes-api/service-resources/endpoint-slice-v1/:
// kubernetes.io/service-name label, endpoints[].addresses/conditions.ready/targetRef),
// Pod status.podIP and the Ready condition.
#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "config/kube/kube_objects.h"
#include "gtest/gtest.h"
#include "proxy/runtime/runtime.h"

namespace meshgate::proxy {
namespace {

namespace json = boost::json;

constexpr int kServices = 12;
constexpr int kPodsPerService = 4;

std::string Ns(int s) { return "ns" + std::to_string(s % 3); }
std::string Ip(int s, int p) { return "10.1." + std::to_string(s) + "." + std::to_string(p + 1); }

struct PodState {
  bool exists = true;
  bool ready = true;
  std::string version = "v1";
};
struct EndpointState {
  bool present = true;
  bool ready = true;
};

class KubeWorld {
 public:
  explicit KubeWorld(uint32_t seed) : rng_(seed) {
    pods_.assign(kServices, std::vector<PodState>(kPodsPerService));
    endpoints_.assign(kServices, std::vector<EndpointState>(kPodsPerService));
  }

  static json::object Service(int s) {
    json::array ports{json::object{{"name", "tls"}, {"port", 8000}, {"protocol", "TCP"}, {"targetPort", 8443}}};
    if (s % 4 == 0) ports.push_back(json::object{{"name", "tls2"}, {"port", 9000}, {"protocol", "TCP"}, {"targetPort", 9443}});
    return {{"metadata", {{"name", "svc" + std::to_string(s)}, {"namespace", Ns(s)}, {"resourceVersion", "1"}}},
            {"spec", {{"selector", {{"app", "svc" + std::to_string(s)}}}, {"ports", std::move(ports)}}}};
  }
  json::object Pod(int s, int p) const {
    const PodState& pod = pods_[s][p];
    return {{"metadata", {{"name", PodName(s, p)}, {"namespace", Ns(s)}, {"resourceVersion", std::to_string(version_)},
                          {"labels", {{"app", "svc" + std::to_string(s)}, {"version", pod.version}}}}},
            {"spec", {{"serviceAccountName", "sa" + std::to_string(s)}}},
            {"status", {{"podIP", Ip(s, p)},
                        {"conditions", json::array{{{"type", "Ready"}, {"status", pod.ready ? "True" : "False"}}}}}}};
  }
  // Two slices per Service, the pods split between them (as the controller may).
  json::object Slice(int s, int half) const {
    json::array endpoints;
    for (int p = half; p < kPodsPerService; p += 2) {
      if (!endpoints_[s][p].present) continue;
      endpoints.push_back(json::object{{"addresses", json::array{json::string(Ip(s, p))}},
                                       {"conditions", {{"ready", static_cast<bool>(endpoints_[s][p].ready)}}},
                                       {"targetRef", {{"kind", "Pod"}, {"name", PodName(s, p)}, {"namespace", Ns(s)}}}});
    }
    json::array ports{json::object{{"name", "tls"}, {"port", 8443}, {"protocol", "TCP"}}};
    if (s % 4 == 0) ports.push_back(json::object{{"name", "tls2"}, {"port", 9443}, {"protocol", "TCP"}});
    return {{"metadata", {{"name", SliceName(s, half)}, {"namespace", Ns(s)}, {"resourceVersion", std::to_string(version_)},
                          {"labels", {{"kubernetes.io/service-name", "svc" + std::to_string(s)}}}}},
            {"addressType", "IPv4"},
            {"ports", std::move(ports)},
            {"endpoints", std::move(endpoints)}};
  }
  static json::object Rule(int s) {
    return {{"metadata", {{"name", "dr" + std::to_string(s)}, {"namespace", Ns(s)}}},
            {"spec", {{"host", "svc" + std::to_string(s) + "." + Ns(s) + ".svc.cluster.local"},
                      {"subsets", json::array{{{"name", "v1"}, {"labels", {{"version", "v1"}}}},
                                              {{"name", "v2"}, {"labels", {{"version", "v2"}}}}}}}}};
  }

  void LoadAll(kubemesh::KubeObjects& objects) {
    objects.Put("Namespace", "v1", "ns0",
                {{"metadata", {{"name", "ns0"}, {"labels", {{"topology.istio.io/network", "net1"}}}}}});
    for (int s = 0; s < kServices; ++s) {
      const std::string key = Ns(s) + "/svc" + std::to_string(s);
      objects.Put("Service", "v1", key, Service(s));
      for (int p = 0; p < kPodsPerService; ++p) objects.Put("Pod", "v1", Ns(s) + "/" + PodName(s, p), Pod(s, p));
      for (int h = 0; h < 2; ++h) objects.Put("EndpointSlice", "discovery.k8s.io/v1", Ns(s) + "/" + SliceName(s, h), Slice(s, h));
      if (s % 3 == 0) objects.Put("DestinationRule", "networking.istio.io/v1", Ns(s) + "/dr" + std::to_string(s), Rule(s));
    }
    // A ServiceEntry sharing svc1's host: svc1's changes must take the full path.
    objects.Put("ServiceEntry", "networking.istio.io/v1", "ns1/shared",
                {{"metadata", {{"name", "shared"}, {"namespace", "ns1"}}},
                 {"spec", {{"hosts", json::array{"svc1.ns1.svc.cluster.local"}},
                           {"ports", json::array{{{"name", "tls"}, {"number", 8000}, {"protocol", "TLS"}}}},
                           {"resolution", "STATIC"},
                           {"endpoints", json::array{{{"address", "10.9.9.9"}}}}}}});
  }

  // One random endpoint-only change.
  void Mutate(kubemesh::KubeObjects& objects) {
    ++version_;
    const int s = static_cast<int>(rng_() % kServices);
    const int p = static_cast<int>(rng_() % kPodsPerService);
    const std::string pod_key = Ns(s) + "/" + PodName(s, p);
    switch (rng_() % 5) {
      case 0: endpoints_[s][p].ready = !endpoints_[s][p].ready; break;
      case 1: endpoints_[s][p].present = !endpoints_[s][p].present; break;
      case 2: pods_[s][p].ready = !pods_[s][p].ready; return objects.Put("Pod", "v1", pod_key, Pod(s, p));
      case 3:
        pods_[s][p].version = pods_[s][p].version == "v1" ? "v2" : "v1";
        return objects.Put("Pod", "v1", pod_key, Pod(s, p));
      default:
        pods_[s][p].exists = !pods_[s][p].exists;
        if (!pods_[s][p].exists) return objects.Erase("Pod", pod_key);
        return objects.Put("Pod", "v1", pod_key, Pod(s, p));
    }
    objects.Put("EndpointSlice", "discovery.k8s.io/v1", Ns(s) + "/" + SliceName(s, p % 2), Slice(s, p % 2));
  }
  uint32_t Next() { return rng_(); }
  // Endpoint p of Service s turns not ready (or ready again): one slice changes.
  void FlipEndpoint(kubemesh::KubeObjects& objects, int s, int p) {
    ++version_;
    endpoints_[s][p].ready = !endpoints_[s][p].ready;
    objects.Put("EndpointSlice", "discovery.k8s.io/v1", Ns(s) + "/" + SliceName(s, p % 2), Slice(s, p % 2));
  }
  bool EndpointReady(int s, int p) const { return endpoints_[s][p].ready; }

 private:
  static std::string PodName(int s, int p) { return "svc" + std::to_string(s) + "-pod" + std::to_string(p); }
  static std::string SliceName(int s, int half) { return "svc" + std::to_string(s) + "-" + std::to_string(half); }
  std::mt19937 rng_;
  int version_ = 1;
  std::vector<std::vector<PodState>> pods_;
  std::vector<std::vector<EndpointState>> endpoints_;
};

config::GatewayConfig Settings() {
  config::GatewayConfig settings;
  settings.listen = "127.0.0.1:15443";
  settings.network = "net1";
  return settings;
}

kubemesh::KubeObjects::Validate ValidateWith(const config::GatewayConfig& settings) {
  return [settings](const config::MeshSource& source) {
    config::MeshSources one;
    one.sources.push_back(source);
    return config::LoadMeshSources(one, settings.sni_rewrites, MeshLoadOptionsFor(settings)).errors;
  };
}

// Every cluster of a full load of `objects` is in `table`, with the same content.
void ExpectSameAsFullLoad(const config::RouteTable& table, const kubemesh::KubeObjects& objects,
                          const config::GatewayConfig& settings, int batch) {
  const config::MeshLoadResult full = LoadMeshFor(settings, "", objects.Sources());
  ASSERT_TRUE(full.table) << (full.errors.empty() ? "" : full.errors[0]);
  ASSERT_EQ(table.clusters().size(), full.table->clusters().size()) << "batch " << batch;
  for (const config::Cluster& want : full.table->clusters()) {
    const config::Cluster* got = table.FindByName(want.name);
    ASSERT_NE(got, nullptr) << want.name;
    EXPECT_TRUE(config::SameContent(*got, want)) << "batch " << batch << ": " << want.name << " differs";
  }
}

TEST(KubeEndpointsTest, RandomEndpointBatchesThroughTheFastPathEqualAFullLoad) {
  const config::GatewayConfig settings = Settings();
  kubemesh::KubeObjects objects(ValidateWith(settings));
  KubeWorld world(20240611);
  world.LoadAll(objects);
  boost::asio::io_context io;
  Runtime runtime(io, settings, std::make_shared<const config::RouteTable>(std::vector<config::Cluster>{},
                                                                         std::vector<config::SniRewrite>{}),
                  "", nullptr);
  ASSERT_FALSE(objects.TakeEndpointChange().has_value());  // the first set: the full path
  ASSERT_EQ(runtime.ApplyKubeObjects(objects.Sources(), "first sync"), "");
  ExpectSameAsFullLoad(*runtime.snapshot()->table, objects, settings, 0);
  int fast = 0;
  int fallback = 0;
  for (int batch = 1; batch <= 300; ++batch) {
    const int size = 1 + static_cast<int>(world.Next() % 4);
    for (int i = 0; i < size; ++i) world.Mutate(objects);
    std::optional<kubemesh::EndpointChange> change = objects.TakeEndpointChange();
    ASSERT_TRUE(change.has_value()) << "an endpoint-only batch yields a change";
    if (runtime.ApplyKubeEndpoints(*change, "batch")) {
      ++fast;
    } else {
      ++fallback;
      ASSERT_EQ(runtime.ApplyKubeObjects(objects.Sources(), "batch"), "");
    }
    ExpectSameAsFullLoad(*runtime.snapshot()->table, objects, settings, batch);
    if (HasFatalFailure()) return;
  }
  std::cout << "[ measured ] " << fast << " batches by the fast path, " << fallback
            << " fell back (svc1 shares its host with a ServiceEntry)\n";
  EXPECT_GT(fast, 150);
  EXPECT_GT(fallback, 0);
}

// Issue 14 part 3: a burst of endpoint changes across many Services is one
// table version and one snapshot for the workers (with DNS on, as after
// Runtime::Start), and every changed cluster is served from that snapshot.
TEST(KubeEndpointsTest, AMultiServiceBatchPublishesOneSnapshotServingEveryChange) {
  const config::GatewayConfig settings = Settings();
  kubemesh::KubeObjects objects(ValidateWith(settings));
  KubeWorld world(3);
  world.LoadAll(objects);
  boost::asio::io_context io;
  Runtime runtime(io, settings, std::make_shared<const config::RouteTable>(std::vector<config::Cluster>{},
                                                                         std::vector<config::SniRewrite>{}),
                  "", nullptr);
  int published = 0;
  runtime.Start([&](std::shared_ptr<const Snapshot>) { ++published; });
  ASSERT_FALSE(objects.TakeEndpointChange().has_value());
  ASSERT_EQ(runtime.ApplyKubeObjects(objects.Sources(), "first sync"), "");
  // svc1 shares its host with a ServiceEntry (the full path): left out.
  std::vector<int> services;
  for (int s = 0; s < kServices; ++s) {
    if (s != 1) services.push_back(s);
  }
  for (int s : services) world.FlipEndpoint(objects, s, 0);
  std::optional<kubemesh::EndpointChange> change = objects.TakeEndpointChange();
  ASSERT_TRUE(change.has_value());
  ASSERT_EQ(change->services.size(), services.size());
  const uint64_t sequence = runtime.snapshot()->sequence;
  const int published_before = published;
  ASSERT_TRUE(runtime.ApplyKubeEndpoints(*change, "burst")) << "an endpoint-only batch takes the fast path";
  EXPECT_EQ(runtime.snapshot()->sequence, sequence + 1) << "one snapshot for the whole batch";
  EXPECT_EQ(published, published_before + 1);
  const config::RouteTable& table = *runtime.snapshot()->table;
  ExpectSameAsFullLoad(table, objects, settings, 1);
  for (int s : services) {
    // No Gateway in this world, so Route() misses as not_exported: look the
    // cluster up by (host, port, subset) as Route() does after the SNI parse.
    const std::string host = "svc" + std::to_string(s) + "." + Ns(s) + ".svc.cluster.local";
    struct {
      const config::Cluster* cluster;
    } routed{table.Find(host, 8000, "")};
    ASSERT_NE(routed.cluster, nullptr) << host;
    const std::string& sni = host;
    const auto it = std::find_if(routed.cluster->endpoints.begin(), routed.cluster->endpoints.end(),
                                 [&](const config::Endpoint& e) { return e.address == Ip(s, 0); });
    ASSERT_NE(it, routed.cluster->endpoints.end()) << sni;
    EXPECT_EQ(it->ready, world.EndpointReady(s, 0)) << sni << " serves the batch's endpoint state";
    EXPECT_FALSE(world.EndpointReady(s, 0));
  }
}

TEST(KubeEndpointsTest, OtherKindsAndRelistsTakeTheFullPath) {
  const config::GatewayConfig settings = Settings();
  kubemesh::KubeObjects objects(ValidateWith(settings));
  KubeWorld world(7);
  world.LoadAll(objects);
  ASSERT_FALSE(objects.TakeEndpointChange().has_value());
  objects.Put("Service", "v1", "ns2/svc2", [] {
    json::object s = KubeWorld::Service(2);
    s["metadata"].as_object()["resourceVersion"] = "2";
    s["spec"].as_object()["ports"].as_array()[0].as_object()["port"] = 8001;
    return s;
  }());
  EXPECT_FALSE(objects.TakeEndpointChange().has_value()) << "a Service changed";
  objects.Put("DestinationRule", "networking.istio.io/v1", "ns0/dr0",
              [] { json::object r = KubeWorld::Rule(0); r["metadata"].as_object()["resourceVersion"] = "2"; return r; }());
  EXPECT_FALSE(objects.TakeEndpointChange().has_value()) << "a DestinationRule changed";
  objects.Replace("Pod", "v1", {});
  EXPECT_FALSE(objects.TakeEndpointChange().has_value()) << "Pods listed again";
  world.Mutate(objects);
  EXPECT_TRUE(objects.TakeEndpointChange().has_value());
}

TEST(KubeEndpointsTest, APodReachesItsServiceThroughTheSliceThatNamesIt) {
  const config::GatewayConfig settings = Settings();
  kubemesh::KubeObjects objects(ValidateWith(settings));
  KubeWorld world(1);
  world.LoadAll(objects);
  objects.EndBatch();
  json::object pod = world.Pod(5, 2);
  pod["status"].as_object()["conditions"] = json::array{{{"type", "Ready"}, {"status", "False"}}};
  pod["metadata"].as_object()["resourceVersion"] = "99";
  objects.Put("Pod", "v1", "ns2/svc5-pod2", pod);
  std::optional<kubemesh::EndpointChange> change = objects.TakeEndpointChange();
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->services, std::vector<std::string>{"ns2/svc5"});
  EXPECT_TRUE(change->pods_changed);
  ASSERT_EQ(change->upserted.size(), 1u);
  EXPECT_EQ(change->upserted[0].name, "kubernetes Pod ns2/svc5-pod2");
  // The Service, its two slices, its four Pods (by targetRef and IP), the
  // Namespace and the four DestinationRules; no other Service's objects.
  std::vector<std::string> names;
  for (const auto& s : change->sources) names.push_back(s.name);
  EXPECT_EQ(names.size(), 12u) << ::testing::PrintToString(names);
  EXPECT_EQ(std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.find("svc5") != std::string::npos; }), 7)
      << ::testing::PrintToString(names);
}

}  // namespace
}  // namespace meshgate::proxy
