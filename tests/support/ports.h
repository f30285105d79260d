// Ports for tests, without probing a port free and handing its number on.
//
// Probe-then-close (bind port 0, read the port, close, give the number to
// something else) races: between the close and the other bind, any process
// on the machine may take the port, and under `ctest -j` other tests do.
// So, in order of preference:
//
// 1. Port 0 in the component that listens, which reports what it bound:
//    backends in this process (TlsBackend, RawBackend, TestDnsServer) bind
//    127.0.0.1:0 and expose port(); meshgate runs with --listen 127.0.0.1:0
//    and the ops endpoints on :0, and MeshgateProcess reads the bound
//    addresses from its log; Prometheus logs the address it bound.
// 2. A port that must refuse connections (a dead endpoint): RefusingPort,
//    a socket bound to 127.0.0.1:0 that never listens, held for the test.
// 3. Only where a separate process must be told a port before anything
//    listens on it (a backend restarted on its old port, a client started
//    before its server): ReservedPort(), from this process's port block.
//
// The port block scheme: ports kFirstBlockPort .. kFirstBlockPort +
// kBlocks * kBlockSize - 1, below the kernel's ephemeral range (checked), so
// neither bind(0) nor an outgoing connection is ever given one. Block n
// belongs to the process holding an exclusive flock(2) on
// /tmp/meshgate-test-ports/block-n.lock; the kernel drops the lock when the
// process ends, crashed or not. gtest_discover_tests runs every test in its
// own process, so under `ctest -j` each running test has a block of its own,
// whichever worktree or build it comes from. Within a process ports are
// handed out in turn and wrap after kBlockSize: one test must not need more.
#pragma once

#include <cstdint>

namespace meshgate::testing {

inline constexpr uint16_t kFirstBlockPort = 20000;
inline constexpr uint16_t kBlockSize = 32;
inline constexpr uint16_t kBlocks = 128;

// The next port of this process's block (claimed on first use). Nothing
// listens on it until the test starts something there. Throws when no block
// can be had.
uint16_t ReservedPort();

// A port on 127.0.0.1 where connections are refused, and which no other
// socket can take while this object lives: bound, never listening.
class RefusingPort {
 public:
  RefusingPort();
  ~RefusingPort();
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

}  // namespace meshgate::testing
