// Incremental route updates (issue 14, part 3): a new version of one cluster
// shares every other cluster object, and the health state built on them,
// with the version before; a full reload reuses what did not change.
#include <malloc.h>

#include <memory>
#include <string>
#include <vector>

#include "config/model/route_table.h"
#include "gtest/gtest.h"
#include "lb/cluster_state.h"

namespace meshgate::lb {
namespace {

using config::Cluster;
using config::Endpoint;
using config::RouteTable;

Endpoint Ep(const std::string& address, bool ready = true) {
  Endpoint e;
  e.address = address;
  e.port = 8080;
  e.ready = ready;
  return e;
}

Cluster Service(int i, std::vector<Endpoint> endpoints) {
  Cluster c;
  c.host = "svc" + std::to_string(i) + ".ns.svc.cluster.local";
  c.port = 80;
  c.endpoints = std::move(endpoints);
  return c;
}

// `n` services of three endpoints each, more than one chunk of clusters.
std::vector<Cluster> Services(int n) {
  std::vector<Cluster> out;
  for (int i = 0; i < n; ++i) {
    const std::string net = "10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".";
    out.push_back(Service(i, {Ep(net + "1"), Ep(net + "2"), Ep(net + "3")}));
  }
  return out;
}

std::shared_ptr<const RouteTable> Table(std::vector<Cluster> clusters) {
  return std::make_shared<const RouteTable>(std::move(clusters), std::vector<config::SniRewrite>{});
}

// Every cluster but `except` is the very same object in both tables.
void ExpectSharedBut(const RouteTable& a, const RouteTable& b, uint32_t except) {
  ASSERT_EQ(a.clusters().size(), b.clusters().size());
  for (uint32_t id = 0; id < a.clusters().size(); ++id) {
    if (id == except) {
      EXPECT_NE(a.cluster_ptr(id), b.cluster_ptr(id)) << id;
    } else {
      EXPECT_EQ(a.cluster_ptr(id), b.cluster_ptr(id)) << id;
    }
  }
}

TEST(IncrementalRouteTest, EndpointAddChangesOnlyThatCluster) {
  const auto v1 = Table(Services(200));
  Cluster next = v1->clusters()[150];
  next.endpoints.push_back(Ep("10.99.0.4"));
  const auto v2 = v1->WithCluster(next);
  ExpectSharedBut(*v1, *v2, 150);
  EXPECT_EQ(v2->clusters()[150].id, 150u);
  EXPECT_EQ(v2->clusters()[150].endpoints.size(), 4u);
  EXPECT_EQ(v1->clusters()[150].endpoints.size(), 3u) << "the old version is immutable";
  const auto routed = v2->Route("outbound_.80_._.svc150.ns.svc.cluster.local");
  ASSERT_NE(routed.cluster, nullptr);
  EXPECT_EQ(routed.cluster->endpoints.back().address, "10.99.0.4");
  EXPECT_EQ(v2->FindByName(next.name), &v2->clusters()[150]);
}

TEST(IncrementalRouteTest, UnknownClusterOrChangedIdentityIsRefused) {
  const auto v1 = Table(Services(3));
  Cluster stranger = Service(7, {Ep("10.0.0.7")});
  stranger.name = "outbound|80||svc7.ns.svc.cluster.local";
  EXPECT_THROW(v1->WithCluster(stranger), std::invalid_argument);
  Cluster moved = v1->clusters()[1];
  moved.port = 81;
  EXPECT_THROW(v1->WithCluster(moved), std::invalid_argument);
}

TEST(IncrementalRouteTest, RemoveAndReadinessFlipKeepOtherClustersHealth) {
  const auto v1 = Table(Services(100));
  HealthTable h1(*v1);
  config::OutlierDetection od;
  od.consecutive_5xx_errors = 1;
  od.max_ejection_percent = 100;
  // Cluster 3's endpoint 0 and cluster 70's endpoint 2 are ejected.
  ASSERT_EQ(h1.cluster(3).OnConnectFailure(0, od, 1), HealthChange::kEjected);
  ASSERT_EQ(h1.cluster(70).OnConnectFailure(2, od, 1), HealthChange::kEjected);

  Cluster next = v1->clusters()[70];
  next.endpoints.erase(next.endpoints.begin());  // remove 10.0.70.1
  next.endpoints[0].ready = false;                // flip 10.0.70.2
  const auto v2 = v1->WithCluster(next);
  ExpectSharedBut(*v1, *v2, 70);
  const auto h2 = h1.WithCluster(v2->clusters()[70], v1->clusters()[70]);
  for (uint32_t id = 0; id < 100; ++id) {
    if (id != 70) EXPECT_EQ(h2->state_ptr(id), h1.state_ptr(id)) << id;
  }
  EXPECT_TRUE(h2->cluster(3).endpoint(0).ejected()) << "another cluster's ejection carries over";
  const ClusterState& changed = h2->cluster(70);
  ASSERT_EQ(changed.size(), 2u);
  EXPECT_FALSE(changed.Ready(0));
  EXPECT_EQ(changed.ready_count(), 1u);
  EXPECT_TRUE(changed.endpoint(1).ejected()) << "10.0.70.3 keeps its ejection by address";
  EXPECT_NE(h2->state_ptr(70), h1.state_ptr(70));
}

TEST(IncrementalRouteTest, FullReloadReusesUnchangedClustersAndKeepsIds) {
  const auto v1 = Table(Services(100));
  std::vector<Cluster> reloaded = Services(100);
  reloaded[42].endpoints.push_back(Ep("10.42.42.42"));
  reloaded.erase(reloaded.begin() + 10);   // svc10 gone
  reloaded.push_back(Service(500, {Ep("10.5.0.1")}));  // svc500 new
  const auto v2 = RouteTable::Reuse(*v1, *Table(reloaded));
  ASSERT_EQ(v2->clusters().size(), 100u);
  for (uint32_t id = 0; id < 100; ++id) {
    const Cluster& c = v2->clusters()[id];
    EXPECT_EQ(c.id, id);
    if (c.host == "svc500.ns.svc.cluster.local") {
      EXPECT_EQ(id, 10u) << "a new cluster takes the id left free";
    } else if (id == 42) {
      EXPECT_NE(v2->cluster_ptr(id), v1->cluster_ptr(id));
      EXPECT_EQ(c.endpoints.size(), 4u);
    } else {
      EXPECT_EQ(v2->cluster_ptr(id), v1->cluster_ptr(id)) << c.name;
    }
  }
  EXPECT_EQ(v2->Find("svc10.ns.svc.cluster.local", 80, ""), nullptr);
  ASSERT_NE(v2->Route("outbound_.80_._.svc500.ns.svc.cluster.local").cluster, nullptr);
  // The health table built on the diff shares every unchanged cluster's state.
  HealthTable h1(*v1);
  HealthTable h2(*v2, *v1, h1);
  EXPECT_EQ(h2.state_ptr(0), h1.state_ptr(0));
  EXPECT_NE(h2.state_ptr(42), h1.state_ptr(42));
  EXPECT_NE(h2.state_ptr(10), h1.state_ptr(10));
}

// 100,000 updates, each dropping the version before: what the table holds
// stays the same (glibc's in-use bytes, mallinfo2).
TEST(IncrementalRouteTest, MemoryStaysFlatAcrossManyUpdates) {
  auto table = Table(Services(1000));
  auto health = std::make_shared<HealthTable>(*table);
  auto update = [&](int i) {
    Cluster next = table->clusters()[i % 1000];
    next.endpoints[i % 3].ready = !next.endpoints[i % 3].ready;
    auto after = table->WithCluster(std::move(next));
    health = health->WithCluster(after->clusters()[i % 1000], table->clusters()[i % 1000]);
    table = std::move(after);
  };
  for (int i = 0; i < 1000; ++i) update(i);  // warm up the allocator's free lists
  const size_t before = mallinfo2().uordblks;
  for (int i = 0; i < 100'000; ++i) update(i);
  const size_t after = mallinfo2().uordblks;
  EXPECT_LT(after, before + 64 * 1024) << "before " << before << " after " << after;
}

}  // namespace
}  // namespace meshgate::lb
