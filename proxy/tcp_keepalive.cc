#include "proxy/tcp_keepalive.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

namespace meshgate::proxy {
namespace {

int SetInt(int fd, int level, int name, int value) {
  return ::setsockopt(fd, level, name, &value, sizeof(value)) == 0 ? 0 : errno;
}

// Linux's limits (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT):
// beyond them setsockopt fails, so a rule asking for more gets the most.
constexpr int64_t kMaxKeepaliveSeconds = 32767;
constexpr uint32_t kMaxKeepaliveProbes = 127;

// Whole seconds, as Envoy's tcp_keepalive takes them, within what Linux accepts.
int Seconds(std::chrono::milliseconds d) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  return static_cast<int>(std::clamp<int64_t>(s, 1, kMaxKeepaliveSeconds));
}

}  // namespace

int ApplyTcpKeepalive(int fd, const config::TcpKeepalive& keepalive) {
  if (int err = SetInt(fd, SOL_SOCKET, SO_KEEPALIVE, 1)) return err;
  if (keepalive.probes) {
    const int probes = static_cast<int>(std::clamp<uint32_t>(*keepalive.probes, 1, kMaxKeepaliveProbes));
    if (int err = SetInt(fd, IPPROTO_TCP, TCP_KEEPCNT, probes)) return err;
  }
  if (keepalive.time) {
    if (int err = SetInt(fd, IPPROTO_TCP, TCP_KEEPIDLE, Seconds(*keepalive.time))) return err;
  }
  if (keepalive.interval) {
    if (int err = SetInt(fd, IPPROTO_TCP, TCP_KEEPINTVL, Seconds(*keepalive.interval))) return err;
  }
  return 0;
}

}  // namespace meshgate::proxy
