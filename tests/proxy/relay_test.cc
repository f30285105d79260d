// Flow over real loopback TCP: bytes arrive exactly and are counted, small
// reads go through the scratch buffer, bulk through a pooled pipe (or, with no
// pipe to be had, a counted fallback to copying), EOF is forwarded as a
// half-close, errors are told apart by side, and a slow reader stalls the
// writer instead of growing memory. Each test runs in both relay modes where
// the behaviour is the same.
#include <sys/socket.h>
#include <poll.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "proxy/reactor.h"
#include "proxy/relay.h"
#include "proxy/stats.h"
#include "tests/proxy/loopback.h"

namespace meshgate::proxy {

void PrintTo(Flow::End end, std::ostream* os) {
  switch (end) {
    case Flow::End::kEof:
      *os << "kEof";
      return;
    case Flow::End::kSrcError:
      *os << "kSrcError";
      return;
    case Flow::End::kDstError:
      *os << "kDstError";
      return;
  }
}

namespace {

using testing::Connect;
using testing::Connection;
using testing::Pattern;
using testing::RunReady;
using testing::RunUntil;

constexpr size_t kChunk = 64 * 1024;  // the relay's scratch buffer and splice chunk

// What a session does for its flows: dispatches each socket's events (tag 0:
// down, 1: up) and resumes a flow that yielded; and what it hears from them.
class Recorder : public FlowOwner, public Pollable {
 public:
  Flow* forward = nullptr;   // down -> up
  Flow* backward = nullptr;  // up -> down
  Reactor* reactor = nullptr;

  void OnEvents(unsigned tag, uint32_t events) override {
    Flow* reads_here = tag == 0 ? forward : backward;
    Flow* writes_here = tag == 0 ? backward : forward;
    if (reads_here != nullptr) reads_here->OnSrcEvents(events);
    if (writes_here != nullptr) writes_here->OnDstEvents(events);
  }
  void ResumeLater(Flow& flow) override {
    ++resumes_;
    reactor->Defer([&flow] {
      if (!flow.finished()) flow.Pump();
    });
  }
  size_t resumes() const { return resumes_; }
  void OnFlowProgress(const Flow& flow, size_t n) override { progress_[&flow] += n; }
  void OnFlowEnd(const Flow& flow, Flow::End end) override { ends_.emplace_back(&flow, end); }

  uint64_t progress(const Flow& flow) const {
    const auto it = progress_.find(&flow);
    return it == progress_.end() ? 0 : it->second;
  }
  // How `flow` ended; nullopt while it runs. Fails the test if it ended twice.
  std::optional<Flow::End> end(const Flow& flow) const {
    std::optional<Flow::End> out;
    for (const auto& [f, e] : ends_) {
      if (f != &flow) continue;
      EXPECT_FALSE(out.has_value()) << "a flow ended twice";
      out = e;
    }
    return out;
  }

 private:
  std::map<const Flow*, uint64_t> progress_;
  std::vector<std::pair<const Flow*, Flow::End>> ends_;
  size_t resumes_ = 0;
};

struct RelayMode {
  const char* name;
  bool splice;
};
void PrintTo(const RelayMode& mode, std::ostream* os) { *os << mode.name; }

// client -> down ... up -> server: `forward` relays down to up, `backward`
// (when started) up to down, as a session's two flows do.
class RelayTest : public ::testing::TestWithParam<RelayMode> {
 protected:
  // Both relay-side sockets registered once, as a session registers its two.
  RelayTest() : down_(Connect()), up_(Connect()) {
    owner_.reactor = &reactor_;
    handle_ = reactor_.Register(&owner_);
    EXPECT_EQ(reactor_.Add(down_.end.fd(), handle_, 0), 0);
    EXPECT_EQ(reactor_.Add(up_.end.fd(), handle_, 1), 0);
  }

  Flow& StartForward(PipePool& pipes) {
    forward_.emplace(down_.end.fd(), up_.end.fd(), GetParam().splice, pipes, forward_bytes_, fallbacks_, owner_);
    owner_.forward = &*forward_;
    forward_->Pump();
    return *forward_;
  }
  Flow& StartBackward(PipePool& pipes) {
    backward_.emplace(up_.end.fd(), down_.end.fd(), GetParam().splice, pipes, backward_bytes_, fallbacks_, owner_);
    owner_.backward = &*backward_;
    backward_->Pump();
    return *backward_;
  }

  testing::Peer& client() { return down_.peer; }
  testing::Peer& server() { return up_.peer; }

  bool Transfer(testing::Peer& from, testing::Peer& to, std::string_view payload, size_t sent = 0) {
    return testing::Transfer(reactor_, from, to, payload, sent);
  }

  // The reactor first: destroyed last, after every socket and flow.
  Reactor reactor_;
  Reactor::Handle handle_;
  PipePool pipes_;
  Counter forward_bytes_, backward_bytes_, fallbacks_;
  Recorder owner_;
  Connection down_;
  Connection up_;
  std::optional<Flow> forward_;
  std::optional<Flow> backward_;
};

TEST_P(RelayTest, SmallMessagesArriveExactlyAndAreCounted) {
  Flow& flow = StartForward(pipes_);
  std::string all;
  for (const std::string& message :
       {std::string("hello"), Pattern(1000, 3), std::string(1, '\0'), Pattern(kChunk - 1, 4)}) {
    ASSERT_TRUE(Transfer(client(), server(), message)) << message.size();
    all += message;
    EXPECT_TRUE(server().received() == all) << "after " << all.size() << " bytes";
  }
  EXPECT_EQ(flow.bytes(), all.size());
  EXPECT_EQ(forward_bytes_.value(), all.size());
  EXPECT_EQ(owner_.progress(flow), all.size());
  EXPECT_EQ(fallbacks_.value(), 0u);
  EXPECT_FALSE(flow.finished());
  EXPECT_FALSE(owner_.end(flow).has_value());
}

// Reads that do not fill the 64 KiB scratch buffer are copied through it
// (recv, send): no pipe is asked for, so a pool with none causes no fallback.
TEST_P(RelayTest, SmallReadsNeedNoPipe) {
  PipePool none(64, 0);
  Flow& flow = StartForward(none);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Transfer(client(), server(), Pattern(kChunk / 2, i)));
  EXPECT_EQ(flow.bytes(), 20 * kChunk / 2);
  EXPECT_EQ(fallbacks_.value(), 0u);
}

// Fills the connection's receive queue before the flow starts, so that its
// first read fills the scratch buffer and the flow goes bulk at once.
// Returns how much of `payload` was sent.
size_t Preload(testing::Peer& client, int end_fd, const std::string& payload) {
  size_t sent = 0;
  while (size_t n = client.SendSome(std::string_view(payload).substr(sent))) sent += n;
  EXPECT_GE(testing::Unread(end_fd), kChunk) << "the first read would not fill the scratch buffer";
  return sent;
}

TEST_P(RelayTest, BulkArrivesIntactThroughAPooledPipeOrACopy) {
  const std::string payload = Pattern(2 << 20, 7);
  const size_t sent = Preload(client(), down_.end.fd(), payload);
  const size_t descriptors = testing::OpenDescriptors();
  Flow& flow = StartForward(pipes_);
  ASSERT_TRUE(Transfer(client(), server(), payload, sent));
  EXPECT_TRUE(server().received() == payload) << "bulk bytes differ";
  EXPECT_EQ(flow.bytes(), payload.size());
  EXPECT_EQ(forward_bytes_.value(), payload.size());
  EXPECT_EQ(fallbacks_.value(), 0u);
  // Drained, the flow waits for more and holds no pipe: in splice mode the
  // one it used is back in the pool, idle (two descriptors); copy mode never
  // opened one.
  RunReady(reactor_);
  EXPECT_EQ(testing::OpenDescriptors(), descriptors + (GetParam().splice ? 2 : 0));
}

TEST_P(RelayTest, BulkWithNoPipeToBeHadIsCopiedAndTheFallbackCounted) {
  const std::string payload = Pattern(2 << 20, 7);
  const size_t sent = Preload(client(), down_.end.fd(), payload);
  PipePool none(64, 0);
  Flow& flow = StartForward(none);
  ASSERT_TRUE(Transfer(client(), server(), payload, sent));
  EXPECT_TRUE(server().received() == payload) << "bulk bytes differ";
  EXPECT_EQ(flow.bytes(), payload.size());
  // Splice mode went bulk on its first read, found no pipe and copied from
  // then on: once. Copy mode never asks for a pipe.
  EXPECT_EQ(fallbacks_.value(), GetParam().splice ? 1u : 0u);
}

TEST_P(RelayTest, EofIsForwardedAfterTheLastByteAndEndsTheFlowOnce) {
  Flow& flow = StartForward(pipes_);
  const std::string payload = Pattern(3 * kChunk + 17, 5);
  ASSERT_TRUE(Transfer(client(), server(), payload));
  client().ShutdownWrite();
  ASSERT_TRUE(RunUntil(reactor_, [&] {
    server().ReadAvailable();
    return server().eof();
  }));
  EXPECT_TRUE(server().received() == payload);
  EXPECT_TRUE(flow.finished());
  EXPECT_EQ(owner_.end(flow), Flow::End::kEof);
  RunReady(reactor_);
  EXPECT_EQ(owner_.end(flow), Flow::End::kEof);  // still one end
}

TEST_P(RelayTest, AHalfCloseKeepsTheOtherDirectionFlowing) {
  Flow& forward = StartForward(pipes_);
  Flow& backward = StartBackward(pipes_);
  ASSERT_TRUE(Transfer(client(), server(), "request"));
  client().ShutdownWrite();
  ASSERT_TRUE(RunUntil(reactor_, [&] { return forward.finished(); }));
  EXPECT_EQ(owner_.end(forward), Flow::End::kEof);
  EXPECT_FALSE(backward.finished());

  const std::string reply = Pattern(5 * kChunk + 3, 9);  // bulk, after the other side's EOF
  ASSERT_TRUE(Transfer(server(), client(), reply));
  EXPECT_TRUE(client().received() == reply);
  server().ShutdownWrite();
  ASSERT_TRUE(RunUntil(reactor_, [&] {
    client().ReadAvailable();
    return client().eof();
  }));
  EXPECT_EQ(owner_.end(backward), Flow::End::kEof);
  EXPECT_EQ(backward.bytes(), reply.size());
  EXPECT_EQ(backward_bytes_.value(), reply.size());
  EXPECT_EQ(forward_bytes_.value(), 7u);
}

TEST_P(RelayTest, AResetSourceEndsTheFlowWithASourceError) {
  Flow& flow = StartForward(pipes_);
  ASSERT_TRUE(Transfer(client(), server(), "before"));
  client().Reset();
  ASSERT_TRUE(RunUntil(reactor_, [&] { return flow.finished(); }));
  EXPECT_EQ(owner_.end(flow), Flow::End::kSrcError);
  server().ReadAvailable();
  EXPECT_FALSE(server().eof()) << "a reset is not forwarded as a clean EOF";
}

TEST_P(RelayTest, AResetDestinationEndsTheFlowWithADestinationError) {
  Flow& flow = StartForward(pipes_);
  ASSERT_TRUE(Transfer(client(), server(), "before"));
  server().Reset();
  // Wait until the relay's end has the RST, so the next send must fail.
  pollfd p{up_.end.fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  ASSERT_TRUE(p.revents & (POLLERR | POLLHUP));
  ASSERT_GT(client().SendSome("after"), 0u);
  ASSERT_TRUE(RunUntil(reactor_, [&] { return flow.finished(); }));
  EXPECT_EQ(owner_.end(flow), Flow::End::kDstError);
}

// A server that does not read: once the kernel's buffers are full the flow
// stops reading from the client, holding at most one chunk of its own.
TEST_P(RelayTest, ASlowReaderStallsTheWriterInsteadOfGrowingMemory) {
  // Fixed, small kernel buffers (no autotuning), so they fill quickly and
  // the payload is surely larger than all of them together.
  const int size = 128 * 1024;
  for (const auto& [fd, option] : {std::pair{client().fd(), SO_SNDBUF}, {down_.end.fd(), SO_RCVBUF},
                                   {up_.end.fd(), SO_SNDBUF}, {server().fd(), SO_RCVBUF}}) {
    ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, option, &size, sizeof size), 0);
  }
  Flow& flow = StartForward(pipes_);
  const std::string payload = Pattern(4 << 20, 11);
  size_t sent = 0;
  // Until nothing moves: the client cannot send, and the relay has nothing to do.
  for (int quiet = 0; quiet < 3;) {
    const size_t n = client().SendSome(std::string_view(payload).substr(sent));
    sent += n;
    quiet = n == 0 && RunReady(reactor_) == 0 ? quiet + 1 : 0;
    ASSERT_LT(sent, payload.size()) << "the relay kept reading from a client whose server never reads";
  }
  // Every byte sent is in a kernel buffer, relayed, or held by the flow.
  const size_t in_kernel = testing::Unsent(client().fd()) + testing::Unread(down_.end.fd());
  ASSERT_GE(sent, in_kernel + flow.bytes());
  EXPECT_LE(sent - in_kernel - flow.bytes(), kChunk) << "sent " << sent << ", relayed " << flow.bytes();
  // The server reads at last: everything arrives, in order.
  ASSERT_TRUE(Transfer(client(), server(), payload, sent));
  EXPECT_EQ(flow.bytes(), payload.size());
  EXPECT_TRUE(server().received() == payload) << "bytes differ after the stall";
}

// TCP urgent data is part of the stream (the listener's SO_OOBINLINE, which
// the accepted socket inherits): a splice or a recv stops at the urgent
// mark, and the flow must still forward it in place, without a new edge.
TEST_P(RelayTest, UrgentDataIsForwardedInPlace) {
  Flow& flow = StartForward(pipes_);
  ASSERT_TRUE(Transfer(client(), server(), "A"));
  ASSERT_EQ(::send(client().fd(), "U", 1, MSG_OOB | MSG_NOSIGNAL), 1);
  ASSERT_TRUE(RunUntil(reactor_, [&] {
    server().ReadAvailable();
    return server().received().size() == 2;
  }));
  ASSERT_TRUE(Transfer(client(), server(), "after"));
  EXPECT_EQ(server().received(), "AUafter");
  EXPECT_EQ(flow.bytes(), 7u);
}

// Edge-triggered: the client's last bytes and its FIN arrive while the flow
// waits for the server to take what it holds, so that edge is not the one
// the flow waits for. Once the server reads, one short read returns the last
// bytes; the EOF queued behind them must still be seen and forwarded.
TEST_P(RelayTest, AFinQueuedWhileTheFlowWaitsToWriteIsForwarded) {
  const int size = 128 * 1024;
  for (const auto& [fd, option] : {std::pair{down_.end.fd(), SO_RCVBUF}, {up_.end.fd(), SO_SNDBUF},
                                   {server().fd(), SO_RCVBUF}}) {
    ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, option, &size, sizeof size), 0);
  }
  Flow& flow = StartForward(pipes_);
  const std::string payload = Pattern(1 << 20, 13);
  size_t sent = 0;
  ASSERT_TRUE(RunUntil(reactor_, [&] {
    sent += client().SendSome(std::string_view(payload).substr(sent));
    return flow.waiting() == Flow::Wait::kWrite;
  }));
  // The rest of the payload and the FIN, while the flow waits to write.
  while (sent < payload.size()) {
    const size_t n = client().SendSome(std::string_view(payload).substr(sent));
    sent += n;
    if (n == 0) RunReady(reactor_), server().ReadAvailable();
  }
  client().ShutdownWrite();
  ASSERT_TRUE(RunUntil(reactor_, [&] {
    server().ReadAvailable();
    return server().eof();
  })) << "received " << server().received().size() << " of " << payload.size();
  EXPECT_TRUE(server().received() == payload);
  EXPECT_EQ(owner_.end(flow), Flow::End::kEof);
}

// The flow keeps its own wait state over a registration made once: after a
// message it waits to read; with the server not reading, it waits to write;
// once finished, it waits for nothing and later events do not reach it.
TEST_P(RelayTest, TheFlowWaitsForOneThingAtATime) {
  Flow& flow = StartForward(pipes_);
  ASSERT_TRUE(Transfer(client(), server(), "x"));
  EXPECT_EQ(flow.waiting(), Flow::Wait::kRead);
  client().ShutdownWrite();
  ASSERT_TRUE(RunUntil(reactor_, [&] { return flow.finished(); }));
  EXPECT_EQ(flow.waiting(), Flow::Wait::kNone);
  RunReady(reactor_);
  EXPECT_EQ(owner_.end(flow), Flow::End::kEof);
}

INSTANTIATE_TEST_SUITE_P(Modes, RelayTest, ::testing::Values(RelayMode{"splice", true}, RelayMode{"copy", false}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace meshgate::proxy
