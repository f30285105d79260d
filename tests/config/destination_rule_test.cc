// DestinationRule: one table row per validation rule (exact messages), then
// host resolution, subsets, the Istio policy merge and merging rules.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/mesh/mesh_loader.h"
#include "tests/config/mesh_test_util.h"

namespace meshgate::config {
namespace {

using namespace std::chrono_literals;
using testing::kNoGatewayWarning;
using testing::Lines;
using testing::LoadYaml;
using Simple = LoadBalancerPolicy::Simple;

// A DestinationRule "bar/<name>" whose spec starts on line 5 of its document.
std::string Dr(const std::string& spec, const std::string& name = "dr") {
  return "apiVersion: networking.istio.io/v1\n"
         "kind: DestinationRule\n"
         "metadata: {name: " + name + ", namespace: bar}\n"
         "spec:\n" +
         spec;
}

// reviews.bar with two ports and one endpoint per version.
const std::string kReviews =
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
    "metadata: {name: reviews, namespace: bar}\n"
    "spec:\n"
    "  hosts: [reviews.bar.svc.cluster.local]\n"
    "  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9443, name: tls, protocol: TLS}]\n"
    "  resolution: STATIC\n"
    "  endpoints:\n"
    "  - {address: 10.0.0.1, labels: {version: v1}}\n"
    "  - {address: 10.0.0.2, labels: {version: v2}}\n"
    "  - {address: 10.0.0.3, labels: {version: v3}}\n"
    "---\n";  // 12 lines: a rule after it starts on line 13

struct RuleCase {
  std::string name;
  std::string spec;  // from line 5
  Lines errors;
};

std::ostream& operator<<(std::ostream& out, const RuleCase& c) { return out << c.name; }

class DestinationRuleRuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(DestinationRuleRuleTest, ExactMessage) {
  const MeshLoadResult result = LoadYaml(Dr(GetParam().spec));
  Lines expected;
  for (const std::string& e : GetParam().errors) expected.push_back("t.yaml:" + e);
  EXPECT_EQ(result.errors, expected);
  EXPECT_EQ(result.table, nullptr);
}

const std::string kDr = "DestinationRule bar/dr: ";
const std::string kLb = "  host: a\n  trafficPolicy:\n    loadBalancer:\n";  // lb fields at line 8

INSTANTIATE_TEST_SUITE_P(
    Istio, DestinationRuleRuleTest,
    ::testing::ValuesIn(std::vector<RuleCase>{
        {"HostRequired", "  subsets: [{name: v1}]\n", {"4:1: " + kDr + "spec.host: required"}},
        {"HostSyntax", "  host: \"a*.example.com\"\n",
         {"5:9: " + kDr +
          "spec.host: \"a*.example.com\" is not a valid host: '*' is allowed only as the whole "
          "first label, as in \"*.example.com\""}},
        {"SubsetNameRequired", "  host: a\n  subsets: [{labels: {version: v1}}]\n",
         {"6:13: " + kDr + "spec.subsets[0].name: required"}},
        {"SubsetNameSyntax", "  host: a\n  subsets: [{name: V1}]\n",
         {"6:20: " + kDr +
          "spec.subsets[0].name: \"V1\" is not a valid subset name (lowercase letters, digits "
          "and '-', at most 63 characters)"}},
        {"SubsetNamesUnique", "  host: a\n  subsets: [{name: v1}, {name: v1}]\n",
         {"6:32: " + kDr + "spec.subsets[1].name: subset name \"v1\" is already used by spec.subsets[0]"}},
        {"SubsetLabelSyntax", "  host: a\n  subsets: [{name: v1, labels: {version: \"v1 \"}}]\n",
         {"6:42: " + kDr +
          "spec.subsets[0].labels.version: label value \"v1 \" has invalid character ' '"}},
        {"PolicyNotEmpty", "  host: a\n  trafficPolicy: {}\n",
         {"6:18: " + kDr + "spec.trafficPolicy: must set at least one field"}},
        {"SimpleKnown", kLb + "      simple: FASTEST\n",
         {"8:15: " + kDr +
          "spec.trafficPolicy.loadBalancer.simple: unknown load balancer \"FASTEST\" (one of: "
          "UNSPECIFIED, ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN, RANDOM, PASSTHROUGH)"}},
        {"SimpleOrConsistentHash",
         kLb + "      simple: RANDOM\n      consistentHash: {useSourceIp: true}\n",
         {"8:7: " + kDr +
          "spec.trafficPolicy.loadBalancer: only one of simple, consistentHash may be set (got "
          "simple and consistentHash)"}},
        {"HashKeyRequired", kLb + "      consistentHash: {maglev: {tableSize: 7}}\n",
         {"8:23: " + kDr +
          "spec.trafficPolicy.loadBalancer.consistentHash: must set a hash key: useSourceIp (the "
          "only one a passthrough gateway can use), httpHeaderName, httpCookie or "
          "httpQueryParameterName"}},
        {"OneHashKey", kLb + "      consistentHash: {useSourceIp: true, httpHeaderName: x}\n",
         {"8:23: " + kDr +
          "spec.trafficPolicy.loadBalancer.consistentHash: only one of httpHeaderName, "
          "httpCookie, useSourceIp, httpQueryParameterName may be set (got httpHeaderName and "
          "useSourceIp)"}},
        {"UseSourceIpFalse", kLb + "      consistentHash: {useSourceIp: false}\n",
         {"8:37: " + kDr +
          "spec.trafficPolicy.loadBalancer.consistentHash.useSourceIp: false sets no hash key: "
          "set it to true, or drop consistentHash"}},
        {"RingHashOrMaglev",
         kLb + "      consistentHash: {useSourceIp: true, ringHash: {}, maglev: {}}\n",
         {"8:23: " + kDr +
          "spec.trafficPolicy.loadBalancer.consistentHash: only one of ringHash, maglev may be "
          "set (got ringHash and maglev)"}},
        {"MaglevTableSizePrime",
         kLb + "      consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}\n",
         {"8:63: " + kDr +
          "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: must be a prime "
          "number, got 1000"}},
        {"MinimumRingSizeRange",
         kLb + "      consistentHash: {useSourceIp: true, minimumRingSize: 0}\n",
         {"8:60: " + kDr +
          "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize: must be 1..8388608, "
          "got 0"}},
        {"CookieNameRequired", kLb + "      consistentHash: {httpCookie: {ttl: 0s}}\n",
         {"8:36: " + kDr +
          "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: required"}},
        {"DistributeOrFailover",
         kLb +
             "      localityLbSetting:\n"
             "        distribute: [{from: us/*, to: {us/a: 100}}]\n"
             "        failover: [{from: us, to: eu}]\n",
         {"9:9: " + kDr +
          "spec.trafficPolicy.loadBalancer.localityLbSetting: only one of distribute, failover "
          "may be set"}},
        {"DistributeWeightsTotal100",
         kLb + "      localityLbSetting: {distribute: [{from: us/*, to: {us/a: 60, us/b: 30}}]}\n",
         {"8:53: " + kDr +
          "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: weights must "
          "total 100, got 90"}},
        {"DistributeWeightRange",
         kLb + "      localityLbSetting: {distribute: [{from: us, to: {us/a: 0, us/b: 100}}]}\n",
         {"8:62: " + kDr +
          "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to.us/a: must be "
          "1..100, got 0"}},
        {"LocalityWildcardLast",
         kLb + "      localityLbSetting: {distribute: [{from: \"*/a\", to: {us: 100}}]}\n",
         {"8:47: " + kDr +
          "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].from: locality "
          "\"*/a\" may use '*' only as the whole last segment"}},
        {"LocalityAtMostThreeSegments",
         kLb + "      localityLbSetting: {distribute: [{from: a/b/c/d, to: {us: 100}}]}\n",
         {"8:47: " + kDr +
          "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].from: locality "
          "\"a/b/c/d\" has more than 3 segments (region/zone/subzone)"}},
        {"FailoverDifferentRegions",
         kLb + "      localityLbSetting: {failover: [{from: us, to: us}]}\n" +
             "    outlierDetection: {}\n",
         {"8:38: " + kDr +
          "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]: from and to must be "
          "different regions, both are \"us\""}},
        {"FailoverRegionsOnly",
         kLb + "      localityLbSetting: {failover: [{from: us/a, to: eu}]}\n" +
             "    outlierDetection: {}\n",
         {"8:45: " + kDr +
          "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0].from: \"us/a\": failover "
          "names regions only (no '/' or '*')"}},
        {"WarmupOnce", kLb + "      warmupDurationSecs: 10s\n      warmup: {duration: 10s}\n",
         {"8:7: " + kDr +
          "spec.trafficPolicy.loadBalancer: only one of warmupDurationSecs, warmup may be set "
          "(got warmupDurationSecs and warmup)"}},
        {"MaxConnectionsNonNegative",
         "  host: a\n  trafficPolicy: {connectionPool: {tcp: {maxConnections: -1}}}\n",
         {"6:58: " + kDr +
          "spec.trafficPolicy.connectionPool.tcp.maxConnections: must be 0..2147483647, got -1"}},
        {"ConnectTimeoutAtLeast1ms",
         "  host: a\n  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 0s}}}\n",
         {"6:58: " + kDr + "spec.trafficPolicy.connectionPool.tcp.connectTimeout: must be at least 1ms"}},
        {"ConnectTimeoutMillisecondPrecision",
         "  host: a\n  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 1500us}}}\n",
         {"6:58: " + kDr +
          "spec.trafficPolicy.connectionPool.tcp.connectTimeout: invalid duration \"1500us\": "
          "finer than a millisecond"}},
        {"EjectionPercentRange",
         "  host: a\n  trafficPolicy: {outlierDetection: {maxEjectionPercent: 101}}\n",
         {"6:58: " + kDr +
          "spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be 0..100, got 101"}},
        {"LocalOriginNeedsSplit",
         "  host: a\n  trafficPolicy: {outlierDetection: {consecutiveLocalOriginFailures: 3}}\n",
         {"6:38: " + kDr +
          "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: takes effect only "
          "with splitExternalLocalOriginErrors: true"}},
        {"IntervalDuration", "  host: a\n  trafficPolicy: {outlierDetection: {interval: 10}}\n",
         {"6:48: " + kDr +
          "spec.trafficPolicy.outlierDetection.interval: invalid duration \"10\": missing unit "
          "(ns, us, ms, s, m or h)"}},
        {"PortLevelPortRequired",
         "  host: a\n  trafficPolicy: {portLevelSettings: [{loadBalancer: {simple: RANDOM}}]}\n",
         {"6:39: " + kDr + "spec.trafficPolicy.portLevelSettings[0].port: required"}},
        {"PortLevelNeedsSettings",
         "  host: a\n  trafficPolicy: {portLevelSettings: [{port: {number: 80}}]}\n",
         {"6:39: " + kDr +
          "spec.trafficPolicy.portLevelSettings[0]: must set at least one of loadBalancer, "
          "connectionPool, outlierDetection or tls"}},
        {"SubsetPolicyValidatedToo",
         "  host: a\n  subsets: [{name: v1, trafficPolicy: {loadBalancer: {simple: FAST}}}]\n",
         {"6:63: " + kDr +
          "spec.subsets[0].trafficPolicy.loadBalancer.simple: unknown load balancer \"FAST\" "
          "(one of: UNSPECIFIED, ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN, RANDOM, PASSTHROUGH)"}},
    }),
    [](const ::testing::TestParamInfo<RuleCase>& info) { return info.param.name; });

// --- Warnings ---------------------------------------------------------------------------

TEST(DestinationRuleWarningTest, WhatIsKeptButCantApply) {
  const MeshLoadResult result = LoadYaml(
      kReviews + Dr("  host: reviews\n"
                    "  trafficPolicy:\n"
                    "    loadBalancer:\n"
                    "      consistentHash: {httpHeaderName: x-user}\n"
                    "      localityLbSetting: {failover: [{from: us, to: eu}]}\n"
                    "    outlierDetection: {consecutiveErrors: 3}\n"
                    "    portLevelSettings:\n"
                    "    - {port: {number: 9080}, loadBalancer: {simple: RANDOM}}\n"
                    "    - {port: {number: 9080}, loadBalancer: {simple: ROUND_ROBIN}}\n"
                    "    tunnel: {protocol: CONNECT, targetHost: x, targetPort: 1}\n"
                    "    newIstioField: true\n"));
  EXPECT_EQ(result.errors, Lines{});
  const std::string dr = "DestinationRule bar/dr: spec.trafficPolicy.";
  EXPECT_EQ(result.warnings,
            (Lines{"t.yaml:20:40: " + dr +
                       "loadBalancer.consistentHash.httpHeaderName: a passthrough gateway sees no "
                       "HTTP requests, so this hash key can't be applied (useSourceIp can)",
                   "t.yaml:22:24: " + dr +
                       "outlierDetection.consecutiveErrors: deprecated: use "
                       "consecutiveGatewayErrors or consecutive5xxErrors",
                   "t.yaml:25:23: " + dr +
                       "portLevelSettings[1].port.number: port 9080 already has settings earlier "
                       "in the list; this entry is ignored (the first wins, as in Istio)",
                   "t.yaml:27:5: " + dr +
                       "newIstioField: unknown field, ignored (known: loadBalancer, "
                       "connectionPool, outlierDetection, tls, portLevelSettings, tunnel, "
                       "proxyProtocol, retryBudget)",
                   kNoGatewayWarning}));
  const Cluster* cluster = result.table->Find("reviews.bar.svc.cluster.local", 9080, "");
  ASSERT_NE(cluster, nullptr);
  EXPECT_EQ(cluster->policy.load_balancer->simple, Simple::kRandom);  // the first 9080 entry
  const Cluster* tls = result.table->Find("reviews.bar.svc.cluster.local", 9443, "");
  ASSERT_TRUE(tls->policy.load_balancer->consistent_hash);
  EXPECT_EQ(tls->policy.load_balancer->consistent_hash->key, ConsistentHashLb::Key::kHttpHeader);
  EXPECT_EQ(tls->policy.load_balancer->consistent_hash->key_name, "x-user");
  EXPECT_EQ(tls->policy.outlier_detection->consecutive_gateway_errors, 3u);
}

TEST(DestinationRuleWarningTest, FailoverWithoutOutlierDetection) {
  const MeshLoadResult result =
      LoadYaml(kReviews + Dr("  host: reviews\n  trafficPolicy:\n    loadBalancer:\n"
                             "      localityLbSetting: {failover: [{from: us, to: eu}]}\n"));
  EXPECT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings[0],
            "t.yaml:20:7: DestinationRule bar/dr: spec.trafficPolicy.loadBalancer."
            "localityLbSetting: failover takes effect only with outlierDetection set in the same "
            "policy");
}

TEST(DestinationRuleWarningTest, RuleWithWorkloadSelectorOrNoServiceHasNoEffect) {
  const MeshLoadResult result =
      LoadYaml(kReviews +
               Dr("  host: reviews\n  workloadSelector: {matchLabels: {app: x}}\n"
                  "  subsets: [{name: v1, labels: {version: v1}}]\n") +
               "---\n" + Dr("  host: nothing\n", "other"));
  EXPECT_EQ(result.errors, Lines{});
  EXPECT_EQ(result.warnings,
            (Lines{"t.yaml:18:3: DestinationRule bar/dr: spec.workloadSelector: a rule with a "
                   "workloadSelector applies only to the workloads it selects; meshgate is not "
                   "one of them, so the rule is ignored",
                   "t.yaml:25:9: DestinationRule bar/other: spec.host: no service loaded has host "
                   "\"nothing.bar.svc.cluster.local\": the rule has no effect",
                   kNoGatewayWarning}));
  EXPECT_EQ(result.table->Find("reviews.bar.svc.cluster.local", 9080, "v1"), nullptr);
}

// --- Hosts and subsets ------------------------------------------------------------------

TEST(DestinationRuleHostTest, ShortNameResolvesInTheRuleNamespaceAndClusterDomain) {
  const std::string yaml =
      "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bar}\n"
      "spec: {ports: [{name: http, port: 9080}]}\n---\n" +
      Dr("  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}]\n");
  MeshLoadOptions options = testing::EastWest();
  options.cluster_domain = "corp.internal";
  const MeshLoadResult result = LoadYaml(yaml + testing::ExportAll(), options);
  ASSERT_EQ(result.errors, Lines{});
  EXPECT_NE(result.table->Find("reviews.bar.svc.corp.internal", 9080, "v1"), nullptr);
  EXPECT_EQ(result.table->Route("outbound_.9080_.v1_.reviews.bar.svc.corp.internal").miss,
            RouteMiss::kNone);
}

TEST(DestinationRuleHostTest, ExactRuleWinsThenTheMostSpecificWildcard) {
  const std::string ratings =
      "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
      "metadata: {name: ratings, namespace: bar}\n"
      "spec: {hosts: [ratings.bar.svc.cluster.local], ports: [{number: 80, name: http}],\n"
      "       resolution: STATIC, endpoints: [{address: 10.1.0.1, labels: {version: v1}}]}\n---\n";
  const MeshLoadResult result = LoadYaml(
      kReviews + ratings + Dr("  host: \"*.local\"\n  subsets: [{name: broad}]\n", "broad") +
      "---\n" + Dr("  host: \"*.bar.svc.cluster.local\"\n  subsets: [{name: narrow}]\n", "narrow") +
      "---\n" + Dr("  host: reviews.bar.svc.cluster.local\n  subsets: [{name: exact}]\n", "exact"));
  ASSERT_EQ(result.errors, Lines{});
  const RouteTable& table = *result.table;
  EXPECT_NE(table.Find("reviews.bar.svc.cluster.local", 9080, "exact"), nullptr);
  EXPECT_EQ(table.Find("reviews.bar.svc.cluster.local", 9080, "narrow"), nullptr);
  EXPECT_NE(table.Find("ratings.bar.svc.cluster.local", 80, "narrow"), nullptr);
  EXPECT_EQ(table.Find("ratings.bar.svc.cluster.local", 80, "broad"), nullptr);
  // A subset without labels is every endpoint.
  EXPECT_EQ(table.Find("ratings.bar.svc.cluster.local", 80, "narrow")->endpoints.size(), 1u);
  // "*.local" lost everywhere to a more specific rule: it has no effect, and says so.
  EXPECT_EQ(result.warnings[0],
            "t.yaml:23:9: DestinationRule bar/broad: spec.host: no effect: every service it "
            "matches (such as \"reviews.bar.svc.cluster.local\") takes a more specific or "
            "higher-priority rule");
}

// --- Namespaces and exportTo: which rule Istio's gateway would take ---------------------

std::string NsDr(const std::string& ns, const std::string& name, const std::string& subset,
                 const std::string& extra = "") {
  return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
         "metadata: {name: " + name + ", namespace: " + ns + "}\n"
         "spec:\n  host: reviews.bar.svc.cluster.local\n  subsets: [{name: " + subset + "}]\n" +
         extra + "---\n";
}

// The subsets reviews:9080 got, i.e. which rule won.
std::vector<std::string> Subsets(const MeshLoadResult& result) {
  std::vector<std::string> out;
  if (!result.table) return {"<no table>"};
  for (const Cluster& c : result.table->clusters()) {
    if (c.port == 9080 && !c.subset.empty()) out.push_back(c.subset);
  }
  return out;
}

TEST(DestinationRuleNamespaceTest, ServiceNamespaceBeatsRootNamespace) {
  const MeshLoadResult result =
      LoadYaml(kReviews + NsDr("istio-system", "root", "from-root") + NsDr("bar", "svc", "from-bar"));
  EXPECT_EQ(Subsets(result), std::vector<std::string>{"from-bar"});
  EXPECT_EQ(result.warnings[0],
            "t.yaml:17:9: DestinationRule istio-system/root: spec.host: no effect: every service it "
            "matches (such as \"reviews.bar.svc.cluster.local\") takes a more specific or "
            "higher-priority rule");
}

TEST(DestinationRuleNamespaceTest, RootNamespaceRuleAppliesWhenTheServiceNamespaceHasNone) {
  EXPECT_EQ(Subsets(LoadYaml(kReviews + NsDr("istio-system", "root", "from-root"))),
            std::vector<std::string>{"from-root"});
}

TEST(DestinationRuleNamespaceTest, RootPrivateRuleBeatsTheServiceNamespace) {
  // A gateway in the root namespace reads the root's exportTo "." rules first.
  const MeshLoadResult result = LoadYaml(
      kReviews + NsDr("bar", "svc", "from-bar") +
      NsDr("istio-system", "private", "from-root-private", "  exportTo: [\".\"]\n"));
  EXPECT_EQ(Subsets(result), std::vector<std::string>{"from-root-private"});
}

TEST(DestinationRuleNamespaceTest, RuleNotExportedToTheGatewayIsIgnoredWithAWarning) {
  const MeshLoadResult result =
      LoadYaml(kReviews + NsDr("bar", "private", "from-bar", "  exportTo: [\".\"]\n"));
  EXPECT_EQ(Subsets(result), std::vector<std::string>{});
  EXPECT_EQ(result.warnings[0],
            "t.yaml:19:3: DestinationRule bar/private: spec.exportTo: not exported to the gateway's "
            "namespace \"istio-system\", so Istio's gateway would not apply it either; ignored");
  // Exported by name, it applies.
  EXPECT_EQ(Subsets(LoadYaml(kReviews + NsDr("bar", "named", "from-bar",
                                              "  exportTo: [istio-system]\n"))),
            std::vector<std::string>{"from-bar"});
}

TEST(DestinationRuleNamespaceTest, ThirdNamespaceRuleHasNoEffectOnTheGateway) {
  const MeshLoadResult result = LoadYaml(kReviews + NsDr("foo", "client-side", "from-foo"));
  EXPECT_EQ(Subsets(result), std::vector<std::string>{});
  EXPECT_EQ(result.warnings[0],
            "t.yaml:17:9: DestinationRule foo/client-side: spec.host: no effect on "
            "\"reviews.bar.svc.cluster.local\": Istio's gateway takes rules only from its own "
            "namespace (istio-system), the service's (bar) and the root namespace (istio-system), "
            "not from \"foo\"");
}

TEST(DestinationRuleNamespaceTest, GatewayOutsideTheRootNamespaceReadsItsOwnNamespaceFirst) {
  MeshLoadOptions options;
  options.gateway_namespace = "gw";
  const std::string yaml = kReviews + NsDr("bar", "svc", "from-bar") +
                           NsDr("gw", "own", "from-gw", "  exportTo: [\".\"]\n");
  const MeshLoadResult result = LoadMeshFromString(yaml, "t.yaml", {}, options);
  EXPECT_EQ(Subsets(result), std::vector<std::string>{"from-gw"});
}

// --- The policy merge ------------------------------------------------------------------

class PolicyMergeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    result_ = LoadYaml(kReviews + Dr("  host: reviews\n"
                                     "  trafficPolicy:\n"
                                     "    loadBalancer: {simple: ROUND_ROBIN}\n"
                                     "    connectionPool: {tcp: {maxConnections: 100, connectTimeout: 250ms}}\n"
                                     "    portLevelSettings:\n"
                                     "    - port: {number: 9080}\n"
                                     "      outlierDetection: {consecutive5xxErrors: 7, interval: 5m}\n"
                                     "  subsets:\n"
                                     "  - name: v2\n"
                                     "    labels: {version: v2}\n"
                                     "    trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
                                     "  - name: v3\n"
                                     "    labels: {version: v3}\n"
                                     "    trafficPolicy:\n"
                                     "      portLevelSettings:\n"
                                     "      - {port: {number: 9080}, loadBalancer: {simple: LEAST_CONN}}\n"));
    ASSERT_EQ(result_.errors, Lines{});
  }
  const TrafficPolicy& Policy(uint16_t port, const std::string& subset) {
    const Cluster* cluster = result_.table->Find("reviews.bar.svc.cluster.local", port, subset);
    EXPECT_NE(cluster, nullptr) << port << " " << subset;
    return cluster->policy;
  }
  MeshLoadResult result_;
};

TEST_F(PolicyMergeTest, TopLevelOnAPortWithoutPortSettings) {
  const TrafficPolicy& p = Policy(9443, "");
  EXPECT_EQ(p.load_balancer->simple, Simple::kRoundRobin);
  EXPECT_EQ(p.connection_pool->max_connections, 100u);
  EXPECT_EQ(p.connection_pool->connect_timeout, 250ms);
  EXPECT_FALSE(p.outlier_detection);
}

TEST_F(PolicyMergeTest, PortLevelReplacesEveryPartUnsetOnesBecomeDefaults) {
  const TrafficPolicy& p = Policy(9080, "");
  EXPECT_FALSE(p.load_balancer);
  EXPECT_FALSE(p.connection_pool);
  ASSERT_TRUE(p.outlier_detection);
  EXPECT_EQ(p.outlier_detection->consecutive_5xx_errors, 7u);
  EXPECT_EQ(p.outlier_detection->interval, 5min);
  EXPECT_EQ(p.outlier_detection->base_ejection_time, 30s);  // Istio's default
  EXPECT_EQ(p.outlier_detection->max_ejection_percent, 10u);
}

TEST_F(PolicyMergeTest, SubsetPartsOverrideTheTopLevelForItsPort) {
  const TrafficPolicy& on_9080 = Policy(9080, "v2");
  EXPECT_EQ(on_9080.load_balancer->simple, Simple::kRandom);
  EXPECT_FALSE(on_9080.connection_pool);  // replaced by 9080's port-level entry
  EXPECT_EQ(on_9080.outlier_detection->consecutive_5xx_errors, 7u);
  const TrafficPolicy& on_9443 = Policy(9443, "v2");
  EXPECT_EQ(on_9443.load_balancer->simple, Simple::kRandom);
  EXPECT_EQ(on_9443.connection_pool->max_connections, 100u);
}

TEST_F(PolicyMergeTest, SubsetPortLevelComesLast) {
  const TrafficPolicy& on_9080 = Policy(9080, "v3");
  EXPECT_EQ(on_9080.load_balancer->simple, Simple::kLeastRequest);  // LEAST_CONN's new name
  EXPECT_FALSE(on_9080.outlier_detection);
  EXPECT_FALSE(on_9080.connection_pool);
  const TrafficPolicy& on_9443 = Policy(9443, "v3");
  EXPECT_EQ(on_9443.load_balancer->simple, Simple::kRoundRobin);
  EXPECT_EQ(on_9443.connection_pool->max_connections, 100u);
}

TEST_F(PolicyMergeTest, SubsetsSelectEndpointsAndDescribeShowsItAll) {
  const Cluster* v2 = result_.table->Find("reviews.bar.svc.cluster.local", 9080, "v2");
  ASSERT_EQ(v2->endpoints.size(), 1u);
  EXPECT_EQ(v2->endpoints[0].address, "10.0.0.2");
  const std::string describe = result_.table->Describe();
  EXPECT_NE(describe.find("cluster 1: outbound|9080|v2|reviews.bar.svc.cluster.local\n"
                          "  source: t.yaml:1 ServiceEntry bar/reviews; t.yaml:13 "
                          "DestinationRule bar/dr\n"
                          "  not exported: no Gateway selecting this gateway has an "
                          "AUTO_PASSTHROUGH server on port 15443: refused\n"
                          "  subset v2: version=v2\n"
                          "  policy: loadBalancer.simple=RANDOM outlierDetection("
                          "consecutive5xxErrors=7 interval=5m baseEjectionTime=30s "
                          "maxEjectionPercent=10 minHealthPercent=0)\n"
                          "  policy source: t.yaml:13 DestinationRule bar/dr\n"
                          "  endpoint 10.0.0.2:9080 weight 1 {version=v2} network=(unset) "
                          "workload=bar/reviews-1 in view\n"),
            std::string::npos)
      << describe;
}

TEST(PolicyReadTest, EveryFieldIsStored) {
  const MeshLoadResult result = LoadYaml(
      kReviews + Dr("  host: reviews\n"
                    "  trafficPolicy:\n"
                    "    loadBalancer:\n"
                    "      consistentHash: {useSourceIp: true, maglev: {tableSize: 65537}}\n"
                    "      localityLbSetting:\n"
                    "        enabled: true\n"
                    "        distribute: [{from: us-east/*, to: {us-east/a: 80, us-west/*: 20}}]\n"
                    "        failoverPriority: [topology.istio.io/network]\n"
                    "      warmup: {duration: 30s, minimumPercent: 10}\n"
                    "    connectionPool:\n"
                    "      tcp:\n"
                    "        maxConnections: 50\n"
                    "        connectTimeout: 2s\n"
                    "        idleTimeout: 1h\n"
                    "        maxConnectionDuration: 10m\n"
                    "        tcpKeepalive: {probes: 3, time: 60s, interval: 10s}\n"
                    "      http: {http2MaxRequests: 1000, idleTimeout: 30s}\n"
                    "    outlierDetection:\n"
                    "      consecutive5xxErrors: 3\n"
                    "      consecutiveGatewayErrors: 2\n"
                    "      splitExternalLocalOriginErrors: true\n"
                    "      consecutiveLocalOriginFailures: 4\n"
                    "      interval: 1s\n"
                    "      baseEjectionTime: 3m\n"
                    "      maxEjectionPercent: 100\n"
                    "      minHealthPercent: 50\n"
                    "    tls: {mode: ISTIO_MUTUAL}\n"));
  ASSERT_EQ(result.errors, Lines{});
  const TrafficPolicy& p = result.table->Find("reviews.bar.svc.cluster.local", 9080, "")->policy;
  const ConsistentHashLb& hash = *p.load_balancer->consistent_hash;
  EXPECT_EQ(hash.key, ConsistentHashLb::Key::kSourceIp);
  EXPECT_EQ(hash.algorithm, ConsistentHashLb::Algorithm::kMaglev);
  EXPECT_EQ(hash.maglev_table_size, 65537u);
  const LocalityLbSetting& locality = *p.load_balancer->locality;
  EXPECT_EQ(locality.enabled, true);
  ASSERT_EQ(locality.distribute.size(), 1u);
  EXPECT_EQ(locality.distribute[0].from, "us-east/*");
  EXPECT_EQ(locality.distribute[0].to.at("us-west/*"), 20u);
  EXPECT_EQ(locality.failover_priority, std::vector<std::string>{"topology.istio.io/network"});
  EXPECT_EQ(p.load_balancer->warmup, 30s);
  const TcpConnectionPool& tcp = *p.connection_pool;
  EXPECT_EQ(tcp.max_connections, 50u);
  EXPECT_EQ(tcp.connect_timeout, 2s);
  EXPECT_EQ(tcp.idle_timeout, 1h);
  EXPECT_EQ(tcp.max_connection_duration, 10min);
  EXPECT_EQ(tcp.keepalive->probes, 3u);
  EXPECT_EQ(tcp.keepalive->time, 60s);
  EXPECT_EQ(tcp.keepalive->interval, 10s);
  const OutlierDetection& od = *p.outlier_detection;
  EXPECT_EQ(od.consecutive_5xx_errors, 3u);
  EXPECT_EQ(od.consecutive_gateway_errors, 2u);
  EXPECT_TRUE(od.split_external_local_origin_errors);
  EXPECT_EQ(od.consecutive_local_origin_failures, 4u);
  EXPECT_EQ(od.interval, 1s);
  EXPECT_EQ(od.base_ejection_time, 3min);
  EXPECT_EQ(od.max_ejection_percent, 100u);
  EXPECT_EQ(od.min_health_percent, 50u);
}

// --- Several rules for one host -----------------------------------------------------------

TEST(DestinationRuleMergeTest, SubsetsConcatenateAndTheFirstPolicyApplies) {
  const MeshLoadResult result = LoadYaml(
      kReviews +
      Dr("  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}]\n", "first") + "---\n" +
      Dr("  host: reviews.bar.svc.cluster.local\n"
         "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
         "  subsets: [{name: v2, labels: {version: v2}}]\n",
         "second"));
  ASSERT_EQ(result.errors, Lines{});
  const RouteTable& table = *result.table;
  EXPECT_NE(table.Find("reviews.bar.svc.cluster.local", 9080, "v1"), nullptr);
  const Cluster* v2 = table.Find("reviews.bar.svc.cluster.local", 9080, "v2");
  ASSERT_NE(v2, nullptr);
  // The first rule had no policy: the second's applies, to every cluster of the host.
  EXPECT_EQ(table.Find("reviews.bar.svc.cluster.local", 9080, "v1")->policy.load_balancer->simple,
            Simple::kRandom);
  EXPECT_EQ(v2->policy_source, "t.yaml:20 DestinationRule bar/second");
}

// Istio keeps the first rule's policy and subset (pilot/pkg/model/destination_rule.go
// mergeDestinationRule): a warning naming both rules, not an error.
TEST(DestinationRuleMergeTest, ConflictsWarnNamingBothRulesAndTheFirstWins) {
  const MeshLoadResult result = LoadYaml(
      kReviews +
      Dr("  host: reviews\n"
         "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
         "  subsets: [{name: v1, labels: {version: v1}}]\n",
         "first") +
      "---\n" +
      Dr("  host: reviews.bar.svc.cluster.local\n"
         "  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n"
         "  subsets: [{name: v1, labels: {version: v2}}]\n",
         "second"));
  EXPECT_EQ(result.errors, Lines{});
  const Lines expected = {
      "t.yaml:26:3: DestinationRule bar/second: spec.trafficPolicy: host "
      "\"reviews.bar.svc.cluster.local\" already has a trafficPolicy from t.yaml:13 "
      "DestinationRule bar/first: that one applies and this one is ignored, as in Istio",
      "t.yaml:27:13: DestinationRule bar/second: spec.subsets[0]: subset \"v1\" of "
      "host \"reviews.bar.svc.cluster.local\" is already defined by t.yaml:13 "
      "DestinationRule bar/first: that one applies and this one is ignored, as in Istio"};
  for (const std::string& warning : expected) {
    EXPECT_NE(std::find(result.warnings.begin(), result.warnings.end(), warning),
              result.warnings.end())
        << warning;
  }
  ASSERT_NE(result.table, nullptr);
  const Cluster* v1 = result.table->Find("reviews.bar.svc.cluster.local", 9080, "v1");
  ASSERT_NE(v1, nullptr);
  EXPECT_EQ(v1->subset_labels, (std::map<std::string, std::string>{{"version", "v1"}}));
}

}  // namespace
}  // namespace meshgate::config
