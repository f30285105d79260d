// Backend 1: a per-thread edge-triggered epoll loop. Each socket is
// registered once for its lifetime with EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET
// (epoll(7): edge-triggered mode delivers an event when the state changes, so
// the reader must drain to EAGAIN or, as here, stop at a short read: every
// new skb on a TCP socket wakes the waitqueue again). No epoll_ctl per wait,
// no MOD, no heap object per pending operation: a socket is one EpollSock.
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "loop.h"

namespace uring_proto {
namespace {

class EpollSock final : public Sock {
 public:
  bool is_listener = false;
  int fd = -1;
  SockEvents* owner = nullptr;
  std::string out;         // bytes send() did not take yet
  size_t out_off = 0;
  bool connecting = false;
  bool readable = false;   // an edge said so and we did not see EAGAIN or a short read
  bool paused = false;
  bool read_ended = false;
  bool shut_wanted = false;
  bool closing = false;    // Close(graceful) with bytes still queued
  bool broken = false;     // a send failed: drop what is queued
  bool rdhup = false;      // the peer's FIN (or an error) is queued: read to the end
  Loop::AcceptFn on_accept;
};

EpollSock* E(Sock* s) { return static_cast<EpollSock*>(s); }

constexpr size_t kScratch = 64 * 1024;

class EpollLoop final : public Loop {
 public:
  EpollLoop() : ep_(epoll_create1(EPOLL_CLOEXEC)), scratch_(new char[kScratch]) {}
  ~EpollLoop() override { close(ep_); }

  void Listen(int fd, AcceptFn on_accept) override {
    auto* s = new EpollSock;
    s->is_listener = true;
    s->fd = fd;
    s->on_accept = std::move(on_accept);
    Register(s, EPOLLIN | EPOLLET);
  }

  Sock* Adopt(int fd, SockEvents* owner) override {
    auto* s = new EpollSock;
    s->fd = fd;
    s->owner = owner;
    Register(s, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    return s;
  }

  Sock* Connect(const sockaddr_in& to, SockEvents* owner) override {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    auto* s = E(Adopt(fd, owner));
    s->connecting = true;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // The result comes as EPOLLOUT (or EPOLLERR) on the registration above,
    // even when loopback completes it at once: no poll, SO_ERROR only on error.
    if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0 && errno != EINPROGRESS) {
      s->broken = true;  // EPOLLERR|EPOLLHUP follows for an unconnected socket
    }
    return s;
  }

  bool Send(Sock* sock, const char* data, size_t len) override {
    EpollSock* s = E(sock);
    if (s->broken) return true;
    if (s->out.size() == s->out_off && !s->connecting) {
      ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL);
      if (n == static_cast<ssize_t>(len)) return true;
      if (n < 0 && errno != EAGAIN) {
        s->broken = true;  // the error surfaces as EPOLLERR to this socket's reader
        return true;
      }
      if (n > 0) data += n, len -= n;
    }
    s->out.append(data, len);
    return false;
  }

  void Pause(Sock* s) override { E(s)->paused = true; }

  void Resume(Sock* sock) override {
    EpollSock* s = E(sock);
    if (!s->paused) return;
    s->paused = false;
    ReadLoop(s);
  }

  void ShutdownWrite(Sock* sock) override {
    EpollSock* s = E(sock);
    s->shut_wanted = true;
    if (s->out.size() == s->out_off) shutdown(s->fd, SHUT_WR);
  }

  void Close(Sock* sock, bool graceful) override {
    EpollSock* s = E(sock);
    s->owner = nullptr;
    if (graceful && !s->broken && s->out.size() != s->out_off) {
      s->closing = true;  // Flush closes it
      return;
    }
    Destroy(s);
  }

  void Run(const std::atomic<bool>& stop) override {
    epoll_event events[256];
    while (!stop.load(std::memory_order_relaxed)) {
      int n = epoll_wait(ep_, events, 256, 200);
      ++stats_.waits;
      for (int i = 0; i < n; ++i) Dispatch(static_cast<EpollSock*>(events[i].data.ptr), events[i].events);
      stats_.completions += n > 0 ? n : 0;
      graveyard_.clear();  // sockets closed during this turn; events above may have named them
    }
  }

  LoopStats Stats() const override { return stats_; }

 private:
  void Register(EpollSock* s, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = s;
    epoll_ctl(ep_, EPOLL_CTL_ADD, s->fd, &ev);
  }

  void Destroy(EpollSock* s) {
    if (s->fd >= 0) close(s->fd);  // also leaves the epoll set
    s->fd = -1;
    s->owner = nullptr;
    graveyard_.emplace_back(s);
  }

  void Dispatch(EpollSock* s, uint32_t ev) {
    if (s->fd < 0) return;  // closed earlier in this turn
    if (s->is_listener) return AcceptAll(s);
    if (s->connecting) {
      if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      s->connecting = false;
      int err = 0;
      if (ev & (EPOLLERR | EPOLLHUP)) {
        socklen_t len = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        err = -(err ? err : ECONNREFUSED);
      }
      if (s->owner) s->owner->OnConnected(s, err);
      if (err != 0 || s->fd < 0) return;
    }
    if ((ev & EPOLLOUT) && s->out.size() != s->out_off) Flush(s);
    if (s->fd >= 0 && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
      s->readable = true;
      if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->rdhup = true;
      ReadLoop(s);
    }
  }

  void AcceptAll(EpollSock* l) {
    for (;;) {
      int fd = accept4(l->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or EMFILE (a prototype: no backoff)
      ++stats_.sessions;
      l->on_accept(fd);
    }
  }

  void ReadLoop(EpollSock* s) {
    while (s->readable && !s->paused && !s->read_ended && s->owner != nullptr) {
      ssize_t n = recv(s->fd, scratch_.get(), kScratch, 0);
      if (n > 0) {
        // A short read drained the socket: the next skb raises a new edge.
        // Not so once the FIN is queued (no edge follows it): read to the EOF.
        if (static_cast<size_t>(n) < kScratch && !s->rdhup) s->readable = false;
        s->owner->OnData(s, scratch_.get(), n);
        continue;
      }
      if (n < 0 && errno == EAGAIN) {
        s->readable = false;
        return;
      }
      s->read_ended = true;
      s->owner->OnEnd(s, n == 0 ? 0 : -errno);
    }
  }

  void Flush(EpollSock* s) {
    while (s->out.size() != s->out_off) {
      ssize_t n = send(s->fd, s->out.data() + s->out_off, s->out.size() - s->out_off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) return;
        s->broken = true;
        break;
      }
      s->out_off += n;
    }
    s->out.clear();
    s->out_off = 0;
    if (s->shut_wanted && !s->broken) shutdown(s->fd, SHUT_WR);
    if (s->closing) return Destroy(s);
    if (s->owner) s->owner->OnDrained(s);
  }

  int ep_;
  std::unique_ptr<char[]> scratch_;
  std::vector<std::unique_ptr<EpollSock>> graveyard_;
  LoopStats stats_;
};

}  // namespace

std::unique_ptr<Loop> NewEpollLoop() { return std::make_unique<EpollLoop>(); }

}  // namespace uring_proto
