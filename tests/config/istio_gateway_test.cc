// Istio Gateway: validation rules with exact messages, and which hosts its
// AUTO_PASSTHROUGH servers on the listener port export (the rest miss as
// not_exported).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "config/mesh/mesh_loader.h"
#include "tests/config/mesh_test_util.h"

namespace meshgate::config {
namespace {

using testing::At;
using testing::kNoGatewayWarning;
using testing::Lines;
using testing::Load;
using testing::LoadYaml;

// A Gateway "istio-system/gw" whose spec starts on line 5.
std::string Gw(const std::string& spec) {
  return "apiVersion: networking.istio.io/v1\nkind: Gateway\n"
         "metadata: {name: gw, namespace: istio-system}\nspec:\n" +
         spec;
}

// One AUTO_PASSTHROUGH server on 15443 exporting `hosts` (a YAML flow list).
std::string Exporting(const std::string& hosts) {
  return Gw("  selector: {istio: eastwestgateway}\n"
            "  servers:\n"
            "  - port: {number: 15443, name: tls, protocol: TLS}\n"
            "    tls: {mode: AUTO_PASSTHROUGH}\n"
            "    hosts: " + hosts + "\n");
}

// A STATIC ServiceEntry for `host` in namespace `ns`, with extra spec lines.
std::string Entry(const std::string& name, const std::string& ns, const std::string& host,
                  const std::string& extra = "") {
  return "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
         "metadata: {name: " + name + ", namespace: " + ns + "}\n"
         "spec:\n  hosts: [" + host + "]\n  ports: [{number: 443, name: tls, protocol: TLS}]\n"
         "  resolution: STATIC\n  endpoints: [{address: 10.0.0.1}]\n" + extra;
}

struct RuleCase {
  std::string name;
  std::string spec;
  Lines errors;
};

std::ostream& operator<<(std::ostream& out, const RuleCase& c) { return out << c.name; }

class GatewayRuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(GatewayRuleTest, ExactMessage) {
  const MeshLoadResult result = LoadYaml(Gw(GetParam().spec));
  Lines expected;
  for (const std::string& e : GetParam().errors) expected.push_back("t.yaml:" + e);
  EXPECT_EQ(result.errors, expected);
}

const std::string kGw = "Gateway istio-system/gw: ";
const std::string kServer = "  servers:\n  - port: {number: 15443, name: tls}\n";  // lines 5-6

INSTANTIATE_TEST_SUITE_P(
    Istio, GatewayRuleTest,
    ::testing::ValuesIn(std::vector<RuleCase>{
        {"ServersRequired", "  selector: {istio: x}\n", {"4:1: " + kGw + "spec.servers: required"}},
        {"ServersNotEmpty", "  servers: []\n",
         {"5:3: " + kGw + "spec.servers: must list at least one server"}},
        {"HostsRequired", kServer, {"6:5: " + kGw + "spec.servers[0].hosts: required"}},
        {"HostsNotEmpty", kServer + "    hosts: []\n",
         {"7:5: " + kGw + "spec.servers[0].hosts: must list at least one host"}},
        {"HostSyntax", kServer + "    hosts: [\"*.local\", \"a.*.local\"]\n",
         {"7:24: " + kGw +
          "spec.servers[0].hosts[1]: \"a.*.local\" is not a valid host: '*' is allowed only as "
          "the whole first label, as in \"*.example.com\""}},
        {"HostNamespacePart", kServer + "    hosts: [\"Bad_NS/*.local\"]\n",
         {"7:13: " + kGw +
          "spec.servers[0].hosts[0]: \"Bad_NS/*.local\": the part before '/' must be \"*\", \".\" "
          "or a namespace name"}},
        {"PortRequired", "  servers:\n  - hosts: [\"*\"]\n",
         {"6:5: " + kGw + "spec.servers[0].port: required"}},
        {"PortNumberRange", "  servers:\n  - {port: {number: 0}, hosts: [\"*\"]}\n",
         {"6:21: " + kGw + "spec.servers[0].port.number: must be 1..65535, got 0"}},
        {"TlsMode", kServer + "    hosts: [\"*\"]\n    tls: {mode: TERMINATE}\n",
         {"8:17: " + kGw +
          "spec.servers[0].tls.mode: unknown TLS mode \"TERMINATE\" (one of: PASSTHROUGH, SIMPLE, "
          "MUTUAL, AUTO_PASSTHROUGH, ISTIO_MUTUAL, OPTIONAL_MUTUAL)"}},
        {"PortNamesUnique",
         kServer + "    hosts: [\"*\"]\n  - port: {number: 15444, name: tls}\n    hosts: [\"*\"]\n",
         {"8:33: " + kGw + "spec.servers[1].port.name: port name \"tls\" is already used by spec.servers[0]"}},
    }),
    [](const ::testing::TestParamInfo<RuleCase>& info) { return info.param.name; });

// --- The sample, and what is exported ---------------------------------------------------

TEST(GatewayExportTest, ExposeServicesSampleExportsLocalHostsOnly) {
  const MeshLoadResult result = Load({"istio/expose-services.yaml", "istio/httpbin.yaml",
                                      "k8s/httpbin-endpointslice.yaml",
                                      "istio/egress-rule-google-apis.yaml"});
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings.back(),
            "1 host is not exported by any Gateway on port 15443 and will be refused "
            "(not_exported): www.googleapis.com");
  EXPECT_EQ(std::count(result.warnings.begin(), result.warnings.end(), kNoGatewayWarning), 0);
  const RouteTable& table = *result.table;
  // What a cluster-1 sidecar sends for httpbin: "*.local" matches its local name.
  const RouteResult httpbin = table.Route("outbound_.8000_._.httpbin.default.global");
  ASSERT_EQ(httpbin.miss, RouteMiss::kNone);
  EXPECT_EQ(httpbin.cluster->endpoints.size(), 2u);
  const RouteResult google = table.Route("outbound_.443_._.www.googleapis.com");
  EXPECT_EQ(google.miss, RouteMiss::kNotExported);
  EXPECT_EQ(google.host, "www.googleapis.com");
  EXPECT_EQ(table.Route("nope.default.global").miss, RouteMiss::kUnknownHost);
  EXPECT_NE(table.Describe().find("cluster 1: outbound|443||www.googleapis.com\n"
                                  "  source: " +
                                  testing::Data("istio/egress-rule-google-apis.yaml") +
                                  ":1 ServiceEntry default/googleapis\n"
                                  "  not exported by any Gateway: refused\n"),
            std::string::npos)
      << table.Describe();
}

TEST(GatewayExportTest, OtherPortsAndModesAreIgnoredWithAWarning) {
  const MeshLoadResult result = LoadYaml(
      Gw("  servers:\n"
         "  - {port: {number: 443, name: https}, hosts: [\"*\"], tls: {mode: SIMPLE}}\n"
         "  - {port: {number: 15443, name: tls}, hosts: [\"*\"], tls: {mode: PASSTHROUGH}}\n"
         "  - {port: {number: 15443, name: tcp}, hosts: [\"*\"]}\n") +
      Entry("a", "bar", "a.example.com") +
      "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
      "metadata: {name: k8s-api, namespace: bar}\n");
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings,
            (Lines{"t.yaml:19:1: ignoring Gateway bar/k8s-api (gateway.networking.k8s.io/v1: not "
                   "used by meshgate)",
                   "t.yaml:6:5: Gateway istio-system/gw: spec.servers[0]: port 443 is not "
                   "meshgate's listener port 15443: server ignored",
                   "t.yaml:7:5: Gateway istio-system/gw: spec.servers[1]: tls.mode PASSTHROUGH: "
                   "only AUTO_PASSTHROUGH servers export hosts through meshgate (it neither "
                   "terminates TLS nor reads VirtualServices); server ignored",
                   "t.yaml:8:5: Gateway istio-system/gw: spec.servers[2]: tls.mode unset: only "
                   "AUTO_PASSTHROUGH servers export hosts through meshgate (it neither "
                   "terminates TLS nor reads VirtualServices); server ignored",
                   kNoGatewayWarning}));
  EXPECT_EQ(result.table->Route("a.example.com").miss, RouteMiss::kNone);
}

TEST(GatewayExportTest, ListenerPortDecidesWhichServersCount) {
  MeshLoadOptions options;
  options.listener_port = 16443;
  const MeshLoadResult result = Load(
      {"istio/expose-services.yaml", "istio/egress-rule-google-apis.yaml"}, {}, options);
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings,
            (Lines{At("istio/expose-services.yaml", 9, 7,
                      "Gateway default/cross-network-gateway: spec.servers[0]: port 15443 is not "
                      "meshgate's listener port 16443: server ignored"),
                   "no Gateway exports hosts on port 16443 (a server with tls.mode "
                   "AUTO_PASSTHROUGH): every host loaded is served"}));
  EXPECT_EQ(result.table->Route("www.googleapis.com").miss, RouteMiss::kNone);
}

TEST(GatewayExportTest, NamespaceQualifiedHosts) {
  const MeshLoadResult result =
      LoadYaml(Exporting("[\"foo/*\", \"./*.internal\"]") +
               Entry("a", "foo", "a.example.com") + Entry("b", "bar", "b.example.com") +
               Entry("c", "istio-system", "c.mesh.internal") +
               Entry("d", "bar", "d.mesh.internal"));
  ASSERT_EQ(result.errors, Lines{});
  const RouteTable& table = *result.table;
  EXPECT_EQ(table.Route("a.example.com").miss, RouteMiss::kNone);       // foo/*
  EXPECT_EQ(table.Route("b.example.com").miss, RouteMiss::kNotExported);
  EXPECT_EQ(table.Route("c.mesh.internal").miss, RouteMiss::kNone);     // the Gateway's namespace
  EXPECT_EQ(table.Route("d.mesh.internal").miss, RouteMiss::kNotExported);
  EXPECT_EQ(result.warnings.back(),
            "2 hosts are not exported by any Gateway on port 15443 and will be refused "
            "(not_exported): b.example.com, d.mesh.internal");
}

TEST(GatewayExportTest, ExportToDecidesWhetherTheGatewayNamespaceSeesAService) {
  const MeshLoadResult result = LoadYaml(
      Exporting("[\"*\"]") + Entry("a", "bar", "a.example.com", "  exportTo: [\".\"]\n") +
      Entry("b", "bar", "b.example.com", "  exportTo: [istio-system]\n") +
      Entry("c", "bar", "c.example.com", "  exportTo: [\"~\"]\n") +
      Entry("d", "istio-system", "d.example.com", "  exportTo: [\".\"]\n") +
      Entry("e", "bar", "e.example.com", "  exportTo: [\"*\"]\n") +
      // Merged resources: one without exportTo makes the host visible everywhere.
      Entry("f1", "bar", "f.example.com", "  exportTo: [\".\"]\n") +
      Entry("f2", "bar", "f.example.com"));
  ASSERT_EQ(result.errors, Lines{});
  const RouteTable& table = *result.table;
  EXPECT_EQ(table.Route("a.example.com").miss, RouteMiss::kNotExported);
  EXPECT_EQ(table.Route("b.example.com").miss, RouteMiss::kNone);
  EXPECT_EQ(table.Route("c.example.com").miss, RouteMiss::kNotExported);
  EXPECT_EQ(table.Route("d.example.com").miss, RouteMiss::kNone);
  EXPECT_EQ(table.Route("e.example.com").miss, RouteMiss::kNone);
  EXPECT_EQ(table.Route("f.example.com").miss, RouteMiss::kNone);
}

TEST(GatewayExportTest, GlobalNamesOfTheOldMulticlusterSetupExportLocalServices) {
  // Istio 1.6's multicluster gateway exported "*.global", the names clients use.
  const MeshLoadResult exported = LoadYaml(
      Exporting("[\"*.global\"]") + Entry("a", "bar", "httpbin.bar.svc.cluster.local") +
      Entry("b", "bar", "other.example.com"));
  ASSERT_EQ(exported.errors, Lines{});
  EXPECT_EQ(exported.table->Route("outbound_.443_._.httpbin.bar.global").miss, RouteMiss::kNone);
  EXPECT_EQ(exported.table->Route("other.example.com").miss, RouteMiss::kNotExported);
}

}  // namespace
}  // namespace meshgate::config
