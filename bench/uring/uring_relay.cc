// The prototype relay (issue 17, part 1): `uring_relay --backend epoll|uring
// --upstream 127.0.0.1:PORT [--listen 127.0.0.1:0] [--threads 2]`. Each
// thread owns one Loop and one SO_REUSEPORT listener (meshgate's worker
// model), so 2 threads = the 2 cores of the bench machine. Prints
// "listening 127.0.0.1:PORT" once every listener is bound; on SIGTERM/SIGINT
// prints its loop counters as one JSON line on stderr and exits 0. Exit 77:
// the backend is unavailable here (no io_uring).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "loop.h"
#include "relay.h"

namespace {

std::atomic<bool> g_stop{false};

struct Options {
  std::string backend = "epoll";
  sockaddr_in listen{};
  sockaddr_in upstream{};
  int threads = 2;
};

bool ParseAddr(const std::string& text, sockaddr_in& out) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  out = {};
  out.sin_family = AF_INET;
  char* end = nullptr;
  long port = strtol(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535) return false;
  out.sin_port = htons(static_cast<uint16_t>(port));
  return inet_pton(AF_INET, text.substr(0, colon).c_str(), &out.sin_addr) == 1;
}

[[noreturn]] void Usage(const char* why) {
  fprintf(stderr, "uring_relay: %s\nusage: uring_relay --backend epoll|uring --upstream IP:PORT "
                  "[--listen IP:PORT] [--threads N]\n", why);
  exit(2);
}

Options Parse(int argc, char** argv) {
  Options o;
  ParseAddr("127.0.0.1:0", o.listen);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) Usage(("missing value for " + a).c_str());
    std::string v = argv[++i];
    if (a == "--backend" && (v == "epoll" || v == "uring")) {
      o.backend = v;
    } else if (a == "--listen") {
      if (!ParseAddr(v, o.listen)) Usage("bad --listen address");
    } else if (a == "--upstream") {
      if (!ParseAddr(v, o.upstream)) Usage("bad --upstream address");
    } else if (a == "--threads") {
      o.threads = atoi(v.c_str());
      if (o.threads < 1 || o.threads > 64) Usage("--threads wants 1..64");
    } else {
      Usage(("unknown or bad argument " + a + " " + v).c_str());
    }
  }
  if (o.upstream.sin_port == 0) Usage("--upstream is required");
  return o;
}

// One SO_REUSEPORT listener per thread; the first picks the port when it is 0.
// TCP_NODELAY is set here once: Linux copies it to every accepted socket.
std::vector<int> Listeners(Options& o) {
  std::vector<int> fds;
  for (int i = 0; i < o.threads; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&o.listen), sizeof o.listen) < 0 || listen(fd, 4096) < 0) {
      perror("uring_relay: bind/listen");
      exit(1);
    }
    socklen_t len = sizeof o.listen;
    getsockname(fd, reinterpret_cast<sockaddr*>(&o.listen), &len);
    fds.push_back(fd);
  }
  return fds;
}

std::unique_ptr<uring_proto::Loop> MakeLoop(const std::string& backend) {
  if (backend == "epoll") return uring_proto::NewEpollLoop();
  std::string error;
  auto loop = uring_proto::NewUringLoop(error);
  if (!loop) {
    fprintf(stderr, "uring_relay: io_uring unavailable: %s\n", error.c_str());
    exit(77);
  }
  return loop;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = Parse(argc, argv);
  MakeLoop(o.backend);  // fail early (77) when the backend cannot run here
  std::vector<int> fds = Listeners(o);
  struct sigaction sa{};
  sa.sa_handler = [](int) { g_stop.store(true); };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::vector<uring_proto::LoopStats> stats(o.threads);
  std::vector<std::thread> threads;
  for (int i = 0; i < o.threads; ++i) {
    threads.emplace_back([&, i] {
      auto loop = MakeLoop(o.backend);  // in its thread: SINGLE_ISSUER binds the ring to it
      loop->Listen(fds[i], [&l = *loop, &o](int fd) { uring_proto::StartSession(l, fd, o.upstream); });
      loop->Run(g_stop);
      stats[i] = loop->Stats();
    });
  }
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &o.listen.sin_addr, ip, sizeof ip);
  printf("listening %s:%d\n", ip, ntohs(o.listen.sin_port));
  fflush(stdout);
  for (auto& t : threads) t.join();
  uring_proto::LoopStats sum;
  for (auto& s : stats) {
    sum.waits += s.waits, sum.submits += s.submits, sum.completions += s.completions, sum.sessions += s.sessions;
  }
  fprintf(stderr, "{\"backend\": \"%s\", \"sessions\": %llu, \"waits\": %llu, \"extra_submits\": %llu, "
          "\"completions\": %llu}\n", o.backend.c_str(), (unsigned long long)sum.sessions,
          (unsigned long long)sum.waits, (unsigned long long)sum.submits, (unsigned long long)sum.completions);
  return 0;
}
