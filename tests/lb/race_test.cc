// lb's shared state under its real concurrent users: endpoint health with its
// two writers at once (outlier detection: a worker ejecting, the control
// loop's sweep returning; active health checks: the control loop flipping the
// verdict), and upstream leases taken and given back by two workers. Built as
// its own small binary so scripts/tsan.sh can run it under ThreadSanitizer.
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "lb/balancer.h"
#include "lb/cluster_state.h"
#include "lb/upstream_lease.h"

namespace meshgate::lb {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

config::Cluster MakeCluster(int endpoints) {
  config::Cluster c;
  for (int i = 0; i < endpoints; ++i) {
    config::Endpoint e;
    e.address = "10.0.0." + std::to_string(i);
    e.port = 80;
    c.endpoints.push_back(e);
  }
  return c;
}

uint32_t CountUnhealthy(const ClusterState& s) {
  uint32_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) n += s.Healthy(i) ? 0 : 1;
  return n;
}

// Lines two threads up so that their next writes land on the same endpoint
// at the same moment, which a free-running loop rarely does. Spins (a futex
// wake-up is slower than the race window), yielding now and then so a
// descheduled partner on a busy machine gets to run.
class SpinBarrier {
 public:
  void Wait() {
    const uint32_t phase = phase_.load();
    if (arrived_.fetch_add(1) == 1) {
      arrived_.store(0);
      phase_.fetch_add(1);
      return;
    }
    for (int spins = 0; phase_.load() == phase; ++spins) {
      if (spins % 256 == 255) std::this_thread::yield();
    }
  }

 private:
  std::atomic<uint32_t> arrived_{0};
  std::atomic<uint32_t> phase_{0};
};

// With ejected and check_failed as two atomic<bool>s, each writer swapped its
// own flag and then read the other's to decide whether the endpoint changed:
//
//   worker:  ejected = true                      checker: check_failed = true
//   worker:  check_failed? yes: no increment     checker: ejected? yes: no increment
//
// left the endpoint out of rotation but uncounted, and the mirror image on the
// way back (both flags cleared, both writers see the other clear) decremented
// twice. Either way the unsigned count ended off by one per race; once below
// zero it wrapped, healthy_count() read 0 and Panic() stayed true, with every
// endpoint healthy, until the next table version. That code fails this test.
TEST(HealthWordRaceTest, EjectionsAndCheckVerdictsFromTwoThreadsKeepTheCountExact) {
  const config::Cluster c = MakeCluster(4);
  ClusterState s(c);
  config::OutlierDetection od;
  od.consecutive_5xx_errors = 1;
  od.base_ejection_time = std::chrono::milliseconds(1);
  od.max_ejection_percent = 100;
  constexpr int kIterations = 50'000;
  SpinBarrier barrier;

  // Each iteration both threads take one endpoint out together, then put it
  // back together: the two edges where the old code lost or doubled a count.
  std::thread outlier([&] {  // a worker ejecting, the control loop's sweep returning
    for (int n = 0; n < kIterations; ++n) {
      const int64_t now = int64_t{n} * kSecond;
      barrier.Wait();
      s.OnConnectFailure(n % s.size(), od, now);
      barrier.Wait();
      s.Sweep(now + 400 * kSecond, [](size_t) {});
    }
  });
  std::thread checker([&] {  // active health checks flipping their verdict, and a pick
    auto balancer = MakeBalancer(c);
    for (int n = 0; n < kIterations; ++n) {
      barrier.Wait();
      s.SetCheckFailed(n % s.size(), true);
      barrier.Wait();
      s.SetCheckFailed(n % s.size(), false);
      (void)balancer->Pick(s, {});
    }
  });
  outlier.join();
  checker.join();

  EXPECT_EQ(s.ready_count() - s.healthy_count(), CountUnhealthy(s));
  for (size_t i = 0; i < s.size(); ++i) s.SetCheckFailed(i, false);
  s.Sweep(int64_t{kIterations + 400} * kSecond, [](size_t) {});
  EXPECT_EQ(CountUnhealthy(s), 0u);
  EXPECT_EQ(s.healthy_count(), s.size());
  EXPECT_FALSE(s.Panic());
  EXPECT_EQ(s.ejected_count(), 0u);
}

// maxConnections is a compare-and-swap on the cluster's count, and each lease
// gives back exactly what it took, whichever way its connection ended.
TEST(ClusterStateRaceTest, LeasesFromTwoWorkersNeverPassTheCapAndAllComeBack) {
  const config::Cluster c = MakeCluster(3);
  ClusterState s(c);
  config::OutlierDetection od;
  od.consecutive_5xx_errors = 3;
  od.max_ejection_percent = 100;
  constexpr uint32_t kCap = 5;
  constexpr int kIterations = 100'000;
  std::atomic<uint32_t> over_cap{0};
  auto worker = [&](int seed) {
    auto balancer = MakeBalancer(c);
    std::vector<UpstreamLease> open;  // connections this worker keeps a while
    for (int n = 0; n < kIterations; ++n) {
      UpstreamLease lease = UpstreamLease::TryAcquire(s, kCap);
      if (s.active() > kCap) over_cap.fetch_add(1);
      if (!lease) {
        if (!open.empty()) open.erase(open.begin());
        continue;
      }
      const int i = balancer->Pick(s, {});
      if (i == kNoEndpoint) continue;
      lease.Pick(static_cast<uint32_t>(i));
      if ((n + seed) % 5 == 0) {
        lease.OnConnectFailed(&od, n);
        continue;
      }
      lease.OnConnected();
      if (n % 3 == 0) open.push_back(std::move(lease));
    }
  };
  std::thread a(worker, 0);
  std::thread b(worker, 2);
  a.join();
  b.join();
  EXPECT_EQ(over_cap.load(), 0u);
  EXPECT_EQ(s.active(), 0u);
  for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(s.endpoint(i).active.load(), 0u) << i;
}

}  // namespace
}  // namespace meshgate::lb
