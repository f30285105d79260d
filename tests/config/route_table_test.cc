// RouteTable: SNI parsing, suffix rewrites, lookup and every miss reason.
#include "config/model/route_table.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace meshgate::config {
namespace {

const std::vector<SniRewrite> kDefaultRewrites = {{".global", ".svc.cluster.local"}};
// The plain-host SNI form is refused unless allowed (Istio matches only outbound_ names).
constexpr RouteOptions kPlainHost{.allow_plain_host = true};

Endpoint Ep(std::string address, uint16_t port, uint32_t weight = 1,
            std::map<std::string, std::string> labels = {}) {
  Endpoint endpoint;
  endpoint.address = std::move(address);
  endpoint.port = port;
  endpoint.weight = weight;
  endpoint.labels = std::move(labels);
  return endpoint;
}

Cluster MakeCluster(std::string host, uint16_t port, std::string subset = "") {
  Cluster cluster;
  cluster.host = std::move(host);
  cluster.port = port;
  cluster.subset = std::move(subset);
  cluster.source = "test";
  cluster.endpoints.push_back(Ep("10.0.0.1", 80));
  return cluster;
}

std::vector<Cluster> MeshClusters() {
  return {
      MakeCluster("httpbin.bar.svc.cluster.local", 8000),
      MakeCluster("reviews.default.svc.cluster.local", 9080),
      MakeCluster("reviews.default.svc.cluster.local", 9080, "v1"),
      MakeCluster("reviews.default.svc.cluster.local", 9443),
      // Only a subset, no whole-service cluster: the plain host form can't pick it.
      MakeCluster("ratings.default.svc.cluster.local", 9080, "v1"),
  };
}

class RouteTableTest : public ::testing::Test {
 protected:
  RouteTable table_{MeshClusters(), kDefaultRewrites};
};

// --- ParseSni ---------------------------------------------------------------

TEST(ParseSniTest, IstioFormWithoutSubset) {
  SniTarget target;
  ASSERT_TRUE(ParseSni("outbound_.8000_._.httpbin.bar.global", target));
  EXPECT_EQ(target.host, "httpbin.bar.global");
  EXPECT_EQ(target.port, 8000);
  EXPECT_EQ(target.subset, "");
}

TEST(ParseSniTest, IstioFormWithSubset) {
  SniTarget target;
  ASSERT_TRUE(ParseSni("outbound_.9080_.v1_.reviews.default.global", target));
  EXPECT_EQ(target.host, "reviews.default.global");
  EXPECT_EQ(target.port, 9080);
  EXPECT_EQ(target.subset, "v1");
}

TEST(ParseSniTest, PortBounds) {
  SniTarget target;
  ASSERT_TRUE(ParseSni("outbound_.1_._.a", target));
  EXPECT_EQ(target.port, 1);
  ASSERT_TRUE(ParseSni("outbound_.65535_._.a", target));
  EXPECT_EQ(target.port, 65535);
}

TEST(ParseSniTest, PlainHost) {
  SniTarget target;
  ASSERT_TRUE(ParseSni("httpbin.bar.global", target));
  EXPECT_EQ(target.host, "httpbin.bar.global");
  EXPECT_EQ(target.port, 0);
  EXPECT_EQ(target.subset, "");
  // Only "outbound_." starts the Istio form; anything else is a host name.
  ASSERT_TRUE(ParseSni("inbound_.8000_._.httpbin", target));
  EXPECT_EQ(target.host, "inbound_.8000_._.httpbin");
  EXPECT_EQ(target.port, 0);
  ASSERT_TRUE(ParseSni("outbound.8000_._.httpbin", target));
  EXPECT_EQ(target.port, 0);
}

TEST(ParseSniTest, PrefixIsCaseInsensitive) {
  SniTarget target;
  ASSERT_TRUE(ParseSni("OUTBOUND_.8000_._.Httpbin.Bar.Global", target));
  EXPECT_EQ(target.port, 8000);
  EXPECT_EQ(target.host, "Httpbin.Bar.Global");  // lowercased by Route(), not here
}

TEST(ParseSniTest, MalformedIstioForms) {
  for (const char* sni : {
           "outbound_.",                   // nothing after the prefix
           "outbound_.8000",               // no separators
           "outbound_.8000_.",             // no subset separator
           "outbound_.8000_.v1",           // no host separator
           "outbound_.8000_._.",           // empty host
           "outbound_._._.httpbin",        // empty port
           "outbound_.http_._.httpbin",    // non-numeric port
           "outbound_.-80_._.httpbin",     // signed port
           "outbound_.+80_._.httpbin",     // signed port
           "outbound_.0_._.httpbin",       // port 0
           "outbound_.65536_._.httpbin",   // out of range
           "outbound_.000080_._.httpbin",  // too many digits
           "outbound_.99999999999_._.h",   // overflow
       }) {
    SniTarget target;
    EXPECT_FALSE(ParseSni(sni, target)) << sni;
  }
}

// --- Route: hits ---------------------------------------------------------------

TEST_F(RouteTableTest, IstioFormRewritesGlobalToLocal) {
  const RouteResult result = table_.Route("outbound_.8000_._.httpbin.bar.global");
  ASSERT_EQ(result.miss, RouteMiss::kNone);
  ASSERT_NE(result.cluster, nullptr);
  EXPECT_EQ(result.cluster->name, "outbound|8000||httpbin.bar.svc.cluster.local");
  EXPECT_EQ(result.host, "httpbin.bar.svc.cluster.local");
}

TEST_F(RouteTableTest, IstioFormWithSubset) {
  const RouteResult result = table_.Route("outbound_.9080_.v1_.reviews.default.global");
  ASSERT_EQ(result.miss, RouteMiss::kNone);
  EXPECT_EQ(result.cluster->name, "outbound|9080|v1|reviews.default.svc.cluster.local");
  EXPECT_EQ(result.cluster->subset, "v1");
}

TEST_F(RouteTableTest, IstioFormForLocalHostNeedsNoRewrite) {
  const RouteResult result = table_.Route("outbound_.9443_._.reviews.default.svc.cluster.local");
  ASSERT_EQ(result.miss, RouteMiss::kNone);
  EXPECT_EQ(result.cluster->port, 9443);
}

TEST_F(RouteTableTest, PlainHostWithOnePort) {
  RouteResult result = table_.Route("httpbin.bar.global", kPlainHost);
  ASSERT_EQ(result.miss, RouteMiss::kNone);
  EXPECT_EQ(result.cluster->name, "outbound|8000||httpbin.bar.svc.cluster.local");
  result = table_.Route("httpbin.bar.svc.cluster.local", kPlainHost);
  ASSERT_EQ(result.miss, RouteMiss::kNone);
  EXPECT_EQ(result.cluster->port, 8000);
}

TEST_F(RouteTableTest, SniIsCaseInsensitive) {
  const RouteResult result = table_.Route("OUTBOUND_.9080_.V1_.Reviews.Default.GLOBAL");
  ASSERT_EQ(result.miss, RouteMiss::kNone);
  EXPECT_EQ(result.cluster->subset, "v1");
  EXPECT_EQ(result.host, "reviews.default.svc.cluster.local");
}

TEST_F(RouteTableTest, ClusterPointsIntoTable) {
  const RouteResult result = table_.Route("outbound_.9443_._.reviews.default.global");
  ASSERT_NE(result.cluster, nullptr);
  EXPECT_EQ(result.cluster, &table_.clusters()[result.cluster->id]);
}

// --- Route: every miss reason -------------------------------------------------------

TEST_F(RouteTableTest, NoSni) {
  const RouteResult result = table_.Route("");
  EXPECT_EQ(result.miss, RouteMiss::kNoSni);
  EXPECT_EQ(result.cluster, nullptr);
  EXPECT_EQ(result.host, "");
}

TEST_F(RouteTableTest, BadSni) {
  const RouteResult result = table_.Route("outbound_.80x_._.httpbin.bar.global");
  EXPECT_EQ(result.miss, RouteMiss::kBadSni);
  EXPECT_EQ(result.cluster, nullptr);
  EXPECT_EQ(result.host, "");
}

TEST_F(RouteTableTest, UnknownHostReportsRewrittenHost) {
  RouteResult result = table_.Route("outbound_.8000_._.nope.bar.global");
  EXPECT_EQ(result.miss, RouteMiss::kUnknownHost);
  EXPECT_EQ(result.cluster, nullptr);
  EXPECT_EQ(result.host, "nope.bar.svc.cluster.local");
  result = table_.Route("Nope.Example.COM", kPlainHost);
  EXPECT_EQ(result.miss, RouteMiss::kUnknownHost);
  EXPECT_EQ(result.host, "nope.example.com");
}

TEST_F(RouteTableTest, UnknownPort) {
  const RouteResult result = table_.Route("outbound_.9999_._.httpbin.bar.global");
  EXPECT_EQ(result.miss, RouteMiss::kUnknownPort);
  EXPECT_EQ(result.cluster, nullptr);
  EXPECT_EQ(result.host, "httpbin.bar.svc.cluster.local");
}

TEST_F(RouteTableTest, UnknownSubset) {
  RouteResult result = table_.Route("outbound_.9080_.v2_.reviews.default.global");
  EXPECT_EQ(result.miss, RouteMiss::kUnknownSubset);
  EXPECT_EQ(result.cluster, nullptr);
  // Subsets exist per port: v1 is defined on 9080 only.
  result = table_.Route("outbound_.9443_.v1_.reviews.default.global");
  EXPECT_EQ(result.miss, RouteMiss::kUnknownSubset);
  // The whole service when only subsets are defined.
  result = table_.Route("outbound_.9080_._.ratings.default.global");
  EXPECT_EQ(result.miss, RouteMiss::kUnknownSubset);
}

TEST_F(RouteTableTest, PlainHostWithSeveralPortsIsAmbiguous) {
  const RouteResult result = table_.Route("reviews.default.global", kPlainHost);
  EXPECT_EQ(result.miss, RouteMiss::kAmbiguousPort);
  EXPECT_EQ(result.cluster, nullptr);
  EXPECT_EQ(result.host, "reviews.default.svc.cluster.local");
}

TEST_F(RouteTableTest, PlainHostWithOnlySubsetsHasNoWholeService) {
  EXPECT_EQ(table_.Route("ratings.default.global", kPlainHost).miss, RouteMiss::kUnknownSubset);
}

// --- Rewrites -------------------------------------------------------------------

TEST(RouteRewriteTest, SuffixMatchesOnlyAtLabelBoundary) {
  const RouteTable table({}, kDefaultRewrites);
  EXPECT_EQ(table.Route("a.global", kPlainHost).host, "a.svc.cluster.local");
  EXPECT_EQ(table.Route("a.b.c.global", kPlainHost).host, "a.b.c.svc.cluster.local");
  EXPECT_EQ(table.Route("aglobal", kPlainHost).host, "aglobal");
  EXPECT_EQ(table.Route("a.xglobal", kPlainHost).host, "a.xglobal");
  EXPECT_EQ(table.Route("global", kPlainHost).host, "global");    // the suffix without its dot
  EXPECT_EQ(table.Route(".global", kPlainHost).host, ".global");  // nothing before the suffix
  EXPECT_EQ(table.Route("a.global.com", kPlainHost).host, "a.global.com");
  EXPECT_EQ(table.Route("A.GLOBAL", kPlainHost).host, "a.svc.cluster.local");
}

TEST(RouteRewriteTest, NoRewritesLooksUpTheHostAsIs) {
  const RouteTable table({MakeCluster("httpbin.bar.svc.cluster.local", 8000)}, {});
  const RouteResult result = table.Route("outbound_.8000_._.httpbin.bar.global");
  EXPECT_EQ(result.miss, RouteMiss::kUnknownHost);
  EXPECT_EQ(result.host, "httpbin.bar.global");
  EXPECT_EQ(table.Route("outbound_.8000_._.httpbin.bar.svc.cluster.local").miss, RouteMiss::kNone);
}

TEST(RouteRewriteTest, CustomRulesFirstMatchWinsAndRulesDontChain) {
  const RouteTable table(
      {MakeCluster("httpbin.bar.svc.cluster.local", 8000), MakeCluster("httpbin.bar.mesh", 8000)},
      {{".Bar.Global", ".bar.mesh"},  // rules are normalised to lowercase
       {".global", ".svc.cluster.local"},
       {".mesh", ".svc.cluster.local"},
       {".lan", ""}});
  ASSERT_EQ(table.rewrites().size(), 4u);
  EXPECT_EQ(table.rewrites()[0].from, ".bar.global");
  // The first rule wins over the broader ".global", and its output isn't rewritten again.
  RouteResult result = table.Route("outbound_.8000_._.httpbin.bar.global");
  ASSERT_EQ(result.miss, RouteMiss::kNone);
  EXPECT_EQ(result.cluster->host, "httpbin.bar.mesh");
  EXPECT_EQ(table.Route("httpbin.foo.global", kPlainHost).host, "httpbin.foo.svc.cluster.local");
  result = table.Route("httpbin.bar.mesh", kPlainHost);
  ASSERT_EQ(result.miss, RouteMiss::kNone);
  EXPECT_EQ(result.host, "httpbin.bar.svc.cluster.local");
  EXPECT_EQ(table.Route("printer.lan", kPlainHost).host, "printer");  // empty "to" strips the suffix
}

// --- Table construction, Find, Describe, ToString -----------------------------------

TEST(RouteTableBuildTest, NormalisesIdsNamesAndHosts) {
  std::vector<Cluster> clusters = {MakeCluster("A.Example.com", 443),
                                   MakeCluster("b.example.com", 80, "v1")};
  clusters[0].id = 7;
  clusters[1].name = "custom";
  const RouteTable table(std::move(clusters), {});
  ASSERT_EQ(table.clusters().size(), 2u);
  EXPECT_EQ(table.clusters()[0].id, 0u);
  EXPECT_EQ(table.clusters()[0].host, "a.example.com");
  EXPECT_EQ(table.clusters()[0].name, "outbound|443||a.example.com");
  EXPECT_EQ(table.clusters()[1].id, 1u);
  EXPECT_EQ(table.clusters()[1].name, "custom");
}

TEST(RouteTableBuildTest, DuplicateClusterIsAProgrammingError) {
  EXPECT_THROW(RouteTable({MakeCluster("a.example.com", 80), MakeCluster("a.example.com", 80)}, {}),
               std::invalid_argument);
}

TEST_F(RouteTableTest, Find) {
  const Cluster* cluster = table_.Find("reviews.default.svc.cluster.local", 9080, "v1");
  ASSERT_NE(cluster, nullptr);
  EXPECT_EQ(cluster->name, "outbound|9080|v1|reviews.default.svc.cluster.local");
  EXPECT_EQ(table_.Find("reviews.default.svc.cluster.local", 9080, "")->subset, "");
  EXPECT_EQ(table_.Find("reviews.default.svc.cluster.local", 9080, "v2"), nullptr);
  EXPECT_EQ(table_.Find("reviews.default.svc.cluster.local", 1, ""), nullptr);
  EXPECT_EQ(table_.Find("reviews.default.global", 9080, ""), nullptr);  // no rewriting here
}

TEST(RouteTableDescribeTest, ListsRewritesClustersAndEndpoints) {
  Cluster cluster;
  cluster.host = "httpbin.bar.svc.cluster.local";
  cluster.port = 8000;
  cluster.source = "mesh/httpbin.yaml:4 ServiceEntry foo/httpbin-bar";
  cluster.endpoints = {Ep("10.1.0.11", 80, 3, {{"version", "v1"}, {"app", "httpbin"}}),
                       Ep("fd00::12", 8080)};
  Cluster empty;
  empty.host = "empty.example.com";
  empty.port = 443;
  empty.subset = "v1";
  empty.source = "test";
  const RouteTable table({cluster, empty}, kDefaultRewrites);
  EXPECT_EQ(table.Describe(),
            "route table: 2 clusters, 1 SNI rewrite\n"
            "sni rewrite: *.global -> *.svc.cluster.local\n"
            "selected by Gateways: none\n"
            "network: (unset)\n"
            "network view: all networks\n"
            "cluster 0: outbound|8000||httpbin.bar.svc.cluster.local\n"
            "  source: mesh/httpbin.yaml:4 ServiceEntry foo/httpbin-bar\n"
            "  endpoint 10.1.0.11:80 weight 3 {app=httpbin, version=v1} network=(unset) in view\n"
            "  endpoint [fd00::12]:8080 weight 1 network=(unset) in view\n"
            "cluster 1: outbound|443|v1|empty.example.com\n"
            "  source: test\n"
            "  subset v1: (all endpoints)\n"
            "  (no endpoints)\n");
}

TEST(RouteTableDescribeTest, ShowsSubsetsPolicyDnsReadinessAndExport) {
  Cluster cluster;
  cluster.host = "reviews.default.svc.cluster.local";
  cluster.port = 9080;
  cluster.subset = "v2";
  cluster.source = "k8s.yaml:1 Service default/reviews";
  cluster.subset_labels = {{"version", "v2"}};
  cluster.exported = false;
  cluster.export_detail = "no Gateway host matches";
  Endpoint ready = Ep("10.0.0.2", 9080, 1, {{"version", "v2"}});
  ready.set_network("net1");
  ready.set_locality("eu/zone-a");
  ready.set_service_account("reviews");
  Endpoint not_ready = Ep("10.0.0.3", 9080, 1, {{"version", "v2"}});
  not_ready.ready = false;
  cluster.endpoints = {ready, not_ready};
  Endpoint remote = Ep("10.9.0.1", 9080);
  remote.set_network("net3");
  remote.set_workload({.name = "reviews-v2", .ns = "default"});
  cluster.out_of_view = {remote};
  cluster.policy.load_balancer.emplace().simple = LoadBalancerPolicy::Simple::kLeastRequest;
  cluster.policy.connection_pool.emplace().max_connections = 100;
  cluster.policy.connection_pool->connect_timeout = std::chrono::milliseconds(30);
  cluster.policy.outlier_detection.emplace().consecutive_5xx_errors = 7;
  cluster.policy_source = "dr.yaml:1 DestinationRule default/reviews";

  Cluster dns;
  dns.host = "api.example.com";
  dns.port = 443;
  dns.source = "se.yaml:1 ServiceEntry default/api";
  dns.resolution = Resolution::kDnsRoundRobin;
  Endpoint name;
  name.set_hostname("api.example.com");
  name.port = 443;
  dns.dns_endpoints = {name};
  ConsistentHashLb hash;
  hash.algorithm = ConsistentHashLb::Algorithm::kMaglev;
  dns.policy.load_balancer.emplace().consistent_hash = hash;
  dns.policy_source = "dr.yaml:9 DestinationRule default/api";

  GatewayView view;
  view.gateways = {"istio-system/cross-network-gateway", "default/other"};
  view.network = "net1";
  view.network_view = {"net1", "net2"};
  EXPECT_EQ(RouteTable({cluster, dns}, {}, view).Describe(),
            "route table: 2 clusters, 0 SNI rewrites\n"
            "selected by Gateways: istio-system/cross-network-gateway, default/other\n"
            "network: net1\n"
            "network view: net1, net2 and endpoints without a network\n"
            "cluster 0: outbound|9080|v2|reviews.default.svc.cluster.local\n"
            "  source: k8s.yaml:1 Service default/reviews\n"
            "  not exported: no Gateway host matches: refused\n"
            "  subset v2: version=v2\n"
            "  policy: loadBalancer.simple=LEAST_REQUEST connectionPool.tcp(maxConnections=100 "
            "connectTimeout=30ms) outlierDetection(consecutive5xxErrors=7 interval=10s "
            "baseEjectionTime=30s maxEjectionPercent=10 minHealthPercent=0)\n"
            "  policy source: dr.yaml:1 DestinationRule default/reviews\n"
            "  endpoint 10.0.0.2:9080 weight 1 {version=v2} network=net1 locality=eu/zone-a "
            "serviceAccount=reviews in view\n"
            "  endpoint 10.0.0.3:9080 weight 1 {version=v2} network=(unset) NOT READY in view\n"
            "  endpoint 10.9.0.1:9080 weight 1 network=net3 workload=default/reviews-v2 out of view\n"
            "cluster 1: outbound|443||api.example.com\n"
            "  source: se.yaml:1 ServiceEntry default/api\n"
            "  resolution: DNS_ROUND_ROBIN\n"
            "  policy: loadBalancer.consistentHash(useSourceIp maglev.tableSize=65537)\n"
            "  policy source: dr.yaml:9 DestinationRule default/api\n"
            "  dns endpoint api.example.com:443 weight 1 network=(unset) in view\n");
}

// --- Gateway exports ----------------------------------------------------------------

TEST(RouteExportTest, UnexportedHostIsRefusedAndCounted) {
  std::vector<Cluster> clusters = MeshClusters();
  for (Cluster& cluster : clusters) {
    cluster.exported = cluster.host != "reviews.default.svc.cluster.local";
  }
  const RouteTable table(std::move(clusters), kDefaultRewrites);
  RouteResult result = table.Route("outbound_.9080_.v1_.reviews.default.global");
  EXPECT_EQ(result.miss, RouteMiss::kNotExported);
  EXPECT_EQ(result.cluster, nullptr);
  EXPECT_EQ(result.host, "reviews.default.svc.cluster.local");
  EXPECT_EQ(table.Route("reviews.default.global", kPlainHost).miss, RouteMiss::kNotExported);
  // Other hosts are unaffected; unknown hosts stay unknown.
  EXPECT_EQ(table.Route("outbound_.8000_._.httpbin.bar.global").miss, RouteMiss::kNone);
  EXPECT_EQ(table.Route("outbound_.8000_._.nope.bar.global").miss, RouteMiss::kUnknownHost);
  // Find() is a lookup, not a routing decision: it still finds the cluster.
  EXPECT_NE(table.Find("reviews.default.svc.cluster.local", 9080, "v1"), nullptr);
}

TEST(RouteExportTest, ClusterWithOnlyDnsEndpointsRoutesWithNoIps) {
  Cluster cluster;
  cluster.host = "api.example.com";
  cluster.port = 443;
  cluster.resolution = Resolution::kDns;
  Endpoint name;
  name.set_hostname("api.example.com");
  name.port = 443;
  cluster.dns_endpoints = {name};
  const RouteTable table({cluster}, {});
  const RouteResult result = table.Route("api.example.com", kPlainHost);
  ASSERT_EQ(result.miss, RouteMiss::kNone);
  EXPECT_TRUE(result.cluster->endpoints.empty());
  EXPECT_EQ(result.cluster->dns_endpoints.size(), 1u);
}

TEST(RouteTableDescribeTest, EmptyTable) {
  EXPECT_EQ(RouteTable({}, {}).Describe(),
            "route table: 0 clusters, 0 SNI rewrites\nselected by Gateways: none\n"
            "network: (unset)\nnetwork view: all networks\n");
}

TEST(RouteTableDescribeTest, ClosedGatewaySaysWhyFirst) {
  GatewayView view;
  view.closed_reason = "no Gateway selecting this gateway (labels: istio=eastwestgateway) has a "
                       "tls.mode AUTO_PASSTHROUGH server on port 15443: nothing is served";
  EXPECT_EQ(RouteTable({}, {}, view).Describe(),
            "route table: 0 clusters, 0 SNI rewrites\nclosed: " + view.closed_reason +
                "\nselected by Gateways: none\nnetwork: (unset)\nnetwork view: all networks\n");
}

TEST(RouteExportTest, UnexportedPortOfAnExportedHostIsRefused) {
  // A UDP port of an exported host: pilot builtAutoPassthroughFilterChains skips it.
  std::vector<Cluster> clusters = {MakeCluster("dns.example.com", 53),
                                   MakeCluster("dns.example.com", 5353)};
  clusters[0].exported = false;
  clusters[0].export_detail = "UDP port: Istio's gateway never exports UDP";
  const RouteTable table(std::move(clusters), {});
  EXPECT_EQ(table.Route("outbound_.53_._.dns.example.com").miss, RouteMiss::kNotExported);
  EXPECT_EQ(table.Route("outbound_.5353_._.dns.example.com").miss, RouteMiss::kNone);
}

TEST(RouteMissTest, ToStringCoversEveryValue) {
  EXPECT_EQ(ToString(RouteMiss::kNone), "none");
  EXPECT_EQ(ToString(RouteMiss::kNoSni), "no_sni");
  EXPECT_EQ(ToString(RouteMiss::kBadSni), "bad_sni");
  EXPECT_EQ(ToString(RouteMiss::kUnknownHost), "unknown_host");
  EXPECT_EQ(ToString(RouteMiss::kUnknownPort), "unknown_port");
  EXPECT_EQ(ToString(RouteMiss::kUnknownSubset), "unknown_subset");
  EXPECT_EQ(ToString(RouteMiss::kAmbiguousPort), "ambiguous_port");
  EXPECT_EQ(ToString(RouteMiss::kNotExported), "not_exported");
  EXPECT_EQ(ToString(RouteMiss::kPlainHostSni), "plain_host_sni");
  EXPECT_EQ(kRouteMissCount, 9u);
  EXPECT_EQ(static_cast<size_t>(RouteMiss::kPlainHostSni) + 1, kRouteMissCount);
}

}  // namespace
}  // namespace meshgate::config

namespace meshgate::config {
namespace {

// --- wildcard hosts ------------------------------------------------------------

class WildcardRouteTest : public ::testing::Test {
 protected:
  RouteTable table_{{MakeCluster("*.example.com", 443), MakeCluster("*.api.example.com", 443),
                     MakeCluster("exact.api.example.com", 443)},
                    {}};
  std::string HostOf(std::string_view sni) {
    const RouteResult result = table_.Route(sni, kPlainHost);
    return result.cluster != nullptr ? result.cluster->host
                                     : "miss:" + std::string(ToString(result.miss));
  }
};

TEST_F(WildcardRouteTest, MostSpecificMatchWinsAndExactBeatsWildcard) {
  EXPECT_EQ(HostOf("www.example.com"), "*.example.com");
  EXPECT_EQ(HostOf("a.b.example.com"), "*.example.com");  // Istio: any depth
  EXPECT_EQ(HostOf("v1.api.example.com"), "*.api.example.com");
  EXPECT_EQ(HostOf("x.v1.api.example.com"), "*.api.example.com");
  EXPECT_EQ(HostOf("exact.api.example.com"), "exact.api.example.com");
  EXPECT_EQ(HostOf("outbound_.443_._.WWW.Example.com"), "*.example.com");
}

TEST_F(WildcardRouteTest, TheBareDomainAndOtherDomainsMiss) {
  EXPECT_EQ(HostOf("example.com"), "miss:unknown_host");
  EXPECT_EQ(HostOf("wwwexample.com"), "miss:unknown_host");
  EXPECT_EQ(HostOf("www.example.org"), "miss:unknown_host");
  EXPECT_EQ(HostOf("outbound_.8443_._.www.example.com"), "miss:unknown_port");
}

// Found by route_fuzz (tests/data/fuzz-regressions/route_fuzz/): a name that
// is only the wildcard's suffix has no label for the '*' to cover.
TEST_F(WildcardRouteTest, AnEmptyLabelIsNoWildcardMatch) {
  EXPECT_EQ(HostOf(".example.com"), "miss:unknown_host");
  EXPECT_EQ(HostOf("outbound_.443_._..example.com"), "miss:unknown_host");
  EXPECT_EQ(HostOf(".api.example.com"), "*.example.com");  // "api" is the label '*' covers
}

TEST_F(WildcardRouteTest, ExactFindDoesNotExpandWildcards) {
  EXPECT_NE(table_.Find("*.example.com", 443, ""), nullptr);
  EXPECT_EQ(table_.Find("www.example.com", 443, ""), nullptr);
}

}  // namespace
}  // namespace meshgate::config
