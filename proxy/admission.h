// Overload protection at accept: whether a new downstream connection may
// become a session, decided before any byte of it is read. One Admission is
// shared by every worker; each check is O(1) and touches only atomics (and,
// for the per-source cap, one shard of a table), never anything the relay
// path uses. The models: Envoy's global downstream connection limit
// (downstream_global_cx_overflow) and overload manager (a resource monitor
// sampled every refresh_interval, new connections refused past it), HAProxy's
// `tcp-request connection reject if { src_conn_cur ge N }` and nginx's
// limit_conn (a per-address count shared by every worker).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "config/model/authorization.h"
#include "sni/proxy_protocol.h"

namespace meshgate::proxy {

// limits: in meshgate.yaml. 0 in any field: that check is off.
struct ConnectionLimits {
  uint64_t max_connections = 0;   // open downstream connections, all workers
  uint32_t per_source = 0;        // open connections per client IP address
  double accept_rate = 0;         // connections admitted per second (token bucket)
  uint32_t accept_burst = 0;      // the bucket's size (0 with a rate: = rate, at least 1)
  uint64_t memory_bytes = 0;      // RSS past which new connections are refused
  bool operator==(const ConnectionLimits&) const = default;
};

// proxyProtocol: and upstreamProxyProtocol: in meshgate.yaml (README "PROXY
// protocol"). A trusted source must send a header; any other is refused one.
struct ProxyProtocolSettings {
  std::vector<config::IpPrefix> accept;    // trusted sources (load balancers)
  std::vector<std::string> upstream_hosts;  // clusters sent a v2 header (exact or "*.suffix")
  size_t max_v2_bytes = sni::kProxyV2DefaultMaxBytes;
  bool Trusts(const std::array<uint8_t, 16>& source) const {
    for (const config::IpPrefix& prefix : accept) {
      if (prefix.Contains(source)) return true;
    }
    return false;
  }
};

// Why a connection was refused, each counted
// (meshgate_connections_refused_total{reason}): at accept before any byte
// was read, or (proxy_protocol_*, and per_source for a proxied connection)
// when its PROXY protocol header was read, before the ClientHello. Nothing is
// dialled for any of them.
#define MESHGATE_REFUSALS(X)                                                 \
  X(kMaxConnections, "max_connections") /* limits.maxConnections */          \
  X(kPerSource, "per_source")           /* limits.perSourceConnections */    \
  X(kAcceptRate, "accept_rate")         /* limits.acceptRate */              \
  X(kMemory, "memory")                  /* limits.memory */                  \
  X(kProxyUntrusted, "proxy_protocol_untrusted") /* a header from a source not in proxyProtocol.accept */ \
  X(kProxyMissing, "proxy_protocol_missing")     /* a trusted source sent no header */                   \
  X(kProxyBadVersion, "proxy_protocol_bad_version")                                                      \
  X(kProxyBadCommand, "proxy_protocol_bad_command")                                                      \
  X(kProxyBadFamily, "proxy_protocol_bad_family")                                                        \
  X(kProxyTruncated, "proxy_protocol_truncated")   /* short v2 block, or closed mid-header */            \
  X(kProxyOversized, "proxy_protocol_oversized")   /* v1 over 107 bytes, v2 over the cap */              \
  X(kProxyBadV1Field, "proxy_protocol_bad_v1_field")                                                     \
  X(kProxyBadTlv, "proxy_protocol_bad_tlv")                                                              \
  X(kProxyBadChecksum, "proxy_protocol_bad_checksum")

enum class Refusal : uint8_t {
#define MESHGATE_REFUSAL_ENUM(name, str) name,
  MESHGATE_REFUSALS(MESHGATE_REFUSAL_ENUM)
#undef MESHGATE_REFUSAL_ENUM
};
#define MESHGATE_REFUSAL_COUNT(name, str) +1
inline constexpr size_t kRefusalCount = 0 MESHGATE_REFUSALS(MESHGATE_REFUSAL_COUNT);
#undef MESHGATE_REFUSAL_COUNT
std::string_view ToString(Refusal r);
// The refusal for a header the parser refused (bad_signature: no header).
Refusal RefusalOf(sni::ProxyHeaderError error);

// A token bucket of accepts per second, shared by threads without a lock:
// the generic cell rate algorithm (GCRA, ITU-T I.371), which keeps one
// number, the time the bucket is next full ("theoretical arrival time"), and
// admits when that time is at most `burst` intervals ahead. Equivalent to a
// bucket of `burst` tokens refilled at `rate` per second.
class AcceptRateBucket {
 public:
  // Admits one connection at `now_ns` (any monotonic clock, nanoseconds).
  bool TryTake(double rate, uint32_t burst, int64_t now_ns);

 private:
  std::atomic<int64_t> tat_ns_{0};
};

// Open connections per source address, for every worker together (a
// per-worker count would let each source have cap × workers). Sharded by the
// address's hash: an accept or a close locks one shard of 64 for one hash
// map operation; the relay path never touches it.
class SourceTable {
 public:
  using Key = std::array<uint8_t, 16>;  // IPv6, or IPv4-mapped IPv6
  // Counts one more connection from `source` unless it has `cap` already.
  bool TryAcquire(const Key& source, uint32_t cap);
  void Release(const Key& source);
  uint32_t count(const Key& source) const;
  size_t sources() const;  // addresses with at least one connection

 private:
  struct Shard {
    mutable std::mutex mu;
    absl::flat_hash_map<Key, uint32_t> open;
  };
  Shard& ShardOf(const Key& source) const;
  mutable std::array<Shard, 64> shards_;
};

// The memory guard's state, written by one sampler and read at every accept.
struct MemoryState {
  uint64_t rss_bytes = 0;    // last sample (0: not sampled, the limit is off)
  uint64_t limit_bytes = 0;  // limits.memory at that sample (0: off)
  bool over() const { return limit_bytes != 0 && rss_bytes > limit_bytes; }
};

class Admission;

// A connection's share of the counts, given back when it is destroyed (the
// session's member): Envoy's resource manager handle, not flags undone by hand.
class AdmissionTicket {
 public:
  AdmissionTicket() = default;
  AdmissionTicket(AdmissionTicket&& other) noexcept { *this = std::move(other); }
  AdmissionTicket& operator=(AdmissionTicket&& other) noexcept;
  ~AdmissionTicket() { Release(); }
  bool counts_source() const { return has_source_; }

 private:
  friend class Admission;
  void Release();
  Admission* admission_ = nullptr;
  SourceTable::Key source_{};
  bool has_source_ = false;
};

class Admission {
 public:
  using Clock = std::chrono::steady_clock;
  struct Decision {
    std::optional<Refusal> refused;  // nullopt: admitted, `ticket` holds its counts
    AdmissionTicket ticket;
  };
  // Cheapest and least fair first: memory, the global cap, the per-source
  // cap, then the rate, so a connection refused by a cap takes no token.
  // defer_source: a trusted PROXY protocol source, whose real client is not
  // known yet; its per-source count is taken by AdmitSource once the header
  // is read (the load balancer's own address is never counted).
  Decision Admit(const SourceTable::Key& source, const ConnectionLimits& limits, Clock::time_point now = Clock::now(),
                 bool defer_source = false);
  // The deferred per-source check: counts `source` in `ticket` (an admitted
  // ticket without a source yet) unless it has `cap` connections already.
  bool AdmitSource(AdmissionTicket& ticket, const SourceTable::Key& source, uint32_t cap);

  // The sampler's (one thread): records an RSS sample against `limit_bytes`.
  void RecordMemory(uint64_t rss_bytes, uint64_t limit_bytes);
  MemoryState memory() const;

  uint64_t open() const { return open_.load(std::memory_order_relaxed); }
  const SourceTable& sources() const { return sources_; }

 private:
  friend class AdmissionTicket;
  void Release(const AdmissionTicket& ticket);

  // Every admitted connection, always counted, so a cap turned on by a
  // reload sees the connections already open.
  std::atomic<int64_t> open_{0};
  SourceTable sources_;
  AcceptRateBucket rate_;
  std::atomic<uint64_t> rss_bytes_{0};
  std::atomic<uint64_t> memory_limit_{0};
};

// This process's resident set size (/proc/self/statm), 0 if unreadable.
uint64_t ResidentBytes();

}  // namespace meshgate::proxy
