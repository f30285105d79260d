#include "tests/support/ports.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>

namespace meshgate::testing {
namespace {

// Machine-wide on purpose: every worktree and build on this machine shares
// the port range, so they must share the locks too.
constexpr char kLockDir[] = "/tmp/meshgate-test-ports";

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// The blocks must lie outside the range the kernel hands out for bind(0)
// and outgoing connections, or they would not be ours alone.
void CheckOutsideEphemeralRange() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0, high = 0;
  if (!(in >> low >> high)) return;  // not Linux as we know it: trust the defaults
  const int first = kFirstBlockPort, last = kFirstBlockPort + kBlocks * kBlockSize - 1;
  if (last >= low && first <= high) {
    throw std::runtime_error("test port blocks " + std::to_string(first) + "-" + std::to_string(last) +
                             " overlap the ephemeral range " + std::to_string(low) + "-" + std::to_string(high) +
                             " (net.ipv4.ip_local_port_range): move kFirstBlockPort in tests/support/ports.h");
  }
}

// Whether nothing outside this scheme holds a port of the block (some
// unrelated service could). SO_REUSEADDR: a TIME_WAIT left by the block's
// previous owner is no obstacle, the backends set it too.
bool Bindable(uint16_t first) {
  for (uint16_t port = first; port < first + kBlockSize; ++port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const sockaddr_in a = Loopback(port);
    const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (!ok) return false;
  }
  return true;
}

class PortBlock {
 public:
  PortBlock() {
    CheckOutsideEphemeralRange();
    if (::mkdir(kLockDir, 01777) == 0) ::chmod(kLockDir, 01777);  // past the umask: shared by all users
    for (uint16_t n = 0; n < kBlocks; ++n) {
      const std::string path = std::string(kLockDir) + "/block-" + std::to_string(n) + ".lock";
      // Read-only is enough for flock, and works on another user's file.
      const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0666);
      if (fd < 0) continue;
      ::fchmod(fd, 0666);
      const uint16_t first = static_cast<uint16_t>(kFirstBlockPort + n * kBlockSize);
      if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && Bindable(first)) {
        lock_fd_ = fd;  // held until the process exits
        first_ = first;
        return;
      }
      ::close(fd);
    }
    throw std::runtime_error(std::string("no free test port block: all ") + std::to_string(kBlocks) +
                             " locks in " + kLockDir + " are held, or their ports are in use");
  }

  uint16_t Next() {
    std::lock_guard lock(mu_);
    return static_cast<uint16_t>(first_ + next_++ % kBlockSize);
  }

 private:
  std::mutex mu_;
  int lock_fd_ = -1;
  uint16_t first_ = 0;
  uint32_t next_ = 0;
};

}  // namespace

uint16_t ReservedPort() {
  static PortBlock block;
  return block.Next();
}

RefusingPort::RefusingPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = Loopback(0);
  socklen_t len = sizeof a;
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error("bind 127.0.0.1:0 failed");
  }
  port_ = ntohs(a.sin_port);
}

RefusingPort::~RefusingPort() { ::close(fd_); }

}  // namespace meshgate::testing
