// DnsRoutes::Resolve: how answers become endpoints for each resolution.
#include "proxy/runtime/dns_routes.h"

#include <gtest/gtest.h>

namespace meshgate::proxy {
namespace {

config::Cluster DnsCluster(std::string host, config::Resolution resolution) {
  config::Cluster cluster;
  cluster.host = std::move(host);
  cluster.port = 443;
  cluster.source = "test";
  cluster.resolution = resolution;
  config::Endpoint name;
  name.set_hostname("backend.example.com");
  name.port = 8443;
  name.weight = 3;
  name.labels = {{"version", "v1"}};
  cluster.dns_endpoints.push_back(name);
  return cluster;
}

std::vector<std::string> Addresses(const config::Cluster& cluster) {
  std::vector<std::string> out;
  for (const config::Endpoint& e : cluster.endpoints) out.push_back(e.address);
  return out;
}

TEST(DnsRoutesTest, DnsTakesEveryAddressDnsRoundRobinTheFirst) {
  const config::RouteTable base({DnsCluster("strict.example.com", config::Resolution::kDns),
                                 DnsCluster("logical.example.com", config::Resolution::kDnsRoundRobin)},
                                {});
  const auto resolved =
      DnsRoutes::Resolve(base, {{"backend.example.com", {"192.0.2.1", "192.0.2.2"}}});
  const config::Cluster* strict = resolved->Find("strict.example.com", 443, "");
  const config::Cluster* logical = resolved->Find("logical.example.com", 443, "");
  ASSERT_NE(strict, nullptr);
  ASSERT_NE(logical, nullptr);
  EXPECT_EQ(Addresses(*strict), (std::vector<std::string>{"192.0.2.1", "192.0.2.2"}));
  EXPECT_EQ(Addresses(*logical), (std::vector<std::string>{"192.0.2.1"}));
  // What the name's entry said carries over to each address.
  EXPECT_EQ(strict->endpoints[1].port, 8443);
  EXPECT_EQ(strict->endpoints[1].weight, 3u);
  EXPECT_EQ(strict->endpoints[1].labels.at("version"), "v1");
}

TEST(DnsRoutesTest, UnresolvedNamesGiveNoEndpoints) {
  const config::RouteTable base({DnsCluster("strict.example.com", config::Resolution::kDns)}, {});
  EXPECT_TRUE(DnsRoutes::Resolve(base, {})->Find("strict.example.com", 443, "")->endpoints.empty());
  EXPECT_TRUE(DnsRoutes::Resolve(base, {{"backend.example.com", {}}})
                  ->Find("strict.example.com", 443, "")
                  ->endpoints.empty());
}

}  // namespace
}  // namespace meshgate::proxy
