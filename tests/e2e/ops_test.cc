// Operations end to end, against the real binary: Prometheus exposition after
// each kind of connection, bounded series under an SNI flood, readiness and
// the graceful drain, the admin API, and the JSON access log.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "gtest/gtest.h"
#include "proxy/access_log.h"
#include "base/io/http_server.h"
#include "tests/support/meshgate_process.h"
#include "tests/support/mesh_yaml.h"
#include "tests/support/pki.h"
#include "tests/support/prometheus_server.h"
#include "tests/support/ports.h"
#include "tests/support/tls_peers.h"

namespace meshgate::testing {
namespace {

namespace json = boost::json;
using io::HttpCall;

constexpr char kSni[] = "outbound_.8000_._.httpbin.bar.global";
constexpr char kDeadSni[] = "outbound_.8000_._.dead.bar.global";
constexpr char kHttpbinCluster[] = "outbound|8000||httpbin.bar.svc.cluster.local";
constexpr char kDeadCluster[] = "outbound|8000||dead.bar.svc.cluster.local";

std::string Se(const std::string& name, uint16_t port) {
  return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
         "metadata: {name: " + name + ", namespace: bar}\n"
         "spec:\n  hosts: [" + name + ".bar.svc.cluster.local]\n"
         "  ports: [{number: 8000, name: http, protocol: HTTP}]\n  resolution: STATIC\n"
         "  endpoints: [{address: 127.0.0.1, ports: {http: " + std::to_string(port) + "}}]\n";
}

// One exposition sample: "name{labels} value".
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

std::vector<Sample> ParseExposition(const std::string& text, std::vector<std::string>* bad_lines) {
  static const std::regex kLine(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$)");
  static const std::regex kLabel(R"(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)\"(,|$))");
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
    std::smatch m;
    if (!std::regex_match(line, m, kLine)) {
      bad_lines->push_back(line);
      continue;
    }
    Sample s;
    s.name = m[1];
    const std::string labels = m[3];
    for (auto it = std::sregex_iterator(labels.begin(), labels.end(), kLabel); it != std::sregex_iterator(); ++it) {
      s.labels[(*it)[1]] = (*it)[2];
    }
    const std::string value = m[4];
    s.value = value == "+Inf" ? 1e300 : std::stod(value);
    out.push_back(std::move(s));
  }
  return out;
}

class Scrape {
 public:
  explicit Scrape(const std::string& address) {
    const io::HttpResult r = io::HttpCall(address, "GET", "/stats/prometheus", 3000);
    status = r.status;
    content_type = r.content_type;
    text = r.body;
    samples = ParseExposition(text, &bad_lines);
  }
  // The value of the one sample named `name` carrying all of `labels`; -1 if none.
  double Value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    for (const Sample& s : samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels) match = match && s.labels.count(k) && s.labels.at(k) == v;
      if (match) return s.value;
    }
    return -1;
  }
  std::set<std::string> Series() const {
    std::set<std::string> out;
    for (const Sample& s : samples) {
      std::string key = s.name;
      for (const auto& [k, v] : s.labels) key += "," + k + "=" + v;
      out.insert(key);
    }
    return out;
  }

  int status = -1;
  std::string content_type;
  std::string text;
  std::vector<Sample> samples;
  std::vector<std::string> bad_lines;
};

std::vector<json::object> AccessLines(const std::string& out) {
  std::vector<json::object> lines;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    EXPECT_FALSE(ec) << "not JSON: " << line;
    if (!ec && v.is_object()) lines.push_back(v.as_object());
  }
  return lines;
}

std::string Str(const json::value& v) { return v.is_string() ? std::string(v.as_string()) : "<not a string>"; }

std::multiset<std::string> Terminations(const std::vector<json::object>& lines) {
  std::multiset<std::string> out;
  for (const auto& l : lines) out.insert(std::string(l.at("termination").as_string()));
  return out;
}

class OpsTest : public ::testing::Test {
 protected:
  OpsTest()
      : client_id_(pki_.Issue(1, "spiffe://cluster.local/ns/foo/sa/sleep")),
        server_id_(pki_.Issue(2, "spiffe://cluster.local/ns/bar/sa/httpbin")),
        client_ctx_(pki_.ClientContext(client_id_)) {}

  std::unique_ptr<MeshgateProcess> Start(uint16_t httpbin_port, std::vector<std::string> extra = {}) {
    dir_.Write("mesh/httpbin.yaml", Se("httpbin", httpbin_port));
    dir_.Write("mesh/dead.yaml", Se("dead", dead_.port()));
    dir_.Write("mesh/gateway.yaml", kCrossNetworkGateway);
    std::vector<std::string> args = {"--config", dir_.Write("gw.yaml", "threads: 1\ntimeouts: {hello: 300ms}\n"
                                                                       "mesh: [mesh/]\n")};
    args.insert(args.end(), extra.begin(), extra.end());
    auto gw = std::make_unique<MeshgateProcess>(args);
    EXPECT_TRUE(gw->running()) << gw->Log();
    return gw;
  }

  // A TLS session through the gateway that echoes one message.
  void Echo(uint16_t port) {
    TlsClient client(client_ctx_.get(), port, kSni);
    ASSERT_TRUE(client.ok()) << client.error();
    const std::string msg = "ping";
    ASSERT_TRUE(client.WriteAll(msg.data(), msg.size()));
    char buf[4];
    ASSERT_TRUE(client.ReadExactly(buf, sizeof buf));
  }

  Pki pki_;
  Workload client_id_;
  Workload server_id_;
  SslCtxPtr client_ctx_;
  TempDir dir_;
  ReservedPort dead_;  // the dead service's endpoint: nothing listens
};

TEST_F(OpsTest, PrometheusCountersMoveForEachKindOfConnection) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(backend.port());
  const std::string metrics = gw->metrics_address();
  ASSERT_FALSE(metrics.empty()) << gw->Log();

  Echo(gw->port());                                                     // happy
  EXPECT_FALSE(TlsClient(client_ctx_.get(), gw->port(), "outbound_.8000_._.nope.bar.global").ok());
  {                                                                     // garbage
    const int fd = ConnectTcp(gw->port());
    const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ::send(fd, http.data(), http.size(), MSG_NOSIGNAL);
    EXPECT_GE(WaitForClose(fd, 2000), 0);
  }
  {                                                                     // silent: hello timeout
    const int fd = ConnectTcp(gw->port());
    EXPECT_GE(WaitForClose(fd, 3000), 0);
  }
  EXPECT_FALSE(TlsClient(client_ctx_.get(), gw->port(), kDeadSni).ok());  // dead backend

  Scrape s(metrics);
  ASSERT_EQ(s.status, 200) << metrics << "\n" << gw->Log();
  EXPECT_EQ(s.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_TRUE(s.bad_lines.empty()) << s.bad_lines.front();
  // Wait for the last session's close to be counted.
  ASSERT_TRUE(WaitFor([&] {
    return Scrape(metrics).Value("meshgate_sessions_closed_total", {{"reason", "upstream_connect_failed"}}) == 1;
  }));
  s = Scrape(metrics);
  EXPECT_EQ(s.Value("meshgate_downstream_cx_total"), 5);
  EXPECT_EQ(s.Value("meshgate_downstream_cx_active"), 0);
  EXPECT_EQ(s.Value("meshgate_client_hello_total", {{"result", "sni_found"}}), 3);
  EXPECT_EQ(s.Value("meshgate_client_hello_total", {{"result", "not_tls"}}), 1);
  EXPECT_EQ(s.Value("meshgate_client_hello_total", {{"result", "timeout"}}), 1);
  EXPECT_EQ(s.Value("meshgate_client_hello_total", {{"result", "malformed"}}), 0);
  EXPECT_EQ(s.Value("meshgate_client_hello_bytes_count"), 3);
  EXPECT_EQ(s.Value("meshgate_route_miss_total", {{"reason", "unknown_host"}}), 1);
  EXPECT_EQ(s.Value("meshgate_upstream_cx_total", {{"cluster", kHttpbinCluster}}), 1);
  EXPECT_EQ(s.Value("meshgate_upstream_connect_failures_total", {{"cluster", kDeadCluster}}), 1);
  EXPECT_EQ(s.Value("meshgate_upstream_cx_total", {{"cluster", kDeadCluster}}), 0);
  EXPECT_EQ(s.Value("meshgate_upstream_connect_duration_seconds_count", {{"cluster", kHttpbinCluster}}), 1);
  EXPECT_GT(s.Value("meshgate_upstream_sent_bytes_total", {{"cluster", kHttpbinCluster}}), 200);  // hello + ping
  EXPECT_GT(s.Value("meshgate_upstream_received_bytes_total", {{"cluster", kHttpbinCluster}}), 200);
  for (const char* reason : {"no_route", "not_tls", "hello_timeout", "upstream_connect_failed"}) {
    EXPECT_EQ(s.Value("meshgate_sessions_closed_total", {{"reason", reason}}), 1) << reason;
  }
  const std::map<std::string, std::string> istio = {
      {"reporter", "source"},
      {"response_flags", "-"},
      {"destination_service", "httpbin.bar.svc.cluster.local"},
      {"destination_service_name", "httpbin"},
      {"destination_service_namespace", "bar"},
      {"destination_cluster", "Kubernetes"}};  // an endpoint was used
  EXPECT_EQ(s.Value("istio_tcp_connections_opened_total", istio), 1);
  EXPECT_EQ(s.Value("istio_tcp_connections_closed_total", istio), 1);
  EXPECT_GT(s.Value("istio_tcp_received_bytes_total", istio), 200);
  EXPECT_GT(s.Value("istio_tcp_sent_bytes_total", istio), 200);
  EXPECT_EQ(s.Value("meshgate_cluster_endpoints", {{"cluster", kHttpbinCluster}, {"health", "healthy"}}), 1);
  EXPECT_EQ(s.Value("meshgate_build_info"), 1);
  EXPECT_EQ(io::HttpCall(metrics, "GET", "/metrics", 3000).status, 200);
  EXPECT_EQ(io::HttpCall(metrics, "GET", "/nothing", 3000).status, 404);

  EXPECT_EQ(gw->Stop(), 0);
  const std::vector<json::object> lines = AccessLines(gw->Stdout());
  ASSERT_EQ(lines.size(), 5u) << gw->Stdout();
  std::multiset<std::string> ends = Terminations(lines);
  const bool happy_close = ends.count("downstream_close") + ends.count("upstream_close") == 1;
  EXPECT_TRUE(happy_close) << gw->Stdout();
  for (const char* reason : {"no_route", "not_tls", "hello_timeout", "upstream_connect_failed"}) {
    EXPECT_EQ(ends.count(reason), 1u) << reason << "\n" << gw->Stdout();
  }
  for (const json::object& l : lines) {
    if (Str(l.at("termination")) != "downstream_close" && Str(l.at("termination")) != "upstream_close") continue;
    EXPECT_EQ(Str(l.at("sni")), kSni);
    EXPECT_EQ(Str(l.at("cluster")), kHttpbinCluster);
    EXPECT_EQ(Str(l.at("upstream_host")), "127.0.0.1:" + std::to_string(backend.port()));
    EXPECT_EQ(l.at("connect_attempts").as_int64(), 1);
    EXPECT_GT(l.at("bytes_received").as_int64(), 200);
    EXPECT_GT(l.at("bytes_sent").as_int64(), 200);
    EXPECT_TRUE(l.at("alpn").is_array());
    EXPECT_TRUE(l.contains("start_time") && l.contains("duration_ms") &&
                l.contains("downstream_remote_address"));
  }
}

TEST_F(OpsTest, AFloodOfRandomSnisAddsNoSeries) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(backend.port());
  Echo(gw->port());
  const std::set<std::string> before = Scrape(gw->metrics_address()).Series();
  std::mt19937 rng(7);
  for (int i = 0; i < 100; ++i) {
    const std::string sni = "outbound_.8000_._.svc" + std::to_string(rng()) + ".evil" + std::to_string(i) + ".global";
    EXPECT_FALSE(TlsClient(client_ctx_.get(), gw->port(), sni).ok());
  }
  const Scrape after(gw->metrics_address());
  EXPECT_EQ(after.Series(), before);
  EXPECT_EQ(after.Value("meshgate_route_miss_total", {{"reason", "unknown_host"}}), 100);
  EXPECT_EQ(after.text.find("evil"), std::string::npos);
}

TEST_F(OpsTest, DrainKeepsOpenSessionsNotReadyAtOnceListenersCloseAfterTheDelay) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(backend.port(), {"--drain-delay", "600ms", "--drain-time", "10s"});
  const std::string ready = gw->readiness_address();
  EXPECT_EQ(io::HttpCall(ready, "GET", "/healthz/ready", 2000).status, 200);
  TlsClient session(client_ctx_.get(), gw->port(), kSni);
  ASSERT_TRUE(session.ok()) << session.error();

  const auto sigterm = std::chrono::steady_clock::now();
  gw->SendSigterm();
  EXPECT_TRUE(WaitFor([&] { return io::HttpCall(ready, "GET", "/healthz/ready", 500).status == 503; }, 500));
  // During the delay new connections are still accepted (load balancers are
  // still deregistering the pod) ...
  TlsClient late(client_ctx_.get(), gw->port(), kSni);
  EXPECT_TRUE(late.ok()) << late.error();
  late.HalfClose();
  // ... after it, the listener is closed.
  // (Polled, not slept: a loaded machine may run the timer a little late.)
  EXPECT_TRUE(WaitFor(
      [&] {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(gw->port());
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        const bool refused = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0;
        ::close(fd);
        return refused;
      },
      5000));
  EXPECT_GE(std::chrono::steady_clock::now() - sigterm, std::chrono::milliseconds(600));
  // The established session still works.
  const std::string msg = "still here";
  ASSERT_TRUE(session.WriteAll(msg.data(), msg.size()));
  std::string echoed(msg.size(), '\0');
  ASSERT_TRUE(session.ReadExactly(echoed.data(), echoed.size()));
  EXPECT_EQ(echoed, msg);
  session.HalfClose();
  char buf[16];
  EXPECT_LE(session.Read(buf, sizeof buf), 0);  // the backend finishes, the session ends
  EXPECT_EQ(gw->WaitExit(3000), 0) << gw->Log();
  EXPECT_EQ(Terminations(AccessLines(gw->Stdout())).count("drained"), 0u) << gw->Stdout();
}

TEST_F(OpsTest, DrainTimeRunningOutClosesSessionsAsDrained) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(backend.port(), {"--drain-delay", "0s", "--drain-time", "300ms"});
  TlsClient session(client_ctx_.get(), gw->port(), kSni);
  ASSERT_TRUE(session.ok()) << session.error();
  const auto start = std::chrono::steady_clock::now();
  gw->SendSigterm();
  char buf[16];
  EXPECT_LE(session.Read(buf, sizeof buf), 0);
  EXPECT_EQ(gw->WaitExit(3000), 0) << gw->Log();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(Terminations(AccessLines(gw->Stdout())).count("drained"), 1u) << gw->Stdout();
}

TEST_F(OpsTest, ASecondSigtermExitsAtOnce) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(backend.port(), {"--drain-delay", "30s"});
  gw->SendSigterm();
  ASSERT_TRUE(gw->WaitForLog("draining (SIGTERM)", 1, 2000));
  const auto start = std::chrono::steady_clock::now();
  gw->SendSigterm();
  EXPECT_EQ(gw->WaitExit(3000), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST_F(OpsTest, AdminApi) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(backend.port(), {"--drain-delay", "300ms"});
  const std::string admin = gw->admin_address();
  ASSERT_FALSE(admin.empty()) << gw->Log();
  Echo(gw->port());

  const io::HttpResult dump = io::HttpCall(admin, "GET", "/config_dump", 3000);
  ASSERT_EQ(dump.status, 200);
  EXPECT_EQ(dump.content_type, "application/json");
  json::value config = json::parse(dump.body);
  EXPECT_EQ(config.at("version").as_int64(), 1);
  EXPECT_TRUE(config.at("reload").at("last_error").is_null());
  std::set<std::string> names;
  for (const auto& c : config.at("clusters").as_array()) names.insert(std::string(c.at("name").as_string()));
  EXPECT_EQ(names, (std::set<std::string>{kDeadCluster, kHttpbinCluster}));

  json::value clusters = json::parse(io::HttpCall(admin, "GET", "/clusters", 3000).body);
  bool seen = false;
  for (const auto& c : clusters.at("clusters").as_array()) {
    if (Str(c.at("name")) != kHttpbinCluster) continue;
    seen = true;
    EXPECT_EQ(Str(c.at("policy")), "ROUND_ROBIN");
    const auto& ep = c.at("endpoints").as_array().at(0);
    EXPECT_EQ(Str(ep.at("health")), "healthy");
    EXPECT_EQ(ep.at("total_connections").as_int64(), 1);
  }
  EXPECT_TRUE(seen) << clusters;
  EXPECT_NE(io::HttpCall(admin, "GET", "/stats", 3000).body.find("upstream_cx_total=1\n"), std::string::npos);
  EXPECT_EQ(io::HttpCall(admin, "POST", "/logging?level=verbose", 3000).status, 400);
  EXPECT_EQ(io::HttpCall(admin, "POST", "/logging?level=debug", 3000).status, 200);
  EXPECT_EQ(io::HttpCall(admin, "GET", "/drain", 3000).status, 405);
  EXPECT_EQ(io::HttpCall(admin, "GET", "/ready", 3000).status, 200);

  // A broken reload is rejected, reported here, and the old table serves on.
  dir_.Write("mesh/httpbin.yaml", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nspec: [\n");
  ASSERT_TRUE(gw->WaitForLog("config reload", 1, 5000)) << gw->Log();
  ASSERT_TRUE(WaitFor([&] {
    return !json::parse(io::HttpCall(admin, "GET", "/config_dump", 3000).body).at("reload").at("last_error").is_null();
  }));
  config = json::parse(io::HttpCall(admin, "GET", "/config_dump", 3000).body);
  EXPECT_NE(std::string(config.at("reload").at("last_error").as_string()).find("httpbin.yaml"), std::string::npos);
  EXPECT_EQ(config.at("version").as_int64(), 1);
  Echo(gw->port());

  EXPECT_EQ(io::HttpCall(admin, "POST", "/drain", 3000).status, 200);
  EXPECT_EQ(io::HttpCall(gw->readiness_address(), "GET", "/healthz/ready", 3000).status, 503);
  EXPECT_EQ(gw->WaitExit(3000), 0) << gw->Log();
}

TEST_F(OpsTest, AdminOffLoopbackIsLoudAndOffMeansOff) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(backend.port(), {"--admin", "0.0.0.0:0", "--metrics", "off"});
  EXPECT_TRUE(gw->WaitForLog("ADMIN API ON A NON-LOOPBACK ADDRESS", 1, 2000)) << gw->Log();
  EXPECT_EQ(gw->metrics_address(), "");
}

TEST_F(OpsTest, AccessLogToAFileWithSampling) {
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  dir_.Write("mesh/httpbin.yaml", Se("httpbin", backend.port()));
  dir_.Write("mesh/dead.yaml", Se("dead", dead_.port()));
  dir_.Write("mesh/gateway.yaml", kCrossNetworkGateway);
  MeshgateProcess sampled({"--config", dir_.Write("gw2.yaml", "threads: 1\nmesh: [mesh/]\n"
                                                              "accessLog: {path: sampled.log, sampleRate: 0}\n")});
  ASSERT_TRUE(sampled.running()) << sampled.Log();
  Echo(sampled.port());
  EXPECT_EQ(sampled.Stop(), 0);
  std::ifstream in(dir_.path() + "/sampled.log");
  EXPECT_TRUE(in.good());  // created...
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "");  // ...and nothing sampled
  EXPECT_EQ(sampled.Stdout(), "");

  MeshgateProcess all({"--config", dir_.Write("gw3.yaml", "threads: 1\nmesh: [mesh/]\n"
                                                          "accessLog: {path: all.log}\n")});
  Echo(all.port());
  Echo(all.port());
  EXPECT_EQ(all.Stop(), 0);
  std::ifstream in2(dir_.path() + "/all.log");
  std::string lines((std::istreambuf_iterator<char>(in2)), {});
  EXPECT_EQ(AccessLines(lines).size(), 2u) << lines;
}

TEST(AccessLogTest, AFullQueueDropsAndCountsInsteadOfBlocking) {
  ::signal(SIGPIPE, SIG_IGN);
  TempDir dir;
  const std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);  // never read: the disk is "stuck"
  ASSERT_GE(reader, 0);
  auto log = proxy::AccessLog::Open(fifo, 1.0, 1);
  ASSERT_TRUE(log.ok()) << log.status();
  const std::string line(1024, 'x');
  const auto start = std::chrono::steady_clock::now();
  size_t accepted = 0;
  for (int i = 0; i < 20000; ++i) accepted += (*log)->Submit(0, line) ? 1 : 0;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));  // never waited
  EXPECT_GT((*log)->dropped(), 0u);
  EXPECT_EQ(accepted + (*log)->dropped(), 20000u);
  ::close(reader);  // the writer's blocked write fails now, and it can finish
  log->reset();
}

TEST(AccessLogTest, JsonStringsEscapeEverythingOpaque) {
  EXPECT_EQ(proxy::JsonString("h2"), "\"h2\"");
  EXPECT_EQ(proxy::JsonString("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
  EXPECT_EQ(proxy::JsonString(std::string("\x01\xff", 2)), "\"\\u0001\\u00ff\"");
}

TEST_F(OpsTest, ARealPrometheusScrapesTheGatewayAndQueriesIstioSeries) {
  ASSERT_EQ(::access(kPrometheusBinary, X_OK), 0)
      << "Debian's prometheus package is missing: run scripts/install-deps.sh";
  TlsBackend backend(pki_, server_id_, {TlsBackend::Mode::kEcho});
  auto gw = Start(backend.port());
  Echo(gw->port());
  PrometheusServer prometheus(dir_, gw->metrics_address());
  ASSERT_TRUE(prometheus.started()) << prometheus.Log();

  std::string health;
  EXPECT_TRUE(WaitFor(
      [&] {
        const io::HttpResult r = io::HttpCall(prometheus.address(), "GET", "/api/v1/targets", 2000);
        if (r.status != 200) return false;
        const json::value v = json::parse(r.body);
        const json::array& targets = v.at("data").at("activeTargets").as_array();
        if (targets.empty()) return false;
        health = Str(targets[0].at("health"));
        return health == "up";
      },
      30000))
      << "target health: " << health;

  json::value result;
  EXPECT_TRUE(WaitFor(
      [&] {
        const io::HttpResult r =
            io::HttpCall(prometheus.address(), "GET",  // istio_tcp_connections_opened_total{destination_service_name="httpbin"}
                     "/api/v1/query?query=istio_tcp_connections_opened_total"
                     "%7Bdestination_service_name%3D%22httpbin%22%7D",
                     2000);
        if (r.status != 200) return false;
        result = json::parse(r.body);
        return !result.at("data").at("result").as_array().empty();
      },
      15000))
      << json::serialize(result);
  const json::array& series = result.at("data").at("result").as_array();
  ASSERT_EQ(series.size(), 1u) << json::serialize(result);
  const json::object& metric = series[0].at("metric").as_object();
  EXPECT_EQ(Str(metric.at("destination_service")), "httpbin.bar.svc.cluster.local");
  EXPECT_EQ(Str(metric.at("reporter")), "source");
  EXPECT_EQ(Str(metric.at("job")), "meshgate");
  EXPECT_EQ(Str(series[0].at("value").as_array().at(1)), "1");
}

}  // namespace
}  // namespace meshgate::testing
