// meshgate's own config file: defaults, every key, every validation error, and the
// listen address syntax.
#include "config/settings/gateway_config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/mesh/mesh_loader.h"

namespace meshgate::config {
namespace {

using namespace std::chrono_literals;

std::string Data(const std::string& relative) {
  return std::string(MESHGATE_TESTDATA) + "/" + relative;
}

// Parses `yaml` expecting failure; returns the message ("" when it parsed).
std::string ErrorOf(const std::string& yaml) {
  auto config = ParseGatewayConfig(yaml, "meshgate.yaml", "/etc/meshgate");
  return config.ok() ? "" : std::string(config.status().message());
}

TEST(GatewayConfigTest, DefaultsMatchTheDocumentedOnes) {
  const GatewayConfig config;
  EXPECT_EQ(config.listen, "0.0.0.0:15443");
  EXPECT_EQ(config.threads, 0);
  EXPECT_EQ(config.hello_timeout, 5s);
  EXPECT_EQ(config.connect_timeout, 1s);
  EXPECT_EQ(config.idle_timeout, 1h);
  EXPECT_EQ(config.max_hello_bytes, 16384u);
  EXPECT_EQ(config.max_connect_attempts, 3);
  EXPECT_EQ(config.relay, RelayMode::kSplice);
  ASSERT_EQ(config.sni_rewrites.size(), 1u);
  EXPECT_EQ(config.sni_rewrites[0].from, ".global");
  EXPECT_EQ(config.sni_rewrites[0].to, ".svc.cluster.local");
  EXPECT_TRUE(config.mesh_paths.empty());
  EXPECT_EQ(config.log_level, "info");
  EXPECT_EQ(config.admin, "127.0.0.1:15000");
  EXPECT_EQ(config.metrics, "0.0.0.0:15090");
  EXPECT_EQ(config.readiness, "0.0.0.0:15021");
  EXPECT_EQ(config.drain.delay, 5s);
  EXPECT_EQ(config.drain.time, 30s);
  EXPECT_EQ(config.access_log.path, "stdout");
  EXPECT_EQ(config.access_log.sample_rate, 1.0);
  EXPECT_EQ(config.cluster_id, "Kubernetes");
}

TEST(GatewayConfigTest, EmptyFileGivesDefaults) {
  for (const char* yaml : {"", "# nothing\n", "~\n"}) {
    auto config = ParseGatewayConfig(yaml, "meshgate.yaml", "");
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->listen, "0.0.0.0:15443");
    EXPECT_EQ(config->sni_rewrites.size(), 1u);
  }
}

TEST(GatewayConfigTest, LoadsEveryKeyFromFile) {
  auto config = LoadGatewayConfig(Data("mesh/gateway/meshgate.yaml"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "[::]:15443");
  EXPECT_EQ(config->threads, 2);
  EXPECT_EQ(config->hello_timeout, 5s);
  EXPECT_EQ(config->connect_timeout, 1500ms);
  EXPECT_EQ(config->idle_timeout, 90min);
  EXPECT_EQ(config->max_hello_bytes, 16384u);
  EXPECT_EQ(config->max_connect_attempts, 3);
  EXPECT_EQ(config->relay, RelayMode::kCopy);
  ASSERT_EQ(config->sni_rewrites.size(), 2u);
  EXPECT_EQ(config->sni_rewrites[1].from, ".mesh.example.com");  // lowercased
  EXPECT_EQ(config->sni_rewrites[1].to, ".svc.cluster.local");
  // Relative paths resolve against the config file's directory; absolute ones stay.
  EXPECT_EQ(config->mesh_paths,
            (std::vector<std::string>{Data("mesh/gateway/../httpbin-bar.yaml"),
                                      Data("mesh/gateway/../dir/"), "/etc/meshgate/extra.yaml"}));
  EXPECT_EQ(config->log_level, "debug");
  EXPECT_EQ(config->gateway_namespace, "eastwest");
  EXPECT_EQ(GatewayNamespace(*config), "eastwest");
  EXPECT_EQ(config->root_namespace, "istio-config");
  EXPECT_EQ(config->cluster_domain, "cluster2.example");
  EXPECT_EQ(config->dns.servers, (std::vector<std::string>{"127.0.0.1:5353", "::1", "[::1]:53"}));
  EXPECT_EQ(config->dns.min_ttl, 5s);
  EXPECT_EQ(config->dns.max_ttl, 10min);
  EXPECT_EQ(config->locality, "us-east1/us-east1-b");
  ASSERT_EQ(config->health_checks.size(), 2u);
  const GatewayConfig::HealthCheck& hc = config->health_checks[0];
  EXPECT_EQ(hc.host, "httpbin.bar.svc.cluster.local");
  EXPECT_EQ(hc.port, 8000);
  EXPECT_EQ(hc.interval, 2s);
  EXPECT_EQ(hc.timeout, 500ms);
  EXPECT_EQ(hc.healthy_threshold, 2u);
  EXPECT_EQ(hc.unhealthy_threshold, 4u);
  EXPECT_EQ(hc.jitter, 100ms);
  // Defaults: every 5 s, 1 s timeout, 3 failures out, 1 success back.
  const GatewayConfig::HealthCheck& defaults = config->health_checks[1];
  EXPECT_EQ(defaults.host, "*.bookinfo.svc.cluster.local");
  EXPECT_EQ(defaults.port, 0);
  EXPECT_EQ(defaults.interval, 5s);
  EXPECT_EQ(defaults.timeout, 1s);
  EXPECT_EQ(defaults.unhealthy_threshold, 3u);
  EXPECT_EQ(defaults.healthy_threshold, 1u);
  EXPECT_EQ(config->admin, "127.0.0.1:16000");
  EXPECT_EQ(config->metrics, "");  // off
  EXPECT_EQ(config->readiness, "[::]:15021");
  EXPECT_EQ(config->drain.delay, 2s);
  EXPECT_EQ(config->drain.time, 45s);
  EXPECT_EQ(config->access_log.path, Data("mesh/gateway/access.log"));  // relative to the file
  EXPECT_EQ(config->access_log.sample_rate, 0.25);
  EXPECT_EQ(config->cluster_id, "cluster2");
}

TEST(GatewayConfigTest, GatewayNamespaceFallsBackToPodNamespaceThenIstioSystem) {
  GatewayConfig config;
  ::unsetenv("POD_NAMESPACE");
  EXPECT_EQ(GatewayNamespace(config), "istio-system");
  ::setenv("POD_NAMESPACE", "eastwest", 1);
  EXPECT_EQ(GatewayNamespace(config), "eastwest");
  ::setenv("POD_NAMESPACE", "Not A Namespace", 1);
  EXPECT_EQ(GatewayNamespace(config), "istio-system");
  config.gateway_namespace = "explicit";
  EXPECT_EQ(GatewayNamespace(config), "explicit");
  ::unsetenv("POD_NAMESPACE");
}

TEST(GatewayConfigTest, ConfigFileToRoutedConnection) {
  auto config = LoadGatewayConfig(Data("mesh/gateway/meshgate.yaml"));
  ASSERT_TRUE(config.ok()) << config.status();
  std::vector<std::string> paths(config->mesh_paths.begin(), config->mesh_paths.end() - 1);
  paths.push_back(Data("mesh/gateway/eastwest-gateway.yaml"));  // what the gateway serves
  MeshLoadOptions options;
  options.gateway_labels = {{"istio", "eastwestgateway"}};
  const MeshLoadResult mesh = LoadMesh(paths, config->sni_rewrites, options);
  ASSERT_TRUE(mesh.errors.empty()) << mesh.errors[0];
  ASSERT_NE(mesh.table, nullptr);
  RouteResult route = mesh.table->Route("outbound_.8000_._.httpbin.bar.global");
  ASSERT_EQ(route.miss, RouteMiss::kNone);
  EXPECT_EQ(route.cluster->endpoints.size(), 2u);
  route = mesh.table->Route("outbound_.9080_._.details.bookinfo.mesh.example.com");
  ASSERT_EQ(route.miss, RouteMiss::kNone);
  EXPECT_EQ(route.cluster->host, "details.bookinfo.svc.cluster.local");
}

TEST(GatewayConfigTest, EveryErrorInAFileAtOnce) {
  const std::string path = Data("mesh/gateway/broken.yaml");
  auto config = LoadGatewayConfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string p = path + ":";
  EXPECT_EQ(
      std::string(config.status().message()),
      p + "2:9: listen: \"localhost:15443\": \"localhost\" is not an IP address\n" + p +
          "3:10: threads: must be 0..256, got -1\n" + p +
          "5:10: timeouts.hello: invalid duration \"5\": missing unit (ns, us, ms, s, m or h)\n" + p +
          "6:12: timeouts.connect: must be greater than 0\n" + p +
          "7:3: timeouts.idel: unknown field (expected one of: hello, connect, idle)\n" + p +
          "8:16: maxHelloBytes: must be 512..1048576, got 100\n" + p +
          "9:21: maxConnectAttempts: must be 1..10, got 11\n" + p +
          "10:8: relay: unknown relay mode \"zero-copy\" (splice or copy)\n" + p +
          "12:12: sniRewrites[0].from: \"global\" is not a domain suffix like \".global\"\n" + p +
          "13:7: mesh: must be a list, got a string\n" + p +
          "14:11: logLevel: unknown log level \"verbose\" (one of: trace, debug, info, warn, "
          "error, off)\n" +
          p +
          "15:1: listenAddress: unknown field (expected one of: listen, threads, timeouts, "
          "maxHelloBytes, maxConnectAttempts, relay, maxPipes, sniRewrites, mesh, logLevel, namespace, "
          "rootNamespace, clusterDomain, dns, locality, healthChecks, admin, metrics, readiness, "
          "drain, accessLog, clusterId, control, labels, podInfoFile, requireIstioAlpn, plainHostSni, "
      "network, requestedNetworkView, trustDomain, kubernetes, limits, proxyProtocol, upstreamProxyProtocol, upgrade)\n" +
          p + "16:12: namespace: \"Istio_System\" is not a namespace name (lowercase letters, "
          "digits, '-', at most 63)\n" +
          p + "17:16: clusterDomain: \"bad..domain\" is not a domain: empty label\n" +
          p + "18:6: dns: minTtl must not exceed maxTtl\n" +
          p + "18:17: dns.servers[0]: \"localhost\" is not an IP address (ip, ip:port or "
          "[ipv6]:port)\n" +
          p + "18:28: dns.servers[1]: \"10.0.0.1:0\": port 0\n" +
          p + "19:11: locality: \"us/*\" names one locality: no '*'\n" +
          p + "20:16: healthChecks[0]: timeout must not exceed interval\n" +
          p + "20:23: healthChecks[0].host: \"a.*.b\": '*' is allowed only as the whole first "
              "label, as in \"*.example.com\"\n" +
          p + "20:79: healthChecks[0].unhealthyThreshold: must be 1..100, got 0\n" +
          p + "20:82: healthChecks[0].typo: unknown field (expected one of: host, port, interval, "
              "timeout, healthyThreshold, unhealthyThreshold, jitter)\n" +
          p + "21:8: admin: \"localhost:15000\": \"localhost\" is not an IP address (or \"off\")\n" +
          p + "22:16: drain.delay: invalid duration \"soon\": expected a number\n" +
          p + "23:25: accessLog.sampleRate: must be a number in 0..1, got \"2\"");
}

// proxyProtocol and upstreamProxyProtocol (README "PROXY protocol").
TEST(GatewayConfigTest, ProxyProtocolKeys) {
  auto config = ParseGatewayConfig(
      "proxyProtocol: {accept: [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]}\n"
      "upstreamProxyProtocol: [{host: \"*.Bar.svc.cluster.local\", version: 2}, {host: a.b.c}]\n",
      "meshgate.yaml", "");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->proxy_protocol.accept.size(), 3u);
  std::array<uint8_t, 16> inside{};
  ASSERT_TRUE(ParseIpBytes("10.1.2.3", inside));
  EXPECT_TRUE(config->proxy_protocol.accept[0].Contains(inside));
  EXPECT_FALSE(config->proxy_protocol.accept[1].Contains(inside));
  ASSERT_EQ(config->upstream_proxy_protocol.size(), 2u);
  EXPECT_EQ(config->upstream_proxy_protocol[0].host, "*.bar.svc.cluster.local");
  EXPECT_EQ(config->upstream_proxy_protocol[1].version, 2);
  EXPECT_TRUE(GatewayConfig().proxy_protocol.accept.empty()) << "off by default";
}

TEST(GatewayConfigTest, ProxyProtocolErrors) {
  EXPECT_EQ(ErrorOf("proxyProtocol: {accept: [\"10.0.0.0/33\", lb.local]}\n"),
            "meshgate.yaml:1:26: proxyProtocol.accept[0]: \"10.0.0.0/33\" is not an IP address or CIDR "
            "(\"10.0.0.0/8\", \"2001:db8::/32\")\n"
            "meshgate.yaml:1:41: proxyProtocol.accept[1]: \"lb.local\" is not an IP address or CIDR "
            "(\"10.0.0.0/8\", \"2001:db8::/32\")");
  EXPECT_NE(ErrorOf("proxyProtocol: {}\n").find("proxyProtocol.accept"), std::string::npos);
  EXPECT_NE(ErrorOf("proxyProtocol: {accept: [], from: x}\n").find("proxyProtocol.from: unknown field"),
            std::string::npos);
  EXPECT_NE(ErrorOf("upstreamProxyProtocol: [{host: a.b, version: 1}]\n").find("upstreamProxyProtocol[0].version"),
            std::string::npos);
  EXPECT_NE(ErrorOf("upstreamProxyProtocol: [{version: 2}]\n").find("upstreamProxyProtocol[0].host"),
            std::string::npos);
}

TEST(GatewayConfigTest, MissingFile) {
  auto config = LoadGatewayConfig(Data("mesh/gateway/nope.yaml"));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(std::string(config.status().message()),
            Data("mesh/gateway/nope.yaml") + ": no such file");
  EXPECT_FALSE(LoadGatewayConfig(Data("mesh/gateway")).ok());  // a directory
}

TEST(GatewayConfigTest, SyntaxErrorHasLine) {
  EXPECT_EQ(ErrorOf("threads: 2\nmesh: [a, b\nrelay: copy\n"),
            "meshgate.yaml:3:6: YAML syntax error: did not find expected ',' or ']' (while parsing a flow "
            "sequence started at 2:7)");
  // yaml-cpp 0.7 looped forever here (jbeder/yaml-cpp#1040); libyaml reports it.
  EXPECT_EQ(ErrorOf("threads: 1\n---\n,\n"), "meshgate.yaml:3:1: YAML syntax error: did not find expected node content (while "
            "parsing a block node)");
}

TEST(GatewayConfigTest, StructuralErrors) {
  EXPECT_EQ(ErrorOf("- listen\n"), "meshgate.yaml:1:1: must be a map, got a list");
  EXPECT_EQ(ErrorOf("threads: 1\n---\nthreads: 2\n"),
            "meshgate.yaml:3:1: expected one YAML document, found 2");
  EXPECT_EQ(ErrorOf("threads: 1\nthreads: 2\n"), "meshgate.yaml:2:1: threads: duplicate key");
  EXPECT_EQ(ErrorOf("timeouts: 5s\n"), "meshgate.yaml:1:11: timeouts: must be a map, got a string");
  EXPECT_EQ(ErrorOf("timeouts: {hello: [5s]}\n"),
            "meshgate.yaml:1:19: timeouts.hello: must be a string, got a list");
  EXPECT_EQ(ErrorOf("threads: two\n"), "meshgate.yaml:1:10: threads: must be an integer, got \"two\"");
  EXPECT_EQ(ErrorOf("threads: \"2\"\n"),
            "meshgate.yaml:1:10: threads: must be an integer, got the string \"2\"");
  EXPECT_EQ(ErrorOf("maxHelloBytes: 1048577\n"),
            "meshgate.yaml:1:16: maxHelloBytes: must be 512..1048576, got 1048577");
  EXPECT_EQ(ErrorOf("maxConnectAttempts: 0\n"),
            "meshgate.yaml:1:21: maxConnectAttempts: must be 1..10, got 0");
  EXPECT_EQ(ErrorOf("threads: 257\n"), "meshgate.yaml:1:10: threads: must be 0..256, got 257");
  EXPECT_EQ(ErrorOf("logLevel: INFO\n"),
            "meshgate.yaml:1:11: logLevel: unknown log level \"INFO\" (one of: trace, debug, info, "
            "warn, error, off)");
  EXPECT_EQ(ErrorOf("timeouts: {idle: -1s}\n"),
            "meshgate.yaml:1:18: timeouts.idle: invalid duration \"-1s\": negative durations are not "
            "allowed");
}

TEST(GatewayConfigTest, RangeBoundsAreAccepted) {
  auto config = ParseGatewayConfig(
      "threads: 256\nmaxHelloBytes: 512\nmaxConnectAttempts: 10\nrelay: splice\nlogLevel: off\n",
      "meshgate.yaml", "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->max_hello_bytes, 512u);
  EXPECT_EQ(config->max_connect_attempts, 10);
  EXPECT_EQ(config->relay, RelayMode::kSplice);
  EXPECT_EQ(config->log_level, "off");
  config = ParseGatewayConfig("maxHelloBytes: 1048576\nmaxConnectAttempts: 1\n", "m.yaml", "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->max_hello_bytes, 1048576u);
}

TEST(GatewayConfigTest, SniRewrites) {
  // An explicit list replaces the default, and an empty one disables rewriting.
  auto config = ParseGatewayConfig("sniRewrites: []\n", "m.yaml", "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->sni_rewrites.empty());
  config = ParseGatewayConfig("sniRewrites: [{from: .lan, to: \"\"}]\n", "m.yaml", "");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->sni_rewrites.size(), 1u);
  EXPECT_EQ(config->sni_rewrites[0].to, "");

  EXPECT_EQ(ErrorOf("sniRewrites: [{from: .global}]\n"),
            "meshgate.yaml:1:15: sniRewrites[0].to: required");
  EXPECT_EQ(ErrorOf("sniRewrites: [{from: .global, to: svc.cluster.local}]\n"),
            "meshgate.yaml:1:35: sniRewrites[0].to: \"svc.cluster.local\" is not a domain suffix like "
            "\".svc.cluster.local\" (or \"\" to strip the suffix)");
  EXPECT_EQ(ErrorOf("sniRewrites: [{from: \".bad_label\", to: .x}]\n"),
            "meshgate.yaml:1:22: sniRewrites[0].from: \".bad_label\" is not a domain suffix like "
            "\".global\"");
  EXPECT_EQ(ErrorOf("sniRewrites: [{from: ., to: .x}]\n"),
            "meshgate.yaml:1:22: sniRewrites[0].from: \".\" is not a domain suffix like \".global\"");
  EXPECT_EQ(ErrorOf("sniRewrites:\n- {from: .global, to: .a, extra: 1}\n"),
            "meshgate.yaml:2:27: sniRewrites[0].extra: unknown field (expected one of: from, to)");
  EXPECT_EQ(ErrorOf("sniRewrites: {from: .global, to: .a}\n"),
            "meshgate.yaml:1:14: sniRewrites: must be a list, got a map");
  // First match wins, so a rule covered by an earlier one is dead.
  EXPECT_EQ(ErrorOf("sniRewrites:\n- {from: .global, to: .a}\n- {from: .bar.global, to: .b}\n"
                    "- {from: .GLOBAL, to: .c}\n"),
            "meshgate.yaml:3:3: sniRewrites[1]: never applies: sniRewrites[0] (from .global) matches "
            "first\n"
            "meshgate.yaml:4:3: sniRewrites[2]: never applies: sniRewrites[0] (from .global) matches "
            "first");
  // The narrower rule first is fine.
  config = ParseGatewayConfig(
      "sniRewrites:\n- {from: .bar.global, to: .b}\n- {from: .global, to: .a}\n", "m.yaml", "");
  EXPECT_TRUE(config.ok()) << config.status();
}

TEST(GatewayConfigTest, MeshPaths) {
  auto config = ParseGatewayConfig("mesh: [mesh/, extra.yaml, /abs/x.yaml]\n", "m.yaml", "/etc/mg");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->mesh_paths,
            (std::vector<std::string>{"/etc/mg/mesh/", "/etc/mg/extra.yaml", "/abs/x.yaml"}));
  // No base directory (a file in the working directory): paths stay relative.
  config = ParseGatewayConfig("mesh: [mesh/]\n", "m.yaml", "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->mesh_paths, std::vector<std::string>{"mesh/"});
  EXPECT_EQ(ErrorOf("mesh: [\"\", {a: b}]\n"),
            "meshgate.yaml:1:8: mesh[0]: empty path\n"
            "meshgate.yaml:1:12: mesh[1]: must be a string, got a map");
}

TEST(GatewayConfigTest, MaxPipes) {
  EXPECT_EQ(ParseGatewayConfig("", "m.yaml", "")->max_pipes, -1);  // the kernel's limits only
  EXPECT_EQ(ParseGatewayConfig("maxPipes: 0\n", "m.yaml", "")->max_pipes, 0);
  EXPECT_EQ(ParseGatewayConfig("maxPipes: 4096\n", "m.yaml", "")->max_pipes, 4096);
  EXPECT_EQ(ErrorOf("maxPipes: -1\n"), "meshgate.yaml:1:11: maxPipes: must be 0..1000000, got -1");
}

TEST(GatewayConfigTest, ControlAsUrlOrMap) {
  auto plain = ParseGatewayConfig("control: http://meshgatectl.istio-system.svc:15180\n", "m.yaml", "/etc/meshgate");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->control.url, "http://meshgatectl.istio-system.svc:15180");
  EXPECT_TRUE(plain->control.required);
  auto full = ParseGatewayConfig(
      "control:\n  url: https://10.0.0.7:15180/\n  cluster: cluster2\n  caFile: ca/root-cert.pem\n"
      "  required: false\n  initialBackoff: 100ms\n  maxBackoff: 5s\n  watchTimeout: 45s\n",
      "m.yaml", "/etc/meshgate");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->control.cluster, "cluster2");
  EXPECT_EQ(full->control.ca_file, "/etc/meshgate/ca/root-cert.pem");
  EXPECT_FALSE(full->control.required);
  EXPECT_EQ(full->control.initial_backoff, 100ms);
  EXPECT_EQ(full->control.max_backoff, 5s);
  EXPECT_EQ(full->control.watch_timeout, 45s);
}

TEST(GatewayConfigTest, ControlErrors) {
  EXPECT_EQ(ErrorOf("control: ftp://x:1\n"),
            "meshgate.yaml:1:10: control: \"ftp://x:1\": must start with http:// or https://");
  EXPECT_EQ(ErrorOf("control: {cluster: c}\n"), "meshgate.yaml:1:10: control.url: is required (http://HOST:PORT or https://HOST:PORT)");
  EXPECT_EQ(ErrorOf("control: {url: 'http://h:1', maxBackoff: 1s, initialBackoff: 2s}\n"),
            "meshgate.yaml:1:10: control.maxBackoff: must not be shorter than control.initialBackoff");
  EXPECT_NE(ErrorOf("control: {url: 'http://h:1', retry: 1s}\n").find("control.retry"), std::string::npos);
  EXPECT_NE(ErrorOf("control: {url: 'http://h:1', required: maybe}\n").find("control.required"), std::string::npos);
}

TEST(GatewayConfigTest, ControlUrlSyntax) {
  auto ok = ParseControlUrl("https://[::1]:8443");
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->tls);
  EXPECT_EQ(ok->host, "::1");
  EXPECT_EQ(ok->port, 8443);
  EXPECT_EQ(ParseControlUrl("http://control.example")->port, 80);
  EXPECT_EQ(ParseControlUrl("https://control.example")->port, 443);
  for (const char* bad : {"control.example:80", "http://", "http://h:0", "http://h:99999", "http://h/v1/routes",
                          "http://user@h", "http://h?x=1", "http://bad_name!:80", "https://[::1"}) {
    EXPECT_FALSE(ParseControlUrl(bad).ok()) << bad;
  }
}

TEST(GatewayConfigTest, NullValuesKeepDefaults) {
  auto config = ParseGatewayConfig("listen:\nthreads: ~\nsniRewrites:\n", "m.yaml", "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "0.0.0.0:15443");
  EXPECT_EQ(config->sni_rewrites.size(), 1u);
}

// --- Listen address -------------------------------------------------------------------

TEST(ListenAddressTest, Valid) {
  struct Case {
    const char* text;
    const char* ip;
    uint16_t port;
  };
  for (const Case& c :
       {Case{"0.0.0.0:15443", "0.0.0.0", 15443}, Case{"127.0.0.1:1", "127.0.0.1", 1},
        Case{"[::]:15443", "::", 15443}, Case{"[::1]:65535", "::1", 65535},
        Case{"[FD00:0::1]:8443", "fd00::1", 8443}, Case{"127.0.0.1:0", "127.0.0.1", 0}}) {
    auto address = base::ParseListenAddress(c.text);
    ASSERT_TRUE(address.ok()) << c.text << ": " << address.status();
    EXPECT_EQ(address->ip, c.ip);
    EXPECT_EQ(address->port, c.port);
  }
}

TEST(ListenAddressTest, Invalid) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c : {
           Case{"", "\"\": missing :port (e.g. 0.0.0.0:15443)"},
           Case{"0.0.0.0", "\"0.0.0.0\": missing :port (e.g. 0.0.0.0:15443)"},
           Case{"0.0.0.0:", "\"0.0.0.0:\": port must be 0..65535"},
           Case{"0.0.0.0:65536", "\"0.0.0.0:65536\": port must be 0..65535"},
           Case{"0.0.0.0:http", "\"0.0.0.0:http\": port must be 0..65535"},
           Case{":15443", "\":15443\": \"\" is not an IP address"},
           Case{"localhost:15443", "\"localhost:15443\": \"localhost\" is not an IP address"},
           Case{"::1:15443", "\"::1:15443\": IPv6 addresses need brackets (e.g. [::]:15443)"},
           Case{"[::1:15443", "\"[::1:15443\": missing ']' after the IPv6 address"},
           Case{"[::1]15443", "\"[::1]15443\": missing :port"},
           Case{"[::1]", "\"[::1]\": missing :port"},
           Case{"[127.0.0.1]:80", "\"[127.0.0.1]:80\": brackets are for IPv6 addresses only"},
           Case{"[fe80::1%eth0]:80",
                "\"[fe80::1%eth0]:80\": \"fe80::1%eth0\" is not an IP address"},
       }) {
    auto address = base::ParseListenAddress(c.text);
    ASSERT_FALSE(address.ok()) << c.text;
    EXPECT_EQ(std::string(address.status().message()), c.message) << c.text;
  }
}

}  // namespace
}  // namespace meshgate::config
