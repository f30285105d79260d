// Kubernetes Service, EndpointSlice, Endpoints and Pod: validation rules with
// exact messages, then how endpoints, readiness, ports and labels come out.
#include <gtest/gtest.h>

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

// A Service "bar/svc" whose spec starts on line 5.
std::string Svc(const std::string& spec, const std::string& name = "svc") {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name +
         ", namespace: bar}\nspec:\n" + spec;
}

// An EndpointSlice "bar/svc-1" of Service svc; its own fields start on line 5.
std::string Slice(const std::string& body) {
  return "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
         "metadata: {name: svc-1, namespace: bar, labels: {kubernetes.io/service-name: svc}}\n"
         "addressType: IPv4\n" +
         body;
}

struct RuleCase {
  std::string name;
  std::string yaml;
  Lines errors;
};

std::ostream& operator<<(std::ostream& out, const RuleCase& c) { return out << c.name; }

class KubernetesRuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(KubernetesRuleTest, ExactMessage) {
  const MeshLoadResult result = LoadYaml(GetParam().yaml);
  EXPECT_EQ(result.errors, GetParam().errors);
  EXPECT_EQ(result.table, nullptr);
}

const std::string kSvc = "Service bar/svc: ";
const std::string kSlice = "EndpointSlice bar/svc-1: ";

INSTANTIATE_TEST_SUITE_P(
    Kubernetes, KubernetesRuleTest,
    ::testing::ValuesIn(std::vector<RuleCase>{
        {"ServiceName", Svc("  ports: [{port: 80}]\n", "1svc"),
         {"t.yaml:3:18: Service bar/1svc: metadata.name: \"1svc\" is not a valid Service name (a "
          "DNS label starting with a letter)"}},
        {"PortRequired", Svc("  ports: [{name: http}]\n"),
         {"t.yaml:5:11: " + kSvc + "spec.ports[0].port: required"}},
        {"PortRange", Svc("  ports: [{port: 0}]\n"),
         {"t.yaml:5:18: " + kSvc + "spec.ports[0].port: must be 1..65535, got 0"}},
        {"NamesRequiredWithSeveralPorts", Svc("  ports: [{port: 80}, {port: 443, name: https}]\n"),
         {"t.yaml:5:11: " + kSvc + "spec.ports[0].name: required when the Service has more than one port"}},
        {"PortNameSyntax", Svc("  ports: [{port: 80, name: Http}]\n"),
         {"t.yaml:5:28: " + kSvc +
          "spec.ports[0].name: \"Http\" is not a valid port name (lowercase letters, digits and "
          "'-', at most 63 characters)"}},
        {"PortNamesUnique", Svc("  ports: [{port: 80, name: a}, {port: 81, name: a}]\n"),
         {"t.yaml:5:49: " + kSvc + "spec.ports[1].name: duplicate port name \"a\""}},
        {"PortNumbersUnique", Svc("  ports: [{port: 80, name: a}, {port: 80, name: b}]\n"),
         {"t.yaml:5:39: " + kSvc + "spec.ports[1].port: duplicate port 80/TCP"}},
        {"TargetPortName", Svc("  ports: [{port: 80, targetPort: http_port}]\n"),
         {"t.yaml:5:34: " + kSvc +
          "spec.ports[0].targetPort: \"http_port\" is neither a port number nor a port name (at "
          "most 15 lowercase letters, digits and '-', with a letter)"}},
        {"TargetPortRange", Svc("  ports: [{port: 80, targetPort: 65536}]\n"),
         {"t.yaml:5:34: " + kSvc + "spec.ports[0].targetPort: must be 1..65535, got 65536"}},
        {"Protocol", Svc("  ports: [{port: 80, protocol: QUIC}]\n"),
         {"t.yaml:5:32: " + kSvc + "spec.ports[0].protocol: unknown protocol \"QUIC\" (one of: TCP, UDP, SCTP)"}},
        {"Type", Svc("  type: Headless\n"),
         {"t.yaml:5:9: " + kSvc +
          "spec.type: unknown type \"Headless\" (one of: ClusterIP, NodePort, LoadBalancer, "
          "ExternalName)"}},
        {"ExternalNameRequired", Svc("  type: ExternalName\n"),
         {"t.yaml:4:1: " + kSvc + "spec.externalName: required"}},
        {"ExternalNameSyntax", Svc("  type: ExternalName\n  externalName: db..example.com\n"),
         {"t.yaml:6:17: " + kSvc +
          "spec.externalName: \"db..example.com\" is not a valid host name: empty label"}},
        {"SelectorSyntax", Svc("  selector: {app: \"a b\"}\n"),
         {"t.yaml:5:19: " + kSvc + "spec.selector.app: label value \"a b\" has invalid character ' '"}},
        {"ExportToAnnotation",
         "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n  namespace: bar\n"
         "  annotations: {networking.istio.io/exportTo: \"., Bad\"}\nspec: {}\n",
         {"t.yaml:6:47: " + kSvc +
          "metadata.annotations.networking.istio.io/exportTo: \"Bad\" is not \".\", \"*\", \"~\" "
          "or a namespace name"}},
        {"SliceAddressType",
         "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
         "metadata: {name: svc-1, namespace: bar, labels: {kubernetes.io/service-name: svc}}\n"
         "addressType: IPv5\n",
         {"t.yaml:4:14: " + kSlice + "addressType: unknown address type \"IPv5\" (one of: IPv4, IPv6, FQDN)"}},
        {"SliceAddressIsIp", Slice("endpoints: [{addresses: [\"10.0.0.300\"]}]\n"),
         {"t.yaml:5:26: " + kSlice + "endpoints[0].addresses[0]: \"10.0.0.300\" is not an IP address"}},
        {"SliceAddressesRequired", Slice("endpoints: [{addresses: []}]\n"),
         {"t.yaml:5:14: " + kSlice + "endpoints[0].addresses: must list at least one address"}},
        {"SliceReadyIsBool",
         Slice("endpoints: [{addresses: [10.0.0.1], conditions: {ready: maybe}}]\n"),
         {"t.yaml:5:57: " + kSlice + "endpoints[0].conditions.ready: must be true or false, got \"maybe\""}},
        {"SlicePortRange", Slice("ports: [{name: http, port: 70000}]\n"),
         {"t.yaml:5:28: " + kSlice + "ports[0].port: must be 1..65535, got 70000"}},
        {"SliceApiVersion",
         "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\n"
         "metadata: {name: svc-1, namespace: bar, labels: {kubernetes.io/service-name: svc}}\n"
         "addressType: IPv4\n",
         {"t.yaml:1:13: " + kSlice +
          "apiVersion: unsupported apiVersion \"discovery.k8s.io/v1beta1\" for EndpointSlice (one "
          "of: discovery.k8s.io/v1)"}},
        {"EndpointsPortRequired",
         "apiVersion: v1\nkind: Endpoints\nmetadata: {name: svc, namespace: bar}\n"
         "subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{name: http}]}]\n",
         {"t.yaml:4:49: Endpoints bar/svc: subsets[0].ports[0].port: required"}},
        {"EndpointsIp",
         "apiVersion: v1\nkind: Endpoints\nmetadata: {name: svc, namespace: bar}\n"
         "subsets: [{notReadyAddresses: [{ip: fd00::g}]}]\n",
         {"t.yaml:4:37: Endpoints bar/svc: subsets[0].notReadyAddresses[0].ip: \"fd00::g\" is not "
          "an IP address"}},
        {"PodIp",
         "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: bar}\n"
         "status: {podIP: 10.0.0}\n",
         {"t.yaml:4:17: Pod bar/p: status.podIP: \"10.0.0\" is not an IP address"}},
    }),
    [](const ::testing::TestParamInfo<RuleCase>& info) { return info.param.name; });

// --- Warnings ---------------------------------------------------------------------------

TEST(KubernetesWarningTest, WhatIsSkipped) {
  const MeshLoadResult result = LoadYaml(
      Svc("  ports: [{name: dns, port: 53, protocol: UDP}, {name: http, port: 80}]\n"
          "  clusterIP: 10.96.0.10\n  newField: x\n") +
      "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
      "metadata: {name: orphan, namespace: bar}\naddressType: IPv4\n"
      "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
      "metadata: {name: svc-fqdn, namespace: bar, labels: {kubernetes.io/service-name: svc}}\n"
      "addressType: FQDN\n"
      "---\napiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: knative}\n");
  EXPECT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings,
            (Lines{"t.yaml:5:43: Service bar/svc: spec.ports[0].protocol: protocol UDP: meshgate "
                   "relays TCP only, and Istio's gateway never exports a UDP port (pilot "
                   "builtAutoPassthroughFilterChains); port ignored",
                   "t.yaml:7:3: Service bar/svc: spec.newField: unknown field, ignored (known: "
                   "allocateLoadBalancerNodePorts, clusterIP, clusterIPs, externalIPs, "
                   "externalName, externalTrafficPolicy, healthCheckNodePort, "
                   "internalTrafficPolicy, ipFamilies, ipFamilyPolicy, loadBalancerClass, "
                   "loadBalancerIP, loadBalancerSourceRanges, ports, publishNotReadyAddresses, "
                   "selector, sessionAffinity, sessionAffinityConfig, trafficDistribution, type)",
                   "t.yaml:11:18: EndpointSlice bar/orphan: metadata.labels: no "
                   "kubernetes.io/service-name label: the slice belongs to no Service; ignored",
                   "t.yaml:17:14: EndpointSlice bar/svc-fqdn: addressType: FQDN endpoints are "
                   "deprecated and not used; ignored",
                   "t.yaml:19:1: ignoring Service default/knative (serving.knative.dev/v1: not "
                   "used by meshgate)",
                   "t.yaml:1:1: Service bar/svc: no EndpointSlice, Endpoints or Pods for this "
                   "Service were loaded: its clusters have no endpoints",
                   kNoGatewayWarning}));
  ASSERT_EQ(result.table->clusters().size(), 1u);  // the UDP port is not a cluster
  EXPECT_EQ(result.table->clusters()[0].port, 80);
}

// --- Endpoints ---------------------------------------------------------------------------

TEST(KubernetesEndpointsTest, HttpbinSampleWithItsEndpointSlice) {
  const MeshLoadResult result =
      Load({"istio/httpbin.yaml", "k8s/httpbin-endpointslice.yaml",
            "mesh/gateway/eastwest-gateway.yaml"});
  ASSERT_EQ(result.errors, Lines{});
  const RouteResult route = result.table->Route("outbound_.8000_._.httpbin.default.global");
  ASSERT_EQ(route.miss, RouteMiss::kNone);
  const Cluster& cluster = *route.cluster;
  EXPECT_EQ(cluster.source, testing::Data("istio/httpbin.yaml") + ":9 Service default/httpbin");
  ASSERT_EQ(cluster.endpoints.size(), 2u);
  // The slice's port is the resolved targetPort; without Pods, labels are the selector.
  EXPECT_EQ(cluster.endpoints[0].address, "10.1.0.11");
  EXPECT_EQ(cluster.endpoints[0].port, 80);
  EXPECT_EQ(cluster.endpoints[0].labels, (std::map<std::string, std::string>{{"app", "httpbin"}}));
  EXPECT_TRUE(cluster.endpoints[0].ready);
  EXPECT_EQ(cluster.endpoints[1].address, "10.1.0.12");  // keeps its place...
  EXPECT_FALSE(cluster.endpoints[1].ready);              // ...but takes no new connections
}

TEST(KubernetesEndpointsTest, PortsMatchByNameAcrossSlices) {
  const MeshLoadResult result = LoadYaml(
      Svc("  ports: [{name: http, port: 80, targetPort: 8080}, {name: grpc, port: 9000}]\n") +
      "---\n" +
      Slice("ports: [{name: grpc, port: 9090}, {name: http, port: 8081}]\n"
            "endpoints: [{addresses: [10.0.0.1]}]\n") +
      "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
      "metadata: {name: svc-2, namespace: bar, labels: {kubernetes.io/service-name: svc}}\n"
      "addressType: IPv6\nports: [{name: http, port: 8082}]\n"
      "endpoints: [{addresses: [\"fd00::1\"]}]\n");
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* http = result.table->Find("svc.bar.svc.cluster.local", 80, "");
  ASSERT_EQ(http->endpoints.size(), 2u);
  EXPECT_EQ(http->endpoints[0].port, 8081);  // the slice's port, not targetPort
  EXPECT_EQ(http->endpoints[1].address, "fd00::1");
  EXPECT_EQ(http->endpoints[1].port, 8082);
  const Cluster* grpc = result.table->Find("svc.bar.svc.cluster.local", 9000, "");
  ASSERT_EQ(grpc->endpoints.size(), 1u);  // svc-2 has no grpc port
  EXPECT_EQ(grpc->endpoints[0].port, 9090);
}

TEST(KubernetesEndpointsTest, LegacyEndpointsWhenThereIsNoSlice) {
  const std::string endpoints =
      "---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: svc, namespace: bar}\n"
      "subsets:\n- addresses: [{ip: 10.0.0.1}]\n  notReadyAddresses: [{ip: 10.0.0.2}]\n"
      "  ports: [{port: 8080}]\n";
  MeshLoadResult result = LoadYaml(Svc("  ports: [{port: 80}]\n") + endpoints);
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* cluster = result.table->Find("svc.bar.svc.cluster.local", 80, "");
  ASSERT_EQ(cluster->endpoints.size(), 2u);
  EXPECT_EQ(cluster->endpoints[0].port, 8080);
  EXPECT_TRUE(cluster->endpoints[0].ready);
  EXPECT_FALSE(cluster->endpoints[1].ready);
  // With a slice as well, the slice wins (the mirroring controller would double them).
  result = LoadYaml(Svc("  ports: [{port: 80}]\n") + endpoints + "---\n" +
                    Slice("ports: [{port: 9999}]\nendpoints: [{addresses: [10.0.0.9]}]\n"));
  ASSERT_EQ(result.errors, Lines{});
  cluster = result.table->Find("svc.bar.svc.cluster.local", 80, "");
  ASSERT_EQ(cluster->endpoints.size(), 1u);
  EXPECT_EQ(cluster->endpoints[0].address, "10.0.0.9");
}

TEST(KubernetesEndpointsTest, PodsWithoutEndpointResourcesHonourTargetPort) {
  const std::string pods =
      "---\napiVersion: v1\nkind: Pod\n"
      "metadata: {name: a, namespace: bar, labels: {app: web, version: v1}}\n"
      "spec: {serviceAccountName: web, containers: [{name: c, ports: [{name: web-port, "
      "containerPort: 8443}]}]}\n"
      "status: {podIP: 10.0.0.1, phase: Running}\n"
      "---\napiVersion: v1\nkind: Pod\n"
      "metadata: {name: b, namespace: bar, labels: {app: web, version: v2}}\n"
      "spec: {containers: [{name: c}]}\n"
      "status: {podIP: 10.0.0.2, conditions: [{type: Ready, status: \"False\"}]}\n"
      "---\napiVersion: v1\nkind: Pod\n"
      "metadata: {name: c, namespace: other, labels: {app: web}}\n"
      "status: {podIP: 10.0.0.3, phase: Running}\n";
  const MeshLoadResult result =
      LoadYaml(Svc("  selector: {app: web}\n"
                   "  publishNotReadyAddresses: true\n"
                   "  ports: [{name: https, port: 443, targetPort: web-port},\n"
                   "          {name: http, port: 80, targetPort: 8080}]\n") +
               pods);
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* https = result.table->Find("svc.bar.svc.cluster.local", 443, "");
  ASSERT_EQ(https->endpoints.size(), 1u);  // only Pod a has a container port "web-port"
  EXPECT_EQ(https->endpoints[0].port, 8443);
  EXPECT_EQ(https->endpoints[0].labels.at("version"), "v1");  // the Pod's own labels
  EXPECT_EQ(https->endpoints[0].service_account(), "web");
  const Cluster* http = result.table->Find("svc.bar.svc.cluster.local", 80, "");
  ASSERT_EQ(http->endpoints.size(), 2u);
  EXPECT_EQ(http->endpoints[1].address, "10.0.0.2");
  EXPECT_EQ(http->endpoints[1].port, 8080);
  EXPECT_TRUE(http->endpoints[1].ready);  // publishNotReadyAddresses
}

TEST(KubernetesEndpointsTest, ExternalNameIsADnsCluster) {
  const MeshLoadResult result =
      LoadYaml(Svc("  type: ExternalName\n  externalName: DB.Example.com\n  ports: [{port: 5432}]\n"));
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* cluster = result.table->Find("svc.bar.svc.cluster.local", 5432, "");
  ASSERT_NE(cluster, nullptr);
  EXPECT_EQ(cluster->resolution, Resolution::kDns);
  EXPECT_TRUE(cluster->endpoints.empty());
  ASSERT_EQ(cluster->dns_endpoints.size(), 1u);
  EXPECT_EQ(cluster->dns_endpoints[0].hostname(), "db.example.com");
  EXPECT_EQ(cluster->dns_endpoints[0].port, 5432);
}

TEST(KubernetesEndpointsTest, ClusterDomainIsConfigurable) {
  MeshLoadOptions options;
  options.cluster_domain = "mesh.internal";
  const MeshLoadResult result = Load({"istio/httpbin.yaml"}, {}, options);
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_NE(result.table->Find("httpbin.default.svc.mesh.internal", 8000, ""), nullptr);
  options.cluster_domain = "bad..domain";
  EXPECT_EQ(Load({"istio/httpbin.yaml"}, {}, options).errors,
            Lines{"cluster domain \"bad..domain\" is not a valid DNS name: empty label"});
}

}  // namespace
}  // namespace meshgate::config
