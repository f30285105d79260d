// ServiceEntry and WorkloadEntry: one table row per Istio validation rule, each
// asserting the exact message (file:line:column, Kind ns/name, field path), then
// what valid DNS, DNS_ROUND_ROBIN and workloadSelector entries turn into.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/mesh/mesh_loader.h"
#include "tests/config/mesh_test_util.h"

namespace meshgate::config {
namespace {

using testing::kNoGatewayWarning;
using testing::Lines;
using testing::LoadYaml;

// A ServiceEntry "bar/se" whose spec starts on line 5 of t.yaml.
std::string Se(const std::string& spec) {
  return "apiVersion: networking.istio.io/v1\n"
         "kind: ServiceEntry\n"
         "metadata: {name: se, namespace: bar}\n"
         "spec:\n" +
         spec;
}

const std::string kHost = "  hosts: [a.example.com]\n";
const std::string kPort = "  ports: [{number: 443, name: tls, protocol: TLS}]\n";

struct RuleCase {
  std::string name;
  std::string yaml;
  Lines errors;
};

std::ostream& operator<<(std::ostream& out, const RuleCase& c) { return out << c.name; }

class ServiceEntryRuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(ServiceEntryRuleTest, ExactMessage) {
  const MeshLoadResult result = LoadYaml(GetParam().yaml);
  EXPECT_EQ(result.errors, GetParam().errors);
  EXPECT_EQ(result.table, nullptr);
}

const std::string kSe = "ServiceEntry bar/se: ";
const std::string kNone =
    "can't be served by a passthrough gateway: it has no endpoints to dial; use STATIC with IP "
    "endpoints, or DNS";

INSTANTIATE_TEST_SUITE_P(
    Istio, ServiceEntryRuleTest,
    ::testing::ValuesIn(std::vector<RuleCase>{
        {"NoneCantBeServed", Se(kHost + kPort + "  resolution: NONE\n"),
         {"t.yaml:7:15: " + kSe + "spec.resolution: resolution NONE " + kNone}},
        {"UnsetIsNone", Se(kHost + kPort),
         {"t.yaml:4:1: " + kSe + "spec.resolution: resolution NONE (the default when unset) " +
          kNone}},
        {"NoneWithEndpoints",
         Se(kHost + kPort + "  resolution: NONE\n  endpoints: [{address: 10.0.0.1}]\n"),
         {"t.yaml:7:15: " + kSe + "spec.resolution: resolution NONE " + kNone,
          "t.yaml:8:3: " + kSe + "spec.endpoints: not allowed with resolution NONE"}},
        {"UnknownResolution", Se(kHost + kPort + "  resolution: LOGICAL_DNS\n"),
         {"t.yaml:7:15: " + kSe +
          "spec.resolution: unknown resolution \"LOGICAL_DNS\" (one of: NONE, STATIC, DNS, "
          "DNS_ROUND_ROBIN)"}},
        {"DnsRoundRobinAtMostOneEndpoint",
         Se(kHost + kPort +
            "  resolution: DNS_ROUND_ROBIN\n"
            "  endpoints: [{address: a.example.net}, {address: b.example.net}]\n"),
         {"t.yaml:8:3: " + kSe +
          "spec.endpoints: resolution DNS_ROUND_ROBIN allows at most one endpoint, got 2"}},
        {"StaticEndpointsMustBeIps",
         Se(kHost + kPort + "  resolution: STATIC\n  endpoints: [{address: a.example.net}]\n"),
         {"t.yaml:8:25: " + kSe +
          "spec.endpoints[0].address: \"a.example.net\" is not an IP address (resolution STATIC "
          "needs IP endpoints)"}},
        {"DnsEndpointsMustBeIpsOrHostNames",
         Se(kHost + kPort + "  resolution: DNS\n  endpoints: [{address: bad_name.example}]\n"),
         {"t.yaml:8:25: " + kSe +
          "spec.endpoints[0].address: \"bad_name.example\" is neither an IP address nor a valid "
          "host name: label \"bad_name\" has invalid character '_'"}},
        {"UnixSocketEndpoints",
         Se(kHost + kPort + "  resolution: STATIC\n  endpoints: [{address: unix:///sock}]\n"),
         {"t.yaml:8:25: " + kSe +
          "spec.endpoints[0].address: \"unix:///sock\": unix domain socket endpoints are not "
          "supported (meshgate dials TCP to IP endpoints)"}},
        {"StaticNeedsEndpointsOrSelector", Se(kHost + kPort + "  resolution: STATIC\n"),
         {"t.yaml:4:1: " + kSe +
          "spec.endpoints: required for resolution STATIC (at least one IP endpoint, or a "
          "workloadSelector)"}},
        {"PortNamesUnique",
         Se(kHost +
            "  ports: [{number: 443, name: tls, protocol: TLS}, {number: 8443, name: tls, "
            "protocol: TLS}]\n"
            "  resolution: DNS\n"),
         {"t.yaml:6:73: " + kSe +
          "spec.ports[1].name: port name \"tls\" is already used by spec.ports[0]"}},
        {"PortNumbersUnique",
         Se(kHost +
            "  ports: [{number: 443, name: tls, protocol: TLS}, {number: 443, name: https, "
            "protocol: HTTPS}]\n"
            "  resolution: DNS\n"),
         {"t.yaml:6:61: " + kSe + "spec.ports[1].number: port 443 is already defined by spec.ports[0]"}},
        {"EndpointPortNamesMustExist",
         Se(kHost + kPort +
            "  resolution: STATIC\n  endpoints: [{address: 10.0.0.1, ports: {https: 8443}}]\n"),
         {"t.yaml:8:43: " + kSe +
          "spec.endpoints[0].ports.https: no port named \"https\" in spec.ports (have: tls)"}},
        {"SelectorOrEndpointsNotBoth",
         Se(kHost + kPort +
            "  resolution: STATIC\n"
            "  workloadSelector: {labels: {app: a}}\n"
            "  endpoints: [{address: 10.0.0.1}]\n"),
         {"t.yaml:8:3: " + kSe + "spec.workloadSelector: only one of workloadSelector or endpoints is allowed"}},
        {"SelectorNeedsLabels",
         Se(kHost + kPort + "  resolution: STATIC\n  workloadSelector: {labels: {}}\n"),
         {"t.yaml:8:3: " + kSe +
          "spec.workloadSelector: must select by at least one label (an empty selector would "
          "select every workload in the namespace)"}},
        {"SelectorLabelSyntax",
         Se(kHost + kPort + "  resolution: STATIC\n  workloadSelector: {labels: {app: \"*\"}}\n"),
         {"t.yaml:8:36: " + kSe +
          "spec.workloadSelector.labels.app: label value \"*\" has invalid character '*'"}},
        {"EndpointLabelKeySyntax",
         Se(kHost + kPort +
            "  resolution: STATIC\n  endpoints: [{address: 10.0.0.1, labels: {-bad: x}}]\n"),
         {"t.yaml:8:44: " + kSe +
          "spec.endpoints[0].labels.-bad: label key \"-bad\" must start and end with a letter or "
          "digit"}},
        {"CidrOnlyWithStaticOrNone",
         Se(kHost + kPort + "  resolution: DNS\n  addresses: [10.0.0.0/24]\n"),
         {"t.yaml:8:15: " + kSe +
          "spec.addresses[0]: CIDR \"10.0.0.0/24\" is allowed only with resolution STATIC or "
          "NONE"}},
        {"AddressesAreIpsOrCidrs",
         Se(kHost + kPort + "  resolution: DNS\n  addresses: [10.0.0.0/33, vip]\n"),
         {"t.yaml:8:15: " + kSe + "spec.addresses[0]: \"10.0.0.0/33\" is not an IP address or CIDR block",
          "t.yaml:8:28: " + kSe + "spec.addresses[1]: \"vip\" is not an IP address or CIDR block"}},
        {"ExportToSyntax",
         Se(kHost + kPort + "  resolution: DNS\n  exportTo: [\"*\", Bad_NS, \"*\"]\n"),
         {"t.yaml:8:19: " + kSe +
          "spec.exportTo[1]: \"Bad_NS\" is not \".\", \"*\", \"~\" or a namespace name",
          "t.yaml:8:27: " + kSe + "spec.exportTo[2]: duplicate entry \"*\""}},
        {"ExportToStarStandsAlone",
         Se(kHost + kPort + "  resolution: DNS\n  exportTo: [\"*\", foo]\n"),
         {"t.yaml:8:13: " + kSe +
          "spec.exportTo: \"*\" and \"~\" can't be combined with other entries"}},
        {"Location", Se(kHost + kPort + "  resolution: DNS\n  location: MESH_OUTSIDE\n"),
         {"t.yaml:8:13: " + kSe +
          "spec.location: unknown location \"MESH_OUTSIDE\" (one of: MESH_EXTERNAL, "
          "MESH_INTERNAL)"}},
        {"SeveralHostsNeedHttpOrTls",
         Se("  hosts: [a.example.com, b.example.com]\n"
            "  ports: [{number: 5432, name: pg, protocol: TCP}]\n"
            "  resolution: DNS\n"),
         {"t.yaml:5:3: " + kSe +
          "spec.hosts: several hosts need HTTP or TLS ports to tell them apart (Istio rejects "
          "this): port \"pg\" is TCP"}},
        {"WildcardHostNeedsEndpointsWithDns",
         Se("  hosts: [\"*.example.com\"]\n" + kPort + "  resolution: DNS\n"),
         {"t.yaml:5:11: " + kSe +
          "spec.hosts[0]: wildcard host \"*.example.com\" needs endpoints: with resolution DNS "
          "and no endpoints the hosts themselves are resolved"}},
        {"StarAloneIsNoHost",
         Se("  hosts: [\"*\"]\n" + kPort + "  resolution: STATIC\n  endpoints: [{address: 10.0.0.1}]\n"),
         {"t.yaml:5:11: " + kSe +
          "spec.hosts[0]: \"*\" would match every host; name a domain, as in \"*.example.com\""}},
        {"WildcardOnlyAsFirstLabel",
         Se("  hosts: [\"a.*.com\"]\n" + kPort + "  resolution: STATIC\n  endpoints: [{address: 10.0.0.1}]\n"),
         {"t.yaml:5:11: " + kSe +
          "spec.hosts[0]: \"a.*.com\" is not a valid host name: '*' is allowed only as the whole "
          "first label, as in \"*.example.com\""}},
        {"WorkloadEntryAddressRequired",
         "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
         "metadata: {name: we, namespace: bar}\nspec: {labels: {app: a}}\n",
         {"t.yaml:4:7: WorkloadEntry bar/we: spec.address: required"}},
        {"WorkloadEntryAddressSyntax",
         "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
         "metadata: {name: we, namespace: bar}\nspec: {address: \"a..b\", ports: {http: 0}}\n",
         {"t.yaml:4:17: WorkloadEntry bar/we: spec.address: \"a..b\" is neither an IP address nor "
          "a valid host name: empty label",
          "t.yaml:4:39: WorkloadEntry bar/we: spec.ports.http: must be 1..65535, got 0"}},
        {"StaticServiceEntrySelectsHostNameWorkload",
         Se(kHost + kPort + "  resolution: STATIC\n  workloadSelector: {labels: {app: a}}\n") +
             "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
             "metadata: {name: we, namespace: bar}\n"
             "spec: {address: vm.example.net, labels: {app: a}}\n",
         {"t.yaml:13:7: WorkloadEntry bar/we: spec.address: \"vm.example.net\" is a host name, "
          "but resolution STATIC of t.yaml:1 ServiceEntry bar/se (which selects this workload) "
          "needs an IP address"}},
    }),
    [](const ::testing::TestParamInfo<RuleCase>& info) { return info.param.name; });

// --- Warnings -------------------------------------------------------------------------

TEST(ServiceEntryWarningTest, UnknownFieldsAndWeightZero) {
  const MeshLoadResult result =
      LoadYaml(Se(kHost + kPort +
                  "  resolution: STATIC\n"
                  "  trafficDistribution: PreferClose\n"
                  "  endpoints: [{address: 10.0.0.1, weight: 0}]\n"));
  EXPECT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings,
            (Lines{"t.yaml:8:3: ServiceEntry bar/se: spec.trafficDistribution: unknown field, "
                   "ignored (known: hosts, addresses, ports, location, resolution, endpoints, "
                   "workloadSelector, exportTo, subjectAltNames)",
                   "t.yaml:9:43: ServiceEntry bar/se: spec.endpoints[0].weight: weight 0 means "
                   "the default weight 1 (as in Istio); remove the endpoint to stop sending it "
                   "traffic",
                   kNoGatewayWarning}));
  EXPECT_NE(result.table, nullptr);
}

// --- What valid entries become ------------------------------------------------------

TEST(ServiceEntryDnsTest, HostNameAndIpEndpointsAreSeparated) {
  const MeshLoadResult result =
      LoadYaml(Se(kHost +
                  "  ports: [{number: 443, name: tls, protocol: TLS, targetPort: 8443}]\n"
                  "  resolution: DNS\n"
                  "  endpoints:\n"
                  "  - {address: Backend.Example.NET., labels: {zone: a}, weight: 2,\n"
                  "     network: n1, locality: eu/a, serviceAccount: sa}\n"
                  "  - {address: 192.0.2.7, ports: {tls: 9443}}\n"));
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* cluster = result.table->Find("a.example.com", 443, "");
  ASSERT_NE(cluster, nullptr);
  EXPECT_EQ(cluster->resolution, Resolution::kDns);
  ASSERT_EQ(cluster->dns_endpoints.size(), 1u);
  const Endpoint& name = cluster->dns_endpoints[0];
  EXPECT_EQ(name.hostname(), "backend.example.net");  // lowercase, no trailing dot
  EXPECT_EQ(name.address, "");
  EXPECT_EQ(name.port, 8443);  // targetPort
  EXPECT_EQ(name.weight, 2u);
  EXPECT_EQ(name.labels.at("zone"), "a");
  EXPECT_EQ(name.network(), "n1");
  EXPECT_EQ(name.locality(), "eu/a");
  EXPECT_EQ(name.service_account(), "sa");
  // An IP is an IP whatever the resolution: dialable now.
  ASSERT_EQ(cluster->endpoints.size(), 1u);
  EXPECT_EQ(cluster->endpoints[0].address, "192.0.2.7");
  EXPECT_EQ(cluster->endpoints[0].port, 9443);
}

TEST(ServiceEntryDnsTest, WithoutEndpointsEachHostResolvesItself) {
  const MeshLoadResult result =
      LoadYaml(Se("  hosts: [a.example.com, b.example.com]\n" + kPort +
                  "  resolution: DNS_ROUND_ROBIN\n"));
  ASSERT_EQ(result.errors, Lines{});
  for (const char* host : {"a.example.com", "b.example.com"}) {
    const Cluster* cluster = result.table->Find(host, 443, "");
    ASSERT_NE(cluster, nullptr) << host;
    EXPECT_EQ(cluster->resolution, Resolution::kDnsRoundRobin);
    ASSERT_EQ(cluster->dns_endpoints.size(), 1u);
    EXPECT_EQ(cluster->dns_endpoints[0].hostname(), host);
    EXPECT_EQ(cluster->dns_endpoints[0].port, 443);
  }
}

TEST(ServiceEntrySelectorTest, SelectsWorkloadEntriesAndPodsInItsNamespace) {
  const std::string we =
      "---\napiVersion: networking.istio.io/v1beta1\nkind: WorkloadEntry\n"
      "metadata: {name: vm1, namespace: bar}\n"
      "spec: {address: 10.9.0.1, ports: {tls: 9443}, labels: {app: a, version: v1}, weight: 5,\n"
      "       network: vm-net, serviceAccount: vm-sa}\n"
      "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
      "metadata: {name: other, namespace: bar}\n"
      "spec: {address: 10.9.0.2, labels: {app: b}}\n"
      "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
      "metadata: {name: elsewhere, namespace: foo}\n"
      "spec: {address: 10.9.0.3, labels: {app: a}}\n"
      "---\napiVersion: v1\nkind: Pod\n"
      "metadata: {name: pod1, namespace: bar, labels: {app: a, version: v2}}\n"
      "spec: {serviceAccountName: pod-sa}\n"
      "status: {podIP: 10.8.0.1, phase: Running, conditions: [{type: Ready, status: \"False\"}]}\n";
  const MeshLoadResult result = LoadYaml(
      Se(kHost +
         "  ports: [{number: 443, name: tls, protocol: TLS, targetPort: 8443}]\n"
         "  resolution: STATIC\n"
         "  workloadSelector: {labels: {app: a}}\n") +
      we);
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* cluster = result.table->Find("a.example.com", 443, "");
  ASSERT_NE(cluster, nullptr);
  ASSERT_EQ(cluster->endpoints.size(), 2u);
  const Endpoint& vm = cluster->endpoints[0];
  EXPECT_EQ(vm.address, "10.9.0.1");
  EXPECT_EQ(vm.port, 9443);  // the WorkloadEntry's ports map
  EXPECT_EQ(vm.weight, 5u);
  EXPECT_EQ(vm.network(), "vm-net");
  EXPECT_EQ(vm.service_account(), "vm-sa");
  EXPECT_TRUE(vm.ready);
  const Endpoint& pod = cluster->endpoints[1];
  EXPECT_EQ(pod.address, "10.8.0.1");
  EXPECT_EQ(pod.port, 8443);  // targetPort
  EXPECT_EQ(pod.labels.at("version"), "v2");
  EXPECT_EQ(pod.service_account(), "pod-sa");
  EXPECT_FALSE(pod.ready);  // kept in place, not to be picked
  EXPECT_EQ(result.resources_loaded, 5u);
}

TEST(ServiceEntrySelectorTest, DnsEntrySelectsHostNameWorkloads) {
  const MeshLoadResult result = LoadYaml(
      Se(kHost + kPort + "  resolution: DNS\n  workloadSelector: {labels: {app: a}}\n") +
      "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
      "metadata: {name: vm, namespace: bar}\n"
      "spec: {address: vm.example.net, labels: {app: a}}\n");
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* cluster = result.table->Find("a.example.com", 443, "");
  ASSERT_NE(cluster, nullptr);
  EXPECT_TRUE(cluster->endpoints.empty());
  ASSERT_EQ(cluster->dns_endpoints.size(), 1u);
  EXPECT_EQ(cluster->dns_endpoints[0].hostname(), "vm.example.net");
}

}  // namespace
}  // namespace meshgate::config
