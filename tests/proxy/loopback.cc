#include "tests/proxy/loopback.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace meshgate::proxy::testing {

Peer& Peer::operator=(Peer&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

size_t Peer::SendSome(std::string_view bytes) {
  if (bytes.empty()) return 0;
  const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

void Peer::ReadAvailable() {
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      received_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) eof_ = true;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) error_ = errno;
    return;
  }
}

void Peer::ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

void Peer::Reset() {
  const linger abortive{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
  Close();
}

void Peer::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Listener::Listener() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  // As the gateway's listeners (proxy/worker_pool.cc PrepareListener): the
  // accepted sockets inherit TCP_NODELAY and SO_OOBINLINE.
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd_, SOL_SOCKET, SO_OOBINLINE, &one, sizeof one);
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd_, 16) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error("listen on 127.0.0.1:0 failed");
  }
  port_ = ntohs(a.sin_port);
}

Listener::~Listener() { ::close(fd_); }

Peer Listener::Accept(int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return Peer();
  return Peer(::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

Connection Connect() {
  Listener listener;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(listener.port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    throw std::runtime_error("connect to 127.0.0.1 failed");
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  Peer accepted = listener.Accept();
  if (accepted.fd() < 0) throw std::runtime_error("accept on 127.0.0.1 failed");
  return Connection{std::move(accepted), Peer(fd)};
}

bool RunUntil(boost::asio::io_context& io, const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.restart();
    if (io.poll() == 0) io.run_one_for(std::chrono::milliseconds(1));
  }
  return true;
}

size_t RunReady(boost::asio::io_context& io) {
  size_t total = 0;
  for (;;) {
    io.restart();
    const size_t n = io.poll();
    if (n == 0) return total;
    total += n;
  }
}

bool RunUntil(Reactor& reactor, const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    reactor.RunOnce(std::chrono::milliseconds(1));
  }
  return true;
}

size_t RunReady(Reactor& reactor) {
  // Turns without waiting until one finds nothing to do: events, due timers
  // and deferred work all run inside RunOnce.
  size_t turns = 0;
  for (; turns < 1000; ++turns) {
    if (!reactor.RunOnce(Reactor::Clock::duration::zero())) break;
  }
  return turns;
}

bool Transfer(Reactor& reactor, Peer& from, Peer& to, std::string_view payload, size_t sent,
              std::chrono::milliseconds timeout) {
  const size_t goal = to.received().size() + payload.size();
  const bool done = RunUntil(reactor, [&] {
    sent += from.SendSome(payload.substr(sent));
    to.ReadAvailable();
    return to.received().size() >= goal;
  }, timeout);
  RunReady(reactor);
  return done;
}

bool WaitClosed(Reactor& reactor, Peer& peer, std::chrono::milliseconds timeout) {
  return RunUntil(reactor, [&] {
    peer.ReadAvailable();
    return peer.eof() || peer.error() != 0;
  }, timeout);
}

std::string Pattern(size_t size, uint8_t seed) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 131 + seed) ^ (i >> 9));
  return out;
}

size_t Unread(int fd) {
  int n = 0;
  return ::ioctl(fd, SIOCINQ, &n) == 0 ? static_cast<size_t>(n) : 0;
}

size_t Unsent(int fd) {
  int n = 0;
  return ::ioctl(fd, SIOCOUTQNSD, &n) == 0 ? static_cast<size_t>(n) : 0;
}

size_t OpenDescriptors() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

}  // namespace meshgate::proxy::testing
