// DnsResolver against a real DNS server on 127.0.0.1 (tests/dns/test_dns_server):
// first answers, changes by TTL, clamping, failures that keep the last good
// answer, timeouts, many hosts, stopping watches and destruction mid-query.
#include "proxy/runtime/dns_resolver.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/dns/test_dns_server.h"

namespace meshgate::proxy {
namespace {

using namespace std::chrono_literals;
using meshgate::testing::TestDnsServer;
using std::chrono::milliseconds;
using Addresses = std::vector<std::string>;
constexpr uint16_t kA = TestDnsServer::kTypeA;
constexpr uint16_t kAaaa = TestDnsServer::kTypeAaaa;

// Every answer a watch was given, in order.
struct Seen {
  std::vector<Addresses> sets;
  DnsResolver::OnChange Callback() {
    return [this](const Addresses& a) { sets.push_back(a); };
  }
};

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
  return n;
}

class DnsResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_logger_ = spdlog::default_logger();
    auto logger = std::make_shared<spdlog::logger>("dns_test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_));
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(logger);
  }
  void TearDown() override { spdlog::set_default_logger(previous_logger_); }

  // Short bounds so that every test finishes in a few seconds.
  DnsOptions Options() const {
    DnsOptions o;
    o.servers = {server_.address()};
    o.min_ttl = 100ms;
    o.max_ttl = 10s;
    o.max_retry_interval = 200ms;
    o.query_timeout = 200ms;
    o.attempts = 1;
    return o;
  }
  std::unique_ptr<DnsResolver> Make(DnsOptions o) {
    auto r = DnsResolver::Create(io_, std::move(o));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::move(*r) : nullptr;
  }
  std::unique_ptr<DnsResolver> Make() { return Make(Options()); }

  template <typename Pred>
  bool RunUntil(Pred done, milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      if (io_.stopped()) io_.restart();
      io_.run_for(5ms);
    }
    return true;
  }
  void RunFor(milliseconds d) {
    RunUntil([] { return false; }, d);
  }

  TestDnsServer server_;
  boost::asio::io_context io_;
  std::ostringstream log_;

 private:
  std::shared_ptr<spdlog::logger> previous_logger_;
};

TEST_F(DnsResolverTest, FirstAnswerIsSortedAndDeduplicated) {
  server_.Set("svc.test", {"192.0.2.2", "2001:db8::1", "192.0.2.10", "192.0.2.2"}, 30);
  auto r = Make();
  Seen seen;
  auto watch = r->Track("SVC.Test.", seen.Callback());
  EXPECT_TRUE(seen.sets.empty()) << "on_change must not run inside Track";
  ASSERT_TRUE(RunUntil([&] { return !seen.sets.empty(); }));
  EXPECT_EQ(seen.sets[0], (Addresses{"192.0.2.2", "192.0.2.10", "2001:db8::1"}));
  EXPECT_EQ(server_.Queries("svc.test", kA), 1u);
  EXPECT_EQ(server_.Queries("svc.test", kAaaa), 1u);
  EXPECT_EQ(r->stats().queries.value(), 2u);
  EXPECT_EQ(r->stats().answers.value(), 1u);
  EXPECT_EQ(r->stats().changes.value(), 1u);
  EXPECT_EQ(r->stats().failures.value(), 0u);
  EXPECT_EQ(FormatStats(r->stats()), "dns_queries=2 dns_answers=1 dns_changes=1");
}

TEST_F(DnsResolverTest, AnswerChangingBetweenQueriesFiresCallback) {
  server_.Set("svc.test", {"192.0.2.1"}, 1);
  auto r = Make();
  Seen seen;
  auto watch = r->Track("svc.test", seen.Callback());
  ASSERT_TRUE(RunUntil([&] { return seen.sets.size() == 1; }));

  // A refresh with the same answer is not a change.
  ASSERT_TRUE(RunUntil([&] { return r->stats().answers.value() >= 2; }, 3s));
  EXPECT_EQ(seen.sets.size(), 1u);

  server_.Set("svc.test", {"192.0.2.3", "192.0.2.2"}, 1);
  ASSERT_TRUE(RunUntil([&] { return seen.sets.size() == 2; }, 3s));
  EXPECT_EQ(seen.sets[1], (Addresses{"192.0.2.2", "192.0.2.3"}));
  EXPECT_EQ(r->stats().changes.value(), 2u);
  EXPECT_EQ(r->stats().failures.value(), 0u);
}

struct ClampCase {
  const char* name;
  uint32_t ttl_seconds;
  milliseconds min_ttl, max_ttl;
  milliseconds expected_refresh;
};

void PrintTo(const ClampCase& c, std::ostream* os) { *os << c.name; }

class DnsTtlTest : public DnsResolverTest, public ::testing::WithParamInterface<ClampCase> {};

TEST_P(DnsTtlTest, RefreshesAfterClampedTtl) {
  const ClampCase& c = GetParam();
  server_.Set("svc.test", {"192.0.2.1"}, c.ttl_seconds);
  DnsOptions o = Options();
  o.min_ttl = c.min_ttl;
  o.max_ttl = c.max_ttl;
  o.max_retry_interval = c.max_ttl;
  auto r = Make(o);
  Seen seen;
  auto watch = r->Track("svc.test", seen.Callback());
  ASSERT_TRUE(RunUntil([&] { return server_.Queries("svc.test", kA) >= 2; }, 5s));
  const auto times = server_.QueryTimes("svc.test", kA);
  const auto interval = std::chrono::duration_cast<milliseconds>(times[1] - times[0]);
  EXPECT_GE(interval, c.expected_refresh - 20ms);
  EXPECT_LT(interval, c.expected_refresh + 700ms);
  EXPECT_EQ(seen.sets.size(), 1u);
  EXPECT_EQ(r->stats().failures.value(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Clamp, DnsTtlTest,
                         ::testing::Values(ClampCase{"ZeroTtlRaisedToMin", 0, 300ms, 5s, 300ms},
                                           ClampCase{"LongTtlCutToMax", 3600, 50ms, 400ms, 400ms},
                                           ClampCase{"TtlInsideBoundsKept", 1, 100ms, 5s, 1000ms}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(DnsResolverTest, ServerFailureKeepsLastGoodAnswerAndLogsOncePerTransition) {
  server_.Set("svc.test", {"192.0.2.1"}, 0);
  auto r = Make();
  Seen seen;
  auto watch = r->Track("svc.test", seen.Callback());
  ASSERT_TRUE(RunUntil([&] { return seen.sets.size() == 1; }));

  server_.SetMode(TestDnsServer::Mode::kServfail);
  ASSERT_TRUE(RunUntil([&] { return r->stats().failure_server.value() >= 2; })) << FormatStats(r->stats());
  server_.SetMode(TestDnsServer::Mode::kNxdomain);
  ASSERT_TRUE(RunUntil([&] { return r->stats().failure_nxdomain.value() >= 2; }));
  server_.SetMode(TestDnsServer::Mode::kRefused);
  const uint64_t server_failures = r->stats().failure_server.value();
  ASSERT_TRUE(RunUntil([&] { return r->stats().failure_server.value() > server_failures; }));
  EXPECT_EQ(seen.sets.size(), 1u) << "a failure must not change the answer";

  server_.Set("svc.test", {"192.0.2.2"}, 0);
  server_.SetMode(TestDnsServer::Mode::kAnswer);
  ASSERT_TRUE(RunUntil([&] { return seen.sets.size() == 2; }));
  EXPECT_EQ(seen.sets[1], (Addresses{"192.0.2.2"}));

  const DnsStats& s = r->stats();
  EXPECT_EQ(s.failures.value(), s.failure_server.value() + s.failure_nxdomain.value());
  EXPECT_EQ(s.failure_timeout.value(), 0u);
  const std::string log = log_.str();
  EXPECT_EQ(Count(log, "resolution failed"), 1u) << log;
  EXPECT_EQ(Count(log, "serving [192.0.2.1]"), 1u) << log;
  EXPECT_EQ(Count(log, "resolving again"), 1u) << log;
}

TEST_F(DnsResolverTest, ServerFailureFallsOverToTheNextServer) {
  TestDnsServer backup;
  server_.SetMode(TestDnsServer::Mode::kServfail);
  backup.Set("svc.test", {"192.0.2.4"}, 30);
  DnsOptions o = Options();
  o.servers = {server_.address(), backup.address()};
  auto r = Make(o);
  Seen seen;
  auto watch = r->Track("svc.test", seen.Callback());
  ASSERT_TRUE(RunUntil([&] { return seen.sets.size() == 1; }));
  EXPECT_EQ(seen.sets[0], (Addresses{"192.0.2.4"}));
  EXPECT_GE(server_.Queries("svc.test", kA), 1u);
  EXPECT_EQ(r->stats().failures.value(), 0u);
}

TEST_F(DnsResolverTest, TimeoutIsCountedAndFirstAnswerArrivesWhenServerReturns) {
  server_.Set("svc.test", {"192.0.2.1"}, 30);
  server_.SetMode(TestDnsServer::Mode::kDrop);
  DnsOptions o = Options();
  o.query_timeout = 100ms;
  o.attempts = 2;  // tries after 100 ms, then 200 ms (c-ares doubles per round)
  auto r = Make(o);
  Seen seen;
  auto watch = r->Track("svc.test", seen.Callback());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(RunUntil([&] { return r->stats().failure_timeout.value() >= 1; }, 3s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms - 20ms);
  EXPECT_EQ(server_.QueryTimes("svc.test", kA).size() % 2, 0u) << "each lookup is tried twice";
  EXPECT_TRUE(seen.sets.empty());

  server_.SetMode(TestDnsServer::Mode::kAnswer);
  ASSERT_TRUE(RunUntil([&] { return seen.sets.size() == 1; }, 3s));
  EXPECT_EQ(seen.sets[0], (Addresses{"192.0.2.1"}));
  EXPECT_EQ(Count(log_.str(), "resolution failed (A timeout, AAAA timeout); serving []"), 1u) << log_.str();
}

TEST_F(DnsResolverTest, FamilyThatFailsKeepsItsAddressesWhileTheOtherMoves) {
  server_.Set("svc.test", {"192.0.2.1", "2001:db8::1"}, 0);
  auto r = Make();
  Seen seen;
  auto watch = r->Track("svc.test", seen.Callback());
  ASSERT_TRUE(RunUntil([&] { return seen.sets.size() == 1; }));

  server_.SetMode(TestDnsServer::Mode::kDrop, kAaaa);
  server_.Set("svc.test", {"192.0.2.9", "2001:db8::9"}, 0);
  ASSERT_TRUE(RunUntil([&] { return seen.sets.size() == 2; }));
  EXPECT_EQ(seen.sets[1], (Addresses{"192.0.2.9", "2001:db8::1"}));
  EXPECT_GE(r->stats().failure_timeout.value(), 1u);

  server_.SetMode(TestDnsServer::Mode::kAnswer);
  ASSERT_TRUE(RunUntil([&] { return seen.sets.size() == 3; }));
  EXPECT_EQ(seen.sets[2], (Addresses{"192.0.2.9", "2001:db8::9"}));
}

TEST_F(DnsResolverTest, NoAddressInAnyFamilyIsAFailureButOneFamilyIsEnough) {
  server_.Set("empty.test", {}, 30);
  server_.Set("v6.test", {"2001:db8::5"}, 30);
  auto r = Make();
  Seen empty, v6;
  auto w1 = r->Track("empty.test", empty.Callback());
  auto w2 = r->Track("v6.test", v6.Callback());
  ASSERT_TRUE(RunUntil([&] { return r->stats().failure_nodata.value() >= 1 && !v6.sets.empty(); }));
  EXPECT_TRUE(empty.sets.empty());
  EXPECT_EQ(v6.sets[0], (Addresses{"2001:db8::5"}));
}

TEST_F(DnsResolverTest, FamilyOptionLimitsQueries) {
  server_.Set("svc.test", {"192.0.2.1", "2001:db8::1"}, 30);
  DnsOptions o = Options();
  o.family = DnsFamily::kV4Only;
  auto r = Make(o);
  Seen seen;
  auto watch = r->Track("svc.test", seen.Callback());
  ASSERT_TRUE(RunUntil([&] { return seen.sets.size() == 1; }));
  EXPECT_EQ(seen.sets[0], (Addresses{"192.0.2.1"}));
  EXPECT_EQ(server_.Queries("svc.test", kAaaa), 0u);
}

TEST_F(DnsResolverTest, ManyHostsAtOnce) {
  constexpr int kHosts = 300;
  auto name = [](int i) { return "h" + std::to_string(i) + ".test"; };
  auto ip = [](int i) { return "10." + std::to_string(i >> 8) + "." + std::to_string(i & 255) + ".1"; };
  for (int i = 0; i < kHosts; ++i) server_.Set(name(i), {ip(i)}, 30);
  auto r = Make();
  std::vector<Seen> seen(kHosts);
  std::vector<DnsResolver::Watch> watches;
  for (int i = 0; i < kHosts; ++i) watches.push_back(r->Track(name(i), seen[i].Callback()));
  ASSERT_TRUE(RunUntil([&] { return r->stats().changes.value() == kHosts && r->stats().answers.value() == kHosts; }))
      << FormatStats(r->stats());
  // Deliveries are posted: run until every watch has had its answer.
  ASSERT_TRUE(RunUntil([&] {
    return std::all_of(seen.begin(), seen.end(), [](const Seen& s) { return !s.sets.empty(); });
  }));
  for (int i = 0; i < kHosts; ++i) {
    ASSERT_EQ(seen[i].sets.size(), 1u) << name(i);
    EXPECT_EQ(seen[i].sets[0], (Addresses{ip(i)})) << name(i);
  }
  EXPECT_EQ(r->stats().queries.value(), 2u * kHosts);
  EXPECT_EQ(r->stats().failures.value(), 0u);
}

TEST_F(DnsResolverTest, SameHostTrackedTwiceSharesQueries) {
  server_.Set("svc.test", {"192.0.2.1"}, 30);
  auto r = Make();
  Seen first, second;
  auto w1 = r->Track("svc.test", first.Callback());
  ASSERT_TRUE(RunUntil([&] { return first.sets.size() == 1; }));
  auto w2 = r->Track("SVC.TEST", second.Callback());
  ASSERT_TRUE(RunUntil([&] { return second.sets.size() == 1; }));
  EXPECT_EQ(second.sets[0], first.sets[0]);
  EXPECT_EQ(server_.Queries("svc.test", kA), 1u);
  EXPECT_EQ(first.sets.size(), 1u) << "the first watcher is not told again";
}

TEST_F(DnsResolverTest, StoppedWatchIsNotCalledAndLastStopEndsQueries) {
  server_.Set("svc.test", {"192.0.2.1"}, 0);
  auto r = Make();
  Seen first, second;
  auto w1 = r->Track("svc.test", first.Callback());
  DnsResolver::Watch w2 = r->Track("svc.test", second.Callback());
  ASSERT_TRUE(RunUntil([&] { return first.sets.size() == 1 && second.sets.size() == 1; }));

  w1.Stop();
  w1.Stop();  // idempotent
  server_.Set("svc.test", {"192.0.2.2"}, 0);
  ASSERT_TRUE(RunUntil([&] { return second.sets.size() == 2; }));
  EXPECT_EQ(first.sets.size(), 1u);

  DnsResolver::Watch moved = std::move(w2);  // the moved-from handle stops nothing
  w2.Stop();
  server_.Set("svc.test", {"192.0.2.3"}, 0);
  ASSERT_TRUE(RunUntil([&] { return second.sets.size() == 3; }));

  moved.Stop();
  RunFor(150ms);  // lets a query already in flight land
  const size_t queries = server_.Queries("svc.test", kA);
  RunFor(500ms);
  EXPECT_EQ(server_.Queries("svc.test", kA), queries) << "no re-resolution once nobody watches";
  EXPECT_EQ(second.sets.size(), 3u);
}

TEST_F(DnsResolverTest, StopFromInsideCallback) {
  server_.Set("svc.test", {"192.0.2.1"}, 0);
  auto r = Make();
  int calls = 0;
  DnsResolver::Watch watch;
  watch = r->Track("svc.test", [&](const Addresses&) {
    ++calls;
    watch.Stop();
  });
  ASSERT_TRUE(RunUntil([&] { return calls == 1; }));
  server_.Set("svc.test", {"192.0.2.2"}, 0);
  RunFor(400ms);
  EXPECT_EQ(calls, 1);
}

TEST_F(DnsResolverTest, DestroyedWithQueriesInFlight) {
  server_.SetMode(TestDnsServer::Mode::kDrop);
  std::vector<Seen> seen(50);
  std::vector<DnsResolver::Watch> watches;  // outlive the resolver on purpose
  auto r = Make();
  for (int i = 0; i < 50; ++i) watches.push_back(r->Track("h" + std::to_string(i) + ".test", seen[i].Callback()));
  ASSERT_TRUE(RunUntil([&] { return server_.TotalQueries() >= 100; }));
  server_.SetMode(TestDnsServer::Mode::kAnswer);
  for (int i = 0; i < 50; ++i) server_.Set("h" + std::to_string(i) + ".test", {"192.0.2.1"}, 30);
  r.reset();
  RunFor(300ms);
  for (const Seen& s : seen) EXPECT_TRUE(s.sets.empty());
  watches.clear();
}

TEST_F(DnsResolverTest, DestroyedRightAfterTrackWhileAnswersAreOnTheWay) {
  server_.Set("svc.test", {"192.0.2.1"}, 30);
  Seen seen;
  DnsResolver::Watch watch;
  {
    auto r = Make();
    watch = r->Track("svc.test", seen.Callback());
  }
  RunFor(200ms);
  EXPECT_TRUE(seen.sets.empty());
}

TEST_F(DnsResolverTest, DestroyedFromInsideCallback) {
  server_.Set("a.test", {"192.0.2.1"}, 0);
  server_.Set("b.test", {"192.0.2.2"}, 0);
  auto r = Make();
  int calls = 0;
  auto on_change = [&](const Addresses&) {
    ++calls;
    r.reset();
  };
  auto w1 = r->Track("a.test", on_change);
  auto w2 = r->Track("b.test", on_change);
  ASSERT_TRUE(RunUntil([&] { return r == nullptr; }));
  RunFor(300ms);
  EXPECT_EQ(calls, 1);
}

TEST_F(DnsResolverTest, IpLiteralIsItsOwnAnswer) {
  auto r = Make();
  Seen v4, v6;
  auto w1 = r->Track("192.0.2.7", v4.Callback());
  auto w2 = r->Track("2001:DB8::7", v6.Callback());
  ASSERT_TRUE(RunUntil([&] { return !v4.sets.empty() && !v6.sets.empty(); }));
  EXPECT_EQ(v4.sets[0], (Addresses{"192.0.2.7"}));
  EXPECT_EQ(v6.sets[0], (Addresses{"2001:db8::7"}));
  EXPECT_EQ(r->stats().queries.value(), 0u);
  EXPECT_EQ(server_.TotalQueries(), 0u);
}

TEST_F(DnsResolverTest, BadOptionsAreRejected) {
  struct Case {
    const char* what;
    void (*edit)(DnsOptions&);
    const char* message;
  };
  const Case cases[] = {
      {"not an ip", [](DnsOptions& o) { o.servers = {"dns.example"}; }, "is not an IP address"},
      {"port range", [](DnsOptions& o) { o.servers = {"127.0.0.1:65536"}; }, "port must be 1-65535"},
      {"bad port", [](DnsOptions& o) { o.servers = {"127.0.0.1:5x"}; }, "port must be 1-65535"},
      {"no port", [](DnsOptions& o) { o.servers = {"127.0.0.1:"}; }, "port must be 1-65535"},
      {"bracket", [](DnsOptions& o) { o.servers = {"[::1:53"}; }, "expected [ipv6]:port"},
      {"min ttl", [](DnsOptions& o) { o.min_ttl = 0ms; }, "min_ttl must be positive"},
      {"max below min", [](DnsOptions& o) { o.max_ttl = 10ms; }, "max_ttl must not be below min_ttl"},
      {"retry below min", [](DnsOptions& o) { o.max_retry_interval = 10ms; }, "max_retry_interval"},
      {"attempts", [](DnsOptions& o) { o.attempts = 0; }, "attempts must be at least 1"},
  };
  for (const Case& c : cases) {
    DnsOptions o = Options();
    c.edit(o);
    auto r = DnsResolver::Create(io_, o);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_NE(std::string(r.status().message()).find(c.message), std::string::npos) << c.what << ": " << r.status();
  }
  DnsOptions o = Options();
  o.servers = {"127.0.0.1:5353", "[::1]:5353", "::1", "127.0.0.1"};
  EXPECT_TRUE(DnsResolver::Create(io_, o).ok());
}

}  // namespace
}  // namespace meshgate::proxy
