// meshgate following its own cluster (--kubeconfig): the real binary against
// the test API server (tests/kube/api_server.py: TLS, bearer token, the list
// and watch wire format of "API Concepts",
// https://kubernetes.io/docs/reference/using-api/api-concepts/) and real
// backends on 127.0.0.x. Waits are on meshgate's own account of its state
// (/kubernetes, /clusters, /config_dump, its log), never on sleeps.
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>

#include "base/io/http_server.h"
#include "gtest/gtest.h"
#include "tests/kube/test_api_server.h"
#include "tests/support/gateway_admin.h"
#include "tests/support/mesh_yaml.h"
#include "tests/support/meshgate_process.h"
#include "tests/support/tls_peers.h"

namespace meshgate::testing {
namespace {

namespace json = boost::json;
using kube::testing::TestApiServer;
using Clock = std::chrono::steady_clock;

std::string ReadTestFile(const std::string& name) {
  std::ifstream in(std::string(MESHGATE_TESTDATA) + "/" + name, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string Get(const std::string& address, const std::string& target, int* status = nullptr) {
  const io::HttpResult r = io::HttpCall(address, "GET", target, 2000);
  if (status != nullptr) *status = r.status;
  return r.body;
}

json::object Service(const std::string& name, uint16_t target_port) {
  return json::parse(R"({"apiVersion": "v1", "kind": "Service",
      "metadata": {"name": ")" + name + R"(", "namespace": "bar", "labels": {"app": ")" + name + R"("}},
      "spec": {"selector": {"app": ")" + name + R"("}, "type": "ClusterIP",
               "ports": [{"name": "tls", "port": 8000, "protocol": "TCP", "targetPort": )" +
                     std::to_string(target_port) + "}]}}")
      .as_object();
}

// An EndpointSlice as the endpointslice controller writes it: one endpoint per pod.
json::object Slice(const std::string& service, const std::string& name, uint16_t port,
                   const std::vector<std::pair<std::string, std::string>>& pods) {
  json::array endpoints;
  for (const auto& [address, pod] : pods) {
    endpoints.push_back(json::object{
        {"addresses", json::array{json::string(address)}},
        {"conditions", json::object{{"ready", true}, {"serving", true}, {"terminating", false}}},
        {"targetRef", json::object{{"kind", "Pod"}, {"name", pod}, {"namespace", "bar"}}}});
  }
  return json::object{
      {"apiVersion", "discovery.k8s.io/v1"},
      {"kind", "EndpointSlice"},
      {"metadata", json::object{{"name", name},
                                {"namespace", "bar"},
                                {"labels", json::object{{"kubernetes.io/service-name", service}}}}},
      {"addressType", "IPv4"},
      {"ports", json::array{json::object{{"name", "tls"}, {"port", port}, {"protocol", "TCP"}}}},
      {"endpoints", std::move(endpoints)}};
}

json::object Pod(const std::string& name, const std::string& app, const std::string& ip) {
  return json::object{
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", json::object{{"name", name}, {"namespace", "bar"}, {"labels", json::object{{"app", app}}}}},
      {"spec", json::object{{"containers", json::array{json::object{{"name", app}, {"image", "kennethreitz/httpbin"}}}}}},
      {"status", json::object{{"phase", "Running"},
                              {"podIP", ip},
                              {"conditions", json::array{json::object{{"type", "Ready"}, {"status", "True"}}}}}}};
}

class KubeFollowTest : public ::testing::Test {
 protected:
  // A kubeconfig for the test API server: its CA (or the file `ca_file`), a
  // bearer token (or another `user`), and any `cluster_extra` cluster fields
  // ("Organizing Cluster Access Using kubeconfig Files").
  std::string Kubeconfig(const std::string& user = "token: token-1", const std::string& cluster_extra = "",
                         std::string ca_file = "") {
    if (ca_file.empty()) ca_file = dir_.Write("ca.pem", api_.root_pem());
    return dir_.Write("kubeconfig",
                      "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
                      "clusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:" +
                          std::to_string(api_.port()) + "\n    certificate-authority: " + ca_file + "\n" +
                          cluster_extra + "users:\n- name: gw\n  user:\n    " + user +
                          "\ncontexts:\n- name: test\n  context: {cluster: test, user: gw}\n");
  }

  std::unique_ptr<MeshgateProcess> Start(std::string kubeconfig = "") {
    if (kubeconfig.empty()) kubeconfig = Kubeconfig();
    const std::string gateway = dir_.Write("gateway.yaml", kCrossNetworkGateway);
    auto gw = std::make_unique<MeshgateProcess>(std::vector<std::string>{"--mesh", gateway, "--kubeconfig", kubeconfig});
    EXPECT_TRUE(gw->running()) << gw->Log();
    return gw;
  }

  static json::object KubeStatus(const MeshgateProcess& gw) {
    int status = 0;
    const std::string body = Get(gw.admin_address(), "/kubernetes", &status);
    if (status != 200) return {};
    return json::parse(body).as_object();
  }
  static json::object Resource(const json::object& status, const std::string& name) {
    for (const json::value& r : status.at("resources").as_array()) {
      if (r.at("resource").as_string() == name) return r.as_object();
    }
    return {};
  }
  static bool Ready(const MeshgateProcess& gw, std::string* body = nullptr) {
    int status = 0;
    const std::string text = Get(gw.readiness_address(), "/healthz/ready", &status);
    if (body != nullptr) *body = text;
    return status == 200;
  }
  // Whether the cluster now routes to exactly `address` among the 127.0.0.x
  // backends, as published to every worker.
  static bool RoutesOnlyTo(const MeshgateProcess& gw, const std::string& address, const std::string& gone) {
    const std::string clusters = Get(gw.admin_address(), "/clusters");
    return clusters.find("\"" + address + "\"") != std::string::npos &&
           clusters.find("\"" + gone + "\"") == std::string::npos;
  }

  // Sends a captured ClientHello with SNI outbound_.8000_._.httpbin.bar...
  // and returns the socket once `backend` has it as its `connection`th.
  int SendHello(uint16_t gateway_port, const RawBackend& backend, size_t connection) {
    const std::string hello = ReadTestFile("clienthellos/openssl13_sni.bin");
    const int fd = ConnectTcp(gateway_port);
    EXPECT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
    EXPECT_TRUE(backend.WaitReceived(connection, hello.size(), 3000));
    return fd;
  }

  TestApiServer api_;
  TempDir dir_;
};

// A rollout: pod A (127.0.0.2) is replaced by pod B (127.0.0.3). Once the
// EndpointSlice event is applied (within 1 s), no new connection dials A,
// and the session already open to A keeps relaying.
TEST_F(KubeFollowTest, RolloutMovesNewConnectionsWithin1sAndKeepsOpenSessions) {
  RawBackend a(RawBackend::Mode::kRecord, "127.0.0.2");
  RawBackend b(RawBackend::Mode::kRecord, "127.0.0.3", a.port());
  api_.Change("add", Service("httpbin", a.port()), "/api/v1", "services");
  api_.Change("add", Pod("httpbin-a", "httpbin", "127.0.0.2"));
  api_.Change("add", Slice("httpbin", "httpbin-1", a.port(), {{"127.0.0.2", "httpbin-a"}}),
              "/apis/discovery.k8s.io/v1", "endpointslices");
  auto gw = Start();
  ASSERT_TRUE(WaitFor([&] { return Ready(*gw); }, 10000)) << gw->Log();
  ASSERT_TRUE(WaitForWorkersToCatchUp(gw->admin_address()));
  const int open_to_a = SendHello(gw->port(), a, 0);
  const int64_t full_before = KubeStatus(*gw).at("full_rebuilds").as_int64();

  api_.Change("add", Pod("httpbin-b", "httpbin", "127.0.0.3"));
  const auto event = Clock::now();
  api_.Change("modify", Slice("httpbin", "httpbin-1", a.port(), {{"127.0.0.3", "httpbin-b"}}),
              "/apis/discovery.k8s.io/v1", "endpointslices");
  api_.Change("delete", Pod("httpbin-a", "httpbin", "127.0.0.2"));
  ASSERT_TRUE(WaitFor([&] { return RoutesOnlyTo(*gw, "127.0.0.3", "127.0.0.2"); }, 5000))
      << Get(gw->admin_address(), "/clusters") << gw->Log();
  ASSERT_TRUE(WaitForWorkersToCatchUp(gw->admin_address()));
  const auto applied_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - event).count();
  EXPECT_LT(applied_ms, 1000);
  std::cout << "[ measured ] rollout applied on every worker " << applied_ms << " ms after the event\n";

  for (size_t i = 0; i < 5; ++i) ::close(SendHello(gw->port(), b, i));
  EXPECT_EQ(a.accepted(), 1);
  EXPECT_EQ(b.accepted(), 5);
  // The session to A is untouched: it still relays.
  const std::string more = "still here";
  const size_t before = a.received(0).size();
  ASSERT_EQ(::send(open_to_a, more.data(), more.size(), MSG_NOSIGNAL), static_cast<ssize_t>(more.size()));
  EXPECT_TRUE(a.WaitReceived(0, before + more.size(), 3000));
  EXPECT_FALSE(a.closed(0));
  ::close(open_to_a);
  const json::object status = KubeStatus(*gw);
  EXPECT_GE(Resource(status, "endpointslices.v1.discovery.k8s.io").at("events").as_int64(), 1) << status;
  // The rollout touched only a slice and Pods: it took the fast path (only
  // httpbin's cluster loaded and installed), never a whole rebuild after the first sync.
  EXPECT_GE(status.at("endpoint_updates").as_int64(), 1) << status;
  EXPECT_EQ(status.at("full_rebuilds").as_int64(), full_before) << status;
  EXPECT_EQ(status.at("endpoint_fallbacks").as_int64(), 0) << status;
  EXPECT_EQ(gw->Stop(), 0);
}

// Readiness waits for the first complete list of every resource, and says
// which are missing; Istio's groups, not served here, count as synced-empty.
TEST_F(KubeFollowTest, ReadinessWaitsForTheFirstSync) {
  api_.Command({{"op", "down"}});
  auto gw = Start();
  std::string body;
  ASSERT_TRUE(WaitFor([&] {
    Ready(*gw, &body);
    return body.find("waiting for the first Kubernetes sync") != std::string::npos;
  })) << body;
  EXPECT_NE(body.find("services.v1"), std::string::npos) << body;
  EXPECT_FALSE(Ready(*gw));
  api_.Command({{"op", "up"}});
  ASSERT_TRUE(WaitFor([&] { return Ready(*gw, &body); }, 10000)) << body << gw->Log();
  const json::object status = KubeStatus(*gw);
  EXPECT_TRUE(status.at("synced").as_bool()) << status;
  EXPECT_EQ(Resource(status, "gateways.networking.istio.io").at("state").as_string(), "missing") << status;
  EXPECT_GE(Resource(status, "pods.v1").at("errors").as_int64(), 1) << status;
  EXPECT_EQ(gw->Stop(), 0);
}

// The API server goes away: the last good table keeps serving. When it is
// back the watches resume; after a forced 410 ("410 Gone responses") a
// relist follows.
TEST_F(KubeFollowTest, LastGoodTableServesWhileTheApiServerIsAwayThenResyncs) {
  RawBackend a(RawBackend::Mode::kRecord, "127.0.0.2");
  api_.Change("add", Service("httpbin", a.port()), "/api/v1", "services");
  api_.Change("add", Slice("httpbin", "httpbin-1", a.port(), {{"127.0.0.2", "httpbin-a"}}),
              "/apis/discovery.k8s.io/v1", "endpointslices");
  auto gw = Start();
  ASSERT_TRUE(WaitFor([&] { return Ready(*gw); }, 10000)) << gw->Log();
  ASSERT_TRUE(WaitForWorkersToCatchUp(gw->admin_address()));

  api_.Command({{"op", "down"}});
  ASSERT_TRUE(WaitFor([&] {
    const json::object s = KubeStatus(*gw);
    return !s.empty() && Resource(s, "endpointslices.v1.discovery.k8s.io").at("errors").as_int64() >= 1;
  }, 10000)) << KubeStatus(*gw);
  ::close(SendHello(gw->port(), a, 0));  // still served from the last good table
  EXPECT_TRUE(Ready(*gw));

  const int64_t watches = Resource(KubeStatus(*gw), "endpointslices.v1.discovery.k8s.io").at("watches").as_int64();
  api_.Command({{"op", "up"}});
  ASSERT_TRUE(WaitFor([&] {
    const json::object r = Resource(KubeStatus(*gw), "endpointslices.v1.discovery.k8s.io");
    return r.at("watches").as_int64() > watches && r.at("watching").as_bool() && r.at("state") == "synced";
  }, 15000)) << KubeStatus(*gw);

  // Forced 410: while meshgate cannot reach it, the server moves on and
  // compacts past the version meshgate holds; resuming from it is 410 Gone.
  const int64_t errors = Resource(KubeStatus(*gw), "endpointslices.v1.discovery.k8s.io").at("errors").as_int64();
  api_.Command({{"op", "down"}});
  ASSERT_TRUE(WaitFor([&] {
    return Resource(KubeStatus(*gw), "endpointslices.v1.discovery.k8s.io").at("errors").as_int64() > errors;
  }, 10000)) << KubeStatus(*gw);
  api_.Change("add", Slice("httpbin", "httpbin-2", a.port(), {{"127.0.0.4", "httpbin-c"}}),
              "/apis/discovery.k8s.io/v1", "endpointslices");
  api_.Command({{"op", "compact"}});
  api_.Command({{"op", "up"}});
  ASSERT_TRUE(WaitFor([&] {
    const json::object r = Resource(KubeStatus(*gw), "endpointslices.v1.discovery.k8s.io");
    return r.at("relists").as_int64() >= 1 && r.at("objects").as_int64() == 2;
  }, 15000)) << KubeStatus(*gw);
  EXPECT_GE(api_.Counter("gone"), 1);
  ASSERT_TRUE(WaitFor([&] { return Get(gw->admin_address(), "/clusters").find("\"127.0.0.4\"") != std::string::npos; }))
      << Get(gw->admin_address(), "/clusters");
  ::close(SendHello(gw->port(), a, 1));
  EXPECT_EQ(gw->Stop(), 0);
}

// A malformed object is rejected alone, by name, in /kubernetes and the log;
// the others still route.
TEST_F(KubeFollowTest, MalformedObjectIsRejectedAloneByName) {
  RawBackend a(RawBackend::Mode::kRecord, "127.0.0.2");
  api_.Change("add", Service("httpbin", a.port()), "/api/v1", "services");
  api_.Change("add", Slice("httpbin", "httpbin-1", a.port(), {{"127.0.0.2", "httpbin-a"}}),
              "/apis/discovery.k8s.io/v1", "endpointslices");
  api_.Change("add", Service("sleep", a.port()), "/api/v1", "services");
  api_.Change("add", Slice("sleep", "sleep-1", a.port(), {{"not-an-ip", "sleep-a"}}),
              "/apis/discovery.k8s.io/v1", "endpointslices");
  auto gw = Start();
  ASSERT_TRUE(WaitFor([&] { return Ready(*gw); }, 10000)) << gw->Log();
  ASSERT_TRUE(WaitForWorkersToCatchUp(gw->admin_address()));
  const json::object status = KubeStatus(*gw);
  const json::array& rejected = status.at("rejected").as_array();
  ASSERT_EQ(rejected.size(), 1u) << status;
  EXPECT_EQ(rejected[0].at("name").as_string(), "kubernetes EndpointSlice bar/sleep-1") << status;
  EXPECT_NE(json::serialize(rejected[0].at("errors")).find("not-an-ip"), std::string::npos) << status;
  // Named by Kind ns/name and the field path, not by a line of JSON no one wrote.
  const std::string first_error(rejected[0].at("errors").as_array().at(0).as_string());
  EXPECT_TRUE(first_error.starts_with("EndpointSlice bar/sleep-1: endpoints[")) << first_error;
  EXPECT_EQ(status.at("objects_rejected").as_int64(), 1) << status;
  EXPECT_TRUE(gw->WaitForLog("rejected kubernetes EndpointSlice bar/sleep-1")) << gw->Log();
  ::close(SendHello(gw->port(), a, 0));  // httpbin routes
  EXPECT_EQ(gw->Stop(), 0);
}

// A rotated token ("Accessing the Kubernetes API from a Pod": projected
// service account tokens are refreshed by the kubelet; kubeconfig tokenFile
// is the same file out of cluster). The API server moves to a new token and
// drops the old one: meshgate's requests get 401 until the file is rewritten;
// then it reads it again, watches resume and a later change routes.
TEST_F(KubeFollowTest, RotatedTokenFileIsPickedUpAndLaterChangesRoute) {
  RawBackend a(RawBackend::Mode::kRecord, "127.0.0.2");
  RawBackend b(RawBackend::Mode::kRecord, "127.0.0.3", a.port());
  api_.Change("add", Service("httpbin", a.port()), "/api/v1", "services");
  api_.Change("add", Slice("httpbin", "httpbin-1", a.port(), {{"127.0.0.2", "httpbin-a"}}),
              "/apis/discovery.k8s.io/v1", "endpointslices");
  auto gw = Start(Kubeconfig("tokenFile: " + api_.dir() + "/token"));
  ASSERT_TRUE(WaitFor([&] { return Ready(*gw); }, 10000)) << gw->Log();
  const std::string slices = "endpointslices.v1.discovery.k8s.io";
  const int64_t watches = Resource(KubeStatus(*gw), slices).at("watches").as_int64();

  api_.Command({{"op", "token"}, {"token", "token-2"}});  // ends every open watch
  ASSERT_TRUE(WaitFor([&] {
    const json::object r = Resource(KubeStatus(*gw), slices);
    return r.at("last_error").as_string().find("HTTP 401") != std::string::npos && !r.at("watching").as_bool();
  }, 10000)) << KubeStatus(*gw);
  EXPECT_GE(api_.Counter("unauthorized"), 1);
  EXPECT_TRUE(Ready(*gw));  // the last good table keeps serving

  api_.WriteTokenFile("token-2");
  ASSERT_TRUE(WaitFor([&] {
    const json::object r = Resource(KubeStatus(*gw), slices);
    return r.at("watching").as_bool() && r.at("state") == "synced" && r.at("watches").as_int64() > watches;
  }, 15000)) << KubeStatus(*gw);
  EXPECT_EQ(Resource(KubeStatus(*gw), slices).at("relists").as_int64(), 0);  // resumed, nothing lost
  api_.Change("modify", Slice("httpbin", "httpbin-1", a.port(), {{"127.0.0.3", "httpbin-b"}}),
              "/apis/discovery.k8s.io/v1", "endpointslices");
  ASSERT_TRUE(WaitFor([&] { return RoutesOnlyTo(*gw, "127.0.0.3", "127.0.0.2"); }, 5000))
      << Get(gw->admin_address(), "/clusters");
  ASSERT_TRUE(WaitForWorkersToCatchUp(gw->admin_address()));
  ::close(SendHello(gw->port(), b, 0));
  EXPECT_EQ(a.accepted(), 0);
  EXPECT_EQ(gw->Stop(), 0);
}

// A server certificate from another CA is refused: /kubernetes says why
// (certificate verify failed, naming the server) and readiness stays 503 with
// its reason. Then the CA file is rotated to the right root, as the kubelet
// does with a projected ca.crt: meshgate reads it again and syncs, no restart.
TEST_F(KubeFollowTest, CertificateFromAnotherCaIsRefusedUntilTheCaFileRotates) {
  Pki other;
  const std::string ca_file = api_.ReplaceFile("rotating-ca.pem", ToPem(other.root().cert.get()));
  auto gw = Start(Kubeconfig("token: token-1", "", ca_file));
  const std::string server = "127.0.0.1:" + std::to_string(api_.port());
  json::object services;
  ASSERT_TRUE(WaitFor([&] {
    services = Resource(KubeStatus(*gw), "services.v1");
    return !services.empty() && services.at("errors").as_int64() >= 1;
  }, 10000)) << KubeStatus(*gw) << gw->Log();
  const std::string error(services.at("last_error").as_string());
  EXPECT_NE(error.find("TLS handshake with " + server), std::string::npos) << error;
  EXPECT_NE(error.find("certificate verify failed"), std::string::npos) << error;
  EXPECT_NE(error.find("server certificate refused: unable to get local issuer certificate"), std::string::npos)
      << error;
  EXPECT_EQ(services.at("lists").as_int64(), 0);
  std::string body;
  EXPECT_FALSE(Ready(*gw, &body));
  EXPECT_NE(body.find("waiting for the first Kubernetes sync: services.v1"), std::string::npos) << body;
  EXPECT_EQ(api_.Counter("lists"), 0);  // nothing was sent to a server meshgate does not trust

  api_.ReplaceFile("rotating-ca.pem", api_.root_pem());
  ASSERT_TRUE(WaitFor([&] { return Ready(*gw, &body); }, 20000)) << body << KubeStatus(*gw);
  EXPECT_EQ(gw->Stop(), 0);
}

// The certificate names another host (kubeconfig tls-server-name): refused
// with "hostname mismatch".
TEST_F(KubeFollowTest, CertificateForAnotherNameIsRefused) {
  auto gw = Start(Kubeconfig("token: token-1", "    tls-server-name: kubernetes.other.svc\n"));
  json::object services;
  ASSERT_TRUE(WaitFor([&] {
    services = Resource(KubeStatus(*gw), "services.v1");
    return !services.empty() && services.at("errors").as_int64() >= 1;
  }, 10000)) << KubeStatus(*gw) << gw->Log();
  EXPECT_NE(services.at("last_error").as_string().find("hostname mismatch"), std::string::npos) << services;
  EXPECT_FALSE(Ready(*gw));
  EXPECT_EQ(gw->Stop(), 0);
}

// insecure-skip-tls-verify: true is refused at startup unless allowInsecure
// says the user means it: the token would go to whoever answers.
TEST_F(KubeFollowTest, InsecureSkipTlsVerifyIsRefusedAtStartupWithoutAllowInsecure) {
  const std::string kubeconfig = Kubeconfig("token: token-1", "    insecure-skip-tls-verify: true\n");
  const std::string gateway = dir_.Write("gateway.yaml", kCrossNetworkGateway);
  const RunResult r = RunMeshgate({"--mesh", gateway, "--kubeconfig", kubeconfig});
  EXPECT_EQ(r.exit_code, 1);
  const std::string text = r.out + r.err;
  EXPECT_NE(text.find("clusters[test].cluster.insecure-skip-tls-verify: refused: the server would not be verified"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(kubeconfig), std::string::npos) << text;
  EXPECT_EQ(api_.Counter("lists") + api_.Counter("watches"), 0);
}

// Credentials that do not load stop meshgate at startup with the reason;
// meshgate.yaml's kubernetes: key is checked like every other key.
TEST(KubeFollowCliTest, BadCredentialsAndBadKeysAreRefusedWithTheReason) {
  TempDir dir;
  const std::string gateway = dir.Write("gateway.yaml", kCrossNetworkGateway);
  const RunResult missing = RunMeshgate({"--mesh", gateway, "--kubeconfig", dir.path() + "/none"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE((missing.out + missing.err).find(dir.path() + "/none"), std::string::npos) << missing.err;

  const std::string both = dir.Write("both.yaml", "kubernetes: {inCluster: true, kubeconfig: kc}\n");
  const RunResult r = RunMeshgate({"--check", "--config", both, "--mesh", gateway});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("set either inCluster: true or kubeconfig, not both"), std::string::npos) << r.err;

  const std::string typo = dir.Write("typo.yaml", "kubernetes: {inCluster: true, contxt: x}\n");
  const RunResult t = RunMeshgate({"--check", "--config", typo, "--mesh", gateway});
  EXPECT_NE(t.exit_code, 0);
  EXPECT_NE(t.err.find("kubernetes.contxt"), std::string::npos) << t.err;

  EXPECT_EQ(RunMeshgate({"--mesh", gateway, "--kubeconfig", "a", "--in-cluster"}).exit_code, 2);
}

}  // namespace
}  // namespace meshgate::testing
