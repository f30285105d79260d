// The `.global` zone meshgatectl serve answers for: each ServiceEntry host
// and its VIPs, as one immutable snapshot the DNS thread reads while the
// control loop builds the next. Pure, like dns_message.h.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "control/dns/dns_message.h"

namespace meshgate::control::dns {

// TTLs: VIPs never change once given (VipAllocations), so positive answers
// may be cached; negative ones are short so a new service is seen quickly
// through a cache (RFC 2308 5: the negative TTL is min(SOA TTL, MINIMUM)).
inline constexpr uint32_t kAnswerTtl = 30;
inline constexpr uint32_t kNegativeTtl = 5;

class Zone {
 public:
  // `apex` e.g. "global"; `hosts` host -> VIPs (IPv4 or IPv6 text; bad
  // text is skipped); `ns_address` answers "ns.<apex>" A when set.
  static std::shared_ptr<const Zone> Make(const std::string& apex,
                                          const std::map<std::string, std::vector<std::string>>& hosts,
                                          uint32_t serial, std::optional<uint32_t> ns_address);

  struct Answer {
    Reply reply;
    size_t zone_labels = 0;  // for BuildReply
  };
  // The answer to a query that parsed (kOk).
  Answer Resolve(const Query& query) const;

  const std::string& apex() const { return apex_; }
  uint32_t serial() const { return serial_; }
  size_t size() const { return hosts_.size(); }

 private:
  struct Addresses {
    std::vector<std::vector<uint8_t>> v4, v6;  // RDATA
  };
  Record Soa() const;
  Answer Negative(Rcode rcode) const;

  std::string apex_;
  size_t apex_labels_ = 0;
  uint32_t serial_ = 0;
  std::unordered_map<std::string, Addresses> hosts_;  // lower-case names
  std::unordered_set<std::string> empty_non_terminals_;  // "bar.global" under "httpbin.bar.global"
};

}  // namespace meshgate::control::dns
