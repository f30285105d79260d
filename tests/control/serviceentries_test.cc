// meshgatectl serviceentries / coredns: generated from two sample clusters'
// Services, loaded by meshgate's own loader, VIPs stable and unique.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <string>

#include "config/mesh/mesh_loader.h"
#include "gtest/gtest.h"
#include "tests/control/run_command.h"

namespace {

namespace fs = std::filesystem;

using meshgate::testing::CmdResult;
using meshgate::testing::Ctl;

std::string Service(const std::string& name, const std::string& ns, const std::string& ports) {
  return "---\napiVersion: v1\nkind: Service\nmetadata: {name: " + name + ", namespace: " + ns +
         "}\nspec:\n  selector: {app: " + name + "}\n  ports: " + ports + "\n";
}

// host -> VIP in a generated stream.
std::map<std::string, std::string> Vips(const std::string& yaml) {
  std::map<std::string, std::string> out;
  static const std::regex kEntry(R"(hosts: \[([^\]]+)\][\s\S]*?addresses: \[([^\]]+)\])");
  for (auto it = std::sregex_iterator(yaml.begin(), yaml.end(), kEntry); it != std::sregex_iterator(); ++it) {
    out[(*it)[1]] = (*it)[2];
  }
  return out;
}

class ServiceEntriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/meshgatectl-se-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    // cluster 2 runs httpbin and reviews; cluster 1 runs sleep.
    std::ofstream(dir_ + "/cluster2.yaml")
        << Service("httpbin", "bar", "[{name: http, port: 8000, targetPort: 80}]")
        << Service("reviews", "bookinfo", "[{name: http, port: 9080}, {name: grpc-api, port: 9090}]");
    std::ofstream(dir_ + "/cluster1.yaml") << Service("sleep", "foo", "[{name: http, port: 80}]");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(ServiceEntriesTest, GeneratedEntriesLoadInMeshgateWithTheWalkthroughsShape) {
  // What cluster 1 applies to reach cluster 2's services through its gateway.
  const CmdResult r = Ctl("serviceentries --services " + dir_ + "/cluster2.yaml --gateway "
                          "ad76555a.elb.example.com --network network2 --allocations " + dir_ + "/c1.alloc");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("hosts: [httpbin.bar.global]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("location: MESH_INTERNAL"), std::string::npos);
  EXPECT_NE(r.out.find("resolution: DNS"), std::string::npos);  // a host-name gateway
  EXPECT_NE(r.out.find("- address: ad76555a.elb.example.com\n    network: network2\n"
                       "    ports: {http: 15443, grpc-api: 15443}"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("- {name: grpc-api, number: 9090, protocol: GRPC}"), std::string::npos) << r.out;
  const auto vips = Vips(r.out);
  ASSERT_EQ(vips.size(), 2u) << r.out;
  std::set<std::string> distinct;
  for (const auto& [host, vip] : vips) {
    EXPECT_TRUE(std::regex_match(vip, std::regex(R"(24[0-9]\.\d+\.\d+\.\d+|25[0-5]\.\d+\.\d+\.\d+)"))) << vip;
    distinct.insert(vip);
  }
  EXPECT_EQ(distinct.size(), 2u);

  // meshgate reads them with its own loader: no errors (a DNS cluster per port).
  const meshgate::config::MeshLoadResult loaded =
      meshgate::config::LoadMeshFromString(r.out, "generated.yaml", {});
  EXPECT_EQ(loaded.errors, std::vector<std::string>{});
  ASSERT_NE(loaded.table, nullptr);
  EXPECT_NE(loaded.table->Find("reviews.bookinfo.global", 9090, ""), nullptr);

  // An IP gateway gives STATIC entries, with a custom port.
  const CmdResult ip = Ctl("serviceentries --services " + dir_ + "/cluster1.yaml --gateway 192.0.2.10:15444 "
                           "--network network1");
  ASSERT_EQ(ip.code, 0) << ip.out;
  EXPECT_NE(ip.out.find("resolution: STATIC"), std::string::npos) << ip.out;
  EXPECT_NE(ip.out.find("ports: {http: 15444}"), std::string::npos) << ip.out;
  EXPECT_EQ(meshgate::config::LoadMeshFromString(ip.out, "ip.yaml", {}).errors, std::vector<std::string>{});
}

TEST_F(ServiceEntriesTest, VipsAreStableAcrossRunsAndAcrossAddingAService) {
  const std::string alloc = dir_ + "/c1.alloc";
  const std::string args = "serviceentries --services " + dir_ + "/cluster2.yaml --gateway 192.0.2.20 "
                           "--network network2 --allocations " + alloc;
  const auto first = Vips(Ctl(args).out);
  const auto again = Vips(Ctl(args).out);
  EXPECT_EQ(first, again);
  // Without the file, the same input still gives the same VIPs.
  const auto fresh = Vips(Ctl("serviceentries --services " + dir_ + "/cluster2.yaml --gateway 192.0.2.20").out);
  EXPECT_EQ(fresh, first);
  // A new service in cluster 2: the others keep their VIPs.
  std::ofstream(dir_ + "/cluster2.yaml", std::ios::app)
      << Service("ratings", "bookinfo", "[{name: http, port: 9080}]");
  const auto grown = Vips(Ctl(args).out);
  ASSERT_EQ(grown.size(), 3u);
  for (const auto& [host, vip] : first) EXPECT_EQ(grown.at(host), vip) << host;
  // The other direction shares the consuming cluster's allocations: no VIP
  // is handed out twice (cluster 1 consuming its own sleep, for the test).
  const auto other = Vips(Ctl("serviceentries --services " + dir_ + "/cluster1.yaml --gateway 192.0.2.30 "
                              "--network network1 --allocations " + alloc)
                              .out);
  for (const auto& [host, vip] : grown) EXPECT_NE(other.at("sleep.foo.global"), vip);
  std::ifstream in(alloc);
  const std::string recorded((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(recorded.find("sleep.foo.global " + other.at("sleep.foo.global")), std::string::npos) << recorded;
}

TEST_F(ServiceEntriesTest, BadInputIsAClearError) {
  std::ofstream(dir_ + "/bad.yaml") << Service("x", "y", "[{name: http, port: 70000}]");
  const CmdResult bad = Ctl("serviceentries --services " + dir_ + "/bad.yaml --gateway 192.0.2.1");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("bad.yaml:"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("must be 1..65535"), std::string::npos) << bad.out;
  EXPECT_EQ(Ctl("serviceentries --services " + dir_ + "/cluster1.yaml --gateway not_a..host").code, 1);
  std::ofstream(dir_ + "/bad.alloc") << "httpbin.bar.global 10.0.0.1\n";
  const CmdResult alloc = Ctl("serviceentries --services " + dir_ + "/cluster1.yaml --gateway 192.0.2.1 "
                              "--allocations " + dir_ + "/bad.alloc");
  EXPECT_EQ(alloc.code, 1);
  EXPECT_NE(alloc.out.find("bad.alloc:1: expected \"HOST VIP\" with a VIP in 240.0.0.0/4"), std::string::npos)
      << alloc.out;
  EXPECT_EQ(Ctl("serviceentries --gateway 192.0.2.1").code, 2);
}

TEST(CorednsTest, PrintsTheGlobalStanza) {
  const CmdResult r = Ctl("coredns --server 10.96.0.53");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "global:53 {\n    errors\n    cache 30\n    forward . 10.96.0.53\n}\n");
  EXPECT_EQ(Ctl("coredns").code, 2);
}

}  // namespace
