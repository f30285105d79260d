// bulk_client: the load generator of the comparison benchmark's bulk and idle
// workloads (bench/compare/run.sh). Every connection first sends a real TLS
// ClientHello carrying --sni (made by OpenSSL on memory BIOs, never completed),
// so a proxy can route it; then it speaks wire.h's protocol with byte_sink.
//
//   bulk_client upload   --connect IP:PORT --sni NAME --bytes N [--streams K]
//   bulk_client download --connect IP:PORT --sni NAME --bytes N [--streams K]
//   bulk_client idle     --connect IP:PORT --sni NAME --conns N
//
// upload/download: K parallel streams of N bytes each (one thread per stream);
// prints one JSON line: bytes delivered, seconds from the first connect to the
// last stream done, Gbit/s. Exit 1 if any stream fell short.
// idle: opens N connections one after another, waits for each to reach the
// sink (its 'R'), prints {"ready": N, ...}, then holds them all until stdin
// closes (or the process is killed). Exit 1 if any connection failed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench/compare/wire.h"

namespace {

using Clock = std::chrono::steady_clock;

// The bytes of a ClientHello for `sni`: run OpenSSL's client handshake on
// memory BIOs until it wants the server's answer, and take what it wrote.
std::string MakeClientHello(const std::string& sni) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rbio, wbio);  // ssl owns both now
  SSL_set_tlsext_host_name(ssl, sni.c_str());
  static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_set_alpn_protos(ssl, kAlpn, sizeof kAlpn);
  SSL_set_connect_state(ssl);
  int r = SSL_do_handshake(ssl);
  std::string hello;
  if (r <= 0 && SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ) {
    char* data = nullptr;
    long len = BIO_get_mem_data(wbio, &data);
    hello.assign(data, static_cast<size_t>(len));
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  if (hello.size() < bench::kRecordHeaderSize || static_cast<uint8_t>(hello[0]) != bench::kHandshakeRecord) {
    std::fprintf(stderr, "bulk_client: could not make a ClientHello\n");
    std::exit(2);
  }
  return hello;
}

bool WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Connects, with send/receive timeouts so a stuck proxy fails the run instead
// of hanging it, and sends the ClientHello plus the protocol header.
int Open(const sockaddr_in& addr, const std::string& hello, char mode, uint64_t n, int timeout_s) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  uint8_t header[bench::kHeaderSize];
  bench::MakeHeader(header, mode, n);
  std::string first = hello;
  first.append(reinterpret_cast<const char*>(header), sizeof header);
  if (!WriteAll(fd, first.data(), first.size())) {
    close(fd);
    return -1;
  }
  return fd;
}

struct StreamResult {
  uint64_t bytes = 0;
  bool ok = false;
  Clock::time_point done;
};

int RunBulk(bool upload, const sockaddr_in& addr, const std::string& hello, uint64_t bytes, int streams) {
  std::vector<StreamResult> results(static_cast<size_t>(streams));
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  Clock::time_point start;
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&, i] {
      StreamResult& res = results[static_cast<size_t>(i)];
      std::vector<char> buf(1 << 20, 'b');
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      int fd = Open(addr, hello, upload ? 'U' : 'D', bytes, 60);
      if (fd < 0) return;
      if (upload) {
        uint64_t left = bytes;
        while (left > 0) {
          size_t chunk = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
          if (!WriteAll(fd, buf.data(), chunk)) break;
          left -= chunk;
          res.bytes += chunk;
        }
        uint8_t ack[8];
        // Delivered = what the sink says it received.
        if (left == 0 && ReadAll(fd, ack, sizeof ack)) {
          res.bytes = bench::GetU64(ack);
          res.ok = res.bytes == bytes;
        } else {
          res.bytes = 0;
        }
      } else {
        for (;;) {
          ssize_t r = recv(fd, buf.data(), buf.size(), 0);
          if (r < 0 && errno == EINTR) continue;
          if (r <= 0) break;
          res.bytes += static_cast<uint64_t>(r);
        }
        res.ok = res.bytes == bytes;
      }
      res.done = Clock::now();
      close(fd);
    });
  }
  while (ready.load() < streams) std::this_thread::yield();
  start = Clock::now();
  go.store(true);
  for (auto& t : threads) t.join();

  uint64_t total = 0;
  bool ok = true;
  Clock::time_point last = start;
  for (const auto& r : results) {
    total += r.bytes;
    ok = ok && r.ok;
    if (r.ok) last = std::max(last, r.done);
  }
  double secs = std::chrono::duration<double>(last - start).count();
  double gbps = secs > 0 ? static_cast<double>(total) * 8 / secs / 1e9 : 0;
  std::printf("{\"mode\": \"%s\", \"streams\": %d, \"bytes_per_stream\": %llu, \"bytes\": %llu, "
              "\"seconds\": %.6f, \"gbps\": %.4f, \"ok\": %s}\n",
              upload ? "upload" : "download", streams, static_cast<unsigned long long>(bytes),
              static_cast<unsigned long long>(total), secs, gbps, ok ? "true" : "false");
  return ok ? 0 : 1;
}

int RunIdle(const sockaddr_in& addr, const std::string& hello, int conns) {
  std::vector<int> fds;
  fds.reserve(static_cast<size_t>(conns));
  auto start = Clock::now();
  std::string error;
  for (int i = 0; i < conns; ++i) {
    int fd = Open(addr, hello, 'I', 0, 10);
    char r = 0;
    if (fd < 0 || !ReadAll(fd, &r, 1) || r != 'R') {
      error = "connection " + std::to_string(i) + ": " + (fd < 0 ? std::strerror(errno) : "no answer from the sink");
      if (fd >= 0) close(fd);
      break;
    }
    fds.push_back(fd);
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("{\"ready\": %zu, \"seconds\": %.3f, \"ok\": %s, \"error\": \"%s\"}\n", fds.size(), secs,
              error.empty() ? "true" : "false", error.c_str());
  std::fflush(stdout);
  if (error.empty()) {
    char c;
    while (read(STDIN_FILENO, &c, 1) > 0) {
    }  // hold until stdin closes
  }
  for (int fd : fds) close(fd);
  return error.empty() ? 0 : 1;
}

int Usage() {
  std::fprintf(stderr,
               "usage: bulk_client upload|download --connect IP:PORT --sni NAME --bytes N [--streams K]\n"
               "       bulk_client idle --connect IP:PORT --sni NAME --conns N\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  std::string mode = argv[1];
  std::string connect_to, sni = "sink.mesh.test";
  uint64_t bytes = 1ull << 30;
  int streams = 1, conns = 1000;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--connect") connect_to = next();
    else if (a == "--sni") sni = next();
    else if (a == "--bytes") bytes = std::strtoull(next(), nullptr, 10);
    else if (a == "--streams") streams = std::max(1, std::atoi(next()));
    else if (a == "--conns") conns = std::max(1, std::atoi(next()));
    else return Usage();
  }
  sockaddr_in addr;
  if (!bench::ParseAddr(connect_to, addr)) return Usage();
  signal(SIGPIPE, SIG_IGN);
  const std::string hello = MakeClientHello(sni);
  if (mode == "upload" || mode == "download") return RunBulk(mode == "upload", addr, hello, bytes, streams);
  if (mode == "idle") return RunIdle(addr, hello, conns);
  return Usage();
}
