// A worker's balancers carry over to the next snapshot for every cluster the
// update left alone (same cluster object, same health state), and only the
// changed cluster's balancer is built again.
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "proxy/snapshot.h"

namespace meshgate::proxy {
namespace {

config::Cluster Service(const std::string& host, const std::string& address) {
  config::Cluster c;
  c.host = host;
  c.port = 80;
  config::Endpoint e;
  e.address = address;
  e.port = 8080;
  c.endpoints = {e};
  return c;
}

std::shared_ptr<Snapshot> SnapshotOf(std::shared_ptr<const config::RouteTable> table,
                                     std::shared_ptr<lb::HealthTable> health, ClusterStatsRegistry& registry) {
  auto s = std::make_shared<Snapshot>();
  s->table = std::move(table);
  s->health = std::move(health);
  const TableStats stats = registry.StatsFor(*s->table);
  s->cluster_stats = stats.clusters;
  s->endpoint_stats = stats.endpoints;
  return s;
}

TEST(WorkerRoutesTest, BalancersOfUnchangedClustersCarryOver) {
  ClusterStatsRegistry registry;
  auto t1 = std::make_shared<const config::RouteTable>(
      std::vector<config::Cluster>{Service("a.ns.svc.cluster.local", "10.0.0.1"),
                                   Service("b.ns.svc.cluster.local", "10.0.0.2")},
      std::vector<config::SniRewrite>{});
  auto h1 = std::make_shared<lb::HealthTable>(*t1);
  WorkerRoutes first(SnapshotOf(t1, h1, registry));
  lb::Balancer* a = &first.BalancerFor(t1->clusters()[0]);
  lb::Balancer* b = &first.BalancerFor(t1->clusters()[1]);

  config::Cluster changed = t1->clusters()[1];
  changed.endpoints[0].address = "10.0.0.3";
  auto t2 = t1->WithCluster(changed);
  auto h2 = h1->WithCluster(t2->clusters()[1], t1->clusters()[1]);
  WorkerRoutes second(SnapshotOf(t2, h2, registry), &first);
  EXPECT_EQ(&second.BalancerFor(t2->clusters()[0]), a) << "unchanged cluster: the same balancer";
  EXPECT_NE(second.balancers[1].get(), b) << "changed cluster: not carried over";
  EXPECT_EQ(second.balancers[1], nullptr) << "built again on first use only";

  // A fresh health table (no shared state) carries nothing.
  WorkerRoutes third(SnapshotOf(t2, std::make_shared<lb::HealthTable>(*t2), registry), &second);
  EXPECT_EQ(third.balancers[0], nullptr);
}

}  // namespace
}  // namespace meshgate::proxy
