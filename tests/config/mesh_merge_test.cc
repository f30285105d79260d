// Several resources naming one host: how they merge, and every conflict as an
// error that names both sources.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/mesh/mesh_loader.h"
#include "tests/config/mesh_test_util.h"

namespace meshgate::config {
namespace {

using testing::Lines;
using testing::LoadYaml;

// A ServiceEntry document of 9 lines (with its leading "---").
std::string Entry(const std::string& name, const std::string& ns, const std::string& ports,
                  const std::string& address, const std::string& resolution = "STATIC") {
  return "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
         "metadata: {name: " + name + ", namespace: " + ns + "}\n"
         "spec:\n  hosts: [api.example.com]\n  ports: " + ports + "\n"
         "  resolution: " + resolution + "\n  endpoints: [{address: " + address + "}]\n";
}

const std::string kHttps = "[{number: 443, name: https, protocol: HTTPS}]";

TEST(MeshMergeTest, EntriesForOneHostInOneNamespaceMerge) {
  const MeshLoadResult result =
      LoadYaml(Entry("a", "bar", kHttps, "10.0.0.1") +
               Entry("b", "bar",
                     "[{number: 443, name: https, protocol: HTTPS}, {number: 8443, name: alt, "
                     "protocol: TLS, targetPort: 9443}]",
                     "10.0.0.2") +
               testing::ExportAll());
  ASSERT_EQ(result.errors, Lines{});
  const RouteTable& table = *result.table;
  const Cluster* https = table.Find("api.example.com", 443, "");
  ASSERT_NE(https, nullptr);
  EXPECT_EQ(https->source, "t.yaml:2 ServiceEntry bar/a; t.yaml:11 ServiceEntry bar/b");
  ASSERT_EQ(https->endpoints.size(), 2u);  // both entries' endpoints, side by side
  EXPECT_EQ(https->endpoints[1].address, "10.0.0.2");
  // A port only b declares has only b's endpoints.
  const Cluster* alt = table.Find("api.example.com", 8443, "");
  ASSERT_NE(alt, nullptr);
  ASSERT_EQ(alt->endpoints.size(), 1u);
  EXPECT_EQ(alt->endpoints[0].address, "10.0.0.2");
  EXPECT_EQ(alt->endpoints[0].port, 9443);
  EXPECT_EQ(table.Route("api.example.com", {.allow_plain_host = true}).miss,
            RouteMiss::kAmbiguousPort);
}

TEST(MeshMergeTest, ServiceEntryAndKubernetesServiceMerge) {
  const MeshLoadResult result = LoadYaml(
      "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: bar}\n"
      "spec: {ports: [{name: https, port: 443}]}\n"
      "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
      "metadata: {name: api-1, namespace: bar, labels: {kubernetes.io/service-name: api}}\n"
      "addressType: IPv4\nports: [{name: https, port: 8443}]\n"
      "endpoints: [{addresses: [10.0.0.1]}]\n"
      "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
      "metadata: {name: vms, namespace: bar}\n"
      "spec:\n  hosts: [api.bar.svc.cluster.local]\n"
      "  ports: [{number: 443, name: https, protocol: HTTPS}]\n"
      "  resolution: STATIC\n  endpoints: [{address: 10.9.0.1, labels: {vm: \"true\"}}]\n");
  ASSERT_EQ(result.errors, Lines{});
  const Cluster* cluster = result.table->Find("api.bar.svc.cluster.local", 443, "");
  ASSERT_NE(cluster, nullptr);
  ASSERT_EQ(cluster->endpoints.size(), 2u);
  EXPECT_EQ(cluster->endpoints[0].port, 8443);
  EXPECT_EQ(cluster->endpoints[1].address, "10.9.0.1");
}

struct ConflictCase {
  std::string name;
  std::string yaml;
  Lines errors;
};

std::ostream& operator<<(std::ostream& out, const ConflictCase& c) { return out << c.name; }

class MeshConflictTest : public ::testing::TestWithParam<ConflictCase> {};

TEST_P(MeshConflictTest, ErrorNamesBothSources) {
  const MeshLoadResult result = LoadYaml(GetParam().yaml);
  EXPECT_EQ(result.errors, GetParam().errors);
  EXPECT_EQ(result.table, nullptr);
}

INSTANTIATE_TEST_SUITE_P(
    Merge, MeshConflictTest,
    ::testing::ValuesIn(std::vector<ConflictCase>{
        {"HostInTwoNamespaces", Entry("a", "foo", kHttps, "10.0.0.1") + Entry("b", "bar", kHttps, "10.0.0.2"),
         {"t.yaml:15:11: ServiceEntry bar/b: spec.hosts[0]: host \"api.example.com\" is already "
          "defined in namespace foo by t.yaml:2 ServiceEntry foo/a (a host can come from one "
          "namespace only)"}},
        {"PortNumberWithTwoNames",
         Entry("a", "bar", kHttps, "10.0.0.1") +
             Entry("b", "bar", "[{number: 443, name: tls, protocol: TLS}]", "10.0.0.2"),
         {"t.yaml:16:11: ServiceEntry bar/b: spec.ports[0]: port 443 of host \"api.example.com\" "
          "is named \"tls\" here but \"https\" in t.yaml:2 ServiceEntry bar/a"}},
        {"PortNameWithTwoNumbers",
         Entry("a", "bar", kHttps, "10.0.0.1") +
             Entry("b", "bar", "[{number: 8443, name: https, protocol: HTTPS}]", "10.0.0.2"),
         {"t.yaml:16:11: ServiceEntry bar/b: spec.ports[0]: port name \"https\" of host "
          "\"api.example.com\" is port 8443 here but port 443 in t.yaml:2 ServiceEntry bar/a"}},
        {"Resolutions",
         Entry("a", "bar", kHttps, "10.0.0.1") + Entry("b", "bar", kHttps, "vm.example.net", "DNS"),
         {"t.yaml:17:15: ServiceEntry bar/b: spec.resolution: resolution DNS conflicts with "
          "resolution STATIC of host \"api.example.com\" in t.yaml:2 ServiceEntry bar/a"}},
        {"SameResourceTwice", Entry("a", "bar", kHttps, "10.0.0.1") + Entry("a", "bar", kHttps, "10.0.0.2"),
         {"t.yaml:13:18: ServiceEntry bar/a: metadata.name: ServiceEntry bar/a is already defined "
          "by t.yaml:2 ServiceEntry bar/a"}},
    }),
    [](const ::testing::TestParamInfo<ConflictCase>& info) { return info.param.name; });

}  // namespace
}  // namespace meshgate::config
