// Real TLS peers for end-to-end tests: a backend server in its own threads
// and a blocking client, both plain OpenSSL over POSIX sockets.
#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/pki.h"

namespace meshgate::testing {

// Deterministic payload byte at offset i, so both ends can check content.
inline uint8_t PatternByte(uint64_t i, uint8_t seed) { return static_cast<uint8_t>((i * 131 + seed) ^ (i >> 9)); }

class TlsBackend {
 public:
  enum class Mode {
    kEcho,                // echo everything until the peer closes
    kBulk,                // read until close_notify, note the TCP FIN, then send reply_bytes and close
    kCloseAfterFirstRead, // abrupt close (no close_notify) after the first read
  };
  struct Options {
    Mode mode = Mode::kEcho;
    uint64_t reply_bytes = 0;
    uint16_t port = 0;  // 0: any free port; else this one (a ReservedPort, for a restart)
    // A connection silent this long (SO_RCVTIMEO) is closed by the backend.
    int idle_timeout_ms = 10000;
  };

  TlsBackend(const Pki& pki, const Workload& identity, Options options);
  ~TlsBackend();

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }   // TCP connections accepted
  int handshakes() const { return handshakes_.load(); }

  struct Observed {
    std::string peer_spiffe;     // verified client identity
    std::string sni;             // server name the client sent
    uint64_t bytes_received = 0;
    bool payload_ok = false;     // bytes matched PatternByte(i, 1)
    bool saw_tcp_fin = false;    // raw EOF after close_notify: half-close reached us
  };
  std::vector<Observed> observed() const;

 private:
  void AcceptLoop();
  void Serve(int fd);

  Options options_;
  SslCtxPtr ctx_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> handshakes_{0};
  mutable std::mutex mu_;
  std::vector<Observed> observed_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// A plain TCP backend: records what each connection sent, or (kStall) never
// reads, to make the gateway's relay push back.
class RawBackend {
 public:
  enum class Mode { kRecord, kStall };
  // Listens on ip:port (port 0: any free one); any 127.0.0.0/8 address works.
  explicit RawBackend(Mode mode, const std::string& ip = "127.0.0.1", uint16_t port = 0);
  ~RawBackend();
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  // Bytes received so far on connection i (in accept order).
  std::string received(size_t i) const;
  // Waits until connection i has received at least n bytes (or timeout).
  bool WaitReceived(size_t i, size_t n, int timeout_ms) const;
  // Whether connection i has seen the peer's close.
  bool closed(size_t i) const;

 private:
  void Loop();
  Mode mode_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  mutable std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::string> received_;
  std::vector<bool> closed_;
  std::thread thread_;
};

class TlsClient {
 public:
  // ALPNs an Istio sidecar offers on mTLS to a remote gateway (Envoy's
  // outbound cluster with metadata exchange): what meshgate requires by default.
  static const std::vector<std::string>& IstioAlpn();

  // Connects to 127.0.0.1:port and handshakes with `sni` (empty: none),
  // offering `alpn` (empty: no ALPN extension).
  TlsClient(SSL_CTX* ctx, uint16_t port, const std::string& sni, int timeout_ms = 5000,
            const std::vector<std::string>& alpn = IstioAlpn());
  ~TlsClient();

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  std::string peer_spiffe() const;

  bool WriteAll(const void* data, size_t len);
  // Reads up to len; 0 on clean close, -1 on error/timeout.
  int Read(void* data, size_t len);
  // Reads exactly len bytes; false on EOF or error first.
  bool ReadExactly(void* data, size_t len);
  // Sends close_notify and shuts the TCP write side: a TLS half-close.
  void HalfClose();

 private:
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool ok_ = false;
  std::string error_;
};

// Plain TCP helpers.
int ConnectTcp(uint16_t port);
// Waits up to timeout_ms for the peer to close; returns ms waited, or -1 if
// the connection was still open (or data arrived and kept coming) at the end.
int WaitForClose(int fd, int timeout_ms);

}  // namespace meshgate::testing
