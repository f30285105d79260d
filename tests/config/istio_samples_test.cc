// Istio's own samples (tests/data/istio) loaded as they are, with Kubernetes
// fixtures (tests/data/k8s) giving their services endpoints, and routed by SNI.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/mesh/mesh_loader.h"
#include "tests/config/mesh_test_util.h"

namespace meshgate::config {
namespace {

using testing::Data;
using testing::kNoGatewayWarning;
using testing::Lines;
using testing::Load;

class BookinfoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    result_ = Load({"istio/destination-rule-all.yaml", "k8s/bookinfo.yaml",
                    "istio/expose-services.yaml"});
    ASSERT_EQ(result_.errors, Lines{});
    ASSERT_NE(result_.table, nullptr);
  }
  // Routes what a sidecar in the other cluster sends for `subset` of `service`.
  const Cluster& Route(const std::string& service, const std::string& subset) {
    const RouteResult route =
        result_.table->Route("outbound_.9080_." + subset + "_." + service + ".default.global");
    EXPECT_EQ(route.miss, RouteMiss::kNone) << service << " " << subset;
    static const Cluster kNone;
    return route.cluster != nullptr ? *route.cluster : kNone;
  }
  std::vector<std::string> Addresses(const Cluster& cluster) {
    std::vector<std::string> out;
    for (const Endpoint& endpoint : cluster.endpoints) out.push_back(endpoint.address);
    return out;
  }
  MeshLoadResult result_;
};

TEST_F(BookinfoTest, LoadsWithoutNotes) {
  EXPECT_EQ(result_.warnings, Lines{});  // every rule applies, the Gateway exports *.local
  EXPECT_EQ(result_.resources_loaded, 4u + 4 + 3 + 8 + 1);  // rules, Services, slices+Endpoints, Pods, Gateway
  EXPECT_EQ(result_.table->clusters().size(), 14u);
}

TEST_F(BookinfoTest, ReviewsSubsetsSelectPodsByVersion) {
  const Cluster& v1 = Route("reviews", "v1");
  EXPECT_EQ(v1.name, "outbound|9080|v1|reviews.default.svc.cluster.local");
  EXPECT_EQ(v1.subset_labels, (std::map<std::string, std::string>{{"version", "v1"}}));
  EXPECT_EQ(Addresses(v1), Lines{"10.0.1.1"});
  // Everything the Pod says about the workload.
  const Endpoint& endpoint = v1.endpoints[0];
  EXPECT_EQ(endpoint.labels.at("app"), "reviews");
  EXPECT_EQ(endpoint.service_account(), "bookinfo-reviews");
  EXPECT_EQ(endpoint.network(), "network1");
  EXPECT_EQ(endpoint.locality(), "us-east1/zone-a");
  EXPECT_EQ(Addresses(Route("reviews", "v2")), Lines{"10.0.1.2"});
  const Cluster& v3 = Route("reviews", "v3");
  ASSERT_EQ(Addresses(v3), Lines{"10.0.1.3"});
  EXPECT_FALSE(v3.endpoints[0].ready);
  EXPECT_EQ(Addresses(Route("reviews", "")), (Lines{"10.0.1.1", "10.0.1.2", "10.0.1.3"}));
  EXPECT_EQ(result_.table->Route("outbound_.9080_.v4_.reviews.default.global").miss,
            RouteMiss::kUnknownSubset);
}

TEST_F(BookinfoTest, RatingsFindsAPodByIpAndKeepsEmptySubsets) {
  EXPECT_EQ(Addresses(Route("ratings", "v1")), Lines{"10.0.2.1"});
  EXPECT_EQ(Addresses(Route("ratings", "v2")), Lines{"10.0.2.2"});  // no targetRef: by IP
  // No workload has these versions: routable clusters with nothing to dial.
  EXPECT_TRUE(Route("ratings", "v2-mysql").endpoints.empty());
  EXPECT_TRUE(Route("ratings", "v2-mysql-vm").endpoints.empty());
}

TEST_F(BookinfoTest, DetailsFromLegacyEndpoints) {
  EXPECT_EQ(Addresses(Route("details", "v1")), Lines{"10.0.3.1"});
  const Cluster& v2 = Route("details", "v2");
  ASSERT_EQ(Addresses(v2), Lines{"10.0.3.2"});
  EXPECT_FALSE(v2.endpoints[0].ready);  // a notReadyAddresses entry
}

TEST_F(BookinfoTest, ProductpageFromPodsThroughANamedTargetPort) {
  const Cluster& v1 = Route("productpage", "v1");
  ASSERT_EQ(Addresses(v1), Lines{"10.0.4.1"});
  EXPECT_EQ(v1.endpoints[0].port, 9081);  // the container port named "http"
}

TEST_F(BookinfoTest, DescribeShowsSubsetsAndTheirSources) {
  const std::string describe = result_.table->Describe();
  const std::string expected =
      "cluster 3: outbound|9080|v1|reviews.default.svc.cluster.local\n"
      "  source: " + Data("k8s/bookinfo.yaml") + ":12 Service default/reviews; " +
      Data("istio/destination-rule-all.yaml") + ":12 DestinationRule default/reviews\n"
      "  subset v1: version=v1\n"
      "  endpoint 10.0.1.1:9080 weight 1 {app=reviews, istio-locality=us-east1.zone-a, "
      "topology.istio.io/network=network1, version=v1} network=network1 locality=us-east1/zone-a "
      "serviceAccount=bookinfo-reviews workload=default/reviews-v1-5b8c9f in view\n"
      "cluster 4:";
  EXPECT_NE(describe.find(expected), std::string::npos) << describe;
}

TEST(IstioSamplesTest, DestinationRulesAloneHaveNoEffectAndSaySo) {
  const MeshLoadResult result = Load({"istio/destination-rule-all.yaml"});
  EXPECT_EQ(result.errors, Lines{});
  ASSERT_EQ(result.warnings.size(), 5u) << ::testing::PrintToString(result.warnings);
  EXPECT_EQ(result.warnings[1],
            testing::At("istio/destination-rule-all.yaml", 17, 9,
                        "DestinationRule default/reviews: spec.host: no service loaded has host "
                        "\"reviews.default.svc.cluster.local\": the rule has no effect"));
}

}  // namespace
}  // namespace meshgate::config
