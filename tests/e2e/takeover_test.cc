// Binary upgrades through the takeover socket (README "Upgrades"), against
// the real binary: a chain of upgrades under a steady rate of new mTLS
// connections and with long-lived streaming sessions, and the takeover
// sockets that must not be used (missing, stale, another user's).
// The model is HAProxy's seamless reload (`expose-fd listeners`, `-x`).
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <memory>
#include <mutex>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "base/io/fd_passing.h"
#include "base/io/http_server.h"
#include "gtest/gtest.h"
#include "tests/support/gateway_admin.h"
#include "tests/support/meshgate_process.h"
#include "tests/support/mesh_yaml.h"
#include "tests/support/pki.h"
#include "tests/support/tls_peers.h"
#include "tests/support/sanitizer.h"

namespace meshgate::testing {
namespace {

constexpr char kSni[] = "outbound_.8000_._.httpbin.bar.global";

std::string Se(uint16_t port) {
  return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
         "metadata: {name: httpbin, namespace: bar}\n"
         "spec:\n  hosts: [httpbin.bar.svc.cluster.local]\n"
         "  ports: [{number: 8000, name: http, protocol: HTTP}]\n  resolution: STATIC\n"
         "  endpoints: [{address: 127.0.0.1, ports: {http: " + std::to_string(port) + "}}]\n";
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

size_t FdCount(pid_t pid) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

// A running SHA-256 of one direction of a stream.
class Digest {
 public:
  Digest() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Digest() { EVP_MD_CTX_free(ctx_); }
  void Add(const std::string& bytes) { EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()); }
  std::string Final() {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
  }

 private:
  EVP_MD_CTX* ctx_;
};

// New mTLS connections at a steady rate, each echoing one message through
// the gateway and closing; counts every one that fails (refused, reset,
// handshake or echo failure).
//
// One pacer thread issues a ticket every 1/rate s (a fixed schedule, so a
// late tick is caught up rather than lost) and a pool of workers takes them:
// a slow handshake holds one worker, not the schedule. (The first version
// gave each of 8 threads its own schedule and ran its connections inline:
// 8 / the handshake's latency capped the rate at 87-114/s here.)
// Each worker resumes its previous TLS session (RFC 8446 section 2.2, a PSK
// from the backend's NewSessionTicket) when it has one: the gateway still
// sees a new TCP connection with a ClientHello to route by SNI, but neither
// end signs or verifies a certificate chain again, which was most of the CPU
// (client and backend both run in this process, on 2 shared cores: 164/s
// with 16 workers and only full handshakes, 201/s resuming). Every tenth
// connection of a worker is a full handshake still.
class ConnectionLoad {
 public:
  ConnectionLoad(SSL_CTX* ctx, uint16_t port, int per_second, int workers) : ctx_(ctx), port_(port) {
    pacer_ = std::thread([this, per_second] { Pace(per_second); });
    for (int t = 0; t < workers; ++t) threads_.emplace_back([this] { Work(); });
  }
  ~ConnectionLoad() { Stop(); }

  void Stop() {
    stop_ = true;
    if (pacer_.joinable()) pacer_.join();
    tickets_.release(static_cast<std::ptrdiff_t>(threads_.size()));
    for (auto& t : threads_) if (t.joinable()) t.join();
  }
  // Stops opening connections and waits until none is open.
  bool Pause() {
    paused_ = true;
    return WaitFor([&] { return in_flight_ == 0; }, 10000);
  }
  void Resume() { paused_ = false; }
  uint64_t attempted() const { return attempted_; }
  uint64_t failed() const { return failed_; }
  uint64_t resumed() const { return resumed_; }
  uint64_t full() const { return full_; }
  uint64_t backlog_max() const { return backlog_max_; }
  std::string errors() const {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }

 private:
  // Pacing the generator, not waiting for the gateway's state.
  void Pace(int per_second) {
    const auto interval = std::chrono::nanoseconds(1000000000LL / per_second);
    auto next = std::chrono::steady_clock::now();
    while (!stop_) {
      next += interval;
      std::this_thread::sleep_until(next);
      if (paused_) {
        next = std::chrono::steady_clock::now();  // no catch-up for a pause
        continue;
      }
      const uint64_t backlog = ++issued_ - taken_;
      if (backlog > backlog_max_) backlog_max_ = backlog;
      tickets_.release();
    }
  }

  void Work() {
    SSL_SESSION* session = nullptr;  // this worker's last resumable session
    uint64_t since_full = 0;
    while (true) {
      tickets_.acquire();
      if (stop_) break;
      ++taken_;
      ++in_flight_;
      if (!paused_) OneConnection(session, since_full);
      --in_flight_;
    }
    SSL_SESSION_free(session);
  }

  static constexpr uint64_t kFullEvery = 10;
  void OneConnection(SSL_SESSION*& session, uint64_t& since_full);
  void Fail(const std::string& why) {
    ++failed_;
    std::lock_guard<std::mutex> lock(mu_);
    if (errors_.size() < 2000) errors_ += why + "\n";
  }

  SSL_CTX* ctx_;
  uint16_t port_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<uint64_t> issued_{0};
  std::atomic<uint64_t> taken_{0};
  std::atomic<uint64_t> backlog_max_{0};
  std::atomic<uint64_t> attempted_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> resumed_{0};
  std::atomic<uint64_t> full_{0};
  std::counting_semaphore<> tickets_{0};
  mutable std::mutex mu_;
  std::string errors_;
  std::thread pacer_;
  std::vector<std::thread> threads_;
};

// One connection: TCP connect, TLS handshake (resuming `session` if set)
// with the SNI and Istio's ALPNs, one echo, a TLS half-close, and the
// backend's clean close back through the gateway.
void ConnectionLoad::OneConnection(SSL_SESSION*& session, uint64_t& since_full) {
  ++attempted_;
  const int fd = ConnectTcp(port_);
  if (fd < 0) return Fail(std::string("connect: ") + std::strerror(errno));
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  SSL* ssl = SSL_new(ctx_);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, kSni);
  std::string alpn;  // RFC 7301: length-prefixed names
  for (const std::string& name : TlsClient::IstioAlpn()) alpn += static_cast<char>(name.size()) + name;
  SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(alpn.data()), static_cast<unsigned>(alpn.size()));
  // Every kFullEvery-th connection of a worker is a full handshake.
  const bool resume = session != nullptr && ++since_full % kFullEvery != 0;
  if (resume) SSL_set_session(ssl, session);
  const std::string msg = "new-connection";
  char back[sizeof "new-connection" - 1];
  std::string why;
  size_t got = 0;
  if (SSL_connect(ssl) != 1) {
    why = "connect/handshake: " + std::string(std::strerror(errno));
  } else if (SSL_write(ssl, msg.data(), static_cast<int>(msg.size())) != static_cast<int>(msg.size())) {
    why = "write failed";
  } else {
    while (got < sizeof back) {
      const int n = SSL_read(ssl, back + got, static_cast<int>(sizeof back - got));
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    if (got != sizeof back || std::string(back, got) != msg) why = "echo failed";
  }
  if (why.empty()) {
    ++(SSL_session_reused(ssl) ? resumed_ : full_);
    // After the echo the backend's NewSessionTicket has been read.
    if (SSL_SESSION* next = SSL_get1_session(ssl); next != nullptr && SSL_SESSION_is_resumable(next)) {
      SSL_SESSION_free(session);
      session = next;
    } else {
      SSL_SESSION_free(next);
    }
    SSL_shutdown(ssl);
    ::shutdown(fd, SHUT_WR);
    char buf[16];
    const int n = SSL_read(ssl, buf, sizeof buf);
    if (n != 0 || SSL_get_error(ssl, n) != SSL_ERROR_ZERO_RETURN) why = "no clean close";
  }
  SSL_free(ssl);
  ::close(fd);
  if (!why.empty()) Fail(why);
}

// A long-lived TLS session streaming a deterministic pattern through the
// gateway to an echo backend, hashing both directions.
struct StreamingSession {
  StreamingSession(SSL_CTX* ctx, uint16_t port, uint8_t seed) : client(ctx, port, kSni, 10000), seed(seed) {}

  // Sends `bytes` more and reads them back; false when the stream broke.
  bool Stream(size_t bytes) {
    std::string chunk(bytes, '\0');
    for (size_t i = 0; i < bytes; ++i) chunk[i] = static_cast<char>(PatternByte(offset + i, seed));
    offset += bytes;
    sent.Add(chunk);
    std::string back(bytes, '\0');
    if (!client.WriteAll(chunk.data(), chunk.size()) || !client.ReadExactly(back.data(), back.size())) return false;
    received.Add(back);
    return true;
  }
  // Half-closes and expects the backend's clean close through the gateway.
  bool Finish() {
    client.HalfClose();
    char buf[16];
    return client.Read(buf, sizeof buf) == 0;
  }

  TlsClient client;
  uint8_t seed;
  uint64_t offset = 0;
  Digest sent;
  Digest received;
};

class TakeoverTest : public ::testing::Test {
 protected:
  TakeoverTest()
      : client_id_(pki_.Issue(1, "spiffe://cluster.local/ns/foo/sa/sleep")),
        server_id_(pki_.Issue(2, "spiffe://cluster.local/ns/bar/sa/httpbin")),
        client_ctx_(pki_.ClientContext(client_id_)),
        // The streaming sessions sit idle while the next generation starts
        // and takes over, which under ASan on a loaded machine took longer
        // than the backend's default 10 s idle close (CI: "session cut by
        // upgrade 3" was the backend hanging up, not the gateway).
        backend_(pki_, server_id_, {.mode = TlsBackend::Mode::kEcho, .idle_timeout_ms = 120000}),
        socket_(dir_.path() + "/upgrade.sock") {
    dir_.Write("mesh/httpbin.yaml", Se(backend_.port()));
    dir_.Write("mesh/gateway.yaml", kCrossNetworkGateway);
  }

  // The same meshgate.yaml for every generation: the takeover socket comes
  // from upgrade.socket; `extra` adds --takeover and the like.
  std::vector<std::string> Args(int threads, std::vector<std::string> extra = {}) {
    const std::string config = dir_.Write("gw-" + std::to_string(threads) + ".yaml",
                                          "threads: " + std::to_string(threads) +
                                              "\nmesh: [mesh/]\naccessLog: {path: off}\n"
                                              "upgrade: {socket: " + socket_ + "}\n");
    std::vector<std::string> args = {"--config", config, "--drain-time", "60s"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  void Echo(uint16_t port) {
    TlsClient client(client_ctx_.get(), port, kSni);
    ASSERT_TRUE(client.ok()) << client.error();
    const std::string msg = "ping";
    std::string back(msg.size(), '\0');
    ASSERT_TRUE(client.WriteAll(msg.data(), msg.size()));
    ASSERT_TRUE(client.ReadExactly(back.data(), back.size()));
    EXPECT_EQ(back, msg);
  }

  Pki pki_;
  Workload client_id_;
  Workload server_id_;
  SslCtxPtr client_ctx_;
  TempDir dir_;
  TlsBackend backend_;
  std::string socket_;
};

TEST_F(TakeoverTest, FiveUpgradesInARowUnderLoadDropNothing) {
  constexpr int kUpgrades = 5;
  constexpr int kSessions = 50;
  // New connections per second. Under a sanitizer the gateway peaks near
  // 100/s here (ASan; TSan is slower), so asking 200 from 16 workers only
  // queues handshakes until a client times out: there the load is 50/s from
  // 4 workers (at most 4 handshakes in flight), and its rate is reported,
  // not asserted; 0 failed connections and 0 cut sessions still are.
  constexpr int kRate = meshgate::testing::kSanitized ? 50 : 200;
  constexpr int kWorkers = meshgate::testing::kSanitized ? 4 : 16;
  auto current = std::make_unique<MeshgateProcess>(Args(2));
  ASSERT_TRUE(current->running()) << current->Log();
  ASSERT_TRUE(current->WaitForLog("takeover: serving")) << current->Log();
  const uint16_t port = current->port();
  const std::string readiness = current->readiness_address();
  const size_t baseline_fds = FdCount(current->pid());
  ConnectionLoad load(client_ctx_.get(), port, kRate, kWorkers);
  const auto start = std::chrono::steady_clock::now();
  uint64_t sessions_ok = 0;
  std::chrono::steady_clock::duration idle{};  // load paused for the fd counts

  for (int round = 1; round <= kUpgrades; ++round) {
    SCOPED_TRACE("upgrade " + std::to_string(round));
    std::vector<std::unique_ptr<StreamingSession>> sessions;
    for (int i = 0; i < kSessions; ++i) {
      sessions.push_back(std::make_unique<StreamingSession>(client_ctx_.get(), port, static_cast<uint8_t>(i)));
      ASSERT_TRUE(sessions.back()->client.ok()) << sessions.back()->client.error();
      ASSERT_TRUE(sessions.back()->Stream(4096));
    }
    const uint64_t before = load.attempted();
    auto next = std::make_unique<MeshgateProcess>(Args(2, {"--takeover", socket_}));
    ASSERT_TRUE(next->running()) << next->Log();
    ASSERT_TRUE(next->WaitForLog("takeover: complete", 1, 15000)) << next->Log();
    EXPECT_GT(load.attempted(), before) << "no new connection crossed the handover";
    ASSERT_TRUE(next->WaitForLog("takeover: serving", 1, 5000)) << next->Log();
    EXPECT_EQ(next->port(), port);
    EXPECT_EQ(next->readiness_address(), readiness);
    EXPECT_TRUE(current->WaitForLog("took over: stopped accepting")) << current->Log();
    EXPECT_EQ(io::HttpCall(readiness, "GET", "/healthz/ready", 3000).status, 200);
    // The sessions live on in the old process, byte-exact, to their end.
    for (auto& s : sessions) {
      ASSERT_TRUE(s->Stream(65536)) << "session cut by upgrade " << round << ": " << s->client.error();
      ASSERT_TRUE(s->Finish());
      EXPECT_EQ(s->sent.Final(), s->received.Final());
      ++sessions_ok;
    }
    EXPECT_EQ(current->WaitExit(20000), 0) << current->Log();
    EXPECT_NE(current->Log().find("drain: every session finished"), std::string::npos) << current->Log();
    // Nothing of the handover stays in the survivor: same descriptors as
    // the first generation had idle.
    const auto paused = std::chrono::steady_clock::now();
    ASSERT_TRUE(load.Pause());
    EXPECT_TRUE(WaitFor([&] { return FdCount(next->pid()) == baseline_fds; }, 10000))
        << FdCount(next->pid()) << " fds, baseline " << baseline_fds;
    load.Resume();
    idle += std::chrono::steady_clock::now() - paused;
    current = std::move(next);
  }
  load.Stop();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start - idle).count();
  const double rate = load.attempted() / seconds;
  std::printf("takeover: %d upgrades in %.1f s under load; %llu new connections (%.0f/s; %llu full mTLS handshakes, %llu resumed; "
              "backlog at most %llu), %llu failed; %llu sessions ok\n",
              kUpgrades, seconds, static_cast<unsigned long long>(load.attempted()), rate,
              static_cast<unsigned long long>(load.full()), static_cast<unsigned long long>(load.resumed()), static_cast<unsigned long long>(load.backlog_max()),
              static_cast<unsigned long long>(load.failed()), static_cast<unsigned long long>(sessions_ok));
  EXPECT_EQ(load.failed(), 0u) << load.errors();
  // The issue's load: 200 new connections/s, measured (10% slack for the
  // pacer's start and the pauses' edges).
  if (!meshgate::testing::kSanitized) EXPECT_GE(rate, 0.9 * kRate) << "the load generator fell behind";
  EXPECT_GT(load.full(), load.attempted() / 20) << "too few full handshakes";
  EXPECT_GT(load.resumed(), 0u) << "no session was resumed";
  EXPECT_EQ(sessions_ok, static_cast<uint64_t>(kUpgrades * kSessions));

  // The port stays guarded: a meshgate started without --takeover fails.
  MeshgateProcess second({"--config", dir_.Write("plain.yaml", "mesh: [mesh/]\n"), "--listen",
                          "127.0.0.1:" + std::to_string(port)});
  EXPECT_FALSE(second.running());
  EXPECT_NE(second.Log().find("cannot listen on 127.0.0.1:" + std::to_string(port) + ": Address already in use"),
            std::string::npos)
      << second.Log();
  Echo(port);
}

TEST_F(TakeoverTest, FewerWorkersAcceptFromEveryHandedSocketAndMoreJoinTheGroup) {
  auto first = std::make_unique<MeshgateProcess>(Args(2));
  ASSERT_TRUE(first->WaitForLog("takeover: serving")) << first->Log();
  const uint16_t port = first->port();
  auto fewer = std::make_unique<MeshgateProcess>(Args(1, {"--takeover", socket_}));
  ASSERT_TRUE(fewer->WaitForLog("takeover: complete", 1, 15000)) << fewer->Log();
  EXPECT_NE(fewer->Log().find("adopting 2 data listener(s) on 1 worker(s)"), std::string::npos) << fewer->Log();
  EXPECT_EQ(first->WaitExit(10000), 0);
  // Both reuseport members are kept and served: every connection lands.
  for (int i = 0; i < 40; ++i) Echo(port);
  ASSERT_TRUE(fewer->WaitForLog("takeover: serving")) << fewer->Log();
  auto more = std::make_unique<MeshgateProcess>(Args(3, {"--takeover", socket_}));
  ASSERT_TRUE(more->WaitForLog("takeover: complete", 1, 15000)) << more->Log();
  EXPECT_NE(more->Log().find("adopting 2 data listener(s) on 3 worker(s), 1 new member(s)"), std::string::npos)
      << more->Log();
  EXPECT_EQ(fewer->WaitExit(10000), 0);
  for (int i = 0; i < 40; ++i) Echo(port);
}

// The takeover counters on the metrics port (README "Metrics"): the old
// process's port answers for the successor after the handover, which counts
// what it received; a refused successor is counted by the old process.
TEST_F(TakeoverTest, CountersOnTheMetricsPortFollowTheHandover) {
  auto first = std::make_unique<MeshgateProcess>(Args(2));
  ASSERT_TRUE(first->WaitForLog("takeover: serving")) << first->Log();
  const std::string metrics = first->metrics_address();
  const auto failures = [&](const std::string& reason) {
    return Metric(metrics, "meshgate_takeover_failures_total", {{"reason", reason}});
  };
  EXPECT_EQ(Metric(metrics, "meshgate_takeover_completed_total"), 0);
  EXPECT_EQ(Metric(metrics, "meshgate_takeover_listeners_received_total", {{"role", "data"}}), 0);
  for (const char* reason : {"no_socket", "stale_socket", "foreign_socket", "broken_exchange", "address_changed",
                             "not_confirmed", "peer_uid", "busy", "draining", "abandoned"}) {
    EXPECT_EQ(failures(reason), 0) << reason;
  }

  auto next = std::make_unique<MeshgateProcess>(Args(2, {"--takeover", socket_}));
  ASSERT_TRUE(next->WaitForLog("takeover: complete", 1, 15000)) << next->Log();
  EXPECT_EQ(first->WaitExit(10000), 0) << first->Log();
  // The same address, now the successor's socket.
  EXPECT_EQ(next->metrics_address(), metrics);
  EXPECT_EQ(Metric(metrics, "meshgate_takeover_listeners_received_total", {{"role", "data"}}), 2);
  for (const char* role : {"metrics", "readiness", "admin"}) {
    EXPECT_EQ(Metric(metrics, "meshgate_takeover_listeners_received_total", {{"role", role}}), 1) << role;
  }
  EXPECT_EQ(Metric(metrics, "meshgate_takeover_listeners_handed_total", {{"role", "data"}}), 0);
  EXPECT_EQ(failures("not_confirmed"), 0);

  // A successor that connects while another is mid-exchange is refused and
  // counted by the process that keeps serving: hold the exchange open by
  // hand (receive the offer, never answer "taken").
  ASSERT_TRUE(next->WaitForLog("takeover: serving")) << next->Log();
  io::UnixConnection holder = io::ConnectUnixSeqpacket(socket_);
  ASSERT_TRUE(holder.fd.valid()) << holder.error;
  auto hello = io::ReceiveMessage(holder.fd.get(), 5000);
  ASSERT_TRUE(hello.ok()) << hello.status();
  EXPECT_NE(hello->text.find("listeners=5"), std::string::npos) << hello->text;
  io::UnixConnection second = io::ConnectUnixSeqpacket(socket_);
  ASSERT_TRUE(second.fd.valid()) << second.error;
  EXPECT_FALSE(io::ReceiveMessage(second.fd.get(), 5000).ok()) << "a second successor got an offer";
  ASSERT_TRUE(next->WaitForLog("is taking over already")) << next->Log();
  EXPECT_EQ(failures("busy"), 1);
  EXPECT_EQ(Metric(metrics, "meshgate_takeover_listeners_handed_total", {{"role", "data"}}), 2);
  holder.fd.Reset();  // the successor goes away before "taken"
  EXPECT_TRUE(WaitFor([&] { return failures("abandoned") == 1; }, 5000)) << next->Log();
  Echo(next->port());  // still serving
}

// scripts/upgrade.sh as a user runs it (README "Upgrades"): bash, the real
// script, ss(8) to see who serves the takeover socket. Output to `log`.
pid_t StartUpgradeScript(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> all = {"/bin/bash", MESHGATE_UPGRADE_SH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(out, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int WaitChild(pid_t pid, int timeout_ms) {
  int status = 0;
  const bool done = WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout_ms);
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A process that is gone or a zombie (not our child: upgrade.sh's setsid'd one).
bool Exited(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

TEST_F(TakeoverTest, UpgradeScriptUpgradesARunningGatewayWithoutRefusingAConnection) {
  auto old = std::make_unique<MeshgateProcess>(Args(2));
  ASSERT_TRUE(old->WaitForLog("takeover: serving")) << old->Log();
  const uint16_t port = old->port();
  const std::string readiness = old->readiness_address();
  const std::string metrics = old->metrics_address();
  ConnectionLoad load(client_ctx_.get(), port, 200, 16);
  std::vector<std::unique_ptr<StreamingSession>> sessions;
  for (int i = 0; i < 5; ++i) {
    sessions.push_back(std::make_unique<StreamingSession>(client_ctx_.get(), port, static_cast<uint8_t>(i)));
    ASSERT_TRUE(sessions.back()->client.ok()) << sessions.back()->client.error();
    ASSERT_TRUE(sessions.back()->Stream(4096));
  }
  const uint64_t before = load.attempted();

  // The new process gets ephemeral ops ports on 127.0.0.1 like the old one:
  // a configured port 0 matches the handed socket's port.
  std::vector<std::string> args = {"--socket", socket_, "--timeout", "60", "--", MESHGATE_BIN};
  for (const std::string& a : Args(2, {"--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--readiness",
                                       "127.0.0.1:0", "--admin", "127.0.0.1:0", "--drain-delay", "0s"})) {
    args.push_back(a);
  }
  const std::string log = dir_.path() + "/upgrade.log";
  const int code = WaitChild(StartUpgradeScript(args, log), 90000);
  const std::string out = ReadText(log);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(upgrade\.sh: pid (\d+) took over from pid (\d+))"))) << out;
  const pid_t fresh = std::stoi(m[1]);
  struct Reap {
    pid_t pid;
    ~Reap() {
      kill(pid, SIGTERM);
      if (!WaitFor([&] { return Exited(pid); }, 10000)) kill(pid, SIGKILL);
    }
  } reap{fresh};
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(std::stoi(m[2]), old->pid()) << out;
  EXPECT_NE(out.find("takeover: complete: pid " + std::to_string(old->pid())), std::string::npos) << out;

  // The new process serves the same ports; the old one drains and exits.
  EXPECT_TRUE(old->WaitForLog("took over: stopped accepting")) << old->Log();
  Echo(port);
  EXPECT_EQ(io::HttpCall(readiness, "GET", "/healthz/ready", 3000).status, 200);
  EXPECT_EQ(Metric(metrics, "meshgate_takeover_listeners_received_total", {{"role", "data"}}), 2);
  for (auto& s : sessions) {
    ASSERT_TRUE(s->Stream(65536)) << "a session was cut by the upgrade";
    ASSERT_TRUE(s->Finish());
    EXPECT_EQ(s->sent.Final(), s->received.Final());
  }
  EXPECT_EQ(old->WaitExit(20000), 0) << old->Log();
  EXPECT_NE(old->Log().find("drain: every session finished"), std::string::npos) << old->Log();
  EXPECT_FALSE(Exited(fresh)) << out;
  load.Stop();
  EXPECT_GT(load.attempted(), before) << "no new connection ran during the upgrade";
  EXPECT_EQ(load.failed(), 0u) << load.errors();
}

TEST_F(TakeoverTest, UpgradeScriptSaysWhenNoGatewayServesTheSocket) {
  const std::string log = dir_.path() + "/upgrade.log";
  const int code = WaitChild(StartUpgradeScript({"--socket", socket_, "--", MESHGATE_BIN}, log), 30000);
  EXPECT_EQ(code, 1);
  EXPECT_NE(ReadText(log).find("upgrade.sh: no process listens on " + socket_), std::string::npos) << ReadText(log);
}

// Each bad takeover socket: a log line naming the cause, then a normal start.
TEST_F(TakeoverTest, AMissingSocketMeansANormalStart) {
  MeshgateProcess gw(Args(1, {"--takeover", dir_.path() + "/none.sock"}));
  ASSERT_TRUE(gw.running()) << gw.Log();
  EXPECT_NE(gw.Log().find("takeover: not taking over: no socket at " + dir_.path() + "/none.sock"), std::string::npos)
      << gw.Log();
  EXPECT_NE(gw.Log().find("starting with a normal bind"), std::string::npos);
  Echo(gw.port());
  EXPECT_EQ(Metric(gw.metrics_address(), "meshgate_takeover_failures_total", {{"reason", "no_socket"}}), 1);
}

int BoundUnixSocket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  return fd;
}

TEST_F(TakeoverTest, AStaleSocketMeansANormalStartAndIsReplaced) {
  ::close(BoundUnixSocket(socket_));  // the file stays; nobody listens
  MeshgateProcess gw(Args(1, {"--takeover", socket_}));
  ASSERT_TRUE(gw.running()) << gw.Log();
  EXPECT_NE(gw.Log().find(socket_ + " is stale: nobody listens on it"), std::string::npos) << gw.Log();
  Echo(gw.port());
  EXPECT_EQ(Metric(gw.metrics_address(), "meshgate_takeover_failures_total", {{"reason", "stale_socket"}}), 1);
  // Our own stale socket is replaced by a live one.
  ASSERT_TRUE(gw.WaitForLog("takeover: serving")) << gw.Log();
  struct stat st {};
  ASSERT_EQ(lstat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(TakeoverTest, ASocketOfAnotherUserIsNeitherUsedNorReplaced) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown the socket to nobody";
  const int fd = BoundUnixSocket(socket_);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::chown(socket_.c_str(), 65534, 65534), 0);
  MeshgateProcess gw(Args(1, {"--takeover", socket_}));
  ASSERT_TRUE(gw.running()) << gw.Log();
  EXPECT_NE(gw.Log().find(socket_ + " is owned by uid 65534, neither us (0) nor root"), std::string::npos)
      << gw.Log();
  Echo(gw.port());
  EXPECT_EQ(Metric(gw.metrics_address(), "meshgate_takeover_failures_total", {{"reason", "foreign_socket"}}), 1);
  ASSERT_TRUE(gw.WaitForLog("takeover: cannot serve upgrades at")) << gw.Log();
  EXPECT_NE(gw.Log().find("owned by uid 65534, not ours (0): refusing to replace it"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(lstat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  ::close(fd);
}

}  // namespace
}  // namespace meshgate::testing
