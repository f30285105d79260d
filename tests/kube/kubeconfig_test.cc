// kubeconfig reading (https://kubernetes.io/docs/reference/config-api/kubeconfig.v1/):
// contexts, CA data and files, tokens, client certificates, and the refusals
// (exec and auth-provider plugins, insecure-skip-tls-verify unless allowed).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/kube/credentials.h"

namespace meshgate::kube {
namespace {

constexpr const char* kConfig = R"(apiVersion: v1
kind: Config
current-context: east
clusters:
- name: east-cluster
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: %CA%
- name: west-cluster
  cluster:
    server: https://api.west.example:443
    certificate-authority: west-ca.pem
    tls-server-name: kubernetes.default.svc
contexts:
- name: east
  context: {cluster: east-cluster, user: east-user, namespace: istio-system}
- name: west
  context: {cluster: west-cluster, user: west-user}
- name: plugin
  context: {cluster: east-cluster, user: exec-user}
- name: oidc
  context: {cluster: east-cluster, user: oidc-user}
users:
- name: east-user
  user: {token: abc123}
- name: west-user
  user:
    tokenFile: west-token
    client-certificate-data: %CERT%
    client-key-data: %KEY%
- name: exec-user
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [eks, get-token, --cluster-name, east]
- name: oidc-user
  user:
    auth-provider:
      name: oidc
)";

std::string Config(std::string text = kConfig) {
  for (auto [from, to] : {std::pair<std::string, std::string>{"%CA%", absl::Base64Escape("CA PEM")},
                          {"%CERT%", absl::Base64Escape("CERT PEM")},
                          {"%KEY%", absl::Base64Escape("KEY PEM")}}) {
    text.replace(text.find(from), from.size(), to);
  }
  return text;
}

TEST(Kubeconfig, CurrentContextWithTokenAndCaData) {
  auto c = ParseKubeconfig(Config(), "kubeconfig", "/nonexistent", {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->host, "10.0.0.1");
  EXPECT_EQ(c->port, 6443);
  EXPECT_EQ(c->ca_pem, "CA PEM");
  EXPECT_EQ(c->token, "abc123");
  EXPECT_EQ(c->default_namespace, "istio-system");
  EXPECT_FALSE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->source, "kubeconfig kubeconfig (context east)");
}

TEST(Kubeconfig, ExplicitContextWithCaFileTokenFileAndClientCertificate) {
  const std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/west-ca.pem") << "WEST CA";
  auto c = ParseKubeconfig(Config(), "kubeconfig", dir, {.context = "west"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->host, "api.west.example");
  EXPECT_EQ(c->port, 443);
  EXPECT_EQ(c->tls_server_name, "kubernetes.default.svc");
  EXPECT_EQ(c->VerifyName(), "kubernetes.default.svc");
  EXPECT_EQ(c->ca_pem, "WEST CA");  // relative to the kubeconfig's folder
  EXPECT_EQ(c->ca_file, dir + "/west-ca.pem");  // re-read by the client when it rotates
  EXPECT_EQ(c->token_file, dir + "/west-token");
  EXPECT_EQ(c->client_cert_pem, "CERT PEM");
  EXPECT_EQ(c->client_key_pem, "KEY PEM");
}

TEST(Kubeconfig, ExecPluginIsRefusedByName) {
  auto c = ParseKubeconfig(Config(), "kubeconfig", "", {.context = "plugin"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("users[exec-user].user.exec: exec credential plugins are not supported"),
            std::string::npos)
      << c.status();
  EXPECT_NE(c.status().message().find("kubeconfig:"), std::string::npos) << c.status();  // file:line:column
}

TEST(Kubeconfig, AuthProviderIsRefusedByName) {
  auto c = ParseKubeconfig(Config(), "kubeconfig", "", {.context = "oidc"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("auth-provider credential plugins are not supported"), std::string::npos)
      << c.status();
}

TEST(Kubeconfig, InsecureSkipTlsVerifyIsRefusedUnlessAllowed) {
  std::string text = Config();
  text.replace(text.find("    certificate-authority-data"), 0, "    insecure-skip-tls-verify: true\n");
  auto refused = ParseKubeconfig(text, "kubeconfig", "", {});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("insecure-skip-tls-verify: refused"), std::string::npos)
      << refused.status();
  auto allowed = ParseKubeconfig(text, "kubeconfig", "", {.context = "", .allow_insecure = true});
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_TRUE(allowed->insecure_skip_tls_verify);
}

TEST(Kubeconfig, UnknownContextAndPlainHttpAreClearErrors) {
  auto missing = ParseKubeconfig(Config(), "kubeconfig", "", {.context = "north"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("contexts: no entry named \"north\""), std::string::npos)
      << missing.status();
  std::string text = Config();
  text.replace(text.find("https://10.0.0.1"), 8, "http://");
  auto plain = ParseKubeconfig(text, "kubeconfig", "", {});
  ASSERT_FALSE(plain.ok());
  EXPECT_NE(plain.status().message().find("must be https://"), std::string::npos) << plain.status();
  auto garbage = ParseKubeconfig("clusters: [", "kubeconfig", "", {});
  ASSERT_FALSE(garbage.ok());
}

TEST(InCluster, NeedsTheServiceEnvironment) {
  InClusterPaths paths;
  paths.host = "";
  paths.port = "";
  auto c = InClusterCredentials(paths);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("KUBERNETES_SERVICE_HOST"), std::string::npos) << c.status();
}

}  // namespace
}  // namespace meshgate::kube
