// Incremental updates through the real install path (issue 14, part 3):
// Runtime::SetEndpoints publishes a snapshot in which only one cluster
// changed, real workers relay new connections by it, and a session opened on
// the snapshot before keeps relaying to its old endpoint. Also: a reload that
// changes one file reuses every cluster of the others, and a DNS answer goes
// through RouteTable::WithCluster like any other update.
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "config/mesh/mesh_loader.h"
#include "gtest/gtest.h"
#include "proxy/runtime/dns_routes.h"
#include "proxy/runtime/runtime.h"
#include "proxy/worker_pool.h"
#include "tests/proxy/loopback.h"
#include "tests/sni/hello_builder.h"

namespace meshgate::proxy {
namespace {

namespace asio = boost::asio;
using testing::Listener;
using testing::Peer;

constexpr char kSni[] = "outbound_.80_._.web.ns.svc.cluster.local";

config::Endpoint Ep(uint16_t port) {
  config::Endpoint e;
  e.address = "127.0.0.1";
  e.port = port;
  return e;
}

config::Cluster Service(const std::string& host, std::vector<config::Endpoint> endpoints) {
  config::Cluster c;
  c.host = host;
  c.port = 80;
  c.endpoints = std::move(endpoints);
  return c;
}

// Reads from `peer` until it holds `size` bytes or 5 s pass; poll() waits
// on the socket itself, never on a timer.
bool ReadUntil(Peer& peer, size_t size) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (peer.received().size() < size && !peer.eof() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{peer.fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    peer.ReadAvailable();
  }
  return peer.received().size() >= size;
}

bool Send(Peer& peer, std::string_view bytes) { return peer.SendSome(bytes) == bytes.size(); }

// A runtime on its own control loop, publishing to one real worker.
class IncrementalRuntimeTest : public ::testing::Test {
 protected:
  void Start(std::vector<config::Cluster> clusters) {
    config::GatewayConfig settings;
    settings.listen = "127.0.0.1:0";
    settings.threads = 1;
    settings.require_istio_alpn = false;
    settings.relay = config::RelayMode::kCopy;
    auto table = std::make_shared<const config::RouteTable>(std::move(clusters), std::vector<config::SniRewrite>{});
    runtime_ = std::make_unique<Runtime>(io_, settings, table, "", nullptr);
    pool_ = std::make_unique<WorkerPool>(1, -1, runtime_->snapshot());
    ASSERT_TRUE(pool_->Bind("127.0.0.1:0").ok());
    pool_->Start();
    runtime_->Start([this](std::shared_ptr<const Snapshot> s) { pool_->Publish(std::move(s)); });
    loop_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    pool_.reset();
    work_.reset();
    io_.stop();
    if (loop_.joinable()) loop_.join();
  }
  // Runs `f` on the control loop and waits for it.
  template <typename F>
  auto OnLoop(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(io_, [&task] { task(); });
    return result.get();
  }
  // Waits until the worker installed snapshot `sequence` (its acknowledgement).
  bool WaitInstalled(uint64_t sequence) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (pool_->acked_sequence() < sequence) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::yield();
    }
    return true;
  }
  // A client that sent a hello for kSni, and the backend connection it reached.
  struct Session {
    Peer client;
    Peer backend;
  };
  Session Open(Listener& backend) {
    Session s;
    s.client = Peer(ConnectTo(pool_->bound_address()));
    const auto hello = sni::testing::Record(sni::testing::kHandshake, sni::testing::HelloBuilder().Sni(kSni).Message());
    EXPECT_TRUE(Send(s.client, std::string_view(reinterpret_cast<const char*>(hello.data()), hello.size())));
    s.backend = backend.Accept();
    EXPECT_TRUE(s.backend.fd() >= 0) << "the gateway did not dial this backend";
    EXPECT_TRUE(ReadUntil(s.backend, hello.size()));
    return s;
  }
  static int ConnectTo(const std::string& address);

  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{asio::make_work_guard(io_)};
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<WorkerPool> pool_;
  std::thread loop_;
};

int IncrementalRuntimeTest::ConnectTo(const std::string& address) {
  const size_t colon = address.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  pollfd p{fd, POLLOUT, 0};
  ::poll(&p, 1, 5000);
  return fd;
}

TEST_F(IncrementalRuntimeTest, EndpointChangeReachesWorkersAndOpenSessionsKeepTheirEndpoint) {
  Listener a;
  Listener b;
  Start({Service("web.ns.svc.cluster.local", {Ep(a.port())}), Service("other.ns.svc.cluster.local", {Ep(9)}),
         Service("third.ns.svc.cluster.local", {Ep(9)})});
  const auto before = runtime_->snapshot();
  ASSERT_TRUE(WaitInstalled(before->sequence));
  Session old = Open(a);  // on the first snapshot, relayed to a

  const absl::Status set = OnLoop([&] {
    return runtime_->SetEndpoints("outbound|80||web.ns.svc.cluster.local", {Ep(b.port())});
  });
  ASSERT_TRUE(set.ok()) << set;
  const auto after = OnLoop([&] { return runtime_->snapshot(); });
  EXPECT_EQ(after->sequence, before->sequence + 1);
  EXPECT_EQ(after->version, before->version) << "an endpoint update keeps the config version";
  ASSERT_TRUE(WaitInstalled(after->sequence));

  // Only the changed cluster is a new object; the others share everything.
  for (uint32_t id : {1u, 2u}) {
    EXPECT_EQ(after->table->cluster_ptr(id), before->table->cluster_ptr(id));
    EXPECT_EQ(after->health->state_ptr(id), before->health->state_ptr(id));
    EXPECT_EQ(after->cluster_stats[id], before->cluster_stats[id]);
    EXPECT_EQ(after->endpoint_stats[id], before->endpoint_stats[id]);
  }
  EXPECT_NE(after->table->cluster_ptr(0), before->table->cluster_ptr(0));
  EXPECT_EQ(after->cluster_stats[0], before->cluster_stats[0]) << "a cluster's counters survive its update";

  Session fresh = Open(b);  // new connections follow the update
  ASSERT_TRUE(Send(fresh.client, "new"));
  EXPECT_TRUE(ReadUntil(fresh.backend, fresh.backend.received().size() + 3));

  // The session opened before still relays both ways to a.
  const size_t had = old.backend.received().size();
  ASSERT_TRUE(Send(old.client, "still-a"));
  ASSERT_TRUE(ReadUntil(old.backend, had + 7));
  EXPECT_EQ(old.backend.received().substr(had), "still-a");
  ASSERT_TRUE(Send(old.backend, "from-a"));
  ASSERT_TRUE(ReadUntil(old.client, 6));
  EXPECT_EQ(old.client.received(), "from-a");

  const absl::Status missing = OnLoop([&] { return runtime_->SetEndpoints("outbound|80||nope", {}); });
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  config::Endpoint no_address;
  const absl::Status bad = OnLoop([&] {
    return runtime_->SetEndpoints("outbound|80||web.ns.svc.cluster.local", {no_address});
  });
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(IncrementalRuntimeTest, SetTableReusesEqualClustersAndTheirState) {
  Start({Service("web.ns.svc.cluster.local", {Ep(1)}), Service("other.ns.svc.cluster.local", {Ep(2)})});
  const auto before = runtime_->snapshot();
  auto reloaded = std::make_shared<const config::RouteTable>(
      std::vector<config::Cluster>{Service("web.ns.svc.cluster.local", {Ep(1)}),
                                   Service("other.ns.svc.cluster.local", {Ep(3)})},
      std::vector<config::SniRewrite>{});
  OnLoop([&] {
    runtime_->SetTable(reloaded);
    return 0;
  });
  const auto after = OnLoop([&] { return runtime_->snapshot(); });
  EXPECT_EQ(after->table->cluster_ptr(0), before->table->cluster_ptr(0));
  EXPECT_EQ(after->health->state_ptr(0), before->health->state_ptr(0));
  EXPECT_NE(after->table->cluster_ptr(1), before->table->cluster_ptr(1));
  EXPECT_EQ(after->table->clusters()[1].endpoints[0].port, 3);
}

// A reload (SetTable is what Rebuild installs) that keeps every cluster's
// name and id and changes one cluster installs through the per-cluster path:
// every other cluster keeps its object, health and outlier state, stats and
// endpoint series, and new connections follow the changed cluster.
TEST_F(IncrementalRuntimeTest, ReloadWithTheSameClustersInstallsOnlyTheChangedOne) {
  Listener a;
  Listener b;
  auto clusters = [&](uint16_t web_port) {
    return std::vector<config::Cluster>{Service("other.ns.svc.cluster.local", {Ep(9)}),
                                        Service("web.ns.svc.cluster.local", {Ep(web_port), Ep(7)}),
                                        Service("third.ns.svc.cluster.local", {Ep(8)})};
  };
  Start(clusters(a.port()));
  const auto before = runtime_->snapshot();
  ASSERT_TRUE(WaitInstalled(before->sequence));
  // Outlier state (connect failures in a row) on the web cluster's endpoint
  // 7, which the reload keeps; a worker writes it the same way.
  before->health->cluster(1).endpoint(1).consecutive_failures.store(2);

  const auto reloaded = std::make_shared<const config::RouteTable>(clusters(b.port()), std::vector<config::SniRewrite>{});
  OnLoop([&] {
    runtime_->SetTable(reloaded);
    return 0;
  });
  const auto after = OnLoop([&] { return runtime_->snapshot(); });
  ASSERT_GT(after->sequence, before->sequence);
  ASSERT_TRUE(WaitInstalled(after->sequence));
  for (uint32_t id : {0u, 2u}) {
    EXPECT_EQ(after->table->cluster_ptr(id), before->table->cluster_ptr(id));
    EXPECT_EQ(after->health->state_ptr(id), before->health->state_ptr(id));
    EXPECT_EQ(after->cluster_stats[id], before->cluster_stats[id]);
    EXPECT_EQ(after->endpoint_stats[id], before->endpoint_stats[id]);
  }
  EXPECT_NE(after->table->cluster_ptr(1), before->table->cluster_ptr(1));
  EXPECT_NE(after->health->state_ptr(1), before->health->state_ptr(1));
  EXPECT_EQ(after->cluster_stats[1], before->cluster_stats[1]) << "a cluster's counters survive its change";
  EXPECT_EQ(after->health->cluster(1).endpoint(1).consecutive_failures.load(), 2u)
      << "a kept endpoint keeps its outlier state";
  EXPECT_EQ(after->health->cluster(1).endpoint(0).consecutive_failures.load(), 0u);
  Session fresh = Open(b);  // the changed cluster's new endpoint is served
  ASSERT_TRUE(Send(fresh.client, "new"));
  EXPECT_TRUE(ReadUntil(fresh.backend, fresh.backend.received().size() + 3));
}

// A reload that adds a cluster moves ids: the whole table is installed, and
// the clusters it kept still keep their state.
TEST_F(IncrementalRuntimeTest, ReloadThatAddsAClusterInstallsTheWholeTable) {
  Start({Service("web.ns.svc.cluster.local", {Ep(1)}), Service("other.ns.svc.cluster.local", {Ep(2)})});
  const auto before = runtime_->snapshot();
  const auto reloaded = std::make_shared<const config::RouteTable>(
      std::vector<config::Cluster>{Service("web.ns.svc.cluster.local", {Ep(1)}),
                                   Service("new.ns.svc.cluster.local", {Ep(3)}),
                                   Service("other.ns.svc.cluster.local", {Ep(2)})},
      std::vector<config::SniRewrite>{});
  OnLoop([&] {
    runtime_->SetTable(reloaded);
    return 0;
  });
  const auto after = OnLoop([&] { return runtime_->snapshot(); });
  ASSERT_EQ(after->table->clusters().size(), 3u);
  ASSERT_EQ(after->health->size(), 3u);
  ASSERT_EQ(after->cluster_stats.size(), 3u);
  const config::Cluster* other = after->table->FindByName("outbound|80||other.ns.svc.cluster.local");
  const config::Cluster* added = after->table->FindByName("outbound|80||new.ns.svc.cluster.local");
  ASSERT_NE(other, nullptr);
  ASSERT_NE(added, nullptr);
  EXPECT_EQ(after->health->cluster(added->id).size(), 1u);
  EXPECT_EQ(after->cluster_stats[other->id], before->cluster_stats[1]);
}

// Two mesh files; the second changes. Istio ServiceEntry fields per
// https://istio.io/latest/docs/reference/config/networking/service-entry/
std::string Entry(const std::string& name, int first_octet_port) {
  return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: " + name +
         ", namespace: ns}\nspec:\n  hosts: [" + name + ".ns.svc.cluster.local]\n  location: MESH_INTERNAL\n"
         "  resolution: STATIC\n  ports: [{number: 80, name: tcp, protocol: TCP}]\n"
         "  endpoints: [{address: 10.0.0.1, ports: {tcp: " + std::to_string(first_octet_port) + "}}]\n";
}

TEST(IncrementalReloadTest, ReloadThatChangesOneFileReusesTheOtherFilesClusters) {
  auto load = [](const std::string& second) {
    config::MeshSources sources;
    sources.sources.push_back({"a.yaml", Entry("alpha", 8080) + "---\n" + Entry("beta", 8080), ""});
    sources.sources.push_back({"b.yaml", second, ""});
    config::MeshLoadResult result = config::LoadMeshSources(sources, {}, {});
    EXPECT_TRUE(result.errors.empty());
    return result.table;
  };
  const auto v1 = load(Entry("gamma", 8080));
  const auto v2 = config::RouteTable::Reuse(*v1, *load(Entry("gamma", 9090)));
  const config::Cluster* alpha = v2->FindByName("outbound|80||alpha.ns.svc.cluster.local");
  const config::Cluster* gamma = v2->FindByName("outbound|80||gamma.ns.svc.cluster.local");
  ASSERT_NE(alpha, nullptr);
  ASSERT_NE(gamma, nullptr);
  EXPECT_EQ(alpha, v1->FindByName(alpha->name)) << "unchanged file: the same object";
  EXPECT_EQ(v2->FindByName("outbound|80||beta.ns.svc.cluster.local"),
            v1->FindByName("outbound|80||beta.ns.svc.cluster.local"));
  EXPECT_NE(gamma, v1->FindByName(gamma->name));
  EXPECT_EQ(gamma->endpoints.at(0).port, 9090);
  EXPECT_EQ(gamma->id, v1->FindByName(gamma->name)->id) << "a changed cluster keeps its id";
}

// A DNS answer is one cluster's update: DnsRoutes builds it with
// RouteTable::WithCluster, so static clusters stay the base's objects.
TEST(IncrementalDnsTest, ResolvedTableSharesEveryStaticCluster) {
  config::Cluster dns = Service("ext.example.com", {});
  dns.resolution = config::Resolution::kDns;
  config::Endpoint name;
  name.set_hostname("backend.example.com");
  name.port = 443;
  dns.dns_endpoints = {name};
  const config::RouteTable base({Service("a.ns.svc.cluster.local", {Ep(1)}), dns,
                                 Service("b.ns.svc.cluster.local", {Ep(2)})},
                                {});
  const auto resolved = DnsRoutes::Resolve(base, {{"backend.example.com", {"192.0.2.7"}}});
  EXPECT_EQ(resolved->cluster_ptr(0), base.cluster_ptr(0));
  EXPECT_EQ(resolved->cluster_ptr(2), base.cluster_ptr(2));
  ASSERT_EQ(resolved->clusters()[1].endpoints.size(), 1u);
  EXPECT_EQ(resolved->clusters()[1].endpoints[0].address, "192.0.2.7");
  // A new answer: only the DNS cluster changes.
  const config::Cluster next = DnsRoutes::ResolveCluster(base.clusters()[1], {{"backend.example.com", {"192.0.2.8"}}});
  const auto again = resolved->WithCluster(next);
  EXPECT_EQ(again->cluster_ptr(0), base.cluster_ptr(0));
  EXPECT_EQ(again->clusters()[1].endpoints[0].address, "192.0.2.8");
}

}  // namespace
}  // namespace meshgate::proxy
