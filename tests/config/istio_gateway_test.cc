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
// Istio (master, Aug 2026): pilot/pkg/networking/core/gateway.go
// builtAutoPassthroughFilterChains, pilot/pkg/model/gateway.go GetSNIHostsForServer,
// pilot/pkg/model/push_context.go mergeGateways.

constexpr RouteOptions kPlainHost{.allow_plain_host = true};

TEST(GatewayExportTest, ExposeServicesSampleExportsLocalHostsOnly) {
  const MeshLoadResult result = Load({"istio/expose-services.yaml", "istio/httpbin.yaml",
                                      "k8s/httpbin-endpointslice.yaml",
                                      "istio/egress-rule-google-apis.yaml"});
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings.back(),
            "1 host is not exported by any Gateway on port 15443 and will be refused "
            "(not_exported): www.googleapis.com (MESH_EXTERNAL: Istio's gateway never exports a "
            "mesh-external ServiceEntry)");
  const RouteTable& table = *result.table;
  EXPECT_EQ(table.view().closed_reason, "");
  EXPECT_EQ(table.view().gateways, Lines{"default/cross-network-gateway"});
  // What a cluster-1 sidecar sends for httpbin: "*.local" matches its local name.
  const RouteResult httpbin = table.Route("outbound_.8000_._.httpbin.default.global");
  ASSERT_EQ(httpbin.miss, RouteMiss::kNone);
  EXPECT_EQ(httpbin.cluster->endpoints.size(), 2u);
  const RouteResult google = table.Route("outbound_.443_._.www.googleapis.com");
  EXPECT_EQ(google.miss, RouteMiss::kNotExported);
  EXPECT_EQ(google.host, "www.googleapis.com");
  EXPECT_EQ(table.Route("outbound_.80_._.nope.default.global").miss, RouteMiss::kUnknownHost);
  EXPECT_NE(table.Describe().find("cluster 1: outbound|443||www.googleapis.com\n"
                                  "  source: " +
                                  testing::Data("istio/egress-rule-google-apis.yaml") +
                                  ":1 ServiceEntry default/googleapis\n"
                                  "  not exported: MESH_EXTERNAL: Istio's gateway never exports "
                                  "a mesh-external ServiceEntry: refused\n"),
            std::string::npos)
      << table.Describe();
}

TEST(GatewayExportTest, OtherPortsAndModesCloseTheGateway) {
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
  const RouteTable& table = *result.table;
  EXPECT_EQ(table.view().closed_reason, kNoGatewayWarning);
  EXPECT_EQ(table.view().gateways, Lines{"istio-system/gw"});  // selector-less: selects us
  EXPECT_EQ(table.Route("outbound_.443_._.a.example.com").miss, RouteMiss::kNotExported);
  ASSERT_EQ(table.clusters().size(), 1u);
  EXPECT_FALSE(table.clusters()[0].exported);
  EXPECT_EQ(table.clusters()[0].export_detail,
            "no Gateway selecting this gateway has an AUTO_PASSTHROUGH server on port 15443");
}

TEST(GatewayExportTest, NoGatewayServesNothing) {
  const MeshLoadResult result = LoadYaml(Entry("a", "bar", "a.example.com").substr(4));
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings, Lines{kNoGatewayWarning});
  EXPECT_EQ(result.table->view().closed_reason, kNoGatewayWarning);
  EXPECT_EQ(result.table->view().gateways, Lines{});
  EXPECT_EQ(result.table->Route("outbound_.443_._.a.example.com").miss, RouteMiss::kNotExported);
  EXPECT_EQ(result.table->Route("a.example.com", kPlainHost).miss, RouteMiss::kNotExported);
  EXPECT_NE(result.table->Describe().find("closed: " + kNoGatewayWarning + "\n"),
            std::string::npos);
}

TEST(GatewayExportTest, ListenerPortDecidesWhichServersCount) {
  MeshLoadOptions options = testing::EastWest();
  options.listener_port = 16443;
  const MeshLoadResult result = Load(
      {"istio/expose-services.yaml", "istio/egress-rule-google-apis.yaml"}, {}, options);
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings,
            (Lines{At("istio/expose-services.yaml", 9, 7,
                      "Gateway default/cross-network-gateway: spec.servers[0]: port 15443 is not "
                      "meshgate's listener port 16443: server ignored"),
                   "no Gateway selecting this gateway (labels: istio=eastwestgateway) has a "
                   "tls.mode AUTO_PASSTHROUGH server on port 16443: nothing is served"}));
  EXPECT_EQ(result.table->Route("outbound_.443_._.www.googleapis.com").miss,
            RouteMiss::kNotExported);
}

TEST(GatewayExportTest, SelectorMustBeASubsetOfTheGatewayLabels) {
  const std::string yaml = Exporting("[\"*\"]") + Entry("a", "bar", "a.example.com");
  // Our labels are a superset of the selector: it applies.
  MeshLoadOptions more = testing::EastWest();
  more.gateway_labels["app"] = "istio-eastwestgateway";
  const MeshLoadResult selected = LoadYaml(yaml, more);
  ASSERT_EQ(selected.errors, Lines{});
  EXPECT_EQ(selected.table->view().gateways, Lines{"istio-system/gw"});
  EXPECT_EQ(selected.table->Route("outbound_.443_._.a.example.com").miss, RouteMiss::kNone);
  // Different labels: ignored with a warning naming the Gateway, its selector and ours.
  MeshLoadOptions other;
  other.gateway_labels = {{"istio", "ingressgateway"}};
  const MeshLoadResult ignored = LoadYaml(yaml, other);
  ASSERT_EQ(ignored.errors, Lines{});
  EXPECT_EQ(ignored.warnings,
            (Lines{"t.yaml:5:13: Gateway istio-system/gw: spec.selector: selector "
                   "istio=eastwestgateway does not select this gateway (labels: "
                   "istio=ingressgateway): Gateway ignored",
                   "no Gateway selecting this gateway (labels: istio=ingressgateway) has a "
                   "tls.mode AUTO_PASSTHROUGH server on port 15443: nothing is served"}));
  EXPECT_EQ(ignored.table->view().gateways, Lines{});
  EXPECT_EQ(ignored.table->Route("outbound_.443_._.a.example.com").miss, RouteMiss::kNotExported);
  // No labels at all: a selector never matches, an empty one always does.
  EXPECT_EQ(LoadYaml(yaml, MeshLoadOptions{}).table->view().gateways, Lines{});
  const MeshLoadResult empty = LoadYaml(
      Gw("  servers:\n  - port: {number: 15443, name: tls}\n    tls: {mode: AUTO_PASSTHROUGH}\n"
         "    hosts: [\"*\"]\n") + Entry("a", "bar", "a.example.com"),
      MeshLoadOptions{});
  ASSERT_EQ(empty.errors, Lines{});
  EXPECT_EQ(empty.table->view().gateways, Lines{"istio-system/gw"});
  EXPECT_EQ(empty.table->Route("outbound_.443_._.a.example.com").miss, RouteMiss::kNone);
}

TEST(GatewayExportTest, NamespaceOfAServerHostDoesNotRestrictSniMatching) {
  // GetSNIHostsForServer drops "ns/": "./*.local" in istio-system exports every
  // namespace's *.local service, "foo/*" every host.
  const MeshLoadResult result =
      LoadYaml(Exporting("[\"./*.local\"]") + Entry("a", "bar", "a.bar.svc.cluster.local") +
               Entry("b", "foo", "b.foo.svc.cluster.local") +
               Entry("c", "istio-system", "c.istio-system.svc.cluster.local") +
               Entry("d", "bar", "d.example.com"));
  ASSERT_EQ(result.errors, Lines{});
  const RouteTable& table = *result.table;
  EXPECT_EQ(table.Route("outbound_.443_._.a.bar.svc.cluster.local").miss, RouteMiss::kNone);
  EXPECT_EQ(table.Route("outbound_.443_._.b.foo.svc.cluster.local").miss, RouteMiss::kNone);
  EXPECT_EQ(table.Route("outbound_.443_._.c.istio-system.svc.cluster.local").miss,
            RouteMiss::kNone);
  EXPECT_EQ(table.Route("outbound_.443_._.d.example.com").miss, RouteMiss::kNotExported);
  const MeshLoadResult other_ns =
      LoadYaml(Exporting("[\"foo/*\"]") + Entry("a", "bar", "a.example.com"));
  EXPECT_EQ(other_ns.table->Route("outbound_.443_._.a.example.com").miss, RouteMiss::kNone);
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
  auto miss = [&](const std::string& host) {
    return table.Route("outbound_.443_._." + host).miss;
  };
  EXPECT_EQ(miss("a.example.com"), RouteMiss::kNotExported);
  EXPECT_EQ(miss("b.example.com"), RouteMiss::kNone);
  EXPECT_EQ(miss("c.example.com"), RouteMiss::kNotExported);
  EXPECT_EQ(miss("d.example.com"), RouteMiss::kNone);
  EXPECT_EQ(miss("e.example.com"), RouteMiss::kNone);
  EXPECT_EQ(miss("f.example.com"), RouteMiss::kNone);
  EXPECT_EQ(table.Find("a.example.com", 443, "")->export_detail,
            "exportTo does not make it visible in the gateway's namespace \"istio-system\"");
}

TEST(GatewayExportTest, MeshExternalServiceEntriesAreNeverExported) {
  const MeshLoadResult result = LoadYaml(
      Exporting("[\"*\"]") + Entry("a", "bar", "a.example.com", "  location: MESH_EXTERNAL\n") +
      Entry("b", "bar", "b.example.com", "  location: MESH_INTERNAL\n"));
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.table->Route("outbound_.443_._.a.example.com").miss, RouteMiss::kNotExported);
  EXPECT_EQ(result.table->Route("outbound_.443_._.b.example.com").miss, RouteMiss::kNone);
  EXPECT_EQ(result.table->Find("a.example.com", 443, "")->export_detail,
            "MESH_EXTERNAL: Istio's gateway never exports a mesh-external ServiceEntry");
}

TEST(GatewayExportTest, UdpPortsAreNeverExported) {
  const MeshLoadResult result = LoadYaml(
      Exporting("[\"*\"]") +
      "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
      "metadata: {name: dns, namespace: bar}\n"
      "spec:\n  hosts: [dns.example.com]\n"
      "  ports: [{number: 53, name: udp-dns, protocol: UDP}, {number: 853, name: tls, "
      "protocol: TLS}]\n"
      "  resolution: STATIC\n  endpoints: [{address: 10.0.0.1}]\n");
  ASSERT_EQ(result.errors, Lines{});
  const RouteTable& table = *result.table;
  EXPECT_EQ(table.Route("outbound_.53_._.dns.example.com").miss, RouteMiss::kNotExported);
  EXPECT_EQ(table.Route("outbound_.853_._.dns.example.com").miss, RouteMiss::kNone);
  EXPECT_EQ(table.Find("dns.example.com", 53, "")->export_detail,
            "UDP port: Istio's gateway never exports UDP");
}

TEST(GatewayExportTest, GlobalNamesOfTheOldMulticlusterSetupExportLocalServices) {
  // Istio 1.6's multicluster gateway exported "*.global", the names clients use;
  // with the sniRewrite .global -> .svc.cluster.local it serves the local service.
  const MeshLoadResult exported = LoadYaml(
      Exporting("[\"*.global\"]") + Entry("a", "bar", "httpbin.bar.svc.cluster.local") +
      Entry("b", "bar", "other.example.com"));
  ASSERT_EQ(exported.errors, Lines{});
  EXPECT_EQ(exported.table->Route("outbound_.443_._.httpbin.bar.global").miss, RouteMiss::kNone);
  EXPECT_EQ(exported.table->Route("outbound_.443_._.other.example.com").miss,
            RouteMiss::kNotExported);
}

}  // namespace
}  // namespace meshgate::config
