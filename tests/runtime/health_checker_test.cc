// HealthChecker across table versions (issue 14, part 3): a new table that
// changes one cluster restarts only the probers of the addresses that cluster
// changed; every other address keeps its prober, its schedule and its
// verdict. Real TCP connects on 127.0.0.1, no sleeps: the io_context runs
// until a counter or an accepted connection says the probe happened.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "gtest/gtest.h"
#include "proxy/runtime/health_checker.h"
#include "tests/proxy/loopback.h"

namespace meshgate::proxy {
namespace {

using testing::Listener;
using testing::Peer;

config::Cluster Service(const std::string& host, uint16_t endpoint_port) {
  config::Cluster c;
  c.host = host;
  c.port = 80;
  config::Endpoint e;
  e.address = "127.0.0.1";
  e.port = endpoint_port;
  c.endpoints.push_back(e);
  return c;
}

// A port that refuses connections: bound (so no one else takes it) but not
// listening, so a connect gets a RST at once.
class RefusingPort {
 public:
  RefusingPort() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
  }
  ~RefusingPort() { ::close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_;
  uint16_t port_ = 0;
};

TEST(HealthCheckerTest, ATableChangeRestartsOnlyTheChangedClustersProbers) {
  boost::asio::io_context io;
  Listener a;
  Listener b;
  RefusingPort refusing;
  config::GatewayConfig::HealthCheck check;
  check.host = "*.ns.svc.cluster.local";
  check.interval = std::chrono::hours(1);  // one probe per prober start in this test
  check.unhealthy_threshold = 1;
  HealthChecker checker(io, {check});

  auto table = std::make_shared<const config::RouteTable>(
      std::vector<config::Cluster>{Service("a.ns.svc.cluster.local", a.port()),
                                   Service("b.ns.svc.cluster.local", b.port())},
      std::vector<config::SniRewrite>{});
  auto health = std::make_shared<lb::HealthTable>(*table);
  checker.SetTable(table, health);
  Peer from_a;
  Peer from_b;
  ASSERT_TRUE(testing::RunUntil(io, [&] {
    if (from_a.fd() < 0) from_a = a.Accept(0);
    if (from_b.fd() < 0) from_b = b.Accept(0);
    return from_a.fd() >= 0 && from_b.fd() >= 0;
  })) << "each address is probed once at start";
  testing::RunReady(io);
  ASSERT_EQ(checker.counters().probes.value(), 2u);

  // Cluster b now lists an address that refuses; cluster a is the same object.
  config::Cluster changed = table->clusters()[1];
  changed.endpoints[0].port = refusing.port();
  const auto next = table->WithCluster(std::move(changed));
  ASSERT_EQ(next->cluster_ptr(0), table->cluster_ptr(0));
  const auto next_health = health->WithCluster(next->clusters()[1], table->clusters()[1]);
  checker.SetTable(next, next_health);
  // The new address's first probe is due at once, as a restarted prober's
  // would be; both would run in this same batch of ready handlers.
  ASSERT_TRUE(testing::RunUntil(io, [&] { return checker.counters().failures.value() == 1; }));
  testing::RunReady(io);
  EXPECT_EQ(checker.counters().probes.value(), 3u) << "a's prober kept its schedule: no new probe of a";
  EXPECT_FALSE(a.Accept(0).fd() >= 0) << "a was not connected to again";
  EXPECT_TRUE(next_health->cluster(1).endpoint(0).check_failed()) << "the new address's verdict reaches the new table";
  EXPECT_FALSE(next_health->cluster(0).endpoint(0).check_failed());
}

}  // namespace
}  // namespace meshgate::proxy
