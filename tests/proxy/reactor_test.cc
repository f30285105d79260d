// The data path's reactor (proxy/reactor.h) on its own: edge-triggered
// events reach the registered owner with the tag its descriptor was added
// under, and stop at Unregister(); deadlines fire in order, once, and not
// after Cancel(); work posted from another thread runs on the loop's; work
// deferred in a turn runs after that turn's events, and what it defers waits
// for the next turn.
#include "proxy/reactor.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/proxy/loopback.h"

namespace meshgate::proxy {
namespace {

using namespace std::chrono_literals;
using testing::RunReady;
using testing::RunUntil;

struct Recorder : Pollable {
  void OnEvents(unsigned tag, uint32_t events) override { seen.push_back({tag, events}); }
  struct Seen {
    unsigned tag;
    uint32_t events;
  };
  std::vector<Seen> seen;
};

struct Marker final : Reactor::Timer {
  explicit Marker(std::vector<int>& log, int id) : log(log), id(id) {}
  void OnTimer() override { log.push_back(id); }
  std::vector<int>& log;
  int id;
};

TEST(ReactorTest, AnEdgeReachesTheOwnerWithItsTagAndIsNotRepeated) {
  Reactor reactor;
  Recorder owner;
  testing::Connection a = testing::Connect();
  testing::Connection b = testing::Connect();
  Reactor::Handle h = reactor.Register(&owner);
  ASSERT_EQ(reactor.Add(a.end.fd(), h, 0), 0);
  ASSERT_EQ(reactor.Add(b.end.fd(), h, 3), 0);
  RunReady(reactor);  // the registrations report writable once
  owner.seen.clear();
  ASSERT_EQ(b.peer.SendSome("x"), 1u);
  ASSERT_TRUE(RunUntil(reactor, [&] { return !owner.seen.empty(); }));
  ASSERT_EQ(owner.seen.size(), 1u);
  EXPECT_EQ(owner.seen[0].tag, 3u);
  EXPECT_TRUE(owner.seen[0].events & EPOLLIN);
  // Unread, but edge-triggered: no second report until something new arrives.
  RunReady(reactor);
  EXPECT_EQ(owner.seen.size(), 1u);
  ASSERT_EQ(b.peer.SendSome("y"), 1u);
  ASSERT_TRUE(RunUntil(reactor, [&] { return owner.seen.size() == 2; }));
  b.peer.ShutdownWrite();
  ASSERT_TRUE(RunUntil(reactor, [&] { return owner.seen.size() == 3; }));
  EXPECT_TRUE(owner.seen[2].events & EPOLLRDHUP) << "a FIN is reported as such";
}

TEST(ReactorTest, NoEventReachesAnOwnerAfterUnregister) {
  Reactor reactor;
  Recorder first;
  Recorder second;
  testing::Connection a = testing::Connect();
  Reactor::Handle h = reactor.Register(&first);
  ASSERT_EQ(reactor.Add(a.end.fd(), h, 1), 0);
  RunReady(reactor);
  const size_t before = first.seen.size();
  reactor.Unregister(h);
  EXPECT_FALSE(h.valid());
  // The slot goes to a new owner; the old descriptor is still in epoll (not
  // closed), and its events must not reach the new owner.
  Reactor::Handle h2 = reactor.Register(&second);
  ASSERT_EQ(a.peer.SendSome("x"), 1u);
  for (int i = 0; i < 20; ++i) reactor.RunOnce(1ms);
  EXPECT_EQ(first.seen.size(), before) << "an event reached an unregistered owner";
  EXPECT_TRUE(second.seen.empty()) << "a stale registration reached the slot's next owner";
  reactor.Unregister(h2);
}

TEST(ReactorTest, DeadlinesFireInOrderOnceAndNotAfterCancel) {
  Reactor reactor;
  std::vector<int> log;
  Marker late(log, 3), early(log, 1), middle(log, 2), cancelled(log, 9);
  const auto now = Reactor::Clock::now();
  reactor.Arm(late, now + 30ms);
  reactor.Arm(early, now + 10ms);
  reactor.Arm(cancelled, now + 15ms);
  reactor.Arm(middle, now + 20ms);
  reactor.Cancel(cancelled);
  EXPECT_FALSE(cancelled.armed());
  ASSERT_TRUE(RunUntil(reactor, [&] { return log.size() == 3; }));
  EXPECT_EQ(log, (std::vector<int>{1, 2, 3}));
  EXPECT_GE(Reactor::Clock::now(), now + 30ms);
  EXPECT_FALSE(late.armed());
  RunReady(reactor);
  EXPECT_EQ(log.size(), 3u) << "a timer fired twice";
  // Re-arming moves it: only the later deadline fires.
  reactor.Arm(early, Reactor::Clock::now() + 1h);
  reactor.Arm(early, Reactor::Clock::now());
  ASSERT_TRUE(RunUntil(reactor, [&] { return log.size() == 4; }));
  EXPECT_EQ(log.back(), 1);
}

TEST(ReactorTest, ManyDeadlinesKeepTheHeapOrdered) {
  Reactor reactor;
  std::vector<int> log;
  std::vector<std::unique_ptr<Marker>> timers;
  const auto base = Reactor::Clock::now() + 5ms;
  for (int i = 0; i < 200; ++i) {
    timers.push_back(std::make_unique<Marker>(log, (i * 37) % 200));
    reactor.Arm(*timers.back(), base + std::chrono::microseconds(10 * ((i * 37) % 200)));
  }
  for (int i = 0; i < 200; i += 3) reactor.Cancel(*timers[i]);
  ASSERT_TRUE(RunUntil(reactor, [&] { return log.size() == 200 - 67; }));
  for (size_t i = 1; i < log.size(); ++i) EXPECT_LT(log[i - 1], log[i]) << "out of order at " << i;
}

TEST(ReactorTest, PostedWorkRunsOnTheLoopsThread) {
  Reactor reactor;
  std::atomic<int> ran{0};
  std::thread::id where;
  std::thread poster([&] {
    for (int i = 0; i < 100; ++i) reactor.Post([&] {
      where = std::this_thread::get_id();
      ++ran;
    });
  });
  poster.join();
  ASSERT_TRUE(RunUntil(reactor, [&] { return ran.load() == 100; }));
  EXPECT_EQ(where, std::this_thread::get_id());
}

TEST(ReactorTest, StopEndsRunFromAnotherThread) {
  Reactor reactor;
  std::thread loop([&] { reactor.Run(); });
  reactor.Stop();
  loop.join();
  EXPECT_TRUE(reactor.stopped());
}

TEST(ReactorTest, DeferredWorkRunsAfterTheTurnAndWhatItDefersWaitsForTheNext) {
  Reactor reactor;
  std::vector<std::string> log;
  reactor.Defer([&] {
    log.push_back("first");
    reactor.Defer([&] { log.push_back("next turn"); });
  });
  reactor.Defer([&] { log.push_back("second"); });
  EXPECT_TRUE(reactor.RunOnce(0ms));
  EXPECT_EQ(log, (std::vector<std::string>{"first", "second"}));
  EXPECT_TRUE(reactor.RunOnce(1h)) << "deferred work must not wait for an event";
  EXPECT_EQ(log.back(), "next turn");
  EXPECT_FALSE(reactor.RunOnce(0ms));
}

}  // namespace
}  // namespace meshgate::proxy
