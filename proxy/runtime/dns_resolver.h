// Asynchronous DNS for `resolution: DNS` hosts: c-ares driven by one
// io_context, re-resolving each tracked host when its (clamped) TTL runs out.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "absl/status/statusor.h"
#include "base/stats.h"

namespace meshgate::proxy {

enum class DnsFamily : uint8_t { kAll, kV4Only, kV6Only };  // like Envoy's dns_lookup_family

struct DnsOptions {
  // "ip", "ip:port" or "[ipv6]:port". Empty means the system's resolv.conf.
  std::vector<std::string> servers;
  // An answer's TTL is clamped to [min_ttl, max_ttl] to pick the next refresh.
  std::chrono::milliseconds min_ttl{1000};
  std::chrono::milliseconds max_ttl{300000};
  // A failed resolution is retried after min_ttl, doubling up to this.
  std::chrono::milliseconds max_retry_interval{30000};
  // Per try; c-ares doubles it on each retry round.
  std::chrono::milliseconds query_timeout{2000};
  int attempts = 2;
  DnsFamily family = DnsFamily::kAll;
};

// A resolution either answers or fails for exactly one reason (the first
// family that failed); a failed one keeps the last good addresses.
#define MESHGATE_DNS_STATS(COUNTER, GAUGE)                                            \
  COUNTER(queries, "A/AAAA lookups sent (c-ares retries excluded).")                  \
  COUNTER(answers, "Resolutions where every family answered.")                        \
  COUNTER(changes, "Resolutions whose address set differed from the last.")           \
  COUNTER(failures, "Failed resolutions (the sum of the failure_* counters).")        \
  COUNTER(failure_timeout, "Resolutions that timed out.")                             \
  COUNTER(failure_nxdomain, "Resolutions answered NXDOMAIN.")                         \
  COUNTER(failure_nodata, "Resolutions with no address in any family.")               \
  COUNTER(failure_server, "Resolutions failed by SERVFAIL, REFUSED or no server.")    \
  COUNTER(failure_other, "Resolutions failed for another reason.")
MESHGATE_DEFINE_STATS(DnsStats, MESHGATE_DNS_STATS);
// "dns_queries=3 dns_answers=1 ...", zeros skipped.
std::string FormatStats(const DnsStats& stats);

// One per io_context, used only from that loop's thread (stats() excepted).
// Nothing blocks: sockets and timeouts are Asio waits.
class DnsResolver {
  class Impl;

 public:
  // Sorted (IPv4 first), deduplicated, never empty.
  using OnChange = std::function<void(const std::vector<std::string>& addresses)>;

  // Stops tracking when destroyed or on Stop(), on the resolver's thread.
  // Safe to outlive the resolver.
  class Watch {
   public:
    Watch() = default;
    Watch(Watch&& other) noexcept;
    Watch& operator=(Watch&& other) noexcept;
    ~Watch() { Stop(); }
    // on_change is not called after this returns, even from inside on_change.
    void Stop();

   private:
    friend class DnsResolver;
    Watch(std::weak_ptr<Impl> resolver, uint64_t id) : resolver_(std::move(resolver)), id_(id) {}
    std::weak_ptr<Impl> resolver_;
    uint64_t id_ = 0;
  };

  // Fails on bad options (servers, bounds) or when c-ares cannot start.
  static absl::StatusOr<std::unique_ptr<DnsResolver>> Create(boost::asio::io_context& io, DnsOptions options);
  // Abandons queries in flight; no on_change runs afterwards.
  ~DnsResolver();
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;

  // Starts tracking `host` (case-insensitive, trailing dot ignored). on_change
  // runs on the loop, never inside Track(), with the first answer and then on
  // every change; a host tracked twice shares one set of queries, and a later
  // watcher gets the current answer at once. An IP literal is its own answer.
  // The name is queried as given: no search domains, no /etc/hosts.
  [[nodiscard]] Watch Track(const std::string& host, OnChange on_change);

  // Readable from any thread.
  const DnsStats& stats() const;

 private:
  explicit DnsResolver(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace meshgate::proxy
