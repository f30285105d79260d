// ApplyTcpKeepalive on a real TCP socket, read back with getsockopt: what a
// DestinationRule sets is set, what it leaves unset keeps the OS default.
#include "proxy/tcp_keepalive.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include <gtest/gtest.h>

namespace meshgate::proxy {
namespace {

using namespace std::chrono_literals;

class TcpKeepaliveTest : public ::testing::Test {
 protected:
  TcpKeepaliveTest() : fd_(::socket(AF_INET, SOCK_STREAM, 0)), fresh_(::socket(AF_INET, SOCK_STREAM, 0)) {}
  ~TcpKeepaliveTest() override {
    ::close(fd_);
    ::close(fresh_);
  }
  static int Get(int fd, int level, int name) {
    int value = -1;
    socklen_t len = sizeof(value);
    EXPECT_EQ(::getsockopt(fd, level, name, &value, &len), 0);
    return value;
  }
  int fd_;
  int fresh_;  // an untouched socket: the OS defaults
};

TEST_F(TcpKeepaliveTest, EveryFieldSetIsApplied) {
  ASSERT_GE(fd_, 0);
  EXPECT_EQ(ApplyTcpKeepalive(fd_, config::TcpKeepalive{.probes = 3, .time = 45s, .interval = 10s}), 0);
  EXPECT_EQ(Get(fd_, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(Get(fd_, IPPROTO_TCP, TCP_KEEPCNT), 3);
  EXPECT_EQ(Get(fd_, IPPROTO_TCP, TCP_KEEPIDLE), 45);
  EXPECT_EQ(Get(fd_, IPPROTO_TCP, TCP_KEEPINTVL), 10);
}

TEST_F(TcpKeepaliveTest, UnsetFieldsKeepTheOsDefaults) {
  ASSERT_GE(fd_, 0);
  EXPECT_EQ(Get(fd_, SOL_SOCKET, SO_KEEPALIVE), 0) << "keepalive is off until a rule asks";
  EXPECT_EQ(ApplyTcpKeepalive(fd_, config::TcpKeepalive{.time = 20s}), 0);
  EXPECT_EQ(Get(fd_, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(Get(fd_, IPPROTO_TCP, TCP_KEEPIDLE), 20);
  EXPECT_EQ(Get(fd_, IPPROTO_TCP, TCP_KEEPCNT), Get(fresh_, IPPROTO_TCP, TCP_KEEPCNT));
  EXPECT_EQ(Get(fd_, IPPROTO_TCP, TCP_KEEPINTVL), Get(fresh_, IPPROTO_TCP, TCP_KEEPINTVL));
}

TEST_F(TcpKeepaliveTest, AnEmptyKeepaliveOnlyTurnsItOn) {
  EXPECT_EQ(ApplyTcpKeepalive(fd_, config::TcpKeepalive{}), 0);
  EXPECT_EQ(Get(fd_, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(Get(fd_, IPPROTO_TCP, TCP_KEEPIDLE), Get(fresh_, IPPROTO_TCP, TCP_KEEPIDLE));
}

// Whole seconds as Envoy takes them, within what Linux accepts.
TEST_F(TcpKeepaliveTest, DurationsAreWholeSecondsWithinLinuxLimits) {
  EXPECT_EQ(ApplyTcpKeepalive(fd_, config::TcpKeepalive{.probes = 1000, .time = 1500ms, .interval = 200ms}), 0);
  EXPECT_EQ(Get(fd_, IPPROTO_TCP, TCP_KEEPIDLE), 1);
  EXPECT_EQ(Get(fd_, IPPROTO_TCP, TCP_KEEPINTVL), 1);
  EXPECT_EQ(Get(fd_, IPPROTO_TCP, TCP_KEEPCNT), 127);
  EXPECT_EQ(ApplyTcpKeepalive(fd_, config::TcpKeepalive{.time = 48h}), 0);
  EXPECT_EQ(Get(fd_, IPPROTO_TCP, TCP_KEEPIDLE), 32767);
}

TEST_F(TcpKeepaliveTest, ABadDescriptorReportsTheError) {
  EXPECT_EQ(ApplyTcpKeepalive(-1, config::TcpKeepalive{}), EBADF);
}

}  // namespace
}  // namespace meshgate::proxy
