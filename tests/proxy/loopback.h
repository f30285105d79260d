// Real TCP connections on 127.0.0.1 inside the test process, for the data
// path's unit tests: one end is a descriptor for the code under test (driven
// by a Reactor), the other a plain non-blocking descriptor the test drives
// itself.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "proxy/reactor.h"
#include "proxy/relay.h"

namespace meshgate::proxy::testing {

// A plain socket the test owns. Every call is non-blocking.
class Peer {
 public:
  explicit Peer(int fd = -1) : fd_(fd) {}
  Peer(Peer&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Peer& operator=(Peer&& other) noexcept;
  ~Peer() { Close(); }

  int fd() const { return fd_; }
  // Bytes the kernel took (0 when its buffers are full).
  size_t SendSome(std::string_view bytes);
  // Reads what is there, appending to received(); notes EOF and errors.
  void ReadAvailable();
  const std::string& received() const { return received_; }
  bool eof() const { return eof_; }
  int error() const { return error_; }  // errno of a failed read, 0 if none
  void ShutdownWrite();
  // Closes with SO_LINGER 0: the other end gets a RST, not a FIN.
  void Reset();
  void Close();
  // Gives up the descriptor without closing it.
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
  std::string received_;
  bool eof_ = false;
  int error_ = 0;
};

// One connection: `end` (for the code under test) and `peer`, both
// non-blocking.
struct Connection {
  Peer end;
  Peer peer;
};
// `end` is the accepted side, as a gateway's downstream socket is (with the
// listener's TCP_NODELAY and SO_OOBINLINE); a connection made the other way
// round is still the same TCP.
Connection Connect();

// A listener on 127.0.0.1, port 0: the kernel picks, port() reads it back.
class Listener {
 public:
  Listener();
  ~Listener();
  uint16_t port() const { return port_; }
  // Accepts a connection, waiting up to timeout_ms for one; an invalid Peer if none.
  Peer Accept(int timeout_ms = 5000);

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// Runs `io` until `done` holds; false at the deadline. `done` runs after
// every batch of ready handlers, so it may also drive the test's peers.
bool RunUntil(boost::asio::io_context& io, const std::function<bool()>& done,
              std::chrono::milliseconds timeout = std::chrono::seconds(5));
// Runs every ready handler, repeatedly, until none is ready: what the code
// under test can do without anything new from outside. The handlers run.
size_t RunReady(boost::asio::io_context& io);
// The same for the data path's reactor: `done` runs after every turn.
bool RunUntil(Reactor& reactor, const std::function<bool()>& done,
              std::chrono::milliseconds timeout = std::chrono::seconds(5));
// Turns of the reactor without waiting, until one has nothing to run.
size_t RunReady(Reactor& reactor);
// Sends `payload` from `from` (its first `sent` bytes already are) while `to`
// reads, running `reactor` in between, until `to` has it all; false at the
// deadline. Then runs what is ready.
bool Transfer(Reactor& reactor, Peer& from, Peer& to, std::string_view payload, size_t sent = 0,
              std::chrono::milliseconds timeout = std::chrono::seconds(30));
// Runs `reactor` until `peer` sees the connection end (EOF or an error).
bool WaitClosed(Reactor& reactor, Peer& peer, std::chrono::milliseconds timeout = std::chrono::seconds(5));

// A deterministic payload, so a reordered or duplicated chunk shows.
std::string Pattern(size_t size, uint8_t seed = 1);
// Bytes queued in a socket's receive buffer, and not yet sent from its send buffer.
size_t Unread(int fd);
size_t Unsent(int fd);
// Descriptors this process has open (from /proc/self/fd).
size_t OpenDescriptors();

}  // namespace meshgate::proxy::testing
