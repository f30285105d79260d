// Byte-exactness of uring_relay, run per backend (ctest uring_relay_byte_exact_*):
// `uring_relay_test <uring_relay binary> epoll|uring`. Starts the real relay
// binary in front of an upstream this test serves, then pushes seeded
// pseudo-random streams both ways through it and checks every byte and every
// EOF, in three half-close orders (RFC 9293 §3.6: a FIN closes one direction
// only; the other keeps flowing):
//   client-first: client sends, shuts; upstream reads to EOF, then answers, shuts
//   upstream-first: after the client's first bytes, upstream sends, shuts; the
//                   client reads to EOF, then sends the rest, shuts
//   both: both sides send and shut at once (8 parallel streams), readers slow
//         enough in places to make the relay queue and pause (backpressure)
// Exits 77 when the relay says the backend is unavailable here.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

enum class Order { kClientFirst, kUpstreamFirst, kBoth };

struct Scenario {
  const char* name;
  Order order;
  int streams;
  size_t up_bytes;    // client -> upstream, the 8-byte stream id included
  size_t down_bytes;  // upstream -> client
  bool slow_readers;  // small reads with pauses: the relay must queue and stop reading
};

std::mutex g_mu;
std::vector<std::string> g_errors;

void Fail(const std::string& what) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_errors.push_back(what);
}

// Byte i of stream `seed`: addressable at any offset, so both ends agree.
uint8_t ByteAt(uint64_t seed, size_t i) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ULL + (i / 8) + 1;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<uint8_t>(z >> (8 * (i % 8)));
}

uint64_t UpSeed(uint64_t id) { return 2 * id + 1; }
uint64_t DownSeed(uint64_t id) { return 2 * id + 2; }

void SendRange(int fd, uint64_t seed, size_t from, size_t to, const std::string& who) {
  std::vector<uint8_t> buf(64 * 1024);
  for (size_t off = from; off < to;) {
    size_t n = std::min(buf.size(), to - off);
    for (size_t i = 0; i < n; ++i) buf[i] = ByteAt(seed, off + i);
    for (size_t done = 0; done < n;) {
      ssize_t w = send(fd, buf.data() + done, n - done, MSG_NOSIGNAL);
      if (w <= 0) return Fail(who + ": send failed at byte " + std::to_string(off + done) + ": " + strerror(errno));
      done += w;
    }
    off += n;
  }
}

// Reads until EOF; checks every byte from `from` on and that exactly `total` came.
void ReadAll(int fd, uint64_t seed, size_t from, size_t total, bool slow, const std::string& who) {
  std::vector<uint8_t> buf(slow ? 4096 : 64 * 1024);
  size_t got = from;
  for (int reads = 0;; ++reads) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) return Fail(who + ": recv failed after " + std::to_string(got) + " bytes: " + strerror(errno));
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (got + i >= total || buf[i] != ByteAt(seed, got + i)) {
        return Fail(who + ": wrong byte at offset " + std::to_string(got + i));
      }
    }
    got += n;
    if (slow && reads % 64 == 0) usleep(1000);  // a slow reader, not a wait for state
  }
  if (got != total) Fail(who + ": EOF after " + std::to_string(got) + " of " + std::to_string(total) + " bytes");
}

void SetTimeouts(int fd) {
  timeval tv{60, 0};  // a hang fails the test instead of hanging it
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void SendId(int fd, uint64_t id) {
  uint8_t head[8];
  for (int i = 0; i < 8; ++i) head[i] = ByteAt(UpSeed(id), i);
  if (send(fd, head, 8, MSG_NOSIGNAL) != 8) Fail("client: cannot send the first bytes");
}

void Client(int port, uint64_t id, const Scenario& sc) {
  std::string who = std::string(sc.name) + " client " + std::to_string(id);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  SetTimeouts(fd);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) return Fail(who + ": connect failed");
  SendId(fd, id);
  if (sc.order == Order::kUpstreamFirst) {
    ReadAll(fd, DownSeed(id), 0, sc.down_bytes, sc.slow_readers, who);
    SendRange(fd, UpSeed(id), 8, sc.up_bytes, who);
    shutdown(fd, SHUT_WR);
  } else if (sc.order == Order::kClientFirst) {
    SendRange(fd, UpSeed(id), 8, sc.up_bytes, who);
    shutdown(fd, SHUT_WR);
    ReadAll(fd, DownSeed(id), 0, sc.down_bytes, sc.slow_readers, who);
  } else {
    std::thread w([&] { SendRange(fd, UpSeed(id), 8, sc.up_bytes, who); shutdown(fd, SHUT_WR); });
    ReadAll(fd, DownSeed(id), 0, sc.down_bytes, sc.slow_readers, who);
    w.join();
  }
  close(fd);
}

// One upstream connection: learns the stream id from the first 8 bytes.
void Upstream(int fd, const Scenario& sc) {
  SetTimeouts(fd);
  uint8_t head[8];
  if (recv(fd, head, 8, MSG_WAITALL) != 8) return Fail(std::string(sc.name) + " upstream: no stream id");
  uint64_t id = 0;
  for (; id < static_cast<uint64_t>(sc.streams); ++id) {
    bool match = true;
    for (int i = 0; i < 8; ++i) match = match && head[i] == ByteAt(UpSeed(id), i);
    if (match) break;
  }
  std::string who = std::string(sc.name) + " upstream " + std::to_string(id);
  if (id == static_cast<uint64_t>(sc.streams)) return Fail(who + ": unknown stream id");
  if (sc.order == Order::kUpstreamFirst) {
    SendRange(fd, DownSeed(id), 0, sc.down_bytes, who);
    shutdown(fd, SHUT_WR);
    ReadAll(fd, UpSeed(id), 8, sc.up_bytes, sc.slow_readers, who);
  } else if (sc.order == Order::kClientFirst) {
    ReadAll(fd, UpSeed(id), 8, sc.up_bytes, sc.slow_readers, who);
    SendRange(fd, DownSeed(id), 0, sc.down_bytes, who);
    shutdown(fd, SHUT_WR);
  } else {
    std::thread w([&] { SendRange(fd, DownSeed(id), 0, sc.down_bytes, who); shutdown(fd, SHUT_WR); });
    ReadAll(fd, UpSeed(id), 8, sc.up_bytes, sc.slow_readers, who);
    w.join();
  }
  close(fd);
}

void RunScenario(int relay_port, int upstream_fd, const Scenario& sc) {
  size_t before = g_errors.size();
  std::thread server([&] {
    std::vector<std::thread> conns;
    for (int i = 0; i < sc.streams; ++i) {
      int fd = accept(upstream_fd, nullptr, nullptr);
      if (fd < 0) return Fail(std::string(sc.name) + ": upstream accept failed");
      conns.emplace_back(Upstream, fd, std::cref(sc));
    }
    for (auto& t : conns) t.join();
  });
  std::vector<std::thread> clients;
  for (int i = 0; i < sc.streams; ++i) clients.emplace_back(Client, relay_port, i, std::cref(sc));
  for (auto& t : clients) t.join();
  server.join();
  printf("%s: %d stream(s), %zu B up, %zu B down: %s\n", sc.name, sc.streams, sc.up_bytes, sc.down_bytes,
         g_errors.size() == before ? "byte-exact" : "FAILED");
}

int ListenUpstream(int& port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) < 0 || listen(fd, 128) < 0) return -1;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// Starts the relay; returns its pid and the port from its "listening" line (-1: it exited, *status).
pid_t StartRelay(const char* bin, const char* backend, int upstream_port, int& port, int& status) {
  int out[2];
  if (pipe(out) < 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  std::string up = "127.0.0.1:" + std::to_string(upstream_port);
  const char* argv[] = {bin, "--backend", backend, "--upstream", up.c_str(), "--threads", "2", nullptr};
  pid_t pid = -1;
  if (posix_spawn(&pid, bin, &fa, nullptr, const_cast<char**>(argv), environ) != 0) return -1;
  close(out[1]);
  FILE* f = fdopen(out[0], "r");
  char line[128] = {0};
  if (fgets(line, sizeof line, f) == nullptr || sscanf(line, "listening 127.0.0.1:%d", &port) != 1) {
    waitpid(pid, &status, 0);
    return -1;
  }
  return pid;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: uring_relay_test <uring_relay> epoll|uring\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int upstream_port = 0, relay_port = 0, status = 0;
  int upstream_fd = ListenUpstream(upstream_port);
  pid_t relay = StartRelay(argv[1], argv[2], upstream_port, relay_port, status);
  if (relay < 0) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) return 77;
    fprintf(stderr, "FAIL: the relay did not start (status %d)\n", status);
    return 1;
  }
  const size_t MiB = 1 << 20;
  const Scenario scenarios[] = {
      {"client-first", Order::kClientFirst, 1, 16 * MiB, 24 * MiB, false},
      {"upstream-first", Order::kUpstreamFirst, 1, 24 * MiB, 16 * MiB, false},
      {"both, slow readers", Order::kBoth, 8, 4 * MiB, 4 * MiB, true},
      {"both, one tiny stream", Order::kBoth, 1, 8, 1, false},
  };
  for (const Scenario& sc : scenarios) RunScenario(relay_port, upstream_fd, sc);
  kill(relay, SIGTERM);
  waitpid(relay, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) g_errors.push_back("the relay did not exit cleanly");
  for (const auto& e : g_errors) fprintf(stderr, "FAIL: %s\n", e.c_str());
  return g_errors.empty() ? 0 : 1;
}
