// meshgatectl serve, run as a process and read over real HTTP(S), and a real
// meshgate following it: updates, long polls, outages, and what may never be
// published (a private key).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "config/mesh/mesh_loader.h"
#include "control/publisher.h"
#include "gtest/gtest.h"
#include "base/io/http_server.h"
#include "tests/control/mesh_pki.h"
#include "tests/support/mesh_yaml.h"
#include "tests/support/ports.h"
#include "tests/control/run_command.h"
#include "tests/support/meshgate_process.h"

namespace {

namespace fs = std::filesystem;
using meshgate::io::HttpCall;
using meshgate::io::HttpResult;
using meshgate::testing::CmdResult;
using meshgate::testing::Ctl;
using meshgate::testing::MeshgateProcess;
using meshgate::testing::ReservedPort;
using meshgate::testing::WaitFor;

using meshgate::testing::Read;

void Write(const std::string& path, const std::string& text) {
  // Written aside and renamed in, as kubectl and ConfigMaps do: no half file is ever read.
  std::ofstream(path + ".tmp") << text;
  fs::rename(path + ".tmp", path);
}

// A ServiceEntry for `name`.bar routing port 8000 to 127.0.0.1:port.
std::string ServiceEntry(const std::string& name, uint16_t port) {
  return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: " + name +
         ", namespace: bar}\nspec:\n  hosts: [" + name +
         ".bar.svc.cluster.local]\n  ports: [{number: 8000, name: http, protocol: HTTP}]\n"
         "  resolution: STATIC\n  endpoints: [{address: 127.0.0.1, ports: {http: " +
         std::to_string(port) + "}}]\n";
}

std::string KubeService(const std::string& name, const std::string& ns) {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + ", namespace: " + ns +
         "}\nspec:\n  ports: [{name: http, port: 8000}]\n";
}

// meshgatectl serve as a child process; its log goes to a file.
class ServeProcess {
 public:
  ServeProcess(const std::string& config, const std::string& log, const std::string& listen = "127.0.0.1:0")
      : log_(log) {
    const std::vector<std::string> args = {MESHGATECTL_BIN, "serve", "--config", config, "--listen", listen};
    pid_ = meshgate::testing::SpawnLogged(args, log);
    WaitFor([&] { return !Address().empty() || Exited(); }, 10000);
  }
  ~ServeProcess() { Kill(SIGTERM); }

  // "127.0.0.1:PORT" from the "serving HTTP(S) on" line; "" until then.
  std::string Address() const {
    const std::string text = Read(log_);
    const size_t at = text.find(" on 127.0.0.1:");
    if (at == std::string::npos || text.find("serving") == std::string::npos) return "";
    return text.substr(at + 4, text.find('\n', at) - at - 4);
  }
  // The port of Address(); 0 until it is logged.
  uint16_t Port() const {
    const std::string address = Address();
    uint32_t port = 0;
    const bool ok = !address.empty() && absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port);
    return ok ? static_cast<uint16_t>(port) : 0;
  }
  std::string Log() const { return Read(log_); }
  void Kill(int signo) {
    if (pid_ <= 0) return;
    ::kill(pid_, signo);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  bool Exited() {
    int status = 0;
    return pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_ && (pid_ = -1, true);
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

uint64_t Version(const HttpResult& r) {
  uint64_t v = 0;
  return absl::SimpleAtoi(meshgate::io::HeaderValue(r.headers, "X-Meshgate-Version"), &v) ? v : 0;
}

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/meshgatectl-serve-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    fs::create_directories(P("m1"));
    fs::create_directories(P("m2"));
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string P(const std::string& rel) const { return dir_ + "/" + rel; }

  // Two clusters: cluster1's gateway at 192.0.2.1, cluster2's by name.
  std::string WriteConfig(const std::string& extra = "") {
    Write(P("serve.yaml"), extra +
                               "allocations: state\n"
                               "clusters:\n"
                               "- {name: cluster1, network: network1, gateway: 192.0.2.1, mesh: [m1], ca: cluster1}\n"
                               "- {name: cluster2, network: network2, gateway: gw2.example.com:15443, mesh: [m2],"
                               " ca: cluster2}\n");
    fs::create_directories(P("state"));
    return P("serve.yaml");
  }

  std::string dir_;
};

TEST_F(ServeTest, PublishesRoutesServiceEntriesAndCertificatesWithVersionsAndEtags) {
  ASSERT_NO_FATAL_FAILURE(meshgate::testing::MakeCaMaterial(dir_));
  Write(P("m1/sleep.yaml"), KubeService("sleep", "foo"));
  Write(P("m2/httpbin.yaml"), KubeService("httpbin", "bar") + "---\n" + ServiceEntry("reviews", 9080));
  ServeProcess serve(WriteConfig(), P("serve.log"));
  const std::string at = serve.Address();
  ASSERT_FALSE(at.empty()) << serve.Log();

  const HttpResult routes = HttpCall(at, "GET", "/v1/routes?cluster=cluster2", 3000);
  ASSERT_EQ(routes.status, 200) << routes.body;
  EXPECT_EQ(routes.content_type, "application/yaml");
  EXPECT_GT(Version(routes), 0u);
  EXPECT_FALSE(meshgate::io::HeaderValue(routes.headers, "ETag").empty());
  // What a cluster-2 gateway loads: its own resources, parsed as meshgate parses files.
  const auto table = meshgate::config::LoadMeshFromString(routes.body, "routes", {{".global", ".svc.cluster.local"}});
  ASSERT_TRUE(table.errors.empty()) << table.errors[0];
  EXPECT_NE(table.table->Describe().find("reviews.bar.svc.cluster.local"), std::string::npos);

  // cluster1's sidecars reach cluster2's services through cluster2's gateway, and the other way round.
  const HttpResult entries = HttpCall(at, "GET", "/v1/serviceentries?cluster=cluster1", 3000);
  ASSERT_EQ(entries.status, 200);
  EXPECT_NE(entries.body.find("httpbin.bar.global"), std::string::npos) << entries.body;
  EXPECT_NE(entries.body.find("gw2.example.com"), std::string::npos);
  EXPECT_EQ(entries.body.find("sleep.foo.global"), std::string::npos);
  const auto loaded = meshgate::config::LoadMeshFromString(entries.body, "entries", {});
  EXPECT_TRUE(loaded.errors.empty()) << loaded.errors[0];
  EXPECT_NE(HttpCall(at, "GET", "/v1/serviceentries?cluster=cluster2", 3000).body.find("sleep.foo.global"),
            std::string::npos);

  EXPECT_EQ(HttpCall(at, "GET", "/v1/ca/root-cert.pem", 3000).body, Read(P("root/root-cert.pem")));
  EXPECT_EQ(HttpCall(at, "GET", "/v1/ca/cert-chain.pem?cluster=cluster2", 3000).body,
            Read(P("cluster2/cert-chain.pem")));

  // Unchanged: If-None-Match gives 304; an unknown cluster or path says what exists.
  const std::string etag = meshgate::io::HeaderValue(routes.headers, "ETag");
  EXPECT_EQ(HttpCall(at, "GET", "/v1/routes?cluster=cluster2", 3000, {{"If-None-Match", etag}}).status, 304);
  const HttpResult unknown = HttpCall(at, "GET", "/v1/routes?cluster=cluster9", 3000);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("known: cluster1, cluster2"), std::string::npos) << unknown.body;
  EXPECT_EQ(HttpCall(at, "GET", "/v1/routes", 3000).status, 400);
  EXPECT_EQ(HttpCall(at, "POST", "/v1/routes?cluster=cluster1", 3000).status, 405);
  EXPECT_EQ(HttpCall(at, "GET", "/healthz", 3000).status, 200);
}

TEST_F(ServeTest, WatchWaitsForANewVersionAndIsBounded) {
  Write(P("m2/a.yaml"), ServiceEntry("a", 9000));
  ServeProcess serve(WriteConfig(), P("serve.log"));
  const std::string at = serve.Address();
  ASSERT_FALSE(at.empty()) << serve.Log();
  const HttpResult first = HttpCall(at, "GET", "/v1/routes?cluster=cluster2", 3000);
  const uint64_t v1 = Version(first);
  ASSERT_GT(v1, 0u);

  // Nothing new: held for the timeout, then 304.
  const auto start = std::chrono::steady_clock::now();
  const std::string watch = "/v1/routes?cluster=cluster2&watch=1&version=" + std::to_string(v1);
  EXPECT_EQ(HttpCall(at, "GET", watch + "&timeout=1", 5000).status, 304);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
  // An older version: answered at once.
  EXPECT_EQ(HttpCall(at, "GET", "/v1/routes?cluster=cluster2&watch=1&version=1", 3000).status, 200);
  EXPECT_EQ(HttpCall(at, "GET", "/v1/routes?cluster=cluster2&watch=1&version=x", 3000).status, 400);

  // A change while a watch waits wakes it with the new version.
  HttpResult woken;
  std::thread waiter([&] { woken = HttpCall(at, "GET", watch + "&timeout=20", 25000); });
  // Changed once the watch is held (/healthz counts the held ones), not before.
  EXPECT_TRUE(WaitFor([&] { return HttpCall(at, "GET", "/healthz", 3000).body.find("watchers 1\n") != std::string::npos; }))
      << HttpCall(at, "GET", "/healthz", 3000).body;
  Write(P("m2/b.yaml"), ServiceEntry("b", 9001));
  waiter.join();
  ASSERT_EQ(woken.status, 200) << serve.Log();
  EXPECT_GT(Version(woken), v1);
  EXPECT_NE(woken.body.find("b.bar.svc.cluster.local"), std::string::npos);

  // A broken file keeps the last good version and is reported with its line.
  Write(P("m2/c.yaml"), "kind: [\n");
  EXPECT_TRUE(WaitFor([&] { return HttpCall(at, "GET", "/healthz", 3000).body.find("c.yaml:2") != std::string::npos; }))
      << HttpCall(at, "GET", "/healthz", 3000).body;
  EXPECT_EQ(Version(HttpCall(at, "GET", "/v1/routes?cluster=cluster2", 3000)), Version(woken));
}

TEST_F(ServeTest, NoRequestReachesAPrivateKey) {
  ASSERT_NO_FATAL_FAILURE(meshgate::testing::MakeCaMaterial(dir_));
  Write(P("m1/a.yaml"), ServiceEntry("a", 9000));
  Write(P("m2/b.yaml"), ServiceEntry("b", 9001));
  // A key pasted into a published file is refused, not published.
  Write(P("cluster2/cert-chain.pem"), Read(P("cluster2/cert-chain.pem")) + Read(P("cluster2/ca-key.pem")));
  ServeProcess serve(WriteConfig(), P("serve.log"));
  const std::string at = serve.Address();
  ASSERT_FALSE(at.empty()) << serve.Log();
  const std::vector<std::string> targets = {
      "/v1/ca/root-cert.pem", "/v1/ca/root-cert.pem?cluster=cluster1", "/v1/ca/cert-chain.pem?cluster=cluster1",
      "/v1/ca/cert-chain.pem?cluster=cluster2", "/v1/ca/ca-key.pem", "/v1/ca/root-key.pem",
      "/v1/ca/ca-key.pem?cluster=cluster1", "/v1/ca/../../cluster1/ca-key.pem", "/v1/ca/%2e%2e/ca-key.pem",
      "/v1/ca/cert-chain.pem/../ca-key.pem?cluster=cluster1", "/v1/ca/cert-chain.pem?cluster=../cluster1/ca-key",
      "/v1/ca/cert-chain.pem?cluster=cluster1/../root", "/v1/ca/cert-chain.pem?cluster=cluster1&file=ca-key.pem",
      "//v1/ca/ca-key.pem", "/v1/ca/", "/v1/ca", "/cluster1/ca-key.pem", "/root/root-key.pem", "/ca-key.pem",
      "/v1/routes?cluster=cluster1", "/v1/serviceentries?cluster=cluster1", "/healthz", "/"};
  for (const std::string& target : targets) {
    const HttpResult r = HttpCall(at, "GET", target, 3000);
    EXPECT_NE(r.status, -1) << target;
    EXPECT_EQ(r.body.find("PRIVATE KEY"), std::string::npos) << target;
  }
  EXPECT_EQ(HttpCall(at, "GET", "/v1/ca/cert-chain.pem?cluster=cluster1", 3000).status, 200);
  EXPECT_EQ(HttpCall(at, "GET", "/v1/ca/cert-chain.pem?cluster=cluster2", 3000).status, 404);
  EXPECT_NE(HttpCall(at, "GET", "/healthz", 3000).body.find("refusing to publish"), std::string::npos);
}

TEST_F(ServeTest, ServiceEntryVipsSurviveRestartsAndAddedServices) {
  Write(P("m2/a.yaml"), KubeService("a", "bar") + "---\n" + KubeService("b", "bar"));
  WriteConfig();
  std::string before;
  {
    ServeProcess serve(P("serve.yaml"), P("serve.log"));
    before = HttpCall(serve.Address(), "GET", "/v1/serviceentries?cluster=cluster1", 3000).body;
  }
  Write(P("m2/c.yaml"), KubeService("aa", "bar"));  // sorts between a and b
  ServeProcess serve(P("serve.yaml"), P("serve2.log"));
  const std::string after = HttpCall(serve.Address(), "GET", "/v1/serviceentries?cluster=cluster1", 3000).body;
  auto vip_of = [](const std::string& text, const std::string& host) {
    const size_t at = text.find("hosts: [" + host + "]");
    const size_t vip = text.find("addresses: [", at);
    return at == std::string::npos ? std::string() : text.substr(vip, text.find(']', vip) - vip);
  };
  for (const char* host : {"a.bar.global", "b.bar.global"}) {
    ASSERT_FALSE(vip_of(before, host).empty()) << before;
    EXPECT_EQ(vip_of(before, host), vip_of(after, host)) << host;
  }
  EXPECT_FALSE(vip_of(after, "aa.bar.global").empty()) << after;
  EXPECT_NE(vip_of(after, "aa.bar.global"), vip_of(after, "a.bar.global"));
}

TEST_F(ServeTest, AllocationsBesideTheConfigDoNotRetriggerItself) {
  Write(P("m2/a.yaml"), KubeService("a", "bar"));
  Write(P("serve.yaml"), "allocations: .\nclusters:\n- {name: cluster1, gateway: 192.0.2.1, mesh: [m1]}\n"
                         "- {name: cluster2, gateway: 192.0.2.2, mesh: [m2]}\n");
  ServeProcess serve(P("serve.yaml"), P("serve.log"));
  ASSERT_FALSE(serve.Address().empty()) << serve.Log();
  // A change: the new service gets a VIP, saved beside the (watched) config.
  Write(P("m2/b.yaml"), KubeService("b", "bar"));
  ASSERT_TRUE(WaitFor([&] {
    return HttpCall(serve.Address(), "GET", "/v1/serviceentries?cluster=cluster1", 3000).body.find("b.bar.global") !=
           std::string::npos;
  }));
  EXPECT_NE(Read(P("cluster1.vips")).find("b.bar.global"), std::string::npos);
  // That write must not start another refresh, which would write again, forever.
  // The file was saved before the version it serves was published, so both
  // are final here; what must not happen is then watched for a while: an
  // absence has no signal to wait on.
  const auto written = fs::last_write_time(P("cluster1.vips"));
  const uint64_t v = Version(HttpCall(serve.Address(), "GET", "/v1/serviceentries?cluster=cluster1", 3000));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // 8 debounce periods
  EXPECT_EQ(fs::last_write_time(P("cluster1.vips")), written);
  EXPECT_EQ(Version(HttpCall(serve.Address(), "GET", "/v1/serviceentries?cluster=cluster1", 3000)), v);
}

TEST_F(ServeTest, BadConfigSaysWhereAndExits) {
  Write(P("serve.yaml"), "clusters:\n- {name: Cluster_1, gateway: 192.0.2.1, mesh: [m1]}\n- {gateway: 'a b'}\n");
  const CmdResult r = Ctl("serve --config " + P("serve.yaml"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("serve.yaml:2:10: clusters[0].name: \"Cluster_1\" must be a DNS label"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("serve.yaml:3:3: clusters[1].name: required"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("clusters[1].mesh"), std::string::npos) << r.out;
}

// --- a gateway following serve ------------------------------------------------------------

class FollowTest : public ServeTest {
 protected:
  // serve over TLS with a certificate from cluster 2's intermediate.
  std::string TlsServeConfig() {
    EXPECT_EQ(Ctl("ca server --dir " + P("cluster2") + " --ip 127.0.0.1 --out " + P("serving")).code, 0);
    return WriteConfig("tls: {certChain: serving/cert-chain.pem, key: serving/key.pem}\n");
  }
  // meshgate following serve as cluster 2's gateway, trusting the shared root.
  std::string GatewayConfig(uint16_t serve_port, const std::string& ca_file, const std::string& extra = "") {
    Write(P("gateway.yaml"), extra + "control:\n  url: https://127.0.0.1:" + std::to_string(serve_port) +
                                 "\n  cluster: cluster2\n  caFile: " + ca_file +
                                 "\n  initialBackoff: 100ms\n  maxBackoff: 500ms\n");
    return P("gateway.yaml");
  }
  bool Routable(uint16_t gateway_port, const std::string& service) {
    const CmdResult r = meshgate::testing::MtlsCall(dir_, gateway_port, "outbound_.8000_._." + service + ".bar.global");
    return r.code == 0 && r.out.find("HTTP/1.0 200 ok") != std::string::npos;
  }
};

TEST_F(FollowTest, ServiceAddedOnTheControlSideIsRoutableWithinTwoSecondsAndSurvivesOutages) {
  ASSERT_NO_FATAL_FAILURE(meshgate::testing::MakeCaMaterial(dir_));
  meshgate::testing::OpensslServer backend(dir_);
  const uint16_t backend_port = backend.port();
  ASSERT_NE(backend_port, 0) << backend.Output();
  Write(P("m2/placeholder.yaml"), ServiceEntry("placeholder", 1));
  Write(P("m2/gateway.yaml"), meshgate::testing::kCrossNetworkGateway);
  // The gateway knows serve by its port, which must stay serve's across the restart below.
  const ReservedPort serve_port;
  ASSERT_NE(serve_port.port(), 0);
  auto serve = std::make_unique<ServeProcess>(TlsServeConfig(), P("serve.log"), serve_port.address());
  ASSERT_FALSE(serve->Address().empty()) << serve->Log();

  MeshgateProcess gw({"--config", GatewayConfig(serve_port.port(), P("root/root-cert.pem"))});
  ASSERT_TRUE(gw.running()) << gw.Log();
  ASSERT_TRUE(WaitFor([&] { return HttpCall(gw.readiness_address(), "GET", "/healthz/ready", 1000).status == 200; }))
      << gw.Log();
  EXPECT_FALSE(Routable(gw.port(), "httpbin"));  // unknown SNI: refused, never dialled

  // Added on the control side: routable on the gateway within 2 s, no restart.
  Write(P("m2/httpbin.yaml"), ServiceEntry("httpbin", backend_port));
  const auto added = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return Routable(gw.port(), "httpbin"); }, 2000)) << gw.Log();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - added);
  EXPECT_LT(took.count(), 2000);
  std::cout << "[ info     ] routable " << took.count() << " ms after the file changed on the control side\n";

  // The control component dies: the gateway keeps serving its last table.
  serve->Kill(SIGKILL);
  ASSERT_TRUE(WaitFor([&] {
    return HttpCall(gw.admin_address(), "GET", "/control", 1000).body.find("\"state\":\"unreachable\"") !=
           std::string::npos;
  })) << HttpCall(gw.admin_address(), "GET", "/control", 1000).body;
  EXPECT_TRUE(Routable(gw.port(), "httpbin"));
  EXPECT_EQ(HttpCall(gw.readiness_address(), "GET", "/healthz/ready", 1000).status, 200);
  EXPECT_NE(HttpCall(gw.metrics_address(), "GET", "/stats/prometheus", 1000).body.find("meshgate_control_connected 0"),
            std::string::npos);

  // Changed while it was away, then restarted: the gateway resyncs.
  Write(P("m2/httpbin2.yaml"), ServiceEntry("httpbin2", backend_port));
  serve = std::make_unique<ServeProcess>(P("serve.yaml"), P("serve2.log"), serve_port.address());
  ASSERT_FALSE(serve->Address().empty()) << serve->Log();
  EXPECT_TRUE(WaitFor([&] { return Routable(gw.port(), "httpbin2"); }, 5000)) << gw.Log();
  EXPECT_TRUE(Routable(gw.port(), "httpbin"));
  EXPECT_NE(HttpCall(gw.admin_address(), "GET", "/control", 1000).body.find("\"state\":\"synced\""), std::string::npos);
  EXPECT_NE(HttpCall(gw.metrics_address(), "GET", "/stats/prometheus", 1000).body.find("meshgate_control_connected 1"),
            std::string::npos);
}

TEST_F(FollowTest, AVersionThatDoesNotLoadIsRejectedAndTheLastGoodKeepsServing) {
  ASSERT_NO_FATAL_FAILURE(meshgate::testing::MakeCaMaterial(dir_));
  meshgate::testing::OpensslServer backend(dir_);
  const uint16_t backend_port = backend.port();
  ASSERT_NE(backend_port, 0) << backend.Output();
  Write(P("m2/httpbin.yaml"), ServiceEntry("httpbin", backend_port));
  Write(P("m2/gateway.yaml"), meshgate::testing::kCrossNetworkGateway);
  // The gateway's own file defines "local"; the control side will define it too.
  Write(P("local.yaml"), ServiceEntry("local", backend_port));
  ServeProcess serve(TlsServeConfig(), P("serve.log"));  // on a port of its choosing
  ASSERT_NE(serve.Port(), 0) << serve.Log();
  MeshgateProcess gw({"--config", GatewayConfig(serve.Port(), P("root/root-cert.pem"), "mesh: [local.yaml]\n")});
  ASSERT_TRUE(WaitFor([&] { return Routable(gw.port(), "httpbin"); })) << gw.Log();
  EXPECT_TRUE(Routable(gw.port(), "local"));

  Write(P("m2/dup.yaml"), ServiceEntry("local", 1) + "---\n" + ServiceEntry("httpbin3", backend_port));
  ASSERT_TRUE(WaitFor([&] {
    return HttpCall(gw.admin_address(), "GET", "/control", 1000).body.find("\"state\":\"rejected\"") != std::string::npos;
  })) << HttpCall(gw.admin_address(), "GET", "/control", 1000).body << gw.Log();
  const std::string status = HttpCall(gw.admin_address(), "GET", "/control", 1000).body;
  EXPECT_NE(status.find("ServiceEntry bar/local"), std::string::npos) << status;
  EXPECT_TRUE(Routable(gw.port(), "httpbin"));   // the last good table
  EXPECT_TRUE(Routable(gw.port(), "local"));
  EXPECT_FALSE(Routable(gw.port(), "httpbin3"));  // nothing of the rejected version
  EXPECT_NE(HttpCall(gw.metrics_address(), "GET", "/stats/prometheus", 1000)
                .body.find("meshgate_control_updates_total{result=\"rejected\"} 1"),
            std::string::npos);

  Write(P("m2/dup.yaml"), ServiceEntry("httpbin3", backend_port));
  EXPECT_TRUE(WaitFor([&] { return Routable(gw.port(), "httpbin3"); }, 3000)) << gw.Log();
  EXPECT_NE(HttpCall(gw.admin_address(), "GET", "/control", 1000).body.find("\"state\":\"synced\""), std::string::npos);
}

TEST_F(FollowTest, NotReadyUntilFirstSyncAndOnlyTrustsTheConfiguredCa) {
  ASSERT_NO_FATAL_FAILURE(meshgate::testing::MakeCaMaterial(dir_));
  ASSERT_EQ(Ctl("ca root --key-type ecdsa --out " + P("other")).code, 0);
  Write(P("m2/a.yaml"), ServiceEntry("a", 9000));
  Write(P("m2/gateway.yaml"), meshgate::testing::kCrossNetworkGateway);
  // The gateway is given serve's port before serve runs; held meanwhile, so nothing else takes it.
  const ReservedPort serve_port;
  ASSERT_NE(serve_port.port(), 0);
  // Nothing listens yet: not ready, and /control says why.
  MeshgateProcess gw({"--config", GatewayConfig(serve_port.port(), P("other/root-cert.pem"))});
  ASSERT_TRUE(gw.running()) << gw.Log();
  HttpResult ready = HttpCall(gw.readiness_address(), "GET", "/healthz/ready", 1000);
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("waiting for the first sync from control component"), std::string::npos) << ready.body;
  EXPECT_TRUE(WaitFor([&] {
    return HttpCall(gw.admin_address(), "GET", "/control", 1000).body.find("Connection refused") != std::string::npos;
  }, 15000));

  // Up, but its certificate does not chain to the CA the gateway trusts: still not ready.
  ServeProcess serve(TlsServeConfig(), P("serve.log"), serve_port.address());
  ASSERT_FALSE(serve.Address().empty()) << serve.Log();
  EXPECT_TRUE(WaitFor([&] {
    return HttpCall(gw.admin_address(), "GET", "/control", 1000).body.find("certificate") != std::string::npos;
  }, 15000)) << HttpCall(gw.admin_address(), "GET", "/control", 1000).body;
  EXPECT_EQ(HttpCall(gw.readiness_address(), "GET", "/healthz/ready", 1000).status, 503);
  EXPECT_EQ(gw.Stop(), 0);

  // Trusting the shared root, it syncs and becomes ready.
  MeshgateProcess trusted({"--config", GatewayConfig(serve_port.port(), P("root/root-cert.pem"))});
  EXPECT_TRUE(WaitFor([&] { return HttpCall(trusted.readiness_address(), "GET", "/healthz/ready", 1000).status == 200; },
                      15000))
      << trusted.Log();
}

}  // namespace

namespace {

// Issue 15, item 4: what serve publishes as a certificate is re-encoded from
// certificates OpenSSL parsed, so nothing else rides along.
class CertificatesOnlyTest : public ServeTest {};

TEST_F(CertificatesOnlyTest, OnlyParsedCertificatesAreServedReencoded) {
  ASSERT_NO_FATAL_FAILURE(meshgate::testing::MakeCaMaterial(dir_));
  const std::string chain = Read(P("cluster2/cert-chain.pem"));
  // The real chain passes byte for byte (OpenSSL wrote it).
  auto clean = meshgate::control::ReadCertificatesOnly(P("cluster2/cert-chain.pem"));
  ASSERT_TRUE(clean.ok()) << clean.status();
  EXPECT_EQ(*clean, chain);
  // Free text around and between the blocks is dropped, not published.
  Write(P("noisy.pem"), "secret-token: hunter2\n" + chain + "more text\n");
  auto noisy = meshgate::control::ReadCertificatesOnly(P("noisy.pem"));
  ASSERT_TRUE(noisy.ok()) << noisy.status();
  EXPECT_EQ(*noisy, chain);
  EXPECT_EQ(noisy->find("hunter2"), std::string::npos);
}

TEST_F(CertificatesOnlyTest, AKeyRelabelledCertificateIsRefused) {
  ASSERT_NO_FATAL_FAILURE(meshgate::testing::MakeCaMaterial(dir_));
  std::string key = Read(P("cluster2/ca-key.pem"));
  const size_t begin_end = key.find("-----", 5) + 5;
  const size_t end_at = key.find("-----END ");
  key = "-----BEGIN CERTIFICATE-----" + key.substr(begin_end, end_at - begin_end) + "-----END CERTIFICATE-----\n";
  Write(P("relabelled.pem"), Read(P("cluster2/cert-chain.pem")) + key);
  auto r = meshgate::control::ReadCertificatesOnly(P("relabelled.pem"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("is not an X.509 certificate"), std::string::npos) << r.status();
  Write(P("garbage.pem"), "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n");
  EXPECT_FALSE(meshgate::control::ReadCertificatesOnly(P("garbage.pem")).ok());
  Write(P("open.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n");
  EXPECT_FALSE(meshgate::control::ReadCertificatesOnly(P("open.pem")).ok());
}

}  // namespace
