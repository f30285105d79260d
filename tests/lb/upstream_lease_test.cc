// UpstreamLease: what a connection holds of its cluster, taken and given back
// in one place, whatever path the connection ends on.
#include "lb/upstream_lease.h"

#include <utility>

#include "gtest/gtest.h"

namespace meshgate::lb {
namespace {

config::Cluster Endpoints(int n) {
  config::Cluster c;
  for (int i = 0; i < n; ++i) {
    config::Endpoint e;
    e.address = "10.0.0." + std::to_string(i);
    e.port = 80;
    c.endpoints.push_back(e);
  }
  return c;
}

uint32_t Active(const ClusterState& s, size_t i) { return s.endpoint(i).active.load(); }

TEST(UpstreamLeaseTest, HoldsASlotUntilDestroyedAndIsEmptyAtTheCap) {
  ClusterState s(Endpoints(1));
  {
    UpstreamLease a = UpstreamLease::TryAcquire(s, 2);
    UpstreamLease b = UpstreamLease::TryAcquire(s, 2);
    UpstreamLease c = UpstreamLease::TryAcquire(s, 2);
    EXPECT_TRUE(a);
    EXPECT_TRUE(b);
    EXPECT_FALSE(c);  // maxConnections reached: nothing taken
    EXPECT_EQ(s.active(), 2u);
  }
  EXPECT_EQ(s.active(), 0u);
}

TEST(UpstreamLeaseTest, ARetryGivesBackTheEndpointBeforeAndTheEndHoldsNothing) {
  ClusterState s(Endpoints(3));
  {
    UpstreamLease lease = UpstreamLease::TryAcquire(s, 10);
    lease.Pick(0);
    EXPECT_EQ(Active(s, 0), 1u);
    lease.Pick(2);  // a retry
    EXPECT_EQ(Active(s, 0), 0u);
    EXPECT_EQ(Active(s, 2), 1u);
    EXPECT_EQ(lease.endpoint(), 2);
    lease.OnConnected();
    EXPECT_EQ(Active(s, 2), 1u);  // still this connection's
    EXPECT_EQ(s.endpoint(2).total.load(), 1u);
  }
  EXPECT_EQ(Active(s, 2), 0u);
  EXPECT_EQ(s.active(), 0u);
}

TEST(UpstreamLeaseTest, AFailedConnectCountsTowardsEjectionAndSaysWhenItEjected) {
  ClusterState s(Endpoints(2));
  config::OutlierDetection od;
  od.consecutive_5xx_errors = 2;
  od.max_ejection_percent = 100;
  UpstreamLease lease = UpstreamLease::TryAcquire(s, 10);
  lease.Pick(1);
  EXPECT_FALSE(lease.OnConnectFailed(&od, 0));
  EXPECT_EQ(Active(s, 1), 0u);
  EXPECT_EQ(lease.endpoint(), -1);
  lease.Pick(1);
  EXPECT_TRUE(lease.OnConnectFailed(&od, 0));  // the second in a row ejects
  EXPECT_FALSE(s.Healthy(1));
  lease.Pick(0);
  EXPECT_FALSE(lease.OnConnectFailed(nullptr, 0));  // no outlier detection: no count
  EXPECT_EQ(s.endpoint(0).consecutive_failures.load(), 0u);
}

TEST(UpstreamLeaseTest, ASuccessEndsTheFailureStreak) {
  ClusterState s(Endpoints(1));
  config::OutlierDetection od;
  od.consecutive_5xx_errors = 2;
  od.max_ejection_percent = 100;
  UpstreamLease lease = UpstreamLease::TryAcquire(s, 10);
  lease.Pick(0);
  EXPECT_FALSE(lease.OnConnectFailed(&od, 0));
  lease.Pick(0);
  lease.OnConnected();
  lease.Pick(0);
  EXPECT_FALSE(lease.OnConnectFailed(&od, 0));  // one in a row again, not two
  EXPECT_TRUE(s.Healthy(0));
}

TEST(UpstreamLeaseTest, MovingHandsOverEverythingAndAssigningGivesBackTheOld) {
  ClusterState s(Endpoints(2));
  UpstreamLease a = UpstreamLease::TryAcquire(s, 10);
  a.Pick(0);
  UpstreamLease b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from holds nothing
  EXPECT_EQ(a.endpoint(), -1);
  EXPECT_TRUE(b);
  EXPECT_EQ(b.endpoint(), 0);
  EXPECT_EQ(s.active(), 1u);
  UpstreamLease c = UpstreamLease::TryAcquire(s, 10);
  c.Pick(1);
  EXPECT_EQ(s.active(), 2u);
  c = std::move(b);  // c's own slot and endpoint 1 go back
  EXPECT_EQ(s.active(), 1u);
  EXPECT_EQ(Active(s, 1), 0u);
  EXPECT_EQ(Active(s, 0), 1u);
  c.Reset();
  EXPECT_EQ(s.active(), 0u);
  EXPECT_EQ(Active(s, 0), 0u);
  c.Reset();  // twice is harmless
  EXPECT_EQ(s.active(), 0u);
}

}  // namespace
}  // namespace meshgate::lb
