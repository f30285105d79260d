// istio_tcp_* as RenderMetrics writes them: Istio's full label set for
// reporter "source", the gateway's source_* from its settings, the
// destination from the endpoint's workload identity, one series per
// response flag, and the one NR series.
#include <string>

#include "gtest/gtest.h"
#include "proxy/cluster_stats.h"
#include "proxy/runtime/metrics.h"

namespace meshgate::proxy {
namespace {

TEST(IstioSourceTest, FromTheGatewaysLabelsNamespaceAndClusterLikeIstiosNodeMetadata) {
  config::GatewayConfig settings;
  settings.gateway_namespace = "istio-system";
  settings.cluster_id = "cluster-1";
  settings.labels = {{"app", "istio-eastwestgateway"}, {"istio", "eastwestgateway"}, {"version", "v7"}};
  IstioSource s = IstioSourceOf(settings);
  EXPECT_EQ(s.workload, "istio-eastwestgateway");
  EXPECT_EQ(s.workload_namespace, "istio-system");
  EXPECT_EQ(s.app, "istio-eastwestgateway");
  EXPECT_EQ(s.version, "v7");
  EXPECT_EQ(s.cluster, "cluster-1");
  EXPECT_EQ(s.canonical_service, "istio-eastwestgateway");
  EXPECT_EQ(s.canonical_revision, "v7");
  EXPECT_EQ(s.principal, "unknown");

  settings.labels = {{"service.istio.io/workload-name", "eastwest"},
                     {"service.istio.io/canonical-name", "ew"},
                     {"app.kubernetes.io/version", "1.31"}};
  s = IstioSourceOf(settings);
  EXPECT_EQ(s.workload, "eastwest");
  EXPECT_EQ(s.canonical_service, "ew");
  EXPECT_EQ(s.canonical_revision, "1.31");
  EXPECT_EQ(s.app, "unknown");

  settings.labels = {};
  s = IstioSourceOf(settings);
  EXPECT_EQ(s.workload, "unknown");
  EXPECT_EQ(s.canonical_service, "unknown");
  EXPECT_EQ(s.canonical_revision, "latest");
}

TEST(IstioMetricsTest, FullLabelSetPerWorkloadAndFlag) {
  config::Cluster cluster;
  cluster.name = "outbound|8000||httpbin.bar.svc.cluster.local";
  cluster.host = "httpbin.bar.svc.cluster.local";
  auto stats = std::make_shared<ClusterStats>(cluster);
  auto v1 = std::make_shared<IstioTcpStats>(
      config::WorkloadIdentity{.name = "httpbin-v1", .ns = "bar", .app = "httpbin", .version = "v1",
                               .canonical_service = "httpbin", .canonical_revision = "v1"},
      true);
  auto none = std::make_shared<IstioTcpStats>(config::WorkloadIdentity{}, false);
  v1->opened[0].Inc(2);
  v1->closed[0].Inc(1);
  v1->opened[static_cast<size_t>(ResponseFlag::kConnectFailed)].Inc();
  v1->closed[static_cast<size_t>(ResponseFlag::kConnectFailed)].Inc();
  v1->sent_bytes.Inc(300);
  v1->received_bytes.Inc(200);
  none->opened[static_cast<size_t>(ResponseFlag::kUpstreamOverflow)].Inc();
  none->closed[static_cast<size_t>(ResponseFlag::kUpstreamOverflow)].Inc();
  stats->istio = {none, v1};
  ProxyStats worker;
  worker.terminations[static_cast<size_t>(Termination::kNoRoute)].Inc(3);
  worker.terminations[static_cast<size_t>(Termination::kAlpnNotIstio)].Inc(1);

  MetricsSnapshot snapshot;
  snapshot.workers = {&worker};
  snapshot.clusters = {stats};
  snapshot.istio_cluster_id = "cluster-1";
  config::GatewayConfig settings;
  settings.gateway_namespace = "istio-system";
  settings.cluster_id = "cluster-1";
  settings.labels = {{"app", "istio-eastwestgateway"}};
  snapshot.istio_source = IstioSourceOf(settings);
  const std::string text = RenderMetrics(snapshot);

  const std::string source =
      "reporter=\"source\",source_workload=\"istio-eastwestgateway\",source_workload_namespace=\"istio-system\","
      "source_principal=\"unknown\",source_app=\"istio-eastwestgateway\",source_version=\"unknown\","
      "source_cluster=\"cluster-1\",source_canonical_service=\"istio-eastwestgateway\","
      "source_canonical_revision=\"latest\",";
  const std::string v1_labels =
      "{" + source +
      "destination_workload=\"httpbin-v1\",destination_workload_namespace=\"bar\","
      "destination_principal=\"unknown\",destination_app=\"httpbin\",destination_version=\"v1\","
      "destination_service=\"httpbin.bar.svc.cluster.local\",destination_service_name=\"httpbin\","
      "destination_service_namespace=\"bar\",destination_cluster=\"cluster-1\","
      "destination_canonical_service=\"httpbin\",destination_canonical_revision=\"v1\","
      "request_protocol=\"tcp\",connection_security_policy=\"unknown\",response_flags=";
  EXPECT_NE(text.find("istio_tcp_connections_opened_total" + v1_labels + "\"-\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("istio_tcp_connections_closed_total" + v1_labels + "\"-\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("istio_tcp_connections_closed_total" + v1_labels + "\"UF,URX\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("istio_tcp_sent_bytes_total" + v1_labels + "\"-\"} 300\n"), std::string::npos);
  EXPECT_NE(text.find("istio_tcp_received_bytes_total" + v1_labels + "\"-\"} 200\n"), std::string::npos);
  EXPECT_EQ(text.find("istio_tcp_sent_bytes_total" + v1_labels + "\"UF,URX\"}"), std::string::npos);

  const std::string unknown_endpoint =
      "destination_workload=\"unknown\",destination_workload_namespace=\"unknown\","
      "destination_principal=\"unknown\",destination_app=\"unknown\",destination_version=\"unknown\","
      "destination_service=\"httpbin.bar.svc.cluster.local\",destination_service_name=\"httpbin\","
      "destination_service_namespace=\"bar\",destination_cluster=\"unknown\","
      "destination_canonical_service=\"unknown\",destination_canonical_revision=\"latest\","
      "request_protocol=\"tcp\",connection_security_policy=\"unknown\",response_flags=\"UO\"} 1\n";
  EXPECT_NE(text.find("istio_tcp_connections_opened_total{" + source + unknown_endpoint), std::string::npos) << text;

  const std::string nr =
      "destination_workload=\"unknown\",destination_workload_namespace=\"unknown\","
      "destination_principal=\"unknown\",destination_app=\"unknown\",destination_version=\"unknown\","
      "destination_service=\"unknown\",destination_service_name=\"unknown\","
      "destination_service_namespace=\"unknown\",destination_cluster=\"unknown\","
      "destination_canonical_service=\"unknown\",destination_canonical_revision=\"latest\","
      "request_protocol=\"tcp\",connection_security_policy=\"unknown\",response_flags=\"NR\"} 4\n";
  EXPECT_NE(text.find("istio_tcp_connections_closed_total{" + source + nr), std::string::npos) << text;
  EXPECT_EQ(text.find("reporter=\"destination\""), std::string::npos);
}

}  // namespace
}  // namespace meshgate::proxy
