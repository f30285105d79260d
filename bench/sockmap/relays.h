// The two relays the prototype compares (issue 17, part 3): a plain splice
// relay (two blocking threads per connection, socket -> pipe -> socket, the
// zero-copy path meshgate's proxy/relay.cc takes for bulk), and the sockmap
// relay, where after setup the kernel moves the bytes and user space only
// waits for each direction's end.
#pragma once

#include <cstdint>
#include <string>

namespace sockmap_proto {

struct SockmapOptions {
  bool ingress = false;     // BPF_F_INGRESS instead of the peer's egress
  bool strparser = false;   // attach a stream parser beside the verdict
  int sockbuf = 0;          // SO_SNDBUF/SO_RCVBUF on the relay's sockets (0: autotune)
  bool drain_before_eof = true;  // wait until the peer sent every redirected byte
  bool redirect_empty = false;   // redirect zero-length (FIN) skbs too, as a plain verdict does
};

// What a relay saw, summed over its connections.
struct RelayStats {
  uint64_t drain_polls = 0;       // 1 ms polls spent waiting for a peer to drain
  uint64_t tx_errors = 0;         // relayed sockets with SO_ERROR set (psock TX disabled)
  std::string first_error;        // e.g. "backend SO_ERROR=32 (Broken pipe)"
  uint64_t redirected = 0;        // bytes the verdict redirected
  uint64_t failed_redirects = 0;  // skbs the helper refused
  uint64_t empty_skbs = 0;
  uint64_t max_queued_at_eof = 0; // redirected but not yet in the peer's send queue, at a FIN        // zero-length skbs the verdict saw
};

class Relay {
 public:
  virtual ~Relay() = default;
  // Takes both connected sockets (the hello already read from `client` and
  // to be written to `backend` before any other byte) and relays until both
  // directions ended; returns at once (the work runs on threads it owns).
  virtual void Start(int client, int backend, const char* hello, size_t hello_len) = 0;
  // Waits for every connection started so far to finish.
  virtual RelayStats Join() = 0;
};

Relay* NewSpliceRelay();
// nullptr with `error` set when the BPF object cannot be loaded or attached.
Relay* NewSockmapRelay(const std::string& bpf_object, const SockmapOptions& options,
                       std::string& error);

}  // namespace sockmap_proto
