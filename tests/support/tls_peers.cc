#include "tests/support/tls_peers.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

namespace meshgate::testing {
namespace {

void SetTimeouts(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A listening socket on 127.0.0.1 with a kernel-chosen port.
int ListenLoopback(uint16_t& port, const std::string& ip = "127.0.0.1") {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;  // a backend restarted on its old port must not wait out TIME_WAIT
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = Loopback(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 128) != 0) {
    throw std::runtime_error("backend bind/listen on 127.0.0.1 failed");
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

std::string SslErrors() {
  std::string out;
  char buf[256];
  while (unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "connection closed" : out;
}

// Peers write to sockets the other side may have closed: EPIPE, not death.
const bool kSigpipeIgnored = [] {
  signal(SIGPIPE, SIG_IGN);
  return true;
}();

}  // namespace

TlsBackend::TlsBackend(const Pki& pki, const Workload& identity, Options options)
    : options_(options), ctx_(pki.ServerContext(identity)) {
  port_ = options.port;
  listen_fd_ = ListenLoopback(port_);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

TlsBackend::~TlsBackend() {
  stop_ = true;
  acceptor_.join();
  ::close(listen_fd_);
  for (auto& t : threads_) t.join();
}

std::vector<TlsBackend::Observed> TlsBackend::observed() const {
  std::lock_guard lock(mu_);
  return observed_;
}

void TlsBackend::AcceptLoop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++accepted_;
    threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void TlsBackend::Serve(int fd) {
  SetTimeouts(fd, options_.idle_timeout_ms);
  SSL* ssl = SSL_new(ctx_.get());
  SSL_set_fd(ssl, fd);
  Observed seen;
  if (SSL_accept(ssl) == 1) {
    ++handshakes_;
    if (X509* peer = SSL_get1_peer_certificate(ssl)) {
      seen.peer_spiffe = UriSan(peer);
      X509_free(peer);
    }
    if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) seen.sni = sni;
    std::vector<uint8_t> buf(64 * 1024);
    bool clean = false;
    seen.payload_ok = true;
    for (;;) {
      const int n = SSL_read(ssl, buf.data(), static_cast<int>(buf.size()));
      if (n <= 0) {
        clean = SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN;
        break;
      }
      if (options_.mode == Mode::kCloseAfterFirstRead) break;
      for (int i = 0; i < n; ++i) {
        if (buf[i] != PatternByte(seen.bytes_received + i, 1)) seen.payload_ok = false;
      }
      seen.bytes_received += static_cast<uint64_t>(n);
      if (options_.mode == Mode::kEcho && SSL_write(ssl, buf.data(), n) != n) break;
    }
    if (options_.mode == Mode::kBulk && clean) {
      // After close_notify the client also shut its TCP write side; a
      // gateway that propagates half-close delivers that FIN to us.
      pollfd p{fd, POLLIN, 0};
      char c;
      seen.saw_tcp_fin = ::poll(&p, 1, 3000) == 1 && ::recv(fd, &c, 1, 0) == 0;
      std::vector<uint8_t> out(16 * 1024);
      for (uint64_t sent = 0; sent < options_.reply_bytes;) {
        const size_t chunk = std::min<uint64_t>(out.size(), options_.reply_bytes - sent);
        for (size_t i = 0; i < chunk; ++i) out[i] = PatternByte(sent + i, 2);
        if (SSL_write(ssl, out.data(), static_cast<int>(chunk)) != static_cast<int>(chunk)) break;
        sent += chunk;
      }
    }
    if (options_.mode != Mode::kCloseAfterFirstRead) SSL_shutdown(ssl);
  }
  {
    std::lock_guard lock(mu_);
    observed_.push_back(seen);
  }
  SSL_free(ssl);
  if (options_.mode == Mode::kCloseAfterFirstRead) {
    linger l{1, 0};  // RST: the rudest mid-stream close there is
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  ::close(fd);
}

RawBackend::RawBackend(Mode mode, const std::string& ip, uint16_t port) : mode_(mode) {
  port_ = port;
  listen_fd_ = ListenLoopback(port_, ip);
  thread_ = std::thread([this] { Loop(); });
}

RawBackend::~RawBackend() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
  for (int fd : fds_) ::close(fd);
}

// One thread polls the listener and every connection: enough for tests.
void RawBackend::Loop() {
  std::vector<char> buf(64 * 1024);
  while (!stop_) {
    std::vector<pollfd> polls{{listen_fd_, POLLIN, 0}};
    {
      std::lock_guard lock(mu_);
      for (size_t i = 0; i < fds_.size(); ++i) {
        if (!closed_[i] && mode_ == Mode::kRecord) polls.push_back({fds_[i], POLLIN, 0});
      }
    }
    if (::poll(polls.data(), polls.size(), 20) <= 0) continue;
    if (polls[0].revents & POLLIN) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        if (mode_ == Mode::kStall) {  // keep the window small so stalls show fast
          int small = 64 * 1024;
          setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        }
        std::lock_guard lock(mu_);
        fds_.push_back(fd);
        received_.emplace_back();
        closed_.push_back(false);
        ++accepted_;
      }
    }
    for (size_t p = 1; p < polls.size(); ++p) {
      if (polls[p].revents == 0) continue;
      const ssize_t n = ::recv(polls[p].fd, buf.data(), buf.size(), 0);
      std::lock_guard lock(mu_);
      for (size_t i = 0; i < fds_.size(); ++i) {
        if (fds_[i] != polls[p].fd) continue;
        if (n <= 0) {
          closed_[i] = true;
        } else {
          received_[i].append(buf.data(), static_cast<size_t>(n));
        }
      }
    }
  }
}

std::string RawBackend::received(size_t i) const {
  std::lock_guard lock(mu_);
  return i < received_.size() ? received_[i] : std::string();
}

bool RawBackend::closed(size_t i) const {
  std::lock_guard lock(mu_);
  return i < closed_.size() && closed_[i];
}

bool RawBackend::WaitReceived(size_t i, size_t n, int timeout_ms) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (received(i).size() >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

int ConnectTcp(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;  // a backend restarted on its old port must not wait out TIME_WAIT
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = Loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int WaitForClose(int fd, int timeout_ms) {
  const auto start = std::chrono::steady_clock::now();
  char buf[4096];
  for (;;) {
    const int elapsed = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::steady_clock::now() - start).count());
    if (elapsed >= timeout_ms) return -1;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms - elapsed) <= 0) return -1;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::steady_clock::now() - start).count());
    }
  }
}


const std::vector<std::string>& TlsClient::IstioAlpn() {
  static const std::vector<std::string> alpn = {"istio-peer-exchange", "istio"};
  return alpn;
}

TlsClient::TlsClient(SSL_CTX* ctx, uint16_t port, const std::string& sni, int timeout_ms,
                     const std::vector<std::string>& alpn) {
  fd_ = ConnectTcp(port);
  if (fd_ < 0) {
    error_ = "connect failed";
    return;
  }
  SetTimeouts(fd_, timeout_ms);
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ssl_ = SSL_new(ctx);
  SSL_set_fd(ssl_, fd_);
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl_, sni.c_str());
  if (!alpn.empty()) {
    std::string wire;  // RFC 7301: length-prefixed names
    for (const std::string& name : alpn) wire += static_cast<char>(name.size()) + name;
    SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }
  ERR_clear_error();
  if (SSL_connect(ssl_) != 1) {
    error_ = SslErrors();
    return;
  }
  ok_ = true;
}

TlsClient::~TlsClient() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (fd_ >= 0) ::close(fd_);
}

std::string TlsClient::peer_spiffe() const {
  X509* peer = SSL_get1_peer_certificate(ssl_);
  if (peer == nullptr) return "";
  std::string out = UriSan(peer);
  X509_free(peer);
  return out;
}

bool TlsClient::WriteAll(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    const int n = SSL_write(ssl_, p, static_cast<int>(std::min<size_t>(len, 1 << 20)));
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool TlsClient::ReadExactly(void* data, size_t len) {
  auto* out = static_cast<char*>(data);
  size_t got = 0;
  while (got < len) {
    const int n = Read(out + got, len - got);
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

int TlsClient::Read(void* data, size_t len) {
  const int n = SSL_read(ssl_, data, static_cast<int>(len));
  if (n > 0) return n;
  return SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

void TlsClient::HalfClose() {
  SSL_shutdown(ssl_);
  ::shutdown(fd_, SHUT_WR);
}

}  // namespace meshgate::testing
