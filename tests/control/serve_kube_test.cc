// `meshgatectl serve` following two clusters' Kubernetes API servers
// (serve.yaml clusters[].kubernetes): the real binary against two test API
// servers (tests/kube/api_server.py: TLS with a test CA, bearer tokens, the
// list and watch wire format of "API Concepts",
// https://kubernetes.io/docs/reference/using-api/api-concepts/), each reached
// through a kubeconfig ("Organizing Cluster Access Using kubeconfig Files").
// Cross-cluster ServiceEntries and the `.global` DNS answers (dig, Debian
// dnsutils) follow live changes; waits are on serve's own signals (a long
// poll returning, a version, /healthz, /v1/kubernetes), never on sleeps.
#include <signal.h>
#include <sys/wait.h>

#include <boost/json.hpp>

#include <chrono>
#include <future>
#include <map>
#include <regex>
#include <string>

#include "absl/strings/numbers.h"
#include "base/io/http_server.h"
#include "gtest/gtest.h"
#include "tests/control/run_command.h"
#include "tests/kube/test_api_server.h"
#include "tests/support/meshgate_process.h"

namespace meshgate::testing {
namespace {

namespace json = boost::json;
using kube::testing::TestApiServer;
using Clock = std::chrono::steady_clock;

constexpr char kSlices[] = "/apis/discovery.k8s.io/v1";

json::object Service(const std::string& name, const std::string& ns) {
  return json::object{
      {"apiVersion", "v1"},
      {"kind", "Service"},
      {"metadata", json::object{{"name", name}, {"namespace", ns}, {"labels", json::object{{"app", name}}}}},
      {"spec", json::object{{"selector", json::object{{"app", name}}},
                            {"type", "ClusterIP"},
                            {"ports", json::array{json::object{
                                          {"name", "http"}, {"port", 8000}, {"protocol", "TCP"}, {"targetPort", 80}}}}}}};
}

// An EndpointSlice as the endpointslice controller writes it.
json::object Slice(const std::string& service, const std::string& ns, const std::string& address) {
  return json::object{
      {"apiVersion", "discovery.k8s.io/v1"},
      {"kind", "EndpointSlice"},
      {"metadata", json::object{{"name", service + "-1"},
                                {"namespace", ns},
                                {"labels", json::object{{"kubernetes.io/service-name", service}}}}},
      {"addressType", "IPv4"},
      {"ports", json::array{json::object{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}}}},
      {"endpoints", json::array{json::object{{"addresses", json::array{json::string(address)}},
                                             {"conditions", json::object{{"ready", true}}}}}}};
}

void AddService(TestApiServer& api, const std::string& name, const std::string& ns, const std::string& address) {
  api.Change("add", Service(name, ns), "/api/v1", "services");
  api.Change("add", Slice(name, ns, address), kSlices, "endpointslices");
}

class ServeKubeTest : public ::testing::Test {
 protected:
  ~ServeKubeTest() override { Stop(); }

  std::string Kubeconfig(const TestApiServer& api, const std::string& name) {
    const std::string ca = dir_.Write(name + "-ca.pem", api.root_pem());
    return dir_.Write(name + ".kubeconfig",
                      "apiVersion: v1\nkind: Config\ncurrent-context: " + name +
                          "\nclusters:\n- name: " + name + "\n  cluster:\n    server: https://127.0.0.1:" +
                          std::to_string(api.port()) + "\n    certificate-authority: " + ca +
                          "\nusers:\n- name: serve\n  user:\n    token: token-1\n"
                          "contexts:\n- name: " + name + "\n  context: {cluster: " + name + ", user: serve}\n");
  }

  // serve.yaml with c1 and c2 each on its own API server (relative
  // kubeconfig paths: they resolve against serve.yaml's directory).
  std::string ServeYaml() {
    Kubeconfig(api1_, "c1");
    Kubeconfig(api2_, "c2");
    return dir_.Write("serve.yaml",
                      "dns: {listen: \"127.0.0.1:0\", zone: global}\n"
                      "clusters:\n"
                      "- {name: c1, network: network1, gateway: 192.0.2.1, kubernetes: {kubeconfig: c1.kubeconfig}}\n"
                      "- {name: c2, network: network2, gateway: 192.0.2.2, kubernetes: {kubeconfig: c2.kubeconfig}}\n");
  }

  // Starts serve; true once it logged its DNS port (after the HTTP one).
  bool Start(const std::string& config) {
    pid_ = SpawnLogged({MESHGATECTL_BIN, "serve", "--config", config, "--listen", "127.0.0.1:0"}, Log_path());
    return WaitFor([&] { return dns_port() != 0 || !Alive(); }, 10000) && dns_port() != 0;
  }
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  bool Alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }
  std::string Log_path() const { return dir_.path() + "/serve.log"; }
  std::string Log() const { return Read(Log_path()); }
  uint16_t PortAfter(const std::string& marker) const {
    const std::string text = Log();
    const size_t at = text.find(marker);
    uint32_t port = 0;
    if (at == std::string::npos) return 0;
    const size_t start = at + marker.size();
    return absl::SimpleAtoi(text.substr(start, text.find('\n', start) - start), &port) ? static_cast<uint16_t>(port)
                                                                                      : 0;
  }
  uint16_t dns_port() const { return PortAfter("udp+tcp 127.0.0.1:"); }
  std::string http() const { return "127.0.0.1:" + std::to_string(PortAfter("serving HTTP on 127.0.0.1:")); }

  io::HttpResult Get(const std::string& target, int timeout_ms = 3000) const {
    return io::HttpCall(http(), "GET", target, timeout_ms);
  }
  uint64_t Version(const io::HttpResult& r) const {
    uint64_t v = 0;
    return absl::SimpleAtoi(io::HeaderValue(r.headers, "X-Meshgate-Version"), &v) ? v : 0;
  }
  std::string Dig(const std::string& args) const {
    return Shell("dig +time=2 +tries=1 @127.0.0.1 -p " + std::to_string(dns_port()) + " " + args).out;
  }
  // The `addresses` of one consumer's published ServiceEntries, by host.
  static std::map<std::string, std::string> Vips(const std::string& body) {
    std::map<std::string, std::string> out;
    static const std::regex entry(R"(hosts: \[([^\]]+)\][\s\S]*?addresses: \[([^\]]+)\])");
    for (std::sregex_iterator it(body.begin(), body.end(), entry), end; it != end; ++it) out[(*it)[1]] = (*it)[2];
    return out;
  }
  json::object Kubernetes() const {
    const io::HttpResult r = Get("/v1/kubernetes");
    return r.status == 200 ? json::parse(r.body).as_object() : json::object{};
  }
  bool Synced(const std::string& cluster) const {
    const json::object k = Kubernetes();
    const auto* clusters = k.if_contains("clusters");
    if (clusters == nullptr || !clusters->as_object().contains(cluster)) return false;
    return clusters->as_object().at(cluster).at("synced").as_bool() &&
           clusters->as_object().at(cluster).at("applies").as_int64() > 0;
  }

  TestApiServer api1_;
  TestApiServer api2_;
  TempDir dir_;
  pid_t pid_ = -1;
};

// (a) and (d): each cluster's ServiceEntries list the other's Services through
// the other's gateway, dig answers exactly their VIPs, /v1/kubernetes shows
// both clusters synced.
TEST_F(ServeKubeTest, EachClusterGetsTheOthersServicesAndDnsAnswersTheirVips) {
  ASSERT_EQ(Shell("command -v dig").code, 0) << "dig is missing: install dnsutils (scripts/install-deps.sh)";
  AddService(api1_, "sleep", "foo", "10.1.0.5");
  AddService(api2_, "httpbin", "bar", "10.2.0.7");
  ASSERT_TRUE(Start(ServeYaml())) << Log();
  ASSERT_TRUE(WaitFor([&] { return Synced("c1") && Synced("c2"); }, 10000)) << Kubernetes() << Log();

  const io::HttpResult c1 = Get("/v1/serviceentries?cluster=c1");
  const io::HttpResult c2 = Get("/v1/serviceentries?cluster=c2");
  ASSERT_EQ(c1.status, 200) << c1.body;
  ASSERT_EQ(c2.status, 200) << c2.body;
  const auto vips1 = Vips(c1.body);
  const auto vips2 = Vips(c2.body);
  ASSERT_EQ(vips1.size(), 1u) << c1.body;
  ASSERT_EQ(vips2.size(), 1u) << c2.body;
  ASSERT_EQ(vips1.count("httpbin.bar.global"), 1u) << c1.body;
  ASSERT_EQ(vips2.count("sleep.foo.global"), 1u) << c2.body;
  EXPECT_NE(c1.body.find("address: 192.0.2.2"), std::string::npos) << "c2's gateway: " << c1.body;
  EXPECT_NE(c2.body.find("address: 192.0.2.1"), std::string::npos) << "c1's gateway: " << c2.body;
  EXPECT_EQ(Dig("+short httpbin.bar.global A"), vips1.at("httpbin.bar.global") + "\n");
  EXPECT_EQ(Dig("+short +tcp sleep.foo.global A"), vips2.at("sleep.foo.global") + "\n");

  // routes/: each cluster's own objects, as JSON mesh sources.
  const io::HttpResult routes = Get("/v1/routes?cluster=c2");
  ASSERT_EQ(routes.status, 200) << routes.body;
  EXPECT_NE(routes.body.find("# source: kubernetes Service bar/httpbin"), std::string::npos) << routes.body;
  EXPECT_NE(routes.body.find("# source: kubernetes EndpointSlice bar/httpbin-1"), std::string::npos) << routes.body;
  EXPECT_EQ(routes.body.find("sleep"), std::string::npos) << "c1's objects are not c2's routes: " << routes.body;

  const json::object k = Kubernetes();
  for (const char* cluster : {"c1", "c2"}) {
    const json::object& status = k.at("clusters").at(cluster).as_object();
    EXPECT_TRUE(status.at("synced").as_bool()) << k;
    EXPECT_NE(std::string(status.at("source").as_string()).find(std::string(cluster) + ".kubeconfig"),
              std::string::npos)
        << k;
    bool services_listed = false;
    for (const json::value& r : status.at("resources").as_array()) {
      if (r.at("resource").as_string() == "services.v1") {
        services_listed = r.at("state").as_string() == "synced" && r.at("lists").as_int64() >= 1 &&
                          !r.at("resource_version").as_string().empty();
      }
    }
    EXPECT_TRUE(services_listed) << k;
  }
}

// (b): a Service added in c2 reaches c1's long poll within 1 s, and DNS with
// it; deleting it removes it again (NXDOMAIN).
TEST_F(ServeKubeTest, AddedServiceWakesTheLongPollAndDnsWithin1sAndDeletionRemovesIt) {
  ASSERT_EQ(Shell("command -v dig").code, 0) << "dig is missing: install dnsutils (scripts/install-deps.sh)";
  AddService(api1_, "sleep", "foo", "10.1.0.5");
  AddService(api2_, "httpbin", "bar", "10.2.0.7");
  ASSERT_TRUE(Start(ServeYaml())) << Log();
  ASSERT_TRUE(WaitFor([&] { return Synced("c1") && Synced("c2"); }, 10000)) << Kubernetes() << Log();
  io::HttpResult before = Get("/v1/serviceentries?cluster=c1");
  ASSERT_EQ(before.status, 200);
  EXPECT_NE(Dig("ratings.bar.global A").find("status: NXDOMAIN"), std::string::npos);

  auto poll = [&](uint64_t version) {
    return std::async(std::launch::async, [this, version] {
      return Get("/v1/serviceentries?cluster=c1&watch=1&timeout=10&version=" + std::to_string(version), 12000);
    });
  };
  auto added = poll(Version(before));
  const auto t0 = Clock::now();
  AddService(api2_, "ratings", "bar", "10.2.0.9");
  const io::HttpResult after = added.get();
  const auto poll_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  ASSERT_EQ(after.status, 200) << after.body;
  EXPECT_GT(Version(after), Version(before));
  EXPECT_LT(poll_ms, 1000);
  const auto vips = Vips(after.body);
  ASSERT_EQ(vips.count("ratings.bar.global"), 1u) << after.body;
  std::string answer;
  ASSERT_TRUE(WaitFor([&] { return (answer = Dig("+short ratings.bar.global A")) == vips.at("ratings.bar.global") + "\n"; },
                      1000))
      << answer;
  const auto dns_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_LT(dns_ms, 1000);
  std::cout << "[ measured ] c2 Service -> c1 long poll " << poll_ms << " ms, -> DNS answer " << dns_ms << " ms\n";

  auto removed = poll(Version(after));
  api2_.Change("delete", Slice("ratings", "bar", "10.2.0.9"), kSlices, "endpointslices");
  api2_.Change("delete", Service("ratings", "bar"), "/api/v1", "services");
  io::HttpResult gone = removed.get();
  // The two deletions may land in two versions; wait on the next one if so.
  if (gone.body.find("ratings.bar.global") != std::string::npos) gone = poll(Version(gone)).get();
  ASSERT_EQ(gone.status, 200);
  EXPECT_EQ(gone.body.find("ratings.bar.global"), std::string::npos) << gone.body;
  EXPECT_NE(gone.body.find("httpbin.bar.global"), std::string::npos) << gone.body;
  EXPECT_NE(Dig("ratings.bar.global A").find("status: NXDOMAIN"), std::string::npos);
}

// (c): a malformed object in c2 is rejected alone and named in /healthz
// (Kind ns/name: field: what) and /v1/kubernetes; the rest publish.
TEST_F(ServeKubeTest, MalformedObjectIsRejectedAloneAndNamedWhileTheRestPublish) {
  AddService(api1_, "sleep", "foo", "10.1.0.5");
  AddService(api2_, "httpbin", "bar", "10.2.0.7");
  AddService(api2_, "broken", "bar", "not-an-ip");
  ASSERT_TRUE(Start(ServeYaml())) << Log();
  ASSERT_TRUE(WaitFor([&] { return Synced("c1") && Synced("c2"); }, 10000)) << Kubernetes() << Log();
  const std::string health = Get("/healthz").body;
  EXPECT_NE(health.find("problems:"), std::string::npos) << health;
  EXPECT_NE(health.find("cluster c2: kubernetes: rejected EndpointSlice bar/broken-1: endpoints["), std::string::npos)
      << health;
  EXPECT_NE(health.find("not-an-ip"), std::string::npos) << health;
  const json::object k = Kubernetes();
  const json::array& rejected = k.at("clusters").at("c2").at("rejected").as_array();
  ASSERT_EQ(rejected.size(), 1u) << k;
  EXPECT_EQ(rejected[0].at("name").as_string(), "kubernetes EndpointSlice bar/broken-1") << k;
  EXPECT_TRUE(k.at("clusters").at("c1").at("rejected").as_array().empty()) << k;

  const io::HttpResult routes = Get("/v1/routes?cluster=c2");
  ASSERT_EQ(routes.status, 200) << routes.body;
  EXPECT_NE(routes.body.find("EndpointSlice bar/httpbin-1"), std::string::npos) << routes.body;
  EXPECT_EQ(routes.body.find("not-an-ip"), std::string::npos) << routes.body;
  const io::HttpResult entries = Get("/v1/serviceentries?cluster=c1");
  ASSERT_EQ(entries.status, 200) << entries.body;
  EXPECT_NE(entries.body.find("httpbin.bar.global"), std::string::npos) << entries.body;
}

// (e): before c2's first complete sync nothing is published from it: its
// routes and c1's ServiceEntries (which list c2's services) answer 503
// "syncing", /healthz says what is pending; c2's own ServiceEntries (c1's
// services, synced) publish. Once c2's API server answers, all publish.
TEST_F(ServeKubeTest, NothingIsPublishedFromAClusterBeforeItsFirstSync) {
  AddService(api1_, "sleep", "foo", "10.1.0.5");
  AddService(api2_, "httpbin", "bar", "10.2.0.7");
  api2_.Command({{"op", "down"}});
  ASSERT_TRUE(Start(ServeYaml())) << Log();
  ASSERT_TRUE(WaitFor([&] { return Synced("c1"); }, 10000)) << Kubernetes() << Log();
  for (const char* target : {"/v1/routes?cluster=c2", "/v1/serviceentries?cluster=c1"}) {
    const io::HttpResult r = Get(target);
    EXPECT_EQ(r.status, 503) << target << ": " << r.body;
    EXPECT_NE(r.body.find("is syncing"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("cluster c2 (pending: "), std::string::npos) << r.body;
  }
  EXPECT_EQ(Get("/v1/routes?cluster=c1").status, 200);
  const io::HttpResult c2 = Get("/v1/serviceentries?cluster=c2");
  EXPECT_EQ(c2.status, 200) << c2.body;
  EXPECT_NE(c2.body.find("sleep.foo.global"), std::string::npos) << c2.body;
  const std::string health = Get("/healthz").body;
  EXPECT_NE(health.find("cluster c2: kubernetes syncing, nothing published from it yet; pending: "), std::string::npos)
      << health;
  EXPECT_NE(health.find("services.v1"), std::string::npos) << health;
  EXPECT_FALSE(Synced("c2"));

  api2_.Command({{"op", "up"}});
  ASSERT_TRUE(WaitFor([&] { return Get("/v1/serviceentries?cluster=c1").status == 200; }, 15000)) << Log();
  EXPECT_NE(Get("/v1/serviceentries?cluster=c1").body.find("httpbin.bar.global"), std::string::npos);
  EXPECT_EQ(Get("/v1/routes?cluster=c2").status, 200);
}

// A serve.yaml reload that changes a cluster's kubernetes: restarts its
// source; removing the cluster stops it.
TEST_F(ServeKubeTest, ReloadRestartsAChangedSourceAndStopsARemovedOne) {
  AddService(api1_, "sleep", "foo", "10.1.0.5");
  AddService(api2_, "httpbin", "bar", "10.2.0.7");
  const std::string config = ServeYaml();
  ASSERT_TRUE(Start(config)) << Log();
  ASSERT_TRUE(WaitFor([&] { return Synced("c1") && Synced("c2"); }, 10000)) << Kubernetes() << Log();
  const int64_t lists_before = api2_.Counter("lists");
  // Same server, another file: the settings changed, so c2 follows again.
  Shell("cp " + dir_.path() + "/c2.kubeconfig " + dir_.path() + "/c2-again.kubeconfig");
  dir_.Write("serve.yaml.new",
             "dns: {listen: \"127.0.0.1:0\", zone: global}\nclusters:\n"
             "- {name: c1, network: network1, gateway: 192.0.2.1, kubernetes: {kubeconfig: c1.kubeconfig}}\n"
             "- {name: c2, network: network2, gateway: 192.0.2.2, kubernetes: {kubeconfig: c2-again.kubeconfig}}\n");
  ASSERT_EQ(Shell("mv " + dir_.path() + "/serve.yaml.new " + config).code, 0);
  ASSERT_TRUE(WaitFor([&] {
    const json::object k = Kubernetes();
    return k.contains("clusters") &&
           std::string(k.at("clusters").at("c2").at("source").as_string()).find("c2-again") != std::string::npos;
  }, 5000)) << Kubernetes() << Log();
  ASSERT_TRUE(WaitFor([&] { return Synced("c2"); }, 10000)) << Kubernetes();
  EXPECT_GT(api2_.Counter("lists"), lists_before);

  // c2 from files only: its watcher stops and its objects leave the documents.
  ASSERT_EQ(Shell("mkdir -p " + dir_.path() + "/m2").code, 0);
  dir_.Write("m2/reviews.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bar}\n"
                                "spec:\n  ports: [{name: http, port: 9080}]\n");
  const io::HttpResult entries = Get("/v1/serviceentries?cluster=c1");
  ASSERT_NE(entries.body.find("httpbin.bar.global"), std::string::npos) << entries.body;
  auto next = std::async(std::launch::async, [&] {
    return Get("/v1/serviceentries?cluster=c1&watch=1&timeout=10&version=" + std::to_string(Version(entries)), 12000);
  });
  dir_.Write("serve.yaml.new",
             "dns: {listen: \"127.0.0.1:0\", zone: global}\nclusters:\n"
             "- {name: c1, network: network1, gateway: 192.0.2.1, kubernetes: {kubeconfig: c1.kubeconfig}}\n"
             "- {name: c2, network: network2, gateway: 192.0.2.2, mesh: [m2]}\n");
  ASSERT_EQ(Shell("mv " + dir_.path() + "/serve.yaml.new " + config).code, 0);
  const io::HttpResult files = next.get();
  EXPECT_EQ(files.body.find("httpbin.bar.global"), std::string::npos) << files.body;
  EXPECT_NE(files.body.find("reviews.bar.global"), std::string::npos) << files.body;
  EXPECT_FALSE(Kubernetes().at("clusters").as_object().contains("c2")) << Kubernetes();
  EXPECT_NE(Log().find("cluster c2: no longer following its Kubernetes API server"), std::string::npos) << Log();

  dir_.Write("serve.yaml.new",
             "dns: {listen: \"127.0.0.1:0\", zone: global}\nclusters:\n"
             "- {name: c1, network: network1, gateway: 192.0.2.1, kubernetes: {kubeconfig: c1.kubeconfig}}\n");
  ASSERT_EQ(Shell("mv " + dir_.path() + "/serve.yaml.new " + config).code, 0);
  ASSERT_TRUE(WaitFor([&] { return Get("/v1/routes?cluster=c2").status == 404; }, 5000)) << Log();
}

// Credentials that do not load stop serve at start, naming the cluster.
TEST_F(ServeKubeTest, CredentialsThatDoNotLoadStopServeNamingTheCluster) {
  const std::string config = dir_.Write(
      "serve.yaml", "clusters:\n- {name: c1, gateway: 192.0.2.1, kubernetes: {kubeconfig: missing.kubeconfig}}\n");
  const CmdResult r = Ctl("serve --config " + config + " --listen 127.0.0.1:0");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("cluster c1: kubernetes: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(dir_.path() + "/missing.kubeconfig"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace meshgate::testing
