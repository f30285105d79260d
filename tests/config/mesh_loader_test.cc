// LoadMesh: Istio ServiceEntries from real YAML fixtures (tests/data/mesh, tests/data/istio)
// to a RouteTable, and every validation error with its exact file:line:column and field path.
#include "config/mesh/mesh_loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/config/mesh_test_util.h"

namespace meshgate::config {
namespace {

using testing::At;
using testing::Data;
using testing::kDefaultRewrites;
using testing::kNoGatewayWarning;
using testing::kNoLabelsWarning;
using testing::Lines;
using testing::Load;

// --- Loading what is valid ----------------------------------------------------------

TEST(MeshLoaderTest, WalkthroughGatewaySideServiceEntry) {
  const MeshLoadResult result = Load({"mesh/httpbin-bar.yaml", "mesh/gateway/eastwest-gateway.yaml"});
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings, Lines{});
  EXPECT_EQ(result.resources_loaded, 2u);  // the ServiceEntry and the Gateway
  ASSERT_NE(result.table, nullptr);
  ASSERT_EQ(result.table->clusters().size(), 1u);

  const Cluster& cluster = result.table->clusters()[0];
  EXPECT_EQ(cluster.id, 0u);
  EXPECT_EQ(cluster.name, "outbound|8000||httpbin.bar.svc.cluster.local");
  EXPECT_EQ(cluster.host, "httpbin.bar.svc.cluster.local");
  EXPECT_EQ(cluster.port, 8000);
  EXPECT_EQ(cluster.subset, "");
  EXPECT_EQ(cluster.source, Data("mesh/httpbin-bar.yaml") + ":4 ServiceEntry foo/httpbin-bar");
  ASSERT_EQ(cluster.endpoints.size(), 2u);
  EXPECT_EQ(cluster.endpoints[0].address, "10.1.0.11");
  EXPECT_EQ(cluster.endpoints[0].port, 80);  // from the endpoint's ports map
  EXPECT_EQ(cluster.endpoints[0].weight, 3u);
  EXPECT_EQ(cluster.endpoints[0].labels,
            (std::map<std::string, std::string>{{"app", "httpbin"}, {"version", "v1"}}));
  EXPECT_EQ(cluster.endpoints[1].address, "10.1.0.12");
  EXPECT_EQ(cluster.endpoints[1].port, 80);
  EXPECT_EQ(cluster.endpoints[1].weight, 1u);
  EXPECT_EQ(cluster.endpoints[1].labels.at("version"), "v2");

  // What the sidecar in cluster 1 sends.
  const RouteResult route = result.table->Route("outbound_.8000_._.httpbin.bar.global");
  ASSERT_EQ(route.miss, RouteMiss::kNone);
  EXPECT_EQ(route.cluster, &cluster);
}

TEST(MeshLoaderTest, MultiDocumentFileWithBetaAndV1AndOtherKinds) {
  const MeshLoadResult result = Load({"mesh/multi-doc.yaml", "mesh/gateway/eastwest-gateway.yaml"});
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings,
            (Lines{At("mesh/multi-doc.yaml", 42, 13,
                      "ServiceEntry default/ratings: spec.endpoints[0].weight: weight 0 means the "
                      "default weight 1 (as in Istio); remove the endpoint to stop sending it "
                      "traffic"),
                   At("mesh/multi-doc.yaml", 44, 1,
                      "ignoring Deployment default/ratings-v1 (apps/v1: not used by meshgate)"),
                   "1 host is not exported by any Gateway on port 15443 and will be refused "
                   "(not_exported): ratings.default.svc.cluster.local (exportTo does not make it "
                   "visible in the gateway's namespace \"istio-system\")"}));
  EXPECT_EQ(result.resources_loaded, 3u);
  ASSERT_NE(result.table, nullptr);
  const RouteTable& table = *result.table;
  ASSERT_EQ(table.clusters().size(), 3u);

  // Endpoint port: the endpoint's ports map, else targetPort, else the service port.
  const Cluster* http = table.Find("reviews.default.svc.cluster.local", 9080, "");
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(http->id, 0u);
  EXPECT_EQ(http->source, Data("mesh/multi-doc.yaml") + ":3 ServiceEntry default/reviews");
  ASSERT_EQ(http->endpoints.size(), 2u);
  EXPECT_EQ(http->endpoints[0].port, 9080);
  EXPECT_EQ(http->endpoints[1].address, "fd00::2");  // canonical IPv6 text
  EXPECT_EQ(http->endpoints[1].port, 9080);
  const Cluster* https = table.Find("reviews.default.svc.cluster.local", 9443, "");
  ASSERT_NE(https, nullptr);
  EXPECT_EQ(https->id, 1u);
  EXPECT_EQ(https->endpoints[0].port, 8443);  // targetPort
  EXPECT_EQ(https->endpoints[1].port, 9444);  // ports map wins over targetPort

  // Host lowercased, trailing dot dropped, namespace defaulted, weight 0 -> 1.
  const Cluster* ratings = table.Find("ratings.default.svc.cluster.local", 9080, "");
  ASSERT_NE(ratings, nullptr);
  EXPECT_EQ(ratings->source, Data("mesh/multi-doc.yaml") + ":23 ServiceEntry default/ratings");
  ASSERT_EQ(ratings->endpoints.size(), 1u);
  EXPECT_EQ(ratings->endpoints[0].weight, 1u);
  EXPECT_TRUE(ratings->endpoints[0].labels.empty());
  // network, locality and serviceAccount are kept for the balancer.
  EXPECT_EQ(ratings->endpoints[0].network(), "network2");
  EXPECT_EQ(ratings->endpoints[0].locality(), "us-east1/zone1");
  EXPECT_EQ(ratings->endpoints[0].service_account(), "ratings");
  EXPECT_EQ(ratings->service_namespace, "default");
  EXPECT_EQ(ratings->resolution, Resolution::kStatic);
  // exportTo ["."] in default: the gateway (istio-system) doesn't see it.
  EXPECT_FALSE(ratings->exported);
}

TEST(MeshLoaderTest, KubectlListOutput) {
  // The ServiceEntry and the Service name the same host in the same namespace:
  // they merge, the Service adding no endpoints of its own.
  const MeshLoadResult result = Load({"mesh/list.yaml", "mesh/gateway/eastwest-gateway.yaml"});
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings,
            (Lines{At("mesh/list.yaml", 30, 3,
                      "Service bar/echo: no EndpointSlice, Endpoints or Pods for this Service "
                      "were loaded: its clusters have no endpoints")}));
  ASSERT_NE(result.table, nullptr);
  ASSERT_EQ(result.table->clusters().size(), 2u);
  EXPECT_EQ(result.table->clusters()[0].name, "outbound|9000||echo.bar.svc.cluster.local");
  EXPECT_EQ(result.table->clusters()[0].source,
            Data("mesh/list.yaml") + ":4 ServiceEntry bar/echo; " + Data("mesh/list.yaml") +
                ":30 Service bar/echo");
  EXPECT_EQ(result.table->clusters()[0].endpoints.size(), 1u);
  EXPECT_EQ(result.table->clusters()[1].name, "outbound|9443||echo.bar.svc.cluster.local");
  EXPECT_EQ(result.table->Route("echo.bar.global", {.allow_plain_host = true}).miss,
            RouteMiss::kAmbiguousPort);
}

TEST(MeshLoaderTest, DirectoryIsReadSortedAndNonRecursively) {
  // dir/ also holds README.md, .hidden.yaml and sub/nested.yaml, all broken: none is read.
  const MeshLoadResult result = Load({"mesh/dir"});
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings, Lines{kNoGatewayWarning});
  EXPECT_EQ(result.resources_loaded, 3u);
  ASSERT_NE(result.table, nullptr);
  ASSERT_EQ(result.table->clusters().size(), 3u);
  EXPECT_EQ(result.table->clusters()[0].source,
            Data("mesh/dir/10-details.yaml") + ":1 ServiceEntry bookinfo/details");
  EXPECT_EQ(result.table->clusters()[1].source,
            Data("mesh/dir/20-productpage.yml") + ":1 ServiceEntry bookinfo/productpage");
  EXPECT_EQ(result.table->clusters()[2].source,
            Data("mesh/dir/30-mongodb.json") + ":1 ServiceEntry bookinfo/mongodb");
  EXPECT_EQ(result.table->clusters()[2].name, "outbound|27017||mongodb.bookinfo.svc.cluster.local");
  EXPECT_EQ(result.table->clusters()[2].endpoints[0].labels.at("version"), "v1");
}

TEST(MeshLoaderTest, SeveralPathsMergeIntoOneTable) {
  const MeshLoadResult result = Load({"mesh/dir/", "mesh/httpbin-bar.yaml", "mesh/list.yaml"});
  ASSERT_EQ(result.errors, Lines{});
  ASSERT_NE(result.table, nullptr);
  EXPECT_EQ(result.resources_loaded, 6u);  // list.yaml's Service counts too
  ASSERT_EQ(result.table->clusters().size(), 6u);
  for (uint32_t i = 0; i < 6; ++i) EXPECT_EQ(result.table->clusters()[i].id, i);
  // A trailing slash on the directory doesn't double up in sources.
  EXPECT_EQ(result.table->clusters()[0].source,
            Data("mesh/dir/10-details.yaml") + ":1 ServiceEntry bookinfo/details");
  EXPECT_EQ(result.table->clusters()[3].name, "outbound|8000||httpbin.bar.svc.cluster.local");
}

TEST(MeshLoaderTest, ApiVersions) {
  for (const char* version :
       {"networking.istio.io/v1alpha3", "networking.istio.io/v1beta1", "networking.istio.io/v1"}) {
    const std::string yaml = std::string("apiVersion: ") + version +
                             "\nkind: ServiceEntry\n"
                             "metadata: {name: a}\n"
                             "spec:\n"
                             "  hosts: [a.example.com]\n"
                             "  ports: [{number: 443, name: tls, protocol: TLS}]\n"
                             "  resolution: STATIC\n"
                             "  endpoints: [{address: 192.0.2.1}]\n";
    const MeshLoadResult result = LoadMeshFromString(yaml, "inline.yaml", {});
    EXPECT_EQ(result.errors, Lines{}) << version;
    ASSERT_NE(result.table, nullptr) << version;
    EXPECT_EQ(result.table->clusters()[0].source, "inline.yaml:1 ServiceEntry default/a");
  }
}

TEST(MeshLoaderTest, ProtocolsAreCaseInsensitive) {
  std::string yaml =
      "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: p}\nspec:\n"
      "  hosts: [p.example.com]\n  resolution: STATIC\n  endpoints: [{address: 192.0.2.1}]\n"
      "  ports:\n";
  int number = 1000;
  for (const char* protocol : {"HTTP", "https", "Grpc", "GRPC-Web", "http2", "HTTP_PROXY", "Mongo",
                               "MySQL", "redis", "TCP", "tls", "UDP"}) {
    ++number;
    yaml += "  - {number: " + std::to_string(number) + ", name: p" + std::to_string(number) +
            ", protocol: " + protocol + "}\n";
  }
  const MeshLoadResult result = LoadMeshFromString(yaml, "protocols.yaml", {});
  EXPECT_EQ(result.errors, Lines{});
  ASSERT_NE(result.table, nullptr);
  EXPECT_EQ(result.table->clusters().size(), 12u);
}

TEST(MeshLoaderTest, EmptyInputsGiveAnEmptyTableWithAWarning) {
  for (const char* yaml : {"", "# only a comment\n", "---\n---\n"}) {
    const MeshLoadResult result = LoadMeshFromString(yaml, "empty.yaml", {});
    EXPECT_EQ(result.errors, Lines{});
    EXPECT_EQ(result.warnings,
              Lines{"no services found (ServiceEntry or Kubernetes Service with ports): every "
                    "connection will miss (unknown_host)"});
    ASSERT_NE(result.table, nullptr);
    EXPECT_TRUE(result.table->clusters().empty());
  }
}

TEST(MeshLoaderTest, HostThatARewriteChangesIsNeverRoutedWarning) {
  // The client-side entry from the walkthrough (host *.global), deployed at the gateway.
  const std::string yaml =
      "apiVersion: networking.istio.io/v1alpha3\nkind: ServiceEntry\n"
      "metadata: {name: httpbin-bar, namespace: foo}\nspec:\n"
      "  hosts:\n  - httpbin.bar.global\n"
      "  ports: [{number: 8000, name: http1, protocol: http}]\n"
      "  resolution: STATIC\n  endpoints: [{address: 192.0.2.1}]\n";
  const MeshLoadResult result = LoadMeshFromString(yaml, "client-side.yaml", kDefaultRewrites);
  EXPECT_EQ(result.errors, Lines{});
  EXPECT_EQ(
      result.warnings,
      (Lines{"client-side.yaml:6:5: ServiceEntry foo/httpbin-bar: spec.hosts[0]: host "
             "\"httpbin.bar.global\" is never routed: SNI rewrite .global -> "
             ".svc.cluster.local turns it into \"httpbin.bar.svc.cluster.local\" before lookup",
             kNoLabelsWarning}));
  ASSERT_NE(result.table, nullptr);
  EXPECT_EQ(result.table->Route("outbound_.8000_._.httpbin.bar.global").miss,
            RouteMiss::kUnknownHost);
  // Without that rewrite rule the same entry is fine.
  EXPECT_EQ(LoadMeshFromString(yaml, "client-side.yaml", {}).warnings, Lines{kNoLabelsWarning});
}

// --- The Istio samples as shipped (more with fixtures in istio_samples_test.cc) ------

TEST(MeshLoaderIstioSamplesTest, HttpbinServiceLoadsAndRoutes) {
  const MeshLoadResult result = Load({"istio/httpbin.yaml", "mesh/gateway/eastwest-gateway.yaml"});
  EXPECT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings,
            (Lines{At("istio/httpbin.yaml", 4, 1,
                      "ignoring ServiceAccount default/httpbin (v1: not used by meshgate)"),
                   At("istio/httpbin.yaml", 23, 1,
                      "ignoring Deployment default/httpbin (apps/v1: not used by meshgate)"),
                   At("istio/httpbin.yaml", 9, 1,
                      "Service default/httpbin: no EndpointSlice, Endpoints or Pods for this "
                      "Service were loaded: its clusters have no endpoints")}));
  ASSERT_NE(result.table, nullptr);
  ASSERT_EQ(result.table->clusters().size(), 1u);
  const RouteResult route = result.table->Route("outbound_.8000_._.httpbin.default.global");
  ASSERT_EQ(route.miss, RouteMiss::kNone);
  EXPECT_EQ(route.cluster->name, "outbound|8000||httpbin.default.svc.cluster.local");
  EXPECT_EQ(route.cluster->source, Data("istio/httpbin.yaml") + ":9 Service default/httpbin");
  EXPECT_TRUE(route.cluster->endpoints.empty());  // nothing to dial until endpoints are loaded
}

TEST(MeshLoaderIstioSamplesTest, DnsServiceEntryKeepsItsHostForTheResolver) {
  const MeshLoadResult result = Load({"istio/egress-rule-google-apis.yaml"});
  EXPECT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings, Lines{kNoGatewayWarning});
  ASSERT_NE(result.table, nullptr);
  // MESH_EXTERNAL: never exported, but kept for the resolver and --check.
  const Cluster* found = result.table->Find("www.googleapis.com", 443, "");
  ASSERT_NE(found, nullptr);
  const Cluster& cluster = *found;
  EXPECT_EQ(cluster.resolution, Resolution::kDns);
  EXPECT_TRUE(cluster.endpoints.empty());  // no IP until resolved
  ASSERT_EQ(cluster.dns_endpoints.size(), 1u);
  EXPECT_EQ(cluster.dns_endpoints[0].hostname(), "www.googleapis.com");
  EXPECT_EQ(cluster.dns_endpoints[0].address, "");
  EXPECT_EQ(cluster.dns_endpoints[0].port, 443);
}

TEST(MeshLoaderIstioSamplesTest, WholeDirectory) {
  const MeshLoadResult result = Load({"istio"});
  EXPECT_EQ(result.errors, Lines{});
  ASSERT_NE(result.table, nullptr);
  EXPECT_EQ(result.resources_loaded, 7u);  // 4 rules, 1 Gateway, 1 ServiceEntry, 1 Service
  // The Gateway exports *.local: httpbin's local name, not www.googleapis.com.
  EXPECT_EQ(result.warnings.back(),
            "1 host is not exported by any Gateway on port 15443 and will be refused "
            "(not_exported): www.googleapis.com (MESH_EXTERNAL: Istio's gateway never exports "
            "a mesh-external ServiceEntry)");
  EXPECT_EQ(result.table->Route("outbound_.8000_._.httpbin.default.global").miss,
            RouteMiss::kNone);
  EXPECT_EQ(result.table->Route("outbound_.443_._.www.googleapis.com").miss,
            RouteMiss::kNotExported);
}

// --- Errors ---------------------------------------------------------------------------

TEST(MeshLoaderErrorTest, ResourceLevel) {
  const std::string f = "mesh/bad/resources.yaml";
  const MeshLoadResult result = Load({f});
  EXPECT_EQ(
      result.errors,
      (Lines{
          At(f, 2, 13,
             "ServiceEntry default/old-api: apiVersion: unsupported apiVersion "
             "\"networking.istio.io/v1alpha2\" for ServiceEntry (one of: "
             "networking.istio.io/v1alpha3, networking.istio.io/v1beta1, networking.istio.io/v1)"),
          At(f, 14, 1, "ServiceEntry foo/<unnamed>: metadata.name: required"),
          At(f, 22, 1, "expected a Kubernetes resource (a map with apiVersion and kind), got a list"),
          At(f, 25, 1, "kind: required"),
          At(f, 40, 13, "ServiceEntry foo/extra-fields: spec.exportTo: must be a list, got a string"),
          At(f, 43, 1, "ServiceEntry default/no-spec: spec: required"),
          At(f, 52, 7, "ServiceEntry default/spec-list: spec: must be a map, got a list"),
          At(f, 56, 8, "List: items: must be a list, got a map"),
      }));
  // Istio adds fields over time: unknown ones are warnings, not errors.
  EXPECT_EQ(result.warnings,
            (Lines{At(f, 39, 3,
                      "ServiceEntry foo/extra-fields: spec.selector: unknown field, ignored (known: "
                      "hosts, addresses, ports, location, resolution, endpoints, workloadSelector, "
                      "exportTo, subjectAltNames)"),
                   At(f, 41, 1,
                      "ServiceEntry foo/extra-fields: sepc: unknown field, ignored (known: "
                      "apiVersion, kind, metadata, spec, status)")}));
  EXPECT_EQ(result.table, nullptr);
  EXPECT_EQ(result.resources_loaded, 0u);
}

TEST(MeshLoaderErrorTest, Hosts) {
  const std::string f = "mesh/bad/hosts.yaml";
  const std::string se = "ServiceEntry bar/bad-hosts: ";
  EXPECT_EQ(Load({f}).errors,
            (Lines{
                At(f, 6, 5,
                   se + "spec.hosts[0]: \"*\" would match every host; name a domain, as in "
                        "\"*.example.com\""),
                At(f, 7, 5,
                   se + "spec.hosts[1]: \"foo_bar.example.com\" is not a valid host name: label "
                        "\"foo_bar\" has invalid character '_'"),
                At(f, 8, 5,
                   se + "spec.hosts[2]: \"-leading.example.com\" is not a valid host name: label "
                        "\"-leading\" starts or ends with '-'"),
                At(f, 9, 5, se + "spec.hosts[3]: \"a..b\" is not a valid host name: empty label"),
                At(f, 11, 5, se + "spec.hosts[5]: duplicate host \"ok.example.com\""),
                At(f, 12, 5, se + "spec.hosts[6]: must be a string, got a map"),
                At(f, 20, 1, "ServiceEntry bar/no-hosts: spec.hosts: required"),
                At(f, 29, 3, "ServiceEntry bar/empty-hosts: spec.hosts: must list at least one host"),
                At(f, 38, 10, "ServiceEntry bar/map-hosts: spec.hosts: must be a list, got a map"),
            }));
}

TEST(MeshLoaderErrorTest, Ports) {
  const std::string f = "mesh/bad/ports.yaml";
  const std::string se = "ServiceEntry bar/bad-ports: ";
  const MeshLoadResult result = Load({f});
  EXPECT_EQ(
      result.errors,
      (Lines{
          At(f, 9, 5, se + "spec.ports[0].number: required"),
          At(f, 10, 14, se + "spec.ports[1].number: must be 1..65535, got 0"),
          At(f, 11, 14, se + "spec.ports[2].number: must be 1..65535, got 70000"),
          At(f, 12, 14, se + "spec.ports[3].number: must be an integer, got the string \"8000\""),
          At(f, 13, 14, se + "spec.ports[4].number: must be an integer, got \"80a\""),
          At(f, 14, 14, se + "spec.ports[5].number: must be an integer, got a list"),
          At(f, 15, 5, se + "spec.ports[6].name: required"),
          At(f, 16, 24,
             se + "spec.ports[7].name: \"Upper_Case\" is not a valid port name (lowercase "
                  "letters, digits and '-', at most 63 characters)"),
          At(f, 18, 24,
             se + "spec.ports[9].name: port name \"dup\" is already used by spec.ports[8]"),
          At(f, 19, 14, se + "spec.ports[10].number: port 84 is already defined by spec.ports[8]"),
          At(f, 20, 41,
             se + "spec.ports[11].protocol: unknown protocol \"QUIC\" (one of: HTTP, HTTPS, "
                  "GRPC, GRPC-WEB, HTTP2, HTTP_PROXY, MONGO, MYSQL, REDIS, TCP, TLS, UDP)"),
          // spec.ports[12] has no protocol: Istio sniffs it, so that's fine.
          At(f, 22, 59, se + "spec.ports[13].targetPort: must be 1..65535, got 0"),
          // The endpoint's unknown port name isn't checked against a half-read port list.
          At(f, 37, 10, "ServiceEntry bar/ports-map: spec.ports: must be a list, got a map"),
          At(f, 46, 1, "ServiceEntry bar/no-ports: spec.ports: required"),
      }));
  EXPECT_EQ(result.warnings,
            Lines{At(f, 23, 46,
                     se + "spec.ports[14].nodePort: unknown field, ignored (known: number, "
                          "protocol, name, targetPort)")});
}

TEST(MeshLoaderErrorTest, Endpoints) {
  const std::string f = "mesh/bad/endpoints.yaml";
  const std::string se = "ServiceEntry bar/bad-endpoints: ";
  const MeshLoadResult result = Load({f});
  EXPECT_EQ(
      result.errors,
      (Lines{
          At(f, 12, 14,
             se + "spec.endpoints[0].address: \"not-an-ip\" is not an IP address "
                  "(resolution STATIC needs IP endpoints)"),
          At(f, 13, 14,
             se + "spec.endpoints[1].address: \"unix:///var/run/httpbin.sock\": unix domain "
                  "socket endpoints are not supported (meshgate dials TCP to IP endpoints)"),
          At(f, 14, 14,
             se + "spec.endpoints[2].address: \"[fd00::1]\" is not an IP address "
                  "(resolution STATIC needs IP endpoints)"),
          At(f, 15, 14,
             se + "spec.endpoints[3].address: \"10.0.0.256\" is not an IP address "
                  "(resolution STATIC needs IP endpoints)"),
          At(f, 16, 5, se + "spec.endpoints[4].address: required"),
          At(f, 18, 13,
             se + "spec.endpoints[5].ports.http2: no port named \"http2\" in spec.ports "
                  "(have: http1)"),
          At(f, 18, 31, se + "spec.endpoints[5].ports.http1: must be 1..65535, got 65536"),
          At(f, 20, 23, se + "spec.endpoints[6].labels.version: must be a string, got a map"),
          At(f, 20, 43, se + "spec.endpoints[6].labels.app: must be a string, got null"),
          At(f, 22, 13, se + "spec.endpoints[7].weight: must be 0..4294967295, got -1"),
          At(f, 24, 13, se + "spec.endpoints[8].weight: must be an integer, got \"1.5\""),
          At(f, 26, 13, se + "spec.endpoints[9].weight: must be 0..4294967295, got 4294967296"),
          At(f, 29, 14, se + "spec.endpoints[10].network: must be a string, got a list"),
          At(f, 30, 5, se + "spec.endpoints[11]: must be a map, got a string"),
          At(f, 37, 1,
             "ServiceEntry bar/no-endpoints: spec.endpoints: required for resolution STATIC "
             "(at least one IP endpoint, or a workloadSelector)"),
          At(f, 51, 14, "ServiceEntry bar/endpoints-map: spec.endpoints: must be a list, got a map"),
          At(f, 62, 3,
             "ServiceEntry bar/heavy: spec.endpoints: total weight 4294967296 exceeds 4294967295"),
      }));
  EXPECT_EQ(result.warnings,
            Lines{At(f, 28, 5,
                     se + "spec.endpoints[10].priority: unknown field, ignored (known: address, "
                          "ports, labels, network, locality, weight, serviceAccount)")});
}

TEST(MeshLoaderErrorTest, Resolution) {
  const std::string f = "mesh/bad/resolution.yaml";
  const std::string none_advice =
      "can't be served by a passthrough gateway: it has no endpoints to dial; use STATIC with IP "
      "endpoints, or DNS";
  // dns, dns-rr and selector (STATIC with a workloadSelector) are valid.
  EXPECT_EQ(Load({f}).errors,
            (Lines{
                At(f, 24, 15, "ServiceEntry bar/none: spec.resolution: resolution NONE " + none_advice),
                At(f, 29, 1,
                   "ServiceEntry bar/unset: spec.resolution: resolution NONE (the default when "
                   "unset) " +
                       none_advice),
                // No second error about its endpoints: the resolution is unknown.
                At(f, 39, 15,
                   "ServiceEntry bar/lowercase: spec.resolution: unknown resolution \"static\" "
                   "(one of: NONE, STATIC, DNS, DNS_ROUND_ROBIN)"),
            }));
}

TEST(MeshLoaderErrorTest, YamlSyntaxErrorHasFileLineAndColumn) {
  const MeshLoadResult result = Load({"mesh/bad/syntax.yaml"});
  EXPECT_EQ(result.errors,
            Lines{At("mesh/bad/syntax.yaml", 11, 5, "YAML syntax error: did not find expected ',' or '}' (while parsing a flow mapping started at 10:11)")});
  EXPECT_EQ(result.table, nullptr);
}

TEST(MeshLoaderErrorTest, StrayCommaIsASyntaxErrorNotAHang) {
  const MeshLoadResult result = Load({"mesh/bad/stray-comma.yaml"});
  EXPECT_EQ(result.errors,
            Lines{At("mesh/bad/stray-comma.yaml", 6, 1,
                     "YAML syntax error: did not find expected node content (while parsing a block node)")});
  EXPECT_EQ(LoadMeshFromString("!a, x\n", "inline.yaml", {}).errors,
            Lines{"inline.yaml:1:3: YAML syntax error: did not find expected whitespace or line break "
                  "(while scanning a tag started at 1:1)"});
}

TEST(MeshLoaderErrorTest, SameHostFromTwoNamespacesNamesBothSources) {
  const MeshLoadResult result = Load({"mesh/dup"});
  EXPECT_EQ(result.errors,
            Lines{At("mesh/dup/b.yaml", 10, 5,
                     "ServiceEntry baz/httpbin-b: spec.hosts[1]: host "
                     "\"httpbin.bar.svc.cluster.local\" is already defined in namespace foo by " +
                         Data("mesh/dup/a.yaml") +
                         ":1 ServiceEntry foo/httpbin-a (a host can come from one namespace "
                         "only)")});
  EXPECT_EQ(result.table, nullptr);
}

TEST(MeshLoaderErrorTest, SameFileTwiceIsADuplicateResource) {
  const MeshLoadResult result = Load({"mesh/httpbin-bar.yaml", "mesh/httpbin-bar.yaml"});
  EXPECT_EQ(result.errors,
            Lines{At("mesh/httpbin-bar.yaml", 7, 9,
                     "ServiceEntry foo/httpbin-bar: metadata.name: ServiceEntry foo/httpbin-bar is "
                     "already defined by " +
                         Data("mesh/httpbin-bar.yaml") + ":4 ServiceEntry foo/httpbin-bar")});
}

TEST(MeshLoaderErrorTest, ErrorsAreCollectedAcrossFilesAndGoodFilesDontSaveTheTable) {
  const MeshLoadResult result =
      Load({"mesh/httpbin-bar.yaml", "mesh/bad/hosts.yaml", "mesh/bad/syntax.yaml",
            "mesh/missing.yaml", "mesh/bad/resolution.yaml"});
  ASSERT_EQ(result.errors.size(), 9u + 1 + 1 + 3);
  EXPECT_EQ(result.errors[0], At("mesh/bad/hosts.yaml", 6, 5,
                                 "ServiceEntry bar/bad-hosts: spec.hosts[0]: \"*\" would match "
                                 "every host; name a domain, as in \"*.example.com\""));
  EXPECT_EQ(result.errors[9],
            At("mesh/bad/syntax.yaml", 11, 5, "YAML syntax error: did not find expected ',' or '}' (while parsing a flow mapping started at 10:11)"));
  EXPECT_EQ(result.errors[10], Data("mesh/missing.yaml") + ": no such file");
  EXPECT_EQ(result.errors[13], At("mesh/bad/resolution.yaml", 39, 15,
                                  "ServiceEntry bar/lowercase: spec.resolution: unknown resolution "
                                  "\"static\" (one of: NONE, STATIC, DNS, DNS_ROUND_ROBIN)"));
  EXPECT_EQ(result.table, nullptr);
  EXPECT_EQ(result.resources_loaded, 4u);  // httpbin-bar, dns, dns-rr, selector
  // Whole-mesh notes (Gateways, unused rules) aren't given for a mesh that failed.
  EXPECT_EQ(std::count(result.warnings.begin(), result.warnings.end(), kNoGatewayWarning), 0);
}

TEST(MeshLoaderErrorTest, InlineYaml) {
  // Duplicate keys, which YAML parsers silently resolve to one of them.
  const MeshLoadResult result = LoadMeshFromString(
      "apiVersion: networking.istio.io/v1\n"
      "kind: ServiceEntry\n"
      "metadata: {name: twice}\n"
      "spec:\n"
      "  hosts: [a.example.com]\n"
      "  ports: [{number: 80, name: http, protocol: HTTP}]\n"
      "  resolution: STATIC\n"
      "  resolution: DNS\n"
      "  endpoints: [{address: 192.0.2.1, labels: {a: b, a: c}}]\n",
      "inline.yaml", {});
  EXPECT_EQ(result.errors,
            (Lines{"inline.yaml:8:3: ServiceEntry default/twice: spec.resolution: duplicate key",
                   "inline.yaml:9:51: ServiceEntry default/twice: spec.endpoints[0].labels.a: "
                   "duplicate key"}));
}

TEST(MeshLoaderTest, DirectoryWithoutMeshFilesWarns) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / "meshgate-empty-mesh";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "notes.txt") << "not a mesh file\n";
  const MeshLoadResult result = LoadMesh({dir.string()}, {});
  EXPECT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings,
            (Lines{dir.string() + ": no *.yaml, *.yml or *.json files",
                   "no services found (ServiceEntry or Kubernetes Service with ports): every "
                   "connection will miss (unknown_host)"}));
  std::filesystem::remove_all(dir);
}

TEST(MeshLoaderTest, ExplicitFileIsReadWhateverItsExtension) {
  const MeshLoadResult result = Load({"mesh/dir/README.md"});
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].rfind(Data("mesh/dir/README.md") + ":3:1: YAML syntax error: could not find expected ':'", 0), 0u)
      << result.errors[0];
}

}  // namespace
}  // namespace meshgate::config

namespace meshgate::config {
namespace {

TEST(MeshLoaderTest, WildcardServiceEntryRoutesAnySubdomainAndGatewaysExportIt) {
  const std::string yaml =
      "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
      "metadata: {name: partner, namespace: default}\n"
      "spec:\n"
      "  hosts: [\"*.partner.example.com\"]\n"
      "  ports: [{number: 443, name: tls, protocol: TLS}]\n"
      "  resolution: STATIC\n"
      "  endpoints: [{address: 192.0.2.10}]\n"
      "---\n"
      "apiVersion: networking.istio.io/v1\nkind: Gateway\n"
      "metadata: {name: cross-network, namespace: istio-system}\n"
      "spec:\n"
      "  selector: {istio: eastwestgateway}\n"
      "  servers:\n"
      "  - port: {number: 15443, name: tls, protocol: TLS}\n"
      "    tls: {mode: AUTO_PASSTHROUGH}\n"
      "    hosts: [\"*.example.com\"]\n";
  const MeshLoadResult result =
      LoadMeshFromString(yaml, "wild.yaml", {}, testing::EastWest());
  ASSERT_EQ(result.errors, std::vector<std::string>{});
  ASSERT_NE(result.table, nullptr);
  const RouteResult hit = result.table->Route("outbound_.443_._.api.partner.example.com");
  ASSERT_NE(hit.cluster, nullptr) << ToString(hit.miss);
  EXPECT_EQ(hit.cluster->host, "*.partner.example.com");
  EXPECT_EQ(hit.cluster->endpoints.at(0).address, "192.0.2.10");
  EXPECT_EQ(result.table->Route("outbound_.443_._.partner.example.com").miss,
            RouteMiss::kUnknownHost);
}

}  // namespace
}  // namespace meshgate::config
