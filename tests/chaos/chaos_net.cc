#include "tests/chaos/chaos_net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace meshgate::testing {
namespace {

constexpr int kBlocks = 8192;  // /29s in 10.200.0.0/16

struct Cmd {
  int code = -1;
  std::string out;
};

Cmd Run(const std::string& command) {
  Cmd r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[1024];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

void MustRun(const std::string& command) {
  const Cmd r = Run(command);
  if (r.code != 0) throw std::runtime_error("`" + command + "` failed (" + std::to_string(r.code) + "): " + r.out);
}

}  // namespace

std::string ChaosUnsupportedReason() {
  if (::geteuid() != 0) return "chaos tests need root (network namespaces, veth pairs); euid is " +
                               std::to_string(::geteuid());
  const Cmd r = Run("ip netns list");
  if (r.code != 0) return "`ip netns list` failed (" + std::to_string(r.code) + "): " + r.out;
  return "";
}

ChaosNet::ChaosNet() {
  // A /29 no running test holds: each holder binds an abstract Unix socket
  // named after its block, which the kernel releases when the holder exits,
  // however it exits, and which leaves no file behind.
  const int start = static_cast<int>(::getpid() % kBlocks);
  for (int i = 0; i < kBlocks && block_ < 0; ++i) {
    const int candidate = (start + i) % kBlocks;
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string name = "meshgate-chaos-" + std::to_string(candidate);
    std::memcpy(a.sun_path + 1, name.data(), name.size());  // sun_path[0] == 0: abstract
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), offsetof(sockaddr_un, sun_path) + 1 + name.size()) == 0) {
      lock_fd_ = fd;
      block_ = candidate;
    } else {
      ::close(fd);
    }
  }
  if (block_ < 0) throw std::runtime_error("no free /29 in 10.200.0.0/16 for a chaos network");
  ns_ = "mgchaos-" + std::to_string(block_);
  host_if_ = "mgc" + std::to_string(block_) + "h";  // IFNAMSIZ: at most 15 characters
  ns_if_ = "mgc" + std::to_string(block_) + "n";
  try {
    Setup();
  } catch (...) {
    Teardown();
    throw;
  }
}

ChaosNet::~ChaosNet() { Teardown(); }

std::string ChaosNet::Ip(int host) const {
  const int base = block_ * 8 + host;
  return "10.200." + std::to_string(base / 256) + "." + std::to_string(base % 256);
}

void ChaosNet::Setup() {
  // What a killed earlier holder of this block left behind (we hold its lock now).
  Run("ip link del " + host_if_);
  Run("ip netns del " + ns_);
  const std::string in_ns = "ip -n " + ns_ + " ";
  MustRun("ip netns add " + ns_);
  MustRun("ip link add " + host_if_ + " type veth peer name " + ns_if_ + " netns " + ns_);
  MustRun("ip addr add " + host_ip() + "/29 dev " + host_if_);
  MustRun("ip link set " + host_if_ + " up");
  MustRun(in_ns + "addr add " + backend_ip() + "/29 dev " + ns_if_);
  MustRun(in_ns + "addr add " + dead_ip(0) + "/29 dev " + ns_if_);
  MustRun(in_ns + "addr add " + dead_ip(1) + "/29 dev " + ns_if_);
  MustRun(in_ns + "link set " + ns_if_ + " up");
  MustRun(in_ns + "link set lo up");
}

void ChaosNet::BlackholeDeadIps() {
  const std::string in_ns = "ip -n " + ns_ + " ";
  for (int i = 0; i < 2; ++i) MustRun(in_ns + "rule add from " + dead_ip(i) + " lookup 200");
  MustRun(in_ns + "route add blackhole default table 200");
}

void ChaosNet::NamespaceLinkDown() { MustRun("ip -n " + ns_ + " link set " + ns_if_ + " down"); }

void ChaosNet::Teardown() noexcept {
  if (block_ < 0) return;
  // Deleting the host end deletes its peer; deleting the namespace frees it
  // once no socket holds it (the backends close theirs first).
  if (!host_if_.empty()) Run("ip link del " + host_if_);
  if (!ns_.empty()) Run("ip netns del " + ns_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
  lock_fd_ = -1;
}

// setns(2) moves only the calling thread, so a thread of its own joins the
// namespace, opens the socket (which stays in that namespace for its life),
// and ends.
int ChaosNet::ListenInside(const std::string& ip, uint16_t* port) const {
  int fd = -1;
  std::string error;
  std::thread([&] {
    const int ns_fd = ::open(("/run/netns/" + ns_).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0 || ::setns(ns_fd, CLONE_NEWNET) != 0) {
      error = "setns into " + ns_ + ": " + std::strerror(errno);
      if (ns_fd >= 0) ::close(ns_fd);
      return;
    }
    ::close(ns_fd);
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      error = "listen on " + ip + ":0 in " + ns_ + ": " + std::strerror(errno);
      ::close(fd);
      fd = -1;
      return;
    }
    *port = ntohs(a.sin_port);
  }).join();
  if (fd < 0) throw std::runtime_error(error);
  return fd;
}

EchoBackend::EchoBackend(const Pki& pki, const Workload& identity, int listen_fd)
    : ctx_(pki.ServerContext(identity)), listen_fd_(listen_fd) {
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

EchoBackend::~EchoBackend() {
  stop_ = true;
  acceptor_.join();
  ::close(listen_fd_);
  {
    std::lock_guard lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);  // wakes a read from a vanished peer
  }
  for (auto& t : threads_) t.join();
  for (int fd : fds_) ::close(fd);
}

void EchoBackend::AcceptLoop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lock(mu_);
    fds_.push_back(fd);
    threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void EchoBackend::Serve(int fd) {
  SSL* ssl = SSL_new(ctx_.get());
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) == 1) {
    ++handshakes_;
    char buf[16 * 1024];
    for (;;) {
      const int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0 || SSL_write(ssl, buf, n) != n) break;
      echoed_ += static_cast<uint64_t>(n);
    }
  }
  SSL_free(ssl);
  // Closed by the destructor, after every thread has stopped using it.
}

RawTlsClient::RawTlsClient(SSL_CTX* ctx, uint16_t port, const std::string& sni, int timeout_ms) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    error_ = std::string("connect to the gateway: ") + std::strerror(errno);
    return;
  }
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ssl_ = SSL_new(ctx);
  SSL_set_fd(ssl_, fd_);
  SSL_set_tlsext_host_name(ssl_, sni.c_str());
  // Istio's mTLS ALPN, which an AUTO_PASSTHROUGH gateway requires (RFC 7301 wire form).
  static constexpr unsigned char kAlpn[] = "\x13istio-peer-exchange\x05istio";
  SSL_set_alpn_protos(ssl_, kAlpn, sizeof kAlpn - 1);
  ERR_clear_error();
  if (SSL_connect(ssl_) != 1) {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    error_ = std::string("TLS handshake through the gateway: ") + buf;
    return;
  }
  ok_ = true;
}

RawTlsClient::~RawTlsClient() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (fd_ >= 0) ::close(fd_);
}

bool RawTlsClient::Echo(const std::string& data) {
  if (SSL_write(ssl_, data.data(), static_cast<int>(data.size())) != static_cast<int>(data.size())) return false;
  std::string back;
  char buf[16 * 1024];
  while (back.size() < data.size()) {
    const int n = SSL_read(ssl_, buf, sizeof buf);
    if (n <= 0) return false;
    back.append(buf, static_cast<size_t>(n));
  }
  return back == data;
}

}  // namespace meshgate::testing
