// Istio's standard TCP metrics end to end: the real meshgate binary relays
// to two endpoints of one service with different workload identities, a
// real Prometheus scrapes it, and PromQL splits the traffic by
// destination_workload as an Istio dashboard would (reporter="source", the
// value Istio documents for a gateway). Labels never come from client input:
// a flood of random SNIs adds no istio_* series.
#include <openssl/ssl.h>
#include <unistd.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "base/io/http_server.h"
#include "gtest/gtest.h"
#include "tests/support/meshgate_process.h"
#include "tests/support/pki.h"
#include "tests/support/prometheus_server.h"
#include "tests/support/tls_peers.h"

namespace meshgate::testing {
namespace {

namespace json = boost::json;

constexpr char kSni[] = "outbound_.8000_._.httpbin.bar.svc.cluster.local";

// An east-west Gateway as Istio's multicluster samples write it
// (samples/multicluster/expose-services.yaml), selecting every gateway.
constexpr char kGateway[] =
    "apiVersion: networking.istio.io/v1\nkind: Gateway\n"
    "metadata: {name: cross-network-gateway, namespace: istio-system}\n"
    "spec:\n  selector: {}\n  servers:\n"
    "  - port: {number: 15443, name: tls, protocol: TLS}\n"
    "    tls: {mode: AUTO_PASSTHROUGH}\n    hosts: ['*.local']\n";

// httpbin.bar with two WorkloadEntries; Istio names a WorkloadEntry's
// workload after the entry (pkg/kube/labels WorkloadNameFromWorkloadEntry).
std::string Mesh(uint16_t v1_port, uint16_t v2_port) {
  auto entry = [](const std::string& version, uint16_t port) {
    return "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
           "metadata: {name: httpbin-" + version + ", namespace: bar}\n"
           "spec: {address: 127.0.0.1, ports: {tls: " + std::to_string(port) +
           "}, labels: {app: httpbin, version: " + version + "}}\n";
  };
  return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
         "metadata: {name: httpbin, namespace: bar}\n"
         "spec:\n  hosts: [httpbin.bar.svc.cluster.local]\n  location: MESH_INTERNAL\n"
         "  ports: [{number: 8000, name: tls, protocol: TLS}]\n  resolution: STATIC\n"
         "  workloadSelector: {labels: {app: httpbin}}\n" +
         entry("v1", v1_port) + entry("v2", v2_port);
}

// The client offers Istio's ALPN, as a sidecar does through the gateway.
void OfferIstioAlpn(SSL_CTX* ctx) {
  static const unsigned char kAlpn[] = "\x13istio-peer-exchange\x05istio";
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn - 1);
}

std::string Str(const json::value& v) { return v.is_string() ? std::string(v.as_string()) : "<not a string>"; }

class TelemetryTest : public ::testing::Test {
 protected:
  TelemetryTest()
      : client_id_(pki_.Issue(1, "spiffe://cluster.local/ns/foo/sa/sleep")),
        server_id_(pki_.Issue(2, "spiffe://cluster.local/ns/bar/sa/httpbin")),
        client_ctx_(pki_.ClientContext(client_id_)) {
    OfferIstioAlpn(client_ctx_.get());
  }

  std::unique_ptr<MeshgateProcess> Start(uint16_t v1_port, uint16_t v2_port) {
    dir_.Write("mesh/gateway.yaml", kGateway);
    dir_.Write("mesh/httpbin.yaml", Mesh(v1_port, v2_port));
    auto gw = std::make_unique<MeshgateProcess>(std::vector<std::string>{
        "--config", dir_.Write("gw.yaml", "threads: 1\nmesh: [mesh/]\nnamespace: istio-system\n"
                                          "clusterId: cluster-1\n")});
    EXPECT_TRUE(gw->running()) << gw->Log();
    return gw;
  }

  // One session that sends `n` bytes and reads them back.
  void Echo(uint16_t port, size_t n) {
    TlsClient client(client_ctx_.get(), port, kSni);
    ASSERT_TRUE(client.ok()) << client.error();
    const std::string msg(n, 'x');
    ASSERT_TRUE(client.WriteAll(msg.data(), msg.size()));
    std::string back(n, '\0');
    ASSERT_TRUE(client.ReadExactly(back.data(), back.size()));
  }

  // The query's vector result, once Prometheus has `want` series for it.
  json::array QueryVector(const PrometheusServer& prometheus, const std::string& promql, size_t want) {
    json::array series;
    EXPECT_TRUE(WaitFor(
        [&] {
          const std::string body = prometheus.Query(promql);
          if (body.empty()) return false;
          series = json::parse(body).at("data").at("result").as_array();
          return series.size() >= want;
        },
        20000))
        << promql << " -> " << json::serialize(series) << "\n" << prometheus.Log();
    return series;
  }

  Pki pki_;
  Workload client_id_;
  Workload server_id_;
  SslCtxPtr client_ctx_;
  TempDir dir_;
};

// Value by one label of a vector result: {"v1": 123, ...}.
std::map<std::string, double> ByLabel(const json::array& series, const std::string& label) {
  std::map<std::string, double> out;
  for (const json::value& s : series) {
    out[Str(s.at("metric").at(label))] = std::stod(Str(s.at("value").as_array().at(1)));
  }
  return out;
}

// The bytes each session sent to the client, summed by the endpoint port it
// used, from the gateway's JSON access log (one line per session).
std::map<uint16_t, double> SentByEndpointPort(const std::string& access_log) {
  std::map<uint16_t, double> out;
  size_t pos = 0;
  while (pos < access_log.size()) {
    const size_t end = access_log.find('\n', pos);
    const std::string line = access_log.substr(pos, end - pos);
    pos = end == std::string::npos ? access_log.size() : end + 1;
    if (line.empty()) continue;
    const json::object l = json::parse(line).as_object();
    const std::string host = Str(l.at("upstream_host"));
    out[static_cast<uint16_t>(std::stoi(host.substr(host.rfind(':') + 1)))] +=
        static_cast<double>(l.at("bytes_sent").as_int64());
  }
  return out;
}

TEST_F(TelemetryTest, PromQlSplitsSentBytesByDestinationWorkload) {
  ASSERT_EQ(::access(kPrometheusBinary, X_OK), 0) << "Debian's prometheus package is missing";
  TlsBackend v1(pki_, server_id_, {TlsBackend::Mode::kEcho});
  TlsBackend v2(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(v1.port(), v2.port());
  ASSERT_TRUE(gw->running());
  // One worker, round robin over two endpoints: each gets every other
  // session. Sizes differ, so a session counted in the wrong series shows.
  constexpr int kSessions = 8;
  for (int i = 0; i < kSessions; ++i) Echo(gw->port(), 1000 + 1000 * (i % 4));
  // Every session closed (counters final) before Prometheus first scrapes.
  const std::string closed = "istio_tcp_connections_closed_total";
  ASSERT_TRUE(WaitFor([&] {
    const std::string body = io::HttpCall(gw->metrics_address(), "GET", "/stats/prometheus", 3000).body;
    size_t total = 0;
    for (size_t at = body.find("\n" + closed + "{"); at != std::string::npos; at = body.find("\n" + closed + "{", at + 1)) {
      const size_t eol = body.find('\n', at + 1);
      const std::string line = body.substr(at + 1, eol - at - 1);
      if (line.find("response_flags=\"-\"") != std::string::npos) total += std::stoul(line.substr(line.rfind(' ') + 1));
    }
    return total == kSessions;
  }));
  PrometheusServer prometheus(dir_, gw->metrics_address());
  ASSERT_TRUE(prometheus.started()) << prometheus.Log();

  const json::array sent = QueryVector(
      prometheus, "sum(istio_tcp_sent_bytes_total{reporter=\"source\"}) by (destination_workload)", 2);
  const std::map<std::string, double> by_workload = ByLabel(sent, "destination_workload");
  ASSERT_EQ(by_workload.size(), 2u) << json::serialize(sent);
  ASSERT_TRUE(by_workload.count("httpbin-v1") && by_workload.count("httpbin-v2")) << json::serialize(sent);

  const json::array opened = QueryVector(
      prometheus,
      "sum(istio_tcp_connections_opened_total{reporter=\"source\",destination_service=\"httpbin.bar.svc.cluster.local\"})"
      " by (destination_workload, destination_version, destination_app, destination_cluster, source_cluster,"
      " source_workload_namespace, request_protocol, connection_security_policy, response_flags)",
      2);
  ASSERT_EQ(opened.size(), 2u) << json::serialize(opened);
  for (const json::value& s : opened) {
    const json::object& m = s.at("metric").as_object();
    const std::string workload = Str(m.at("destination_workload"));
    EXPECT_EQ(Str(m.at("destination_version")), workload == "httpbin-v1" ? "v1" : "v2");
    EXPECT_EQ(Str(m.at("destination_app")), "httpbin");
    EXPECT_EQ(Str(m.at("destination_cluster")), "cluster-1");
    EXPECT_EQ(Str(m.at("source_cluster")), "cluster-1");
    EXPECT_EQ(Str(m.at("source_workload_namespace")), "istio-system");
    EXPECT_EQ(Str(m.at("request_protocol")), "tcp");
    EXPECT_EQ(Str(m.at("connection_security_policy")), "unknown");
    EXPECT_EQ(Str(m.at("response_flags")), "-");
    EXPECT_EQ(Str(s.at("value").as_array().at(1)), std::to_string(kSessions / 2));
  }

  // The split matches what each endpoint really sent, session by session.
  EXPECT_EQ(gw->Stop(), 0);
  const std::map<uint16_t, double> truth = SentByEndpointPort(gw->Stdout());
  ASSERT_EQ(truth.size(), 2u) << gw->Stdout();
  EXPECT_EQ(by_workload.at("httpbin-v1"), truth.at(v1.port()));
  EXPECT_EQ(by_workload.at("httpbin-v2"), truth.at(v2.port()));
  EXPECT_NE(truth.at(v1.port()), truth.at(v2.port()));
}

// Scrapes meshgate directly: the set of istio_* series (name and labels).
std::set<std::string> IstioSeries(const std::string& metrics) {
  const io::HttpResult r = io::HttpCall(metrics, "GET", "/stats/prometheus", 3000);
  std::set<std::string> out;
  size_t pos = 0;
  while (pos < r.body.size()) {
    const size_t end = r.body.find('\n', pos);
    const std::string line = r.body.substr(pos, end - pos);
    pos = end == std::string::npos ? r.body.size() : end + 1;
    if (line.rfind("istio_", 0) == 0) out.insert(line.substr(0, line.rfind(' ')));
  }
  return out;
}

TEST_F(TelemetryTest, AFloodOfRandomSnisAddsNoIstioSeries) {
  TlsBackend v1(pki_, server_id_, {TlsBackend::Mode::kEcho});
  TlsBackend v2(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(v1.port(), v2.port());
  ASSERT_TRUE(gw->running());
  Echo(gw->port(), 100);
  Echo(gw->port(), 100);
  const std::set<std::string> before = IstioSeries(gw->metrics_address());
  ASSERT_FALSE(before.empty());
  std::mt19937 rng(13);
  constexpr int kFlood = 500;
  for (int i = 0; i < kFlood; ++i) {
    const std::string sni = "outbound_.8000_._.svc" + std::to_string(rng()) + ".evil" + std::to_string(i) + ".local";
    EXPECT_FALSE(TlsClient(client_ctx_.get(), gw->port(), sni, 2000).ok());
  }
  std::set<std::string> after;
  // The last refusals are counted once their sessions close.
  ASSERT_TRUE(WaitFor([&] {
    const io::HttpResult r = io::HttpCall(gw->metrics_address(), "GET", "/stats/prometheus", 3000);
    return r.body.find("response_flags=\"NR\"} " + std::to_string(kFlood)) != std::string::npos;
  })) << io::HttpCall(gw->metrics_address(), "GET", "/stats/prometheus", 3000).body;
  after = IstioSeries(gw->metrics_address());
  EXPECT_EQ(after, before);
  for (const std::string& s : after) EXPECT_EQ(s.find("evil"), std::string::npos) << s;
}

}  // namespace
}  // namespace meshgate::testing
