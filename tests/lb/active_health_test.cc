// Active health checks' verdicts without sockets: which endpoints a check
// covers, one target per address:port, thresholds, carry-over to a new table
// version, and the counters. The runtime only connects and feeds results.
#include "lb/active_health.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace meshgate::lb {
namespace {

config::Endpoint At(const std::string& address, uint16_t port) {
  config::Endpoint e;
  e.address = address;
  e.port = port;
  return e;
}

config::Cluster Cluster(const std::string& host, uint16_t port, std::vector<config::Endpoint> endpoints,
                        const std::string& subset = "") {
  config::Cluster c;
  c.host = host;
  c.port = port;
  c.subset = subset;
  c.endpoints = std::move(endpoints);
  return c;
}

HealthCheckSpec Spec(const std::string& host, uint16_t port = 0, uint32_t unhealthy = 2, uint32_t healthy = 2) {
  HealthCheckSpec s;
  s.host = host;
  s.port = port;
  s.unhealthy_threshold = unhealthy;
  s.healthy_threshold = healthy;
  return s;
}

struct Version {
  explicit Version(std::vector<config::Cluster> clusters)
      : table(std::make_shared<config::RouteTable>(std::move(clusters), std::vector<config::SniRewrite>{})),
        health(std::make_shared<HealthTable>(*table)) {}
  std::shared_ptr<const config::RouteTable> table;
  std::shared_ptr<HealthTable> health;
};

HealthCheckTarget& TargetAt(const ActiveHealthChecks& checks, const std::string& address, uint16_t port) {
  for (const auto& t : checks.targets()) {
    if (t->address() == address && t->port() == port) return *t;
  }
  throw std::out_of_range(address);
}

TEST(ActiveHealthTest, AChecksCoversExactOrWildcardHostsOnItsPortOrEveryPort) {
  const ActiveHealthChecks checks({Spec("a.example.com", 443), Spec("*.bar.svc.cluster.local"),
                                   Spec("a.example.com")});
  const HealthCheckSpec* first = checks.SpecFor(Cluster("a.example.com", 443, {}));
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->port, 443);  // the first match wins
  const HealthCheckSpec* any_port = checks.SpecFor(Cluster("a.example.com", 8443, {}));
  ASSERT_NE(any_port, nullptr);
  EXPECT_EQ(any_port->port, 0);
  EXPECT_NE(checks.SpecFor(Cluster("httpbin.bar.svc.cluster.local", 8000, {})), nullptr);
  EXPECT_EQ(checks.SpecFor(Cluster("bar.svc.cluster.local", 8000, {})), nullptr);  // *. needs a label
  EXPECT_EQ(checks.SpecFor(Cluster("b.example.com", 443, {})), nullptr);
}

TEST(ActiveHealthTest, OneTargetPerAddressAndPortHoweverManyClustersListIt) {
  ActiveHealthChecks checks({Spec("*.example.com")});
  Version v({Cluster("a.example.com", 443, {At("10.0.0.1", 80), At("10.0.0.2", 80)}),
             Cluster("a.example.com", 443, {At("10.0.0.1", 80)}, "v1"),
             Cluster("a.example.com", 8443, {At("10.0.0.1", 81)}),
             Cluster("unchecked.example.org", 443, {At("10.0.0.9", 80)})});
  checks.SetTable(*v.table, v.health);
  ASSERT_EQ(checks.targets().size(), 3u);
  const HealthCheckTarget& shared = TargetAt(checks, "10.0.0.1", 80);
  EXPECT_EQ(shared.clusters(), "outbound|443||a.example.com, outbound|443|v1|a.example.com");
  // Its verdict reaches every cluster listing it, and nothing else.
  HealthCheckTarget& target = TargetAt(checks, "10.0.0.1", 80);
  checks.OnProbeResult(target, false);
  EXPECT_EQ(checks.OnProbeResult(target, false), CheckTransition::kFailed);
  EXPECT_FALSE(v.health->cluster(0).Healthy(0));
  EXPECT_FALSE(v.health->cluster(1).Healthy(0));
  EXPECT_TRUE(v.health->cluster(0).Healthy(1));
  EXPECT_TRUE(v.health->cluster(2).Healthy(0));  // another port: another target
  EXPECT_EQ(v.health->cluster(0).endpoint(0).flags(), kCheckFailed);
}

TEST(ActiveHealthTest, ThresholdsCountResultsInARowAndEachTransitionOnce) {
  ActiveHealthChecks checks({Spec("a.example.com", 0, 3, 2)});
  Version v({Cluster("a.example.com", 443, {At("10.0.0.1", 80)})});
  checks.SetTable(*v.table, v.health);
  HealthCheckTarget& t = *checks.targets().front();
  const ClusterState& s = v.health->cluster(0);
  auto feed = [&](bool ok) {
    checks.OnProbeStarted();
    return checks.OnProbeResult(t, ok);
  };
  EXPECT_EQ(feed(false), CheckTransition::kNone);
  EXPECT_EQ(feed(false), CheckTransition::kNone);
  EXPECT_EQ(feed(true), CheckTransition::kNone);  // the streak starts over
  EXPECT_EQ(feed(false), CheckTransition::kNone);
  EXPECT_EQ(feed(false), CheckTransition::kNone);
  EXPECT_TRUE(s.Healthy(0));
  EXPECT_EQ(feed(false), CheckTransition::kFailed);
  EXPECT_TRUE(t.failed());
  EXPECT_FALSE(s.Healthy(0));
  EXPECT_EQ(feed(false), CheckTransition::kNone);  // already out: said once
  EXPECT_EQ(feed(true), CheckTransition::kNone);
  EXPECT_EQ(feed(false), CheckTransition::kNone);
  EXPECT_EQ(feed(true), CheckTransition::kNone);
  EXPECT_EQ(feed(true), CheckTransition::kPassed);
  EXPECT_TRUE(s.Healthy(0));
  EXPECT_EQ(checks.stats().probes.value(), 11u);
  EXPECT_EQ(checks.stats().failures.value(), 7u);
  EXPECT_EQ(checks.stats().transitions.value(), 2u);
}

TEST(ActiveHealthTest, AVerdictAndItsStreakCarryOverToTheNextTableVersion) {
  ActiveHealthChecks checks({Spec("a.example.com", 0, 2, 2)});
  Version before({Cluster("a.example.com", 443, {At("10.0.0.1", 80), At("10.0.0.2", 80)})});
  checks.SetTable(*before.table, before.health);
  checks.OnProbeResult(TargetAt(checks, "10.0.0.1", 80), false);
  checks.OnProbeResult(TargetAt(checks, "10.0.0.1", 80), false);  // failed
  checks.OnProbeResult(TargetAt(checks, "10.0.0.2", 80), false);  // one in a row
  // The next version lists them in another order, with one more.
  Version after({Cluster("a.example.com", 443, {At("10.0.0.3", 80), At("10.0.0.2", 80), At("10.0.0.1", 80)})});
  checks.SetTable(*after.table, after.health);
  const ClusterState& s = after.health->cluster(0);
  EXPECT_TRUE(s.Healthy(0));
  EXPECT_TRUE(s.Healthy(1));
  EXPECT_FALSE(s.Healthy(2));  // 10.0.0.1 is still failing
  EXPECT_EQ(checks.OnProbeResult(TargetAt(checks, "10.0.0.2", 80), false), CheckTransition::kFailed);
  EXPECT_FALSE(s.Healthy(1));
  EXPECT_EQ(checks.OnProbeResult(TargetAt(checks, "10.0.0.1", 80), true), CheckTransition::kNone);
  EXPECT_EQ(checks.OnProbeResult(TargetAt(checks, "10.0.0.1", 80), true), CheckTransition::kPassed);
  EXPECT_TRUE(s.Healthy(2));
  // A target no table lists any more is forgotten: its address starts afresh.
  Version gone({Cluster("a.example.com", 443, {At("10.0.0.3", 80)})});
  checks.SetTable(*gone.table, gone.health);
  Version back({Cluster("a.example.com", 443, {At("10.0.0.2", 80)})});
  checks.SetTable(*back.table, back.health);
  EXPECT_TRUE(back.health->cluster(0).Healthy(0));
}

TEST(ActiveHealthTest, VerdictsEndWithTheChecksThatReachedThem) {
  Version v({Cluster("a.example.com", 443, {At("10.0.0.1", 80), At("10.0.0.2", 80)})});
  {
    ActiveHealthChecks checks({Spec("a.example.com", 0, 1, 1)});
    checks.SetTable(*v.table, v.health);
    checks.OnProbeResult(TargetAt(checks, "10.0.0.1", 80), false);
    EXPECT_FALSE(v.health->cluster(0).Healthy(0));
  }
  // Checks reconfigured or removed: a new checker starts from a clean slate.
  EXPECT_TRUE(v.health->cluster(0).Healthy(0));
  EXPECT_EQ(v.health->cluster(0).healthy_count(), 2u);
}

TEST(ActiveHealthTest, TheCountersAreOneListForTheExportAndTheSummary) {
  ActiveHealthChecks checks({Spec("a.example.com", 0, 1, 1)});
  Version v({Cluster("a.example.com", 443, {At("10.0.0.1", 80)})});
  checks.SetTable(*v.table, v.health);
  checks.OnProbeStarted();
  checks.OnProbeResult(*checks.targets().front(), false);
  const HealthCheckStats* sets[] = {&checks.stats()};
  std::string summary;
  base::AppendSummary(summary, "health_check_", sets, 1, false);
  EXPECT_EQ(summary, "health_check_probes=1 health_check_failures=1 health_check_transitions=1");
}

}  // namespace
}  // namespace meshgate::lb

namespace meshgate::lb {
namespace {

// A reload that changes the checks (here only a threshold) keeps a failed
// address out of rotation: reconfigured in place, not torn down and rebuilt.
TEST(ActiveHealthTest, NewSpecsKeepTheVerdictsOfAddressesStillChecked) {
  Version v({Cluster("a.bar.svc.cluster.local", 80, {At("10.0.0.1", 80), At("10.0.0.2", 80)}),
             Cluster("b.foo.svc.cluster.local", 80, {At("10.0.0.3", 80)})});
  ActiveHealthChecks checks({Spec("*.bar.svc.cluster.local", 0, 1), Spec("*.foo.svc.cluster.local", 0, 1)});
  checks.SetTable(*v.table, v.health);
  checks.OnProbeResult(TargetAt(checks, "10.0.0.1", 80), false);
  checks.OnProbeResult(TargetAt(checks, "10.0.0.3", 80), false);
  ASSERT_FALSE(v.health->cluster(0).Healthy(0));
  ASSERT_FALSE(v.health->cluster(1).Healthy(0));

  // foo is no longer checked: its verdict is given back; bar's stays.
  checks.SetSpecs({Spec("*.bar.svc.cluster.local", 0, 3)});
  checks.SetTable(*v.table, v.health);
  EXPECT_FALSE(v.health->cluster(0).Healthy(0));
  EXPECT_TRUE(v.health->cluster(0).Healthy(1));
  EXPECT_TRUE(v.health->cluster(1).Healthy(0));
  EXPECT_EQ(v.health->cluster(0).healthy_count(), 1u);
  EXPECT_EQ(v.health->cluster(1).healthy_count(), 1u);
  EXPECT_EQ(TargetAt(checks, "10.0.0.1", 80).spec().unhealthy_threshold, 3u);
  EXPECT_EQ(checks.stats().transitions.value(), 2u);  // counters carry on
}

}  // namespace
}  // namespace meshgate::lb
