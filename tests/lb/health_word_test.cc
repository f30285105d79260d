// The endpoint health word, one thread at a time: both reasons count once,
// either keeps the endpoint out, and Describe names the one that matters most.
#include "gtest/gtest.h"
#include "lb/cluster_state.h"

namespace meshgate::lb {
namespace {

config::Cluster ThreeEndpoints() {
  config::Cluster c;
  for (int i = 0; i < 3; ++i) {
    config::Endpoint e;
    e.address = "10.0.0." + std::to_string(i);
    e.port = 80;
    c.endpoints.push_back(e);
  }
  return c;
}

config::OutlierDetection EjectAtOnce() {
  config::OutlierDetection od;
  od.consecutive_5xx_errors = 1;
  od.max_ejection_percent = 100;
  return od;
}

TEST(HealthWordTest, EjectedAndFailingChecksCountsOnceAndNeedsBothCleared) {
  ClusterState s(ThreeEndpoints());
  ASSERT_EQ(s.OnConnectFailure(0, EjectAtOnce(), 0), HealthChange::kEjected);
  EXPECT_TRUE(s.SetCheckFailed(0, true));
  EXPECT_FALSE(s.SetCheckFailed(0, true));  // no change, no count
  EXPECT_EQ(s.endpoint(0).flags(), kEjected | kCheckFailed);
  EXPECT_EQ(s.healthy_count(), 2u);
  std::vector<size_t> back;
  s.Sweep(int64_t{3600} * 1'000'000'000, [&](size_t i) { back.push_back(i); });
  EXPECT_EQ(back, std::vector<size_t>{0});
  EXPECT_FALSE(s.Healthy(0));  // still failing checks
  EXPECT_EQ(s.healthy_count(), 2u);
  EXPECT_EQ(s.ejected_count(), 0u);
  EXPECT_TRUE(s.SetCheckFailed(0, false));
  EXPECT_TRUE(s.Healthy(0));
  EXPECT_EQ(s.healthy_count(), 3u);
}

TEST(HealthWordTest, EveryChangeMovesTheGenerationAndNoChangeDoesNot) {
  ClusterState s(ThreeEndpoints());
  const uint64_t g0 = s.health_generation();
  s.SetCheckFailed(1, false);
  EXPECT_EQ(s.health_generation(), g0);
  s.SetCheckFailed(1, true);
  EXPECT_GT(s.health_generation(), g0);
}

TEST(HealthWordTest, NotReadyEndpointsAreNeverCountedWhateverTheirFlags) {
  config::Cluster c = ThreeEndpoints();
  c.endpoints[2].ready = false;
  ClusterState s(c);
  EXPECT_EQ(s.ready_count(), 2u);
  s.SetCheckFailed(2, true);
  ASSERT_EQ(s.OnConnectFailure(2, EjectAtOnce(), 0), HealthChange::kEjected);
  EXPECT_EQ(s.healthy_count(), 2u);
  EXPECT_FALSE(s.Panic());
  s.SetCheckFailed(2, false);
  EXPECT_EQ(s.healthy_count(), 2u);
}

TEST(HealthWordTest, DescribeNamesEjectedBeforeAFailedCheck) {
  config::Cluster c = ThreeEndpoints();
  c.host = "a.example.com";
  c.port = 443;
  const config::RouteTable table({c}, {});
  HealthTable health(table);
  ClusterState& s = health.cluster(0);
  s.SetCheckFailed(0, true);
  s.SetCheckFailed(1, true);
  s.OnConnectFailure(1, EjectAtOnce(), 0);
  const std::vector<ClusterView> views = Describe(table, health);
  EXPECT_EQ(views[0].endpoints[0].health, "failed_check");
  EXPECT_EQ(views[0].endpoints[1].health, "ejected");
  EXPECT_EQ(views[0].endpoints[2].health, "healthy");
}

TEST(HealthWordTest, AnEjectionInheritedByANewVersionStillReturnsOnTime) {
  config::Cluster c = ThreeEndpoints();
  c.host = "a.example.com";
  c.port = 443;
  const config::RouteTable table({c}, {});
  HealthTable before(table);
  ASSERT_EQ(before.cluster(0).OnConnectFailure(0, EjectAtOnce(), 0), HealthChange::kEjected);
  HealthTable after(table, table, before);
  ClusterState& s = after.cluster(0);
  EXPECT_FALSE(s.Healthy(0));
  int returned = 0;
  s.Sweep(29'000'000'000, [&](size_t) { ++returned; });
  EXPECT_EQ(returned, 0);
  s.Sweep(30'000'000'000, [&](size_t) { ++returned; });  // baseEjectionTime's default
  EXPECT_EQ(returned, 1);
  EXPECT_TRUE(s.Healthy(0));
  // And it can be ejected again, for twice as long.
  ASSERT_EQ(s.OnConnectFailure(0, EjectAtOnce(), 100'000'000'000), HealthChange::kEjected);
  EXPECT_EQ(s.endpoint(0).ejected_until_ns.load(), 160'000'000'000);
}

}  // namespace
}  // namespace meshgate::lb
