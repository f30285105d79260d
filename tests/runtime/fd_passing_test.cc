// base/io/fd_passing: the owner-only takeover socket, SCM_RIGHTS messages
// (unix(7), cmsg(3)) and the sd_notify(3) datagram, on real sockets.
#include "base/io/fd_passing.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/support/meshgate_process.h"

namespace meshgate::io {
namespace {

TEST(FdPassingTest, TheListeningSocketIsOwnerOnlyAndReplacesOnlyOurOwnStaleSocket) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/s.sock";
  {
    auto fd = ListenUnixSeqpacket(path);
    ASSERT_TRUE(fd.ok()) << fd.status();
    struct stat st {};
    ASSERT_EQ(lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    // Live (listening): never replaced.
    auto live = ListenUnixSeqpacket(path);
    ASSERT_FALSE(live.ok());
    EXPECT_NE(std::string(live.status().message()).find("in use by a running process"), std::string::npos);
  }
  // The file outlives the socket (stale, ours): replaced.
  EXPECT_TRUE(ListenUnixSeqpacket(path).ok());
  const std::string file = dir.Write("plain", "data");
  auto refused = ListenUnixSeqpacket(file);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(std::string(refused.status().message()).find("exists and is not a socket"), std::string::npos);
  std::ifstream still(file);
  EXPECT_TRUE(still.good());
}

TEST(FdPassingTest, ConnectTellsMissingFromStale) {
  testing::TempDir dir;
  EXPECT_EQ(ConnectUnixSeqpacket(dir.path() + "/none").failure, ConnectFailure::kMissing);
  const std::string path = dir.path() + "/stale";
  { ASSERT_TRUE(ListenUnixSeqpacket(path).ok()); }
  const UnixConnection c = ConnectUnixSeqpacket(path);
  EXPECT_EQ(c.failure, ConnectFailure::kStale) << c.error;
  EXPECT_EQ(ConnectUnixSeqpacket(dir.Write("f", "x")).failure, ConnectFailure::kNotSocket);
}

TEST(FdPassingTest, AListeningTcpSocketCrossesWithItsDescription) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/s.sock";
  auto server = ListenUnixSeqpacket(path);
  ASSERT_TRUE(server.ok());
  UnixConnection c = ConnectUnixSeqpacket(path);
  ASSERT_TRUE(c.fd.valid()) << c.error;
  EXPECT_EQ(c.peer_pid, getpid());
  UniqueFd accepted(::accept(server->get(), nullptr, nullptr));
  ASSERT_TRUE(accepted.valid());
  const auto peer = PeerOf(accepted.get());
  ASSERT_TRUE(peer);
  EXPECT_EQ(peer->uid, geteuid());

  UniqueFd tcp(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(tcp.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_FALSE(ListeningTcpAddress(tcp.get()).ok());  // bound, not listening
  ASSERT_EQ(::listen(tcp.get(), 8), 0);
  auto address = ListeningTcpAddress(tcp.get());
  ASSERT_TRUE(address.ok()) << address.status();

  std::string error;
  ASSERT_TRUE(SendMessage(accepted.get(), "listener data 0 " + *address, tcp.get(), error)) << error;
  ASSERT_TRUE(SendMessage(accepted.get(), "text only", -1, error)) << error;
  auto m = ReceiveMessage(c.fd.get(), 1000);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->text, "listener data 0 " + *address);
  ASSERT_TRUE(m->fd.valid());
  EXPECT_NE(m->fd.get(), tcp.get());
  EXPECT_EQ(*ListeningTcpAddress(m->fd.get()), *address);  // the same socket
  auto text = ReceiveMessage(c.fd.get(), 1000);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->text, "text only");  // message boundaries kept (SOCK_SEQPACKET)
  EXPECT_FALSE(text->fd.valid());
  EXPECT_EQ(ReceiveMessage(c.fd.get(), 50).status().code(), absl::StatusCode::kDeadlineExceeded);
  accepted.Reset();
  EXPECT_NE(std::string(ReceiveMessage(c.fd.get(), 1000).status().message()).find("closed"), std::string::npos);
}

TEST(FdPassingTest, SdNotifySendsOneDatagramToNotifySocket) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/notify";
  UniqueFd sink(::socket(AF_UNIX, SOCK_DGRAM, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(sink.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(SdNotify("READY=1"));
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  EXPECT_TRUE(SdNotify("MAINPID=42\nREADY=1"));
  ::unsetenv("NOTIFY_SOCKET");
  char buf[64] = {};
  EXPECT_EQ(::recv(sink.get(), buf, sizeof buf, MSG_DONTWAIT), 18);
  EXPECT_STREQ(buf, "MAINPID=42\nREADY=1");
}

}  // namespace
}  // namespace meshgate::io
