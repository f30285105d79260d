// Prototype harness for issue 17 part 3 (a go/no-go on a kernel-side relay):
// a client, a relay (splice or BPF sockmap) and a backend, all on loopback in
// this process, moving sequence-checked bytes so that any lost, duplicated
// or reordered byte shows up at its offset. Not part of the data plane.
//
//   sockmap_relay --relay sockmap --bpf relay.bpf.o --scenario check --size 64M
//   sockmap_relay --relay splice --scenario bulk --size 1G --streams 8
//   sockmap_relay --relay sockmap --bpf relay.bpf.o --scenario pingpong --seconds 3
//
// Exit status: 0 all byte-exact, 1 a mismatch or error, 2 bad usage,
// 77 sockmap cannot be loaded here (no root, no BPF): ctest's skip code.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "machine_cpu.h"
#include "relays.h"

namespace sockmap_proto {
namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr size_t kHello = 16;

struct Options {
  std::string relay = "sockmap";
  std::string bpf;
  std::string scenario = "check";  // check | bulk | pingpong
  SockmapOptions sockmap;
  uint64_t size = 64ull << 20;     // per direction, split over the streams
  int streams = 0;                 // 0: the check suite's own (1, 8, 1)
  int slow_us = 200;               // the slow reader sleeps this after each 64 KiB
  double seconds = 3;              // pingpong
  int conns = 4;                   // pingpong connections
  size_t msg = 64;                 // pingpong message size
};

// ---- byte patterns ----------------------------------------------------------

uint64_t Mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Byte `off + i` of stream `seed`: every offset has its own value, so a
// dropped or repeated run of bytes is caught at the first offset it moves.
void Fill(uint64_t seed, uint64_t off, uint8_t* out, size_t n) {
  uint64_t word_index = UINT64_MAX, word = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t at = off + i;
    if (at / 8 != word_index) word = Mix(seed * 0x100000001b3ull ^ (word_index = at / 8));
    out[i] = static_cast<uint8_t>(word >> (8 * (at % 8)));
  }
}

struct StreamResult {
  uint64_t expected = 0;
  uint64_t received = 0;
  int64_t first_bad = -1;  // the first offset whose byte is wrong
  bool exact() const { return received == expected && first_bad < 0; }
};

bool ReadExact(int fd, void* p, size_t n) {
  auto* b = static_cast<uint8_t*>(p);
  while (n > 0) {
    const ssize_t r = ::recv(fd, b, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    b += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool WriteAll(int fd, const void* p, size_t n) {
  auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    const ssize_t w = ::send(fd, b, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    b += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Sends `n` bytes of stream `seed` (or of a fixed buffer when !verify), then
// half-closes.
void SendStream(int fd, uint64_t seed, uint64_t n, bool verify) {
  std::vector<uint8_t> buf(kChunk);
  if (!verify) Fill(seed, 0, buf.data(), buf.size());
  for (uint64_t off = 0; off < n;) {
    const size_t len = static_cast<size_t>(std::min<uint64_t>(kChunk, n - off));
    if (verify) Fill(seed, off, buf.data(), len);
    if (!WriteAll(fd, buf.data(), len)) break;
    off += len;
  }
  ::shutdown(fd, SHUT_WR);
}

// Reads to EOF, checking every byte against stream `seed` when `verify`.
StreamResult RecvStream(int fd, uint64_t seed, uint64_t expected, int slow_us, bool verify) {
  StreamResult r;
  r.expected = expected;
  std::vector<uint8_t> buf(kChunk), want(kChunk);
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (verify && r.first_bad < 0) {
      Fill(seed, r.received, want.data(), static_cast<size_t>(n));
      if (std::memcmp(buf.data(), want.data(), static_cast<size_t>(n)) != 0) {
        size_t i = 0;
        while (buf[i] == want[i]) ++i;
        r.first_bad = static_cast<int64_t>(r.received + i);
      }
    }
    r.received += static_cast<uint64_t>(n);
    if (slow_us > 0) ::usleep(static_cast<useconds_t>(slow_us));  // a slow reader, not a wait for state
  }
  return r;
}

// ---- sockets ----------------------------------------------------------------

int Listen(uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 256) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::perror("listen");
    std::exit(1);
  }
  port = ntohs(a.sin_port);  // port 0 bound, read back
  return fd;
}

int Connect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect");
    std::exit(1);
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

int Accept(int listener) {
  const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}


// ---- a run: n connections through the relay ---------------------------------

using Role = std::function<void(int fd, int index)>;

struct Outcome {
  double seconds = 0;
  MachineMeter::Reading cpu{};
  RelayStats relay;
};

// Backend side of one connection: answers the hello, then plays its role.
void ServeBackend(int listener, int n, const Role& role) {
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    const int fd = Accept(listener);
    threads.emplace_back([fd, &role] {
      char hello[kHello];
      if (ReadExact(fd, hello, sizeof hello) && WriteAll(fd, hello, sizeof hello)) {
        uint64_t index = 0;
        std::memcpy(&index, hello + 8, sizeof index);
        role(fd, static_cast<int>(index));
      }
      ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
}

// The relay's accept path: read the hello (user space, as meshgate reads the
// ClientHello), connect the backend, hand both sockets to the relay.
void AcceptIntoRelay(int listener, uint16_t backend_port, int n, Relay& relay) {
  for (int i = 0; i < n; ++i) {
    const int client = Accept(listener);
    char hello[kHello];
    if (!ReadExact(client, hello, sizeof hello)) {
      ::close(client);
      continue;
    }
    relay.Start(client, Connect(backend_port), hello, sizeof hello);
  }
}

Outcome RunConnections(Relay& relay, int n, const Role& client_role, const Role& backend_role) {
  uint16_t backend_port = 0, relay_port = 0;
  const int backend_listener = Listen(backend_port);
  const int relay_listener = Listen(relay_port);
  MachineMeter meter;
  const auto t0 = std::chrono::steady_clock::now();
  std::thread backend([&] { ServeBackend(backend_listener, n, backend_role); });
  std::thread acceptor([&] { AcceptIntoRelay(relay_listener, backend_port, n, relay); });
  std::vector<std::thread> clients;
  for (int i = 0; i < n; ++i) {
    clients.emplace_back([&, i] {
      const int fd = Connect(relay_port);
      char hello[kHello] = "SMRELAY1";
      const uint64_t index = static_cast<uint64_t>(i);
      std::memcpy(hello + 8, &index, sizeof index);
      char reply[kHello];
      if (WriteAll(fd, hello, sizeof hello) && ReadExact(fd, reply, sizeof reply)) client_role(fd, i);
      ::close(fd);
    });
  }
  for (auto& t : clients) t.join();
  backend.join();
  acceptor.join();
  Outcome out;
  out.relay = relay.Join();
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.cpu = meter.Stop();
  ::close(backend_listener);
  ::close(relay_listener);
  return out;
}

void PrintOutcome(const char* scenario, const std::string& name, const Options& o, const Outcome& r) {
  std::printf("%s case=%s relay=%s%s%s sockbuf=%d drain=%d seconds=%.3f machine_cpu_s=%.2f raw_cpu_s=%.2f "
              "redirect_empty=%d redirected=%llu failed_redirects=%llu empty_skbs=%llu queued_at_eof=%llu drain_polls=%llu tx_errors=%llu%s%s\n",
              scenario, name.c_str(), o.relay.c_str(),
              o.relay == "sockmap" && o.sockmap.strparser ? "+strparser" : "",
              o.relay == "sockmap" && o.sockmap.ingress ? "+ingress" : "", o.sockmap.sockbuf,
              o.sockmap.drain_before_eof ? 1 : 0, r.seconds, r.cpu.machine_s, r.cpu.raw_s,
              o.sockmap.redirect_empty ? 1 : 0, static_cast<unsigned long long>(r.relay.redirected),
              static_cast<unsigned long long>(r.relay.failed_redirects),
              static_cast<unsigned long long>(r.relay.empty_skbs),
              static_cast<unsigned long long>(r.relay.max_queued_at_eof),
              static_cast<unsigned long long>(r.relay.drain_polls),
              static_cast<unsigned long long>(r.relay.tx_errors),
              r.relay.first_error.empty() ? "" : " first_error=", r.relay.first_error.c_str());
}

// ---- scenarios ----------------------------------------------------------------

// One byte-exactness case: every connection sends `per_stream` sequence-checked
// bytes each way, one direction after the other: the first sender half-closes
// while the other direction has not started (half-close, both orders), and
// every reader is slow, so the relay's sockets fill (backpressure).
bool CheckCase(Relay& relay, const Options& o, const std::string& name, int streams, bool client_first) {
  const uint64_t per = o.size / static_cast<uint64_t>(streams);
  std::vector<StreamResult> up(streams), down(streams);  // up: client -> backend
  auto seed = [](int i, int dir) { return static_cast<uint64_t>(i) * 2 + static_cast<uint64_t>(dir) + 1; };
  Role client = [&](int fd, int i) {
    if (client_first) SendStream(fd, seed(i, 0), per, true);
    down[i] = RecvStream(fd, seed(i, 1), per, o.slow_us, true);
    if (!client_first) SendStream(fd, seed(i, 0), per, true);
  };
  Role backend = [&](int fd, int i) {
    if (!client_first) SendStream(fd, seed(i, 1), per, true);
    up[i] = RecvStream(fd, seed(i, 0), per, o.slow_us, true);
    if (client_first) SendStream(fd, seed(i, 1), per, true);
  };
  const Outcome r = RunConnections(relay, streams, client, backend);
  bool exact = true;
  for (int i = 0; i < streams; ++i) {
    for (const auto& [dir, s] : {std::pair{"up", up[i]}, std::pair{"down", down[i]}}) {
      if (s.exact()) continue;
      exact = false;
      std::printf("  stream %d %s: received %llu of %llu, first wrong byte at %lld\n", i, dir,
                  static_cast<unsigned long long>(s.received), static_cast<unsigned long long>(s.expected),
                  static_cast<long long>(s.first_bad));
    }
  }
  PrintOutcome("check", name, o, r);
  std::printf("  => %s\n", exact ? "byte-exact" : "NOT byte-exact");
  return exact;
}

bool CheckSuite(Relay& relay, const Options& o) {
  bool ok = true;
  if (o.streams == 0 || o.streams == 1) ok &= CheckCase(relay, o, "1-stream,client-closes-first", 1, true);
  if (o.streams == 0 || o.streams > 1) {
    const int n = o.streams == 0 ? 8 : o.streams;
    ok &= CheckCase(relay, o, std::to_string(n) + "-streams,client-closes-first", n, true);
  }
  if (o.streams == 0) ok &= CheckCase(relay, o, "1-stream,backend-closes-first", 1, false);
  return ok;
}

// Bulk cost: client -> backend at full speed (unchecked bytes), fast reader.
bool Bulk(Relay& relay, const Options& o) {
  const int streams = std::max(1, o.streams);
  const uint64_t per = o.size / static_cast<uint64_t>(streams);
  std::vector<StreamResult> up(streams);
  Role client = [&](int fd, int i) {
    SendStream(fd, static_cast<uint64_t>(i) + 1, per, false);
    RecvStream(fd, 0, 0, 0, false);
  };
  Role backend = [&](int fd, int i) {
    up[i] = RecvStream(fd, 0, per, 0, false);
    ::shutdown(fd, SHUT_WR);
  };
  const Outcome r = RunConnections(relay, streams, client, backend);
  uint64_t got = 0;
  for (const auto& s : up) got += s.received;
  PrintOutcome("bulk", std::to_string(streams) + "-streams", o, r);
  const double gib = static_cast<double>(got) / (1ull << 30);
  std::printf("  bytes=%llu of %llu  MiB/s=%.0f  machine_cpu_s_per_GiB=%.3f\n",
              static_cast<unsigned long long>(got), static_cast<unsigned long long>(per * streams),
              gib * 1024 / r.seconds, r.cpu.machine_s / gib);
  return got == per * streams;
}

// Kept-alive request/response: `conns` connections, each sending `msg` bytes
// and waiting for `msg` bytes back, for `seconds`.
bool PingPong(Relay& relay, const Options& o) {
  std::mutex mu;
  std::vector<double> lat_us;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.seconds);
  Role client = [&](int fd, int) {
    std::vector<uint8_t> buf(o.msg, 'q');
    std::vector<double> mine;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto t = std::chrono::steady_clock::now();
      if (!WriteAll(fd, buf.data(), buf.size()) || !ReadExact(fd, buf.data(), buf.size())) break;
      mine.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t).count());
    }
    ::shutdown(fd, SHUT_WR);
    RecvStream(fd, 0, 0, 0, false);
    std::lock_guard<std::mutex> lock(mu);
    lat_us.insert(lat_us.end(), mine.begin(), mine.end());
  };
  Role backend = [&](int fd, int) {
    std::vector<uint8_t> buf(o.msg);
    while (ReadExact(fd, buf.data(), buf.size()) && WriteAll(fd, buf.data(), buf.size())) {
    }
    ::shutdown(fd, SHUT_WR);
  };
  const Outcome r = RunConnections(relay, o.conns, client, backend);
  std::sort(lat_us.begin(), lat_us.end());
  const double n = static_cast<double>(lat_us.size());
  auto pct = [&](double p) { return lat_us.empty() ? 0.0 : lat_us[static_cast<size_t>(p * (n - 1))]; };
  PrintOutcome("pingpong", std::to_string(o.conns) + "-conns", o, r);
  std::printf("  requests=%.0f  req/s=%.0f  p50_us=%.1f  p99_us=%.1f  machine_cpu_s_per_100k=%.3f\n", n,
              n / o.seconds, pct(0.5), pct(0.99), r.cpu.machine_s / n * 1e5);
  return n > 0;
}

// ---- command line ----------------------------------------------------------

uint64_t ParseSize(const char* s) {
  char* end = nullptr;
  uint64_t v = std::strtoull(s, &end, 10);
  if (*end == 'K') v <<= 10;
  if (*end == 'M') v <<= 20;
  if (*end == 'G') v <<= 30;
  return v;
}

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    auto take = [&] { return v ? (++i, true) : false; };
    if (a == "--strparser") o.sockmap.strparser = true;
    else if (a == "--ingress") o.sockmap.ingress = true;
    else if (a == "--no-drain") o.sockmap.drain_before_eof = false;
    else if (a == "--redirect-empty") o.sockmap.redirect_empty = true;
    else if (a == "--relay" && take()) o.relay = v;
    else if (a == "--bpf" && take()) o.bpf = v;
    else if (a == "--scenario" && take()) o.scenario = v;
    else if (a == "--size" && take()) o.size = ParseSize(v);
    else if (a == "--streams" && take()) o.streams = std::atoi(v);
    else if (a == "--slow-us" && take()) o.slow_us = std::atoi(v);
    else if (a == "--sockbuf" && take()) o.sockmap.sockbuf = static_cast<int>(ParseSize(v));
    else if (a == "--seconds" && take()) o.seconds = std::atof(v);
    else if (a == "--conns" && take()) o.conns = std::atoi(v);
    else if (a == "--msg" && take()) o.msg = static_cast<size_t>(ParseSize(v));
    else {
      std::fprintf(stderr, "sockmap_relay: bad argument '%s' (see the file's header)\n", a.c_str());
      return false;
    }
  }
  return o.relay == "splice" || o.relay == "sockmap";
}

}  // namespace
}  // namespace sockmap_proto

int main(int argc, char** argv) {
  using namespace sockmap_proto;
  Options o;
  if (!ParseArgs(argc, argv, o)) return 2;
  std::unique_ptr<Relay> relay;
  if (o.relay == "splice") {
    relay.reset(NewSpliceRelay());
  } else {
    std::string error;
    relay.reset(NewSockmapRelay(o.bpf, o.sockmap, error));
    if (!relay) {
      std::fprintf(stderr, "sockmap_relay: %s\n", error.c_str());
      return 77;
    }
  }
  bool ok = false;
  if (o.scenario == "check") ok = CheckSuite(*relay, o);
  else if (o.scenario == "bulk") ok = Bulk(*relay, o);
  else if (o.scenario == "pingpong") ok = PingPong(*relay, o);
  else return 2;
  return ok ? 0 : 1;
}
