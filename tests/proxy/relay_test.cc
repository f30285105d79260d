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

// What a session would hear from its flows.
class Recorder : public FlowOwner {
 public:
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
  RelayTest() : down_(Connect(io_)), up_(Connect(io_)) {}

  Flow& StartForward(PipePool& pipes) {
    forward_.emplace(down_.end, up_.end, GetParam().splice, pipes, forward_bytes_, fallbacks_);
    forward_->Start(keepalive_, owner_);
    return *forward_;
  }
  Flow& StartBackward(PipePool& pipes) {
    backward_.emplace(up_.end, down_.end, GetParam().splice, pipes, backward_bytes_, fallbacks_);
    backward_->Start(keepalive_, owner_);
    return *backward_;
  }

  testing::Peer& client() { return down_.peer; }
  testing::Peer& server() { return up_.peer; }

  bool Transfer(testing::Peer& from, testing::Peer& to, std::string_view payload, size_t sent = 0) {
    return testing::Transfer(io_, from, to, payload, sent);
  }

  // io_context first: destroyed last, after every socket and flow.
  boost::asio::io_context io_{1};
  PipePool pipes_;
  Counter forward_bytes_, backward_bytes_, fallbacks_;
  Recorder owner_;
  std::shared_ptr<int> keepalive_ = std::make_shared<int>(0);
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
  const size_t sent = Preload(client(), down_.end.native_handle(), payload);
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
  RunReady(io_);
  EXPECT_EQ(testing::OpenDescriptors(), descriptors + (GetParam().splice ? 2 : 0));
}

TEST_P(RelayTest, BulkWithNoPipeToBeHadIsCopiedAndTheFallbackCounted) {
  const std::string payload = Pattern(2 << 20, 7);
  const size_t sent = Preload(client(), down_.end.native_handle(), payload);
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
  ASSERT_TRUE(RunUntil(io_, [&] {
    server().ReadAvailable();
    return server().eof();
  }));
  EXPECT_TRUE(server().received() == payload);
  EXPECT_TRUE(flow.finished());
  EXPECT_EQ(owner_.end(flow), Flow::End::kEof);
  RunReady(io_);
  EXPECT_EQ(owner_.end(flow), Flow::End::kEof);  // still one end
}

TEST_P(RelayTest, AHalfCloseKeepsTheOtherDirectionFlowing) {
  Flow& forward = StartForward(pipes_);
  Flow& backward = StartBackward(pipes_);
  ASSERT_TRUE(Transfer(client(), server(), "request"));
  client().ShutdownWrite();
  ASSERT_TRUE(RunUntil(io_, [&] { return forward.finished(); }));
  EXPECT_EQ(owner_.end(forward), Flow::End::kEof);
  EXPECT_FALSE(backward.finished());

  const std::string reply = Pattern(5 * kChunk + 3, 9);  // bulk, after the other side's EOF
  ASSERT_TRUE(Transfer(server(), client(), reply));
  EXPECT_TRUE(client().received() == reply);
  server().ShutdownWrite();
  ASSERT_TRUE(RunUntil(io_, [&] {
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
  ASSERT_TRUE(RunUntil(io_, [&] { return flow.finished(); }));
  EXPECT_EQ(owner_.end(flow), Flow::End::kSrcError);
  server().ReadAvailable();
  EXPECT_FALSE(server().eof()) << "a reset is not forwarded as a clean EOF";
}

TEST_P(RelayTest, AResetDestinationEndsTheFlowWithADestinationError) {
  Flow& flow = StartForward(pipes_);
  ASSERT_TRUE(Transfer(client(), server(), "before"));
  server().Reset();
  // Wait until the relay's end has the RST, so the next send must fail.
  pollfd p{up_.end.native_handle(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  ASSERT_TRUE(p.revents & (POLLERR | POLLHUP));
  ASSERT_GT(client().SendSome("after"), 0u);
  ASSERT_TRUE(RunUntil(io_, [&] { return flow.finished(); }));
  EXPECT_EQ(owner_.end(flow), Flow::End::kDstError);
}

// A server that does not read: once the kernel's buffers are full the flow
// stops reading from the client, holding at most one chunk of its own.
TEST_P(RelayTest, ASlowReaderStallsTheWriterInsteadOfGrowingMemory) {
  // Fixed, small kernel buffers (no autotuning), so they fill quickly and
  // the payload is surely larger than all of them together.
  const int size = 128 * 1024;
  for (const auto& [fd, option] : {std::pair{client().fd(), SO_SNDBUF}, {down_.end.native_handle(), SO_RCVBUF},
                                   {up_.end.native_handle(), SO_SNDBUF}, {server().fd(), SO_RCVBUF}}) {
    ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, option, &size, sizeof size), 0);
  }
  Flow& flow = StartForward(pipes_);
  const std::string payload = Pattern(4 << 20, 11);
  size_t sent = 0;
  // Until nothing moves: the client cannot send, and the relay has nothing to do.
  for (int quiet = 0; quiet < 3;) {
    const size_t n = client().SendSome(std::string_view(payload).substr(sent));
    sent += n;
    quiet = n == 0 && RunReady(io_) == 0 ? quiet + 1 : 0;
    ASSERT_LT(sent, payload.size()) << "the relay kept reading from a client whose server never reads";
  }
  // Every byte sent is in a kernel buffer, relayed, or held by the flow.
  const size_t in_kernel = testing::Unsent(client().fd()) + testing::Unread(down_.end.native_handle());
  ASSERT_GE(sent, in_kernel + flow.bytes());
  EXPECT_LE(sent - in_kernel - flow.bytes(), kChunk) << "sent " << sent << ", relayed " << flow.bytes();
  // The server reads at last: everything arrives, in order.
  ASSERT_TRUE(Transfer(client(), server(), payload, sent));
  EXPECT_EQ(flow.bytes(), payload.size());
  EXPECT_TRUE(server().received() == payload) << "bytes differ after the stall";
}

// TCP urgent data is part of the stream (the session sets SO_OOBINLINE): a
// splice stops at the urgent mark, the flow must still forward it in place.
TEST_P(RelayTest, UrgentDataIsForwardedInPlace) {
  down_.end.set_option(boost::asio::socket_base::out_of_band_inline(true));
  Flow& flow = StartForward(pipes_);
  ASSERT_TRUE(Transfer(client(), server(), "A"));
  ASSERT_EQ(::send(client().fd(), "U", 1, MSG_OOB | MSG_NOSIGNAL), 1);
  ASSERT_TRUE(RunUntil(io_, [&] {
    server().ReadAvailable();
    return server().received().size() == 2;
  }));
  ASSERT_TRUE(Transfer(client(), server(), "after"));
  EXPECT_EQ(server().received(), "AUafter");
  EXPECT_EQ(flow.bytes(), 7u);
}

// Only pending handlers keep the owner alive (the session is owned by its
// handlers in flight): one while the flow waits, none once it has ended.
TEST_P(RelayTest, PendingHandlersHoldTheKeepaliveUntilTheFlowEnds) {
  Flow& flow = StartForward(pipes_);
  ASSERT_TRUE(Transfer(client(), server(), "x"));
  RunReady(io_);
  EXPECT_EQ(keepalive_.use_count(), 2) << "the fixture's and the pending wait's";
  client().ShutdownWrite();
  ASSERT_TRUE(RunUntil(io_, [&] { return flow.finished(); }));
  RunReady(io_);
  EXPECT_EQ(keepalive_.use_count(), 1) << "a handler still holds the owner after the flow ended";
}

INSTANTIATE_TEST_SUITE_P(Modes, RelayTest, ::testing::Values(RelayMode{"splice", true}, RelayMode{"copy", false}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace meshgate::proxy
