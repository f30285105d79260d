// Outlier detection's re-check, with the time passed in: each cluster on its
// own interval, only clusters with outlier detection, and a reset on a new
// table version.
#include "lb/outlier_sweep.h"

#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace meshgate::lb {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

config::Cluster Cluster(const std::string& host, std::optional<std::chrono::seconds> interval) {
  config::Cluster c;
  c.host = host;
  c.port = 443;
  for (int i = 0; i < 2; ++i) {
    config::Endpoint e;
    e.address = "10.0.0." + std::to_string(i);
    e.port = 80;
    c.endpoints.push_back(e);
  }
  if (interval) c.policy.outlier_detection.emplace().interval = *interval;
  return c;
}

config::OutlierDetection EjectFor(std::chrono::seconds base) {
  config::OutlierDetection od;
  od.consecutive_5xx_errors = 1;
  od.base_ejection_time = base;
  od.max_ejection_percent = 100;
  return od;
}

using Returned = std::vector<std::tuple<std::string, size_t, uint32_t>>;

struct Fixture {
  Fixture() : table({Cluster("a.example.com", std::chrono::seconds(10)), Cluster("b.example.com", std::nullopt)}, {}),
              health(table) {}
  Returned Run(int64_t now) {
    Returned out;
    sweep.Run(table, health, now, [&](const config::Cluster& c, size_t i, uint32_t ejections) {
      out.emplace_back(c.host, i, ejections);
    });
    return out;
  }
  config::RouteTable table;
  HealthTable health;
  OutlierSweep sweep;
};

TEST(OutlierSweepTest, ReturnsAnEjectedEndpointOnTheFirstSweepAfterItsTime) {
  Fixture f;
  EXPECT_TRUE(f.Run(0).empty());  // swept at 0: next at 10 s
  ASSERT_EQ(f.health.cluster(0).OnConnectFailure(1, EjectFor(std::chrono::seconds(3)), 1 * kSecond),
            HealthChange::kEjected);
  EXPECT_TRUE(f.Run(5 * kSecond).empty());  // due at 4 s, but not the cluster's interval yet
  EXPECT_EQ(f.Run(10 * kSecond), (Returned{{"a.example.com", 1, 1}}));
  EXPECT_TRUE(f.health.cluster(0).Healthy(1));
  EXPECT_TRUE(f.Run(20 * kSecond).empty());
}

TEST(OutlierSweepTest, ClustersWithoutOutlierDetectionAreNotSwept) {
  Fixture f;
  ASSERT_EQ(f.health.cluster(1).OnConnectFailure(0, EjectFor(std::chrono::seconds(1)), 0), HealthChange::kEjected);
  EXPECT_TRUE(f.Run(100 * kSecond).empty());
  EXPECT_FALSE(f.health.cluster(1).Healthy(0));
}

TEST(OutlierSweepTest, ANewTableVersionIsSweptAtOnce) {
  Fixture f;
  f.Run(0);
  ASSERT_EQ(f.health.cluster(0).OnConnectFailure(0, EjectFor(std::chrono::seconds(1)), 0), HealthChange::kEjected);
  EXPECT_TRUE(f.Run(2 * kSecond).empty());
  f.sweep.Reset();
  EXPECT_EQ(f.Run(2 * kSecond), (Returned{{"a.example.com", 0, 1}}));
}

}  // namespace
}  // namespace meshgate::lb
