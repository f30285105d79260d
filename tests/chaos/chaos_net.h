// A private network for chaos tests: a network namespace joined to the host
// by a veth pair on a /29 of 10.200.0.0/16 that no other test holds, with a
// TLS echo backend listening inside it. The gateway under test stays in the
// host namespace and reaches the backend over the veth, so faults (a
// blackholed route, an interface taken down) hit only this test's traffic.
// Everything is undone in the destructor, on failure too.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/pki.h"

namespace meshgate::testing {

// Why chaos tests cannot run here ("" when they can): they need root and
// `ip netns` (iproute2).
std::string ChaosUnsupportedReason();

class ChaosNet {
 public:
  ChaosNet();  // throws std::runtime_error with the failing `ip` command's output
  ~ChaosNet();
  ChaosNet(const ChaosNet&) = delete;
  ChaosNet& operator=(const ChaosNet&) = delete;

  const std::string& ns() const { return ns_; }
  std::string host_ip() const { return Ip(1); }     // the host end of the veth
  std::string backend_ip() const { return Ip(2); }  // the namespace end: reachable
  // Also addresses of the namespace end (i = 0, 1), but see BlackholeDeadIps.
  std::string dead_ip(int i = 0) const { return Ip(3 + i); }

  // Nothing sent from a dead_ip() leaves the namespace (a policy-routed
  // blackhole route), so SYNs to it go unanswered: no SYN-ACK, no RST, no
  // ICMP. A connect to it can only time out.
  void BlackholeDeadIps();
  // Takes the namespace end of the veth down: from the host, the peer
  // vanishes. Packets to it are dropped at the veth without an RST or an ICMP,
  // and the host keeps its route (now "linkdown"), so nothing leaves by
  // another interface.
  void NamespaceLinkDown();

  // A socket listening on ip:0 inside the namespace; its port through *port.
  int ListenInside(const std::string& ip, uint16_t* port) const;

 private:
  std::string Ip(int host) const;
  void Setup();
  void Teardown() noexcept;

  int lock_fd_ = -1;  // the abstract socket that holds this test's /29
  int block_ = -1;    // which /29 of 10.200.0.0/16
  std::string ns_, host_if_, ns_if_;
};

// A TLS echo server on a listening socket (ChaosNet::ListenInside). The
// destructor shuts every connection down, so threads blocked on a peer that
// has vanished return.
class EchoBackend {
 public:
  EchoBackend(const Pki& pki, const Workload& identity, int listen_fd);
  ~EchoBackend();
  int handshakes() const { return handshakes_.load(); }
  uint64_t bytes_echoed() const { return echoed_.load(); }

 private:
  void AcceptLoop();
  void Serve(int fd);

  SslCtxPtr ctx_;
  int listen_fd_;
  std::atomic<bool> stop_{false};
  std::atomic<int> handshakes_{0};
  std::atomic<uint64_t> echoed_{0};
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// A TLS client through the gateway on 127.0.0.1:port with an Istio ALPN,
// keeping the raw descriptor, so a test can see the TCP close itself.
class RawTlsClient {
 public:
  RawTlsClient(SSL_CTX* ctx, uint16_t port, const std::string& sni, int timeout_ms);
  ~RawTlsClient();
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  int fd() const { return fd_; }
  // Writes `data` and reads the same number of bytes back; false on any failure.
  bool Echo(const std::string& data);

 private:
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool ok_ = false;
  std::string error_;
};

}  // namespace meshgate::testing
