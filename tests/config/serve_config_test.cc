// serve.yaml (meshgatectl serve's config): defaults, path resolution, the
// gateway syntax, and the exact messages a user sees for the common mistakes.
#include "config/settings/serve_config.h"

#include "config/settings/gateway_config.h"

#include <gtest/gtest.h>

#include <string>

namespace meshgate::config {
namespace {

using namespace std::chrono_literals;

constexpr char kCluster[] = "clusters:\n- {name: cluster1, gateway: 192.0.2.1, mesh: [m1]}\n";

// Parses `yaml` expecting failure; returns the message ("" when it parsed).
std::string ErrorOf(const std::string& yaml) {
  auto config = ParseServeConfig(yaml, "serve.yaml", "/etc/meshgatectl");
  return config.ok() ? "" : std::string(config.status().message());
}

TEST(ServeConfigTest, OneClusterGivesTheDefaultsAndResolvesPathsAgainstTheFilesDirectory) {
  auto config = ParseServeConfig(
      "clusters:\n- {name: cluster1, network: n1, gateway: gw.example.com:15444, mesh: [m1, /abs/m2], ca: ca1}\n",
      "serve.yaml", "/etc/meshgatectl");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "0.0.0.0:15180");
  EXPECT_EQ(config->suffix, "global");
  EXPECT_EQ(config->ns, "istio-system");
  EXPECT_EQ(config->allocations_dir, "");
  EXPECT_EQ(config->max_watch, 60s);
  EXPECT_TRUE(config->tls_cert_chain.empty());
  ASSERT_EQ(config->clusters.size(), 1u);
  const ServeConfig::Cluster& cluster = config->clusters[0];
  EXPECT_EQ(cluster.name, "cluster1");
  EXPECT_EQ(cluster.network, "n1");
  EXPECT_EQ(cluster.gateway, "gw.example.com:15444");
  EXPECT_EQ(cluster.gateway_address.host, "gw.example.com");
  EXPECT_EQ(cluster.gateway_address.port, 15444);
  EXPECT_EQ(cluster.mesh, (std::vector<std::string>{"/etc/meshgatectl/m1", "/abs/m2"}));
  EXPECT_EQ(cluster.ca_dir, "/etc/meshgatectl/ca1");
}

TEST(ServeConfigTest, EveryTopLevelField) {
  auto config = ParseServeConfig(std::string("listen: '[::1]:0'\ntls: {certChain: chain.pem, key: /k/key.pem}\n"
                                             "suffix: mesh.example\nnamespace: meshgate\nallocations: state\n"
                                             "maxWatch: 90s\n") +
                                     kCluster,
                                 "serve.yaml", "/etc/meshgatectl");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "[::1]:0");
  EXPECT_EQ(config->tls_cert_chain, "/etc/meshgatectl/chain.pem");
  EXPECT_EQ(config->tls_key, "/k/key.pem");
  EXPECT_EQ(config->suffix, "mesh.example");
  EXPECT_EQ(config->ns, "meshgate");
  EXPECT_EQ(config->allocations_dir, "/etc/meshgatectl/state");
  EXPECT_EQ(config->max_watch, 90s);
}

TEST(ServeConfigTest, UnknownFieldIsAnError) {
  EXPECT_EQ(ErrorOf(std::string("maxWatchSeconds: 60\n") + kCluster),
            "serve.yaml:1:1: maxWatchSeconds: unknown field (expected one of: listen, tls, suffix, namespace, "
            "allocations, maxWatch, dns, clusters, limits)");
  EXPECT_EQ(ErrorOf("clusters:\n- {name: cluster1, gateway: 192.0.2.1, mesh: [m1], gw: x}\n"),
            "serve.yaml:2:52: clusters[0].gw: unknown field (expected one of: name, network, gateway, mesh, kubernetes, "
            "ca)");
}

TEST(ServeConfigTest, BadListenAddressSaysWhy) {
  EXPECT_EQ(ErrorOf(std::string("listen: 1.2.3:80\n") + kCluster),
            "serve.yaml:1:9: listen: \"1.2.3:80\": \"1.2.3\" is not an IP address");
  EXPECT_EQ(ErrorOf(std::string("listen: localhost:15180\n") + kCluster),
            "serve.yaml:1:9: listen: \"localhost:15180\": \"localhost\" is not an IP address");
  EXPECT_EQ(ErrorOf(std::string("listen: 0.0.0.0\n") + kCluster),
            "serve.yaml:1:9: listen: \"0.0.0.0\": missing :port (e.g. 0.0.0.0:15443)");
}

TEST(ServeConfigTest, BadDurationSaysWhatIsExpected) {
  for (const char* bad : {"60", "500ms", "-1s", "soon"}) {
    EXPECT_EQ(ErrorOf(std::string("maxWatch: ") + bad + "\n" + kCluster),
              "serve.yaml:1:11: maxWatch: must be a duration of at least 1s, such as 60s")
        << bad;
  }
}

TEST(ServeConfigTest, ClustersAreRequired) {
  const std::string required = "clusters: is required: one entry per cluster (name, gateway, mesh and/or kubernetes)";
  EXPECT_EQ(ErrorOf("listen: 127.0.0.1:15180\n"), "serve.yaml:1:1: " + required);
  EXPECT_EQ(ErrorOf("listen: 127.0.0.1:15180\nclusters:\n"), "serve.yaml:1:1: " + required);
  EXPECT_EQ(ErrorOf(""), "serve.yaml:1:1: expected one YAML document with the serve configuration");
}

TEST(ServeConfigTest, DuplicateClusterNameIsAnError) {
  EXPECT_EQ(ErrorOf(std::string(kCluster) + "- {name: cluster1, gateway: 192.0.2.2, mesh: [m2]}\n"),
            "serve.yaml:3:10: clusters[1].name: duplicate cluster \"cluster1\"");
}

TEST(ServeConfigTest, ClusterFieldsAreCheckedEachWithItsPosition) {
  EXPECT_EQ(ErrorOf("clusters:\n- {name: Cluster_1, gateway: 192.0.2.1, mesh: [m1]}\n- {gateway: 'a b'}\n"),
            "serve.yaml:2:10: clusters[0].name: \"Cluster_1\" must be a DNS label (lowercase letters, digits, '-')\n"
            "serve.yaml:3:3: clusters[1].name: required\n"
            "serve.yaml:3:3: clusters[1].mesh: required unless kubernetes: is set ({inCluster: true} or "
            "{kubeconfig: PATH}); both may be\n"
            "serve.yaml:3:13: clusters[1].gateway: --gateway \"a b\" is neither an IP address nor a host name");
}

// clusters[].kubernetes: the same keys and reader as meshgate.yaml's
// kubernetes: (config/settings/kubernetes_config.h), instead of or beside mesh:.
TEST(ServeConfigTest, ClusterKubernetesInClusterOrKubeconfigInsteadOfOrBesideMesh) {
  auto config = ParseServeConfig(
      "clusters:\n"
      "- {name: c1, gateway: 192.0.2.1, kubernetes: {inCluster: true}}\n"
      "- {name: c2, gateway: 192.0.2.2, mesh: [m2], kubernetes: {kubeconfig: remote/c2/kubeconfig, context: east}}\n"
      "- {name: c3, gateway: 192.0.2.3, kubernetes: {kubeconfig: /abs/kc, allowInsecure: true}}\n"
      "- {name: c4, gateway: 192.0.2.4, mesh: [m4]}\n",
      "serve.yaml", "/etc/meshgatectl");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->clusters.size(), 4u);
  EXPECT_EQ(config->clusters[0].kubernetes, (KubernetesConfig{.in_cluster = true}));
  EXPECT_TRUE(config->clusters[0].mesh.empty());
  EXPECT_EQ(config->clusters[1].kubernetes,
            (KubernetesConfig{.kubeconfig = "/etc/meshgatectl/remote/c2/kubeconfig", .context = "east"}))
      << "a relative kubeconfig resolves against serve.yaml's directory";
  EXPECT_EQ(config->clusters[1].mesh, (std::vector<std::string>{"/etc/meshgatectl/m2"}));
  EXPECT_EQ(config->clusters[2].kubernetes, (KubernetesConfig{.kubeconfig = "/abs/kc", .allow_insecure = true}));
  EXPECT_FALSE(config->clusters[3].kubernetes.enabled());
}

TEST(ServeConfigTest, ClusterKubernetesMistakesNameTheFieldPathAndPosition) {
  const std::string head = "clusters:\n- {name: c1, gateway: 192.0.2.1, kubernetes: ";
  // Column 46 is the kubernetes: map, 59 its kubeconfig value.
  EXPECT_EQ(ErrorOf(head + "{}}\n"),
            "serve.yaml:2:46: clusters[0].kubernetes: needs inCluster: true or kubeconfig: PATH");
  EXPECT_EQ(ErrorOf(head + "{inCluster: true, kubeconfig: kc}}\n"),
            "serve.yaml:2:46: clusters[0].kubernetes: set either inCluster: true or kubeconfig, not both");
  EXPECT_EQ(ErrorOf(head + "{inCluster: true, context: east}}\n"),
            "serve.yaml:2:46: clusters[0].kubernetes.context: applies to a kubeconfig only");
  EXPECT_EQ(ErrorOf(head + "{kubeconfig: ''}}\n"),
            "serve.yaml:2:46: clusters[0].kubernetes: needs inCluster: true or kubeconfig: PATH\n"
            "serve.yaml:2:59: clusters[0].kubernetes.kubeconfig: must not be empty");
  EXPECT_EQ(ErrorOf(head + "{inCluster: yes please}}\n"),
            "serve.yaml:2:46: clusters[0].kubernetes: needs inCluster: true or kubeconfig: PATH\n"
            "serve.yaml:2:58: clusters[0].kubernetes.inCluster: must be true or false, got \"yes please\"");
  EXPECT_EQ(ErrorOf(head + "{inCluster: true, namespace: x}}\n"),
            "serve.yaml:2:64: clusters[0].kubernetes.namespace: unknown field (expected one of: inCluster, "
            "kubeconfig, context, allowInsecure)");
  EXPECT_EQ(ErrorOf(head + "in-cluster}\n"), "serve.yaml:2:46: clusters[0].kubernetes: must be a map, got a string");
}

// One reader for both files: meshgate.yaml's kubernetes: gives the same
// message, with its own field path.
TEST(ServeConfigTest, KubernetesErrorsMatchMeshgateYamls) {
  auto gateway = ParseGatewayConfig("kubernetes: {inCluster: true, context: east}\n", "meshgate.yaml", "/etc");
  ASSERT_FALSE(gateway.ok());
  EXPECT_EQ(gateway.status().message(), "meshgate.yaml:1:13: kubernetes.context: applies to a kubeconfig only");
  auto serve = ParseServeConfig("clusters:\n- name: c1\n  gateway: 192.0.2.1\n  kubernetes: {inCluster: true, context: east}\n",
                                "serve.yaml", "/etc");
  ASSERT_FALSE(serve.ok());
  EXPECT_EQ(serve.status().message(), "serve.yaml:4:15: clusters[0].kubernetes.context: applies to a kubeconfig only");
}

TEST(ServeConfigTest, SyntaxErrorHasItsPosition) {
  EXPECT_EQ(ErrorOf("clusters: [\n"),
            "serve.yaml:2:1: YAML syntax error: did not find expected node content (while parsing a flow node)");
}

TEST(ServeConfigTest, LoadNamesAMissingFile) {
  auto config = LoadServeConfig("/nonexistent/serve.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(), "/nonexistent/serve.yaml: no such file");
}

TEST(GatewayAddressTest, HostOrIpWithAnOptionalPort) {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
  };
  for (const Case& c : {Case{"192.0.2.1", "192.0.2.1", 15443}, Case{"192.0.2.1:15444", "192.0.2.1", 15444},
                        Case{"gw.example.com", "gw.example.com", 15443}, Case{"gw.example.com:443", "gw.example.com", 443},
                        Case{"2001:db8::1", "2001:db8::1", 15443}}) {
    auto address = ParseGatewayAddress(c.text);
    ASSERT_TRUE(address.ok()) << c.text << ": " << address.status();
    EXPECT_EQ(address->host, c.host);
    EXPECT_EQ(address->port, c.port);
  }
}

TEST(GatewayAddressTest, MessagesNameTheFlag) {
  EXPECT_EQ(ParseGatewayAddress("").status().message(), "--gateway is empty");
  EXPECT_EQ(ParseGatewayAddress(":15443").status().message(), "--gateway is empty");
  EXPECT_EQ(ParseGatewayAddress("gw:0").status().message(), "--gateway \"gw:0\": bad port");
  EXPECT_EQ(ParseGatewayAddress("gw:http").status().message(), "--gateway \"gw:http\": bad port");
  EXPECT_EQ(ParseGatewayAddress("not_a..host").status().message(),
            "--gateway \"not_a..host\" is neither an IP address nor a host name");
}

}  // namespace
}  // namespace meshgate::config
