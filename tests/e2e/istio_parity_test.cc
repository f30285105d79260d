// Issue 13 end to end: the real meshgate binary behaves as Istio's east-west
// gateway (AUTO_PASSTHROUGH on 15443) does, through real sockets. Every
// refusal also checks that nothing was dialled (backend accept count 0).
//
// Istio followed: master as of 1.24 (pilot/pkg/networking/core/gateway.go
// builtAutoPassthroughFilterChains; pilot/pkg/model/gateway.go
// GetSNIHostsForServer; pilot/pkg/model/push_context.go mergeGateways for the
// selector; pilot/pkg/model/proxy_view.go for the network view;
// pilot/pkg/security/authz/builder for L4 AuthorizationPolicy, and the
// istio.io page "Authorization Policy" (security.istio.io/v1)).
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "base/io/http_server.h"
#include "gtest/gtest.h"
#include "tests/support/gateway_admin.h"
#include "tests/support/meshgate_process.h"
#include "tests/support/pki.h"
#include "tests/support/ports.h"
#include "tests/support/tls_peers.h"

namespace meshgate::testing {
namespace {

namespace json = boost::json;

constexpr char kSni[] = "outbound_.8000_._.httpbin.bar.svc.cluster.local";
constexpr char kOtherSni[] = "outbound_.8000_._.other.bar.svc.cluster.local";
constexpr char kClientId[] = "spiffe://cluster.local/ns/foo/sa/sleep";
constexpr char kServerId[] = "spiffe://cluster.local/ns/bar/sa/httpbin";

// An AUTO_PASSTHROUGH Gateway. `selector` and `hosts` are YAML flow text.
std::string Gateway(const std::string& selector, const std::string& hosts, uint16_t port = 15443,
                    const std::string& ns = "istio-system") {
  return "---\napiVersion: networking.istio.io/v1\nkind: Gateway\n"
         "metadata: {name: cross-network-gateway, namespace: " + ns + "}\n"
         "spec:\n  selector: " + selector + "\n  servers:\n"
         "  - port: {number: " + std::to_string(port) + ", name: tls, protocol: TLS}\n"
         "    tls: {mode: AUTO_PASSTHROUGH}\n    hosts: " + hosts + "\n";
}

struct Ep {
  std::string address;
  uint16_t port;
  std::string network;  // "": none written
};

// A ServiceEntry `name`.bar with one TLS port 8000 and `endpoints`.
std::string Entry(const std::string& name, const std::vector<Ep>& endpoints,
                  const std::string& location = "MESH_INTERNAL") {
  std::string yaml = "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
                     "metadata: {name: " + name + ", namespace: bar}\n"
                     "spec:\n  hosts: [" + name + ".bar.svc.cluster.local]\n  location: " +
                     location + "\n  ports: [{number: 8000, name: tls, protocol: TLS}]\n"
                     "  resolution: STATIC\n  endpoints:\n";
  for (const Ep& ep : endpoints) {
    yaml += "  - {address: " + ep.address + ", ports: {tls: " + std::to_string(ep.port) + "}" +
            (ep.network.empty() ? "" : ", network: " + ep.network) + "}\n";
  }
  return yaml;
}

// An AuthorizationPolicy in istio-system (the root namespace: mesh-wide);
// `spec` is the indented body under "spec:".
std::string Policy(const std::string& name, const std::string& spec) {
  return "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
         "metadata: {name: " + name + ", namespace: istio-system}\nspec:\n" + spec;
}

// The ClientHello an OpenSSL client with `sni` and `alpn` sends first, for
// raw sockets to backends that never finish a handshake (RawBackend).
std::string ClientHelloBytes(const std::string& sni, const std::vector<std::string>& alpn) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL* ssl = SSL_new(ctx.get());
  SSL_set_tlsext_host_name(ssl, sni.c_str());
  std::string wire;
  for (const std::string& p : alpn) wire += static_cast<char>(p.size()) + p;
  SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()),
                      static_cast<unsigned>(wire.size()));
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  SSL_set_connect_state(ssl);
  SSL_do_handshake(ssl);  // wants to read the server's answer: the hello is out
  char* data = nullptr;
  const long n = BIO_get_mem_data(out, &data);
  std::string hello(data, static_cast<size_t>(n));
  SSL_free(ssl);
  return hello;
}

std::string Get(const std::string& address, const std::string& target, int* status = nullptr) {
  const io::HttpResult r = io::HttpCall(address, "GET", target, 2000);
  if (status != nullptr) *status = r.status;
  return r.body;
}

// The readiness answer once it says more than "starting".
io::HttpResult Readiness(const MeshgateProcess& gw) {
  io::HttpResult r;
  WaitFor([&] {
    r = io::HttpCall(gw.readiness_address(), "GET", "/healthz/ready", 2000);
    return r.status == 200 || (r.status == 503 && r.body != "starting\n");
  });
  return r;
}

// The access log lines (meshgate's stdout) that contain `text`.
std::vector<std::string> LogLines(const MeshgateProcess& gw, const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(gw.Stdout());
  for (std::string line; std::getline(in, line);) {
    if (line.find(text) != std::string::npos) out.push_back(line);
  }
  return out;
}

class IstioParityTest : public ::testing::Test {
 protected:
  IstioParityTest()
      : client_id_(pki_.Issue(1, kClientId)),
        server_id_(pki_.Issue(2, kServerId, {"httpbin.bar.svc.cluster.local"})),
        client_ctx_(pki_.ClientContext(client_id_)) {}

  // meshgate over mesh/ (written first) with `config` as its meshgate.yaml.
  std::unique_ptr<MeshgateProcess> Start(const std::string& mesh, const std::string& config = "",
                                         std::vector<std::string> extra = {}) {
    dir_.Write("mesh/mesh.yaml", mesh);
    std::vector<std::string> args = {"--config",
                                     dir_.Write("gw.yaml", config + "\nthreads: 1\nmesh: [mesh/]\n")};
    args.insert(args.end(), extra.begin(), extra.end());
    auto gw = std::make_unique<MeshgateProcess>(args);
    EXPECT_TRUE(gw->running()) << gw->Log();
    return gw;
  }

  // A full mTLS session through the gateway, with one byte echoed.
  bool Echoes(const MeshgateProcess& gw, const std::string& sni,
              const std::vector<std::string>& alpn = TlsClient::IstioAlpn()) {
    TlsClient client(client_ctx_.get(), gw.port(), sni, 5000, alpn);
    char c = 'x';
    return client.ok() && client.WriteAll(&c, 1) && client.Read(&c, 1) == 1 && c == 'x';
  }

  // A handshake through the gateway fails (it closed the connection).
  bool Refused(const MeshgateProcess& gw, const std::string& sni,
               const std::vector<std::string>& alpn = TlsClient::IstioAlpn()) {
    TlsClient client(client_ctx_.get(), gw.port(), sni, 5000, alpn);
    return !client.ok();
  }

  // Waits for a reload after `change`: the published version passes the
  // current one and every worker has it.
  bool ReloadAfter(const MeshgateProcess& gw, const std::function<void()>& change) {
    const auto before = ReadConfigVersions(gw.admin_address());
    if (!before) return false;
    change();
    const bool published = WaitFor([&] {
      const auto now = ReadConfigVersions(gw.admin_address());
      return now && now->published > before->published;
    });
    return published && WaitForWorkersToCatchUp(gw.admin_address());
  }

  void WriteAtomically(const std::string& name, const std::string& content) {
    const std::string tmp = dir_.Write("." + std::filesystem::path(name).filename().string() + ".tmp", content);
    std::filesystem::rename(tmp, dir_.path() + "/" + name);
  }

  Pki pki_;
  Workload client_id_;
  Workload server_id_;
  SslCtxPtr client_ctx_;
  TempDir dir_;
};

// --- 1. Fail closed ----------------------------------------------------------------------

// builtAutoPassthroughFilterChains builds filter chains only from Gateway
// servers with tls.mode AUTO_PASSTHROUGH: with none, nothing is served.
TEST_F(IstioParityTest, NoGatewayNothingIsServed) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(Entry("httpbin", {{"127.0.0.1", backend.port(), ""}}));
  const io::HttpResult ready = Readiness(*gw);
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("nothing is served"), std::string::npos) << ready.body;
  EXPECT_TRUE(Refused(*gw, kSni));
  EXPECT_EQ(backend.accepted(), 0) << "an unexported host was dialled";
  EXPECT_EQ(gw->Stop(), 0);
  EXPECT_EQ(gw->Counter("route_miss.not_exported"), 1u) << gw->Stats();
  EXPECT_EQ(gw->Counter("upstream_cx_total"), 0u);

  const RunResult check = RunMeshgate({"--check", "--mesh", dir_.path() + "/mesh/mesh.yaml"});
  EXPECT_EQ(check.exit_code, 1) << check.out;
  EXPECT_NE(check.err.find("error: "), std::string::npos) << check.err;
  EXPECT_NE(check.err.find("nothing is served"), std::string::npos) << check.err;
}

// --- 2. selector against the gateway's labels -------------------------------------------

// mergeGateways keeps a Gateway whose selector is a subset of the proxy's
// labels; the labels come from meshgate.yaml or the Downward API file.
TEST_F(IstioParityTest, GatewaySelectorMatchesLabelsFromConfigAndPodInfoFile) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  const std::string mesh = Entry("httpbin", {{"127.0.0.1", backend.port(), ""}}) +
                           Gateway("{istio: eastwestgateway}", "['*.local']");
  const std::string labels = dir_.Write("podinfo/labels",
                                        "app=\"istio-eastwestgateway\"\nistio=\"eastwestgateway\"\n");
  const std::string wrong = dir_.Write("podinfo/wrong", "app=\"x\"\nistio=\"ingressgateway\"\n");
  struct Case {
    const char* name;
    std::string config;
    bool served;
  };
  const Case cases[] = {
      {"no labels", "", false},
      {"labels:", "labels: {istio: eastwestgateway}", true},
      {"podInfoFile:", "podInfoFile: " + labels, true},
      {"podInfoFile with another value", "podInfoFile: " + wrong, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto gw = Start(mesh, c.config);
    EXPECT_EQ(Readiness(*gw).status, c.served ? 200 : 503);
    const int before = backend.accepted();
    if (c.served) {
      EXPECT_TRUE(Echoes(*gw, kSni)) << gw->Log();
    } else {
      EXPECT_TRUE(Refused(*gw, kSni));
      EXPECT_EQ(backend.accepted(), before) << "dialled although no Gateway selects the gateway";
    }
    EXPECT_EQ(gw->Stop(), 0);
    EXPECT_EQ(gw->Counter("route_miss.not_exported"), c.served ? 0u : 1u) << gw->Stats();
  }
}

// The kubelet rewrites the Downward API file when the pod's labels change;
// meshgate watches it (and reloads on SIGHUP) and decides again.
TEST_F(IstioParityTest, PodInfoFileRewriteChangesTheGatewaySelection) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  WriteAtomically("labels", "istio=\"ingressgateway\"\n");
  auto gw = Start(Entry("httpbin", {{"127.0.0.1", backend.port(), ""}}) +
                      Gateway("{istio: eastwestgateway}", "['*.local']"),
                  "podInfoFile: " + dir_.path() + "/labels");
  EXPECT_EQ(Readiness(*gw).status, 503);
  EXPECT_TRUE(Refused(*gw, kSni));
  EXPECT_EQ(backend.accepted(), 0);

  // The file watch alone.
  ASSERT_TRUE(ReloadAfter(*gw, [&] { WriteAtomically("labels", "istio=\"eastwestgateway\"\n"); }))
      << gw->Log();
  EXPECT_EQ(Readiness(*gw).status, 200);
  EXPECT_TRUE(Echoes(*gw, kSni)) << gw->Log();

  // SIGHUP (and the watch, if it sees the change first): closed again.
  ASSERT_TRUE(ReloadAfter(*gw, [&] {
    WriteAtomically("labels", "istio=\"other\"\n");
    ::kill(gw->pid(), SIGHUP);
  })) << gw->Log();
  ASSERT_TRUE(WaitForWorkersToCatchUp(gw->admin_address()));
  const int before = backend.accepted();
  EXPECT_EQ(Readiness(*gw).status, 503);
  EXPECT_TRUE(Refused(*gw, kSni));
  EXPECT_EQ(backend.accepted(), before);
}

// --- 3. ns/host server hosts --------------------------------------------------------------

// GetSNIHostsForServer drops the "ns/" part of a server host: "./*.local" in
// istio-system exports the services of every namespace.
TEST_F(IstioParityTest, DotSlashStarLocalInIstioSystemExportsEveryNamespace) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  const std::string entry = Entry("httpbin", {{"127.0.0.1", backend.port(), ""}});
  {
    auto gw = Start(entry + Gateway("{}", "['./*.local']"));
    EXPECT_EQ(Readiness(*gw).status, 200);
    EXPECT_TRUE(Echoes(*gw, kSni)) << gw->Log();
  }
  {
    auto gw = Start(entry + Gateway("{}", "['foo/httpbin.bar.svc.cluster.local']"));
    EXPECT_TRUE(Echoes(*gw, kSni)) << gw->Log();
  }
  const int before = backend.accepted();
  auto gw = Start(entry + Gateway("{}", "['./*.example.com']"));
  EXPECT_TRUE(Refused(*gw, kSni));
  EXPECT_EQ(backend.accepted(), before) << "a host no server exports was dialled";
  EXPECT_EQ(gw->Stop(), 0);
  EXPECT_EQ(gw->Counter("route_miss.not_exported"), 1u) << gw->Stats();
}

// --- 4. ALPN ------------------------------------------------------------------------------

// Istio's AUTO_PASSTHROUGH filter chains match application_protocols
// (istio-peer-exchange, istio, istio-http/1.0, istio-http/1.1, istio-h2).
TEST_F(IstioParityTest, NonIstioAlpnIsRefused) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  const std::string mesh = Entry("httpbin", {{"127.0.0.1", backend.port(), ""}}) +
                           Gateway("{}", "['*.local']");
  {
    auto gw = Start(mesh);
    EXPECT_TRUE(Refused(*gw, kSni, {"h2"}));
    EXPECT_TRUE(Refused(*gw, kSni, {"h2", "http/1.1"}));
    EXPECT_TRUE(Refused(*gw, kSni, {}));
    EXPECT_EQ(backend.accepted(), 0) << "a non-Istio ALPN was dialled";
    for (const char* alpn : {"istio-peer-exchange", "istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"}) {
      EXPECT_TRUE(Echoes(*gw, kSni, {"h2", alpn})) << alpn;
    }
    EXPECT_EQ(gw->Log().find("requireIstioAlpn: false"), std::string::npos);
    EXPECT_EQ(gw->Stop(), 0);
    EXPECT_EQ(gw->Counter("termination.alpn_not_istio"), 3u) << gw->Stats();
    EXPECT_EQ(backend.accepted(), 5);
  }
  auto gw = Start(mesh, "requireIstioAlpn: false");
  EXPECT_TRUE(gw->WaitForLog("requireIstioAlpn: false: connections with any ALPN are relayed")) << gw->Log();
  EXPECT_TRUE(Echoes(*gw, kSni, {"h2"})) << gw->Log();
  EXPECT_TRUE(Echoes(*gw, kSni, {})) << gw->Log();
  EXPECT_EQ(gw->Stop(), 0);
  EXPECT_EQ(gw->Counter("termination.alpn_not_istio"), 0u) << gw->Stats();
}

// --- 5. MESH_EXTERNAL and UDP ------------------------------------------------------------

// builtAutoPassthroughFilterChains skips MESH_EXTERNAL services and non-TCP
// (UDP) ports, even when a Gateway host matches them.
TEST_F(IstioParityTest, MeshExternalServiceEntryAndUdpPortAreNeverServed) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  const std::string p = std::to_string(backend.port());
  const std::string mesh =
      Entry("httpbin", {{"127.0.0.1", backend.port(), ""}}, "MESH_EXTERNAL") +
      "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
      "metadata: {name: other, namespace: bar}\n"
      "spec:\n  hosts: [other.bar.svc.cluster.local]\n  location: MESH_INTERNAL\n"
      "  ports: [{number: 8000, name: tls, protocol: TLS}, {number: 9000, name: dns, protocol: UDP}]\n"
      "  resolution: STATIC\n  endpoints: [{address: 127.0.0.1, ports: {tls: " + p + ", dns: " + p + "}}]\n" +
      Gateway("{}", "['*.local']");
  auto gw = Start(mesh);
  EXPECT_TRUE(Refused(*gw, kSni));
  EXPECT_TRUE(Refused(*gw, "outbound_.9000_._.other.bar.svc.cluster.local"));
  EXPECT_EQ(backend.accepted(), 0) << "MESH_EXTERNAL or UDP was dialled";
  EXPECT_TRUE(Echoes(*gw, kOtherSni)) << gw->Log();  // the TCP port of the same entry is
  EXPECT_EQ(gw->Stop(), 0);
  EXPECT_EQ(gw->Counter("route_miss.not_exported"), 2u) << gw->Stats();
}

// --- 6. Istio 1.6's .global mode ----------------------------------------------------------

// Istio 1.6's multicluster setup: a "*.global" Gateway (selector
// istio=ingressgateway) and clients dialling "<svc>.<ns>.global", rewritten to
// the local service by the default sniRewrites. Without the Gateway: closed.
TEST_F(IstioParityTest, GlobalModeWithStarGlobalGateway) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  constexpr char kGlobal[] = "outbound_.8000_._.httpbin.bar.global";
  dir_.Write("mesh/gateway.yaml", Gateway("{istio: ingressgateway}", "['*.global']"));
  auto gw = Start(Entry("httpbin", {{"127.0.0.1", backend.port(), ""}}), "labels: {istio: ingressgateway}");
  EXPECT_EQ(Readiness(*gw).status, 200);
  EXPECT_TRUE(Echoes(*gw, kGlobal)) << gw->Log();
  ASSERT_TRUE(WaitFor([&] { return backend.observed().size() == 1; }));
  const auto seen = backend.observed();
  EXPECT_EQ(seen[0].sni, kGlobal);  // relayed untouched: the rewrite is for the lookup only

  ASSERT_TRUE(ReloadAfter(*gw, [&] { std::filesystem::remove(dir_.path() + "/mesh/gateway.yaml"); }))
      << gw->Log();
  const int before = backend.accepted();
  EXPECT_TRUE(Refused(*gw, kGlobal));
  EXPECT_EQ(backend.accepted(), before) << "served after its Gateway was removed";
  const io::HttpResult ready = Readiness(*gw);
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("nothing is served"), std::string::npos) << ready.body;
  EXPECT_EQ(gw->Stop(), 0);
  EXPECT_EQ(gw->Counter("route_miss.not_exported"), 1u) << gw->Stats();
}

// --- 7. The network view ----------------------------------------------------------------

// Sends Istio-ALPN ClientHellos for kSni on raw sockets until `done` or `max`
// connections; each is closed once a backend has accepted it.
int SendHellos(const MeshgateProcess& gw, const std::function<int()>& accepted,
               const std::function<bool()>& done, int max) {
  const std::string hello = ClientHelloBytes(kSni, TlsClient::IstioAlpn());
  int sent = 0;
  for (; sent < max && !done(); ++sent) {
    const int before = accepted();
    const int fd = ConnectTcp(gw.port());
    EXPECT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
    EXPECT_TRUE(WaitFor([&] { return accepted() > before; })) << gw.Log();
    ::close(fd);
  }
  return sent;
}

// GET /clusters: the endpoints of `cluster` by address.
std::map<std::string, json::object> ClusterEndpoints(const MeshgateProcess& gw, const std::string& cluster) {
  std::map<std::string, json::object> out;
  const json::value root = json::parse(Get(gw.admin_address(), "/clusters"));
  for (const json::value& c : root.at("clusters").as_array()) {
    if (c.at("name").as_string() != cluster) continue;
    for (const json::value& e : c.at("endpoints").as_array()) {
      out[std::string(e.at("address").as_string())] = e.as_object();
    }
  }
  return out;
}

// One field of an admin JSON object as JSON text ("<missing>" when absent).
std::string Field(const json::object& object, const char* key) {
  const json::value* v = object.if_contains(key);
  return v == nullptr ? "<missing>" : json::serialize(*v);
}

class NetworkViewTest : public IstioParityTest {
 protected:
  NetworkViewTest() : near_(RawBackend::Mode::kRecord, "127.0.0.1"), far_(RawBackend::Mode::kRecord, "127.0.0.2", near_.port()) {}
  int Accepted() const { return near_.accepted() + far_.accepted(); }
  std::string Mesh() const {
    return Entry("httpbin", {{"127.0.0.1", near_.port(), "network1"}, {"127.0.0.2", far_.port(), "network2"}}) +
           Gateway("{}", "['*.local']");
  }
  RawBackend near_;
  RawBackend far_;
};

// proxy_view.go: a gateway on network1 sees network1 (and endpoints of no
// network); an endpoint on network2 is never dialled.
TEST_F(NetworkViewTest, EndpointsOnAnotherNetworkAreNeverDialled) {
  auto gw = Start(Mesh(), "network: network1");
  EXPECT_EQ(SendHellos(*gw, [&] { return Accepted(); }, [] { return false; }, 8), 8);
  EXPECT_EQ(near_.accepted(), 8);
  EXPECT_EQ(far_.accepted(), 0) << "an endpoint on another network was dialled";

  const auto endpoints = ClusterEndpoints(*gw, "outbound|8000||httpbin.bar.svc.cluster.local");
  ASSERT_EQ(endpoints.size(), 2u) << Get(gw->admin_address(), "/clusters");
  const json::object& near = endpoints.at("127.0.0.1");
  const json::object& far = endpoints.at("127.0.0.2");
  EXPECT_EQ(Field(near, "network"), "\"network1\"");
  EXPECT_EQ(Field(near, "in_view"), "true");
  EXPECT_EQ(Field(far, "network"), "\"network2\"");
  EXPECT_EQ(Field(far, "in_view"), "false");
  EXPECT_EQ(Field(far, "health"), "\"out_of_view\"");
}

// REQUESTED_NETWORK_VIEW widens the view (requestedNetworkView: or the env).
TEST_F(NetworkViewTest, RequestedNetworkViewAddsNetworks) {
  auto both = [&] { return near_.accepted() > 0 && far_.accepted() > 0; };
  {
    auto gw = Start(Mesh(), "network: network1\nrequestedNetworkView: [network2]");
    SendHellos(*gw, [&] { return Accepted(); }, both, 40);
    EXPECT_TRUE(both()) << near_.accepted() << "/" << far_.accepted();
    const auto endpoints = ClusterEndpoints(*gw, "outbound|8000||httpbin.bar.svc.cluster.local");
    ASSERT_EQ(endpoints.count("127.0.0.2"), 1u) << Get(gw->admin_address(), "/clusters");
    EXPECT_EQ(Field(endpoints.at("127.0.0.2"), "in_view"), "true");
  }
  const int far_before = far_.accepted();
  ::setenv("ISTIO_META_NETWORK", "network1", 1);
  ::setenv("ISTIO_META_REQUESTED_NETWORK_VIEW", "network3,network2", 1);
  auto gw = Start(Mesh());
  ::unsetenv("ISTIO_META_NETWORK");
  ::unsetenv("ISTIO_META_REQUESTED_NETWORK_VIEW");
  SendHellos(*gw, [&] { return Accepted(); }, [&] { return far_.accepted() > far_before; }, 40);
  EXPECT_GT(far_.accepted(), far_before) << "the env's network view was not applied";
}

// An endpoint with no network of its own takes its Pod's
// topology.istio.io/network label, else the system namespace's (pilot
// kube/controller network.go networkFromSystemNamespace).
TEST_F(NetworkViewTest, NamespaceLabelGivesKubernetesEndpointsTheirNetwork) {
  const std::string port = std::to_string(near_.port());
  const std::string mesh =
      "apiVersion: v1\nkind: Namespace\n"
      "metadata: {name: istio-system, labels: {topology.istio.io/network: network2}}\n"
      "---\napiVersion: v1\nkind: Service\nmetadata: {name: httpbin, namespace: bar}\n"
      "spec:\n  selector: {app: httpbin}\n  ports: [{name: tls, port: 8000, targetPort: " + port + "}]\n"
      "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
      "metadata: {name: httpbin-1, namespace: bar, labels: {kubernetes.io/service-name: httpbin}}\n"
      "addressType: IPv4\nports: [{name: tls, port: " + port + "}]\nendpoints:\n"
      "- {addresses: [127.0.0.1], targetRef: {kind: Pod, name: near}}\n"
      "- {addresses: [127.0.0.2], targetRef: {kind: Pod, name: far}}\n"
      "---\napiVersion: v1\nkind: Pod\n"
      "metadata: {name: near, namespace: bar, labels: {app: httpbin, topology.istio.io/network: network1}}\n"
      "status: {podIP: 127.0.0.1, phase: Running}\n"
      "---\napiVersion: v1\nkind: Pod\nmetadata: {name: far, namespace: bar, labels: {app: httpbin}}\n"
      "status: {podIP: 127.0.0.2, phase: Running}\n" +
      Gateway("{}", "['*.local']");
  auto gw = Start(mesh, "network: network1");
  EXPECT_EQ(SendHellos(*gw, [&] { return Accepted(); }, [] { return false; }, 6), 6);
  EXPECT_EQ(near_.accepted(), 6);
  EXPECT_EQ(far_.accepted(), 0) << "the namespace's network2 endpoint was dialled";
  const auto endpoints = ClusterEndpoints(*gw, "outbound|8000||httpbin.bar.svc.cluster.local");
  ASSERT_EQ(endpoints.count("127.0.0.2"), 1u) << Get(gw->admin_address(), "/clusters");
  EXPECT_EQ(Field(endpoints.at("127.0.0.2"), "network"), "\"network2\"");
  EXPECT_EQ(Field(endpoints.at("127.0.0.2"), "in_view"), "false");
  EXPECT_EQ(Field(endpoints.at("127.0.0.2"), "health"), "\"out_of_view\"");
}

// --- 8. AuthorizationPolicy ---------------------------------------------------------------

// Prometheus text: the value of the series `series` (name{labels}), or -1.
double MetricValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

// DENY before ALLOW; the network RBAC filter refuses after the hello and
// before tcp_proxy dials; counted per policy, and the log names it.
TEST_F(IstioParityTest, DenyIpBlocksRefusesCountsAndLogsThePolicy) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(Entry("httpbin", {{"127.0.0.1", backend.port(), ""}}) + Gateway("{}", "['*.local']") +
                  Policy("deny-loopback", "  action: DENY\n  rules: [{from: [{source: {ipBlocks: [127.0.0.1/32]}}]}]\n"));
  EXPECT_TRUE(Refused(*gw, kSni));
  EXPECT_EQ(backend.accepted(), 0) << "a denied connection was dialled";
  const std::string metrics = Get(gw->metrics_address(), "/stats/prometheus");
  EXPECT_EQ(MetricValue(metrics, "meshgate_rbac_denied_total{policy=\"istio-system/deny-loopback\"}"), 1)
      << metrics;
  EXPECT_EQ(gw->Stop(), 0);
  EXPECT_EQ(gw->Counter("termination.rbac_denied"), 1u) << gw->Stats();
  const auto lines = LogLines(*gw, "\"termination\":\"rbac_denied\"");
  ASSERT_EQ(lines.size(), 1u) << gw->Stdout();
  EXPECT_NE(lines[0].find("\"termination\":\"rbac_denied\",\"policy\":\"istio-system/deny-loopback\""),
            std::string::npos) << lines[0];
}

// when: connection.sni with a prefix match: only that service gets through;
// another exported one matches no ALLOW rule and is refused (policy "none").
TEST_F(IstioParityTest, AllowByConnectionSniLetsOnlyThatServiceThrough) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  TlsBackend other(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(Entry("httpbin", {{"127.0.0.1", backend.port(), ""}}) +
                  Entry("other", {{"127.0.0.1", other.port(), ""}}) + Gateway("{}", "['*.local']") +
                  Policy("allow-httpbin", "  action: ALLOW\n  rules:\n  - when:\n"
                                          "    - {key: connection.sni, values: ['outbound_.8000_._.httpbin.*']}\n"));
  EXPECT_TRUE(Refused(*gw, kOtherSni));
  EXPECT_EQ(other.accepted(), 0) << "a connection no ALLOW rule matched was dialled";
  EXPECT_TRUE(Echoes(*gw, kSni)) << gw->Log();
  const std::string metrics = Get(gw->metrics_address(), "/stats/prometheus");
  EXPECT_EQ(MetricValue(metrics, "meshgate_rbac_denied_total{policy=\"none\"}"), 1) << metrics;
  EXPECT_EQ(gw->Stop(), 0);
  const auto lines = LogLines(*gw, "\"termination\":\"rbac_denied\"");
  ASSERT_EQ(lines.size(), 1u) << gw->Stdout();
  EXPECT_NE(lines[0].find("\"policy\":\"none\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find(kOtherSni), std::string::npos) << lines[0];
}

// Istio's TCP rule for HTTP-only and identity fields (istio.io Authorization
// Policy, "TCP"; authz builder): an ALLOW rule using one never matches; a
// DENY rule drops the field and the rest decides. meshgate never sees the
// peer certificate, so principals are such a field.
TEST_F(IstioParityTest, PrincipalsNeverAllowAndAreDroppedFromDeny) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  ReservedPort listen;
  const std::string base = Entry("httpbin", {{"127.0.0.1", backend.port(), ""}}) +
                           Gateway("{}", "['*.local']", listen.port());
  const std::string principals = "    - from: [{source: {principals: ['" + std::string(kClientId).substr(9) + "']}}]\n";
  const std::string port = std::to_string(listen.port());
  struct Case {
    const char* name;
    std::string policy;
    const char* denied_by;  // nullptr: allowed
  };
  const std::string deny = "  action: DENY\n  rules:\n" + principals;
  const Case cases[] = {
      {"ALLOW principals never matches", Policy("p", "  action: ALLOW\n  rules:\n" + principals), "none"},
      {"DENY principals + ports: principals dropped",
       Policy("p", deny + "      to: [{operation: {ports: ['" + port + "']}}]\n"), "istio-system/p"},
      {"DENY principals + notPorts: the port decides",
       Policy("p", deny + "      to: [{operation: {notPorts: ['" + port + "']}}]\n"), nullptr},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto gw = Start(base + c.policy, "", {"--listen", listen.address()});
    ASSERT_EQ(gw->port(), listen.port());
    const int before = backend.accepted();
    if (c.denied_by == nullptr) {
      EXPECT_TRUE(Echoes(*gw, kSni)) << gw->Log();
    } else {
      EXPECT_TRUE(Refused(*gw, kSni));
      EXPECT_EQ(backend.accepted(), before) << "a denied connection was dialled";
    }
    EXPECT_EQ(gw->Stop(), 0);
    const auto lines = LogLines(*gw, "\"termination\":\"rbac_denied\"");
    ASSERT_EQ(lines.size(), c.denied_by == nullptr ? 0u : 1u) << gw->Stdout();
    if (c.denied_by != nullptr) {
      EXPECT_NE(lines[0].find("\"policy\":\"" + std::string(c.denied_by) + "\""), std::string::npos) << lines[0];
    }
  }
}

// AUDIT only reports: the connection goes through and the match is logged.
TEST_F(IstioParityTest, AuditPolicyAllowsAndLogs) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(Entry("httpbin", {{"127.0.0.1", backend.port(), ""}}) + Gateway("{}", "['*.local']") +
                  Policy("audit-loopback", "  action: AUDIT\n  rules: [{from: [{source: {ipBlocks: [127.0.0.0/8]}}]}]\n"));
  EXPECT_TRUE(Echoes(*gw, kSni)) << gw->Log();
  EXPECT_TRUE(gw->WaitForLog("AUDIT policy istio-system/audit-loopback matched")) << gw->Log();
  EXPECT_EQ(gw->Stop(), 0);
  EXPECT_EQ(gw->Counter("termination.rbac_denied"), 0u) << gw->Stats();
}

// A policy's selector must match the gateway's labels, in the root namespace
// too (Istio: a root-namespace policy with a selector applies to matching
// workloads in every namespace); a policy in another namespace never applies.
TEST_F(IstioParityTest, PolicySelectorMustMatchTheGatewayLabels) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  const std::string base = Entry("httpbin", {{"127.0.0.1", backend.port(), ""}}) + Gateway("{}", "['*.local']");
  const std::string deny_all = "  action: DENY\n  rules: [{}]\n";
  const std::string other_ns =
      "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
      "metadata: {name: deny-bar, namespace: bar}\nspec:\n" + deny_all;
  {
    auto gw = Start(base + Policy("deny-ingress", "  selector: {matchLabels: {istio: ingressgateway}}\n" + deny_all) +
                        other_ns,
                    "labels: {istio: eastwestgateway}");
    EXPECT_TRUE(Echoes(*gw, kSni)) << gw->Log();
  }
  const int before = backend.accepted();
  auto gw = Start(base + Policy("deny-eastwest", "  selector: {matchLabels: {istio: eastwestgateway}}\n" + deny_all),
                  "labels: {istio: eastwestgateway}");
  EXPECT_TRUE(Refused(*gw, kSni));
  EXPECT_EQ(backend.accepted(), before) << "a denied connection was dialled";
  EXPECT_EQ(gw->Stop(), 0);
  EXPECT_EQ(gw->Counter("termination.rbac_denied"), 1u) << gw->Stats();
}

// A policy's `ports` name the gateway's port, as Gateway servers do: with an
// ephemeral listener (port 0) that is 15443, so `ports: [15443]` matches
// whatever port the kernel picked, and another port does not.
TEST_F(IstioParityTest, PolicyPortsNameTheGatewayPortLikeGatewayServers) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  const std::string base = Entry("httpbin", {{"127.0.0.1", backend.port(), ""}}) + Gateway("{}", "['*.local']");
  {
    auto gw = Start(base + Policy("p", "  action: DENY\n  rules: [{to: [{operation: {ports: ['15443']}}]}]\n"));
    EXPECT_NE(gw->port(), 15443);
    EXPECT_TRUE(Refused(*gw, kSni));
    EXPECT_EQ(gw->Stop(), 0);
    EXPECT_EQ(backend.accepted(), 0) << "a denied connection was dialled";
  }
  auto gw = Start(base + Policy("p", "  action: DENY\n  rules: [{to: [{operation: {ports: ['15444']}}]}]\n"));
  EXPECT_TRUE(Echoes(*gw, kSni)) << gw->Log();
  EXPECT_EQ(gw->Stop(), 0);
}

// CUSTOM (ext_authz) cannot be honoured at L4 without a provider: refused
// when it applies, rather than silently allowing. A bad ipBlock is an error
// with file:line:col and the field path, like every other resource.
TEST_F(IstioParityTest, CustomPolicyAndBadIpBlockFailTheCheck) {
  const std::string base = Entry("httpbin", {{"127.0.0.1", 9001, ""}}) + Gateway("{}", "['*.local']");
  const std::string custom = dir_.Write(
      "custom.yaml", base + Policy("ext", "  action: CUSTOM\n  provider: {name: opa}\n"
                                          "  rules: [{to: [{operation: {ports: ['15443']}}]}]\n"));
  const RunResult r = RunMeshgate({"--check", "--mesh", custom});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.err.find("CUSTOM"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("istio-system/ext"), std::string::npos) << r.err;

  const std::string bad = dir_.Write(
      "bad.yaml", base + Policy("deny", "  action: DENY\n  rules:\n  - from:\n"
                                        "    - source: {ipBlocks: [10.0.0.0/8, 10.0.0.300/8]}\n"));
  const RunResult b = RunMeshgate({"--check", "--mesh", bad});
  EXPECT_EQ(b.exit_code, 1) << b.out;
  // The ipBlocks line is the last line of bad.yaml.
  const int line = static_cast<int>(std::count(base.begin(), base.end(), '\n')) + 9;
  EXPECT_NE(b.err.find("bad.yaml:" + std::to_string(line) + ":"), std::string::npos) << b.err;
  EXPECT_NE(b.err.find("spec.rules[0].from[0].source.ipBlocks[1]"), std::string::npos) << b.err;
  EXPECT_NE(b.err.find("AuthorizationPolicy istio-system/deny"), std::string::npos) << b.err;
}

// --- 9. --check -----------------------------------------------------------------------

// --check prints the Gateway, network and authorization decisions per cluster.
TEST_F(IstioParityTest, CheckPrintsGatewayAuthorizationAndNetworkDecisions) {
  dir_.Write("mesh/mesh.yaml",
             Entry("httpbin", {{"127.0.0.1", 9001, "network1"}, {"127.0.0.2", 9001, "network2"}}) +
                 Entry("ext", {{"127.0.0.3", 9002, ""}}, "MESH_EXTERNAL") +
                 Gateway("{istio: eastwestgateway}", "['./*.local']") +
                 Policy("deny-range", "  action: DENY\n  rules: [{from: [{source: {ipBlocks: [192.0.2.0/24]}}]}]\n"));
  const std::string config = dir_.Write(
      "gw.yaml", "labels: {istio: eastwestgateway}\nnetwork: network1\nmesh: [mesh/]\n");
  const RunResult r = RunMeshgate({"--check", "--config", config});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  for (const std::string& want : {
           std::string("labels {istio=eastwestgateway}"),
           std::string("selected by Gateways: istio-system/cross-network-gateway"),
           std::string("network: network1"),
           std::string("network view: network1 and endpoints without a network"),
           std::string("not exported: MESH_EXTERNAL"),
           std::string("istio-system/deny-range"),
       }) {
    EXPECT_NE(r.out.find(want), std::string::npos) << want << "\n" << r.out;
  }
  EXPECT_NE(r.out.find("DENY istio-system/deny-range: rule 0: from(ipBlocks=192.0.2.0/24)"), std::string::npos)
      << r.out;
  // Each endpoint line: its network, then whether it is in view.
  const auto endpoint_line = [&](const std::string& address) {
    const size_t at = r.out.find("endpoint " + address);
    return at == std::string::npos ? std::string() : r.out.substr(at, r.out.find('\n', at) - at);
  };
  EXPECT_NE(endpoint_line("127.0.0.1:9001").find(" network=network1 "), std::string::npos) << r.out;
  EXPECT_TRUE(endpoint_line("127.0.0.1:9001").ends_with(" in view")) << r.out;
  EXPECT_NE(endpoint_line("127.0.0.2:9001").find(" network=network2 "), std::string::npos) << r.out;
  EXPECT_TRUE(endpoint_line("127.0.0.2:9001").ends_with(" out of view")) << r.out;
}

}  // namespace
}  // namespace meshgate::testing
