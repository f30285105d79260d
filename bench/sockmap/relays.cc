// The splice relay and the sockmap relay of the prototype (see relays.h).
#include "relays.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <linux/tcp.h>  // struct tcp_info with tcpi_bytes_acked/received (glibc's lacks them)
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace sockmap_proto {
namespace {

bool SendAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// ---- splice ---------------------------------------------------------------

class SpliceRelay : public Relay {
 public:
  void Start(int client, int backend, const char* hello, size_t hello_len) override {
    SendAll(backend, hello, hello_len);
    auto left = std::make_shared<std::atomic<int>>(2);
    auto run = [left, client, backend](int src, int dst) {
      Pump(src, dst);
      ::shutdown(dst, SHUT_WR);  // forward the EOF once every byte went out
      if (--*left == 0) {
        ::close(client);
        ::close(backend);
      }
    };
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back(run, client, backend);
    threads_.emplace_back(run, backend, client);
  }
  RelayStats Join() override {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    return {};
  }

 private:
  // Blocking splice, socket -> pipe -> socket, until EOF or an error.
  static void Pump(int src, int dst) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return;
    for (;;) {
      ssize_t n = ::splice(src, nullptr, p[1], nullptr, 1 << 16, SPLICE_F_MOVE);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      while (n > 0) {
        const ssize_t m = ::splice(p[0], nullptr, dst, nullptr, static_cast<size_t>(n), SPLICE_F_MOVE);
        if (m < 0 && errno == EINTR) continue;
        if (m <= 0) {
          n = -1;
          break;
        }
        n -= m;
      }
      if (n < 0) break;
    }
    ::close(p[0]);
    ::close(p[1]);
  }

  std::mutex mu_;
  std::vector<std::thread> threads_;
};

// ---- sockmap --------------------------------------------------------------

// Mirrors struct side in relay.bpf.c.
struct Side {
  uint64_t peer;
  uint64_t bytes;
  uint64_t skbs;
  uint64_t failed;
  uint64_t empty;
};

uint64_t Cookie(int fd) {
  uint64_t c = 0;
  socklen_t len = sizeof c;
  ::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len);
  return c;
}

tcp_info TcpInfo(int fd) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
  return ti;
}

// Bytes user space and the kernel have handed to `fd`'s TCP send side so far:
// acked (tcpi_bytes_acked, RFC 4898 HCThruOctetsAcked) plus what is still
// queued or in flight (SIOCOUTQ = write_seq - snd_una, tcp(7)).
uint64_t BytesWritten(int fd) {
  int outq = 0;
  ::ioctl(fd, SIOCOUTQ, &outq);
  return TcpInfo(fd).tcpi_bytes_acked + static_cast<uint64_t>(outq);
}

int SoError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

class SockmapRelay : public Relay {
 public:
  SockmapRelay(bpf_object* obj, const SockmapOptions& o) : obj_(obj), options_(o) {
    socks_ = bpf_object__find_map_fd_by_name(obj, "socks");
    sides_ = bpf_object__find_map_fd_by_name(obj, "sides");
  }
  ~SockmapRelay() override { bpf_object__close(obj_); }

  void Start(int client, int backend, const char* hello, size_t hello_len) override;
  RelayStats Join() override {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    std::lock_guard<std::mutex> lock(mu_);
    RelayStats out = stats_;
    stats_ = {};
    return out;
  }

 private:
  // One direction: bytes arriving on `src` go out of `dst`.
  struct Direction {
    int src, dst;
    uint64_t src_cookie;
    uint64_t pre;  // bytes user space wrote to dst itself (the hello)
    const char* name;
    uint64_t received0 = 0;  // tcpi_bytes_received of src when the relay took over
    uint64_t written0 = 0;   // BytesWritten(dst) then (an active opener's count holds its SYN)
    bool done = false;
  };
  struct Baseline {
    uint64_t client_received, backend_written, backend_received, client_written;
  };
  void Wait(int client, int backend, uint64_t cc, uint64_t cb, size_t hello_len, Baseline base);
  void Drain(Direction& d);
  void NoteError(const char* where, int fd);

  bpf_object* obj_;
  SockmapOptions options_;
  int socks_ = -1, sides_ = -1;
  std::mutex mu_;
  std::vector<std::thread> threads_;
  RelayStats stats_;
};

// No backpressure reaches the sender once both sockets are in the map:
// tcp_read_skb() orphans each skb (skb_set_owner_sk_safe drops the receive
// charge) and tcp_eat_skb() reopens the window at once, while
// sk_psock_skb_redirect() queues on the peer's ingress_skb without a limit
// (net/ipv4/tcp.c, net/ipv4/tcp_bpf.c, net/core/skmsg.c). stats_.max_queued_at_eof shows it.
void SockmapRelay::Start(int client, int backend, const char* hello, size_t hello_len) {
  if (options_.sockbuf > 0) {
    for (int fd : {client, backend}) {
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &options_.sockbuf, sizeof options_.sockbuf);
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &options_.sockbuf, sizeof options_.sockbuf);
    }
  }
  const uint64_t cc = Cookie(client), cb = Cookie(backend);
  Side sc{cb, 0, 0, 0, 0}, sb{cc, 0, 0, 0, 0};
  // Baselines before the kernel takes over: what each side received so far
  // (the client's hello, read by user space) and what each had sent.
  Baseline base{TcpInfo(client).tcpi_bytes_received, BytesWritten(backend), TcpInfo(backend).tcpi_bytes_received,
                BytesWritten(client)};
  uint64_t vc = static_cast<uint64_t>(client), vb = static_cast<uint64_t>(backend);
  // sides first, then the sockhash: the verdict runs as soon as a socket is in
  // the map (sock_map_update_elem -> sk_psock_start_verdict), and it needs its peer.
  bpf_map_update_elem(sides_, &cc, &sc, BPF_ANY);
  bpf_map_update_elem(sides_, &cb, &sb, BPF_ANY);
  if (bpf_map_update_elem(socks_, &cc, &vc, BPF_NOEXIST) != 0 ||
      bpf_map_update_elem(socks_, &cb, &vb, BPF_NOEXIST) != 0) {
    NoteError("sockhash insert", client);
  }
  // Only now the hello: the backend's first byte must find its socket in the map.
  SendAll(backend, hello, hello_len);
  std::lock_guard<std::mutex> lock(mu_);
  threads_.emplace_back([=, this] { Wait(client, backend, cc, cb, hello_len, base); });
}

// User space only waits for each side's FIN (POLLRDHUP), drains, and forwards
// it with shutdown(SHUT_WR); it never reads or writes a relayed byte.
void SockmapRelay::Wait(int client, int backend, uint64_t cc, uint64_t cb, size_t hello_len, Baseline base) {
  Direction dirs[2] = {{client, backend, cc, hello_len, "backend", base.client_received, base.backend_written},
                       {backend, client, cb, 0, "client", base.backend_received, base.client_written}};
  while (!dirs[0].done || !dirs[1].done) {
    pollfd p[2];
    for (int i = 0; i < 2; ++i) p[i] = {dirs[i].done ? -1 : dirs[i].src, POLLRDHUP, 0};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (dirs[i].done || !(p[i].revents & (POLLRDHUP | POLLHUP | POLLERR))) continue;
      if (p[i].revents & POLLERR) NoteError(dirs[1 - i].name, dirs[i].src);
      if (options_.drain_before_eof) Drain(dirs[i]);
      ::shutdown(dirs[i].dst, SHUT_WR);
      dirs[i].done = true;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t c : {cc, cb}) {
    Side s{};
    if (bpf_map_lookup_elem(sides_, &c, &s) == 0) {
      stats_.redirected += s.bytes;
      stats_.failed_redirects += s.failed;
      stats_.empty_skbs += s.empty;
    }
    bpf_map_delete_elem(sides_, &c);
  }
  ::close(client);  // closing removes a socket from the sockhash (sock_map_close)
  ::close(backend);
}

// Waits until `dst` has taken every byte the verdict redirected from `src`
// (BPF counter against tcpi_bytes_acked + SIOCOUTQ), so the FIN queued by
// shutdown(SHUT_WR) goes after them instead of cutting them off. Redirected
// skbs wait in the peer's psock->ingress_skb and are sent by a kworker
// (sk_psock_backlog, net/core/skmsg.c): nothing signals when that queue is
// empty, so this polls every millisecond.
void SockmapRelay::Drain(Direction& d) {
  constexpr int kMaxPolls = 30000;  // 30 s: a 1 GiB stream to a slow reader takes ~5 s
  for (int polls = 0;; ++polls) {
    Side s{};
    bpf_map_lookup_elem(sides_, &d.src_cookie, &s);
    // tcpi_bytes_received counts the FIN too (rcv_nxt moves past it).
    const uint64_t received = TcpInfo(d.src).tcpi_bytes_received - d.received0 - 1;
    const uint64_t written = BytesWritten(d.dst) - d.written0;
    if (polls == 0) {  // how much the kernel held for the peer when the FIN came
      std::lock_guard<std::mutex> lock(mu_);
      stats_.max_queued_at_eof = std::max(stats_.max_queued_at_eof, d.pre + s.bytes - written);
    }
    if (s.bytes == received && written == d.pre + s.bytes) break;
    const int err = SoError(d.dst);
    if (err != 0 || polls == kMaxPolls) {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.tx_errors++;
      if (stats_.first_error.empty()) {
        stats_.first_error = std::string(d.name) + (err ? " SO_ERROR=" + std::to_string(err) : std::string(" drain timeout")) +
                             ": redirected=" + std::to_string(s.bytes) + " received=" +
                             std::to_string(received) + " written=" + std::to_string(written);
      }
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.drain_polls++;
    }
    ::usleep(1000);
  }
}

void SockmapRelay::NoteError(const char* where, int fd) {
  const int err = SoError(fd);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.tx_errors++;
  if (stats_.first_error.empty()) {
    stats_.first_error = std::string(where) + " SO_ERROR=" + std::to_string(err) + " (" + std::strerror(err) + ")";
  }
}

}  // namespace

Relay* NewSpliceRelay() { return new SpliceRelay(); }

Relay* NewSockmapRelay(const std::string& path, const SockmapOptions& options, std::string& error) {
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  if (!obj) {
    error = "cannot open " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  if (bpf_object__load(obj) != 0) {
    error = "cannot load " + path + " (root and CONFIG_BPF_STREAM_PARSER needed): " + std::strerror(errno);
    bpf_object__close(obj);
    return nullptr;
  }
  const int socks = bpf_object__find_map_fd_by_name(obj, "socks");
  const int config = bpf_object__find_map_fd_by_name(obj, "config");
  const int verdict = bpf_program__fd(bpf_object__find_program_by_name(obj, "relay_verdict"));
  const int parser = bpf_program__fd(bpf_object__find_program_by_name(obj, "relay_parser"));
  const uint32_t zero = 0;
  const uint32_t one = 1;
  const uint64_t flags = options.ingress ? BPF_F_INGRESS : 0;
  const uint64_t keep_empty = options.redirect_empty ? 0 : 1;
  bpf_map_update_elem(config, &zero, &flags, BPF_ANY);
  bpf_map_update_elem(config, &one, &keep_empty, BPF_ANY);
  // Programs go on the map before any socket does (map_sockmap.rst: a socket
  // added later gets the map's programs).
  if ((options.strparser && bpf_prog_attach(parser, socks, BPF_SK_SKB_STREAM_PARSER, 0) != 0) ||
      bpf_prog_attach(verdict, socks, BPF_SK_SKB_STREAM_VERDICT, 0) != 0) {
    error = std::string("cannot attach the sk_skb programs: ") + std::strerror(errno);
    bpf_object__close(obj);
    return nullptr;
  }
  return new SockmapRelay(obj, options);
}

}  // namespace sockmap_proto
