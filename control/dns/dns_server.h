// meshgatectl serve's authoritative DNS server for the ServiceEntry zone
// (`.global`, replacing istiocoredns): UDP and TCP on one port, on a thread
// of its own so a query flood never delays the HTTP long polls. The control
// loop hands it a new Zone whenever the ServiceEntries change.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "base/stats.h"
#include "control/dns/dns_message.h"
#include "control/dns/dns_zone.h"

namespace meshgate::control::dns {

// Every way a query ends; the parse outcomes are counted apart, by reason.
#define MESHGATECTL_DNS_SERVER_STATS(COUNTER, GAUGE)                                         \
  COUNTER(udp_queries, "Datagrams received.")                                                \
  COUNTER(tcp_queries, "Messages received over TCP (RFC 7766).")                             \
  COUNTER(answered, "NOERROR responses with records.")                                       \
  COUNTER(nodata, "NOERROR responses without records (RFC 2308 NODATA).")                    \
  COUNTER(nxdomain, "NXDOMAIN responses: names in the zone that do not exist.")              \
  COUNTER(refused, "REFUSED responses: names outside the zone, or not class IN.")             \
  COUNTER(formerr, "FORMERR responses to malformed queries.")                                \
  COUNTER(notimp, "NOTIMP responses to opcodes other than QUERY.")                           \
  COUNTER(badvers, "BADVERS responses to EDNS versions other than 0.")                       \
  COUNTER(dropped, "Queries dropped unanswered (too short, or a response).")                 \
  COUNTER(truncated, "UDP responses sent with TC=1 and no records.")                         \
  COUNTER(send_errors, "Responses the kernel did not take.")                                 \
  COUNTER(tcp_connections, "TCP connections accepted.")                                      \
  COUNTER(tcp_rejected, "TCP connections closed at once: too many open.")                    \
  GAUGE(tcp_open, "TCP connections open.")
MESHGATE_DEFINE_STATS(DnsServerStats, MESHGATECTL_DNS_SERVER_STATS);

class DnsServer {
 public:
  // Binds UDP and TCP on `listen` (ip:port; port 0 picks one free for both)
  // and starts serving `zone` on its own thread.
  static absl::StatusOr<std::unique_ptr<DnsServer>> Start(const std::string& listen, std::shared_ptr<const Zone> zone);
  ~DnsServer();  // stops and joins the thread
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // From any thread: the next query is answered from `zone`.
  void SetZone(std::shared_ptr<const Zone> zone);
  std::string bound_address() const;  // "ip:port", the same for UDP and TCP
  const DnsServerStats& stats() const;
  uint64_t outcome_count(ParseOutcome o) const;
  // "udp_queries=3 ... malformed: compressed_name=1", zeros skipped.
  std::string Summary() const;

  struct Impl;

 private:
  explicit DnsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshgate::control::dns
