// Answers follow RFC 1035 4.3.2's algorithm for an authoritative server with
// no delegations: the apex has SOA and NS, a known host its A (and AAAA)
// records, a name that exists only as a parent of a host is an empty
// non-terminal (NODATA, RFC 8020 2), everything else in the zone NXDOMAIN,
// and a name outside it REFUSED (we are not a resolver).
#include "control/dns/dns_zone.h"

#include <arpa/inet.h>

#include <algorithm>

namespace meshgate::control::dns {

namespace {

bool InZone(const std::string& name, const std::string& apex) {
  if (name.size() == apex.size()) return name == apex;
  return name.size() > apex.size() && name[name.size() - apex.size() - 1] == '.' &&
         name.compare(name.size() - apex.size(), apex.size(), apex) == 0;
}

Record AddressRecord(uint16_t type, const std::vector<uint8_t>& rdata) {
  Record r;
  r.type = type;
  r.ttl = kAnswerTtl;
  r.rdata = rdata;
  return r;
}

}  // namespace

std::shared_ptr<const Zone> Zone::Make(const std::string& apex,
                                       const std::map<std::string, std::vector<std::string>>& hosts,
                                       uint32_t serial, std::optional<uint32_t> ns_address) {
  auto zone = std::make_shared<Zone>();
  zone->apex_ = LowerName(apex);
  zone->apex_labels_ = static_cast<size_t>(std::count(apex.begin(), apex.end(), '.')) + 1;
  zone->serial_ = serial;
  for (const auto& [host, vips] : hosts) {
    const std::string name = LowerName(host);
    if (!InZone(name, zone->apex_) || name == zone->apex_) continue;
    Addresses& a = zone->hosts_[name];
    for (const std::string& vip : vips) {
      uint8_t bytes[16];
      if (inet_pton(AF_INET, vip.c_str(), bytes) == 1) {
        a.v4.emplace_back(bytes, bytes + 4);
      } else if (inet_pton(AF_INET6, vip.c_str(), bytes) == 1) {
        a.v6.emplace_back(bytes, bytes + 16);
      }
    }
    std::sort(a.v4.begin(), a.v4.end());
    a.v4.erase(std::unique(a.v4.begin(), a.v4.end()), a.v4.end());
    for (size_t dot = name.find('.'); dot != std::string::npos && name.size() - dot - 1 > zone->apex_.size();
         dot = name.find('.', dot + 1)) {
      zone->empty_non_terminals_.insert(name.substr(dot + 1));
    }
  }
  if (ns_address) {
    const uint32_t n = htonl(*ns_address);
    const auto* p = reinterpret_cast<const uint8_t*>(&n);
    zone->hosts_["ns." + zone->apex_].v4 = {std::vector<uint8_t>(p, p + 4)};
  }
  return zone;
}

Record Zone::Soa() const {
  Record r;
  r.owner = Record::Owner::kApex;
  r.type = kTypeSoa;
  r.ttl = kNegativeTtl;
  // serial, refresh, retry, expire, minimum (RFC 1035 3.3.13; RFC 2308 4).
  const uint32_t values[5] = {serial_, 3600, 600, 86400, kNegativeTtl};
  std::copy(std::begin(values), std::end(values), r.soa);
  return r;
}

Zone::Answer Zone::Negative(Rcode rcode) const {
  Answer a;
  a.zone_labels = apex_labels_;
  a.reply.rcode = rcode;
  a.reply.authority.push_back(Soa());  // RFC 2308 3 and 2.2
  return a;
}

Zone::Answer Zone::Resolve(const Query& query) const {
  const std::string name = LowerName(query.qname);
  if ((query.qclass != kClassIn && query.qclass != kTypeAny) || !InZone(name, apex_)) {
    Answer refused;
    refused.reply.rcode = Rcode::kRefused;
    refused.reply.authoritative = false;
    return refused;
  }
  const bool any = query.qtype == kTypeAny;
  Answer a;
  a.zone_labels = apex_labels_;
  if (name == apex_) {
    if (any || query.qtype == kTypeSoa) a.reply.answers.push_back(Soa());
    if (any || query.qtype == kTypeNs) {
      Record ns;
      ns.owner = Record::Owner::kApex;
      ns.type = kTypeNs;
      ns.ttl = kAnswerTtl;
      a.reply.answers.push_back(ns);
    }
    return a.reply.answers.empty() ? Negative(Rcode::kNoError) : a;
  }
  auto it = hosts_.find(name);
  if (it == hosts_.end()) {
    return Negative(empty_non_terminals_.count(name) ? Rcode::kNoError : Rcode::kNxDomain);
  }
  if (any || query.qtype == kTypeA) {
    for (const auto& rdata : it->second.v4) a.reply.answers.push_back(AddressRecord(kTypeA, rdata));
  }
  if (any || query.qtype == kTypeAaaa) {
    for (const auto& rdata : it->second.v6) a.reply.answers.push_back(AddressRecord(kTypeAaaa, rdata));
  }
  return a.reply.answers.empty() ? Negative(Rcode::kNoError) : a;  // NODATA (RFC 2308 2.2)
}

}  // namespace meshgate::control::dns
