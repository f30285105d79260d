// Data-path counters. Each worker owns one ProxyStats and is its only writer,
// so an increment is a relaxed load+store (no lock, no locked instruction);
// readers on other threads sum them at report time.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "base/stats.h"
#include "proxy/admission.h"
#include "config/model/route_table.h"
#include "sni/client_hello_parser.h"

namespace meshgate::proxy {

using base::Counter;

// How a session ended. One reason per session, counted and logged.
#define MESHGATE_TERMINATIONS(X)                                        \
  X(kNoRoute, "no_route")                                               \
  X(kAlpnNotIstio, "alpn_not_istio")   /* ALPN none of Istio's mTLS ALPNs */ \
  X(kRbacDenied, "rbac_denied")        /* an AuthorizationPolicy refused it */ \
  X(kNotTls, "not_tls")                /* plain HTTP, SSLv2, no TLS record */ \
  X(kHelloTooLarge, "hello_too_large")                                  \
  X(kHelloMalformed, "hello_malformed")                                 \
  X(kHelloTimeout, "hello_timeout")                                     \
  X(kHelloClosed, "hello_closed")      /* client left before a hello */ \
  X(kNoEndpoints, "no_endpoints")                                       \
  X(kUpstreamConnectFailed, "upstream_connect_failed")                  \
  X(kUpstreamOverflow, "upstream_overflow")  /* maxConnections */         \
  X(kIdleTimeout, "idle_timeout")                                       \
  X(kMaxDuration, "max_duration")      /* connectionPool.tcp.maxConnectionDuration */ \
  X(kDownstreamClose, "downstream_close")                               \
  X(kUpstreamClose, "upstream_close")                                   \
  X(kDownstreamError, "downstream_error")                               \
  X(kUpstreamError, "upstream_error")                                   \
  X(kDrained, "drained")               /* closed when the drain time ran out */ \
  X(kRefused, "refused")               /* at the PROXY header: meshgate_connections_refused_total{reason} */

enum class Termination : uint8_t {
#define MESHGATE_TERM_ENUM(name, str) name,
  MESHGATE_TERMINATIONS(MESHGATE_TERM_ENUM)
#undef MESHGATE_TERM_ENUM
};
#define MESHGATE_TERM_COUNT(name, str) +1
inline constexpr size_t kTerminationCount = 0 MESHGATE_TERMINATIONS(MESHGATE_TERM_COUNT);
#undef MESHGATE_TERM_COUNT
std::string_view ToString(Termination t);

// The data path's counters, one set per worker (summed at report time).
#define MESHGATE_PROXY_STATS(COUNTER, GAUGE)                                                   \
  COUNTER(downstream_cx_total, "Connections accepted.")                                        \
  GAUGE(downstream_cx_active, "Connections open.")                                             \
  COUNTER(accept_errors, "accept() failures (descriptors exhausted, aborted handshakes).")     \
  COUNTER(hello_ok, "ClientHellos with a server_name.")                                        \
  COUNTER(hello_timeout, "Connections that sent no complete ClientHello in time.")             \
  COUNTER(upstream_cx_total, "Upstream connections established.")                              \
  GAUGE(upstream_cx_active, "Upstream connections open.")                                      \
  COUNTER(upstream_connect_fail, "Upstream connects refused or failed.")                       \
  COUNTER(upstream_connect_timeout, "Upstream connects that timed out.")                       \
  COUNTER(upstream_connect_retry, "Connects retried on another endpoint.")                     \
  COUNTER(upstream_cx_overflow, "Connections refused by connectionPool.tcp.maxConnections.")   \
  COUNTER(upstream_ejections, "Endpoints ejected by outlier detection.")                       \
  COUNTER(bytes_downstream_to_upstream, "Bytes relayed from clients to endpoints.")            \
  COUNTER(bytes_upstream_to_downstream, "Bytes relayed from endpoints to clients.")            \
  COUNTER(relay_copy_fallback, "Flows that found no splice pipe and copied instead.")
MESHGATE_DEFINE_STATS(ProxyCounters, MESHGATE_PROXY_STATS);

struct ProxyStats : ProxyCounters {
  std::array<Counter, sni::kRejectReasonCount> hello_rejected;   // by sni::RejectReason
  std::array<Counter, config::kRouteMissCount> route_miss;       // by config::RouteMiss
  std::array<Counter, kTerminationCount> terminations;          // by Termination
  // Connections closed at accept, before any byte was read: never sessions,
  // so not in downstream_cx_total nor in terminations.
  std::array<Counter, kRefusalCount> refused;                   // by Refusal
  // Sizes of complete ClientHellos (record bytes), for a histogram.
  static constexpr std::array<double, 7> kHelloBytesBounds = {256, 512, 1024, 2048, 4096, 8192, 16384};
  std::array<Counter, kHelloBytesBounds.size() + 1> hello_bytes_buckets;  // last: +Inf
  Counter hello_bytes_sum;
  void ObserveHelloBytes(size_t n) {
    size_t i = 0;
    while (i < kHelloBytesBounds.size() && static_cast<double>(n) > kHelloBytesBounds[i]) ++i;
    hello_bytes_buckets[i].Inc();
    hello_bytes_sum.Inc(n);
  }
};

// Whether a rejected hello was not TLS at all (the "not_tls"), or TLS
// that was malformed.
bool IsNotTls(sni::RejectReason reason);

// "name=value ..." over the sum of several workers' stats; zero entries skipped
// for the per-reason arrays. Used for the shutdown summary and tests.
std::string FormatStats(const ProxyStats* const* stats, size_t count);

}  // namespace meshgate::proxy
