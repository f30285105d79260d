// byte_sink: the raw backend of the comparison benchmark's bulk and idle
// workloads (bench/compare/run.sh). Skips the client's TLS ClientHello record,
// then serves the wire.h protocol: swallow N bytes and acknowledge the count
// (upload), send N bytes (download), or hold the connection open (idle).
//
//   byte_sink --listen 127.0.0.1:9000 [--threads N]
//
// One epoll loop per thread, each with its own SO_REUSEPORT listener.
// Prints "listening" once bound; runs until SIGTERM/SIGINT.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench/compare/wire.h"

namespace {

constexpr size_t kBufSize = 256 * 1024;

enum class State { kRecordHeader, kRecordBody, kHeader, kUpload, kDownload, kDrain };

struct Conn {
  State state = State::kRecordHeader;
  uint8_t small[bench::kHeaderSize];  // record header / protocol header being assembled
  size_t have = 0;                    // bytes of `small` filled
  uint64_t left = 0;                  // record bytes to skip, upload bytes to read, download bytes to send
  uint64_t total = 0;                 // N from the header
};

class Loop {
 public:
  explicit Loop(const sockaddr_in& addr) {
    lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(lfd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(lfd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || listen(lfd_, 4096) != 0) {
      std::perror("byte_sink: bind/listen");
      std::exit(1);
    }
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    Watch(lfd_, EPOLLIN, EPOLL_CTL_ADD);
    buf_.resize(kBufSize);
    std::memset(buf_.data(), 'x', buf_.size());
  }

  void Run() {
    epoll_event evs[256];
    for (;;) {
      int n = epoll_wait(ep_, evs, 256, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::perror("byte_sink: epoll_wait");
        std::exit(1);
      }
      for (int i = 0; i < n; ++i) {
        int fd = evs[i].data.fd;
        if (fd == lfd_) {
          Accept();
        } else {
          auto it = conns_.find(fd);
          if (it == conns_.end()) continue;
          bool keep = true;
          if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) keep = OnReadable(fd, it->second);
          if (keep && (evs[i].events & EPOLLOUT)) keep = OnWritable(fd, it->second);
          if (!keep) Close(fd);
        }
      }
    }
  }

 private:
  void Watch(int fd, uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    epoll_ctl(ep_, op, fd, &ev);
  }

  void Accept() {
    for (;;) {
      int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN, or EMFILE: try again on the next wakeup
      conns_.emplace(fd, Conn{});
      Watch(fd, EPOLLIN, EPOLL_CTL_ADD);
    }
  }

  void Close(int fd) {
    conns_.erase(fd);
    close(fd);  // also removes it from the epoll set
  }

  // Reads until EAGAIN (bounded, to stay fair between connections). False = close.
  bool OnReadable(int fd, Conn& c) {
    for (int rounds = 0; rounds < 16; ++rounds) {
      ssize_t n = recv(fd, buf_.data(), buf_.size(), 0);
      if (n == 0) return false;  // peer closed: we are done with it in every state
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      if (!Consume(fd, c, buf_.data(), static_cast<size_t>(n))) return false;
    }
    return true;
  }

  bool Consume(int fd, Conn& c, const uint8_t* p, size_t n) {
    while (n > 0) {
      switch (c.state) {
        case State::kRecordHeader: {
          size_t take = std::min(n, bench::kRecordHeaderSize - c.have);
          std::memcpy(c.small + c.have, p, take);
          c.have += take; p += take; n -= take;
          if (c.have == bench::kRecordHeaderSize) {
            if (c.small[0] != bench::kHandshakeRecord) return false;
            c.left = (uint64_t{c.small[3]} << 8) | c.small[4];
            c.have = 0;
            c.state = State::kRecordBody;
          }
          break;
        }
        case State::kRecordBody: {
          size_t take = static_cast<size_t>(std::min<uint64_t>(n, c.left));
          c.left -= take; p += take; n -= take;
          if (c.left == 0) c.state = State::kHeader;
          break;
        }
        case State::kHeader: {
          size_t take = std::min(n, bench::kHeaderSize - c.have);
          std::memcpy(c.small + c.have, p, take);
          c.have += take; p += take; n -= take;
          if (c.have < bench::kHeaderSize) break;
          if (std::memcmp(c.small, bench::kMagic, 4) != 0) return false;
          c.total = c.left = bench::GetU64(c.small + 8);
          switch (c.small[4]) {
            case 'U':
              c.state = State::kUpload;
              if (c.left == 0 && !Ack(fd, c)) return false;
              break;
            case 'D':
              c.state = State::kDownload;
              Watch(fd, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
              break;
            case 'I': {
              const char r = 'R';
              if (send(fd, &r, 1, MSG_NOSIGNAL) != 1) return false;
              c.state = State::kDrain;
              break;
            }
            default:
              return false;
          }
          break;
        }
        case State::kUpload: {
          size_t take = static_cast<size_t>(std::min<uint64_t>(n, c.left));
          c.left -= take; p += take; n -= take;
          if (c.left == 0 && !Ack(fd, c)) return false;
          break;
        }
        case State::kDownload:
        case State::kDrain:
          n = 0;  // anything else the client sends is ignored
          break;
      }
    }
    return true;
  }

  bool Ack(int fd, Conn& c) {
    uint8_t ack[8];
    bench::PutU64(ack, c.total);
    c.state = State::kDrain;
    return send(fd, ack, sizeof ack, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof ack);
  }

  bool OnWritable(int fd, Conn& c) {
    if (c.state != State::kDownload) return true;
    while (c.left > 0) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(c.left, buf_.size()));
      ssize_t n = send(fd, buf_.data(), want, MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      c.left -= static_cast<uint64_t>(n);
    }
    shutdown(fd, SHUT_WR);
    c.state = State::kDrain;
    Watch(fd, EPOLLIN, EPOLL_CTL_MOD);
    return true;
  }

  int lfd_ = -1;
  int ep_ = -1;
  std::vector<uint8_t> buf_;
  std::unordered_map<int, Conn> conns_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string listen_addr = "127.0.0.1:9000";
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--listen" && i + 1 < argc) listen_addr = argv[++i];
    else if (a == "--threads" && i + 1 < argc) threads = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: byte_sink --listen IP:PORT [--threads N]\n");
      return 2;
    }
  }
  sockaddr_in addr;
  if (!bench::ParseAddr(listen_addr, addr)) {
    std::fprintf(stderr, "byte_sink: bad address %s\n", listen_addr.c_str());
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  std::vector<Loop*> loops;
  for (int i = 0; i < threads; ++i) loops.push_back(new Loop(addr));  // all bound before "listening"
  std::printf("listening %s threads=%d\n", listen_addr.c_str(), threads);
  std::fflush(stdout);
  std::vector<std::thread> workers;
  for (int i = 1; i < threads; ++i) workers.emplace_back([l = loops[i]] { l->Run(); });
  loops[0]->Run();
}
