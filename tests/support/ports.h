// Ports for tests, without probing a port free and handing its number on.
//
// Probe-then-close (bind port 0, read the port, close, give the number to
// something else) races: between the close and the other bind, any process
// on the machine may take the port, and under `ctest -j` other tests do.
// So, in order of preference:
//
// 1. Port 0 in the component that listens, which then reports what it got:
//    servers in this process (TlsBackend, RawBackend, TestDnsServer) bind
//    127.0.0.1:0 and expose port(); meshgate runs with --listen 127.0.0.1:0
//    and its ops endpoints on :0, and MeshgateProcess reads the bound
//    addresses from its log; Prometheus logs the address it bound.
// 2. Where a port must be known before anything listens on it (a dead
//    endpoint, a backend restarted on its old port, a client configured
//    before its server starts): a ReservedPort, held for the whole test.
//
// A ReservedPort is a socket bound to 127.0.0.1:0 with SO_REUSEADDR that
// never listens. While it lives:
// - a connect to the port is refused, as to a free port;
// - neither bind(0) nor an outgoing connection, in any process, is given
//   the port (the kernel skips ports that have a bound socket), so no other
//   test can take it, however many run at once;
// - a server that binds the port with SO_REUSEADDR (TlsBackend, RawBackend,
//   meshgate, meshgatectl serve, openssl s_server, Prometheus) still can,
//   and again after a restart, because the reservation does not listen.
#pragma once

#include <cstdint>
#include <string>

namespace meshgate::testing {

class ReservedPort {
 public:
  ReservedPort();  // throws when 127.0.0.1 has no port to give
  ~ReservedPort();
  ReservedPort(const ReservedPort&) = delete;
  ReservedPort& operator=(const ReservedPort&) = delete;

  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace meshgate::testing
