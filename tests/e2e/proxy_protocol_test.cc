// PROXY protocol end to end (README "PROXY protocol"; the header format is
// https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt): the real
// meshgate binary behind a real HAProxy (`send-proxy-v2`, as bench/compare
// installs it), real mTLS from a client bound to 127.0.0.2, and a backend that
// reads the v2 header meshgate sends it (upstreamProxyProtocol) before its TLS
// handshake, so the backend itself says which client it sees. Raw sockets
// send v1 headers, spoofed headers from untrusted sources and broken ones.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/io/http_server.h"
#include "gtest/gtest.h"
#include "sni/proxy_protocol.h"
#include "tests/support/gateway_admin.h"
#include "tests/support/meshgate_process.h"
#include "tests/support/mesh_yaml.h"
#include "tests/support/pki.h"
#include "tests/support/tls_peers.h"

namespace meshgate::testing {
namespace {

constexpr char kSni[] = "outbound_.8000_._.httpbin.bar.global";
constexpr char kLoadBalancer[] = "127.0.0.3";  // HAProxy's source to meshgate: the trusted one

std::string Mesh(uint16_t port) {
  return "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\n"
         "metadata: {name: httpbin, namespace: bar}\n"
         "spec:\n  hosts: [httpbin.bar.svc.cluster.local]\n  location: MESH_INTERNAL\n"
         "  ports: [{number: 8000, name: http, protocol: HTTP}]\n  resolution: STATIC\n"
         "  endpoints: [{address: 127.0.0.1, ports: {http: " +
         std::to_string(port) + "}}]\n---\n" + kCrossNetworkGateway;
}

sockaddr_in Loopback(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

// A TCP connection to 127.0.0.1:port from `source`; its local port in *local.
int ConnectFrom(const std::string& source, uint16_t port, uint16_t* local = nullptr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from = Loopback(source, 0), to = Loopback("127.0.0.1", port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof(from)) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
    ADD_FAILURE() << "connect from " << source << ": " << std::strerror(errno);
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  socklen_t len = sizeof(from);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&from), &len);
  if (local != nullptr) *local = ntohs(from.sin_port);
  return fd;
}

bool SendAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Whether the peer closed `fd` (EOF or RST) within timeout_ms.
bool ClosedByPeer(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return false;
  char byte;
  return ::recv(fd, &byte, 1, MSG_DONTWAIT) <= 0;
}

// mTLS with Istio's ALPNs over an already connected fd (after whatever
// bytes the test wrote first). Echoes one message; true when it came back.
bool TlsEchoOver(SSL_CTX* ctx, int fd, const std::string& message) {
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, kSni);
  std::string alpn;
  for (const std::string& p : TlsClient::IstioAlpn()) alpn += static_cast<char>(p.size()) + p;
  SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(alpn.data()), static_cast<unsigned>(alpn.size()));
  bool ok = SSL_connect(ssl) == 1 && SSL_write(ssl, message.data(), static_cast<int>(message.size())) > 0;
  std::string back(message.size(), '\0');
  size_t got = 0;
  while (ok && got < back.size()) {
    const int n = SSL_read(ssl, back.data() + got, static_cast<int>(back.size() - got));
    ok = n > 0;
    if (ok) got += static_cast<size_t>(n);
  }
  SSL_shutdown(ssl);
  SSL_free(ssl);
  return ok && back == message;
}

// A TLS echo backend that, like a server configured with `accept-proxy`,
// reads the PROXY v2 header meshgate sends before the ClientHello and
// records the client it carries.
class ProxiedTlsBackend {
 public:
  ProxiedTlsBackend(const Pki& pki, const Workload& identity) : ctx_(pki.ServerContext(identity)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Loopback("127.0.0.1", 0);
    socklen_t len = sizeof(a);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "backend listen: " << std::strerror(errno);
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~ProxiedTlsBackend() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  std::vector<std::string> clients() const {  // "ip:port" from each header
    std::lock_guard lock(mu_);
    return clients_;
  }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++accepted_;
      Serve(fd);  // one at a time: the tests' sessions are sequential
      ::close(fd);
    }
  }
  // Reads exactly the header (16 bytes, then the length they give), so the
  // TLS handshake starts at the right byte.
  void Serve(int fd) {
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    std::vector<uint8_t> header(sni::kProxyV2FixedBytes);
    if (!ReadExactly(fd, header.data(), header.size())) return;
    const size_t len = (size_t{header[14]} << 8) | header[15];
    header.resize(header.size() + len);
    if (!ReadExactly(fd, header.data() + sni::kProxyV2FixedBytes, len)) return;
    const sni::ProxyParseResult r = sni::ParseProxyHeader(header);
    if (r.status != sni::ProxyParseStatus::kDone) {
      std::lock_guard lock(mu_);
      clients_.push_back("unparsable header");
      return;
    }
    char ip[INET6_ADDRSTRLEN];
    ::inet_ntop(AF_INET, r.header.src_ip.data() + 12, ip, sizeof(ip));
    {
      std::lock_guard lock(mu_);
      clients_.push_back(std::string(ip) + ":" + std::to_string(r.header.src_port));
    }
    SSL* ssl = SSL_new(ctx_.get());
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1) {
      char buf[4096];
      for (int n; (n = SSL_read(ssl, buf, sizeof(buf))) > 0;) SSL_write(ssl, buf, n);
    }
    SSL_free(ssl);
  }
  static bool ReadExactly(int fd, uint8_t* out, size_t n) {
    while (n > 0) {
      const ssize_t got = ::recv(fd, out, n, 0);
      if (got <= 0) return false;
      out += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }

  SslCtxPtr ctx_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  mutable std::mutex mu_;
  std::vector<std::string> clients_;
  std::thread thread_;
};

// HAProxy in TCP mode in front of meshgate: `send-proxy-v2` from source
// 127.0.0.3. Its listener is a socket this test bound to port 0 and passes
// as `bind fd@3` (HAProxy's inherited-fd address), so the port is never
// probed and connections queue before HAProxy has even started.
class Haproxy {
 public:
  Haproxy(const TempDir& dir, uint16_t meshgate_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);  // no CLOEXEC: HAProxy inherits it
    sockaddr_in a = Loopback("127.0.0.1", 0);
    socklen_t len = sizeof(a);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), len);
    ::listen(listen_fd_, 64);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    const std::string cfg = dir.Write(
        "haproxy.cfg",
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
        "frontend fe\n  bind fd@3\n  default_backend be\n"
        "backend be\n  server gw 127.0.0.1:" + std::to_string(meshgate_port) + " send-proxy-v2 source " +
            kLoadBalancer + "\n");
    log_ = dir.path() + "/haproxy.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(listen_fd_, 3);
      const int out = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::execl(kBinary, kBinary, "-db", "-f", cfg.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Haproxy() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(listen_fd_);
  }
  static bool Installed() { return ::access(kBinary, X_OK) == 0; }
  uint16_t port() const { return port_; }
  std::string Log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  static constexpr const char* kBinary = "/usr/sbin/haproxy";  // Debian's haproxy package
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  std::string log_;
};

class ProxyProtocolTest : public ::testing::Test {
 protected:
  ProxyProtocolTest()
      : client_ctx_(pki_.ClientContext(pki_.Issue(1, "spiffe://cluster.local/ns/foo/sa/sleep"))),
        backend_(pki_, pki_.Issue(2, "spiffe://cluster.local/ns/bar/sa/httpbin", {"httpbin.bar.svc.cluster.local"})) {}

  void Start(const std::string& extra = "") {
    dir_.Write("mesh.yaml", Mesh(backend_.port()));
    const std::string config = dir_.Write(
        "gw.yaml", std::string("threads: 2\nmesh: [mesh.yaml]\nproxyProtocol: {accept: [\"") + kLoadBalancer +
                       "/32\"]}\nupstreamProxyProtocol: [{host: \"*.bar.svc.cluster.local\", version: 2}]\n" + extra);
    gw_ = std::make_unique<MeshgateProcess>(std::vector<std::string>{"--config", config});
    ASSERT_TRUE(gw_->running()) << gw_->Log();
    metrics_ = gw_->metrics_address();
  }
  double Refused(const std::string& reason) const {
    return Metric(metrics_, "meshgate_connections_refused_total", {{"reason", reason}});
  }
  // Sends `bytes` from `source` and expects meshgate to close the connection.
  void ExpectRefused(const std::string& source, std::string_view bytes, const std::string& reason, double count) {
    const int fd = ConnectFrom(source, gw_->port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, bytes));
    EXPECT_TRUE(ClosedByPeer(fd, 5000)) << reason;
    ::close(fd);
    EXPECT_TRUE(WaitFor([&] { return Refused(reason) == count; }, 5000))
        << reason << ": " << Refused(reason) << "\n" << gw_->Log();
  }

  Pki pki_;
  SslCtxPtr client_ctx_;
  ProxiedTlsBackend backend_;
  TempDir dir_;
  std::unique_ptr<MeshgateProcess> gw_;
  std::string metrics_;
};

std::string V1(const std::string& client_ip, uint16_t client_port) {
  return "PROXY TCP4 " + client_ip + " 127.0.0.1 " + std::to_string(client_port) + " 15443\r\n";
}

// client 127.0.0.2 -> HAProxy (send-proxy-v2, from 127.0.0.3) -> meshgate
// -> backend: the backend's own PROXY header names 127.0.0.2 and the
// client's port, and the access log has both the client and the balancer.
TEST_F(ProxyProtocolTest, HaproxySendProxyV2CarriesTheClientToTheBackend) {
  if (!Haproxy::Installed()) GTEST_SKIP() << "haproxy is not installed (scripts/install-deps.sh installs it)";
  Start();
  Haproxy haproxy(dir_, gw_->port());
  uint16_t client_port = 0;
  const int fd = ConnectFrom("127.0.0.2", haproxy.port(), &client_port);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(TlsEchoOver(client_ctx_.get(), fd, "through haproxy")) << gw_->Log() << haproxy.Log();
  ::close(fd);
  const std::string client = "127.0.0.2:" + std::to_string(client_port);
  EXPECT_EQ(backend_.clients(), std::vector<std::string>{client});
  ASSERT_TRUE(WaitFor([&] { return gw_->Stdout().find(client) != std::string::npos; }, 5000)) << gw_->Stdout();
  const std::string log = gw_->Stdout();
  EXPECT_NE(log.find("\"downstream_remote_address\":\"" + client + "\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"downstream_direct_remote_address\":\"127.0.0.3:"), std::string::npos) << log;
}

// A v1 header over a raw socket from the trusted source, then real TLS on
// the same connection: the backend sees the address the header carried.
TEST_F(ProxyProtocolTest, V1HeaderFromTrustedSource) {
  Start();
  const int fd = ConnectFrom(kLoadBalancer, gw_->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, V1("192.0.2.10", 40123)));
  EXPECT_TRUE(TlsEchoOver(client_ctx_.get(), fd, "v1")) << gw_->Log();
  ::close(fd);
  EXPECT_EQ(backend_.clients(), std::vector<std::string>{"192.0.2.10:40123"});
}

// A LOCAL header (a balancer's health check) keeps the real peer.
TEST_F(ProxyProtocolTest, V2LocalKeepsThePeer) {
  Start();
  const int fd = ConnectFrom(kLoadBalancer, gw_->port());
  ASSERT_GE(fd, 0);
  const char local[] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
  ASSERT_TRUE(SendAll(fd, std::string_view(local, sizeof(local) - 1)));
  EXPECT_TRUE(TlsEchoOver(client_ctx_.get(), fd, "local")) << gw_->Log();
  ::close(fd);
  ASSERT_EQ(backend_.clients().size(), 1u);
  EXPECT_EQ(backend_.clients()[0].rfind("127.0.0.3:", 0), 0u) << backend_.clients()[0];
}

// A spoofed header from a source not in proxyProtocol.accept is refused by
// name and counted, v1 and v2 alike, and nothing is dialled.
TEST_F(ProxyProtocolTest, SpoofedHeaderFromUntrustedSourceIsRefused) {
  Start();
  ExpectRefused("127.0.0.4", V1("10.9.9.9", 1), "proxy_protocol_untrusted", 1);
  const auto v2 = sni::EncodeProxyV2({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 9, 9, 9}, 1,
                                     {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 127, 0, 0, 1}, 15443);
  ExpectRefused("127.0.0.1", std::string_view(reinterpret_cast<const char*>(v2.data()), v2.size()),
                "proxy_protocol_untrusted", 2);
  EXPECT_EQ(backend_.accepted(), 0);
  EXPECT_TRUE(WaitFor([&] { return gw_->Stdout().find("refused_proxy_protocol_untrusted") != std::string::npos; }));
  // An untrusted source without a header is served as before.
  TlsClient direct(client_ctx_.get(), gw_->port(), kSni);
  EXPECT_TRUE(direct.ok()) << direct.error();
}

// From the trusted source a header is required, and a broken one is refused
// by its reason; nothing is dialled for any.
TEST_F(ProxyProtocolTest, TrustedSourceMustSendAWellFormedHeader) {
  Start();
  ExpectRefused(kLoadBalancer, std::string_view("\x16\x03\x01\x00\x05hello", 10), "proxy_protocol_missing", 1);
  ExpectRefused(kLoadBalancer, "PROXY TCP4 192.0.2.300 127.0.0.1 1 2\r\n", "proxy_protocol_bad_v1_field", 1);
  ExpectRefused(kLoadBalancer, "PROXY " + std::string(120, '1'), "proxy_protocol_oversized", 1);
  ExpectRefused(kLoadBalancer, std::string_view("\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0C", 16),
                "proxy_protocol_bad_version", 1);
  // Closed half way through a header.
  const int fd = ConnectFrom(kLoadBalancer, gw_->port());
  ASSERT_TRUE(SendAll(fd, "PROXY TCP4 192.0.2.1"));
  ::shutdown(fd, SHUT_WR);
  EXPECT_TRUE(ClosedByPeer(fd, 5000));
  ::close(fd);
  EXPECT_TRUE(WaitFor([&] { return Refused("proxy_protocol_truncated") == 1; })) << gw_->Log();
  EXPECT_EQ(backend_.accepted(), 0);
}

// limits.perSourceConnections counts the client the header carries, not the
// balancer: two clients behind one balancer get one connection each.
TEST_F(ProxyProtocolTest, PerSourceLimitCountsTheCarriedClient) {
  Start("limits: {perSourceConnections: 1}\ntimeouts: {hello: 60s}\n");
  const int a = ConnectFrom(kLoadBalancer, gw_->port());
  ASSERT_TRUE(SendAll(a, V1("192.0.2.10", 1000)));
  const int b = ConnectFrom(kLoadBalancer, gw_->port());
  ASSERT_TRUE(SendAll(b, V1("192.0.2.11", 1001)));
  // Both headers read and counted before the third arrives (two workers).
  ASSERT_TRUE(WaitFor([&] { return Metric(metrics_, "meshgate_overload_source_addresses", {}) == 2; }))
      << gw_->Log();
  const int c = ConnectFrom(kLoadBalancer, gw_->port());
  ASSERT_TRUE(SendAll(c, V1("192.0.2.10", 1002)));
  EXPECT_TRUE(ClosedByPeer(c, 5000)) << "a second connection from 192.0.2.10";
  EXPECT_TRUE(WaitFor([&] { return Refused("per_source") == 1; })) << gw_->Log();
  EXPECT_FALSE(ClosedByPeer(a, 100));
  EXPECT_FALSE(ClosedByPeer(b, 100));
  for (int fd : {a, b, c}) ::close(fd);
  EXPECT_EQ(backend_.accepted(), 0);
}

}  // namespace
}  // namespace meshgate::testing
