// The gateway's network view, each endpoint's network and workload identity,
// and DestinationRule merging, as Istio (master, Aug 2026) decides them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/mesh/mesh_loader.h"
#include "tests/config/mesh_test_util.h"

namespace meshgate::config {
namespace {

using testing::ExportAll;
using testing::Lines;
using testing::LoadYaml;

// A STATIC ServiceEntry a.example.com (bar) with inline endpoints (YAML flow list).
std::string Entry(const std::string& endpoints) {
  return "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
         "metadata: {name: a, namespace: bar}\n"
         "spec:\n  hosts: [a.example.com]\n  ports: [{number: 443, name: tls, protocol: TLS}]\n"
         "  resolution: STATIC\n  endpoints: " + endpoints + "\n";
}

std::string Namespace(const std::string& name, const std::string& network) {
  return "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name +
         "\n  labels: {topology.istio.io/network: " + network + "}\n";
}

const std::string kThreeNetworks =
    Entry("[{address: 10.0.0.1, network: n1}, {address: 10.0.0.2, network: n2}, "
          "{address: 10.0.0.3}, {address: 10.0.0.4, labels: {topology.istio.io/network: n3}}]");

Lines Addresses(const std::vector<Endpoint>& endpoints) {
  Lines out;
  for (const Endpoint& e : endpoints) out.push_back(e.address + "@" + std::string(e.network()));
  return out;
}

TEST(NetworkViewTest, UnsetNetworkAndNoRequestedViewSeesEverything) {
  // pilot/pkg/model/proxy_view.go: ProxyViewAll.
  const MeshLoadResult result = LoadYaml(ExportAll() + kThreeNetworks);
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* cluster = result.table->Find("a.example.com", 443, "");
  EXPECT_EQ(Addresses(cluster->endpoints),
            (Lines{"10.0.0.1@n1", "10.0.0.2@n2", "10.0.0.3@", "10.0.0.4@n3"}));
  EXPECT_TRUE(cluster->out_of_view.empty());
  EXPECT_EQ(result.table->view().network, "");
  EXPECT_EQ(result.table->view().network_view, Lines{});
}

TEST(NetworkViewTest, OwnNetworkAndUnsetAreInViewTheRestIsKeptApart) {
  MeshLoadOptions options = testing::EastWest();
  options.network = "n1";
  const MeshLoadResult result = LoadYaml(ExportAll() + kThreeNetworks, options);
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* cluster = result.table->Find("a.example.com", 443, "");
  EXPECT_EQ(Addresses(cluster->endpoints), (Lines{"10.0.0.1@n1", "10.0.0.3@"}));
  EXPECT_EQ(Addresses(cluster->out_of_view), (Lines{"10.0.0.2@n2", "10.0.0.4@n3"}));
  EXPECT_EQ(result.table->view().network, "n1");
  EXPECT_EQ(result.table->view().network_view, Lines{"n1"});
  const std::string describe = result.table->Describe();
  EXPECT_NE(describe.find("endpoint 10.0.0.2:443 weight 1 network=n2 workload=bar/a-1 out of view"),
            std::string::npos) << describe;
  EXPECT_NE(describe.find("network view: n1 and endpoints without a network"), std::string::npos);
}

TEST(NetworkViewTest, RequestedNetworkViewWidensIt) {
  MeshLoadOptions options = testing::EastWest();
  options.network = "n1";
  options.requested_network_view = {"n3"};
  const MeshLoadResult result = LoadYaml(ExportAll() + kThreeNetworks, options);
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* cluster = result.table->Find("a.example.com", 443, "");
  EXPECT_EQ(Addresses(cluster->endpoints), (Lines{"10.0.0.1@n1", "10.0.0.3@", "10.0.0.4@n3"}));
  EXPECT_EQ(Addresses(cluster->out_of_view), Lines{"10.0.0.2@n2"});
  EXPECT_EQ(result.table->view().network_view, (Lines{"n1", "n3"}));
}

TEST(NetworkViewTest, SystemNamespaceLabelIsTheDefaultNetworkOfEndpointsAndGateway) {
  // pilot kube/controller Controller.Network: the label, else the system namespace's.
  const MeshLoadResult result =
      LoadYaml(ExportAll() + Namespace("istio-system", "n2") + kThreeNetworks);
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* cluster = result.table->Find("a.example.com", 443, "");
  EXPECT_EQ(result.table->view().network, "n2");
  EXPECT_EQ(Addresses(cluster->endpoints), (Lines{"10.0.0.2@n2", "10.0.0.3@n2"}));
  EXPECT_EQ(Addresses(cluster->out_of_view), (Lines{"10.0.0.1@n1", "10.0.0.4@n3"}));
  // The endpoint's own namespace label comes before the system namespace's
  // (issue 13: "the Pod/namespace topology.istio.io/network label"); it does
  // not make the gateway's network, which only the system namespace gives.
  const MeshLoadResult other = LoadYaml(ExportAll() + Namespace("bar", "n2") +
                                        Namespace("istio-system", "n1") + kThreeNetworks);
  ASSERT_EQ(other.errors, Lines{});
  EXPECT_EQ(other.table->view().network, "n1");
  const Cluster* in_bar = other.table->Find("a.example.com", 443, "");
  EXPECT_EQ(Addresses(in_bar->endpoints), Lines{"10.0.0.1@n1"});
  EXPECT_EQ(Addresses(in_bar->out_of_view), (Lines{"10.0.0.2@n2", "10.0.0.3@n2", "10.0.0.4@n3"}));
}

const std::string kPodService =
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\n"
    "spec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n"
    "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: reviews-v2-5d8f7b9c4-x7k2p\n"
    "  namespace: bookinfo\n  generateName: reviews-v2-5d8f7b9c4-\n"
    "  labels: {app: reviews, version: v2, pod-template-hash: 5d8f7b9c4, "
    "topology.istio.io/network: n2}\n"
    "  ownerReferences:\n  - {apiVersion: apps/v1, kind: ReplicaSet, name: reviews-v2-5d8f7b9c4, "
    "controller: true}\n"
    "spec:\n  serviceAccountName: bookinfo-reviews\n  containers: [{name: reviews}]\n"
    "status: {phase: Running, podIP: 10.1.0.2}\n";

TEST(NetworkViewTest, PodLabelGivesItsNetwork) {
  MeshLoadOptions options = testing::EastWest();
  options.network = "n1";
  const MeshLoadResult result = LoadYaml(ExportAll() + kPodService, options);
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* cluster = result.table->Find("reviews.bookinfo.svc.cluster.local", 9080, "");
  EXPECT_TRUE(cluster->endpoints.empty());
  EXPECT_EQ(Addresses(cluster->out_of_view), Lines{"10.1.0.2@n2"});
}

TEST(WorkloadIdentityTest, PodOfADeployment) {
  // pkg/kube/util.go GetDeployMetaFromPod; pkg/kube/labels CanonicalService.
  MeshLoadOptions options = testing::EastWest();
  options.trust_domain = "example.org";
  const MeshLoadResult result = LoadYaml(ExportAll() + kPodService, options);
  ASSERT_EQ(result.errors, Lines{});
  const Endpoint& e =
      result.table->Find("reviews.bookinfo.svc.cluster.local", 9080, "")->endpoints.at(0);
  EXPECT_EQ(e.workload().name, "reviews-v2");
  EXPECT_EQ(e.workload().ns, "bookinfo");
  EXPECT_EQ(e.workload().app, "reviews");
  EXPECT_EQ(e.workload().version, "v2");
  EXPECT_EQ(e.workload().canonical_service, "reviews");
  EXPECT_EQ(e.workload().canonical_revision, "v2");
  EXPECT_EQ(e.workload().principal, "spiffe://example.org/ns/bookinfo/sa/bookinfo-reviews");
}

std::string Pod(const std::string& metadata) {
  return "---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: ns1}\n"
         "spec:\n  selector: {run: s}\n  ports: [{name: tcp, port: 80}]\n"
         "---\napiVersion: v1\nkind: Pod\nmetadata:\n  namespace: ns1\n" + metadata +
         "spec:\n  containers: [{name: c}]\nstatus: {phase: Running, podIP: 10.1.0.9}\n";
}

WorkloadIdentity IdentityOf(const std::string& metadata) {
  const MeshLoadResult result = LoadYaml(ExportAll() + Pod(metadata));
  EXPECT_EQ(result.errors, Lines{});
  if (!result.table) return {};
  return result.table->Find("s.ns1.svc.cluster.local", 80, "")->endpoints.at(0).workload();
}

TEST(WorkloadIdentityTest, ControllersAndLabelFallbacks) {
  // A CronJob's Job "x-<8 to 10 digits>" -> "x"; canonical labels win over app/version.
  WorkloadIdentity job = IdentityOf(
      "  name: backup-28391040-abcde\n  generateName: backup-28391040-\n"
      "  labels: {run: s, app.kubernetes.io/name: backup-svc, app.kubernetes.io/version: '3'}\n"
      "  ownerReferences: [{apiVersion: batch/v1, kind: Job, name: backup-28391040, "
      "controller: true}]\n");
  EXPECT_EQ(job.name, "backup");
  EXPECT_EQ(job.canonical_service, "backup-svc");
  EXPECT_EQ(job.canonical_revision, "3");
  EXPECT_EQ(job.app, "");
  EXPECT_EQ(job.principal, "");  // no service account
  // No generateName: the Pod itself, whatever owns it; no labels: workload name, "latest".
  WorkloadIdentity bare = IdentityOf(
      "  name: standalone\n  labels: {run: s}\n"
      "  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: rs, controller: true}]\n");
  EXPECT_EQ(bare.name, "standalone");
  EXPECT_EQ(bare.canonical_service, "standalone");
  EXPECT_EQ(bare.canonical_revision, "latest");
  // A StatefulSet: its name; service.istio.io/workload-name overrides everything.
  EXPECT_EQ(IdentityOf("  name: db-0\n  generateName: db-\n  labels: {run: s}\n"
                       "  ownerReferences: [{kind: StatefulSet, name: db, controller: true}]\n")
                .name,
            "db");
  EXPECT_EQ(IdentityOf("  name: db-0\n  generateName: db-\n"
                       "  labels: {run: s, service.istio.io/workload-name: database, "
                       "service.istio.io/canonical-name: store}\n"
                       "  ownerReferences: [{kind: StatefulSet, name: db, controller: true}]\n")
                .name,
            "database");
}

TEST(WorkloadIdentityTest, WorkloadEntriesAndServiceEntryEndpoints) {
  // pkg/kube/labels WorkloadNameFromWorkloadEntry; inline endpoint i of "a" is "a-i".
  const MeshLoadResult result = LoadYaml(
      ExportAll() +
      Entry("[{address: 10.0.0.1, serviceAccount: vm, labels: {app: web, version: v3}}]") +
      "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
      "metadata: {name: vms, namespace: bar}\n"
      "spec:\n  hosts: [vm.example.com]\n  ports: [{number: 443, name: tls, protocol: TLS}]\n"
      "  resolution: STATIC\n  workloadSelector: {labels: {app: vm}}\n"
      "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
      "metadata: {name: vm-1, namespace: bar, annotations: {istio.io/autoRegistrationGroup: "
      "vm-group}}\nspec: {address: 10.0.5.1, labels: {app: vm}, serviceAccount: vm-sa}\n");
  ASSERT_EQ(result.errors, Lines{});
  const WorkloadIdentity& inline_ep =
      result.table->Find("a.example.com", 443, "")->endpoints.at(0).workload();
  EXPECT_EQ(inline_ep.name, "a-0");
  EXPECT_EQ(inline_ep.app, "web");
  EXPECT_EQ(inline_ep.canonical_service, "web");
  EXPECT_EQ(inline_ep.canonical_revision, "v3");
  EXPECT_EQ(inline_ep.principal, "spiffe://cluster.local/ns/bar/sa/vm");
  const WorkloadIdentity& entry =
      result.table->Find("vm.example.com", 443, "")->endpoints.at(0).workload();
  EXPECT_EQ(entry.name, "vm-group");
  EXPECT_EQ(entry.ns, "bar");
  EXPECT_EQ(entry.principal, "spiffe://cluster.local/ns/bar/sa/vm-sa");
}

TEST(DestinationRuleIstioMergeTest, FirstPolicyAndFirstSubsetWinWithWarnings) {
  // pilot/pkg/model/destination_rule.go mergeDestinationRule.
  auto rule = [](const std::string& name, const std::string& spec) {
    return "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
           "metadata: {name: " + name + ", namespace: bar}\nspec:\n  host: a.example.com\n" + spec;
  };
  const MeshLoadResult result = LoadYaml(
      ExportAll() +
      Entry("[{address: 10.0.0.1, labels: {v: '1'}}, {address: 10.0.0.2, labels: {v: '2'}}]") +
      rule("first", "  trafficPolicy: {connectionPool: {tcp: {maxConnections: 10}}}\n"
                    "  subsets: [{name: s1, labels: {v: '1'}}]\n") +
      rule("second", "  trafficPolicy: {connectionPool: {tcp: {maxConnections: 99}}}\n"
                     "  subsets: [{name: s1, labels: {v: '2'}}, {name: s2, labels: {v: '2'}}]\n"));
  ASSERT_EQ(result.errors, Lines{});
  ASSERT_NE(result.table, nullptr);
  const Cluster* whole = result.table->Find("a.example.com", 443, "");
  EXPECT_EQ(whole->policy.connection_pool->max_connections, 10u);
  EXPECT_EQ(Addresses(result.table->Find("a.example.com", 443, "s1")->endpoints),
            Lines{"10.0.0.1@"});
  EXPECT_EQ(Addresses(result.table->Find("a.example.com", 443, "s2")->endpoints),
            Lines{"10.0.0.2@"});
  int merge_warnings = 0;
  for (const std::string& w : result.warnings) {
    if (w.find("that one applies and this one is ignored, as in Istio") != std::string::npos) {
      ++merge_warnings;
    }
  }
  EXPECT_EQ(merge_warnings, 2) << ::testing::PrintToString(result.warnings);
}

}  // namespace
}  // namespace meshgate::config
