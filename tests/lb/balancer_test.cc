#include "lb/balancer.h"

#include <vector>

#include "gtest/gtest.h"

namespace meshgate::lb {
namespace {

config::Cluster MakeCluster(int endpoints, uint32_t id = 0) {
  config::Cluster c;
  c.id = id;
  for (int i = 0; i < endpoints; ++i) {
    config::Endpoint e;
    e.address = "10.0.0." + std::to_string(i + 1);
    e.port = 80;
    c.endpoints.push_back(e);
  }
  return c;
}

TEST(RoundRobinTest, RotatesEvenly) {
  RoundRobin rr;
  const auto c = MakeCluster(3);
  std::vector<int> picks;
  for (int i = 0; i < 6; ++i) picks.push_back(rr.Pick(c, {}));
  EXPECT_EQ(picks, (std::vector<int>{0, 1, 2, 0, 1, 2}));
}

TEST(RoundRobinTest, EachClusterHasItsOwnRotation) {
  RoundRobin rr;
  const auto a = MakeCluster(2, 0);
  const auto b = MakeCluster(2, 5);
  EXPECT_EQ(rr.Pick(a, {}), 0);
  EXPECT_EQ(rr.Pick(b, {}), 0);
  EXPECT_EQ(rr.Pick(a, {}), 1);
  EXPECT_EQ(rr.Pick(b, {}), 1);
}

TEST(RoundRobinTest, RetriesSkipTriedEndpointsWithoutMovingTheRotation) {
  RoundRobin rr;
  const auto c = MakeCluster(3);
  EXPECT_EQ(rr.Pick(c, {}), 0);
  const std::vector<uint32_t> tried = {1};
  EXPECT_EQ(rr.Pick(c, {}), 1);        // first pick of a new connection
  EXPECT_EQ(rr.Pick(c, tried), 2);     // its retry skips the failed one
  EXPECT_EQ(rr.Pick(c, {}), 2);        // the retry did not advance the rotation
  const std::vector<uint32_t> all = {0, 1, 2};
  EXPECT_EQ(rr.Pick(c, all), kNoEndpoint);
}

TEST(RoundRobinTest, NotReadyEndpointsTakeNoNewConnections) {
  RoundRobin rr;
  auto c = MakeCluster(3);
  c.endpoints[1].ready = false;
  for (int i = 0; i < 6; ++i) EXPECT_NE(rr.Pick(c, {}), 1);
  c.endpoints[0].ready = c.endpoints[2].ready = false;
  EXPECT_EQ(rr.Pick(c, {}), kNoEndpoint);
}

TEST(RoundRobinTest, EmptyClusterHasNoEndpoint) {
  RoundRobin rr;
  EXPECT_EQ(rr.Pick(MakeCluster(0), {}), kNoEndpoint);
}

}  // namespace
}  // namespace meshgate::lb
