// Balancers and endpoint health: rotation, weights (exact or chi-square),
// P2C against random on a skewed load, consistent-hash key movement, panic,
// outlier ejection and the connection cap. No sockets, no clocks.
#include "lb/balancer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace meshgate::lb {
namespace {

using Simple = config::LoadBalancerPolicy::Simple;
using Algorithm = config::ConsistentHashLb::Algorithm;

config::Cluster MakeCluster(int endpoints, std::vector<uint32_t> weights = {}) {
  config::Cluster c;
  for (int i = 0; i < endpoints; ++i) {
    config::Endpoint e;
    e.address = "10." + std::to_string(i / 65536 % 256) + "." + std::to_string(i / 256 % 256) +
                "." + std::to_string(i % 256);
    e.port = 80;
    if (!weights.empty()) e.weight = weights[i];
    c.endpoints.push_back(e);
  }
  return c;
}

config::Cluster WithSimple(config::Cluster c, Simple simple) {
  c.policy.load_balancer.emplace().simple = simple;
  return c;
}

config::Cluster WithHash(config::Cluster c, Algorithm algorithm) {
  config::ConsistentHashLb hash;
  hash.algorithm = algorithm;
  c.policy.load_balancer.emplace().consistent_hash = hash;
  return c;
}

std::vector<int> Counts(Balancer& b, const ClusterState& s, size_t n, int picks) {
  std::vector<int> counts(n, 0);
  for (int i = 0; i < picks; ++i) {
    const int idx = b.Pick(s, {});
    EXPECT_NE(idx, kNoEndpoint);
    if (idx != kNoEndpoint) ++counts[idx];
  }
  return counts;
}

double ChiSquare(const std::vector<int>& counts, const std::vector<uint32_t>& weights) {
  double total = 0, weight_sum = 0, chi = 0;
  for (int c : counts) total += c;
  for (uint32_t w : weights) weight_sum += w;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double expected = total * weights[i] / weight_sum;
    chi += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return chi;
}

// --- ROUND_ROBIN ---------------------------------------------------------------------

TEST(RoundRobinTest, RotatesEvenly) {
  const config::Cluster c = MakeCluster(3);
  ClusterState s(c);
  auto b = MakeBalancer(c);
  std::vector<int> order;
  for (int i = 0; i < 6; ++i) order.push_back(b->Pick(s, {}));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 0, 1, 2}));
}

TEST(RoundRobinTest, RetriesSkipTriedEndpointsWithoutMovingTheRotation) {
  const config::Cluster c = MakeCluster(3);
  ClusterState s(c);
  auto b = MakeBalancer(c);
  EXPECT_EQ(b->Pick(s, {}), 0);
  const std::vector<uint32_t> tried = {1};
  EXPECT_EQ(b->Pick(s, {0, tried}), 2);  // the retry of the connection that failed on 1
  EXPECT_EQ(b->Pick(s, {}), 1);          // the next connection still gets its turn
  const std::vector<uint32_t> all = {0, 1, 2};
  EXPECT_EQ(b->Pick(s, {0, all}), kNoEndpoint);
}

TEST(RoundRobinTest, NotReadyEndpointsTakeNoNewConnections) {
  config::Cluster c = MakeCluster(3);
  c.endpoints[1].ready = false;
  ClusterState s(c);
  auto b = MakeBalancer(c);
  EXPECT_EQ(Counts(*b, s, 3, 300), (std::vector<int>{150, 0, 150}));
}

TEST(RoundRobinTest, EmptyClusterHasNoEndpoint) {
  const config::Cluster c = MakeCluster(0);
  ClusterState s(c);
  EXPECT_EQ(MakeBalancer(c)->Pick(s, {}), kNoEndpoint);
}

TEST(RoundRobinTest, WeightsAreHonouredExactlyAndSmoothly) {
  const std::vector<uint32_t> weights = {5, 1, 1};
  const config::Cluster c = MakeCluster(3, weights);
  ClusterState s(c);
  auto b = MakeBalancer(c);
  std::vector<int> counts(3, 0);
  int run = 0, longest = 0, last = -1;
  for (int i = 0; i < 7000; ++i) {
    const int idx = b->Pick(s, {});
    ++counts[idx];
    run = idx == last ? run + 1 : 1;
    longest = std::max(longest, run);
    last = idx;
  }
  EXPECT_NEAR(counts[0], 5000, 2);
  EXPECT_NEAR(counts[1], 1000, 2);
  EXPECT_NEAR(counts[2], 1000, 2);
  // Plain weighted RR sends all 5 in a row; the schedule interleaves the light
  // ones (nginx's smooth WRR also reaches runs of 4 across its 7-pick cycle).
  EXPECT_LE(longest, 4);
}

TEST(RoundRobinTest, WeightsOfEveryClassAreHonouredToWithinAPick) {
  // Classes [1], [2,3], [4..7], [8..15]: members of a class share its turns by weight.
  const std::vector<uint32_t> weights = {1, 2, 3, 5, 8, 13};
  const config::Cluster c = MakeCluster(6, weights);
  ClusterState s(c);
  auto b = MakeBalancer(c);
  const std::vector<int> counts = Counts(*b, s, 6, 32000);
  for (size_t i = 0; i < weights.size(); ++i) {
    EXPECT_NEAR(counts[i], 1000.0 * weights[i], 3) << "weight " << weights[i];
  }
}

TEST(RoundRobinTest, WeightedSkipsUnhealthyEndpoints) {
  const config::Cluster c = MakeCluster(4, {3, 1, 1, 1});
  ClusterState s(c);
  s.SetCheckFailed(0, true);
  auto b = MakeBalancer(c);
  const std::vector<int> counts = Counts(*b, s, 4, 3000);
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[1] + counts[2] + counts[3], 3000);
}

// --- RANDOM and LEAST_REQUEST --------------------------------------------------------

// With no active connections P2C's ties go to the first draw: weighted random too.
class WeightedDrawTest : public ::testing::TestWithParam<Simple> {};

TEST_P(WeightedDrawTest, DistributionPassesChiSquare) {
  const std::vector<uint32_t> weights = {1, 2, 3, 4};
  const config::Cluster c = WithSimple(MakeCluster(4, weights), GetParam());
  ClusterState s(c);
  auto b = MakeBalancer(c);
  // df = 3; 30.66 is the p = 1e-6 critical value. (At p = 0.001, 16.27, a
  // correct balancer failed one CI run in a few hundred; a wrong weighting
  // over 100,000 draws scores in the thousands.)
  EXPECT_LT(ChiSquare(Counts(*b, s, 4, 100000), weights), 30.66);
}

INSTANTIATE_TEST_SUITE_P(Policies, WeightedDrawTest,
                         ::testing::Values(Simple::kRandom, Simple::kLeastRequest),
                         [](const auto& info) {
                           return info.param == Simple::kRandom ? "Random" : "LeastRequest";
                         });

// Connections to endpoint 0 last ten times longer. Balancers that look at
// active connections keep its backlog down; random doesn't.
double PeakActiveOnSlowEndpoint(Simple simple) {
  const config::Cluster c = WithSimple(MakeCluster(10), simple);
  ClusterState s(c);
  auto b = MakeBalancer(c);
  std::multimap<int, int> ends;  // time -> endpoint
  double sum = 0;
  constexpr int kSteps = 20000;
  for (int t = 0; t < kSteps; ++t) {
    while (!ends.empty() && ends.begin()->first <= t) {
      s.endpoint(ends.begin()->second).active.fetch_sub(1);
      ends.erase(ends.begin());
    }
    const int idx = b->Pick(s, {});
    s.endpoint(idx).active.fetch_add(1);
    ends.emplace(t + (idx == 0 ? 100 : 10), idx);
    sum += s.endpoint(0).active.load();
  }
  return sum / kSteps;
}

TEST(LeastRequestTest, PowerOfTwoChoicesBeatsRandomOnASkewedLoad) {
  const double random = PeakActiveOnSlowEndpoint(Simple::kRandom);
  const double p2c = PeakActiveOnSlowEndpoint(Simple::kLeastRequest);
  // Random: 1/10 of 1 new connection per step x 100 steps = ~10 open on the slow one.
  EXPECT_GT(random, 8.0);
  EXPECT_LT(p2c, random / 2) << "random " << random << " p2c " << p2c;
}

TEST(LeastRequestTest, PrefersTheLessLoadedPerUnitOfWeight) {
  const config::Cluster c = WithSimple(MakeCluster(2, {1, 3}), Simple::kLeastRequest);
  ClusterState s(c);
  s.endpoint(0).active = 2;  // 2 per unit of weight
  s.endpoint(1).active = 3;  // 1 per unit of weight
  auto b = MakeBalancer(c);
  const std::vector<int> counts = Counts(*b, s, 2, 1000);
  // Whenever both are drawn the heavier one wins; endpoint 0 wins only when drawn twice.
  EXPECT_LT(counts[0], 150);
}

// --- consistentHash --------------------------------------------------------------------

// Which endpoint address each of `keys` maps to.
std::vector<std::string> Assign(const config::Cluster& c, int keys) {
  ClusterState s(c);
  auto b = MakeBalancer(c);
  std::vector<std::string> out;
  for (int k = 0; k < keys; ++k) {
    const int idx = b->Pick(s, {Hash64("client-" + std::to_string(k))});
    out.push_back(c.endpoints.at(idx).address);
  }
  return out;
}

class ConsistentHashTest : public ::testing::TestWithParam<Algorithm> {};

TEST_P(ConsistentHashTest, RemovingOneOfNEndpointsMovesAboutOneNthOfTheKeys) {
  constexpr int kEndpoints = 50;
  constexpr int kKeys = 100000;
  const config::Cluster before = WithHash(MakeCluster(kEndpoints), GetParam());
  config::Cluster after = before;
  const std::string removed = after.endpoints[17].address;
  after.endpoints.erase(after.endpoints.begin() + 17);
  const std::vector<std::string> a = Assign(before, kKeys);
  const std::vector<std::string> b = Assign(after, kKeys);
  int moved = 0, moved_elsewhere = 0, on_removed = 0;
  for (int k = 0; k < kKeys; ++k) {
    on_removed += a[k] == removed;
    if (a[k] == b[k]) continue;
    ++moved;
    moved_elsewhere += a[k] != removed;
  }
  const double share = static_cast<double>(moved) / kKeys;
  EXPECT_GT(share, 0.5 / kEndpoints);
  EXPECT_LT(share, 1.6 / kEndpoints) << "moved " << moved;
  EXPECT_EQ(moved - moved_elsewhere, on_removed);  // every key of the removed endpoint moved
  if (GetParam() == Algorithm::kRingHash) EXPECT_EQ(moved_elsewhere, 0);
}

TEST_P(ConsistentHashTest, KeysSpreadOverEndpointsByWeight) {
  const std::vector<uint32_t> weights = {1, 1, 2, 4};
  const config::Cluster c = WithHash(MakeCluster(4, weights), GetParam());
  ClusterState s(c);
  auto b = MakeBalancer(c);
  std::vector<int> counts(4, 0);
  for (int k = 0; k < 80000; ++k) ++counts[b->Pick(s, {Hash64("k" + std::to_string(k))})];
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(counts[i] / 80000.0, weights[i] / 8.0, 0.05) << i;
  }
}

TEST_P(ConsistentHashTest, AnUnhealthyEndpointsKeysGoElsewhereAndOthersStay) {
  const config::Cluster c = WithHash(MakeCluster(8), GetParam());
  ClusterState s(c);
  auto b = MakeBalancer(c);
  std::vector<int> before;
  for (int k = 0; k < 5000; ++k) before.push_back(b->Pick(s, {Hash64("k" + std::to_string(k))}));
  s.SetCheckFailed(3, true);
  for (int k = 0; k < 5000; ++k) {
    const int now = b->Pick(s, {Hash64("k" + std::to_string(k))});
    if (before[k] == 3) {
      EXPECT_NE(now, 3);
    } else {
      EXPECT_EQ(now, before[k]);
    }
  }
  // The same key also fails over past a tried endpoint, deterministically.
  const uint64_t key = Hash64("k0");
  const std::vector<uint32_t> tried = {static_cast<uint32_t>(b->Pick(s, {key}))};
  const int retry = b->Pick(s, {key, tried});
  EXPECT_NE(retry, static_cast<int>(tried[0]));
  EXPECT_EQ(b->Pick(s, {key, tried}), retry);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, ConsistentHashTest,
                         ::testing::Values(Algorithm::kRingHash, Algorithm::kMaglev),
                         [](const auto& info) {
                           return info.param == Algorithm::kMaglev ? "Maglev" : "RingHash";
                         });

TEST(PolicyNameTest, FromTheDestinationRule) {
  EXPECT_EQ(PolicyName(MakeCluster(1)), "ROUND_ROBIN");
  EXPECT_EQ(PolicyName(WithSimple(MakeCluster(1), Simple::kLeastRequest)), "LEAST_REQUEST");
  EXPECT_EQ(PolicyName(WithSimple(MakeCluster(1), Simple::kRandom)), "RANDOM");
  EXPECT_EQ(PolicyName(WithHash(MakeCluster(1), Algorithm::kMaglev)), "MAGLEV");
  EXPECT_EQ(PolicyName(WithHash(MakeCluster(1), Algorithm::kRingHash)), "RING_HASH");
}

// --- health ------------------------------------------------------------------------------

TEST(PanicTest, BelowHalfHealthyBalancesAcrossAllReadyEndpoints) {
  const config::Cluster c = MakeCluster(4);
  ClusterState s(c);
  auto b = MakeBalancer(c);
  s.SetCheckFailed(0, true);
  s.SetCheckFailed(1, true);
  EXPECT_FALSE(s.Panic());  // 2 of 4 healthy: exactly at 50%, not below
  EXPECT_EQ(Counts(*b, s, 4, 400), (std::vector<int>{0, 0, 200, 200}));
  s.SetCheckFailed(2, true);
  EXPECT_TRUE(s.Panic());
  EXPECT_EQ(Counts(*b, s, 4, 400), (std::vector<int>{100, 100, 100, 100}));
  s.SetCheckFailed(0, false);
  EXPECT_FALSE(s.Panic());
  EXPECT_EQ(s.healthy_count(), 2u);
}

config::OutlierDetection Od(uint32_t errors, uint32_t max_percent = 100) {
  config::OutlierDetection od;
  od.consecutive_5xx_errors = errors;
  od.base_ejection_time = std::chrono::seconds(30);
  od.max_ejection_percent = max_percent;
  return od;
}

constexpr int64_t kSecond = 1'000'000'000;

TEST(OutlierTest, ConsecutiveFailuresEjectAndASuccessResetsTheCount) {
  const config::Cluster c = MakeCluster(3);
  ClusterState s(c);
  const config::OutlierDetection od = Od(3);
  EXPECT_EQ(s.OnConnectFailure(0, od, 0), HealthChange::kNone);
  EXPECT_EQ(s.OnConnectFailure(0, od, 0), HealthChange::kNone);
  s.OnConnectSuccess(0);
  EXPECT_EQ(s.OnConnectFailure(0, od, 0), HealthChange::kNone);
  EXPECT_EQ(s.OnConnectFailure(0, od, 0), HealthChange::kNone);
  EXPECT_EQ(s.OnConnectFailure(0, od, 0), HealthChange::kEjected);
  EXPECT_FALSE(s.Healthy(0));
  EXPECT_EQ(s.OnConnectFailure(0, od, 0), HealthChange::kNone);  // logged once, not per failure
  EXPECT_EQ(s.ejected_count(), 1u);
  auto b = MakeBalancer(c);
  EXPECT_EQ(Counts(*b, s, 3, 100)[0], 0);
}

TEST(OutlierTest, EjectionLastsBaseTimesEjectionsAndSweepReturnsIt) {
  const config::Cluster c = MakeCluster(2);
  ClusterState s(c);
  const config::OutlierDetection od = Od(1);
  std::vector<size_t> returned;
  auto sweep = [&](int64_t now) { s.Sweep(now, [&](size_t i) { returned.push_back(i); }); };
  ASSERT_EQ(s.OnConnectFailure(1, od, 0), HealthChange::kEjected);
  sweep(29 * kSecond);
  EXPECT_TRUE(returned.empty());
  sweep(30 * kSecond);
  EXPECT_EQ(returned, std::vector<size_t>{1});
  EXPECT_TRUE(s.Healthy(1));
  // Second ejection: twice as long.
  ASSERT_EQ(s.OnConnectFailure(1, od, 100 * kSecond), HealthChange::kEjected);
  sweep(159 * kSecond);
  EXPECT_EQ(returned.size(), 1u);
  sweep(160 * kSecond);
  EXPECT_EQ(returned.size(), 2u);
  EXPECT_EQ(s.endpoint(1).ejections.load(), 2u);
}

TEST(OutlierTest, EjectionTimeIsCappedAtFiveMinutes) {
  const config::Cluster c = MakeCluster(1);
  ClusterState s(c);
  const config::OutlierDetection od = Od(1);
  for (int i = 0; i < 20; ++i) {
    const int64_t now = int64_t{i} * 1000 * kSecond;
    ASSERT_EQ(s.OnConnectFailure(0, od, now), HealthChange::kEjected) << i;
    EXPECT_LE(s.endpoint(0).ejected_until_ns.load() - now, 300 * kSecond);
    s.Sweep(now + 300 * kSecond, [](size_t) {});
  }
}

TEST(OutlierTest, MaxEjectionPercentKeepsTheRestInRotation) {
  const config::Cluster c = MakeCluster(4);
  ClusterState s(c);
  const config::OutlierDetection od = Od(1, 50);
  EXPECT_EQ(s.OnConnectFailure(0, od, 0), HealthChange::kEjected);
  EXPECT_EQ(s.OnConnectFailure(1, od, 0), HealthChange::kEjected);
  EXPECT_EQ(s.OnConnectFailure(2, od, 0), HealthChange::kNone);  // 50% already out
  EXPECT_EQ(s.ejected_count(), 2u);
  // Istio's default 10% still lets one of a small cluster go.
  ClusterState small(MakeCluster(3));
  EXPECT_EQ(small.OnConnectFailure(0, Od(1, 10), 0), HealthChange::kEjected);
  EXPECT_EQ(small.OnConnectFailure(1, Od(1, 10), 0), HealthChange::kNone);
}

TEST(ConnectionCapTest, TryAcquireStopsAtTheCap) {
  ClusterState s(MakeCluster(1));
  EXPECT_TRUE(s.TryAcquire(2));
  EXPECT_TRUE(s.TryAcquire(2));
  EXPECT_FALSE(s.TryAcquire(2));
  s.Release();
  EXPECT_TRUE(s.TryAcquire(2));
  EXPECT_EQ(s.active(), 2u);
}

TEST(DescribeTest, EveryEndpointWithItsHealthAndCounts) {
  std::vector<config::Cluster> clusters = {WithSimple(MakeCluster(3), Simple::kLeastRequest)};
  clusters[0].host = "a.example.com";
  clusters[0].port = 443;
  clusters[0].source = "test";
  clusters[0].endpoints[2].ready = false;
  clusters[0].endpoints[0].set_locality("us-east1/b");
  const config::RouteTable table(clusters, {});
  HealthTable health(table);
  ClusterState& s = health.cluster(0);
  s.OnConnectFailure(1, Od(1), 0);
  s.endpoint(0).active = 4;
  s.endpoint(0).total = 9;
  const std::vector<ClusterView> views = Describe(table, health);
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0].name, "outbound|443||a.example.com");
  EXPECT_EQ(views[0].policy, "LEAST_REQUEST");
  ASSERT_EQ(views[0].endpoints.size(), 3u);
  EXPECT_EQ(views[0].endpoints[0].health, "healthy");
  EXPECT_EQ(views[0].endpoints[0].locality, "us-east1/b");
  EXPECT_EQ(views[0].endpoints[0].active, 4u);
  EXPECT_EQ(views[0].endpoints[0].total, 9u);
  EXPECT_EQ(views[0].endpoints[1].health, "ejected");
  EXPECT_EQ(views[0].endpoints[1].ejections, 1u);
  EXPECT_EQ(views[0].endpoints[2].health, "not_ready");
}

}  // namespace
}  // namespace meshgate::lb

namespace meshgate::lb {
namespace {

// --- locality ----------------------------------------------------------------------------

config::Cluster LocalityCluster(const std::vector<std::string>& localities, bool outlier_detection) {
  config::Cluster c = MakeCluster(static_cast<int>(localities.size()));
  for (size_t i = 0; i < localities.size(); ++i) c.endpoints[i].set_locality(localities[i]);
  if (outlier_detection) c.policy.outlier_detection.emplace();
  return c;
}

std::vector<int> LocalityCounts(const config::Cluster& c, ClusterState& s, int picks,
                                const std::string& self = "us-east/a/1") {
  auto b = MakeBalancer(c, {self});
  std::vector<int> counts(c.endpoints.size(), 0);
  for (int i = 0; i < picks; ++i) ++counts.at(b->Pick(s, {}));
  return counts;
}

const std::vector<std::string> kSpread = {"us-east/a/1", "us-east/a/1", "us-east/b/1",
                                          "us-east/b/1", "eu-west/x/1", "eu-west/x/1"};

TEST(LocalityTest, WithOutlierDetectionTheNearestLocalityTakesEverything) {
  const config::Cluster c = LocalityCluster(kSpread, true);
  ClusterState s(c);
  EXPECT_EQ(LocalityCounts(c, s, 600), (std::vector<int>{300, 300, 0, 0, 0, 0}));
}

TEST(LocalityTest, WithoutOutlierDetectionOrWhenDisabledLocalityIsIgnored) {
  const config::Cluster plain = LocalityCluster(kSpread, false);
  ClusterState s(plain);
  EXPECT_EQ(LocalityCounts(plain, s, 600), std::vector<int>(6, 100));
  config::Cluster disabled = LocalityCluster(kSpread, true);
  disabled.policy.load_balancer.emplace().locality.emplace().enabled = false;
  ClusterState d(disabled);
  EXPECT_EQ(LocalityCounts(disabled, d, 600), std::vector<int>(6, 100));
  // Nor without the gateway's own locality.
  ClusterState u(plain);
  auto b = MakeBalancer(LocalityCluster(kSpread, true), {});
  std::vector<int> counts(6, 0);
  for (int i = 0; i < 600; ++i) ++counts[b->Pick(u, {})];
  EXPECT_EQ(counts, std::vector<int>(6, 100));
}

TEST(LocalityTest, AHalfHealthyLocalityKeepsSeventyPercentAndSpillsTheRest) {
  const config::Cluster c = LocalityCluster(kSpread, true);
  ClusterState s(c);
  s.SetCheckFailed(1, true);  // us-east/a/1 is 50% healthy: 0.5 x 1.4 = 70% of the load
  const std::vector<int> counts = LocalityCounts(c, s, 20000);
  EXPECT_EQ(counts[1], 0);
  EXPECT_NEAR(counts[0] / 20000.0, 0.70, 0.02);
  EXPECT_NEAR((counts[2] + counts[3]) / 20000.0, 0.30, 0.02);  // the same region's next zone
  EXPECT_EQ(counts[4] + counts[5], 0);
}

TEST(LocalityTest, FailoverGoesToTheNamedRegionBeforeTheRest) {
  config::Cluster c = LocalityCluster({"us-east/a/1", "us-east/a/1", "ap-south/p/1",
                                       "ap-south/p/1", "eu-west/x/1", "eu-west/x/1"},
                                      true);
  c.policy.load_balancer.emplace().locality.emplace().failover = {{"us-east", "eu-west"}};
  ClusterState s(c);
  s.SetCheckFailed(0, true);
  s.SetCheckFailed(1, true);
  EXPECT_EQ(LocalityCounts(c, s, 600), (std::vector<int>{0, 0, 0, 0, 300, 300}));
}

TEST(LocalityTest, DistributeSplitsByWeight) {
  config::Cluster c = LocalityCluster(kSpread, false);
  config::LocalityLbSetting::Distribute rule;
  rule.from = "us-east/*";
  rule.to = {{"us-east/a/*", 80}, {"eu-west/*", 20}};
  c.policy.load_balancer.emplace().locality.emplace().distribute = {rule};
  ClusterState s(c);
  const std::vector<int> counts = LocalityCounts(c, s, 20000);
  EXPECT_NEAR((counts[0] + counts[1]) / 20000.0, 0.80, 0.02);
  EXPECT_NEAR((counts[4] + counts[5]) / 20000.0, 0.20, 0.02);
  EXPECT_EQ(counts[2] + counts[3], 0);  // us-east/b is no target
  // A rule for another source locality doesn't apply.
  ClusterState t(c);
  EXPECT_EQ(LocalityCounts(c, t, 600, "eu-west/x/1"), std::vector<int>(6, 100));
}

}  // namespace
}  // namespace meshgate::lb

namespace meshgate::lb {
namespace {

TEST(HealthTableTest, EjectionsCarryOverToTheNextTableVersionByAddress) {
  config::Cluster c = MakeCluster(3);
  c.host = "a.example.com";
  c.port = 443;
  c.source = "test";
  const config::RouteTable before({c}, {});
  HealthTable old_health(before);
  config::OutlierDetection od;
  od.consecutive_5xx_errors = 1;
  od.max_ejection_percent = 100;
  ASSERT_EQ(old_health.cluster(0).OnConnectFailure(1, od, 5), HealthChange::kEjected);
  old_health.cluster(0).endpoint(1).active = 7;
  // The next version lists the endpoints in another order, one gone, one new.
  config::Cluster next = c;
  next.endpoints = {c.endpoints[2], c.endpoints[1]};
  next.endpoints.push_back(MakeCluster(4).endpoints[3]);
  const config::RouteTable after({next}, {});
  HealthTable health(after, before, old_health);
  const ClusterState& s = health.cluster(0);
  EXPECT_TRUE(s.Healthy(0));
  EXPECT_FALSE(s.Healthy(1));  // 10.0.0.1, still ejected
  EXPECT_EQ(s.endpoint(1).ejections.load(), 1u);
  EXPECT_EQ(s.endpoint(1).ejected_until_ns.load(), old_health.cluster(0).endpoint(1).ejected_until_ns.load());
  EXPECT_EQ(s.endpoint(1).active.load(), 0u);  // counts stay with the old version
  EXPECT_EQ(s.ejected_count(), 1u);
  EXPECT_EQ(s.healthy_count(), 2u);
  EXPECT_TRUE(s.Healthy(2));
}

}  // namespace
}  // namespace meshgate::lb
