// serve.yaml's `dns:` key: read, defaulted to the ServiceEntry suffix, and
// every mistake named with its place.
#include <string>

#include "config/settings/serve_config.h"
#include "gtest/gtest.h"

namespace {

using meshgate::config::ParseServeConfig;

constexpr char kClusters[] =
    "clusters:\n"
    "- {name: cluster1, gateway: 192.0.2.1, mesh: [m1]}\n"
    "- {name: cluster2, gateway: 192.0.2.2, mesh: [m2]}\n";

std::string ErrorOf(const std::string& text) {
  auto config = ParseServeConfig(text, "serve.yaml", "");
  return config.ok() ? "" : std::string(config.status().message());
}

TEST(DnsConfigTest, ReadsListenZoneAndCluster) {
  auto config = ParseServeConfig(std::string("dns: {listen: \"127.0.0.1:5353\", zone: Global., cluster: cluster2}\n") +
                                     kClusters, "serve.yaml", "");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->dns.has_value());
  EXPECT_EQ(config->dns->listen, "127.0.0.1:5353");
  EXPECT_EQ(config->dns->zone, "global") << "names compare without case (RFC 4343); the suffix's spelling is kept";
  EXPECT_EQ(config->dns->cluster, "cluster2");

  auto defaults = ParseServeConfig(std::string("suffix: mesh\ndns: {listen: \"[::1]:0\"}\n") + kClusters, "s", "");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->dns->zone, "mesh") << "the zone is the ServiceEntry suffix";
  EXPECT_EQ(defaults->dns->cluster, "");
  EXPECT_FALSE(ParseServeConfig(kClusters, "s", "")->dns.has_value());
}

TEST(DnsConfigTest, MistakesAreNamed) {
  EXPECT_EQ(ErrorOf(std::string("dns: {zone: global}\n") + kClusters), "serve.yaml:1:6: dns.listen: required");
  EXPECT_NE(ErrorOf(std::string("dns: {listen: dns.example:53}\n") + kClusters).find("serve.yaml:1:15: dns.listen: "),
            std::string::npos);
  EXPECT_EQ(ErrorOf(std::string("dns: {listen: \"127.0.0.1:53\", zone: local}\n") + kClusters),
            "serve.yaml:1:37: dns.zone: \"local\" must be the ServiceEntry suffix \"global\" (the names it answers)");
  EXPECT_EQ(ErrorOf(std::string("dns: {listen: \"127.0.0.1:53\", cluster: cluster9}\n") + kClusters),
            "serve.yaml:1:40: dns.cluster: \"cluster9\" is not one of clusters[].name");
  EXPECT_NE(ErrorOf(std::string("dns: {listen: \"127.0.0.1:53\", port: 53}\n") + kClusters).find("dns.port: unknown field"),
            std::string::npos);
}

}  // namespace
