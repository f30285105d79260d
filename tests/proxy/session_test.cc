// Session through its public face: accepted as a worker accepts it, fed real
// ClientHellos (tests/sni/hello_builder) over loopback TCP, routed to an
// upstream listening on 127.0.0.1:0 in this process. Each test asserts the
// termination reason and counters in ProxyStats, the bytes both peers saw,
// and that the session is gone (and its accounting undone) once it ends.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "config/model/route_table.h"
#include "lb/cluster_state.h"
#include "proxy/cluster_stats.h"
#include "proxy/log_limiter.h"
#include "proxy/relay.h"
#include "proxy/session.h"
#include "proxy/session_sweep.h"
#include "proxy/snapshot.h"
#include "proxy/stats.h"
#include "tests/proxy/loopback.h"
#include "tests/sni/hello_builder.h"
#include "tests/support/ports.h"

namespace meshgate::proxy {

void PrintTo(Termination t, std::ostream* os) { *os << ToString(t); }

namespace {

using namespace std::chrono_literals;
using testing::Listener;
using testing::Pattern;
using testing::Peer;
using testing::RunReady;
using testing::RunUntil;
using testing::Transfer;
using testing::WaitClosed;

constexpr char kSni[] = "outbound_.8000_._.httpbin.bar.global";

// A ClientHello for `sni`, as one TLS record.
std::string Hello(std::string_view sni, size_t padding = 0) {
  sni::testing::HelloBuilder b;
  b.Sni(sni).Alpn({"istio-peer-exchange", "istio"}).Versions({0x0304, 0x0303});
  if (padding > 0) b.Ext(21, sni::testing::Bytes(padding, 0));  // the padding extension
  const sni::testing::Bytes wire = sni::testing::Records(b.Message());
  return std::string(wire.begin(), wire.end());
}

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() {
    ctx_.stats = &stats_;
    ctx_.pipes = &pipes_;
    ctx_.log_limiter = &limiter_;
    ctx_.live = &live_;
    ctx_.reactor = &reactor_;
  }
  // Sessions a test left open close as at a worker's shutdown.
  ~SessionTest() override {
    ForEachLive([](Session& s) { s.Abandon(); });
    RunReady(reactor_);
  }

  // What the runtime would publish: httpbin.bar:8000 on 127.0.0.1 at `ports`
  // (none: a cluster without endpoints), with settings_.
  void Publish(const std::vector<uint16_t>& ports, std::optional<uint32_t> max_connections = std::nullopt) {
    std::optional<config::TcpConnectionPool> pool;
    if (max_connections) pool = config::TcpConnectionPool{.max_connections = max_connections};
    PublishWithPool(ports, pool);
  }
  // The same, with the DestinationRule's connectionPool.tcp for the cluster.
  void PublishWithPool(const std::vector<uint16_t>& ports, const std::optional<config::TcpConnectionPool>& pool) {
    config::Cluster cluster;
    cluster.host = "httpbin.bar.svc.cluster.local";
    cluster.port = 8000;
    for (uint16_t port : ports) cluster.endpoints.push_back(config::Endpoint{"127.0.0.1", port});
    cluster.policy.connection_pool = pool;
    auto snapshot = std::make_shared<Snapshot>();
    snapshot->version = 1;
    snapshot->table = std::make_shared<const config::RouteTable>(
        std::vector<config::Cluster>{cluster}, std::vector<config::SniRewrite>{{".global", ".svc.cluster.local"}});
    snapshot->health = std::make_shared<lb::HealthTable>(*snapshot->table);
    snapshot->cluster_stats = registry_.ForTable(*snapshot->table);
    snapshot->settings = settings_;
    snapshot->sweep_tick = SweepTick(*snapshot->table, settings_);
    ctx_.routes = std::make_shared<WorkerRoutes>(snapshot);
  }
  // Runs the worker's sweep on the reactor from now on, as a worker does.
  void StartSweep() {
    sweep_.emplace(reactor_, ctx_);
    sweep_->Start();
  }
  const ClusterStats& cluster_stats() const { return *ctx_.routes->cluster_stats[0]; }

  // A client connection, accepted and handed to a new session as a worker
  // does; returns the client's end. The session owns itself from Start() on.
  Peer Accept() {
    testing::Connection c = testing::Connect();
    StartSession(std::move(c.end));
    return std::move(c.peer);
  }
  // Hands the accepted end to a new session, as a worker does.
  void StartSession(Peer end) {
    boost::asio::ip::tcp::endpoint peer;
    socklen_t len = static_cast<socklen_t>(peer.capacity());
    EXPECT_EQ(::getpeername(end.fd(), peer.data(), &len), 0);
    peer.resize(len);
    (new Session(end.Release(), peer, ctx_))->Start();
  }

  // A client whose hello routed it to `upstream`, with the upstream's end of
  // the session's connection; the upstream has received `hello`.
  struct Relayed {
    Peer client;
    Peer server;
  };
  Relayed Relay(Listener& upstream, const std::string& hello) {
    Relayed r{Accept(), Peer()};
    EXPECT_EQ(r.client.SendSome(hello), hello.size());
    const uint64_t connected = stats_.upstream_cx_total.value();
    EXPECT_TRUE(RunUntil(reactor_, [&] { return stats_.upstream_cx_total.value() > connected; }));
    r.server = upstream.Accept();
    EXPECT_GE(r.server.fd(), 0);
    EXPECT_TRUE(RunUntil(reactor_, [&] {
      r.server.ReadAvailable();
      return r.server.received().size() >= hello.size();
    }));
    EXPECT_TRUE(r.server.received() == hello) << "the hello was not replayed as sent";
    return r;
  }

  // Runs until every session has ended and been deleted (its destructor
  // gives back downstream_cx_active).
  bool AllSessionsGone() {
    return RunUntil(reactor_, [&] { return stats_.downstream_cx_active.value() == 0; });
  }
  // Closes every open session through `act` (the worker's drain or sweep).
  template <typename Act>
  void ForEachLive(Act act) {
    for (Session* s : std::vector<Session*>(live_.begin(), live_.end())) act(*s);
  }

  uint64_t Ended(Termination why) const { return stats_.terminations[static_cast<size_t>(why)].value(); }
  uint64_t Ended() const {
    uint64_t n = 0;
    for (const Counter& c : stats_.terminations) n += c.value();
    return n;
  }
  uint64_t Rejected(sni::RejectReason why) const { return stats_.hello_rejected[static_cast<size_t>(why)].value(); }
  uint64_t Missed(config::RouteMiss why) const { return stats_.route_miss[static_cast<size_t>(why)].value(); }

  // What every session's end must leave behind: no session, nothing open.
  void ExpectAllUndone() {
    EXPECT_TRUE(AllSessionsGone()) << "a session outlived its end";
    EXPECT_TRUE(live_.empty());
    EXPECT_EQ(stats_.downstream_cx_active.value(), 0u);
    EXPECT_EQ(stats_.upstream_cx_active.value(), 0u);
    if (ctx_.routes) {
      EXPECT_EQ(cluster_stats().counters.cx_active.value(), 0u);
      const lb::ClusterState& state = ctx_.routes->health->cluster(0);
      EXPECT_EQ(state.active(), 0u) << "a cluster slot was kept";
      for (size_t i = 0; i < state.size(); ++i) EXPECT_EQ(state.endpoint(i).active.load(), 0u) << "endpoint " << i;
    }
  }

  // The reactor first: destroyed last. Sessions are gone by then (the
  // destructor above), and they count into what follows.
  Reactor reactor_;
  ProxyStats stats_;
  PipePool pipes_;
  LogLimiter limiter_;
  LiveSessions live_;
  ClusterStatsRegistry registry_;
  DataPathSettings settings_;
  WorkerContext ctx_;
  std::optional<SessionSweep> sweep_;
};

TEST_F(SessionTest, ASilentClientIsClosedAtTheHelloTimeout) {
  settings_.hello_timeout = 100ms;
  Listener upstream;
  Publish({upstream.port()});
  const auto start = std::chrono::steady_clock::now();
  Peer client = Accept();
  ASSERT_TRUE(WaitClosed(reactor_, client));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  EXPECT_EQ(Ended(Termination::kHelloTimeout), 1u);
  EXPECT_EQ(Ended(), 1u);
  EXPECT_EQ(stats_.hello_timeout.value(), 1u);
  EXPECT_EQ(stats_.downstream_cx_total.value(), 1u);
  EXPECT_LT(upstream.Accept(0).fd(), 0) << "dialled without a hello";
  ExpectAllUndone();
}

// Behind a TCP_DEFER_ACCEPT listener, a connection that reaches accept()
// with nothing to read has been silent for the kernel's whole wait since its
// SYN (proxy/worker_pool.cc): that wait counts against its hello timeout, so
// with a timeout under the wait it is closed in its first turn, unread.
class DeferredAcceptTest : public SessionTest {
 protected:
  DeferredAcceptTest() {
    settings_.hello_timeout = 800ms;
    ctx_.defer_accept = 1000ms;  // a hello timeout under the listener's wait
    Publish({upstream_.port()});
  }
  Listener upstream_;
};

TEST_F(DeferredAcceptTest, ASilentClientHasSpentItsHelloTimeInTheKernel) {
  Peer client = Accept();
  RunReady(reactor_);
  client.ReadAvailable();
  EXPECT_TRUE(client.eof() || client.error() != 0) << "still open after a turn";
  EXPECT_EQ(Ended(Termination::kHelloTimeout), 1u);
  ExpectAllUndone();
}

// One that arrived with its first bytes was accepted within the wait of its
// SYN: its deadline runs from accept(), and the rest of its hello is routed.
TEST_F(DeferredAcceptTest, AClientWithBytesKeepsItsHelloTime) {
  const std::string hello = Hello(kSni);
  testing::Connection c = testing::Connect();
  ASSERT_EQ(c.peer.SendSome(std::string_view(hello).substr(0, 20)), 20u);
  ASSERT_TRUE(RunUntil(reactor_, [&] { return testing::Unread(c.end.fd()) == 20; }));
  StartSession(std::move(c.end));
  RunReady(reactor_);
  EXPECT_EQ(Ended(), 0u) << "closed although bytes were there at accept";
  ASSERT_EQ(c.peer.SendSome(std::string_view(hello).substr(20)), hello.size() - 20);
  ASSERT_TRUE(RunUntil(reactor_, [&] { return stats_.upstream_cx_total.value() == 1; }));
  EXPECT_EQ(stats_.hello_timeout.value(), 0u);
  ForEachLive([](Session& s) { s.Drain(); });
  ExpectAllUndone();
}

// One deadline for the whole hello: bytes that trickle in do not extend it.
TEST_F(SessionTest, APartialHelloIsClosedAtTheHelloTimeout) {
  settings_.hello_timeout = 100ms;
  Listener upstream;
  Publish({upstream.port()});
  Peer client = Accept();
  const std::string hello = Hello(kSni);
  ASSERT_EQ(client.SendSome(std::string_view(hello).substr(0, 20)), 20u);
  ASSERT_TRUE(WaitClosed(reactor_, client));
  EXPECT_EQ(Ended(Termination::kHelloTimeout), 1u);
  EXPECT_EQ(stats_.hello_timeout.value(), 1u);
  EXPECT_EQ(stats_.hello_ok.value(), 0u);
  EXPECT_LT(upstream.Accept(0).fd(), 0);
  ExpectAllUndone();
}

TEST_F(SessionTest, PlainHttpIsRejectedAsNotTls) {
  Listener upstream;
  Publish({upstream.port()});
  Peer client = Accept();
  client.SendSome("GET / HTTP/1.1\r\nHost: httpbin\r\n\r\n");
  ASSERT_TRUE(WaitClosed(reactor_, client));
  EXPECT_EQ(Ended(Termination::kNotTls), 1u);
  EXPECT_EQ(Ended(), 1u);
  EXPECT_EQ(Rejected(sni::RejectReason::kPlainHttp), 1u);
  EXPECT_EQ(stats_.hello_ok.value(), 0u);
  EXPECT_LT(upstream.Accept(0).fd(), 0);
  ExpectAllUndone();
}

TEST_F(SessionTest, AMalformedHelloIsRejectedAsMalformed) {
  Listener upstream;
  Publish({upstream.port()});
  Peer client = Accept();
  sni::testing::HelloBuilder b;
  b.Sni("httpbin.bar.global").Ext(10, {0, 2, 0, 29}).Ext(10, {0, 2, 0, 29});  // one extension twice
  const sni::testing::Bytes wire = sni::testing::Records(b.Message());
  client.SendSome(std::string(wire.begin(), wire.end()));
  ASSERT_TRUE(WaitClosed(reactor_, client));
  EXPECT_EQ(Ended(Termination::kHelloMalformed), 1u);
  EXPECT_EQ(Rejected(sni::RejectReason::kDuplicateExtension), 1u);
  ExpectAllUndone();
}

TEST_F(SessionTest, AClientThatLeavesBeforeItsHelloEndsAsHelloClosed) {
  Listener upstream;
  Publish({upstream.port()});
  Peer client = Accept();
  client.SendSome(std::string_view(Hello(kSni)).substr(0, 10));
  client.ShutdownWrite();
  ASSERT_TRUE(WaitClosed(reactor_, client));
  EXPECT_EQ(Ended(Termination::kHelloClosed), 1u);
  EXPECT_EQ(Ended(), 1u);
  ExpectAllUndone();
}

TEST_F(SessionTest, AnOversizeHelloIsRejectedAsTooLarge) {
  settings_.max_hello_bytes = 1024;
  Listener upstream;
  Publish({upstream.port()});
  Peer client = Accept();
  const std::string hello = Hello(kSni, 2000);
  ASSERT_GT(hello.size(), settings_.max_hello_bytes);
  client.SendSome(hello);
  ASSERT_TRUE(WaitClosed(reactor_, client));
  EXPECT_EQ(Ended(Termination::kHelloTooLarge), 1u);
  EXPECT_EQ(Ended(), 1u);
  EXPECT_EQ(Rejected(sni::RejectReason::kTooLarge), 1u);
  EXPECT_LT(upstream.Accept(0).fd(), 0);
  ExpectAllUndone();
}

// A hello just under the cap still routes: the cap is not off by one.
TEST_F(SessionTest, AHelloAtTheCapIsRouted) {
  Listener upstream;
  const std::string hello = Hello(kSni, 2000);
  settings_.max_hello_bytes = hello.size();
  Publish({upstream.port()});
  Relayed r = Relay(upstream, hello);
  EXPECT_EQ(stats_.hello_ok.value(), 1u);
  EXPECT_EQ(Ended(), 0u);
}

TEST_F(SessionTest, AnUnknownSniIsRefusedAndNeverDialled) {
  Listener upstream;
  Publish({upstream.port()});
  Peer client = Accept();
  client.SendSome(Hello("outbound_.8000_._.nope.bar.global"));
  ASSERT_TRUE(WaitClosed(reactor_, client));
  EXPECT_EQ(Ended(Termination::kNoRoute), 1u);
  EXPECT_EQ(Ended(), 1u);
  EXPECT_EQ(Missed(config::RouteMiss::kUnknownHost), 1u);
  EXPECT_EQ(stats_.hello_ok.value(), 1u);  // a good hello, for a host we do not know
  EXPECT_EQ(stats_.upstream_cx_total.value(), 0u);
  EXPECT_LT(upstream.Accept(0).fd(), 0) << "an unknown SNI was dialled";
  ExpectAllUndone();
}

TEST_F(SessionTest, AClusterWithoutEndpointsEndsAsNoEndpoints) {
  Publish({});
  Peer client = Accept();
  client.SendSome(Hello(kSni));
  ASSERT_TRUE(WaitClosed(reactor_, client));
  EXPECT_EQ(Ended(Termination::kNoEndpoints), 1u);
  EXPECT_EQ(Ended(), 1u);
  ExpectAllUndone();
}

// Every endpoint refuses: each is tried once, then the session gives up.
TEST_F(SessionTest, RefusedEndpointsAreRetriedThenTheSessionEndsAsConnectFailed) {
  const meshgate::testing::ReservedPort dead[2];  // nothing listens on them
  Publish({dead[0].port(), dead[1].port()});
  Peer client = Accept();
  client.SendSome(Hello(kSni));
  ASSERT_TRUE(WaitClosed(reactor_, client));
  EXPECT_EQ(Ended(Termination::kUpstreamConnectFailed), 1u);
  EXPECT_EQ(Ended(), 1u);
  EXPECT_EQ(stats_.upstream_connect_fail.value(), 2u);
  EXPECT_EQ(stats_.upstream_connect_retry.value(), 1u);
  EXPECT_EQ(stats_.upstream_cx_total.value(), 0u);
  EXPECT_EQ(cluster_stats().counters.connect_failures.value(), 2u);
  EXPECT_EQ(cluster_stats().counters.connect_retries.value(), 1u);
  ExpectAllUndone();
}

struct RelayCase {
  const char* name;
  RelayMode mode;
};
void PrintTo(const RelayCase& c, std::ostream* os) { *os << c.name; }

class SessionRelayTest : public SessionTest, public ::testing::WithParamInterface<RelayCase> {};

// The whole life: the hello replayed upstream byte for byte, then both
// directions relayed, a half-close from the client, and the upstream's close.
TEST_P(SessionRelayTest, ARoutedHelloIsReplayedUpstreamAndBothWaysRelayed) {
  settings_.relay = GetParam().mode;
  Listener upstream;
  Publish({upstream.port()});
  const std::string hello = Hello(kSni);
  Relayed r = Relay(upstream, hello);

  const std::string request = Pattern(300 * 1024, 1);
  ASSERT_TRUE(Transfer(reactor_, r.client, r.server, request));
  EXPECT_TRUE(r.server.received() == hello + request);
  const std::string reply = Pattern(1 << 20, 2);
  ASSERT_TRUE(Transfer(reactor_, r.server, r.client, reply));
  EXPECT_TRUE(r.client.received() == reply);

  r.client.ShutdownWrite();  // half-close: the reply direction stays open
  ASSERT_TRUE(RunUntil(reactor_, [&] {
    r.server.ReadAvailable();
    return r.server.eof();
  }));
  EXPECT_EQ(Ended(), 0u);
  ASSERT_TRUE(Transfer(reactor_, r.server, r.client, "after the client's FIN"));
  r.server.ShutdownWrite();
  ASSERT_TRUE(WaitClosed(reactor_, r.client));
  EXPECT_TRUE(r.client.eof());

  EXPECT_EQ(Ended(Termination::kDownstreamClose), 1u);
  EXPECT_EQ(Ended(), 1u);
  EXPECT_EQ(stats_.hello_ok.value(), 1u);
  EXPECT_EQ(stats_.upstream_cx_total.value(), 1u);
  EXPECT_EQ(stats_.bytes_downstream_to_upstream.value(), hello.size() + request.size());
  EXPECT_EQ(stats_.bytes_upstream_to_downstream.value(), reply.size() + 22);
  EXPECT_EQ(stats_.relay_copy_fallback.value(), 0u);
  EXPECT_EQ(cluster_stats().counters.cx_total.value(), 1u);
  EXPECT_EQ(cluster_stats().counters.sent_bytes.value(), hello.size() + request.size());
  EXPECT_EQ(cluster_stats().counters.received_bytes.value(), reply.size() + 22);
  EXPECT_EQ(cluster_stats().counters.sessions_closed.value(), 1u);
  ExpectAllUndone();
}

INSTANTIATE_TEST_SUITE_P(Modes, SessionRelayTest,
                         ::testing::Values(RelayCase{"splice", RelayMode::kSplice}, RelayCase{"copy", RelayMode::kCopy}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(SessionTest, TheUpstreamClosingFirstEndsAsUpstreamClose) {
  Listener upstream;
  Publish({upstream.port()});
  Relayed r = Relay(upstream, Hello(kSni));
  r.server.ShutdownWrite();
  ASSERT_TRUE(RunUntil(reactor_, [&] {
    r.client.ReadAvailable();
    return r.client.eof();
  }));
  r.client.ShutdownWrite();
  ASSERT_TRUE(WaitClosed(reactor_, r.server));
  ASSERT_TRUE(AllSessionsGone());
  EXPECT_EQ(Ended(Termination::kUpstreamClose), 1u);
  EXPECT_EQ(Ended(), 1u);
  ExpectAllUndone();
}

TEST_F(SessionTest, AResetFromTheUpstreamEndsAsUpstreamError) {
  Listener upstream;
  Publish({upstream.port()});
  Relayed r = Relay(upstream, Hello(kSni));
  r.server.Reset();
  ASSERT_TRUE(WaitClosed(reactor_, r.client));
  EXPECT_EQ(Ended(Termination::kUpstreamError), 1u);
  EXPECT_EQ(Ended(), 1u);
  ExpectAllUndone();
}

// maxConnections counts open sessions of the cluster: the one over is
// refused, and the slot comes back when a session ends.
TEST_F(SessionTest, MaxConnectionsRefusesTheOverflowAndTheSlotComesBack) {
  Listener upstream;
  Publish({upstream.port()}, 1);
  Relayed first = Relay(upstream, Hello(kSni));
  Peer second = Accept();
  second.SendSome(Hello(kSni));
  ASSERT_TRUE(WaitClosed(reactor_, second));
  EXPECT_EQ(Ended(Termination::kUpstreamOverflow), 1u);
  EXPECT_EQ(stats_.upstream_cx_overflow.value(), 1u);
  EXPECT_EQ(cluster_stats().counters.cx_overflow.value(), 1u);
  EXPECT_LT(upstream.Accept(0).fd(), 0) << "the overflow was dialled";

  first.client.Reset();
  ASSERT_TRUE(WaitClosed(reactor_, first.server));
  ASSERT_TRUE(AllSessionsGone());
  EXPECT_EQ(Ended(Termination::kDownstreamError), 1u);
  Relayed third = Relay(upstream, Hello(kSni));
  EXPECT_EQ(stats_.upstream_cx_total.value(), 2u);
  EXPECT_EQ(Ended(Termination::kUpstreamOverflow), 1u);
}

// The worker's idle sweep closes relaying sessions idle for the idle
// timeout, and never one still reading its hello (that has its own deadline).
TEST_F(SessionTest, TheIdleSweepClosesOnlyIdleRelayingSessions) {
  settings_.idle_timeout = 1h;
  Listener upstream;
  Publish({upstream.port()});
  Relayed relaying = Relay(upstream, Hello(kSni));
  Peer waiting = Accept();  // no hello yet
  RunReady(reactor_);
  ASSERT_EQ(live_.size(), 2u);
  const auto now = std::chrono::steady_clock::now();
  ForEachLive([&](Session& s) { s.CheckIdle(now + 30min); });
  RunReady(reactor_);
  EXPECT_EQ(Ended(), 0u) << "closed before the idle timeout";
  ForEachLive([&](Session& s) { s.CheckIdle(now + 2h); });
  ASSERT_TRUE(WaitClosed(reactor_, relaying.client));
  ASSERT_TRUE(WaitClosed(reactor_, relaying.server));
  ASSERT_TRUE(RunUntil(reactor_, [&] { return live_.size() < 2; }));  // the swept one is gone
  EXPECT_EQ(Ended(Termination::kIdleTimeout), 1u);
  EXPECT_EQ(Ended(), 1u);
  EXPECT_EQ(live_.size(), 1u) << "the session reading its hello was swept";

  ForEachLive([](Session& s) { s.Drain(); });
  ASSERT_TRUE(WaitClosed(reactor_, waiting));
  EXPECT_EQ(Ended(Termination::kDrained), 1u);
  ExpectAllUndone();
}

TEST_F(SessionTest, DrainClosesRelayingSessionsAsDrained) {
  Listener upstream;
  Publish({upstream.port()});
  Relayed r = Relay(upstream, Hello(kSni));
  ForEachLive([](Session& s) { s.Drain(); });
  ASSERT_TRUE(WaitClosed(reactor_, r.client));
  ASSERT_TRUE(WaitClosed(reactor_, r.server));
  EXPECT_EQ(Ended(Termination::kDrained), 1u);
  EXPECT_EQ(Ended(), 1u);
  ExpectAllUndone();
}

// connectionPool.tcp.idleTimeout: the cluster's wins over the gateway's
// timeouts.idle, and the worker's sweep closes the session at it (within a
// tick of 25ms), not at the gateway's hour.
TEST_F(SessionTest, TheClustersIdleTimeoutBeatsTheGatewaysAndTheSweepClosesAtIt) {
  settings_.idle_timeout = 1h;
  Listener upstream;
  PublishWithPool({upstream.port()}, config::TcpConnectionPool{.idle_timeout = 200ms});
  StartSweep();
  Relayed r = Relay(upstream, Hello(kSni));
  const auto idle_from = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitClosed(reactor_, r.client, 5s)) << "the cluster's idle timeout was not applied";
  const auto waited = std::chrono::steady_clock::now() - idle_from;
  EXPECT_GE(waited, 190ms);  // the session's clock started a little before ours
  EXPECT_LT(waited, 900ms) << "a sweep tick too long for the cluster's timeout";
  ASSERT_TRUE(WaitClosed(reactor_, r.server));
  EXPECT_EQ(Ended(Termination::kIdleTimeout), 1u);
  EXPECT_EQ(Ended(), 1u);
  ExpectAllUndone();
}

// Istio: "If set to 0s, the timeout will be disabled" for the cluster, even
// though the gateway's own idle timeout would have closed it.
TEST_F(SessionTest, AClusterIdleTimeoutOfZeroDisablesIt) {
  settings_.idle_timeout = 1h;
  Listener upstream;
  PublishWithPool({upstream.port()}, config::TcpConnectionPool{.idle_timeout = 0ms});
  Relayed r = Relay(upstream, Hello(kSni));
  const auto now = std::chrono::steady_clock::now();
  ForEachLive([&](Session& s) { s.CheckIdle(now + 24h); });
  RunReady(reactor_);
  EXPECT_EQ(Ended(), 0u) << "closed although the cluster disabled the idle timeout";
  ForEachLive([](Session& s) { s.Drain(); });
  ASSERT_TRUE(WaitClosed(reactor_, r.client));
  ExpectAllUndone();
}

// connectionPool.tcp.maxConnectionDuration: closed that long after the
// upstream connect however busy it is, counted as max_duration.
TEST_F(SessionTest, MaxConnectionDurationClosesABusySessionOnTime) {
  settings_.idle_timeout = 1h;
  Listener upstream;
  PublishWithPool({upstream.port()}, config::TcpConnectionPool{.max_connection_duration = 300ms});
  StartSweep();
  const auto start = std::chrono::steady_clock::now();
  Relayed r = Relay(upstream, Hello(kSni));
  // Traffic both ways keeps it from being idle; it does not extend the limit.
  bool closed = false;
  const bool done = RunUntil(reactor_, [&] {
    r.client.SendSome("ping");
    r.server.SendSome("pong");
    r.server.ReadAvailable();
    r.client.ReadAvailable();
    closed = r.client.eof() || r.client.error() != 0;
    return closed;
  });
  ASSERT_TRUE(done) << "not closed at maxConnectionDuration";
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 900ms) << "a sweep tick too long for the cluster's duration";
  EXPECT_GT(r.server.received().size(), Hello(kSni).size()) << "no traffic was relayed";
  EXPECT_EQ(Ended(Termination::kMaxDuration), 1u);
  EXPECT_EQ(Ended(), 1u);
  EXPECT_EQ(ToString(Termination::kMaxDuration), "max_duration");
  ExpectAllUndone();
}

// The limits from the sweep's side, at chosen times: the duration counts from
// the connect, and is checked before the idle timeout.
TEST_F(SessionTest, MaxConnectionDurationCountsFromTheConnect) {
  Listener upstream;
  PublishWithPool({upstream.port()},
                  config::TcpConnectionPool{.idle_timeout = 1h, .max_connection_duration = 10min});
  const auto before = std::chrono::steady_clock::now();
  Relayed r = Relay(upstream, Hello(kSni));
  ForEachLive([&](Session& s) { s.CheckIdle(before + 9min); });
  RunReady(reactor_);
  EXPECT_EQ(Ended(), 0u) << "closed before maxConnectionDuration";
  ForEachLive([&](Session& s) { s.CheckIdle(before + 2h); });
  ASSERT_TRUE(WaitClosed(reactor_, r.client));
  EXPECT_EQ(Ended(Termination::kMaxDuration), 1u);
  EXPECT_EQ(Ended(), 1u);
  ExpectAllUndone();
}

// The sweep's period follows the shortest limit anywhere in the snapshot.
TEST(SweepTickTest, FollowsTheShortestIdleTimeoutOrDuration) {
  DataPathSettings settings;
  settings.idle_timeout = 1h;
  auto table = [](std::optional<config::TcpConnectionPool> pool) {
    config::Cluster cluster;
    cluster.host = "a.b.svc.cluster.local";
    cluster.port = 80;
    cluster.policy.connection_pool = pool;
    return config::RouteTable(std::vector<config::Cluster>{cluster}, {});
  };
  EXPECT_EQ(SweepTick(table(std::nullopt), settings), 1s);
  EXPECT_EQ(SweepTick(table(config::TcpConnectionPool{.idle_timeout = 800ms}), settings), 100ms);
  EXPECT_EQ(SweepTick(table(config::TcpConnectionPool{.max_connection_duration = 400ms}), settings), 50ms);
  EXPECT_EQ(SweepTick(table(config::TcpConnectionPool{.idle_timeout = 0ms}), settings), 1s) << "0s is off";
  EXPECT_EQ(SweepTick(table(config::TcpConnectionPool{.idle_timeout = 1ms}), settings), 10ms);
}

// connectionPool.tcp.tcpKeepalive reaches meshgate's upstream socket: found
// among this process's descriptors as the one connected to the upstream's
// port from the port the upstream's accepted connection sees as its peer.
uint16_t Port(const sockaddr_storage& a) {
  return a.ss_family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in*>(&a)->sin_port) : 0;
}
int SessionsUpstreamFd(const Peer& server) {
  sockaddr_storage want_local{}, want_peer{};
  socklen_t len = sizeof(sockaddr_storage);
  if (::getpeername(server.fd(), reinterpret_cast<sockaddr*>(&want_local), &len) != 0) return -1;
  len = sizeof(sockaddr_storage);
  if (::getsockname(server.fd(), reinterpret_cast<sockaddr*>(&want_peer), &len) != 0) return -1;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::atoi(entry.path().filename().c_str());
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
    if (fd == server.fd() || ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
      continue;
    }
    if (Port(local) == Port(want_local) && Port(peer) == Port(want_peer)) return fd;
  }
  return -1;
}

int IntOption(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof(value);
  return ::getsockopt(fd, level, name, &value, &len) == 0 ? value : -1;
}

TEST_F(SessionTest, TcpKeepaliveIsSetOnTheUpstreamSocket) {
  Listener upstream;
  PublishWithPool({upstream.port()},
                  config::TcpConnectionPool{.keepalive = config::TcpKeepalive{
                                                .probes = 4, .time = 30s, .interval = 7s}});
  Relayed r = Relay(upstream, Hello(kSni));
  const int fd = SessionsUpstreamFd(r.server);
  ASSERT_GE(fd, 0) << "the session's upstream socket was not found";
  EXPECT_EQ(IntOption(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
  EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE), 30);
  EXPECT_EQ(IntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL), 7);
  ForEachLive([](Session& s) { s.Drain(); });
  ASSERT_TRUE(WaitClosed(reactor_, r.client));
  ExpectAllUndone();
}

TEST_F(SessionTest, WithoutTcpKeepaliveTheUpstreamSocketIsLeftToTheOs) {
  Listener upstream;
  Publish({upstream.port()});
  Relayed r = Relay(upstream, Hello(kSni));
  const int fd = SessionsUpstreamFd(r.server);
  ASSERT_GE(fd, 0) << "the session's upstream socket was not found";
  EXPECT_EQ(IntOption(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
  ForEachLive([](Session& s) { s.Drain(); });
  ASSERT_TRUE(WaitClosed(reactor_, r.client));
  ExpectAllUndone();
}

}  // namespace
}  // namespace meshgate::proxy
