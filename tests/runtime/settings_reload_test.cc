// meshgate.yaml is reloadable for everything but the listener, the threads and
// the ops endpoints: these tests change it under a running gateway, send
// SIGHUP (the file watcher may see the write first: either reloads), wait
// until every worker acknowledged the new version (admin
// /config_dump "workers_version"), and check that new connections follow it.
#include <signal.h>
#include <unistd.h>

#include <regex>
#include <string>

#include <boost/json.hpp>

#include "base/io/http_server.h"
#include "gtest/gtest.h"
#include "tests/support/gateway_admin.h"
#include "tests/support/meshgate_process.h"
#include "tests/support/tls_peers.h"

namespace meshgate::testing {
namespace {

namespace json = boost::json;

constexpr char kMesh[] =
    "apiVersion: networking.istio.io/v1beta1\n"
    "kind: ServiceEntry\n"
    "metadata: {name: httpbin, namespace: bar}\n"
    "spec:\n"
    "  hosts: [httpbin.bar.svc.cluster.local]\n"
    "  location: MESH_INTERNAL\n"
    "  ports: [{number: 8000, name: tcp, protocol: TCP}]\n"
    "  resolution: STATIC\n"
    "  endpoints: [{address: 127.0.0.1, ports: {tcp: 9}}]\n"
    "---\n"
    "apiVersion: networking.istio.io/v1\n"
    "kind: Gateway\n"
    "metadata: {name: cross-network-gateway, namespace: istio-system}\n"
    "spec:\n"
    "  servers:\n"
    "  - port: {number: 15443, name: tls, protocol: TLS}\n"
    "    tls: {mode: AUTO_PASSTHROUGH}\n"
    "    hosts: [\"*.local\"]\n";

json::object ConfigDump(const std::string& admin) {
  const io::HttpResult r = io::HttpCall(admin, "GET", "/config_dump", 3000);
  if (r.status != 200) return {};
  return json::parse(r.body).as_object();
}

class SettingsReloadTest : public ::testing::Test {
 protected:
  std::string WriteSettings(const std::string& body) { return dir_.Write("meshgate.yaml", body + "mesh: [mesh.yaml]\n"); }
  TempDir dir_;
};

TEST_F(SettingsReloadTest, HelloTimeoutAndLogLevelChangeOnSighup) {
  dir_.Write("mesh.yaml", kMesh);
  const std::string cfg = WriteSettings("logLevel: info\ntimeouts: {hello: 60s}\n");
  MeshgateProcess gw({"--config", cfg});
  ASSERT_TRUE(gw.running()) << gw.Log();
  const std::string admin = gw.admin_address();
  json::object dump = ConfigDump(admin);
  ASSERT_EQ(dump.at("version").to_number<int64_t>(), 1) << json::serialize(dump);
  EXPECT_EQ(dump.at("workers_version").to_number<int64_t>(), 1);
  EXPECT_EQ(dump.at("settings").at("hello_timeout_ms").to_number<int64_t>(), 60000);
  EXPECT_EQ(dump.at("settings").at("log_level").as_string(), "info");

  WriteSettings("logLevel: warn\ntimeouts: {hello: 250ms}\n");
  ::kill(gw.pid(), SIGHUP);
  // At warn, "config reloaded" is not logged: the version is the signal.
  ASSERT_TRUE(WaitForWorkersVersion(admin, 2)) << json::serialize(ConfigDump(admin)) << gw.Log();
  dump = ConfigDump(admin);
  EXPECT_EQ(dump.at("settings").at("hello_timeout_ms").to_number<int64_t>(), 250);
  EXPECT_EQ(dump.at("settings").at("log_level").as_string(), "warn");

  // A new silent connection now runs out of time at 250 ms, not 60 s.
  const int silent = ConnectTcp(gw.port());
  const int waited = WaitForClose(silent, 10000);
  ::close(silent);
  EXPECT_GE(waited, 200);
  EXPECT_LE(waited, 5000);
  // The refusal is logged at info, before the socket closes: at warn it is
  // not there (at info it is; see the next test).
  EXPECT_EQ(gw.Log().find("closed: hello_timeout"), std::string::npos) << gw.Log();
  const std::string metrics = io::HttpCall(gw.metrics_address(), "GET", "/stats/prometheus", 3000).body;
  EXPECT_NE(metrics.find("meshgate_listener_hello_timeout_total{listener=\"127.0.0.1:" + std::to_string(gw.port()) +
                         "\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("meshgate_workers_config_version 2"), std::string::npos) << metrics;
}

TEST_F(SettingsReloadTest, ABadSettingsFileKeepsTheLastGoodServing) {
  dir_.Write("mesh.yaml", kMesh);
  const std::string cfg = WriteSettings("timeouts: {hello: 300ms}\n");
  MeshgateProcess gw({"--config", cfg});
  ASSERT_TRUE(gw.running()) << gw.Log();
  const std::string admin = gw.admin_address();

  WriteSettings("timeouts: {hello: soon}\n");
  ::kill(gw.pid(), SIGHUP);
  ASSERT_TRUE(gw.WaitForLog("failed: still serving version 1")) << gw.Log();
  // file:line:col and the field path, as at startup.
  EXPECT_NE(gw.Log().find("meshgate.yaml:1:19: timeouts.hello"), std::string::npos) << gw.Log();
  const json::object dump = ConfigDump(admin);
  EXPECT_EQ(dump.at("version").to_number<int64_t>(), 1);
  EXPECT_EQ(dump.at("settings").at("hello_timeout_ms").to_number<int64_t>(), 300);
  EXPECT_NE(dump.at("reload").at("last_error").as_string().find("timeouts.hello"), std::string::npos);
  const int silent = ConnectTcp(gw.port());
  const int waited = WaitForClose(silent, 10000);
  ::close(silent);
  EXPECT_LE(waited, 3000);
  EXPECT_TRUE(gw.WaitForLog("closed: hello_timeout: no complete ClientHello within 300ms")) << gw.Log();
}

TEST_F(SettingsReloadTest, ListenerChangesWaitForARestartAndSaySo) {
  dir_.Write("mesh.yaml", kMesh);
  const std::string cfg = WriteSettings("threads: 1\n");
  MeshgateProcess gw({"--config", cfg});
  ASSERT_TRUE(gw.running()) << gw.Log();
  const std::string admin = gw.admin_address();

  WriteSettings("threads: 2\ntimeouts: {connect: 2s}\n");
  ::kill(gw.pid(), SIGHUP);
  ASSERT_TRUE(gw.WaitForLog("): version 2")) << gw.Log();
  EXPECT_TRUE(gw.WaitForLog("threads changed; it takes effect on restart only")) << gw.Log();
  ASSERT_TRUE(WaitForWorkersVersion(admin, 2));
  EXPECT_EQ(ConfigDump(admin).at("settings").at("connect_timeout_ms").to_number<int64_t>(), 2000);
}

TEST_F(SettingsReloadTest, EditingTheFileReloadsWithoutASignal) {
  dir_.Write("mesh.yaml", kMesh);
  const std::string cfg = WriteSettings("timeouts: {idle: 1h}\n");
  MeshgateProcess gw({"--config", cfg});
  ASSERT_TRUE(gw.running()) << gw.Log();
  WriteSettings("timeouts: {idle: 30m}\n");
  ASSERT_TRUE(gw.WaitForLog("config reloaded")) << gw.Log();
  ASSERT_TRUE(WaitForWorkersVersion(gw.admin_address(), 2));
  EXPECT_EQ(ConfigDump(gw.admin_address()).at("settings").at("idle_timeout_ms").to_number<int64_t>(), 1800000);
}

// The access log's sampling follows the file (its destination needs a restart).
TEST_F(SettingsReloadTest, AccessLogSamplingChangesOnReload) {
  dir_.Write("mesh.yaml", kMesh);
  const std::string cfg = WriteSettings("timeouts: {hello: 100ms}\naccessLog: {sampleRate: 0}\n");
  MeshgateProcess gw({"--config", cfg});
  ASSERT_TRUE(gw.running()) << gw.Log();
  auto silent_client = [&] {
    const int fd = ConnectTcp(gw.port());
    ASSERT_GE(WaitForClose(fd, 5000), 0);
    ::close(fd);
  };
  silent_client();
  ASSERT_TRUE(gw.WaitForLog("closed: hello_timeout", 1)) << gw.Log();
  WriteSettings("timeouts: {hello: 100ms}\naccessLog: {sampleRate: 1}\n");
  ASSERT_TRUE(WaitForWorkersVersion(gw.admin_address(), 2)) << gw.Log();
  silent_client();
  ASSERT_TRUE(gw.WaitForLog("closed: hello_timeout", 2)) << gw.Log();
  EXPECT_TRUE(WaitFor([&] { return gw.Stdout().find("\"termination\":\"hello_timeout\"") != std::string::npos; }))
      << gw.Stdout();
  // Exactly one line: the first connection was not sampled.
  const std::string out = gw.Stdout();
  EXPECT_EQ(out.find("hello_timeout"), out.rfind("hello_timeout")) << out;
}

// `mesh:` changed on reload: the watcher follows the new directory in place.
TEST_F(SettingsReloadTest, ANewMeshDirectoryIsWatchedAfterAReload) {
  dir_.Write("a/mesh.yaml", kMesh);
  dir_.Write("b/mesh.yaml", kMesh);
  const std::string cfg = dir_.Write("meshgate.yaml", "mesh: [a/mesh.yaml]\n");
  MeshgateProcess gw({"--config", cfg});
  ASSERT_TRUE(gw.running()) << gw.Log();
  const std::string admin = gw.admin_address();
  dir_.Write("meshgate.yaml", "mesh: [b/mesh.yaml]\n");
  ASSERT_TRUE(WaitForWorkersVersion(admin, 2)) << gw.Log();
  // A change in b/ alone now reloads (no signal).
  dir_.Write("b/mesh.yaml", std::string(kMesh) + "# touched\n");
  ASSERT_TRUE(WaitForWorkersVersion(admin, 3)) << gw.Log();
  EXPECT_TRUE(gw.WaitForLog("config reloaded (change of mesh.yaml): version 3")) << gw.Log();
}

// The value of an unlabelled (or the first labelled) sample of `name`, -1
// when absent.
double Sample(const std::string& metrics, const std::string& name) {
  std::smatch m;
  const std::regex sample("(^|\\n)" + name + "(\\{[^}]*\\})? ([^\\n]+)");
  return std::regex_search(metrics, m, sample) ? std::stod(m[3].str()) : -1;
}

// DNS and health-check counters used to appear only in the exit summary;
// they are exported live, from the same lists.
TEST(LiveStatsTest, DnsAndHealthCheckCountersAreScrapedWhileRunning) {
  TempDir dir;
  dir.Write("mesh.yaml", std::string(kMesh) +
                             "---\n"
                             "apiVersion: networking.istio.io/v1beta1\n"
                             "kind: ServiceEntry\n"
                             "metadata: {name: ext, namespace: bar}\n"
                             "spec:\n"
                             "  hosts: [ext.bar.svc.cluster.local]\n"
                             "  location: MESH_INTERNAL\n"
                             "  ports: [{number: 8000, name: tcp, protocol: TCP}]\n"
                             "  resolution: DNS\n"
                             "  endpoints: [{address: ext.example.test}]\n");
  // Nothing listens on the DNS server's port: every query fails.
  const std::string cfg = dir.Write("meshgate.yaml",
                                    "mesh: [mesh.yaml]\n"
                                    "dns: {servers: [\"127.0.0.1:9\"]}\n"
                                    "healthChecks:\n"
                                    "- {host: httpbin.bar.svc.cluster.local, interval: 50ms, timeout: 50ms}\n");
  MeshgateProcess gw({"--config", cfg});
  ASSERT_TRUE(gw.running()) << gw.Log();
  std::string metrics;
  EXPECT_TRUE(WaitFor([&] {
    metrics = io::HttpCall(gw.metrics_address(), "GET", "/stats/prometheus", 3000).body;
    return Sample(metrics, "meshgate_health_check_probes_total") >= 2 &&
           Sample(metrics, "meshgate_health_check_failures_total") >= 2 &&
           Sample(metrics, "meshgate_dns_queries_total") >= 1;
  })) << metrics;
  EXPECT_NE(metrics.find("# HELP meshgate_dns_failures_total"), std::string::npos);
  EXPECT_NE(metrics.find("# TYPE meshgate_health_check_transitions_total counter"), std::string::npos);
  EXPECT_NE(metrics.find("# TYPE meshgate_listener_downstream_cx_active gauge"), std::string::npos);
  EXPECT_EQ(gw.Stop(), 0);
  EXPECT_GE(gw.Counter("health_check_probes"), 2u) << gw.Stats();
  EXPECT_GE(gw.Counter("dns_queries"), 1u) << gw.Stats();
}

}  // namespace
}  // namespace meshgate::testing
