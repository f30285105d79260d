// The Istio series behind istio_tcp_*: one per (cluster, destination workload
// identity), reached from a table by [cluster id][endpoint index], kept across
// table versions; and the response flag each way a session ends maps to.
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "proxy/cluster_stats.h"
#include "proxy/snapshot.h"

namespace meshgate::proxy {
namespace {

config::WorkloadIdentity Identity(const std::string& name, const std::string& version) {
  return {.name = name, .ns = "bar", .app = "httpbin", .version = version};
}

config::Endpoint Ep(const std::string& address, config::WorkloadIdentity w) {
  config::Endpoint e;
  e.address = address;
  e.port = 8000;
  e.set_workload(w);
  return e;
}

std::shared_ptr<const config::RouteTable> Table(std::vector<config::Endpoint> endpoints) {
  config::Cluster c;
  c.name = "outbound|8000||httpbin.bar.svc.cluster.local";
  c.host = "httpbin.bar.svc.cluster.local";
  c.port = 8000;
  c.endpoints = std::move(endpoints);
  std::vector<config::Cluster> clusters;
  clusters.push_back(std::move(c));
  return std::make_shared<config::RouteTable>(std::move(clusters), std::vector<config::SniRewrite>{});
}

TEST(IstioStatsTest, EndpointsOfOneWorkloadShareASeriesAndSessionsWithoutOneHaveTheirOwn) {
  ClusterStatsRegistry registry;
  const auto table = Table({Ep("10.0.0.1", Identity("httpbin-v1", "v1")), Ep("10.0.0.2", Identity("httpbin-v1", "v1")),
                            Ep("10.0.0.3", Identity("httpbin-v2", "v2"))});
  const TableStats stats = registry.StatsFor(*table);
  ASSERT_EQ(stats.endpoints.size(), 1u);
  const auto& series = *stats.endpoints[0];
  ASSERT_EQ(series.size(), 4u);  // three endpoints, then "no endpoint"
  EXPECT_EQ(series[0], series[1]);
  EXPECT_NE(series[0], series[2]);
  EXPECT_EQ(series[2]->workload.name, "httpbin-v2");
  EXPECT_TRUE(series[0]->endpoint);
  EXPECT_FALSE(series[3]->endpoint);
  EXPECT_EQ(series[3]->workload.name, "");
  EXPECT_EQ(stats.clusters[0]->istio.size(), 3u);

  // Reached by index from a worker's view of the snapshot.
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->table = table;
  snapshot->cluster_stats = stats.clusters;
  snapshot->endpoint_stats = stats.endpoints;
  snapshot->health = std::make_shared<lb::HealthTable>(*table);
  const WorkerRoutes routes(snapshot);
  const config::Cluster& cluster = table->clusters()[0];
  EXPECT_EQ(routes.IstioStats(cluster, 2), series[2].get());
  EXPECT_EQ(routes.IstioStats(cluster, -1), series[3].get());
}

TEST(IstioStatsTest, SeriesSurviveANewTableAndIdleOnesGoneFromItAreDropped) {
  ClusterStatsRegistry registry;
  const TableStats first = registry.StatsFor(
      *Table({Ep("10.0.0.1", Identity("httpbin-v1", "v1")), Ep("10.0.0.3", Identity("httpbin-v2", "v2"))}));
  IstioTcpStats& v1 = *(*first.endpoints[0])[0];
  IstioTcpStats& v2 = *(*first.endpoints[0])[1];
  v1.opened[0].Inc();
  v1.closed[0].Inc();
  v2.opened[0].Inc();  // still open

  // v1 moves to another address; v2 is gone from the table but still open.
  const TableStats second = registry.StatsFor(*Table({Ep("10.0.0.9", Identity("httpbin-v1", "v1"))}));
  EXPECT_EQ((*second.endpoints[0])[0].get(), &v1);
  const auto& kept = second.clusters[0]->istio;
  EXPECT_EQ(kept.size(), 3u);  // v1, no endpoint, v2 (open)

  v2.closed[static_cast<size_t>(ResponseFlag::kDurationTimeout)].Inc();
  EXPECT_EQ(v2.open(), 0u);
  const TableStats third = registry.StatsFor(*Table({Ep("10.0.0.9", Identity("httpbin-v1", "v1"))}));
  EXPECT_EQ(third.clusters[0]->istio.size(), 2u);
  for (const auto& s : third.clusters[0]->istio) EXPECT_NE(s->workload.name, "httpbin-v2");
}

TEST(IstioStatsTest, ResponseFlagsAreEnvoysForEachEnd) {
  EXPECT_EQ(IstioResponseFlag(Termination::kNoEndpoints), ResponseFlag::kNoHealthyUpstream);
  EXPECT_EQ(IstioResponseFlag(Termination::kUpstreamOverflow), ResponseFlag::kUpstreamOverflow);
  EXPECT_EQ(IstioResponseFlag(Termination::kUpstreamConnectFailed), ResponseFlag::kConnectFailed);
  EXPECT_EQ(IstioResponseFlag(Termination::kMaxDuration), ResponseFlag::kDurationTimeout);
  for (Termination t : {Termination::kIdleTimeout, Termination::kDownstreamClose, Termination::kUpstreamClose,
                        Termination::kDownstreamError, Termination::kUpstreamError, Termination::kDrained,
                        Termination::kRbacDenied}) {
    EXPECT_EQ(IstioResponseFlag(t), ResponseFlag::kNone) << ToString(t);
  }
  // Never reached a filter chain, or matched none (the NR series counts
  // those from the termination counters).
  for (Termination t : {Termination::kNoRoute, Termination::kAlpnNotIstio, Termination::kNotTls,
                        Termination::kHelloTimeout, Termination::kHelloClosed, Termination::kHelloMalformed,
                        Termination::kHelloTooLarge}) {
    EXPECT_FALSE(IstioResponseFlag(t).has_value()) << ToString(t);
  }
  EXPECT_EQ(ToString(ResponseFlag::kNone), "-");
  EXPECT_EQ(ToString(ResponseFlag::kConnectFailed), "UF,URX");
  EXPECT_EQ(ToString(ResponseFlag::kNoRoute), "NR");
}

}  // namespace
}  // namespace meshgate::proxy
